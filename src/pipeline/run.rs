//! The engine every bulk command shares (revoke, reactivate, verify), in the steps a
//! front end takes in order: check the whole input ([`Checked`]), open the
//! results ([`Opened`]), set up logging and the runtime ([`Ready`]), then
//! stream the rows through the dispatcher into the results file and hand
//! back the [`Summary`]. Between the steps the front end asks, prints, or
//! starts a sandbox: nothing here talks to the terminal.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::exit::usage;
use crate::input::plan::{Job, Plan};
use crate::input::reader::Row;
use crate::input::resume::Finished;
use crate::operations::enforcement::ZoneCheck;
use crate::outcome::Outcome;
use crate::output::audit;
use crate::output::disk;
use crate::output::logging::{self, LogFile, LogHealth, Verbosity};
use crate::output::progress::Progress;
use crate::output::results::{self, ResultRow, ResultsError, ResultsFile, Tally};
use crate::output::summary::{self, Summary};
use crate::pacing::headers::Dialect;
use crate::pipeline::collector::{collect, Stamp};
use crate::pipeline::dispatcher::{Dispatcher, StopReason};
use crate::pipeline::enforcement;
use crate::pipeline::operation::Operation;
use crate::pipeline::queue::{self, Feeder};
use crate::pipeline::session::{self, Session};
use crate::pipeline::settings::{ApiSettings, RunSettings};
use crate::transport::{self, CaBundle};

/// Jobs and results queued between stages; bounds memory whatever the input size.
const CHANNEL_DEPTH: usize = 1024;

/// Workers of a run whose certificates wait between requests (`verify
/// --until`): that many can wait for their next poll at once, each an idle
/// task, while `--concurrency` still bounds the requests in flight. More
/// than the quota allows in one poll interval would only wait longer.
const POLLING_WORKERS: usize = 1024;

/// A run whose input was read whole and found fit to send: nothing is open
/// and nothing was sent yet.
pub struct Checked {
    settings: RunSettings,
    output: PathBuf,
    plan: Plan,
}

impl Checked {
    /// Pass one over the input, and every check that can fail before a
    /// file is touched: the results path, distinct files, invalid rows.
    pub fn new(settings: RunSettings) -> anyhow::Result<Checked> {
        let output = output_path(&settings)?;
        ensure_distinct_files(&settings, &output)?;
        let plan =
            Plan::build_selecting(&settings.input, settings.selections.clone()).map_err(|e| usage(e.to_string()))?;
        if plan.invalid > 0 && !settings.skip_invalid {
            return Err(usage(format!(
                "{}\n{} of {} rows are invalid; nothing was sent. Fix them, or pass --skip-invalid to {} the rest \
                 and record these as `invalid`.",
                plan.problem_report(),
                plan.invalid,
                plan.rows,
                settings.operation.verb()
            )));
        }
        Ok(Checked { settings, output, plan })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Opens the results file: new, or an earlier run's with `--resume`. A
    /// file locked by another run keeps its own error (and exit code 4).
    pub fn open(self) -> anyhow::Result<Opened> {
        let opened = if self.settings.resume {
            ResultsFile::resume(&self.output, self.settings.operation.finals())
        } else {
            ResultsFile::create(&self.output).map(|file| (file, Finished::default()))
        };
        let (results, finished) = opened.map_err(|e| match e {
            ResultsError::Locked(_) => anyhow::Error::from(e),
            _ => usage(e.to_string()),
        })?;
        let done_before = self.plan.count_finished(&finished);
        Ok(Opened { checked: self, results, finished, done_before })
    }
}

/// A run whose results file is open (and, resumed, scanned).
pub struct Opened {
    checked: Checked,
    results: ResultsFile,
    finished: Finished,
    done_before: u64,
}

impl Opened {
    pub fn output(&self) -> &Path {
        &self.checked.output
    }

    /// The results file held only a header, and is started over.
    pub fn replaced(&self) -> bool {
        self.results.replaced()
    }

    /// Bytes of a torn last line cut off the resumed results file.
    pub fn repaired(&self) -> u64 {
        self.finished.repaired
    }

    /// Opens the log, draws the progress bar (`banner` before its line and
    /// every log line) and starts the [`Session`], warning of disks that
    /// may not hold what the run will write.
    pub fn start(self, verbosity: Verbosity, banner: &'static str) -> anyhow::Result<(Session, Ready)> {
        let settings = &self.checked.settings;
        let log_file =
            settings.log_file.as_deref().map(LogFile::open).transpose().map_err(|e| usage(format!("{e:#}")))?;
        let log = log_file.as_ref().map(LogFile::health).unwrap_or_default();
        let run_id = audit::run_id();
        let skipped = if settings.skip_invalid { self.checked.plan.invalid } else { 0 };
        let total = self.checked.plan.unique - self.done_before + skipped;
        let progress = Arc::new(Progress::new(total, verbosity.is_quiet(), banner));
        let session = Session::start(verbosity, progress.writer(), log_file, &run_id)?;
        for shortfall in disk::shortfalls(total, &self.checked.output, settings.log_file.as_deref()) {
            tracing::warn!("{shortfall}");
        }
        Ok((session, Ready { opened: self, progress, log, run_id }))
    }
}

/// A run ready to send its first request.
pub struct Ready {
    opened: Opened,
    progress: Arc<Progress>,
    /// The JSON log: a write that fails stops the run.
    log: LogHealth,
    run_id: String,
}

impl Ready {
    /// Sends every request of the run on `session`'s runtime, to `api`, and
    /// records the `run_start` and `run_end` events.
    pub fn execute(self, session: &Session, api: &ApiSettings) -> anyhow::Result<Summary> {
        let Ready { opened: Opened { checked, results, finished, done_before }, progress, log, run_id } = self;
        let Checked { settings, output, plan } = checked;
        let dispatcher = Arc::new(api.dispatcher(session, settings.concurrency)?);
        let enforcement = enforcement::check(session, &dispatcher, &plan.zone_ids(), settings.enforcement)
            // A refusal is the run's end: the bar must not stay drawn above the error.
            .inspect_err(|_| progress.finish())?;
        log_plan(&plan, &settings, api, &run_id);
        let started = Instant::now();
        let plan = Arc::new(plan);
        let log_start = |dialect| log_start(&plan, &settings, api, &output, &run_id, enforcement.as_deref(), dialect);
        let pipeline = Pipeline {
            plan: Arc::clone(&plan),
            finished: Arc::new(finished),
            dispatcher: Arc::clone(&dispatcher),
            progress: Arc::clone(&progress),
            same_failures: settings.max_same_failures,
            operation: settings.operation,
            run_id: run_id.clone(),
            log: log.clone(),
        };
        let tally = session.block_on(pipeline.execute(results, log_start))?;
        progress.finish();
        let mut summary = Summary {
            plan,
            operation: settings.operation,
            tally,
            requests: dispatcher.requests.load(Ordering::Relaxed),
            rate_limited: dispatcher.rate_limited.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
            stop: dispatcher.stop_reason(),
            resume_command: summary::resume_command(&settings, &output),
            results: output,
            log: settings.log_file,
            done_before,
            run_id,
            enforcement,
        };
        summary.log();
        // The run_end line is the log's last: if it is the write that failed,
        // the run still says so, and exits accordingly.
        if summary.stop.is_none() {
            summary.stop = log.failure().map(|why| StopReason::Output(why.to_string()));
        }
        Ok(summary)
    }
}

/// The input and every output must be files of their own: a summary written
/// over the results, or a log appended to the input (and then revoked from),
/// destroys what the run is there to keep. Checked before anything is sent.
fn ensure_distinct_files(settings: &RunSettings, output: &Path) -> anyhow::Result<()> {
    // Standard input is compared by what it is: a results file fed back
    // with `< out.csv` is still that file.
    let input = if settings.input.as_os_str() == "-" { Path::new("/dev/stdin") } else { &settings.input };
    let mut files = vec![
        (format!("the input {}", settings.input.display()), input),
        (format!("--output {}", output.display()), output),
    ];
    for (flag, path) in [
        ("--log-file", &settings.log_file),
        ("--summary-json", &settings.summary_json),
        ("--metrics-file", &settings.metrics_file),
    ] {
        if let Some(path) = path {
            files.push((format!("{flag} {}", path.display()), path.as_path()));
        }
    }
    disk::ensure_distinct(&files).map_err(usage)
}

fn output_path(settings: &RunSettings) -> anyhow::Result<PathBuf> {
    if let Some(out) = &settings.output {
        return Ok(out.clone());
    }
    let input = &settings.input;
    if input.as_os_str() == "-" {
        return Err(usage("reading standard input needs --output PATH for the results file"));
    }
    // Beside `/dev/stdin` the results would land in /dev.
    if std::fs::metadata(input).is_ok_and(|m| !m.is_file()) {
        return Err(usage(format!("{} is not a regular file: pass --output PATH for the results", input.display())));
    }
    let kind = match (settings.operation, settings.sandbox) {
        (Operation::Reactivate, _) => "reactivated",
        (Operation::Verify { .. }, _) => "verified",
        (Operation::Revoke { .. }, true) => "sandbox-results",
        (Operation::Revoke { .. }, false) => "results",
    };
    results::default_path(input, kind)
        .ok_or_else(|| usage(format!("cannot derive a results path from {}: pass --output PATH", input.display())))
}

/// The audit record of a run: who ran what, on which input, with which
/// settings, and which rate-limit headers the API answered the credentials
/// check with (`none` without that answer, or without such headers).
fn log_start(
    plan: &Plan,
    settings: &RunSettings,
    api: &ApiSettings,
    output: &Path,
    run_id: &str,
    enforcement: Option<&[ZoneCheck]>,
    dialect: Option<Dialect>,
) {
    let poll = match settings.operation {
        Operation::Verify { poll } => poll,
        _ => None,
    };
    tracing::info!(
        target: logging::AUDIT,
        event = crate::output::events::RUN_START,
        run_id,
        operation = settings.operation.verb(),
        version = env!("CARGO_PKG_VERSION"),
        operator = %audit::operator(),
        command_line = %audit::command_line(&settings.argv),
        input = %plan.display,
        input_sha256 = %plan.sha256,
        rows = plan.rows,
        unique = plan.unique,
        duplicates = plan.duplicates,
        invalid = plan.invalid,
        zones = plan.zones,
        base_url = %api.base_url,
        proxy = transport::proxy_for(&api.base_url).as_deref().unwrap_or("none"),
        ca_cert = api.ca_cert.as_ref().map_or("none", CaBundle::source),
        sandbox = settings.sandbox,
        auth = api.credentials.scheme(),
        rate = %api.pace,
        concurrency = settings.concurrency,
        max_attempts = api.retry.max_attempts,
        retry_delay_ms = api.retry.initial_delay.as_millis() as u64,
        retry_max_delay_ms = api.retry.max_delay.as_millis() as u64,
        timeout_ms = api.timeout.as_millis() as u64,
        skip_invalid = settings.skip_invalid,
        resume = settings.resume,
        verify = matches!(settings.operation, Operation::Revoke { verify: true }),
        poll_interval_ms = poll.map(|p| p.interval.as_millis() as u64),
        deadline_ms = poll.map(|p| p.deadline.as_millis() as u64),
        max_same_failures = settings.max_same_failures,
        enforcement_check = settings.enforcement.as_str(),
        enforcement = enforcement.map(|checks| tracing::field::display(crate::operations::enforcement::to_json(checks))),
        results = %output.display(),
        ratelimit_dialect = Dialect::name_of(dialect),
        "run started"
    );
}

/// What the run is about to do, in a line a person reads, and the log's
/// first write of the run proper: a log that cannot take it stops the run
/// before its first request.
fn log_plan(plan: &Plan, settings: &RunSettings, api: &ApiSettings, run_id: &str) {
    tracing::info!(
        "run {run_id}: {} {} certificates in {} zones at {}, pace {}",
        settings.operation.verb(),
        plan.unique,
        plan.zones,
        api.base_url,
        api.pace
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
    /// `log_start` records the run_start event once the credentials check
    /// has answered (or the run stopped before it), with the dialect of the
    /// answer's rate-limit headers.
    async fn execute(self, results: ResultsFile, log_start: impl FnOnce(Option<Dialect>)) -> anyhow::Result<Tally> {
        let Pipeline { plan, finished, dispatcher, progress, same_failures, operation, run_id, log } = self;
        let (row_tx, row_rx) = mpsc::channel::<ResultRow>(CHANNEL_DEPTH);
        let collector = {
            let (progress, dispatcher) = (Arc::clone(&progress), Arc::clone(&dispatcher));
            let stamp = Stamp { run_id, same_failures };
            tokio::spawn(collect(results, row_rx, progress, dispatcher, stamp))
        };
        let log_watch = tokio::spawn(stop_when_broken(log.clone(), Arc::clone(&dispatcher)));
        let ticker =
            progress.is_visible().then(|| tokio::spawn(show_pauses(Arc::clone(&dispatcher), Arc::clone(&progress))));

        let sent = session::interruptible(&dispatcher, async {
            let begun = tokio::time::Instant::now();
            // A log that could not be written stops the run before its first
            // request; one that could not take the run_start line, before its
            // first change (the credentials check only reads).
            let log_broken = || log.failure().map(|why| StopReason::Output(why.to_string()));
            let (probed, dialect) = match (log_broken(), plan.first) {
                (Some(broken), _) => (Err(broken), None),
                (None, Some(first)) => dispatcher.check_credentials(first).await,
                (None, None) => (Ok(()), None),
            };
            log_start(dialect);
            let checked = probed.and_then(|()| log_broken().map_or(Ok(()), Err));
            match checked {
                Ok(()) => {
                    let (feeder, queue) = queue::channel(CHANNEL_DEPTH);
                    let producer = {
                        let (dispatcher, row_tx, finished) =
                            (Arc::clone(&dispatcher), row_tx.clone(), Arc::clone(&finished));
                        tokio::task::spawn_blocking(move || produce(&plan, &finished, &dispatcher, feeder, &row_tx))
                    };
                    let work = move |dispatcher, row: Row| {
                        operation.perform(dispatcher, row, finished.maybe_done(row.zone, row.cert), begun)
                    };
                    let workers = if operation.polls() { POLLING_WORKERS } else { 0 };
                    Arc::clone(&dispatcher).run(queue, row_tx, workers, work).await;
                    producer.await.context("the input reader stopped unexpectedly")?;
                }
                Err(reason) => {
                    dispatcher.halt(reason);
                    drop(row_tx);
                }
            }
            anyhow::Ok(())
        });
        sent.await?;
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
