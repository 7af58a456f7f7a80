//! `cfrevoke reactivate`: the undo. Reactivates the certificates an earlier
//! revoke run recorded as `revoked`, while Cloudflare still allows it. That
//! outcome is the run's own revocations, an "already revoked" answer after a
//! lost reply included ([`crate::operations::revocation`]); `already_revoked` rows were
//! revoked before the run, and undoing them would undo someone else's work.

use std::path::PathBuf;

use crate::cli::bulk::{self, RunArgs};
use crate::exit::ExitCode;
use crate::input::ids::{CertId, ZoneId};
use crate::input::reader::Selection;
use crate::outcome::{column, Outcome};
use crate::output::logging::Verbosity;
use crate::pipeline::operation::Operation;
use crate::pipeline::settings::RunSettings;

#[derive(Debug, clap::Args)]
pub struct ReactivateArgs {
    /// Results CSV of an earlier `cfrevoke revoke` run; its rows with outcome `revoked` (this run's
    /// revocations) are reactivated, `already_revoked` ones (revoked before it) are left alone.
    /// Cloudflare allows this only while a certificate is still pending_revocation: rows that already
    /// reached `revoked` are reported as `too_late`.
    pub results: PathBuf,

    #[command(flatten)]
    pub run: RunArgs,

    /// Only certificates in this zone (repeatable).
    #[arg(long = "zone", value_name = "ZONE_ID")]
    pub zones: Vec<ZoneId>,

    /// Only this certificate (repeatable).
    #[arg(long = "certificate", value_name = "CERT_ID")]
    pub certificates: Vec<CertId>,
}

pub fn run(args: &ReactivateArgs, verbosity: Verbosity, argv: &[String]) -> anyhow::Result<ExitCode> {
    let mut selections = vec![Selection { column: column::OUTCOME, values: vec![Outcome::Revoked.as_str().into()] }];
    if !args.zones.is_empty() {
        let values = args.zones.iter().map(ToString::to_string).collect();
        selections.push(Selection { column: column::ZONE_ID, values });
    }
    if !args.certificates.is_empty() {
        let values = args.certificates.iter().map(ToString::to_string).collect();
        selections.push(Selection { column: column::CERTIFICATE_ID, values });
    }
    let settings = RunSettings { selections, ..args.run.settings(Operation::Reactivate, args.results.clone(), argv) };
    bulk::run(settings, &args.run, verbosity, false)
}
