//! The list operation: every page of one zone's certificates, through the
//! same dispatcher (pacing, 429 pause, retries) as revocation, and what its
//! answers mean.
//!
//! A zone is read to the end before anything is done with it: paging through
//! a status while certificates change state shifts the pages and skips some
//! (API-NOTES.md), so listing and revoking must never interleave.

use std::collections::HashSet;

use crate::api::{CertStatus, ClientCertificate, Zone};
use crate::input::ids::ZoneId;
use crate::pipeline::dispatcher::{Dispatcher, Request, Settled};

/// The most the API allows, so a zone costs as few requests as possible.
pub const PER_PAGE: u32 = 50;

/// A million certificates in one zone: far beyond any real zone, yet a
/// server that keeps inventing pages is stopped within hours, not never.
pub const MAX_PAGES: u32 = 20_000;

/// What a listing reads: one zone's certificates, or the zones themselves
/// (`GET /zones`); both page alike and fail alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Zone(ZoneId),
    Zones,
}

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listed::Zone(zone) => write!(f, "zone {zone}"),
            Listed::Zones => f.write_str("the list of zones"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// 401 or 403: the token is dead or may not read this.
    #[error("{of}: credentials refused: {answer}")]
    CredentialsRefused { of: Listed, answer: String },
    #[error("{of}, page {page}: {why}")]
    Failed { of: Listed, page: u32, why: String },
    #[error(
        "{of}, page {page}: the API answered only entries of earlier pages, so it is not paging; \
         stopped rather than loop"
    )]
    NotAdvancing { of: Listed, page: u32 },
    #[error("{of}: still not at the end after {pages} pages of {PER_PAGE}; stopped rather than loop")]
    TooManyPages { of: Listed, pages: u32 },
    /// `GET /zones` named a zone by an ID no request could carry.
    #[error("the list of zones: zone {name}: expected {why}")]
    UnusableZone { name: String, why: String },
    /// The run was interrupted (or otherwise halted) before the listing was read.
    #[error("stopped before {of} was fully listed")]
    Stopped { of: Listed },
}

/// What an entry of a listing is known by, so one that shifts onto a later
/// page is kept once.
pub trait Entry {
    fn key(&self) -> &str;
}

impl Entry for ClientCertificate {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Entry for Zone {
    fn key(&self) -> &str {
        &self.id
    }
}

/// Lists every certificate of `zone` in `status` (`None`: all), each once, in
/// the API's order.
pub async fn list_zone(
    dispatcher: &Dispatcher,
    zone: ZoneId,
    status: Option<CertStatus>,
) -> Result<Vec<ClientCertificate>, ListError> {
    read_pages(dispatcher, Listed::Zone(zone), |page| dispatcher.client.list_page(zone, status, page, PER_PAGE)).await
}

/// Every page of a listing, each through the dispatcher, until the empty
/// page that ends it or a guard stops a server that never sends one.
pub async fn read_pages<T, F, Fut>(dispatcher: &Dispatcher, of: Listed, send: F) -> Result<Vec<T>, ListError>
where
    T: Entry,
    Vec<T>: crate::pipeline::dispatcher::Answer,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<crate::client::ApiReply<Vec<T>>, crate::client::TransportError>>,
{
    let mut pages = Pages::new(of, MAX_PAGES);
    loop {
        if !pages.take(read_page(dispatcher, of, pages.next, &send).await?)? {
            return Ok(pages.entries);
        }
    }
}

/// One page of a listing through the dispatcher, for a lookup that one
/// page answers whole (an exact zone name), and for [`read_pages`].
pub async fn read_page<T, F, Fut>(dispatcher: &Dispatcher, of: Listed, page: u32, send: F) -> Result<Vec<T>, ListError>
where
    Vec<T>: crate::pipeline::dispatcher::Answer,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Result<crate::client::ApiReply<Vec<T>>, crate::client::TransportError>>,
{
    let request = match of {
        Listed::Zone(zone) => Request::for_page(zone, page),
        Listed::Zones => Request::for_zones_page(page),
    };
    let settled = dispatcher
        .send(&request, || send(page))
        .await
        .filter(|settled| !settled.interrupted)
        .ok_or(ListError::Stopped { of })?;
    judge(of, page, settled)
}

/// The entries of a page's last answer, or why there are none.
fn judge<T>(of: Listed, page: u32, settled: Settled<Vec<T>>) -> Result<Vec<T>, ListError> {
    let failed = |why: String| ListError::Failed { of, page, why };
    // Worded before the answer is taken apart; a page is one request in 50 certificates.
    let exhausted = settled.exhausted();
    let reply = match settled.answer {
        Err(_) => return Err(failed(exhausted)),
        Ok(reply) => reply,
    };
    if matches!(reply.status, 401 | 403) {
        return Err(ListError::CredentialsRefused { of, answer: reply.describe() });
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

/// Paging state of one listing: the entries so far and the next page.
struct Pages<T> {
    of: Listed,
    next: u32,
    max: u32,
    /// IDs as answered, so an entry that shifts onto a later page is kept
    /// once (and one whose ID is malformed is still counted once).
    seen: HashSet<String>,
    entries: Vec<T>,
}

impl<T: Entry> Pages<T> {
    fn new(of: Listed, max: u32) -> Pages<T> {
        Pages { of, next: 1, max, seen: HashSet::new(), entries: Vec::new() }
    }

    /// Adds a page; `Ok(false)` once the listing is complete. An empty page
    /// is the only end the API documents; the guards stop a server that
    /// never sends one.
    fn take(&mut self, page: Vec<T>) -> Result<bool, ListError> {
        if page.is_empty() {
            return Ok(false);
        }
        let before = self.entries.len();
        for entry in page {
            if self.seen.insert(entry.key().to_string()) {
                self.entries.push(entry);
            }
        }
        if self.entries.len() == before {
            return Err(ListError::NotAdvancing { of: self.of, page: self.next });
        }
        if self.next >= self.max {
            return Err(ListError::TooManyPages { of: self.of, pages: self.next });
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

    fn zone() -> Listed {
        Listed::Zone("023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap())
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
        assert_eq!(ids(&pages.entries), ["a", "b", "c"]);
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
