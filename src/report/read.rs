//! Streams the files a run wrote into the aggregate: the results CSV (and a
//! `verify` run's, which has the same columns), then the JSON log. One record
//! at a time, so memory is the aggregate's, whatever the files' size; the
//! results file is hashed as it is read, so its SHA-256 is of the very bytes
//! the report counts.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::operations::timestamp;
use crate::outcome::Outcome;
use crate::output::results::{Tally, HEADER};
use crate::pacing::{Pace, Rate};
use crate::report::model::{Millis, Pause, Report, RunEnd, RunStart, Source, Unfinished};
use crate::report::ReportError;

/// A line (of the results or the log) longer than this is not one cfrevoke
/// wrote, whose server text is cut at 1024 characters; refusing it keeps a
/// hostile file from growing one record without bound.
const MAX_LINE: u64 = 1024 * 1024;

use crate::output::events::{ATTEMPT, RETRY, RUN_END, RUN_START};

/// Opens a file to read without waiting on it (a FIFO nobody writes to
/// would hang the open), and only if it is a regular file: a report is made
/// from a file that can be read whole and hashed, not from a stream.
fn open(path: &Path) -> Result<File, ReportError> {
    let open_error = |source| ReportError::Open { path: path.to_path_buf(), source };
    let file = crate::output::disk::open_without_waiting(OpenOptions::new().read(true), path).map_err(open_error)?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(ReportError::NotRegular(path.to_path_buf())),
        Err(source) => Err(open_error(source)),
    }
}

/// Hashes what passes through it, and stops a line longer than [`MAX_LINE`].
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    /// Bytes since the last newline.
    line: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        self.hash.update(read);
        let mut rest = read;
        loop {
            let end = memchr::memchr(b'\n', rest);
            if self.line + end.unwrap_or(rest.len()) as u64 > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a line longer than {MAX_LINE} bytes")));
            }
            match end {
                Some(i) => {
                    self.line = 0;
                    rest = &rest[i + 1..];
                }
                None => {
                    self.line += rest.len() as u64;
                    return Ok(n);
                }
            }
        }
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn millis(text: &str) -> Option<Millis> {
    let at = timestamp::parse(text).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as Millis)
}

/// Reads a results file (of revoke, reactivate or verify: one header for
/// all), handing each row to `each` with the time its outcome was known.
fn read_rows(path: &Path, mut each: impl FnMut(Unfinished, Option<Millis>)) -> Result<Source, ReportError> {
    let file = open(path)?;
    let mut hashing = Hashing { inner: file, hash: Sha256::new(), line: 0 };
    let malformed = |line: u64, column: usize, why: String| ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        column: column as u64,
        why,
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&mut hashing);
    let mut record = csv::StringRecord::new();
    // An I/O error has no position of its own: the record it cut off started at `line`.
    let readable = |line: u64| {
        move |e: csv::Error| {
            let line = e.position().map_or(line, |p| p.line());
            malformed(line, 1, format!("not a cfrevoke results file: {e}"))
        }
    };
    if !reader.read_record(&mut record).map_err(readable(1))? || record.iter().ne(HEADER.iter().copied()) {
        let found: Vec<&str> = record.iter().collect();
        return Err(malformed(
            1,
            1,
            format!(
                "not a cfrevoke results file: expected the header {}, found {:?}",
                HEADER.join(","),
                found.join(",")
            ),
        ));
    }
    let col = |name: &str| HEADER.iter().position(|h| *h == name).expect("a results column");
    let [line, zone, cert, outcome, status, attempts, code, message, ray, finished, run] = [
        "line",
        "zone_id",
        "certificate_id",
        "outcome",
        "http_status",
        "attempts",
        "error_code",
        "error_message",
        "cf_ray",
        "finished_at",
        "run_id",
    ]
    .map(col);
    let mut rows = 0;
    loop {
        let at_line = reader.position().line();
        if !reader.read_record(&mut record).map_err(readable(at_line))? {
            break;
        }
        if record.len() != HEADER.len() {
            let column = record.len().min(HEADER.len()) + 1;
            return Err(malformed(
                at_line,
                column,
                format!("expected {} fields, found {}", HEADER.len(), record.len()),
            ));
        }
        let named = Outcome::from_name(&record[outcome]).ok_or_else(|| {
            malformed(
                at_line,
                outcome + 1,
                format!("expected an outcome such as revoked, found {:?}", &record[outcome]),
            )
        })?;
        if record[line].parse::<u64>().is_err() {
            return Err(malformed(at_line, line + 1, format!("expected a line number, found {:?}", &record[line])));
        }
        let at = match &record[finished] {
            "" => None,
            text => Some(millis(text).ok_or_else(|| {
                malformed(at_line, finished + 1, format!("expected an RFC 3339 time, found {text:?}"))
            })?),
        };
        let field = |i: usize| record[i].to_string();
        let row = Unfinished {
            line: field(line),
            zone_id: field(zone),
            certificate_id: field(cert),
            outcome: named,
            http_status: field(status),
            attempts: field(attempts),
            error_code: field(code),
            error_message: field(message),
            cf_ray: field(ray),
            finished_at: field(finished),
            run_id: field(run),
        };
        each(row, at);
        rows += 1;
    }
    drop(reader);
    // The csv reader stops at the last record; the hash covers the whole file.
    io::copy(&mut hashing, &mut io::sink()).map_err(|source| ReportError::Open { path: path.to_path_buf(), source })?;
    Ok(Source { path: path.display().to_string(), sha256: hex(&hashing.hash.finalize()), records: rows })
}

/// Reads the results file into `report`.
pub fn results(path: &Path, report: &mut Report) -> Result<(), ReportError> {
    report.results = read_rows(path, |row, at| report.add_row(row, at))?;
    Ok(())
}

/// Reads a `verify` run's results: how many certificates it confirmed.
pub fn verified(path: &Path, report: &mut Report) -> Result<(), ReportError> {
    let mut tally = Tally::default();
    report.verified = Some(read_rows(path, |row, _| tally.add(row.outcome))?);
    report.verified_tally = Some(tally);
    Ok(())
}

/// The fields of a log line the report uses; the rest are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LogLine {
    timestamp: Option<String>,
    event: Option<String>,
    message: Option<String>,
    verdict: Option<String>,
    status: Option<u16>,
    wait_ms: Option<u64>,
    rate: Option<String>,
    operation: Option<String>,
    operator: Option<String>,
    command_line: Option<String>,
    input: Option<String>,
    input_sha256: Option<String>,
    version: Option<String>,
    resume: Option<bool>,
    results: Option<String>,
    enforcement: Option<String>,
    requests: Option<u64>,
    elapsed_ms: Option<u64>,
    exit_code: Option<u64>,
}

/// One zone's verdict in `run_start`'s `enforcement`.
#[derive(Debug, Deserialize)]
struct Verdict {
    zone_id: String,
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The run id every log line starts with (`{"run_id":"...",`). Read from
/// the text because `run_start` and `run_end` carry the field a second time.
fn run_id_of(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("{\"run_id\":\"")?;
    rest.split_once('"').map(|(id, _)| id)
}

/// Reads the JSON log into `report`: the runs that wrote the results file
/// (by their rows' run id, or a `run_start` naming a results file of the
/// same name), their retries, 429s and pauses. Lines of other runs, as a log
/// shared by cron runs holds, are left out and counted.
pub fn log(path: &Path, report: &mut Report) -> Result<(), ReportError> {
    let results_name = Path::new(&report.results.path).file_name().map(|n| n.to_os_string());
    let mut reader = BufReader::new(open(path)?);
    let mut hash = Sha256::new();
    let mut text = Vec::new();
    let mut number = 0;
    loop {
        text.clear();
        let read = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut text);
        let n = read.map_err(|source| ReportError::Open { path: path.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        hash.update(&text);
        number += 1;
        let malformed = |column: usize, why: String| ReportError::Malformed {
            path: path.to_path_buf(),
            line: number,
            column: column as u64,
            why,
        };
        let whole = text.ends_with(b"\n");
        if !whole && n as u64 == MAX_LINE {
            return Err(malformed(1, format!("a line longer than {MAX_LINE} bytes: not a cfrevoke JSON log")));
        }
        let line = String::from_utf8_lossy(&text);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed: LogLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            // A run killed mid-write leaves a torn last line.
            Err(_) if !whole => continue,
            Err(e) => return Err(malformed(e.column(), format!("not a JSON log line: {e}"))),
        };
        let Some(run_id) = run_id_of(line) else { continue };
        take_event(report, run_id, parsed, results_name.as_deref());
    }
    report.log = Some(Source { path: path.display().to_string(), sha256: hex(&hash.finalize()), records: number });
    Ok(())
}

fn take_event(report: &mut Report, run_id: &str, line: LogLine, results_name: Option<&std::ffi::OsStr>) {
    let at = line.timestamp.as_deref().and_then(millis);
    let event = line.event.as_deref();
    if !report.has_run(run_id) {
        let ours = event == Some(RUN_START)
            && line.results.as_deref().and_then(|r| Path::new(r).file_name()) == results_name
            && results_name.is_some();
        if !ours {
            if event == Some(RUN_START) {
                report.foreign_runs += 1;
            }
            return;
        }
    }
    if event == Some(RUN_START) {
        for zone in
            line.enforcement.as_deref().and_then(|e| serde_json::from_str::<Vec<Verdict>>(e).ok()).into_iter().flatten()
        {
            if let Some(known) = report.zones.get_mut(&zone.zone_id) {
                known.verdict = Some(zone.verdict);
                known.reason = zone.reason;
            }
        }
    }
    let is_attempt = line.message.as_deref() == Some(ATTEMPT) && line.verdict.is_some();
    if let Some(at) = at {
        if is_attempt && line.verdict.as_deref() == Some(RETRY) {
            report.retries += 1;
            report.timeline.at(at).retries += 1;
        }
        if is_attempt && line.status == Some(429) {
            report.rate_limited += 1;
            report.timeline.at(at).rate_limited += 1;
        }
        if let Some(wait_ms) = line.wait_ms {
            report.add_pause(Pause { at, wait_ms });
        }
    }
    let Some(run) = report.run_mut(run_id) else { return };
    run.last_logged = run.last_logged.max(at);
    run.attempts_logged += u64::from(is_attempt);
    match event {
        Some(RUN_START) => {
            let rate = line.rate.unwrap_or_default();
            run.quota = rate.parse::<Pace>().ok().map(Pace::initial);
            run.start = Some(RunStart {
                at: at.unwrap_or_default(),
                operation: line.operation.unwrap_or_default(),
                operator: line.operator.unwrap_or_default(),
                command_line: line.command_line.unwrap_or_default(),
                input: line.input.unwrap_or_default(),
                input_sha256: line.input_sha256.unwrap_or_default(),
                version: line.version.unwrap_or_default(),
                resume: line.resume.unwrap_or_default(),
                rate,
            });
        }
        Some(RUN_END) => {
            run.end = Some(RunEnd {
                at: at.unwrap_or_default(),
                requests: line.requests.unwrap_or_default(),
                elapsed_ms: line.elapsed_ms.unwrap_or_default(),
                exit_code: line.exit_code,
            });
        }
        // The quota the API announced, which `--rate auto` adopts.
        None if !is_attempt && line.wait_ms.is_none() => {
            let fixed = run.start.as_ref().is_some_and(|s| s.rate.parse::<Rate>().is_ok());
            if let (false, Some(rate)) = (fixed, line.rate.and_then(|r| r.parse::<Rate>().ok())) {
                run.quota = Some(rate);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str =
        "2,00000000000000000000000000000001,00000000000000000000000000000064,failed,500,,3,,gave up,ray-1,\
                       2026-12-01T18:07:39.962Z,5,,run-a";

    fn results_file(dir: &Path, rows: &[&str]) -> std::path::PathBuf {
        let path = dir.join("r.csv");
        let mut text = format!("{}\n", HEADER.join(","));
        rows.iter().for_each(|row| text.push_str(&format!("{row}\n")));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn rows_are_counted_and_the_file_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let ok = ROW.replace(",failed,", ",revoked,");
        let path = results_file(dir.path(), &[ROW, &ok]);
        let mut report = Report::default();
        results(&path, &mut report).unwrap();
        assert_eq!((report.tally.failed, report.tally.revoked), (1, 1));
        assert_eq!(report.results.records, 2);
        assert_eq!(report.results.sha256, hex(&Sha256::digest(std::fs::read(&path).unwrap())));
        assert_eq!(report.unfinished.len(), 1);
        assert_eq!(report.unfinished[0].cf_ray, "ray-1");
        assert_eq!(report.runs[0].first_row, millis("2026-12-01T18:07:39.962Z"));
    }

    #[test]
    fn a_bad_file_is_named_with_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let (exploded, yesterday, two) = (
            ROW.replace(",failed,", ",exploded,"),
            ROW.replace("2026-12-01T18", "yesterday"),
            ROW.replacen("2,", "two,", 1),
        );
        let cases = [
            (vec![ROW, &exploded], "r.csv:3:4: expected an outcome"),
            (vec![ROW, "2,z,c"], "r.csv:3:4: expected 14 fields, found 3"),
            (vec![&yesterday], "r.csv:2:11: expected an RFC 3339 time"),
            (vec![&two], "r.csv:2:1: expected a line number"),
        ];
        for (rows, expected) in cases {
            let path = results_file(dir.path(), &rows);
            let error = results(&path, &mut Report::default()).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "zone_id,certificate_id\n").unwrap();
        let error = results(&path, &mut Report::default()).unwrap_err().to_string();
        assert!(error.contains("r.csv:1:1: not a cfrevoke results file"), "{error}");
        let endless = format!("{ROW},\"{}", "x".repeat(MAX_LINE as usize + 1));
        let path = results_file(dir.path(), &[ROW, &endless]);
        let error = results(&path, &mut Report::default()).unwrap_err().to_string();
        assert!(error.contains("r.csv:3:1:") && error.contains("a line longer than 1048576 bytes"), "{error}");
    }

    #[test]
    fn the_log_adds_runs_retries_pauses_and_verdicts_of_this_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = results_file(dir.path(), &[ROW]);
        let log = dir.path().join("run.jsonl");
        let lines = [
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:07:38.000Z","event":"run_start","run_id":"run-a","operator":"ops@host","command_line":"cfrevoke revoke in.csv","input_sha256":"abc","version":"0.1.0","rate":"auto","results":"/x/r.csv","enforcement":"[{\"zone_id\":\"00000000000000000000000000000001\",\"verdict\":\"enforced\",\"reason\":\"a rule\"}]"}"#,
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:07:38.100Z","message":"pacing at the quota the API announces","rate":"100/10s"}"#,
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:07:38.200Z","message":"attempt","status":429,"verdict":"retry"}"#,
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:07:38.201Z","message":"rate limited by the API: every worker pauses","wait_ms":999}"#,
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:07:39.300Z","message":"attempt","status":200,"verdict":"final"}"#,
            r#"{"run_id":"other","timestamp":"2026-12-01T18:07:39.300Z","event":"run_start","results":"elsewhere.csv"}"#,
            r#"{"run_id":"other","timestamp":"2026-12-01T18:07:39.300Z","message":"attempt","status":429,"verdict":"retry"}"#,
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:07:40.000Z","event":"run_end","run_id":"run-a","requests":5,"elapsed_ms":2000,"exit_code":1}"#,
            r#"{"run_id":"run-a","timestamp":"2026-12-01T18:0"#,
        ];
        std::fs::write(&log, lines.join("\n")).unwrap();
        let mut report = Report::default();
        results(&path, &mut report).unwrap();
        super::log(&log, &mut report).unwrap();
        assert_eq!((report.retries, report.rate_limited, report.foreign_runs), (1, 1, 1));
        assert_eq!(report.pauses, vec![Pause { at: millis("2026-12-01T18:07:38.201Z").unwrap(), wait_ms: 999 }]);
        let run = &report.runs[0];
        assert_eq!(run.start.as_ref().unwrap().operator, "ops@host");
        assert_eq!(run.quota, Some("100/10s".parse().unwrap()));
        assert_eq!(run.end.as_ref().unwrap().exit_code, Some(1));
        // 5 requests in 2 s, where 100 per 10 s allows 20.
        assert_eq!(report.quota_share(), Some(0.25));
        assert_eq!(report.zones["00000000000000000000000000000001"].verdict.as_deref(), Some("enforced"));

        std::fs::write(&log, "{\"run_id\":\"a\"}\nnot json\n").unwrap();
        let error = super::log(&log, &mut report).unwrap_err().to_string();
        assert!(error.contains("run.jsonl:2:") && error.contains("not a JSON log line"), "{error}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo reads nothing else.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(matches!(results(&fifo, &mut Report::default()), Err(ReportError::NotRegular(_))));
    }
}
