//! The simulated API behind the edge: authentication, the rate limit, the
//! certificate endpoints and the journal, all under one lock.
//!
//! Everything here is synchronous and takes the time as an argument, so the
//! API's behaviour is tested without sockets or sleeps; `server` adds the
//! network, the waiting and the faults that need a connection.

use std::time::{Duration, Instant};

use hyper::{HeaderMap, Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::auth::{self, Credentials, Principal};
use super::config::SandboxConfig;
use super::faults::{Fault, Faults, Served};
use super::fixtures;
use super::journal::Journal;
use super::ratelimit::{Limiter, Verdict};
use super::response::PlainResponse;
use super::routes::{CertKey, CertOp, Endpoint, ListQuery, Route, ZonesQuery};
use super::rules::{self, Enforcing};
use super::state::{CertStore, Refusal};
use super::zones::Zones;
use crate::api::{codes, ApiMessage, Envelope, ResultInfo};

/// Codes for refusals Cloudflare is not known to word; chosen so that none
/// collides with a documented code a client might act on.
mod sandbox_codes {
    /// A list query parameter out of range.
    pub const INVALID_PARAMETER: i64 = 1003;
    /// PATCH without `"reactivate": true`.
    pub const REACTIVATE_REQUIRED: i64 = 1406;
    /// PATCH of a certificate that is not pending revocation.
    pub const NOT_PENDING_REVOCATION: i64 = 1412;
    /// Cloudflare's "Malformed JSON in request body".
    pub const MALFORMED_JSON: i64 = 6007;
    /// Token verification asked with the legacy email and key.
    pub const NOT_A_TOKEN: i64 = 1000;
    /// A phase without an entry-point ruleset (the zone has no custom rules).
    pub const NO_ENTRYPOINT: i64 = 10003;
}

/// What is decided about a request the moment it arrives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arrival {
    pub latency: Duration,
    pub fault: Option<Fault>,
    /// The cf-ray header, random-looking and unique enough to quote.
    pub ray: String,
}

pub(crate) struct ApiRequest<'a> {
    pub route: &'a Route,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug)]
pub(crate) struct Origin {
    store: CertStore,
    limiter: Option<Limiter>,
    credentials: Credentials,
    journal: Journal,
    rng: SmallRng,
    faults: Faults,
    forbid_writes: bool,
    seed: u64,
    enforcing: Enforcing,
    forbid_rules_read: bool,
    zones: Zones,
}

impl Origin {
    pub(crate) fn new(config: &SandboxConfig, start: Instant) -> Origin {
        let generated = fixtures::generate(config.seed, config.generate, config.zones);
        let store = CertStore::new(config.certs.iter().copied().chain(generated), config.revoke_delay, config.seed);
        Origin {
            zones: Zones::new(config.seed, &store.zone_ids()),
            store,
            limiter: Limiter::new(&config.rate, start),
            credentials: Credentials::new(config.seed, config.token_expires_after),
            journal: Journal::default(),
            rng: SmallRng::seed_from_u64(config.seed),
            faults: config.faults.clone(),
            forbid_writes: config.forbid_writes,
            seed: config.seed,
            enforcing: config.enforcing,
            forbid_rules_read: config.forbid_rules_read,
        }
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(crate) fn store(&self) -> &CertStore {
        &self.store
    }

    /// Journals the request and draws its latency, fault and cf-ray.
    pub(crate) fn arrive(&mut self, method: &Method, route: &Route) -> Arrival {
        self.journal.note_request(method);
        if let Route::Api(Endpoint::Cert(op, key)) = *route {
            self.store.note(key, op);
        }
        match route {
            Route::Api(Endpoint::CustomRules(_)) => self.journal.rules_reads += 1,
            Route::Api(Endpoint::Zones) => self.journal.zones_reads += 1,
            _ => {}
        }
        let (latency, fault) = self.faults.draw(&mut self.rng);
        let ray = format!("{:016x}-SBX", self.rng.random::<u64>());
        Arrival { latency, fault, ray }
    }

    /// Answers a request that got past the edge. Checks run in Cloudflare's
    /// order: route, credentials, rate limit, then the endpoint. Requests
    /// refused for their credentials are not counted against the quota,
    /// since they cannot be attributed to the user.
    pub(crate) fn handle(&mut self, request: &ApiRequest, now: Instant) -> PlainResponse {
        let Route::Api(endpoint) = *request.route else {
            return no_route().with_ratelimit(self.peek(now));
        };
        let principal = match self.credentials.check(request.headers) {
            Ok(principal) => principal,
            Err(refusal) => return refusal.with_ratelimit(self.peek(now)),
        };
        let verdict = self.limiter.as_mut().map(|limiter| limiter.admit(now));
        let reply = match verdict {
            Some(Verdict::Limited { .. }) => PlainResponse::error(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                "Please wait and consider throttling your request speed",
            ),
            _ => self.endpoint(endpoint, principal, request, now),
        };
        reply.with_ratelimit(verdict)
    }

    pub(crate) fn served(&mut self, served: &Served, fault: Option<Fault>) {
        let status = match served {
            Served::Response(reply) => Some(reply.status),
            Served::Reset => None,
        };
        self.journal.note_served(status, fault);
    }

    pub(crate) fn journal(&self, now: Instant) -> Journal {
        Journal {
            max_in_window: self.limiter.as_ref().map(|l| l.max_in_window() as u64),
            revocations: self.store.revocations(),
            cert_statuses: self.store.status_counts(now),
            certs: self.store.touched(now),
            ..self.journal.clone()
        }
    }

    /// The journal so far, and a fresh one from here on (certificate states
    /// are not touched).
    pub(crate) fn take_journal(&mut self, now: Instant) -> Journal {
        let journal = self.journal(now);
        self.journal = Journal::default();
        self.store.clear_activity();
        if let Some(limiter) = &mut self.limiter {
            limiter.reset_max();
        }
        journal
    }

    fn peek(&mut self, now: Instant) -> Option<Verdict> {
        self.limiter.as_mut().map(|limiter| limiter.peek(now))
    }

    fn endpoint(
        &mut self,
        endpoint: Endpoint,
        principal: Principal,
        request: &ApiRequest,
        now: Instant,
    ) -> PlainResponse {
        match endpoint {
            Endpoint::InvalidId => {
                PlainResponse::error(StatusCode::BAD_REQUEST, codes::INVALID_IDENTIFIER, "Invalid object identifier")
            }
            Endpoint::List(zone) => listed(
                ListQuery::parse(request.query)
                    .map(|query| self.store.list(zone, query.status, query.page, query.per_page, now)),
            ),
            Endpoint::Cert(op, key) => self.certificate(op, key, request.body, now),
            Endpoint::VerifyToken => self.verify_token(principal),
            Endpoint::CustomRules(zone) => self.custom_rules(zone),
            Endpoint::Zones => listed(ZonesQuery::parse(request.query).map(|query| self.zones.list(&query))),
        }
    }

    fn certificate(&mut self, op: CertOp, key: CertKey, body: &[u8], now: Instant) -> PlainResponse {
        if self.forbid_writes && op != CertOp::Get {
            return auth::refused(StatusCode::FORBIDDEN);
        }
        let outcome = match op {
            CertOp::Get => self.store.get(key, now),
            CertOp::Delete => self.store.revoke(key, now),
            CertOp::Patch => match reactivation_requested(body) {
                Ok(()) => self.store.reactivate(key, now),
                Err(refusal) => return refusal,
            },
        };
        match outcome {
            Ok(cert) => PlainResponse::ok(cert),
            Err(Refusal::NotFound) => {
                PlainResponse::error(StatusCode::NOT_FOUND, codes::CERT_NOT_FOUND, "Client certificate not found")
            }
            Err(Refusal::AlreadyRevoked) => PlainResponse::error(
                StatusCode::BAD_REQUEST,
                codes::ALREADY_REVOKED,
                "This client certificate has already been deleted",
            ),
            Err(Refusal::NotPendingRevocation) => PlainResponse::error(
                StatusCode::BAD_REQUEST,
                sandbox_codes::NOT_PENDING_REVOCATION,
                "Only a client certificate in pending_revocation can be reactivated",
            ),
        }
    }

    /// A zone's custom rules; 404, as Cloudflare answers, for a zone that has none.
    fn custom_rules(&self, zone: crate::input::ids::ZoneId) -> PlainResponse {
        if self.forbid_rules_read {
            return auth::refused(StatusCode::FORBIDDEN);
        }
        match rules::ruleset(self.seed, zone, self.enforcing) {
            Some(ruleset) => PlainResponse::ok(ruleset),
            None => PlainResponse::error(
                StatusCode::NOT_FOUND,
                sandbox_codes::NO_ENTRYPOINT,
                "could not find entrypoint ruleset in the 'http_request_firewall_custom' phase",
            ),
        }
    }

    /// `GET /user/tokens/verify`, which a client can call before a run to
    /// learn whether its token works at all.
    fn verify_token(&self, principal: Principal) -> PlainResponse {
        #[derive(Serialize)]
        struct TokenStatus<'a> {
            id: &'a str,
            status: &'static str,
        }
        if principal != Principal::Token {
            return PlainResponse::error(StatusCode::BAD_REQUEST, sandbox_codes::NOT_A_TOKEN, "Invalid API Token");
        }
        let result = TokenStatus { id: self.credentials.token_id(), status: "active" };
        let message = ApiMessage {
            code: codes::AUTH_ERROR,
            message: "This API Token is valid and active".to_string(),
            documentation_url: None,
            source: None,
        };
        PlainResponse::envelope(StatusCode::OK, &Envelope { messages: vec![message], ..Envelope::ok(result) })
    }
}

/// A page of a list endpoint, or why its query was refused.
fn listed<T: Serialize>(page: Result<(Vec<T>, ResultInfo), String>) -> PlainResponse {
    match page {
        Ok((items, info)) => {
            PlainResponse::envelope(StatusCode::OK, &Envelope { result_info: Some(info), ..Envelope::ok(items) })
        }
        Err(message) => PlainResponse::error(StatusCode::BAD_REQUEST, sandbox_codes::INVALID_PARAMETER, message),
    }
}

fn no_route() -> PlainResponse {
    PlainResponse::error(StatusCode::NOT_FOUND, codes::NO_ROUTE, "No route for the URI")
}

fn reactivation_requested(body: &[u8]) -> Result<(), PlainResponse> {
    #[derive(Deserialize)]
    struct Reactivate {
        reactivate: Option<bool>,
    }
    match serde_json::from_slice::<Reactivate>(body) {
        Err(_) => Err(PlainResponse::error(
            StatusCode::BAD_REQUEST,
            sandbox_codes::MALFORMED_JSON,
            "Malformed JSON in request body",
        )),
        Ok(Reactivate { reactivate: Some(true) }) => Ok(()),
        Ok(_) => Err(PlainResponse::error(
            StatusCode::BAD_REQUEST,
            sandbox_codes::REACTIVATE_REQUIRED,
            "The request body must be {\"reactivate\": true}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderValue, AUTHORIZATION};

    use super::*;
    use crate::api::{CertStatus, ClientCertificate};
    use crate::sandbox::ratelimit::{RateLimit, Seconds};

    const DELAY: Duration = Duration::from_millis(300);

    struct Harness {
        origin: Origin,
        auth: HeaderMap,
        keys: Vec<CertKey>,
        t0: Instant,
    }

    impl Harness {
        fn new(config: SandboxConfig) -> Harness {
            let t0 = Instant::now();
            let origin = Origin::new(&SandboxConfig { revoke_delay: DELAY, ..config }, t0);
            let mut auth = HeaderMap::new();
            let bearer = format!("Bearer {}", origin.credentials().token());
            auth.insert(AUTHORIZATION, HeaderValue::from_str(&bearer).unwrap());
            let keys = origin.store().keys();
            Harness { origin, auth, keys, t0 }
        }

        fn with_certs(n: usize) -> Harness {
            Harness::new(SandboxConfig { generate: n, ..SandboxConfig::default() })
        }

        /// One request at `at` after the start, journaled as the server would.
        fn call(
            &mut self,
            method: Method,
            path: &str,
            body: &str,
            at: Duration,
        ) -> (PlainResponse, Envelope<serde_json::Value>) {
            let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
            let route = Route::parse(&method, path);
            self.origin.arrive(&method, &route);
            let request = ApiRequest { route: &route, headers: &self.auth, query, body: body.as_bytes() };
            let reply = self.origin.handle(&request, self.t0 + at);
            self.origin.served(&Served::Response(reply.clone()), None);
            let envelope = serde_json::from_slice(&reply.body).expect("every API answer is an envelope");
            (reply, envelope)
        }

        fn cert_path(&self, i: usize) -> String {
            let (zone, cert) = self.keys[i];
            format!("/client/v4/zones/{zone}/client_certificates/{cert}")
        }

        fn status_code(&mut self, method: Method, path: &str, body: &str, at: Duration) -> (u16, Option<i64>) {
            let (reply, envelope) = self.call(method, path, body, at);
            (reply.status.as_u16(), envelope.first_error().map(|e| e.code))
        }
    }

    fn cert_of(envelope: Envelope<serde_json::Value>) -> ClientCertificate {
        serde_json::from_value(envelope.result.unwrap()).unwrap()
    }

    #[test]
    fn revoke_then_retry_then_already_revoked() {
        let mut h = Harness::with_certs(2);
        let path = h.cert_path(0);
        let (reply, envelope) = h.call(Method::DELETE, &path, "", Duration::ZERO);
        assert_eq!(reply.status, StatusCode::OK);
        assert!(envelope.success && envelope.errors.is_empty());
        assert_eq!(cert_of(envelope).status, Some(CertStatus::PendingRevocation));
        assert_eq!(h.status_code(Method::DELETE, &path, "", DELAY / 2), (200, None));
        assert_eq!(h.status_code(Method::DELETE, &path, "", DELAY), (400, Some(1407)));
        let (_, envelope) = h.call(Method::GET, &path, "", DELAY);
        assert_eq!(cert_of(envelope).status, Some(CertStatus::Revoked));

        let journal = h.origin.journal(h.t0 + DELAY);
        assert_eq!(journal.requests, 4);
        assert_eq!(journal.by_method["DELETE"], 3);
        assert_eq!(journal.by_status, [(200, 3), (400, 1)].into());
        assert_eq!(journal.revocations, 1);
        assert_eq!(journal.cert_statuses["revoked"], 1);
        assert_eq!(journal.cert_statuses["active"], 1);
        let (zone, cert) = h.keys[0];
        let entry = &journal.certs[&format!("{zone}/{cert}")];
        assert_eq!((entry.status, entry.activity.delete, entry.activity.get), (CertStatus::Revoked, 3, 1));
        assert_eq!(journal.certs.len(), 1);
    }

    #[test]
    fn unknown_certificates_bad_ids_and_unknown_routes() {
        let mut h = Harness::with_certs(1);
        let zone = h.keys[0].0;
        let unknown = format!("/client/v4/zones/{zone}/client_certificates/{:032x}", 7);
        assert_eq!(h.status_code(Method::DELETE, &unknown, "", Duration::ZERO), (404, Some(1415)));
        let bad = format!("/client/v4/zones/{zone}/client_certificates/not-an-id");
        assert_eq!(h.status_code(Method::DELETE, &bad, "", Duration::ZERO), (400, Some(7003)));
        assert_eq!(h.status_code(Method::GET, "/client/v4/accounts", "", Duration::ZERO), (404, Some(7000)));
    }

    #[test]
    fn reactivation_rules() {
        let mut h = Harness::with_certs(1);
        let path = h.cert_path(0);
        let t = Duration::ZERO;
        let yes = r#"{"reactivate": true}"#;
        assert_eq!(h.status_code(Method::PATCH, &path, yes, t), (400, Some(1412)));
        h.call(Method::DELETE, &path, "", t);
        assert_eq!(h.status_code(Method::PATCH, &path, "{", t), (400, Some(6007)));
        assert_eq!(h.status_code(Method::PATCH, &path, r#"{"reactivate": false}"#, t), (400, Some(1406)));
        let (_, envelope) = h.call(Method::PATCH, &path, yes, t);
        assert_eq!(cert_of(envelope).status, Some(CertStatus::PendingReactivation));
        let (_, envelope) = h.call(Method::GET, &path, "", DELAY);
        assert_eq!(cert_of(envelope).status, Some(CertStatus::Active));
    }

    #[test]
    fn lists_with_paging() {
        let mut h = Harness::with_certs(12);
        let zone = h.keys[0].0;
        let (reply, envelope) = h.call(
            Method::GET,
            &format!("/client/v4/zones/{zone}/client_certificates?per_page=5&page=3"),
            "",
            Duration::ZERO,
        );
        assert_eq!(reply.status, StatusCode::OK);
        let info = envelope.result_info.unwrap();
        assert_eq!((info.count, info.page, info.per_page, info.total_count, info.total_pages), (2, 3, 5, 12, 3));
        assert_eq!(envelope.result.unwrap().as_array().unwrap().len(), 2);
        let (_, envelope) =
            h.call(Method::GET, &format!("/client/v4/zones/{zone}/client_certificates?page=9"), "", Duration::ZERO);
        assert_eq!(envelope.result, Some(serde_json::json!([])));
        let too_big = format!("/client/v4/zones/{zone}/client_certificates?per_page=51");
        assert_eq!(h.status_code(Method::GET, &too_big, "", Duration::ZERO), (400, Some(1003)));
    }

    #[test]
    fn rate_limit_blocks_and_auth_failures_are_not_counted() {
        let rate = RateLimit {
            quota: 2,
            window: Duration::from_secs(2),
            block: Duration::from_secs(1),
            ..RateLimit::default()
        };
        let mut h = Harness::new(SandboxConfig { generate: 1, rate, ..SandboxConfig::default() });
        let path = h.cert_path(0);
        let t = Duration::from_millis(10);
        let (reply, _) = h.call(Method::GET, &path, "", t);
        assert_eq!(reply.ratelimit, Some(Verdict::Allowed { remaining: 1, reset: Seconds::Whole(2) }));
        let good = std::mem::take(&mut h.auth);
        assert_eq!(h.status_code(Method::GET, &path, "", t), (401, Some(10000)));
        h.auth = good;
        h.call(Method::GET, &path, "", t);
        let (reply, envelope) = h.call(Method::GET, &path, "", t);
        assert_eq!((reply.status.as_u16(), envelope.errors[0].code), (429, 971));
        assert_eq!(reply.ratelimit, Some(Verdict::Limited { retry_after: 1 }));
        let journal = h.origin.journal(h.t0 + t);
        assert_eq!((journal.rate_limited, journal.max_in_window), (1, Some(2)));
        // The journal can be read and cleared; the block is not lifted.
        assert_eq!(h.origin.take_journal(h.t0 + t).requests, 4);
        assert_eq!(h.origin.journal(h.t0 + t).requests, 0);
        assert_eq!(h.status_code(Method::GET, &path, "", t), (429, Some(971)));
    }

    #[test]
    fn writes_can_be_forbidden() {
        let mut h = Harness::new(SandboxConfig { generate: 1, forbid_writes: true, ..SandboxConfig::default() });
        let path = h.cert_path(0);
        assert_eq!(h.status_code(Method::DELETE, &path, "", Duration::ZERO), (403, Some(10000)));
        assert_eq!(h.status_code(Method::PATCH, &path, "{}", Duration::ZERO), (403, Some(10000)));
        assert_eq!(h.status_code(Method::GET, &path, "", Duration::ZERO), (200, None));
    }

    #[test]
    fn token_verification() {
        let mut h = Harness::with_certs(0);
        let (reply, envelope) = h.call(Method::GET, "/client/v4/user/tokens/verify", "", Duration::ZERO);
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(envelope.result.unwrap()["status"], "active");
    }

    #[test]
    fn arrivals_draw_distinct_rays_from_the_seed() {
        let config = SandboxConfig::default();
        let rays = |config: &SandboxConfig| {
            let mut origin = Origin::new(config, Instant::now());
            (0..3).map(|_| origin.arrive(&Method::GET, &Route::Unknown).ray).collect::<Vec<_>>()
        };
        let first = rays(&config);
        assert_eq!(first, rays(&config));
        assert_ne!(first[0], first[1]);
        assert!(first[0].ends_with("-SBX") && first[0].len() == 20, "{}", first[0]);
        assert_ne!(first, rays(&SandboxConfig { seed: 2, ..config }));
    }
}
