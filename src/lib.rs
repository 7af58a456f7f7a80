//! cfrevoke: bulk revocation of Cloudflare API Shield mTLS client certificates.
//!
//! Data flows one way: [`plan`] (input checked, deduped) → jobs over a bounded
//! [`queue`] → [`dispatcher`] (pacing, concurrency, retry) → [`client`] →
//! [`collector`] (results file, counts) → [`summary`]. `list` builds that
//! input: [`listing`] pages through the same dispatcher, [`cert_filter`] keeps
//! what the filters describe.

pub mod api;
pub mod audit;
pub mod cert_filter;
pub mod cli;
pub mod client;
pub mod collector;
pub mod commands;
pub mod credentials;
pub mod disk;
pub mod dispatcher;
pub mod escape;
pub mod exit;
pub mod glob;
pub mod ids;
pub mod input;
pub mod listing;
pub mod logging;
pub mod plan;
pub mod progress;
pub mod queue;
pub mod quota;
pub mod rate;
pub mod reactivation;
pub mod results;
pub mod resume;
pub mod retry;
pub mod revocation;
pub mod run;
pub mod sandbox;
pub mod signals;
pub mod summary;
pub mod timestamp;

use cli::{Cli, Command};
use exit::ExitCode;

/// Runs one command line; errors are printed here, where they meet the user.
pub fn run(cli: Cli) -> ExitCode {
    let outcome = match &cli.command {
        Command::Revoke(args) => commands::revoke::run(args, cli.verbosity, &cli.argv),
        Command::Reactivate(args) => commands::reactivate::run(args, cli.verbosity, &cli.argv),
        Command::List(args) => commands::list::run(args, cli.verbosity),
        Command::Sandbox(args) => commands::sandbox::run(args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::man::run(args),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("cfrevoke: error: {error:#}");
        exit::code_for(&error)
    })
}
