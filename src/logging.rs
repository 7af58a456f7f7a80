//! Logging: human-readable lines on stderr filtered by `RUST_LOG`/`-v`/`-q`,
//! and, with `--log-file`, JSON lines of every event down to each attempt.
//!
//! The subscriber is returned as a `Dispatch` rather than installed globally
//! so that tests can drive several runs in one process, each with its own log.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing::Dispatch;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::progress::BarWriter;

/// Target of the run-start and run-end records, which are for the log file.
pub const AUDIT: &str = "cfrevoke::audit";

/// `-q` counts down and `-v` counts up from the default of `info`.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// More detail on stderr (-v: every attempt, -vv: everything). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less on stderr (-q: warnings and errors only, no progress bar).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
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

/// Opens the JSON log for appending, so a log shared by cron runs keeps history.
pub fn open_log_file(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new().create(true).append(true).open(path).with_context(|| {
        format!("cannot open the log file {}: check the directory exists and is writable", path.display())
    })
}

/// Writes JSON log lines with the run id as their first field, so every
/// event, from whichever task, carries it. The JSON layer hands over one
/// whole `{...}` line per write.
struct RunIdWriter {
    file: File,
    prefix: Vec<u8>,
}

impl std::io::Write for RunIdWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match buf.strip_prefix(b"{") {
            Some(rest) => {
                let mut line = Vec::with_capacity(self.prefix.len() + rest.len());
                line.extend_from_slice(&self.prefix);
                line.extend_from_slice(rest);
                self.file.write_all(&line)?;
            }
            None => self.file.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Builds the subscriber for one run.
pub fn dispatch(verbosity: Verbosity, stderr: BarWriter, log_file: Option<File>, run_id: &str) -> Dispatch {
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
    let json = log_file.map(|file| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(Mutex::new(RunIdWriter { file, prefix }))
            .with_filter(Targets::new().with_target("cfrevoke", LevelFilter::DEBUG))
    });
    Dispatch::new(tracing_subscriber::registry().with(human).with(json))
}

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
        .context("cannot start the async runtime")
}
