//! The report's content as plain text: the headline, then tables. HTML and
//! Markdown lay out this one value, each escaping for itself, so both carry
//! the same counts, rows, cf-rays and evidence.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::outcome::Outcome;
use crate::output::results::Tally;
use crate::report::model::{Bucket, Millis, Report, Run, BUCKET_WIDTHS_MS, KEPT_PAUSES, KEPT_ROWS};

/// The timeline shows the finest buckets that keep it to this many bars.
pub const MAX_BARS: i64 = 120;

/// The outcomes a revoke run records, in the order the summary gives them;
/// any other outcome shows only when a row has it.
const REVOKE_OUTCOMES: [Outcome; 5] =
    [Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound, Outcome::Failed, Outcome::Invalid];

#[derive(Debug, Clone)]
pub struct Table {
    /// The anchor of the section.
    pub id: &'static str,
    pub title: &'static str,
    /// A sentence before the table.
    pub intro: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One figure of the headline.
#[derive(Debug, Clone)]
pub struct Figure {
    pub label: String,
    pub value: String,
    /// Whether it needs someone's attention (failures, unconfirmed).
    pub alarm: bool,
}

#[derive(Debug, Clone)]
pub struct View {
    pub title: String,
    pub subtitle: String,
    pub headline: Vec<Figure>,
    /// The timeline's buckets, `bucket_ms` wide, from `span.0` to `span.1`.
    pub bucket_ms: Millis,
    pub buckets: Vec<(Millis, Bucket)>,
    pub span: Option<(Millis, Millis)>,
    pub tables: Vec<Table>,
}

/// RFC 3339 UTC, to the second.
pub fn time(at: Millis) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(at.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A length, to the second (to the millisecond under one).
pub fn length(ms: u64) -> String {
    let rounded = if ms < 1000 { Duration::from_millis(ms) } else { Duration::from_secs((ms + 500) / 1000) };
    humantime::format_duration(rounded).to_string()
}

fn count(n: u64) -> String {
    n.to_string()
}

/// The outcomes shown: a revoke run's, and any other that occurs.
fn outcomes(tally: &Tally) -> Vec<Outcome> {
    let mut shown = REVOKE_OUTCOMES.to_vec();
    shown.extend(Outcome::ALL.into_iter().filter(|o| !REVOKE_OUTCOMES.contains(o) && tally.get(*o) > 0));
    shown
}

fn label(outcome: Outcome) -> String {
    outcome.as_str().replace('_', " ")
}

impl View {
    pub fn of(report: &Report) -> View {
        let span = report.span();
        let kept = report.timeline.width_ms;
        let bucket_ms = span.map_or(kept, |(from, to)| {
            let fits = |w: &i64| *w >= kept && (to - from) / *w < MAX_BARS;
            BUCKET_WIDTHS_MS.into_iter().find(fits).unwrap_or(kept.max(BUCKET_WIDTHS_MS[BUCKET_WIDTHS_MS.len() - 1]))
        });
        let buckets = report.timeline.regrouped(bucket_ms).into_iter().collect();
        let name = std::path::Path::new(&report.results.path)
            .file_name()
            .map_or(report.results.path.clone(), |n| n.to_string_lossy().into_owned());
        let made = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis);
        View {
            title: format!("Revocation report: {name}"),
            subtitle: format!(
                "Made by cfrevoke {} at {} from {} row(s) of {}.",
                env!("CARGO_PKG_VERSION"),
                time(made),
                report.results.records,
                report.results.path
            ),
            headline: headline(report),
            bucket_ms,
            buckets,
            span,
            tables: vec![
                runs(report),
                timeline(report, bucket_ms),
                zones(report),
                unfinished(report),
                evidence(report),
            ],
        }
    }
}

/// How wide a timeline bucket is, in words.
pub fn bucket_name(ms: Millis) -> String {
    match ms {
        60_000 => "minute".to_string(),
        ms => length(ms as u64),
    }
}

fn headline(report: &Report) -> Vec<Figure> {
    let tally = &report.tally;
    let mut figures: Vec<Figure> = outcomes(tally)
        .into_iter()
        .map(|o| Figure { label: label(o), value: count(tally.get(o)), alarm: !o.is_success() && tally.get(o) > 0 })
        .collect();
    figures.push(match &report.verified_tally {
        Some(verified) => Figure {
            label: format!("confirmed revoked, of {} read back", verified.total()),
            value: count(verified.revoked),
            alarm: verified.revoked < verified.total(),
        },
        None => {
            Figure { label: "confirmed revoked (no --verified file)".into(), value: "not read".into(), alarm: false }
        }
    });
    let runs = report.runs.len();
    figures.push(match report.span() {
        Some((from, to)) => Figure {
            label: format!(
                "took, in {runs} run(s); {} from first start to last end",
                length((to - from).max(0) as u64)
            ),
            value: length(report.busy_ms()),
            alarm: false,
        },
        None => Figure { label: "took".into(), value: "not known".into(), alarm: false },
    });
    figures.push(match (report.quota_share(), &report.log) {
        (Some(share), _) => {
            Figure { label: "of the quota used".into(), value: format!("{:.0}%", share * 100.0), alarm: false }
        }
        (None, Some(_)) => Figure {
            label: "of the quota used (the log records no quota)".into(),
            value: "not known".into(),
            alarm: false,
        },
        (None, None) => {
            Figure { label: "of the quota used (no --log)".into(), value: "not known".into(), alarm: false }
        }
    });
    if report.log.is_some() {
        let requests = report.requests().map_or("not known".into(), count);
        figures.extend([
            Figure { label: "requests".into(), value: requests, alarm: false },
            Figure { label: "retries".into(), value: count(report.retries), alarm: false },
            Figure { label: "answers of 429".into(), value: count(report.rate_limited), alarm: false },
            Figure {
                label: format!("rate-limit pauses, {} in all", length(report.paused_ms)),
                value: count(report.pause_count),
                alarm: false,
            },
        ]);
    }
    figures
}

/// What a run was to the incident: its first run, a resume, or a later run
/// started afresh on the same results file.
pub fn run_kind(i: usize, run: &Run) -> &'static str {
    match (i, run.start.as_ref().map(|s| s.resume)) {
        (_, Some(true)) => "resume",
        (0, _) => "first run",
        _ => "later run",
    }
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "not logged".into())
}

fn runs(report: &Report) -> Table {
    let rows = report
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let took = run.ended().zip(run.began()).map(|(e, b)| length((e - b).max(0) as u64));
            vec![
                format!("{}", i + 1),
                run.run_id.clone(),
                run_kind(i, run).into(),
                opt(run.began().map(time)),
                match (&run.end, run.ended()) {
                    (Some(_), Some(at)) => time(at),
                    (None, Some(at)) => format!("{} (no run_end: stopped without one)", time(at)),
                    _ => "not logged".into(),
                },
                opt(took),
                count(run.rows),
                opt(run.requests().map(count)),
                opt(run.end.as_ref().and_then(|e| e.exit_code).map(|c| c.to_string())),
            ]
        })
        .collect();
    let mut intro = "Each run that wrote to the results file; a resumed run appends to the same file, so one \
                     incident can take several runs."
        .to_string();
    if report.rows_of_other_runs > 0 {
        intro.push_str(&format!(" {} row(s) of further runs are counted but not listed.", report.rows_of_other_runs));
    }
    Table {
        id: "runs",
        title: "Runs",
        intro,
        headers: ["#", "run id", "kind", "started", "ended", "took", "rows", "requests", "exit code"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

fn timeline(report: &Report, bucket_ms: Millis) -> Table {
    let mut rows: Vec<Vec<String>> = report
        .timeline
        .regrouped(bucket_ms)
        .into_iter()
        .map(|(start, b)| {
            vec![
                time(start),
                count(b.succeeded),
                count(b.unsuccessful),
                count(b.retries),
                count(b.rate_limited),
                String::new(),
            ]
        })
        .collect();
    for pause in &report.pauses {
        rows.push(vec![
            time(pause.at),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            format!("every worker paused for {}", length(pause.wait_ms)),
        ]);
    }
    rows.sort();
    let mut intro = format!(
        "Per {} (UTC): rows that ended well and not, retries, answers of 429, and pauses.",
        bucket_name(bucket_ms)
    );
    let left_out = report.pause_count - report.pauses.len() as u64;
    if left_out > 0 {
        intro.push_str(&format!(" The first {KEPT_PAUSES} pauses are listed; {left_out} more are counted above."));
    }
    Table {
        id: "timeline-table",
        title: "Timeline",
        intro,
        headers: ["from", "ended well", "did not", "retries", "429s", "pause"].map(String::from).to_vec(),
        rows,
    }
}

fn zones(report: &Report) -> Table {
    let tally_all = &report.tally;
    let shown = outcomes(tally_all);
    let mut headers = vec!["zone".to_string()];
    headers.extend(shown.iter().map(|o| label(*o)));
    headers.push("enforcement".into());
    let cells = |tally: &Tally| shown.iter().map(|o| count(tally.get(*o))).collect::<Vec<_>>();
    let mut rows: Vec<Vec<String>> = report
        .zones
        .iter()
        .map(|(zone, facts)| {
            let mut row = vec![if zone.is_empty() { "(no zone: invalid rows)".to_string() } else { zone.clone() }];
            row.extend(cells(&facts.tally));
            row.push(match (&facts.verdict, &facts.reason) {
                (Some(verdict), Some(reason)) => format!("{verdict}: {reason}"),
                (Some(verdict), None) => verdict.clone(),
                (None, _) => "not logged".into(),
            });
            row
        })
        .collect();
    if report.other_zones.total() > 0 {
        let mut row = vec!["(other zones)".to_string()];
        row.extend(cells(&report.other_zones));
        row.push(String::new());
        rows.push(row);
    }
    Table {
        id: "zones",
        title: "Zones",
        intro: "Counts per zone, and whether a custom rule blocks revoked certificates there, as the log's \
                run_start recorded it."
            .into(),
        headers,
        rows,
    }
}

fn unfinished(report: &Report) -> Table {
    let rows = report
        .unfinished
        .iter()
        .map(|r| {
            vec![
                r.line.clone(),
                r.zone_id.clone(),
                r.certificate_id.clone(),
                r.outcome.as_str().to_string(),
                r.http_status.clone(),
                r.attempts.clone(),
                r.error_code.clone(),
                r.error_message.clone(),
                r.cf_ray.clone(),
                r.finished_at.clone(),
                r.run_id.clone(),
            ]
        })
        .collect();
    let all = report.unfinished.len() as u64 + report.unfinished_left_out;
    let intro = match report.unfinished_left_out {
        0 if all == 0 => "Every row ended well.".to_string(),
        0 => format!("All {all} row(s) that did not end well, with the error and the cf-ray to quote to support."),
        left => format!(
            "The first {KEPT_ROWS} of {all} row(s) that did not end well; {left} more are left out here (the results \
             file has them all)."
        ),
    };
    Table {
        id: "unfinished",
        title: "Rows that did not end well",
        intro,
        headers: [
            "line",
            "zone",
            "certificate",
            "outcome",
            "HTTP",
            "attempts",
            "error code",
            "error",
            "cf_ray",
            "finished",
            "run",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

fn evidence(report: &Report) -> Table {
    let mut rows = vec![
        vec!["results file".into(), report.results.path.clone()],
        vec!["results SHA-256".into(), report.results.sha256.clone()],
        vec!["results rows".into(), count(report.results.records)],
    ];
    for (what, source) in [("log", &report.log), ("verify results", &report.verified)] {
        if let Some(source) = source {
            rows.push(vec![format!("{what} file"), source.path.clone()]);
            rows.push(vec![format!("{what} SHA-256"), source.sha256.clone()]);
        }
    }
    if report.foreign_runs > 0 {
        rows.push(vec![
            "other runs in the log".into(),
            format!("{} run(s) wrote other results files and are left out", report.foreign_runs),
        ]);
    }
    for (i, run) in report.runs.iter().enumerate() {
        let n = i + 1;
        rows.push(vec![format!("run {n}: run id"), run.run_id.clone()]);
        let Some(start) = &run.start else {
            rows.push(vec![format!("run {n}: run_start"), "not in the log".into()]);
            continue;
        };
        for (name, value) in [
            ("operation", &start.operation),
            ("operator", &start.operator),
            ("command line", &start.command_line),
            ("input", &start.input),
            ("input SHA-256", &start.input_sha256),
            ("version", &start.version),
            ("rate", &start.rate),
        ] {
            rows.push(vec![format!("run {n}: {name}"), value.clone()]);
        }
        rows.push(vec![format!("run {n}: started"), time(start.at)]);
        rows.push(vec![format!("run {n}: ended"), opt(run.end.as_ref().map(|e| time(e.at)))]);
    }
    Table {
        id: "evidence",
        title: "Evidence",
        intro: "What the report was made from: command lines as the log recorded them (secrets are never logged)."
            .into(),
        headers: vec!["item".into(), "value".into()],
        rows,
    }
}
