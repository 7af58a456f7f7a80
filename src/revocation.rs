//! The revoke operation: one DELETE per row, and what its final answer means.

use std::sync::Arc;

use crate::api::{codes, CertStatus, CertificateState};
use crate::client::Reply;
use crate::dispatcher::{Dispatcher, Request, Settled, StopReason};
use crate::input::Row;
use crate::results::{Outcome, ResultRow};

/// Revokes one certificate and, with `verify`, reads it back. `None` when the
/// run stopped before an outcome was known: the row is left for a resume.
pub async fn revoke(dispatcher: Arc<Dispatcher>, row: Row, verify: bool) -> Option<ResultRow> {
    let request = Request::for_row("DELETE", &row);
    let settled = dispatcher.send(&request, || dispatcher.client.revoke(row.zone, row.cert)).await?;
    let (outcome, error) = judge(&settled);
    halt_on_401(&dispatcher, &settled);
    let mut done = result_row(&row, &settled, outcome, error);
    if verify && outcome.is_success() {
        read_back(&dispatcher, &row, &mut done).await?;
    }
    Some(done)
}

/// A 401 means the token is dead: no point grinding through the rest.
pub fn halt_on_401(dispatcher: &Dispatcher, settled: &Settled<CertificateState>) {
    if let Some(reply) = settled.answer.as_ref().ok().filter(|r| r.status == 401) {
        dispatcher.halt(StopReason::CredentialsRefused(reply.describe()));
    }
}

/// `--verify`: a GET after the DELETE. `pending_revocation` or `revoked` is
/// what a revoked certificate shows; one still `active` is a failure.
async fn read_back(dispatcher: &Dispatcher, row: &Row, done: &mut ResultRow) -> Option<()> {
    let request = Request::for_row("GET", row);
    let settled = dispatcher.send(&request, || dispatcher.client.get(row.zone, row.cert)).await?;
    halt_on_401(dispatcher, &settled);
    match settled.answer.as_ref().ok().and_then(Reply::cert_status) {
        Some(status @ (CertStatus::PendingRevocation | CertStatus::Revoked)) => {
            done.verified_status = Some(status.as_str());
        }
        Some(status) => {
            done.verified_status = Some(status.as_str());
            done.outcome = Outcome::Failed;
            done.error_message = format!("verification: still {} after the DELETE", status.as_str());
        }
        None => {
            let why = match &settled.answer {
                Ok(reply) => reply.describe(),
                Err(e) => e.to_string(),
            };
            done.error_message = format!("verification failed: {why}");
        }
    }
    Some(())
}

/// The outcome of a DELETE's last answer, and the error to record.
fn judge(settled: &Settled<CertificateState>) -> (Outcome, (Option<i64>, String)) {
    let reply = match &settled.answer {
        Err(e) => return (Outcome::Failed, (None, format!("gave up after {} attempt(s): {e}", settled.attempts))),
        Ok(reply) => reply,
    };
    let (code, message) = reply.error();
    if settled.gave_up {
        return (
            Outcome::Failed,
            (code, format!("gave up after {} attempt(s): {}", settled.attempts, reply.describe())),
        );
    }
    match (reply.status, code) {
        (200..=299, _) => (Outcome::Revoked, (None, String::new())),
        // A retried DELETE can land on a certificate the first attempt revoked.
        (_, Some(codes::ALREADY_REVOKED)) => (Outcome::AlreadyRevoked, (None, String::new())),
        (404, _) | (_, Some(codes::CERT_NOT_FOUND)) => (Outcome::NotFound, (code, message)),
        _ => (Outcome::Failed, (code, message)),
    }
}

/// The results row for a settled request.
pub fn result_row(
    row: &Row,
    settled: &Settled<CertificateState>,
    outcome: Outcome,
    error: (Option<i64>, String),
) -> ResultRow {
    let reply = settled.answer.as_ref().ok();
    ResultRow {
        line: row.line,
        zone_id: row.zone.to_string(),
        certificate_id: row.cert.to_string(),
        outcome,
        http_status: reply.map(|r| r.status),
        cert_status: reply.and_then(Reply::cert_status).map(CertStatus::as_str),
        attempts: settled.attempts,
        error_code: error.0,
        error_message: error.1,
        cf_ray: reply.and_then(|r| r.cf_ray.clone()).unwrap_or_default(),
        finished_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        duration_ms: settled.started.elapsed().as_millis() as u64,
        verified_status: None,
        run_id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::api::Envelope;

    fn settled(
        status: u16,
        body: Result<Envelope<CertificateState>, String>,
        gave_up: bool,
    ) -> Settled<CertificateState> {
        let answer = Ok(Reply::bare(status, body));
        Settled { answer, attempts: 3, gave_up, started: Instant::now() }
    }

    fn err(code: i64) -> Result<Envelope<CertificateState>, String> {
        Ok(Envelope::error(code, "msg"))
    }

    #[test]
    fn answers_map_to_outcomes() {
        let ok = Ok(Envelope::ok(CertificateState::default()));
        assert_eq!(judge(&settled(200, ok, false)).0, Outcome::Revoked);
        assert_eq!(judge(&settled(400, err(1407), false)).0, Outcome::AlreadyRevoked);
        assert_eq!(judge(&settled(404, err(1415), false)).0, Outcome::NotFound);
        assert_eq!(judge(&settled(400, err(1415), false)).0, Outcome::NotFound);
        assert_eq!(judge(&settled(403, err(9109), false)), (Outcome::Failed, (Some(9109), "msg".into())));
        assert_eq!(judge(&settled(401, err(10000), false)).0, Outcome::Failed);
    }

    #[test]
    fn giving_up_says_how_often_it_tried() {
        let (outcome, (code, message)) = judge(&settled(503, err(1000), true));
        assert_eq!((outcome, code), (Outcome::Failed, Some(1000)));
        assert_eq!(message, "gave up after 3 attempt(s): HTTP 503 (code 1000): msg");
    }
}
