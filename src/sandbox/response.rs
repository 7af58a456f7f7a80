//! A response before it meets the wire: plain data, so a fault can spoil it
//! and a test can read it without a socket.

use std::time::SystemTime;

use axum::body::Body;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, SERVER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::ratelimit::{RateLimit, Verdict};
use crate::api::headers::{
    CF_RAY, RATELIMIT, RATELIMIT_LIMIT, RATELIMIT_POLICY, RATELIMIT_REMAINING, RATELIMIT_RESET, RETRY_AFTER,
    X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
};
use crate::api::{ApiMessage, Envelope, JSON};
use crate::pacing::headers::Dialect;

/// The rate-limit headers every answer carries: the dialect, and its
/// header that names the quota, the same on every answer, made once.
#[derive(Debug, Clone)]
pub(crate) struct Announcement {
    dialect: Dialect,
    quota: HeaderValue,
}

impl Announcement {
    /// `None` when answers carry no rate-limit headers: no limiter, or no
    /// dialect.
    pub(crate) fn new(rate: &RateLimit) -> anyhow::Result<Option<Announcement>> {
        let Some(dialect) = rate.dialect.filter(|_| rate.quota > 0) else {
            return Ok(None);
        };
        let (quota, window) = rate.announced();
        let value = match dialect {
            Dialect::Structured => rate.policy_header(),
            // The draft's form that names the window too, which cfrevoke reads.
            Dialect::Split => format!("{quota}, {quota};w={window}"),
            // Cloudflare's X- family names no window.
            Dialect::XRateLimit => quota.to_string(),
        };
        Ok(Some(Announcement { dialect, quota: HeaderValue::from_str(&value)? }))
    }

    /// Writes the headers for an answer of `status` the limiter judged
    /// `verdict`. Cloudflare's X- family sends its reset only on 429s, as
    /// an HTTP date.
    fn write(&self, map: &mut HeaderMap, verdict: Verdict, status: StatusCode) {
        let (left, reset) = verdict.left();
        let number = |n: u64| Some(HeaderValue::from(n));
        match self.dialect {
            Dialect::Structured => {
                set(map, RATELIMIT, HeaderValue::from_str(&verdict.header()).ok());
                set(map, RATELIMIT_POLICY, Some(self.quota.clone()));
            }
            Dialect::Split => {
                set(map, RATELIMIT_LIMIT, Some(self.quota.clone()));
                set(map, RATELIMIT_REMAINING, number(left.into()));
                set(map, RATELIMIT_RESET, HeaderValue::from_str(&reset.to_string()).ok());
            }
            Dialect::XRateLimit => {
                set(map, X_RATELIMIT_LIMIT, Some(self.quota.clone()));
                set(map, X_RATELIMIT_REMAINING, number(left.into()));
                if status == StatusCode::TOO_MANY_REQUESTS {
                    let at = SystemTime::now() + reset.duration();
                    set(map, X_RATELIMIT_RESET, HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok());
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlainResponse {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The limiter's word on this request, for the rate-limit headers; absent
    /// when rate limiting is off or the request never reached the API.
    pub ratelimit: Option<Verdict>,
}

impl PlainResponse {
    pub(crate) fn envelope<T: Serialize>(status: StatusCode, envelope: &Envelope<T>) -> PlainResponse {
        PlainResponse {
            status,
            content_type: JSON,
            body: {
                // A certificate's envelope is about 1 kB: room for it up
                // front spares growing the buffer through every size below.
                let mut body = Vec::with_capacity(2048);
                serde_json::to_writer(&mut body, envelope).expect("envelopes have string keys and plain values");
                body
            },
            ratelimit: None,
        }
    }

    pub(crate) fn ok<T: Serialize>(result: T) -> PlainResponse {
        PlainResponse::envelope(StatusCode::OK, &Envelope::ok(result))
    }

    pub(crate) fn error(status: StatusCode, code: i64, message: impl Into<String>) -> PlainResponse {
        PlainResponse::envelope(status, &Envelope::<()>::error(code, message))
    }

    /// An error with Cloudflare's more specific second error, as it answers
    /// malformed credentials headers.
    pub(crate) fn error_chain(status: StatusCode, errors: [(i64, &str); 2]) -> PlainResponse {
        let envelope = Envelope::<()> {
            success: false,
            errors: errors
                .iter()
                .map(|&(code, message)| ApiMessage {
                    code,
                    message: message.to_string(),
                    documentation_url: None,
                    source: None,
                })
                .collect(),
            messages: vec![],
            result: None,
            result_info: None,
        };
        PlainResponse::envelope(status, &envelope)
    }

    pub(crate) fn with_ratelimit(self, ratelimit: Option<Verdict>) -> PlainResponse {
        PlainResponse { ratelimit, ..self }
    }

    /// `ray` is the cf-ray header, `announcement` the rate-limit headers
    /// in the sandbox's dialect (none without it). Retry-After goes only on
    /// 429s, always.
    pub(crate) fn into_response(self, ray: Option<&str>, announcement: Option<&Announcement>) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let map = response.headers_mut();
        map.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        map.insert(SERVER, HeaderValue::from_static("cloudflare"));
        if let Some(ray) = ray {
            set(map, CF_RAY, HeaderValue::from_str(ray).ok());
        }
        if let Some(verdict) = self.ratelimit {
            if let Some(announcement) = announcement {
                announcement.write(map, verdict, self.status);
            }
            if let (StatusCode::TOO_MANY_REQUESTS, Verdict::Limited { retry_after }) = (self.status, verdict) {
                set(map, RETRY_AFTER, Some(HeaderValue::from(retry_after)));
            }
        }
        response
    }
}

/// Our values are ASCII by construction; one that somehow is not is left
/// out rather than failing the whole answer.
fn set(map: &mut HeaderMap, name: &'static str, value: Option<HeaderValue>) {
    if let Some(value) = value {
        map.insert(HeaderName::from_static(name), value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pacing::headers::{Policy, Remaining};
    use crate::sandbox::ratelimit::Seconds;

    #[test]
    fn error_envelopes_have_a_null_result() {
        let reply = PlainResponse::error(StatusCode::NOT_FOUND, 1415, "Client certificate not found");
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "success": false,
                "errors": [{"code": 1415, "message": "Client certificate not found"}],
                "messages": [],
                "result": null
            })
        );
    }

    #[test]
    fn error_chains_keep_both_codes_in_order() {
        let reply = PlainResponse::error_chain(StatusCode::BAD_REQUEST, [(6003, "a"), (6111, "b")]);
        let envelope: Envelope<()> = serde_json::from_slice(&reply.body).unwrap();
        let codes: Vec<i64> = envelope.errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, [6003, 6111]);
    }

    /// What a sandbox with a quota of 10 per 2 s sends in `dialect`.
    fn announcing(dialect: Option<Dialect>) -> Option<Announcement> {
        let rate = RateLimit { quota: 10, window: Duration::from_secs(2), dialect, ..RateLimit::default() };
        Announcement::new(&rate).unwrap()
    }

    fn limited(status: StatusCode, dialect: Option<Dialect>) -> Response<Body> {
        PlainResponse::error(status, 971, "slow down")
            .with_ratelimit(Some(Verdict::Limited { retry_after: 3 }))
            .into_response(Some("0123456789abcdef-SBX"), announcing(dialect).as_ref())
    }

    #[test]
    fn headers_of_a_rate_limited_answer() {
        let response = limited(StatusCode::TOO_MANY_REQUESTS, Some(Dialect::Structured));
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cf-ray"], "0123456789abcdef-SBX");
        assert_eq!(headers["ratelimit"], "\"default\";r=0;t=3");
        assert_eq!(headers["ratelimit-policy"], "\"default\";q=10;w=2");
        assert_eq!(headers["retry-after"], "3");
    }

    #[test]
    fn retry_after_only_on_429() {
        let response = limited(StatusCode::NOT_FOUND, Some(Dialect::Structured));
        assert!(response.headers().get("retry-after").is_none());
        assert_eq!(response.headers()["ratelimit"], "\"default\";r=0;t=3");
        let quiet = PlainResponse::ok(1).into_response(None, announcing(Some(Dialect::Structured)).as_ref());
        assert!(quiet.headers().get("ratelimit").is_none());
    }

    #[test]
    fn hidden_headers_still_say_when_to_retry() {
        assert!(announcing(None).is_none());
        let response = limited(StatusCode::TOO_MANY_REQUESTS, None);
        let names: Vec<_> = response.headers().keys().map(|name| name.as_str()).collect();
        assert!(names.iter().all(|name| !name.contains("ratelimit")), "{names:?}");
        assert_eq!(response.headers()["retry-after"], "3");
    }

    #[test]
    fn each_dialect_sends_its_own_headers_only() {
        let allowed = |dialect| {
            PlainResponse::ok(1)
                .with_ratelimit(Some(Verdict::Allowed { remaining: 7, reset: Seconds::Whole(2) }))
                .into_response(None, announcing(Some(dialect)).as_ref())
        };
        let sent = |response: &Response<Body>| {
            let mut names: Vec<_> = response
                .headers()
                .iter()
                .filter(|(name, _)| name.as_str().contains("ratelimit"))
                .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            sent(&allowed(Dialect::Structured)),
            ["ratelimit-policy: \"default\";q=10;w=2", "ratelimit: \"default\";r=7;t=2"]
        );
        assert_eq!(
            sent(&allowed(Dialect::Split)),
            ["ratelimit-limit: 10, 10;w=2", "ratelimit-remaining: 7", "ratelimit-reset: 2"]
        );
        assert_eq!(sent(&allowed(Dialect::XRateLimit)), ["x-ratelimit-limit: 10", "x-ratelimit-remaining: 7"]);
        // X-RateLimit-Reset only on a 429, as a date about Retry-After ahead.
        let refused = limited(StatusCode::TOO_MANY_REQUESTS, Some(Dialect::XRateLimit));
        let reset = httpdate::parse_http_date(refused.headers()["x-ratelimit-reset"].to_str().unwrap()).unwrap();
        let ahead = reset.duration_since(SystemTime::now()).unwrap_or_default();
        assert!(ahead > Duration::from_secs(1) && ahead <= Duration::from_secs(3), "{ahead:?}");
        assert_eq!(refused.headers()["retry-after"], "3");
        assert!(limited(StatusCode::NOT_FOUND, Some(Dialect::XRateLimit)).headers().get("x-ratelimit-reset").is_none());
    }

    #[test]
    fn what_each_dialect_sends_reads_back_the_same() {
        let verdict = Verdict::Allowed { remaining: 7, reset: Seconds::Whole(2) };
        for dialect in Dialect::ALL {
            let response = PlainResponse::ok(1)
                .with_ratelimit(Some(verdict))
                .into_response(None, announcing(Some(dialect)).as_ref());
            let read = crate::pacing::headers::read(response.headers(), SystemTime::now());
            assert_eq!(read.dialect, Some(dialect));
            let (remaining, policy) = match dialect {
                // Cloudflare's X- family gives neither a reset nor a window but on a 429.
                Dialect::XRateLimit => (None, None),
                _ => (
                    Some(Remaining { requests: 7, reset: Duration::from_secs(2) }),
                    Some(Policy { quota: 10, window: Duration::from_secs(2) }),
                ),
            };
            assert_eq!((read.remaining, read.policy), (remaining, policy), "{dialect}");
        }
        let refused = limited(StatusCode::TOO_MANY_REQUESTS, Some(Dialect::XRateLimit));
        let read = crate::pacing::headers::read(refused.headers(), SystemTime::now()).remaining.unwrap();
        assert_eq!(read.requests, 0);
        assert!(read.reset > Duration::from_secs(1) && read.reset <= Duration::from_secs(3), "{read:?}");
    }
}
