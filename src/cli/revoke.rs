//! `cfrevoke revoke`: revoke every certificate listed in a CSV.

use std::path::PathBuf;

use crate::exit::ExitCode;
use crate::output::logging::Verbosity;
use crate::pipeline::run::{self, Operation, RunArgs, Spec};

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// CSV with a header naming zone_id and certificate_id columns; `-` reads standard input.
    pub input: PathBuf,

    #[command(flatten)]
    pub run: RunArgs,

    /// Go ahead despite invalid rows, recording them with outcome `invalid`.
    #[arg(long)]
    pub skip_invalid: bool,

    /// After each successful DELETE, read the certificate back and record the status seen
    /// (pending_revocation or revoked); one still active is a failure. Doubles the requests.
    #[arg(long)]
    pub verify: bool,

    /// Rehearse: run against a simulated Cloudflare API started in-process on loopback, seeded with the
    /// input's certificates (latency, transient errors, one rate-limit pause). No credentials, no
    /// confirmation, no real certificate touched. Results default to <input stem>.sandbox-results.csv.
    #[arg(long, conflicts_with_all = ["base_url", "api_token_file"])]
    pub sandbox: bool,
}

pub fn run(args: &RevokeArgs, verbosity: Verbosity, argv: &[String]) -> anyhow::Result<ExitCode> {
    let spec = Spec {
        operation: Operation::Revoke { verify: args.verify },
        input: &args.input,
        selections: Vec::new(),
        skip_invalid: args.skip_invalid,
        sandbox: args.sandbox,
        args: &args.run,
    };
    run::execute(&spec, verbosity, argv)
}
