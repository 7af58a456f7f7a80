//! The undo: `PATCH {"reactivate": true}` for a certificate a run revoked.
//! Cloudflare allows it only while the certificate is `pending_revocation`,
//! so a refusal is followed by a GET to tell "too late" from other failures.

use std::sync::Arc;

use crate::api::{codes, CertStatus};
use crate::dispatcher::{Dispatcher, Request};
use crate::input::Row;
use crate::results::{Outcome, ResultRow};
use crate::revocation::{halt_on_401, result_row};

/// Reactivates one certificate. `None` when the run stopped before an
/// outcome was known.
pub async fn reactivate(dispatcher: Arc<Dispatcher>, row: Row) -> Option<ResultRow> {
    let request = Request::for_row("PATCH", &row);
    let settled = dispatcher.send(&request, || dispatcher.client.reactivate(row.zone, row.cert)).await?;
    halt_on_401(&dispatcher, &settled);
    let reply = match &settled.answer {
        Ok(reply) if !settled.gave_up => reply,
        Ok(reply) => {
            let why = format!("gave up after {} attempt(s): {}", settled.attempts, reply.describe());
            return Some(result_row(&row, &settled, Outcome::Failed, (reply.error().0, why)));
        }
        Err(e) => {
            let why = format!("gave up after {} attempt(s): {e}", settled.attempts);
            return Some(result_row(&row, &settled, Outcome::Failed, (None, why)));
        }
    };
    let (code, message) = reply.error();
    let outcome = match (reply.status, code) {
        (200..=299, _) => return Some(result_row(&row, &settled, Outcome::Reactivated, (None, String::new()))),
        (404, _) | (_, Some(codes::CERT_NOT_FOUND)) => Outcome::NotFound,
        (401 | 403, _) => Outcome::Failed,
        _ => match current_status(&dispatcher, &row).await? {
            Some(CertStatus::Revoked) => Outcome::TooLate,
            Some(CertStatus::Active | CertStatus::PendingReactivation) => {
                let note = "was already active again".to_string();
                return Some(result_row(&row, &settled, Outcome::Reactivated, (code, note)));
            }
            _ => Outcome::Failed,
        },
    };
    Some(result_row(&row, &settled, outcome, (code, message)))
}

/// The certificate's status now, if the API will say.
async fn current_status(dispatcher: &Dispatcher, row: &Row) -> Option<Option<CertStatus>> {
    let request = Request::for_row("GET", row);
    let settled = dispatcher.send(&request, || dispatcher.client.get(row.zone, row.cert)).await?;
    Some(settled.answer.ok().and_then(|r| r.cert_status()))
}
