//! The list operation: every page of one zone's certificates, through the
//! same dispatcher (pacing, 429 pause, retries) as revocation, and what its
//! answers mean.
//!
//! A zone is read to the end before anything is done with it: paging through
//! a status while certificates change state shifts the pages and skips some
//! (API-NOTES.md), so listing and revoking must never interleave.

use std::collections::HashSet;

use crate::api::{CertStatus, ClientCertificate};
use crate::input::ids::ZoneId;
use crate::pipeline::dispatcher::{Dispatcher, Request, Settled};

/// The most the API allows, so a zone costs as few requests as possible.
pub const PER_PAGE: u32 = 50;

/// A million certificates in one zone: far beyond any real zone, yet a
/// server that keeps inventing pages is stopped within hours, not never.
pub const MAX_PAGES: u32 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// 401 or 403: the token is dead or may not read this zone.
    #[error("zone {zone}: credentials refused: {answer}")]
    CredentialsRefused { zone: ZoneId, answer: String },
    #[error("zone {zone}, page {page}: {why}")]
    Failed { zone: ZoneId, page: u32, why: String },
    #[error(
        "zone {zone}, page {page}: the API answered only certificates of earlier pages, so it is not paging; \
         stopped rather than loop"
    )]
    NotAdvancing { zone: ZoneId, page: u32 },
    #[error("zone {zone}: still not at the end after {pages} pages of {PER_PAGE}; stopped rather than loop")]
    TooManyPages { zone: ZoneId, pages: u32 },
    /// The run was interrupted (or otherwise halted) before the zone was read.
    #[error("stopped before zone {zone} was fully listed")]
    Stopped { zone: ZoneId },
}

/// Lists every certificate of `zone` in `status` (`None`: all), each once, in
/// the API's order.
pub async fn list_zone(
    dispatcher: &Dispatcher,
    zone: ZoneId,
    status: Option<CertStatus>,
) -> Result<Vec<ClientCertificate>, ListError> {
    let mut pages = Pages::new(zone, MAX_PAGES);
    loop {
        let page = pages.next;
        let settled = dispatcher
            .send(&Request::for_page(zone, page), || dispatcher.client.list_page(zone, status, page, PER_PAGE))
            .await
            .filter(|settled| !settled.interrupted)
            .ok_or(ListError::Stopped { zone })?;
        if !pages.take(judge(zone, page, settled)?)? {
            return Ok(pages.certificates);
        }
    }
}

/// The certificates of a page's last answer, or why there are none.
fn judge(
    zone: ZoneId,
    page: u32,
    settled: Settled<Vec<ClientCertificate>>,
) -> Result<Vec<ClientCertificate>, ListError> {
    let failed = |why: String| ListError::Failed { zone, page, why };
    // Worded before the answer is taken apart; a page is one request in 50 certificates.
    let exhausted = settled.exhausted();
    let reply = match settled.answer {
        Err(_) => return Err(failed(exhausted)),
        Ok(reply) => reply,
    };
    if matches!(reply.status, 401 | 403) {
        return Err(ListError::CredentialsRefused { zone, answer: reply.describe() });
    }
    if settled.gave_up {
        return Err(failed(exhausted));
    }
    match reply.body {
        // A `null` result is read as an empty page: the end.
        Ok(envelope) if (200..300).contains(&reply.status) && envelope.success => {
            Ok(envelope.result.unwrap_or_default())
        }
        _ => Err(failed(reply.describe())),
    }
}

/// Paging state of one zone: the certificates so far and the next page.
struct Pages {
    zone: ZoneId,
    next: u32,
    max: u32,
    /// IDs as answered, so a certificate that shifts onto a later page is
    /// kept once (and one whose ID is malformed is still counted once).
    seen: HashSet<String>,
    certificates: Vec<ClientCertificate>,
}

impl Pages {
    fn new(zone: ZoneId, max: u32) -> Pages {
        Pages { zone, next: 1, max, seen: HashSet::new(), certificates: Vec::new() }
    }

    /// Adds a page; `Ok(false)` once the listing is complete. An empty page
    /// is the only end the API documents; the guards stop a server that
    /// never sends one.
    fn take(&mut self, page: Vec<ClientCertificate>) -> Result<bool, ListError> {
        if page.is_empty() {
            return Ok(false);
        }
        let before = self.certificates.len();
        for cert in page {
            if self.seen.insert(cert.id.clone()) {
                self.certificates.push(cert);
            }
        }
        if self.certificates.len() == before {
            return Err(ListError::NotAdvancing { zone: self.zone, page: self.next });
        }
        if self.next >= self.max {
            return Err(ListError::TooManyPages { zone: self.zone, pages: self.next });
        }
        self.next += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::api::Envelope;
    use crate::client::{ApiReply, TransportError};

    fn zone() -> ZoneId {
        "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap()
    }

    fn certs(ids: &[&str]) -> Vec<ClientCertificate> {
        ids.iter().map(|id| ClientCertificate { id: id.to_string(), ..ClientCertificate::default() }).collect()
    }

    fn ids(certs: &[ClientCertificate]) -> Vec<&str> {
        certs.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn pages_end_on_an_empty_page_and_keep_each_certificate_once() {
        let mut pages = Pages::new(zone(), 10);
        assert!(pages.take(certs(&["a", "b"])).unwrap());
        assert!(pages.take(certs(&["b", "c"])).unwrap(), "a certificate shifted onto the next page");
        assert!(!pages.take(vec![]).unwrap());
        assert_eq!(ids(&pages.certificates), ["a", "b", "c"]);
    }

    #[test]
    fn a_server_that_never_ends_is_stopped() {
        let mut pages = Pages::new(zone(), 10);
        pages.take(certs(&["a", "b"])).unwrap();
        let err = pages.take(certs(&["a", "b"])).unwrap_err();
        assert!(matches!(err, ListError::NotAdvancing { page: 2, .. }), "{err}");

        let mut pages = Pages::new(zone(), 3);
        for id in ["a", "b"] {
            assert!(pages.take(certs(&[id])).unwrap());
        }
        let err = pages.take(certs(&["c"])).unwrap_err();
        assert!(matches!(err, ListError::TooManyPages { pages: 3, .. }), "{err}");
    }

    fn settled(
        answer: Result<(u16, Envelope<Vec<ClientCertificate>>), TransportError>,
        gave_up: bool,
    ) -> Settled<Vec<ClientCertificate>> {
        let answer = answer.map(|(status, envelope)| ApiReply::bare(status, Ok(envelope)));
        Settled {
            answer,
            mismatch: None,
            attempts: 4,
            gave_up,
            interrupted: false,
            lost_reply: false,
            started: Instant::now(),
        }
    }

    #[test]
    fn answers_map_to_pages_or_errors() {
        let page = judge(zone(), 1, settled(Ok((200, Envelope::ok(certs(&["a"])))), false)).unwrap();
        assert_eq!(ids(&page), ["a"]);
        let null = Envelope { result: None, ..Envelope::ok(vec![]) };
        assert!(judge(zone(), 1, settled(Ok((200, null)), false)).unwrap().is_empty());
        for status in [401, 403] {
            let err = judge(zone(), 1, settled(Ok((status, Envelope::error(9109, "Invalid access token"))), false));
            assert!(matches!(err, Err(ListError::CredentialsRefused { .. })), "{status}");
        }
        let err = judge(zone(), 2, settled(Ok((503, Envelope::error(1000, "down"))), true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "zone 023e105f4ecef8ad9ca31a8372d0c353, page 2: gave up after 4 attempt(s): HTTP 503 (code 1000): down"
        );
        let err = judge(zone(), 1, settled(Err(TransportError::Connect("refused".into())), true)).unwrap_err();
        assert!(err.to_string().ends_with("gave up after 4 attempt(s): could not connect: refused"), "{err}");
        let err = judge(zone(), 1, settled(Ok((400, Envelope::error(7003, "Invalid object identifier"))), false));
        assert!(matches!(err, Err(ListError::Failed { .. })));
    }
}
