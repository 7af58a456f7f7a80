//! The one place results are written: every finished row arrives here over a
//! channel, goes to the results file at once, and is counted.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::outcome::Outcome;
use crate::output::progress::Progress;
use crate::output::results::{ResultRow, ResultsError, ResultsFile, Tally};
use crate::pipeline::dispatcher::{Dispatcher, StopReason};

/// Consecutive identical failures: when every certificate fails the same way
/// (say 403 because the token lacks the permission), the problem is the
/// token or the account, and grinding through the rest only burns quota.
struct Streak {
    limit: u32,
    count: u32,
    signature: Option<(Option<u16>, Option<i64>)>,
}

impl Streak {
    /// Counts a row; returns true when the streak reaches the limit.
    fn observe(&mut self, row: &ResultRow) -> bool {
        if row.outcome != Outcome::Failed {
            self.count = 0;
            return false;
        }
        let signature = Some((row.http_status, row.error_code));
        if self.signature != signature {
            (self.signature, self.count) = (signature, 0);
        }
        self.count += 1;
        self.limit > 0 && self.count == self.limit
    }
}

/// What the collector adds to every row, and when it gives up on a run.
pub struct Stamp {
    pub run_id: String,
    /// Identical failures in a row that stop the run (0: never).
    pub same_failures: u32,
}

/// Rows taken off the channel at most at once: a burst is written with a
/// few write calls, and the batch's buffer stays small.
const BATCH: usize = 256;

/// Writes rows until every sender is gone. A write error stops the run (rows
/// not recorded are left for a resume) but the channel keeps draining so no
/// worker blocks on a full channel. So does a streak of identical failures.
///
/// A task on the runtime rather than a thread of its own: a row then reaches
/// it without waking another thread. It takes whatever rows are waiting,
/// writes them and flushes once, never waiting for more, so each row still
/// reaches the OS as soon as it is done.
pub async fn collect(
    mut file: ResultsFile,
    mut rows: mpsc::Receiver<ResultRow>,
    progress: Arc<Progress>,
    dispatcher: Arc<Dispatcher>,
    stamp: Stamp,
) -> Tally {
    let mut tally = Tally::default();
    let mut broken = false;
    let mut streak = Streak { limit: stamp.same_failures, count: 0, signature: None };
    let mut batch = Vec::with_capacity(BATCH);
    while rows.recv_many(&mut batch, BATCH).await > 0 {
        if !broken {
            if let Err(e) = write(&mut file, &mut batch, &stamp.run_id) {
                tracing::error!(error = %e, "results file write failed; stopping the run");
                dispatcher.halt(StopReason::Output(e.to_string()));
                broken = true;
            }
        }
        if !broken {
            for row in &batch {
                tally.add(row.outcome);
                progress.row_done(row.outcome);
                observe(row, &mut streak, &dispatcher);
            }
        }
        batch.clear();
    }
    if !broken {
        if let Err(e) = tokio::task::block_in_place(|| file.sync()) {
            dispatcher.halt(StopReason::Output(e.to_string()));
        }
    }
    tally
}

/// Hands a batch to the OS in one go. The fsync about once a second can take
/// a while, so the runtime is told this worker thread is blocked meanwhile.
fn write(file: &mut ResultsFile, batch: &mut [ResultRow], run_id: &str) -> Result<(), ResultsError> {
    for row in batch.iter_mut() {
        run_id.clone_into(&mut row.run_id);
        file.append(row)?;
    }
    file.flush()?;
    if file.sync_due() {
        tokio::task::block_in_place(|| file.sync())?;
    }
    Ok(())
}

/// What a written row means beyond its line in the file: the streak that
/// stops a run, and the log.
fn observe(row: &ResultRow, streak: &mut Streak, dispatcher: &Dispatcher) {
    if streak.observe(row) {
        let why = format!(
            "{} certificates in a row failed the same way (HTTP {}, code {}: {}); the rest are left for --resume",
            streak.count,
            row.http_status.map_or("-".into(), |s| s.to_string()),
            row.error_code.map_or("-".into(), |c| c.to_string()),
            row.error_message
        );
        tracing::error!("{why}");
        dispatcher.halt(StopReason::Systemic { status: row.http_status, why });
    }
    if !row.outcome.is_success() {
        tracing::warn!(
            line = row.line,
            zone_id = %row.zone_id,
            certificate_id = %row.certificate_id,
            outcome = row.outcome.as_str(),
            reason = %row.error_message,
            "certificate not revoked"
        );
    }
    tracing::debug!(
        target: "cfrevoke::row",
        line = row.line,
        zone_id = %row.zone_id,
        certificate_id = %row.certificate_id,
        outcome = row.outcome.as_str(),
        http_status = row.http_status,
        attempts = row.attempts,
        error_code = row.error_code,
        error_message = %row.error_message,
        cf_ray = %row.cf_ray,
        "row finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: Outcome, status: u16, code: i64) -> ResultRow {
        ResultRow {
            line: 1,
            zone_id: String::new(),
            certificate_id: String::new(),
            outcome,
            http_status: Some(status),
            cert_status: None,
            attempts: 1,
            error_code: Some(code),
            error_message: String::new(),
            cf_ray: String::new(),
            finished_at: String::new(),
            duration_ms: 0,
            verified_status: None,
            run_id: String::new(),
        }
    }

    #[test]
    fn only_identical_failures_in_a_row_make_a_streak() {
        let mut streak = Streak { limit: 3, count: 0, signature: None };
        let forbidden = row(Outcome::Failed, 403, 10000);
        assert!(!streak.observe(&forbidden) && !streak.observe(&forbidden));
        assert!(!streak.observe(&row(Outcome::Revoked, 200, 0)), "a success breaks the streak");
        assert!(!streak.observe(&forbidden) && !streak.observe(&row(Outcome::Failed, 400, 1002)));
        assert!(!streak.observe(&forbidden) && !streak.observe(&forbidden));
        assert!(streak.observe(&forbidden));
    }

    #[test]
    fn a_zero_limit_never_stops() {
        let mut streak = Streak { limit: 0, count: 0, signature: None };
        assert!((0..100).all(|_| !streak.observe(&row(Outcome::Failed, 403, 10000))));
    }
}
