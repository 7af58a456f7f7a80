//! What every operation does with one certificate: read it (the GET that
//! `verify`, `revoke --verify` and `reactivate` share), stop the run on a
//! dead token, and turn a settled request into its results row.

use crate::api::{CertStatus, CertificateState};
use crate::client::ApiReply;
use crate::input::reader::Row;
use crate::outcome::Outcome;
use crate::output::results::ResultRow;
use crate::pipeline::dispatcher::{Dispatcher, Request, Settled, StopReason};

/// A GET of the row's certificate, through the pacer and retries; `None`
/// when the run stopped before it was sent. Any status is an answer: which
/// one it is, is the verdict. Also the read-back of `revoke --verify` and
/// `reactivate`'s look after a refused PATCH.
pub async fn read(dispatcher: &Dispatcher, row: &Row) -> Option<Settled<CertificateState>> {
    let request = Request::for_row("GET", row).expecting(&[]);
    dispatcher.send(&request, || dispatcher.client.get(row.zone, row.cert)).await
}

/// A 401 means the token is dead: no point grinding through the rest.
pub fn halt_on_401(dispatcher: &Dispatcher, settled: &Settled<CertificateState>) {
    if let Some(reply) = settled.answer.as_ref().ok().filter(|r| r.status == 401) {
        dispatcher.halt(StopReason::CredentialsRefused(reply.describe()));
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
        cert_status: reply.and_then(ApiReply::cert_status).map(CertStatus::as_str),
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
