//! `cfrevoke verify`: reads back every certificate an earlier revoke run
//! revoked, to confirm the end state a responder is after (locked out), not
//! just the API's word at the time of the DELETE. Both `revoked` rows (this
//! run's revocations) and `already_revoked` ones (revoked before it) are
//! read: either way the run's input says that certificate must not get in.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::bulk::{self, RunArgs};
use crate::cli::values::positive_duration;
use crate::exit::ExitCode;
use crate::input::reader::Selection;
use crate::operations::verification::Poll;
use crate::outcome::{column, Outcome};
use crate::output::logging::Verbosity;
use crate::pipeline::operation::Operation;
use crate::pipeline::settings::RunSettings;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Results CSV of an earlier `cfrevoke revoke` run; every row with outcome `revoked` or
    /// `already_revoked` is read back. Writes <stem>.verified.csv with the status seen and when.
    pub results: PathBuf,

    #[command(flatten)]
    pub run: RunArgs,

    /// Keep reading the certificates still pending_revocation until every one is revoked or
    /// --deadline passes.
    #[arg(long, value_enum, value_name = "STATUS")]
    pub until: Option<Until>,

    /// With --until: read a pending certificate again no sooner than this after its last answer.
    #[arg(long, default_value = "30s", value_parser = positive_duration, value_name = "DURATION", requires = "until")]
    pub poll_interval: Duration,

    /// With --until: stop polling this long after the run started; what is still pending is
    /// recorded `pending_revocation`. (--timeout stays the per-request timeout.)
    #[arg(long, default_value = "30m", value_parser = positive_duration, value_name = "DURATION", requires = "until")]
    pub deadline: Duration,
}

/// The end state `--until` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Until {
    Revoked,
}

pub fn run(args: &VerifyArgs, verbosity: Verbosity, argv: &[String]) -> anyhow::Result<ExitCode> {
    let values = [Outcome::Revoked, Outcome::AlreadyRevoked].map(|o| o.as_str().to_string()).to_vec();
    let selections = vec![Selection { column: column::OUTCOME, values }];
    let poll = args.until.map(|Until::Revoked| Poll { interval: args.poll_interval, deadline: args.deadline });
    let operation = Operation::Verify { poll };
    let settings = RunSettings { selections, ..args.run.settings(operation, args.results.clone(), argv) };
    bulk::run(settings, &args.run, verbosity, false)
}
