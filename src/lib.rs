//! cfrevoke: bulk revocation of Cloudflare API Shield mTLS client certificates.
//!
//! Data flows one way, and each stage is a folder:
//!
//! - [`cli`]: the command line (clap), one module per subcommand; the only
//!   place that knows about flags.
//! - [`input`]: the CSV reader, IDs, the plan (pass one checks and dedupes the
//!   whole file before anything is sent; pass two streams jobs), and the scan
//!   of an earlier run's results for `--resume`.
//! - [`pacing`]: the pacer, and what it ties together: the quota, its
//!   limiter, the budget read from the API's rate-limit headers, and the
//!   shared 429 pause; and the retry schedule.
//! - [`pipeline`]: the engine every bulk operation shares: queue, dispatcher
//!   (pacing, concurrency, retry), collector, signals, and the run itself.
//! - [`operations`]: what each operation sends and what an answer means for a
//!   row (revoke, reactivate, list and its filters).
//! - [`output`]: results CSV, summary and exit code, progress, logs, audit
//!   record, and the look at the files before the first request.
//! - [`api`] and [`client`]: the wire types and the HTTP client, shared with
//!   the [`sandbox`], a simulated API on loopback. [`credentials`], [`escape`]
//!   (server text made safe for a terminal) and [`exit`] (the exit codes) are
//!   used across stages.

pub mod api;
pub mod cli;
pub mod client;
pub mod credentials;
pub mod escape;
pub mod exit;
pub mod input;
pub mod operations;
pub mod output;
pub mod pacing;
pub mod pipeline;
pub mod sandbox;

use cli::{Cli, Command};
use exit::ExitCode;

/// Runs one command line; errors are printed here, where they meet the user.
pub fn run(cli: Cli) -> ExitCode {
    let outcome = match &cli.command {
        Command::Revoke(args) => cli::revoke::run(args, cli.verbosity, &cli.argv),
        Command::Reactivate(args) => cli::reactivate::run(args, cli.verbosity, &cli.argv),
        Command::List(args) => cli::list::run(args, cli.verbosity),
        Command::Sandbox(args) => cli::sandbox::run(args),
        Command::Completions(args) => cli::completions::run(args),
        Command::Man(args) => cli::man::run(args),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("cfrevoke: error: {error:#}");
        exit::code_for(&error)
    })
}
