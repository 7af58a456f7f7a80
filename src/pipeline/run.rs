//! The engine every bulk command shares (revoke, reactivate): check the whole
//! input, confirm, open the results, stream the rows through the dispatcher
//! into the results file, and summarise.

use std::io::{self, BufRead, ErrorKind, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::api_args::ApiArgs;
use crate::client::BaseUrl;
use crate::credentials::{Credentials, Secret};
use crate::exit::{usage, ExitCode};
use crate::input::plan::{Job, Plan};
use crate::input::reader::{Row, Selection};
use crate::input::resume::Finished;
use crate::output::audit;
use crate::output::disk;
use crate::output::logging::{self, LogFile, LogHealth, Verbosity};
use crate::output::progress::Progress;
use crate::output::results::{self, Outcome, ResultRow, ResultsError, ResultsFile};
use crate::output::summary::Summary;
use crate::pacing::Pace;
use crate::pipeline::collector::{collect, Stamp};
use crate::pipeline::dispatcher::{Dispatcher, StopReason};
use crate::pipeline::queue::{self, Feeder};
use crate::sandbox::{Sandbox, SandboxConfig};

/// Jobs and results queued between stages; bounds memory whatever the input size.
const CHANNEL_DEPTH: usize = 1024;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Results CSV to create (never overwritten; one holding only a header is started over). Default:
    /// beside the input, <stem>.results.csv (reactivate: <stem>.reactivated.csv); required when reading
    /// standard input.
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
    /// too_late, not_found) and retrying the rest.
    #[arg(long)]
    pub resume: bool,

    /// Stop when this many certificates in a row fail the same way (say 403: the token lacks the
    /// permission), leaving the rest for --resume. 0 never stops.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_same_failures: u32,

    /// Don't ask for confirmation (required when not on a terminal).
    #[arg(short, long)]
    pub yes: bool,

    /// Check the input and print the plan; send nothing, need no credentials.
    #[arg(long)]
    pub dry_run: bool,

    /// Also write the end-of-run summary as JSON here (counts per outcome, exit code, elapsed time,
    /// run id, file paths), for monitoring.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// Print that JSON summary as the last line of standard output.
    #[arg(long)]
    pub json: bool,
}

/// What a bulk command does to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// DELETE; with `verify`, read each certificate back afterwards.
    Revoke { verify: bool },
    /// PATCH `{"reactivate": true}`: the undo while Cloudflare still allows it.
    Reactivate,
}

impl Operation {
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Revoke { .. } => "revoke",
            Operation::Reactivate => "reactivate",
        }
    }

    /// The outcomes this operation can record, in summary order.
    pub fn outcomes(self) -> &'static [Outcome] {
        match self {
            Operation::Revoke { .. } => {
                &[Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound, Outcome::Failed, Outcome::Invalid]
            }
            Operation::Reactivate => &[Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound, Outcome::Failed],
        }
    }

    /// The outcomes that need no further request: what `--resume` skips.
    pub fn finals(self) -> &'static [Outcome] {
        match self {
            Operation::Revoke { .. } => &[Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound],
            Operation::Reactivate => &[Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound],
        }
    }

    /// Requests per row when nothing goes wrong, for time estimates.
    fn requests_per_row(self) -> f64 {
        match self {
            Operation::Revoke { verify: true } => 2.0,
            _ => 1.0,
        }
    }

    /// `tried_before`: the run being resumed recorded this pair `failed`
    /// after an answer that may hide the request being carried out.
    async fn perform(self, dispatcher: Arc<Dispatcher>, row: Row, tried_before: bool) -> Option<ResultRow> {
        match self {
            Operation::Revoke { verify } => {
                crate::operations::revocation::revoke(dispatcher, row, verify, tried_before).await
            }
            Operation::Reactivate => crate::operations::reactivation::reactivate(dispatcher, row).await,
        }
    }
}

/// One bulk run, as a command describes it.
pub struct Spec<'a> {
    pub operation: Operation,
    /// A CSV path, or `-` for standard input.
    pub input: &'a Path,
    /// Only rows matching these are taken (reactivate: the revoked rows of a results file).
    pub selections: Vec<Selection>,
    pub skip_invalid: bool,
    /// Run against an in-process sandbox instead of the API.
    pub sandbox: bool,
    pub args: &'a RunArgs,
}

/// Where requests go: Cloudflare (or `--base-url`), or an in-process sandbox.
enum Target {
    Api { base: BaseUrl, credentials: Credentials },
    Sandbox(Box<SandboxConfig>),
}

/// What every line says in a sandbox run, so nobody mistakes a rehearsal for the real thing.
const SANDBOX_BANNER: &str = "[sandbox] ";

/// Runs one bulk command from start to summary.
pub fn execute(spec: &Spec<'_>, verbosity: Verbosity, argv: &[String]) -> anyhow::Result<ExitCode> {
    let args = spec.args;
    let output = output_path(spec)?;
    ensure_distinct_files(spec, &output)?;
    let plan = Plan::build_selecting(spec.input, spec.selections.clone()).map_err(|e| usage(e.to_string()))?;
    if plan.invalid > 0 && !spec.skip_invalid {
        return Err(usage(format!(
            "{}\n{} of {} rows are invalid; nothing was sent. Fix them, or pass --skip-invalid to {} the rest \
             and record these as `invalid`.",
            plan.problem_report(),
            plan.invalid,
            plan.rows,
            spec.operation.verb()
        )));
    }
    let sandbox_config = spec.sandbox.then(SandboxConfig::demo);
    let pace = args.api.rate;
    let banner = if spec.sandbox { SANDBOX_BANNER } else { "" };
    if args.dry_run {
        print_stdout(&format!(
            "{}{banner}dry run: nothing was sent.\n",
            prefixed(banner, &describe_plan(&plan, spec, pace))
        ));
        return Ok(ExitCode::Success);
    }
    let target = match sandbox_config {
        Some(mut config) => {
            config.certs = plan.pairs()?;
            Target::Sandbox(Box::new(config))
        }
        None => Target::Api { base: args.api.base_url.clone(), credentials: args.api.credentials()? },
    };
    if let Target::Api { base, .. } = &target {
        confirm(&plan, spec, base, pace)?;
    }
    let (results, finished) = open_results(&output, args.resume, spec.operation)?;
    let done_before = plan.count_finished(&finished);
    if results.replaced() {
        eprintln!("{banner}started {} over: it held no results rows yet", output.display());
    }
    if finished.repaired > 0 {
        eprintln!("{banner}repaired {}: cut off a torn last line ({} bytes)", output.display(), finished.repaired);
    }
    let log_file = args.log_file.as_deref().map(LogFile::open).transpose().map_err(|e| usage(format!("{e:#}")))?;
    let log = log_file.as_ref().map(LogFile::health).unwrap_or_default();
    let run_id = audit::run_id();
    let total = plan.unique - done_before + if spec.skip_invalid { plan.invalid } else { 0 };
    let progress = Arc::new(Progress::new(total, verbosity.is_quiet(), banner));
    let dispatch = logging::dispatch(verbosity, progress.writer(), log_file, &run_id);
    let _guard = tracing::dispatcher::set_default(&dispatch);
    for shortfall in disk::shortfalls(total, &output, args.log_file.as_deref()) {
        tracing::warn!("{shortfall}");
    }
    let runtime = logging::runtime(&dispatch)?;
    let (base, credentials, sandbox) = match target {
        Target::Api { base, credentials } => (base, credentials, None),
        Target::Sandbox(config) => {
            let sandbox = runtime.block_on(Sandbox::start(*config))?;
            eprintln!("{banner}simulated Cloudflare API at {}: no real certificate is touched", sandbox.base_url());
            let base = sandbox.base_url().parse()?;
            (base, Credentials::Token(Secret::new(sandbox.token())), Some(sandbox))
        }
    };
    let dispatcher = Arc::new(args.api.dispatcher(base.clone(), &credentials, pace, usize::from(args.concurrency))?);
    let settings = Settings { base: &base, pace, auth: credentials.scheme(), output: &output, run_id: &run_id };
    log_start(&plan, spec, &settings, argv);
    let started = Instant::now();
    let plan = Arc::new(plan);
    let pipeline = Pipeline {
        plan: Arc::clone(&plan),
        finished: Arc::new(finished),
        dispatcher: Arc::clone(&dispatcher),
        progress: Arc::clone(&progress),
        same_failures: args.max_same_failures,
        operation: spec.operation,
        run_id: run_id.clone(),
        log: log.clone(),
    };
    let tally = runtime.block_on(pipeline.execute(results))?;
    progress.finish();
    let mut summary = Summary {
        plan: &plan,
        operation: spec.operation,
        tally,
        requests: dispatcher.requests.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        stop: dispatcher.stop_reason(),
        results: &output,
        log: args.log_file.as_deref(),
        done_before,
        resume_command: resume_command(argv, spec, &output),
        run_id: &run_id,
    };
    summary.log();
    // The run_end line is the log's last: if it is the write that failed,
    // the run still says so, and exits accordingly.
    if summary.stop.is_none() {
        summary.stop = log.failure().map(|why| StopReason::Output(why.to_string()));
    }
    let mut out = prefixed(banner, &summary.to_string());
    if let Some(sandbox) = sandbox {
        let journal = sandbox.journal();
        out.push_str(&format!(
            "{banner}the sandbox saw {} requests ({} answered 429, {} faults injected); no real certificate was touched\n",
            journal.requests,
            journal.rate_limited,
            journal.faults.error + journal.faults.reset + journal.faults.slow + journal.faults.malformed
        ));
        runtime.block_on(sandbox.shutdown());
    }
    let json = summary.to_json();
    // Files first: what monitoring reads must not depend on whoever reads stdout.
    let written = args.summary_json.as_ref().map_or(Ok(()), |path| {
        // Not waiting on the open: a FIFO nobody reads must not hang the
        // run's end, after every row is recorded.
        disk::open_without_waiting(std::fs::OpenOptions::new().write(true).create(true).truncate(true), path)
            .and_then(|mut file| file.write_all(format!("{json}\n").as_bytes()))
            .with_context(|| format!("cannot write the summary to {}", path.display()))
    });
    if args.json {
        out.push_str(&format!("{json}\n"));
    }
    print_stdout(&out);
    written?;
    Ok(summary.exit_code())
}

/// Writes to standard output, which may be gone (`| head -1`, `| true`, a
/// closed terminal): the results, the log, the summary JSON and the exit
/// code already say what happened to the rows, so a reader that left is
/// no reason to fail, nor to panic as `print!` would.
fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != ErrorKind::BrokenPipe {
            tracing::warn!("cannot write to standard output: {e}");
        }
    }
}

/// The input and every output must be files of their own: a summary written
/// over the results, or a log appended to the input (and then revoked from),
/// destroys what the run is there to keep. Checked before anything is sent.
fn ensure_distinct_files(spec: &Spec<'_>, output: &Path) -> anyhow::Result<()> {
    // Standard input is compared by what it is: a results file fed back
    // with `< out.csv` is still that file.
    let input = if spec.input.as_os_str() == "-" { Path::new("/dev/stdin") } else { spec.input };
    let mut files = vec![
        (format!("the input {}", spec.input.display()), input),
        (format!("--output {}", output.display()), output),
    ];
    for (flag, path) in [("--log-file", &spec.args.log_file), ("--summary-json", &spec.args.summary_json)] {
        if let Some(path) = path {
            files.push((format!("{flag} {}", path.display()), path.as_path()));
        }
    }
    disk::ensure_distinct(&files).map_err(usage)
}

/// Opens the results file: new, or an earlier run's with `--resume`. A file
/// locked by another run keeps its own error (and exit code 4).
fn open_results(output: &Path, resume: bool, operation: Operation) -> anyhow::Result<(ResultsFile, Finished)> {
    let opened = if resume {
        ResultsFile::resume(output, operation.finals())
    } else {
        ResultsFile::create(output).map(|file| (file, Finished::default()))
    };
    opened.map_err(|e| match e {
        ResultsError::Locked(_) => anyhow::Error::from(e),
        _ => usage(e.to_string()),
    })
}

/// The command that continues this run: the command line as given, with
/// `--resume` and an explicit `--output`, quoted for a POSIX shell.
fn resume_command(argv: &[String], spec: &Spec<'_>, output: &Path) -> String {
    let mut words: Vec<String> = if argv.is_empty() {
        vec!["cfrevoke".into(), spec.operation.verb().into(), spec.input.display().to_string()]
    } else {
        argv.to_vec()
    };
    if spec.args.output.is_none() {
        words.extend(["--output".into(), output.display().to_string()]);
    }
    if !spec.args.resume {
        words.push("--resume".into());
    }
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Puts `prefix` before every line of `text`.
fn prefixed(prefix: &str, text: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}\n")).collect()
}

fn output_path(spec: &Spec<'_>) -> anyhow::Result<PathBuf> {
    if let Some(out) = &spec.args.output {
        return Ok(out.clone());
    }
    if spec.input.as_os_str() == "-" {
        return Err(usage("reading standard input needs --output PATH for the results file"));
    }
    // Beside `/dev/stdin` the results would land in /dev.
    if std::fs::metadata(spec.input).is_ok_and(|m| !m.is_file()) {
        return Err(usage(format!(
            "{} is not a regular file: pass --output PATH for the results",
            spec.input.display()
        )));
    }
    let kind = match (spec.operation, spec.sandbox) {
        (Operation::Reactivate, _) => "reactivated",
        (Operation::Revoke { .. }, true) => "sandbox-results",
        (Operation::Revoke { .. }, false) => "results",
    };
    results::default_path(spec.input, kind)
        .ok_or_else(|| usage(format!("cannot derive a results path from {}: pass --output PATH", spec.input.display())))
}

fn describe_plan(plan: &Plan, spec: &Spec<'_>, pace: Pace) -> String {
    let requests = plan.unique as f64 * spec.operation.requests_per_row();
    let rate = pace.initial();
    let eta = Duration::from_secs_f64(requests / rate.per_second());
    let mut out = format!(
        "input {} (sha256 {})\n  {} rows: {} certificates to {} in {} zones, {} duplicates skipped, {} invalid\n  \
         target {}\n  pace {} (about {:.2} requests/s at {}): at least {}\n",
        plan.display,
        plan.sha256,
        plan.rows,
        plan.unique,
        spec.operation.verb(),
        plan.zones,
        plan.duplicates,
        plan.invalid,
        if spec.sandbox { "the in-process sandbox".to_string() } else { spec.args.api.base_url.to_string() },
        pace,
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

/// Asks before a run that changes certificates on a terminal; demands
/// `--yes` elsewhere.
fn confirm(plan: &Plan, spec: &Spec<'_>, base: &BaseUrl, pace: Pace) -> anyhow::Result<()> {
    if spec.args.yes {
        return Ok(());
    }
    let stdin = io::stdin();
    if !stdin.is_terminal() || spec.input.as_os_str() == "-" {
        return Err(usage(
            "not on a terminal, so cfrevoke cannot ask for confirmation: pass --yes to go ahead without asking \
             (try --dry-run first)",
        ));
    }
    eprint!("{}", describe_plan(plan, spec, pace));
    let verb = spec.operation.verb();
    let (initial, rest) = verb.split_at(1);
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

/// The settings in force that are not plain flags, for the run-start event.
struct Settings<'a> {
    base: &'a BaseUrl,
    pace: Pace,
    auth: &'static str,
    output: &'a Path,
    run_id: &'a str,
}

/// The audit record of a run: who ran what, on which input, with which settings.
fn log_start(plan: &Plan, spec: &Spec<'_>, settings: &Settings<'_>, argv: &[String]) {
    let args = spec.args;
    tracing::info!(
        target: logging::AUDIT,
        event = "run_start",
        run_id = settings.run_id,
        operation = spec.operation.verb(),
        version = env!("CARGO_PKG_VERSION"),
        operator = %audit::operator(),
        command_line = %audit::command_line(argv),
        input = %plan.display,
        input_sha256 = %plan.sha256,
        rows = plan.rows,
        unique = plan.unique,
        duplicates = plan.duplicates,
        invalid = plan.invalid,
        zones = plan.zones,
        base_url = %settings.base,
        sandbox = spec.sandbox,
        auth = settings.auth,
        rate = %settings.pace,
        concurrency = args.concurrency,
        max_attempts = args.api.max_attempts,
        retry_delay_ms = args.api.retry_delay.as_millis() as u64,
        retry_max_delay_ms = args.api.retry_max_delay.as_millis() as u64,
        timeout_ms = args.api.timeout.as_millis() as u64,
        skip_invalid = spec.skip_invalid,
        resume = args.resume,
        verify = matches!(spec.operation, Operation::Revoke { verify: true }),
        max_same_failures = args.max_same_failures,
        results = %settings.output.display(),
        "run started"
    );
    tracing::info!(
        "run {}: {} {} certificates in {} zones at {}, pace {}",
        settings.run_id,
        spec.operation.verb(),
        plan.unique,
        plan.zones,
        settings.base,
        settings.pace
    );
}

fn invalid_row(bad: &crate::input::reader::Invalid) -> ResultRow {
    ResultRow {
        line: bad.line,
        zone_id: String::new(),
        certificate_id: String::new(),
        outcome: Outcome::Invalid,
        http_status: None,
        cert_status: None,
        attempts: 0,
        error_code: None,
        error_message: bad.message(),
        cf_ray: String::new(),
        finished_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        duration_ms: 0,
        verified_status: None,
        run_id: String::new(),
    }
}

/// The pipeline proper: input → jobs → dispatcher → collector.
struct Pipeline {
    plan: Arc<Plan>,
    /// What an earlier run finished (empty without --resume).
    finished: Arc<Finished>,
    dispatcher: Arc<Dispatcher>,
    progress: Arc<Progress>,
    same_failures: u32,
    operation: Operation,
    run_id: String,
    /// The JSON log: a write that fails stops the run.
    log: LogHealth,
}

impl Pipeline {
    async fn execute(self, results: ResultsFile) -> anyhow::Result<crate::output::results::Tally> {
        let Pipeline { plan, finished, dispatcher, progress, same_failures, operation, run_id, log } = self;
        let (row_tx, row_rx) = mpsc::channel::<ResultRow>(CHANNEL_DEPTH);
        let collector = {
            let (progress, dispatcher) = (Arc::clone(&progress), Arc::clone(&dispatcher));
            let stamp = Stamp { run_id, same_failures };
            tokio::spawn(collect(results, row_rx, progress, dispatcher, stamp))
        };
        let signals = tokio::spawn(crate::pipeline::signals::watch(Arc::clone(&dispatcher)));
        let log_watch = tokio::spawn(stop_when_broken(log.clone(), Arc::clone(&dispatcher)));
        let ticker =
            progress.is_visible().then(|| tokio::spawn(show_pauses(Arc::clone(&dispatcher), Arc::clone(&progress))));

        // A log that could not take the run_start line stops the run before
        // its first request.
        let checked = match (log.failure(), plan.first) {
            (Some(why), _) => Err(StopReason::Output(why.to_string())),
            (None, Some(first)) => dispatcher.check_credentials(first).await,
            (None, None) => Ok(()),
        };
        match checked {
            Ok(()) => {
                let (feeder, queue) = queue::channel(CHANNEL_DEPTH);
                let producer = {
                    let (dispatcher, row_tx, finished) =
                        (Arc::clone(&dispatcher), row_tx.clone(), Arc::clone(&finished));
                    tokio::task::spawn_blocking(move || produce(&plan, &finished, &dispatcher, feeder, &row_tx))
                };
                let work = move |dispatcher, row: Row| {
                    operation.perform(dispatcher, row, finished.maybe_done(row.zone, row.cert))
                };
                Arc::clone(&dispatcher).run(queue, row_tx, work).await;
                producer.await.context("the input reader stopped unexpectedly")?;
            }
            Err(reason) => {
                dispatcher.halt(reason);
                drop(row_tx);
            }
        }
        signals.abort();
        log_watch.abort();
        if let Some(ticker) = ticker {
            ticker.abort();
        }
        collector.await.context("the results writer stopped unexpectedly")
    }
}

/// Stops the run when the log cannot be written, as a failed results write
/// does: in-flight rows are recorded, the rest are left for a resume.
async fn stop_when_broken(log: LogHealth, dispatcher: Arc<Dispatcher>) {
    let why = log.broken().await;
    tracing::error!("{why}; stopping the run");
    dispatcher.halt(StopReason::Output(why.to_string()));
}

/// Pass two of the input, feeding the bounded job queue with what is not
/// already finished.
fn produce(
    plan: &Plan,
    finished: &Finished,
    dispatcher: &Dispatcher,
    mut jobs: Feeder,
    rows: &mpsc::Sender<ResultRow>,
) {
    let stream = match plan.jobs() {
        Ok(stream) => stream,
        Err(e) => return dispatcher.halt(StopReason::Input(e.to_string())),
    };
    for job in stream {
        let sent = match job {
            Ok(Job::Revoke(row)) if finished.contains(row.zone, row.cert) => true,
            Ok(Job::Revoke(row)) => jobs.blocking_push(row),
            Ok(Job::Invalid(bad)) if finished.has_invalid_line(bad.line) => true,
            Ok(Job::Invalid(bad)) => rows.blocking_send(invalid_row(&bad)).is_ok(),
            Err(e) => {
                dispatcher.halt(StopReason::Input(e.to_string()));
                false
            }
        };
        if !sent {
            return;
        }
    }
    jobs.blocking_finish();
}

/// Keeps the bar's "paused" countdown current while a rate-limit pause lasts.
async fn show_pauses(dispatcher: Arc<Dispatcher>, progress: Arc<Progress>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let left =
            dispatcher.pacer.paused_until().map(|until| until.saturating_duration_since(tokio::time::Instant::now()));
        progress.refresh(left);
    }
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

    #[test]
    fn resume_commands_survive_a_shell() {
        assert_eq!(shell_quote("in.csv"), "in.csv");
        assert_eq!(shell_quote("my certs.csv"), "'my certs.csv'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
