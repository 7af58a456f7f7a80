//! Logging: human-readable lines on stderr filtered by `RUST_LOG`/`-v`/`-q`,
//! and, with `--log-file`, JSON lines of every event down to each attempt.
//!
//! The subscriber is returned as a `Dispatch` rather than installed globally
//! so that tests can drive several runs in one process, each with its own log.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::Dispatch;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::output::progress::BarWriter;

/// Target of the run-start and run-end records, which are for the log file.
pub const AUDIT: &str = "cfrevoke::audit";

/// How much goes to stderr: `-q` counts down and `-v` counts up from the
/// default of `info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbosity {
    pub verbose: u8,
    pub quiet: u8,
}

impl Verbosity {
    /// Off a terminal (cron, CI) the default is warnings only: the summary
    /// on stdout and the log file say the rest.
    fn level(&self) -> LevelFilter {
        match (self.verbose, self.quiet) {
            (0, 0) if !std::io::stderr().is_terminal() => LevelFilter::WARN,
            (0, 0) => LevelFilter::INFO,
            (1, _) => LevelFilter::DEBUG,
            (v, _) if v > 1 => LevelFilter::TRACE,
            (_, 1) => LevelFilter::WARN,
            _ => LevelFilter::ERROR,
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet > 0
    }
}

/// The JSON log of a run, opened for appending so a log shared by cron runs
/// keeps history.
pub struct LogFile {
    file: File,
    path: PathBuf,
    health: LogHealth,
}

impl LogFile {
    /// Opens without waiting, so a FIFO nobody reads cannot hang the run
    /// before it starts.
    pub fn open(path: &Path) -> anyhow::Result<LogFile> {
        let file = crate::output::disk::open_without_waiting(OpenOptions::new().create(true).append(true), path)
            .with_context(|| {
                format!("cannot open the log file {}: check the directory exists and is writable", path.display())
            })?;
        Ok(LogFile { file, path: path.to_path_buf(), health: LogHealth::default() })
    }

    /// What the run watches to stop when the log cannot be written.
    pub fn health(&self) -> LogHealth {
        self.health.clone()
    }
}

/// Whether every log line so far reached the file. The log is the audit
/// record, so a write that fails (disk full) stops the run as a failed
/// results write does; tracing itself would only drop the line.
#[derive(Debug, Clone, Default)]
pub struct LogHealth(Arc<Health>);

#[derive(Debug, Default)]
struct Health {
    failure: OnceLock<String>,
    broken: CancellationToken,
}

impl LogHealth {
    /// Why the log could not be written, once it could not.
    pub fn failure(&self) -> Option<&str> {
        self.0.failure.get().map(String::as_str)
    }

    /// Waits until a write fails; returns why.
    pub async fn broken(&self) -> &str {
        self.0.broken.cancelled().await;
        self.failure().unwrap_or_default()
    }

    fn fail(&self, why: String) {
        let _ = self.0.failure.set(why);
        self.0.broken.cancel();
    }
}

/// Writes JSON log lines with the run id as their first field, so every
/// event, from whichever task, carries it. The JSON layer hands over one
/// whole `{...}` line per write. After a failed write nothing more is
/// written: the lines that follow would be glued to a torn one.
struct RunIdWriter {
    log: LogFile,
    prefix: Vec<u8>,
}

impl RunIdWriter {
    fn write_line(&mut self, buf: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match buf.strip_prefix(b"{") {
            Some(rest) => {
                let mut line = Vec::with_capacity(self.prefix.len() + rest.len());
                line.extend_from_slice(&self.prefix);
                line.extend_from_slice(rest);
                self.log.file.write_all(&line)
            }
            None => self.log.file.write_all(buf),
        }
    }
}

impl std::io::Write for RunIdWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.log.health.failure().is_none() {
            if let Err(e) = self.write_line(buf) {
                // Reported by the run, not here: logging from inside the
                // log's writer would wait on this very writer's lock.
                self.log.health.fail(format!("cannot write the log file {}: {e}", self.log.path.display()));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.log.file.flush()
    }
}

/// Builds the subscriber for one run.
pub fn dispatch(verbosity: Verbosity, stderr: BarWriter, log_file: Option<LogFile>, run_id: &str) -> Dispatch {
    let stderr_filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        // Other crates (hyper, reqwest) only speak up with a warning, and the
        // long run-start/run-end records stay in the log file unless -v.
        _ => {
            let level = verbosity.level();
            let audit = if level > LevelFilter::INFO { level } else { level.min(LevelFilter::WARN) };
            EnvFilter::new(format!("warn,cfrevoke={level},{AUDIT}={audit}"))
        }
    };
    let human = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_writer(move || stderr.clone())
        .with_filter(stderr_filter);
    let prefix = format!("{{\"run_id\":{},", serde_json::Value::from(run_id)).into_bytes();
    let json = log_file.map(|log| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(Mutex::new(RunIdWriter { log, prefix }))
            .with_filter(Targets::new().with_target("cfrevoke", LevelFilter::DEBUG))
    });
    Dispatch::new(tracing_subscriber::registry().with(human).with(json))
}

/// Said when tokio cannot start (out of threads or memory): nothing was sent.
pub const NO_RUNTIME: &str = "cannot start the async runtime";

/// A multi-threaded runtime whose threads all log to `dispatch`.
pub fn runtime(dispatch: &Dispatch) -> anyhow::Result<tokio::runtime::Runtime> {
    let for_threads = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // Runtime threads live exactly as long as the run, so the guard is
            // meant to last for the thread's whole life.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .context(NO_RUNTIME)
}
