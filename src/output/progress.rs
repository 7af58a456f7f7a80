//! The progress bar: only on a terminal, redrawn at most a few times a second,
//! so a long paced run costs next to nothing and a cron log gets no control
//! characters.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::outcome::Outcome;

pub struct Progress {
    bar: ProgressBar,
    failures: AtomicU64,
    prefix: &'static str,
}

impl Progress {
    /// A bar for `total` rows, drawn only if stderr is a terminal and `quiet` is off.
    /// `prefix` starts the bar's line and every log line (the sandbox marker).
    pub fn new(total: u64, quiet: bool, prefix: &'static str) -> Self {
        let bar = if quiet || !io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix}{elapsed_precise} [{wide_bar}] {pos}/{len} {rate} ETA {eta} {msg}",
                )
                .expect("template is valid")
                .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}/s", state.per_sec());
                })
                .progress_chars("=> "),
            );
            bar.set_prefix(prefix);
            bar
        };
        Progress { bar, failures: AtomicU64::new(0), prefix }
    }

    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    pub fn row_done(&self, outcome: Outcome) {
        if !outcome.is_success() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.bar.inc(1);
        self.refresh(None);
    }

    /// Shows the failures so far and, during a rate-limit pause, its time left.
    pub fn refresh(&self, paused_for: Option<Duration>) {
        let failures = self.failures.load(Ordering::Relaxed);
        let mut msg = if failures > 0 { format!("failures: {failures}") } else { String::new() };
        if let Some(left) = paused_for {
            let secs = Duration::from_secs(left.as_secs() + 1);
            msg.push_str(&format!(" paused by rate limit: {} left", humantime::format_duration(secs)));
        }
        self.bar.set_message(msg);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// A writer for log lines that lifts the bar out of the way first.
    pub fn writer(&self) -> BarWriter {
        BarWriter { bar: self.bar.clone(), prefix: self.prefix }
    }
}

/// Writes to stderr around the progress bar so the two never interleave.
/// The log layer hands over one whole line per write.
#[derive(Clone)]
pub struct BarWriter {
    bar: ProgressBar,
    prefix: &'static str,
}

impl Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bar.suspend(|| {
            let mut stderr = io::stderr().lock();
            stderr.write_all(self.prefix.as_bytes())?;
            stderr.write_all(buf)
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
