//! The undo: `PATCH {"reactivate": true}` for a certificate a run revoked.
//! Cloudflare allows it only while the certificate is `pending_revocation`,
//! so a refusal is followed by a GET to tell "too late" from other failures.

use std::sync::Arc;

use crate::api::{codes, CertStatus};
use crate::input::reader::Row;
use crate::operations::certificate::{halt_on_401, read, result_row};
use crate::outcome::Outcome;
use crate::output::results::ResultRow;
use crate::pipeline::dispatcher::{Dispatcher, Request};

/// What a PATCH's 2xx must show: the certificate back, or on its way back.
/// Also what a refused PATCH's GET takes as "already active again".
const REACTIVATED: &[CertStatus] = &[CertStatus::Active, CertStatus::PendingReactivation];

/// Reactivates one certificate. `None` when the run stopped before the PATCH
/// was sent.
pub async fn reactivate(dispatcher: Arc<Dispatcher>, row: Row) -> Option<ResultRow> {
    let request = Request::for_row("PATCH", &row).expecting(REACTIVATED);
    let settled = dispatcher.send(&request, || dispatcher.client.reactivate(row.zone, row.cert)).await?;
    halt_on_401(&dispatcher, &settled);
    let reply = match settled.final_answer() {
        Ok(reply) => reply,
        Err(error) => return Some(result_row(&row, &settled, Outcome::Failed, error)),
    };
    let (code, message) = reply.error();
    let outcome = match (reply.status, code) {
        (200..=299, _) => return Some(result_row(&row, &settled, Outcome::Reactivated, (None, String::new()))),
        (404, _) | (_, Some(codes::CERT_NOT_FOUND)) => Outcome::NotFound,
        (401 | 403, _) => Outcome::Failed,
        _ => match current_status(&dispatcher, &row).await {
            Some(CertStatus::Revoked) => Outcome::TooLate,
            Some(status) if REACTIVATED.contains(&status) => {
                let note = "was already active again".to_string();
                return Some(result_row(&row, &settled, Outcome::Reactivated, (code, note)));
            }
            _ => Outcome::Failed,
        },
    };
    Some(result_row(&row, &settled, outcome, (code, message)))
}

/// The certificate's status now, if the API will say (and the run has not
/// stopped: the PATCH's refusal is then what the row records).
async fn current_status(dispatcher: &Dispatcher, row: &Row) -> Option<CertStatus> {
    let settled = read(dispatcher, row).await?;
    settled.final_answer().ok().and_then(|reply| reply.cert_status())
}
