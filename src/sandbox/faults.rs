//! The failures a real run meets between the client and Cloudflare's API,
//! drawn per request from the seeded generator.
//!
//! The point that matters most is *when* a fault strikes. One that strikes
//! before the API sees the request leaves the certificate untouched; one that
//! strikes after has already revoked it, so the client sees a failure for
//! work that was done and its retry meets `pending_revocation` or 1407. A
//! client must count both as revoked, and never revoke anything twice.

use std::time::Duration;

use anyhow::ensure;
use hyper::StatusCode;
use rand::rngs::SmallRng;
use rand::Rng;

use super::response::PlainResponse;
use crate::api::JSON;

/// Code of the envelope of a simulated 5xx; Cloudflare documents none.
const INTERNAL_ERROR: i64 = 10001;

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Mean of an exponential distribution of added latency, so most answers
    /// are quick and a few are slow, as on a real network. Zero for none.
    pub latency_mean: Duration,
    /// Cap on the drawn latency.
    pub latency_max: Option<Duration>,
    /// Share of requests answered 500, 502 or 503, with Cloudflare's
    /// envelope or, as an edge does, an HTML page.
    pub error_rate: f64,
    /// Share of requests whose connection is closed without any answer.
    pub reset_rate: f64,
    /// Share of requests answered only after `slow_delay`, meant to outlast
    /// the client's timeout. The request itself is carried out at once.
    pub slow_rate: f64,
    pub slow_delay: Duration,
    /// Share of requests answered with an empty, truncated or non-JSON body.
    pub malformed_rate: f64,
    /// Probability that an error, reset or malformed answer strikes after
    /// the request was carried out rather than before.
    pub after_change: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_mean: Duration::ZERO,
            latency_max: None,
            error_rate: 0.0,
            reset_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(60),
            malformed_rate: 0.0,
            after_change: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Error,
    Reset,
    Slow,
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    /// Strikes once the API has carried the request out (always so for
    /// `Slow`: the answer is held back, not the work).
    pub after_change: bool,
    /// Picks among the variants of the kind (which status, which body).
    pub form: u8,
}

/// What reaches the client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Served {
    Response(PlainResponse),
    Reset,
}

impl Faults {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let rates = [
            ("error rate", self.error_rate),
            ("reset rate", self.reset_rate),
            ("slow rate", self.slow_rate),
            ("malformed rate", self.malformed_rate),
            ("after-change share", self.after_change),
        ];
        for (name, rate) in rates {
            ensure!((0.0..=1.0).contains(&rate), "the {name} must be between 0 and 1, not {rate}");
        }
        let total = self.error_rate + self.reset_rate + self.slow_rate + self.malformed_rate;
        ensure!(total <= 1.0, "the fault rates add up to {total}, more than 1");
        Ok(())
    }

    /// Latency and fault for one request. Always draws the same number of
    /// values, so changing one knob does not reshuffle the others.
    pub(crate) fn draw(&self, rng: &mut SmallRng) -> (Duration, Option<Fault>) {
        let latency = self.latency(rng.random());
        let pick: f64 = rng.random();
        let after_change = rng.random_bool(self.after_change);
        let form: u8 = rng.random();
        let mut threshold = 0.0;
        let kinds = [
            (FaultKind::Error, self.error_rate),
            (FaultKind::Reset, self.reset_rate),
            (FaultKind::Slow, self.slow_rate),
            (FaultKind::Malformed, self.malformed_rate),
        ];
        let kind = kinds.into_iter().find_map(|(kind, rate)| {
            threshold += rate;
            (pick < threshold).then_some(kind)
        });
        let fault = kind.map(|kind| Fault { kind, after_change: after_change || kind == FaultKind::Slow, form });
        (latency, fault)
    }

    /// Inverse-transform sample of the exponential distribution; `uniform`
    /// is in [0, 1).
    fn latency(&self, uniform: f64) -> Duration {
        let drawn = self.latency_mean.mul_f64(-(1.0 - uniform).ln());
        self.latency_max.map_or(drawn, |max| drawn.min(max))
    }
}

impl Fault {
    /// The answer of an edge that never passed the request on, or `None`
    /// when the fault waits for the API's answer. Never a 200: that would
    /// claim a change that did not happen.
    pub(crate) fn before(self) -> Option<Served> {
        if self.after_change {
            return None;
        }
        match self.kind {
            FaultKind::Error => Some(Served::Response(self.error_page(None))),
            FaultKind::Reset => Some(Served::Reset),
            FaultKind::Malformed if self.form.is_multiple_of(2) => Some(Served::Response(PlainResponse {
                status: StatusCode::BAD_GATEWAY,
                content_type: JSON,
                body: Vec::new(),
                ratelimit: None,
            })),
            FaultKind::Malformed => Some(Served::Response(PlainResponse {
                status: StatusCode::from_u16(520).unwrap_or(StatusCode::BAD_GATEWAY),
                content_type: "text/plain; charset=UTF-8",
                body: b"error code: 520".to_vec(),
                ratelimit: None,
            })),
            // A slow answer holds back the answer, never the request.
            FaultKind::Slow => None,
        }
    }

    /// What the client gets instead of `reply` once the API has done the work.
    pub(crate) fn after(self, reply: PlainResponse) -> Served {
        match self.kind {
            FaultKind::Error => Served::Response(self.error_page(Some(&reply))),
            FaultKind::Reset => Served::Reset,
            FaultKind::Slow => Served::Response(reply),
            FaultKind::Malformed => {
                let mut reply = reply;
                let keep = if self.form.is_multiple_of(2) { 0 } else { reply.body.len() / 2 };
                reply.body.truncate(keep);
                Served::Response(reply)
            }
        }
    }

    /// A 500, 502 or 503, half the time as an edge's HTML page. After the
    /// change the rate-limit headers of the real answer survive: the request
    /// was counted.
    fn error_page(self, replaced: Option<&PlainResponse>) -> PlainResponse {
        let status = [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE]
            [usize::from(self.form % 3)];
        let reply = if self.form.is_multiple_of(2) {
            PlainResponse::error(status, INTERNAL_ERROR, "Internal server error, please try again")
        } else {
            PlainResponse { status, content_type: "text/html", body: html_page(status).into_bytes(), ratelimit: None }
        };
        reply.with_ratelimit(replaced.and_then(|r| r.ratelimit))
    }
}

fn html_page(status: StatusCode) -> String {
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
         <hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::sandbox::ratelimit::{Seconds, Verdict};

    fn draws(faults: &Faults, n: usize) -> Vec<(Duration, Option<Fault>)> {
        let mut rng = SmallRng::seed_from_u64(42);
        (0..n).map(|_| faults.draw(&mut rng)).collect()
    }

    fn ok_reply() -> PlainResponse {
        PlainResponse::ok(serde_json::json!({"id": "x", "status": "pending_revocation"}))
            .with_ratelimit(Some(Verdict::Allowed { remaining: 3, reset: Seconds::Whole(9) }))
    }

    #[test]
    fn no_faults_by_default() {
        assert!(draws(&Faults::default(), 1000).iter().all(|&d| d == (Duration::ZERO, None)));
    }

    #[test]
    fn rates_are_honoured_and_split_around_the_change() {
        let faults = Faults { error_rate: 0.2, reset_rate: 0.1, malformed_rate: 0.1, ..Faults::default() };
        let drawn: Vec<Fault> = draws(&faults, 10_000).into_iter().filter_map(|d| d.1).collect();
        let share = |kind| drawn.iter().filter(|f| f.kind == kind).count() as f64 / 10_000.0;
        assert!((share(FaultKind::Error) - 0.2).abs() < 0.02);
        assert!((share(FaultKind::Reset) - 0.1).abs() < 0.02);
        assert_eq!(share(FaultKind::Slow), 0.0);
        let after = drawn.iter().filter(|f| f.after_change).count() as f64 / drawn.len() as f64;
        assert!((after - 0.5).abs() < 0.05, "{after}");
        assert_eq!(draws(&faults, 50), draws(&faults, 50), "the seed decides");
    }

    #[test]
    fn slow_answers_always_follow_the_work() {
        let faults = Faults { slow_rate: 1.0, after_change: 0.0, ..Faults::default() };
        assert!(draws(&faults, 100).iter().all(|d| d.1.is_some_and(|f| f.after_change)));
    }

    #[test]
    fn latency_is_spread_and_capped() {
        let faults = Faults {
            latency_mean: Duration::from_millis(20),
            latency_max: Some(Duration::from_millis(60)),
            ..Faults::default()
        };
        let latencies: Vec<Duration> = draws(&faults, 10_000).into_iter().map(|d| d.0).collect();
        let mean = latencies.iter().sum::<Duration>() / 10_000;
        assert!(mean > Duration::from_millis(15) && mean < Duration::from_millis(20), "{mean:?}");
        assert!(latencies.iter().all(|&l| l <= Duration::from_millis(60)));
        assert!(latencies.iter().any(|&l| l < Duration::from_millis(2)));
        assert!(latencies.iter().any(|&l| l == Duration::from_millis(60)));
    }

    #[test]
    fn edge_faults_never_claim_success() {
        let edge = |kind, form| (Fault { kind, after_change: false, form }).before();
        for form in 0..6 {
            let Some(Served::Response(error)) = edge(FaultKind::Error, form) else { panic!("errors are answered") };
            assert!(error.status.is_server_error(), "{}", error.status);
            let Some(Served::Response(garbled)) = edge(FaultKind::Malformed, form) else { panic!("answered") };
            assert!(garbled.status.is_server_error(), "{}", garbled.status);
            assert!(serde_json::from_slice::<serde_json::Value>(&garbled.body).is_err());
            assert_eq!((error.ratelimit, garbled.ratelimit), (None, None));
        }
        assert_eq!(edge(FaultKind::Reset, 0), Some(Served::Reset));
        assert_eq!(edge(FaultKind::Slow, 0), None);
        assert_eq!((Fault { kind: FaultKind::Reset, after_change: true, form: 0 }).before(), None);
    }

    #[test]
    fn late_faults_spoil_the_real_answer() {
        let fault = |kind, form| Fault { kind, after_change: true, form };
        let Served::Response(empty) = fault(FaultKind::Malformed, 0).after(ok_reply()) else { panic!() };
        assert_eq!((empty.status, empty.body.len()), (StatusCode::OK, 0));
        let Served::Response(cut) = fault(FaultKind::Malformed, 1).after(ok_reply()) else { panic!() };
        assert_eq!(cut.body.len(), ok_reply().body.len() / 2);
        assert!(serde_json::from_slice::<serde_json::Value>(&cut.body).is_err());
        let Served::Response(html) = fault(FaultKind::Error, 1).after(ok_reply()) else { panic!() };
        assert_eq!(html.status, StatusCode::BAD_GATEWAY);
        assert!(String::from_utf8(html.body).unwrap().contains("<title>502 Bad Gateway</title>"));
        assert_eq!(html.ratelimit, ok_reply().ratelimit);
        let Served::Response(json) = fault(FaultKind::Error, 0).after(ok_reply()) else { panic!() };
        assert_eq!(json.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(fault(FaultKind::Slow, 0).after(ok_reply()), Served::Response(ok_reply()));
        assert_eq!(fault(FaultKind::Reset, 0).after(ok_reply()), Served::Reset);
    }

    #[test]
    fn rates_are_validated() {
        assert!(Faults { error_rate: 1.5, ..Faults::default() }.validate().is_err());
        assert!(Faults { reset_rate: -0.1, ..Faults::default() }.validate().is_err());
        assert!(Faults { error_rate: 0.6, reset_rate: 0.6, ..Faults::default() }.validate().is_err());
        assert!(Faults { error_rate: f64::NAN, ..Faults::default() }.validate().is_err());
        Faults { error_rate: 0.5, reset_rate: 0.5, ..Faults::default() }.validate().unwrap();
    }
}
