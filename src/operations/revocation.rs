//! The revoke operation: one DELETE per row, and what its final answer means.

use std::sync::Arc;

use crate::api::{codes, CertStatus, CertificateState};
use crate::input::reader::Row;
use crate::operations::certificate::{halt_on_401, read, result_row};
use crate::outcome::Outcome;
use crate::output::results::ResultRow;
use crate::pipeline::dispatcher::{Dispatcher, Request, Settled};

/// What a DELETE's 2xx must show: the certificate on its way out. Also what
/// `--verify` accepts when it reads the certificate back.
const REVOKED: &[CertStatus] = &[CertStatus::PendingRevocation, CertStatus::Revoked];

/// Said on a row whose "already revoked" answer is taken as this run's own
/// revocation.
const LOST_REPLY: &str = "an earlier attempt may have revoked it without a readable answer, so the API's \
                              \"already revoked\" is taken as this run's revocation";

/// Revokes one certificate and, with `verify`, reads it back. `None` when the
/// run stopped before the DELETE was sent: the row is left for a resume.
/// `tried_before`: an earlier run recorded this pair `failed` after an answer
/// that may hide a revocation (see [`crate::api::maybe_carried_out`]).
pub async fn revoke(dispatcher: Arc<Dispatcher>, row: Row, verify: bool, tried_before: bool) -> Option<ResultRow> {
    let request = Request::for_row("DELETE", &row).expecting(REVOKED);
    let settled = dispatcher.send(&request, || dispatcher.client.revoke(row.zone, row.cert)).await?;
    let (outcome, error) = judge(&settled, tried_before);
    halt_on_401(&dispatcher, &settled);
    let mut done = result_row(&row, &settled, outcome, error);
    if verify && outcome.is_success() {
        read_back(&dispatcher, &row, &mut done).await;
    }
    Some(done)
}

/// `--verify`: a GET after the DELETE. `pending_revocation` or `revoked` is
/// what a revoked certificate shows; one still `active` is a failure. A run
/// that stops first leaves the row as the DELETE's answer made it, without a
/// verified status: the DELETE was sent, so the row is recorded.
async fn read_back(dispatcher: &Dispatcher, row: &Row, done: &mut ResultRow) {
    let Some(settled) = read(dispatcher, row).await else {
        done.error_message = "verification not done: the run stopped".into();
        return;
    };
    halt_on_401(dispatcher, &settled);
    match settled.final_answer().map(|reply| (reply, reply.cert_status())) {
        Ok((_, Some(status))) if REVOKED.contains(&status) => done.verified_status = Some(status.as_str()),
        Ok((_, Some(status))) => {
            done.verified_status = Some(status.as_str());
            done.outcome = Outcome::Failed;
            done.error_message = format!("verification: still {} after the DELETE", status.as_str());
        }
        Ok((reply, None)) => done.error_message = format!("verification failed: {}", reply.describe()),
        Err((_, why)) => done.error_message = format!("verification failed: {why}"),
    }
}

/// The outcome of a DELETE's last answer, and the error to record.
fn judge(settled: &Settled<CertificateState>, tried_before: bool) -> (Outcome, (Option<i64>, String)) {
    let reply = match settled.final_answer() {
        Ok(reply) => reply,
        Err(error) => return (Outcome::Failed, error),
    };
    let (code, message) = reply.error();
    match (reply.status, code) {
        (200..=299, _) => (Outcome::Revoked, (None, String::new())),
        // A retried DELETE can land on a certificate the first attempt
        // revoked: then it is this run's revocation, and `reactivate` must
        // find it among the `revoked` rows.
        (_, Some(codes::ALREADY_REVOKED)) if settled.lost_reply || tried_before => {
            (Outcome::Revoked, (code, LOST_REPLY.to_string()))
        }
        (_, Some(codes::ALREADY_REVOKED)) => (Outcome::AlreadyRevoked, (None, String::new())),
        (404, _) | (_, Some(codes::CERT_NOT_FOUND)) => (Outcome::NotFound, (code, message)),
        _ => (Outcome::Failed, (code, message)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::api::Envelope;
    use crate::client::ApiReply;

    fn settled(
        status: u16,
        body: Result<Envelope<CertificateState>, String>,
        gave_up: bool,
    ) -> Settled<CertificateState> {
        let answer = Ok(ApiReply::bare(status, body));
        Settled {
            answer,
            mismatch: None,
            attempts: 3,
            gave_up,
            interrupted: false,
            lost_reply: false,
            started: Instant::now(),
        }
    }

    fn err(code: i64) -> Result<Envelope<CertificateState>, String> {
        Ok(Envelope::error(code, "msg"))
    }

    #[test]
    fn answers_map_to_outcomes() {
        let ok = Ok(Envelope::ok(CertificateState::default()));
        assert_eq!(judge(&settled(200, ok, false), false).0, Outcome::Revoked);
        assert_eq!(judge(&settled(400, err(1407), false), false).0, Outcome::AlreadyRevoked);
        assert_eq!(judge(&settled(404, err(1415), false), false).0, Outcome::NotFound);
        assert_eq!(judge(&settled(400, err(1415), false), false).0, Outcome::NotFound);
        assert_eq!(judge(&settled(403, err(9109), false), false), (Outcome::Failed, (Some(9109), "msg".into())));
        assert_eq!(judge(&settled(401, err(10000), false), false).0, Outcome::Failed);
    }

    #[test]
    fn already_revoked_after_a_lost_reply_is_this_runs_revocation() {
        let mut lost = settled(400, err(1407), false);
        lost.lost_reply = true;
        assert_eq!(judge(&lost, false), (Outcome::Revoked, (Some(1407), LOST_REPLY.into())));
        let resumed = settled(400, err(1407), false);
        assert_eq!(judge(&resumed, true).0, Outcome::Revoked, "an earlier run's attempt may have done it");
    }

    #[test]
    fn giving_up_says_how_often_it_tried() {
        let (outcome, (code, message)) = judge(&settled(503, err(1000), true), false);
        assert_eq!((outcome, code), (Outcome::Failed, Some(1000)));
        assert_eq!(message, "gave up after 3 attempt(s): HTTP 503 (code 1000): msg");
    }

    #[test]
    fn a_2xx_that_did_not_answer_is_a_failure() {
        let active = Ok(Envelope::ok(CertificateState { id: None, status: Some(CertStatus::Active) }));
        let mut given_up = settled(200, active, true);
        given_up.mismatch = Some("the answer says the certificate is active".into());
        let (outcome, (_, message)) = judge(&given_up, false);
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(message, "gave up after 3 attempt(s): HTTP 200: the answer says the certificate is active");
    }
}
