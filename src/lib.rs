//! cfrevoke: bulk revocation of Cloudflare API Shield mTLS client certificates.
//!
//! Data flows one way, and each stage is a folder:
//!
//! - [`cli`]: the command line (clap), one module per subcommand; the only
//!   place that knows about flags. It turns them into the engine's plain
//!   settings, and does the talking: prompts, notices, the summary on stdout.
//! - [`input`]: the CSV reader, IDs, the plan (pass one checks and dedupes the
//!   whole file before anything is sent; pass two streams jobs), and the scan
//!   of an earlier run's results for `--resume`.
//! - [`pacing`]: the pacer, and what it ties together: the quota, its
//!   limiter, the budget read from the API's rate-limit headers, and the
//!   shared 429 pause; and the retry schedule.
//! - [`pipeline`]: the engine every bulk operation shares: its settings, the
//!   operation, queue, dispatcher (pacing, concurrency, retry), collector,
//!   signals, the set-up shared with `list` (session), and the run itself,
//!   in steps that return a summary rather than print one.
//! - [`operations`]: what each operation sends and what an answer means for a
//!   row (revoke, reactivate, verify, list and its filters), and whether a
//!   zone's custom rules enforce revocation at all (enforcement).
//! - [`output`]: results CSV, summary and exit code, progress, logs, audit
//!   record, and the look at the files before the first request.
//! - [`report`]: after a run, the incident record (HTML or Markdown) made from
//!   the results, the log and a verify run's results.
//! - [`api`] and [`client`]: the wire types and the HTTP client, shared with
//!   the [`sandbox`], a simulated API on loopback (HTTPS too, from a
//!   throwaway CA). [`transport`]: the roots the client trusts, its proxy,
//!   and what a refused certificate or tunnel means. [`credentials`], [`escape`]
//!   (server text made safe for a terminal), [`exit`] (the exit codes) and
//!   [`outcome`] (the outcome names and results columns, read back by a later
//!   run) are used across stages.

pub mod api;
pub mod cli;
pub mod client;
pub mod credentials;
pub mod escape;
pub mod exit;
pub mod input;
pub mod operations;
pub mod outcome;
pub mod output;
pub mod pacing;
pub mod pipeline;
pub mod report;
pub mod sandbox;
pub mod transport;

use clap::CommandFactory;

use cli::{Cli, Command};
use exit::ExitCode;

/// Runs one command line; errors are printed here, where they meet the user.
pub fn run(cli: Cli) -> ExitCode {
    let verbosity = cli.verbosity.into();
    let outcome = match &cli.command {
        Command::Revoke(args) => cli::revoke::run(args, verbosity, &cli.argv),
        Command::Reactivate(args) => cli::reactivate::run(args, verbosity, &cli.argv),
        Command::Verify(args) => cli::verify::run(args, verbosity, &cli.argv),
        Command::List(args) => cli::list::run(args, verbosity),
        Command::Enforcement(args) => cli::enforcement::run(args, verbosity),
        Command::Sandbox(args) => cli::sandbox::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Completions(args) => cli::completions::run(args, Cli::command()),
        Command::Man(args) => cli::man::run(args, Cli::command()),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("cfrevoke: error: {error:#}");
        exit::code_for(&error)
    })
}
