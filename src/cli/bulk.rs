//! What `revoke`, `reactivate` and `verify` share on the command line: the flags of a
//! bulk run, and the conversation around the engine's steps ([`run`]): the
//! dry run, the confirmation, the notices, the sandbox and its banner, and
//! the summary on standard output.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::cli::api_args::ApiArgs;
use crate::client::BaseUrl;
use crate::credentials::{Credentials, Secret};
use crate::exit::{usage, ExitCode};
use crate::output::logging::Verbosity;
use crate::output::metrics;
use crate::pipeline::enforcement::EnforcementCheck;
use crate::pipeline::operation::Operation;
use crate::pipeline::run::Checked;
use crate::pipeline::settings::{ApiSettings, RunSettings};
use crate::sandbox::tls::ThrowawayCa;
use crate::sandbox::{Sandbox, SandboxConfig};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Results CSV to create (never overwritten; one holding only a header is started over). Default:
    /// beside the input, <stem>.results.csv (reactivate: <stem>.reactivated.csv, verify:
    /// <stem>.verified.csv); required when reading standard input.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Append JSON-lines logs here: run start (settings, input SHA-256), every attempt, run end. This is
    /// the audit record: a write that fails stops the run, as for the results.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    #[command(flatten)]
    pub api: ApiArgs,

    /// Requests in flight at once. The rate, not this, sets the pace; 16 covers slow answers and
    /// retry waits at Cloudflare's quota without piling up connections.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024), value_name = "N")]
    pub concurrency: u16,

    /// Continue an earlier run: append to its results file (repairing a torn last line), skipping every
    /// pair it already finished (revoke: revoked, already_revoked, not_found; reactivate: reactivated,
    /// too_late, not_found; verify: revoked, active, not_found, and pending_revocation unless --until)
    /// and retrying the rest.
    #[arg(long)]
    pub resume: bool,

    /// Stop when this many certificates in a row fail the same way (say 403: the token lacks the
    /// permission), leaving the rest for --resume. 0 never stops.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_same_failures: u32,

    /// Don't ask for confirmation (required when not on a terminal; verify never asks).
    #[arg(short, long)]
    pub yes: bool,

    /// Check the input and print the plan; send nothing, need no credentials.
    #[arg(long)]
    pub dry_run: bool,

    /// Also write the end-of-run summary as JSON here (counts per outcome, exit code, elapsed time,
    /// run id, file paths), for monitoring.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// Also write the run's outcome here in Prometheus text format, for node_exporter's textfile
    /// collector: counts per outcome, requests, 429s, exit code, time, duration and the last success.
    /// Replaced atomically (a temporary file beside it, renamed over it).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Print that JSON summary as the last line of standard output.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// The engine's settings for `operation` over `input`, from these flags;
    /// the command fills in what is its own (selections, --skip-invalid, --sandbox).
    pub fn settings(&self, operation: Operation, input: PathBuf, argv: &[String]) -> RunSettings {
        RunSettings {
            operation,
            input,
            selections: Vec::new(),
            skip_invalid: false,
            sandbox: false,
            output: self.output.clone(),
            log_file: self.log_file.clone(),
            summary_json: self.summary_json.clone(),
            metrics_file: self.metrics_file.clone(),
            concurrency: usize::from(self.concurrency),
            resume: self.resume,
            max_same_failures: self.max_same_failures,
            enforcement: EnforcementCheck::Skip,
            argv: argv.to_vec(),
        }
    }
}

/// Where requests go: Cloudflare (or `--base-url`), or an in-process sandbox.
enum Target {
    Api(ApiSettings),
    Sandbox(SandboxConfig),
}

/// What every line says in a sandbox run, so nobody mistakes a rehearsal for the real thing.
const SANDBOX_BANNER: &str = "[sandbox] ";

/// Runs one bulk command from start to summary, through the engine's steps.
/// `tls` serves the sandbox over HTTPS.
pub fn run(settings: RunSettings, args: &RunArgs, verbosity: Verbosity, tls: bool) -> anyhow::Result<ExitCode> {
    let checked = Checked::new(settings)?;
    let banner = if checked.settings().sandbox { SANDBOX_BANNER } else { "" };
    if args.dry_run {
        super::print_stdout(&prefixed(banner, &describe_plan(&checked, &args.api)));
        let done = match dry_run_check(&checked, args, verbosity)? {
            Some(zones) => format!(
                "nothing was {}; the custom rules of {zones} zones were read",
                checked.settings().operation.done().as_str()
            ),
            None => "nothing was sent".to_string(),
        };
        super::print_stdout(&format!("{banner}dry run: {done}.\n"));
        return Ok(ExitCode::Success);
    }
    let target = if checked.settings().sandbox {
        let mut config = SandboxConfig::demo();
        config.certs = checked.plan().pairs()?;
        config.tls = tls;
        Target::Sandbox(config)
    } else {
        let api = args.api.settings(args.api.credentials()?)?;
        if checked.settings().operation.changes_certificates() {
            confirm(&checked, args, &api.base_url)?;
        }
        Target::Api(api)
    };
    let opened = checked.open()?;
    let output = opened.output().display().to_string();
    if opened.replaced() {
        eprintln!("{banner}started {output} over: it held no results rows yet");
    }
    if opened.repaired() > 0 {
        eprintln!("{banner}repaired {output}: cut off a torn last line ({} bytes)", opened.repaired());
    }
    let (session, ready) = opened.start(verbosity, banner)?;
    let (api, sandbox) = match target {
        Target::Api(api) => (api, None),
        Target::Sandbox(config) => {
            let sandbox = session.block_on(Sandbox::start(config))?;
            eprintln!("{banner}simulated Cloudflare API at {}: no real certificate is touched", sandbox.base_url());
            let credentials = Credentials::Token(Secret::new(sandbox.token()));
            // The in-process sandbox's quota is this run's alone, so no
            // other run could share what a ledger would say of it.
            let api = ApiSettings {
                base_url: sandbox.base_url().parse()?,
                ca_cert: sandbox.ca().map(ThrowawayCa::bundle),
                ledger: None,
                ..args.api.settings(credentials)?
            };
            (api, Some(sandbox))
        }
    };
    let summary = ready.execute(&session, &api)?;
    let mut out = prefixed(banner, &summary.to_string());
    if let Some(sandbox) = sandbox {
        let journal = sandbox.journal();
        out.push_str(&format!(
            "{banner}the sandbox saw {} requests ({} answered 429, {} faults injected); no real certificate was touched\n",
            journal.requests,
            journal.rate_limited,
            journal.faults.error + journal.faults.reset + journal.faults.slow + journal.faults.malformed
        ));
        session.block_on(sandbox.shutdown());
    }
    // Files first: what monitoring reads must not depend on whoever reads stdout.
    let written = args.summary_json.as_deref().map_or(Ok(()), |path| summary.write_json(path));
    let measured =
        args.metrics_file.as_deref().map_or(Ok(()), |path| metrics::write(&summary, path, SystemTime::now()));
    if args.json {
        out.push_str(&format!("{}\n", summary.to_json()));
    }
    super::print_stdout(&out);
    written?;
    measured?;
    Ok(summary.exit_code())
}

/// Puts `prefix` before every line of `text`.
fn prefixed(prefix: &str, text: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}\n")).collect()
}

fn describe_plan(checked: &Checked, api: &ApiArgs) -> String {
    let (plan, settings) = (checked.plan(), checked.settings());
    let requests = plan.unique as f64 * settings.operation.requests_per_row();
    let rate = api.rate.initial();
    let eta = Duration::from_secs_f64(requests / rate.per_second());
    let mut out = format!(
        "input {} (sha256 {})\n  {} rows: {} certificates to {} in {} zones, {} duplicates skipped, {} invalid\n  \
         target {}\n  pace {} (about {:.2} requests/s at {}): at least {}\n",
        plan.display,
        plan.sha256,
        plan.rows,
        plan.unique,
        settings.operation.verb(),
        plan.zones,
        plan.duplicates,
        plan.invalid,
        if settings.sandbox { "the in-process sandbox".to_string() } else { api.base_url.to_string() },
        api.rate,
        rate.per_second(),
        rate,
        humantime::format_duration(Duration::from_secs(eta.as_secs())),
    );
    if plan.invalid > 0 {
        out.push_str(&plan.problem_report());
        out.push('\n');
    }
    out
}

/// The enforcement check of a dry run, when there are credentials to read
/// the rules with (a dry run needs none); how many zones were read.
fn dry_run_check(checked: &Checked, args: &RunArgs, verbosity: Verbosity) -> anyhow::Result<Option<usize>> {
    let mode = checked.settings().enforcement;
    if mode == EnforcementCheck::Skip || checked.settings().sandbox {
        return Ok(None);
    }
    let Ok(credentials) = args.api.credentials() else {
        return Ok(None);
    };
    let zones = checked.plan().zone_ids();
    let checks = crate::cli::enforcement::check(&args.api.settings(credentials)?, &zones, verbosity, Some(mode))?;
    Ok(checks.map(|checks| checks.len()))
}

/// Asks before a run that changes certificates on a terminal; demands
/// `--yes` elsewhere.
fn confirm(checked: &Checked, args: &RunArgs, base: &BaseUrl) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    let stdin = io::stdin();
    if !stdin.is_terminal() || checked.settings().input.as_os_str() == "-" {
        return Err(usage(
            "not on a terminal, so cfrevoke cannot ask for confirmation: pass --yes to go ahead without asking \
             (try --dry-run first)",
        ));
    }
    eprint!("{}", describe_plan(checked, &args.api));
    let verb = checked.settings().operation.verb();
    let (initial, rest) = verb.split_at(1);
    let plan = checked.plan();
    eprint!(
        "{}{rest} {} certificates in {} zones at {base}? Type yes to go on: ",
        initial.to_uppercase(),
        thousands(plan.unique),
        thousands(plan.zones)
    );
    io::stderr().flush().ok();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).context("cannot read the confirmation")?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(usage("not confirmed: nothing was sent")),
    }
}

/// `5000` → `5,000`: a confirmation is read in a hurry.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_at_a_glance() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(5000), "5,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
