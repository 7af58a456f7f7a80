//! `cfrevoke report`: the incident record of a run, from the files it wrote.

use std::path::PathBuf;

use crate::exit::{usage, ExitCode};
use crate::report::{self, Format, Settings};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Results CSV of a revoke run (a resumed run appends its rows to the same file, and the
    /// report shows every run in it).
    pub results: PathBuf,

    /// The runs' JSON log (--log-file): adds each run's start, end, command line and operator,
    /// retries, 429s, rate-limit pauses, the share of the quota used and each zone's enforcement
    /// verdict.
    #[arg(long, value_name = "LOG")]
    pub log: Option<PathBuf>,

    /// Results of `cfrevoke verify` on RESULTS: how many certificates are confirmed revoked.
    #[arg(long, value_name = "VERIFIED")]
    pub verified: Option<PathBuf>,

    /// Where to write the report; .html or .htm writes HTML, .md Markdown. An existing report is
    /// replaced. [default: <RESULTS stem>.report.html beside RESULTS]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let output = match &args.output {
        Some(path) => path.clone(),
        None => report::default_output(&args.results).ok_or_else(|| {
            usage(format!("cannot derive a report path from {}: pass --output FILE", args.results.display()))
        })?,
    };
    let format = Format::of(&output).ok_or_else(|| {
        usage(format!("--output {}: the format follows the extension: .html, .htm or .md", output.display()))
    })?;
    let settings = Settings {
        results: args.results.clone(),
        log: args.log.clone(),
        verified: args.verified.clone(),
        output,
        format,
    };
    let made = report::write(&settings).map_err(|e| if e.is_usage() { usage(e.to_string()) } else { e.into() })?;
    println!(
        "report: {} ({} rows, {} that did not end well)",
        settings.output.display(),
        made.results.records,
        made.tally.unsuccessful()
    );
    Ok(ExitCode::Success)
}
