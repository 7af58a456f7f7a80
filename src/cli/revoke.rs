//! `cfrevoke revoke`: revoke every certificate listed in a CSV.

use std::path::PathBuf;

use crate::cli::bulk::{self, RunArgs};
use crate::exit::ExitCode;
use crate::output::logging::Verbosity;
use crate::pipeline::enforcement::EnforcementCheck;
use crate::pipeline::operation::Operation;
use crate::pipeline::settings::RunSettings;

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

    /// With --sandbox: serve it over HTTPS from a throwaway CA that this run alone trusts.
    #[arg(long, requires = "sandbox")]
    pub tls: bool,

    /// Revoke nothing (exit 2) unless every zone of the input has an enabled custom rule that blocks
    /// revoked certificates (cf.tls_client_auth.cert_revoked). Needs "Zone WAF Read".
    #[arg(long, conflicts_with = "skip_enforcement_check")]
    pub require_enforcement: bool,

    /// Do not read each zone's custom rules before revoking (one request per zone), and so do not
    /// warn about zones where revocation changes nothing.
    #[arg(long)]
    pub skip_enforcement_check: bool,
}

pub fn run(args: &RevokeArgs, verbosity: Verbosity, argv: &[String]) -> anyhow::Result<ExitCode> {
    let settings = RunSettings {
        skip_invalid: args.skip_invalid,
        sandbox: args.sandbox,
        enforcement: match (args.require_enforcement, args.skip_enforcement_check) {
            (true, _) => EnforcementCheck::Require,
            (_, true) => EnforcementCheck::Skip,
            _ => EnforcementCheck::Warn,
        },
        ..args.run.settings(Operation::Revoke { verify: args.verify }, args.input.clone(), argv)
    };
    bulk::run(settings, &args.run, verbosity, args.tls)
}
