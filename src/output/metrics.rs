//! The run's outcome for Prometheus, in the text exposition format, as
//! node_exporter's textfile collector reads it: cron starts the run, the
//! collector scrapes the file, and alerts fire on what it says.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::exit::ExitCode;
use crate::output::summary::Summary;

/// The one metric carried from one file to the next: the file is replaced
/// each run, and an alert on "no success for a day" needs the last one.
const LAST_SUCCESS: &str = "cfrevoke_last_success_timestamp_seconds";

/// More than any file this module writes; a larger one at the path is not
/// read further, so a wrong path cannot make the run's end read a disk.
const PREVIOUS_LIMIT: u64 = 64 * 1024;

/// Writes the metrics of `summary` to `path`, through a temporary file in
/// the same directory renamed over it, so that a scrape sees the old file
/// or the new one, never half of one. `now` is the run's end.
pub fn write(summary: &Summary, path: &Path, now: SystemTime) -> anyhow::Result<()> {
    let previous = last_success(path);
    let text = render(summary, now, previous);
    replace(path, text.as_bytes()).with_context(|| format!("cannot write the metrics to {}", path.display()))
}

/// The text for `summary`, ended at `now`; `previous` is the last success
/// an earlier file recorded, kept when this run did not succeed.
fn render(summary: &Summary, now: SystemTime, previous: Option<f64>) -> String {
    let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let operation = summary.operation.verb();
    let exit = summary.exit_code();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{operation=\"{operation}\"{labels}}} {value}");
        }
    };
    let one = |value: String| [(String::new(), value)];
    let counts: Vec<(String, String)> = summary
        .operation
        .outcomes()
        .iter()
        .map(|&o| (format!(",outcome=\"{}\"", o.as_str()), summary.tally.get(o).to_string()))
        .collect();
    family("cfrevoke_certificates", "gauge", "Certificates by the outcome the last run recorded.", &counts);
    family(
        "cfrevoke_not_attempted",
        "gauge",
        "Unique certificates the last run left for a resume without an answer.",
        &one(summary.not_attempted().to_string()),
    );
    family(
        "cfrevoke_requests_total",
        "counter",
        "Requests the last run sent, retries included.",
        &one(summary.requests.to_string()),
    );
    family(
        "cfrevoke_rate_limited_total",
        "counter",
        "Answers of 429 the last run got.",
        &one(summary.rate_limited.to_string()),
    );
    family(
        "cfrevoke_last_run_exit_code",
        "gauge",
        "Exit code of the last run (0 is success).",
        &one(exit.code().to_string()),
    );
    family(
        "cfrevoke_last_run_timestamp_seconds",
        "gauge",
        "When the last run ended, in Unix seconds.",
        &one(seconds(now).to_string()),
    );
    family(
        "cfrevoke_last_run_duration_seconds",
        "gauge",
        "How long the last run took.",
        &one(summary.elapsed.as_secs_f64().to_string()),
    );
    // Never is 0: an alert on an old success fires for a job that never had one.
    let success = if exit == ExitCode::Success { seconds(now) } else { previous.unwrap_or(0.0) };
    family(LAST_SUCCESS, "gauge", "When a run last exited 0, in Unix seconds; 0 if never.", &one(success.to_string()));
    out
}

/// The last success an earlier file at `path` recorded, if it is a regular
/// file that says one; anything else (none yet, a FIFO, garbage) is none.
fn last_success(path: &Path) -> Option<f64> {
    // Not waiting on the open: a FIFO at the path must not hang the run's end.
    let file = crate::output::disk::open_without_waiting(std::fs::OpenOptions::new().read(true), path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))?;
    let mut text = String::new();
    file.take(PREVIOUS_LIMIT).read_to_string(&mut text).ok()?;
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let name = series.split('{').next()?;
        (name == LAST_SUCCESS).then(|| value.parse::<f64>().ok()).flatten().filter(|v| v.is_finite())
    })
}

/// Puts `contents` at `path` at once: written and synced to a temporary
/// file beside it (the same file system, so the rename is atomic), then
/// renamed over it. A failure leaves the old file and no temporary one.
fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Not `.prom`: the collector reads only those, and must not read this.
    let mut temp = tempfile::Builder::new().prefix(".cfrevoke-metrics.").suffix(".tmp").tempfile_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    // The rename itself survives a crash only once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_success_is_read_from_its_own_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        std::fs::write(
            &path,
            "# HELP cfrevoke_last_success_timestamp_seconds 7\n\
             cfrevoke_last_success_timestamp_seconds_x{operation=\"revoke\"} 5\n\
             cfrevoke_last_success_timestamp_seconds{operation=\"revoke\"} 1700000000.5\n",
        )
        .unwrap();
        assert_eq!(last_success(&path), Some(1_700_000_000.5));
        std::fs::write(&path, "cfrevoke_last_success_timestamp_seconds NaN\n").unwrap();
        assert_eq!(last_success(&path), None);
        assert_eq!(last_success(&dir.path().join("none.prom")), None);
        assert_eq!(last_success(dir.path()), None);
    }
}
