//! The one place results are written: every finished row arrives here over a
//! channel, goes to the results file at once, and is counted.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::dispatcher::{Dispatcher, StopReason};
use crate::progress::Progress;
use crate::results::{ResultRow, ResultsFile, Tally};

/// Writes rows until every sender is gone. A write error stops the run (rows
/// not recorded are left for a resume) but the channel keeps draining so no
/// worker blocks on a full channel.
pub fn collect(
    mut file: ResultsFile,
    mut rows: mpsc::Receiver<ResultRow>,
    progress: Arc<Progress>,
    dispatcher: Arc<Dispatcher>,
) -> Tally {
    let mut tally = Tally::default();
    let mut broken = false;
    while let Some(row) = rows.blocking_recv() {
        if broken {
            continue;
        }
        if let Err(e) = file.write(&row) {
            tracing::error!(error = %e, "results file write failed; stopping the run");
            dispatcher.halt(StopReason::Output(e.to_string()));
            broken = true;
            continue;
        }
        tally.add(row.outcome);
        progress.row_done(row.outcome);
        if !row.outcome.is_success() {
            tracing::warn!(line = row.line, outcome = row.outcome.as_str(), reason = %row.error_message, "certificate not revoked");
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
    if !broken {
        if let Err(e) = file.sync() {
            dispatcher.halt(StopReason::Output(e.to_string()));
        }
    }
    tally
}
