//! The aggregate a report is drawn from. It holds counts, tallies and a
//! bounded sample, never the rows themselves, so a results file of a million
//! rows takes no more memory than one of a thousand: every collection here
//! has a cap, and what a cap leaves out is counted so the report can say so.

use std::collections::BTreeMap;

use crate::outcome::Outcome;
use crate::output::results::Tally;
use crate::pacing::Rate;

/// Rows that did not end well, kept with their error and `cf_ray` to quote to
/// support. Past this many, the rest are counted, not kept.
pub const KEPT_ROWS: usize = 1000;
/// Zones tallied one by one; the rest share one line.
pub const KEPT_ZONES: usize = 10_000;
/// Runs described one by one.
pub const KEPT_RUNS: usize = 100;
/// Pauses drawn and listed one by one; the rest are only counted.
pub const KEPT_PAUSES: usize = 1000;
/// Time buckets before they are merged in pairs.
pub const MAX_BUCKETS: usize = 20_000;
/// The widths a time bucket takes, finest first. Each is a multiple of the
/// one before, so buckets regroup exactly into any wider one, and all fall
/// on whole minutes, hours and UTC days.
pub const BUCKET_WIDTHS_MS: [i64; 13] = [
    10_000,
    30_000,
    60_000,
    300_000,
    900_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
    2_419_200_000,
];
const FINEST_BUCKET_MS: i64 = BUCKET_WIDTHS_MS[0];

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// One results row that did not end well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub line: String,
    pub zone_id: String,
    pub certificate_id: String,
    pub outcome: Outcome,
    pub http_status: String,
    pub attempts: String,
    pub error_code: String,
    pub error_message: String,
    pub cf_ray: String,
    pub finished_at: String,
    pub run_id: String,
}

/// What happened in one stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Rows that ended well (revoked, already revoked).
    pub succeeded: u64,
    /// Rows that did not.
    pub unsuccessful: u64,
    /// Attempts the dispatcher retried.
    pub retries: u64,
    /// Answers of 429.
    pub rate_limited: u64,
}

impl Bucket {
    fn merge(&mut self, other: Bucket) {
        self.succeeded += other.succeeded;
        self.unsuccessful += other.unsuccessful;
        self.retries += other.retries;
        self.rate_limited += other.rate_limited;
    }
}

/// Activity over time, in buckets of `width_ms`; wider ones whenever there
/// would be more than [`MAX_BUCKETS`] (timestamps years apart).
#[derive(Debug, Clone)]
pub struct Timeline {
    pub width_ms: Millis,
    pub buckets: BTreeMap<Millis, Bucket>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline { width_ms: FINEST_BUCKET_MS, buckets: BTreeMap::new() }
    }
}

impl Timeline {
    /// The bucket that holds `at`.
    pub fn at(&mut self, at: Millis) -> &mut Bucket {
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&self.start_of(at)) {
            self.coarsen();
        }
        let start = self.start_of(at);
        self.buckets.entry(start).or_default()
    }

    fn start_of(&self, at: Millis) -> Millis {
        at.div_euclid(self.width_ms) * self.width_ms
    }

    fn coarsen(&mut self) {
        self.width_ms = BUCKET_WIDTHS_MS.into_iter().find(|w| *w > self.width_ms).unwrap_or(self.width_ms * 2);
        let old = std::mem::take(&mut self.buckets);
        for (start, bucket) in old {
            self.buckets.entry(self.start_of(start)).or_default().merge(bucket);
        }
    }

    /// The buckets regrouped `width_ms` wide (a multiple of the kept width).
    pub fn regrouped(&self, width_ms: Millis) -> BTreeMap<Millis, Bucket> {
        let mut out: BTreeMap<Millis, Bucket> = BTreeMap::new();
        for (start, bucket) in &self.buckets {
            out.entry(start.div_euclid(width_ms) * width_ms).or_default().merge(*bucket);
        }
        out
    }
}

/// One zone's counts, and the enforcement verdict the log recorded for it.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    pub tally: Tally,
    pub verdict: Option<String>,
    pub reason: Option<String>,
}

/// One run that wrote to the results file: a first run, or a resume.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub run_id: String,
    /// Rows of the results file this run wrote.
    pub rows: u64,
    pub first_row: Option<Millis>,
    pub last_row: Option<Millis>,
    /// From the log's `run_start`; `None` without a log.
    pub start: Option<RunStart>,
    /// From the log's `run_end`; `None` for a run that was killed.
    pub end: Option<RunEnd>,
    /// Attempts the log recorded, and when its last line was written: a
    /// killed run's requests and end, where no `run_end` says them.
    pub attempts_logged: u64,
    pub last_logged: Option<Millis>,
    /// The quota paced at: `--rate` when fixed, else the last one the API announced.
    pub quota: Option<Rate>,
}

#[derive(Debug, Clone, Default)]
pub struct RunStart {
    pub at: Millis,
    pub operation: String,
    pub operator: String,
    pub command_line: String,
    pub input: String,
    pub input_sha256: String,
    pub version: String,
    pub resume: bool,
    pub rate: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    pub at: Millis,
    pub requests: u64,
    pub elapsed_ms: u64,
    pub exit_code: Option<u64>,
}

impl Run {
    /// When the run began: its `run_start`, else its first row.
    pub fn began(&self) -> Option<Millis> {
        self.start.as_ref().map(|s| s.at).or(self.first_row)
    }

    /// When it ended: its `run_end`, else the last trace it left.
    pub fn ended(&self) -> Option<Millis> {
        let end = self.end.as_ref().map(|e| e.at);
        end.or_else(|| self.last_logged.max(self.last_row))
    }

    /// Requests sent: as `run_end` counted them, else the attempts logged.
    pub fn requests(&self) -> Option<u64> {
        match (&self.end, self.start.is_some()) {
            (Some(end), _) => Some(end.requests),
            (None, true) => Some(self.attempts_logged),
            (None, false) => None,
        }
    }

    /// How many requests the quota allowed over the run's time.
    fn allowed(&self) -> Option<f64> {
        let quota = self.quota?;
        let ms = match &self.end {
            Some(end) => end.elapsed_ms as f64,
            None => (self.ended()? - self.began()?) as f64,
        };
        Some(f64::from(quota.count) * ms / quota.per.as_millis() as f64)
    }
}

/// A wait that held back every worker, from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub at: Millis,
    pub wait_ms: u64,
}

/// What a file the report was made from is.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: String,
    pub sha256: String,
    /// Rows (results) or lines (log) read.
    pub records: u64,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub results: Source,
    pub log: Option<Source>,
    pub verified: Option<Source>,
    pub tally: Tally,
    /// Counts of the `--verified` file (a `verify` run's outcomes).
    pub verified_tally: Option<Tally>,
    pub zones: BTreeMap<String, Zone>,
    /// Rows of zones past [`KEPT_ZONES`].
    pub other_zones: Tally,
    pub timeline: Timeline,
    pub unfinished: Vec<Unfinished>,
    /// Rows that did not end well past [`KEPT_ROWS`].
    pub unfinished_left_out: u64,
    pub runs: Vec<Run>,
    /// Rows written by runs past [`KEPT_RUNS`].
    pub rows_of_other_runs: u64,
    pub pauses: Vec<Pause>,
    /// Every pause, those past [`KEPT_PAUSES`] included: how many, how long in all.
    pub pause_count: u64,
    pub paused_ms: u64,
    pub retries: u64,
    pub rate_limited: u64,
    /// Runs in the log that wrote other results files, left out.
    pub foreign_runs: u64,
}

impl Report {
    /// Takes in one results row.
    pub fn add_row(&mut self, row: Unfinished, at: Option<Millis>) {
        let outcome = row.outcome;
        self.tally.add(outcome);
        self.zone(&row.zone_id).add(outcome);
        if let Some(at) = at {
            let bucket = self.timeline.at(at);
            if outcome.is_success() {
                bucket.succeeded += 1;
            } else {
                bucket.unsuccessful += 1;
            }
        }
        match self.run_mut(&row.run_id) {
            Some(run) => {
                run.rows += 1;
                run.first_row = match (run.first_row, at) {
                    (Some(first), Some(at)) => Some(first.min(at)),
                    (first, at) => first.or(at),
                };
                run.last_row = run.last_row.max(at);
            }
            None => self.rows_of_other_runs += 1,
        }
        if outcome.is_success() {
            return;
        }
        if self.unfinished.len() < KEPT_ROWS {
            self.unfinished.push(row);
        } else {
            self.unfinished_left_out += 1;
        }
    }

    /// Takes in one pause that held back every worker.
    pub fn add_pause(&mut self, pause: Pause) {
        self.pause_count += 1;
        self.paused_ms += pause.wait_ms;
        if self.pauses.len() < KEPT_PAUSES {
            self.pauses.push(pause);
        }
    }

    fn zone(&mut self, zone_id: &str) -> &mut Tally {
        if self.zones.len() < KEPT_ZONES || self.zones.contains_key(zone_id) {
            &mut self.zones.entry(zone_id.to_string()).or_default().tally
        } else {
            &mut self.other_zones
        }
    }

    /// The run `run_id`, added if there is room for it.
    pub fn run_mut(&mut self, run_id: &str) -> Option<&mut Run> {
        match self.runs.iter().position(|r| r.run_id == run_id) {
            Some(i) => Some(&mut self.runs[i]),
            None if self.runs.len() < KEPT_RUNS => {
                self.runs.push(Run { run_id: run_id.to_string(), ..Run::default() });
                self.runs.last_mut()
            }
            None => None,
        }
    }

    pub fn has_run(&self, run_id: &str) -> bool {
        self.runs.iter().any(|r| r.run_id == run_id)
    }

    /// Runs in the order they began.
    pub fn sort_runs(&mut self) {
        self.runs.sort_by_key(|r| (r.began(), r.run_id.clone()));
    }

    /// From the first run's start to the last one's end.
    pub fn span(&self) -> Option<(Millis, Millis)> {
        let began = self.runs.iter().filter_map(Run::began).min();
        let ended = self.runs.iter().filter_map(Run::ended).max();
        let pauses = self.pauses.iter().map(|p| p.at + p.wait_ms as Millis).max();
        let first = self.timeline.buckets.keys().next().copied();
        Some((began.or(first)?, ended.max(pauses).or(began)?))
    }

    /// Time the runs themselves took, gaps between a stop and a resume left out.
    pub fn busy_ms(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| match &r.end {
                Some(end) => end.elapsed_ms,
                None => r.ended().zip(r.began()).map_or(0, |(e, b)| (e - b).max(0) as u64),
            })
            .sum()
    }

    /// Requests sent, over what the quota allowed in the same time, for the
    /// runs whose quota the log recorded.
    pub fn quota_share(&self) -> Option<f64> {
        let (sent, allowed) = self
            .runs
            .iter()
            .filter_map(|r| Some((r.requests()? as f64, r.allowed()?)))
            .fold((0.0, 0.0), |(s, a), (rs, ra)| (s + rs, a + ra));
        (allowed > 0.0).then(|| sent / allowed)
    }

    /// Requests sent by every run whose count is known.
    pub fn requests(&self) -> Option<u64> {
        self.runs.iter().filter_map(Run::requests).reduce(|a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(outcome: Outcome, zone: &str, run: &str) -> Unfinished {
        Unfinished {
            line: "2".into(),
            zone_id: zone.into(),
            certificate_id: "c".into(),
            outcome,
            http_status: "500".into(),
            attempts: "1".into(),
            error_code: String::new(),
            error_message: "boom".into(),
            cf_ray: "ray".into(),
            finished_at: String::new(),
            run_id: run.into(),
        }
    }

    #[test]
    fn only_the_rows_that_did_not_end_well_are_kept_and_only_up_to_the_cap() {
        let mut report = Report::default();
        let extra = 37;
        for i in 0..(KEPT_ROWS as u64 + extra) {
            report.add_row(row(Outcome::Revoked, "z", "r1"), Some(i as Millis * 100));
            report.add_row(row(Outcome::Failed, "z", "r1"), Some(i as Millis * 100));
        }
        assert_eq!(report.unfinished.len(), KEPT_ROWS);
        assert_eq!(report.unfinished_left_out, extra);
        assert!(report.unfinished.iter().all(|r| r.outcome == Outcome::Failed));
        assert_eq!(report.tally.revoked, KEPT_ROWS as u64 + extra);
        assert_eq!(report.tally.failed, KEPT_ROWS as u64 + extra);
        assert_eq!(report.runs.len(), 1);
        assert_eq!(report.runs[0].rows, 2 * (KEPT_ROWS as u64 + extra));
    }

    #[test]
    fn pauses_past_the_cap_are_counted_not_kept() {
        let mut report = Report::default();
        for at in 0..KEPT_PAUSES as Millis + 5 {
            report.add_pause(Pause { at, wait_ms: 2 });
        }
        assert_eq!(report.pauses.len(), KEPT_PAUSES);
        assert_eq!((report.pause_count, report.paused_ms), (KEPT_PAUSES as u64 + 5, 2 * (KEPT_PAUSES as u64 + 5)));
    }

    #[test]
    fn zones_and_runs_past_their_caps_are_counted_together() {
        let mut report = Report::default();
        for i in 0..KEPT_ZONES + 3 {
            report.add_row(row(Outcome::Revoked, &format!("z{i}"), &format!("r{}", i % (KEPT_RUNS + 2))), None);
        }
        assert_eq!(report.zones.len(), KEPT_ZONES);
        assert_eq!(report.other_zones.revoked, 3);
        assert_eq!(report.runs.len(), KEPT_RUNS);
        let kept: u64 = report.runs.iter().map(|r| r.rows).sum();
        assert_eq!(kept + report.rows_of_other_runs, KEPT_ZONES as u64 + 3);
        assert!(report.rows_of_other_runs > 0);
    }

    #[test]
    fn a_timeline_far_wider_than_its_buckets_is_merged_not_grown() {
        let mut timeline = Timeline::default();
        let hours = 24 * 365 * 3;
        for hour in 0..hours {
            timeline.at(hour * 3_600_000).succeeded += 1;
        }
        assert!(timeline.buckets.len() <= MAX_BUCKETS);
        assert!(timeline.width_ms > FINEST_BUCKET_MS);
        assert_eq!(timeline.buckets.values().map(|b| b.succeeded).sum::<u64>(), hours as u64);
        let per_day = timeline.regrouped(24 * 3_600_000);
        assert!(per_day.values().all(|b| b.succeeded == 24), "{per_day:?}");
    }

    #[test]
    fn the_share_of_the_quota_is_requests_over_what_the_time_allowed() {
        let mut report = Report::default();
        let quota = Some("10/s".parse().unwrap());
        let end = |elapsed_ms, requests| Some(RunEnd { at: 0, requests, elapsed_ms, exit_code: Some(0) });
        report.runs.push(Run { run_id: "a".into(), quota, end: end(2_000, 10), ..Run::default() });
        report.runs.push(Run { run_id: "b".into(), quota, end: end(2_000, 20), ..Run::default() });
        // 30 requests in 4 s, where the quota allowed 40.
        assert_eq!(report.quota_share(), Some(0.75));
        assert_eq!(report.requests(), Some(30));
        assert_eq!(report.busy_ms(), 4_000);
        report.runs.iter_mut().for_each(|r| r.quota = None);
        assert_eq!(report.quota_share(), None);
    }

    #[test]
    fn a_killed_run_ends_at_its_last_trace() {
        let run = Run {
            start: Some(RunStart { at: 1_000, ..RunStart::default() }),
            last_row: Some(5_000),
            last_logged: Some(6_000),
            attempts_logged: 7,
            ..Run::default()
        };
        assert_eq!((run.began(), run.ended(), run.requests()), (Some(1_000), Some(6_000), Some(7)));
    }
}
