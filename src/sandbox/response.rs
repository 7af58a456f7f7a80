//! A response before it meets the wire: plain data, so a fault can spoil it
//! and a test can read it without a socket.

use axum::body::Body;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, SERVER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::ratelimit::Verdict;
use crate::api::headers::{CF_RAY, RATELIMIT, RATELIMIT_POLICY, RETRY_AFTER};
use crate::api::{ApiMessage, Envelope, JSON};

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

    /// `ray` is the cf-ray header, `policy` the Ratelimit-Policy value sent
    /// alongside every Ratelimit header (neither without `policy`).
    /// Retry-After goes only on 429s, always.
    pub(crate) fn into_response(self, ray: Option<&str>, policy: Option<&HeaderValue>) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        let map = response.headers_mut();
        map.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        map.insert(SERVER, HeaderValue::from_static("cloudflare"));
        if let Some(ray) = ray {
            set(map, CF_RAY, HeaderValue::from_str(ray).ok());
        }
        if let Some(verdict) = self.ratelimit {
            if let Some(policy) = policy {
                set(map, RATELIMIT, HeaderValue::from_str(&verdict.header()).ok());
                set(map, RATELIMIT_POLICY, Some(policy.clone()));
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
    use super::*;

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

    #[test]
    fn headers_of_a_rate_limited_answer() {
        let policy = HeaderValue::from_static("\"default\";q=10;w=2");
        let response = PlainResponse::error(StatusCode::TOO_MANY_REQUESTS, 971, "slow down")
            .with_ratelimit(Some(Verdict::Limited { retry_after: 3 }))
            .into_response(Some("0123456789abcdef-SBX"), Some(&policy));
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cf-ray"], "0123456789abcdef-SBX");
        assert_eq!(headers["ratelimit"], "\"default\";r=0;t=3");
        assert_eq!(headers["ratelimit-policy"], "\"default\";q=10;w=2");
        assert_eq!(headers["retry-after"], "3");
    }

    #[test]
    fn retry_after_only_on_429() {
        let policy = HeaderValue::from_static("\"default\";q=10;w=2");
        let response = PlainResponse::error(StatusCode::NOT_FOUND, 7000, "No route for the URI")
            .with_ratelimit(Some(Verdict::Limited { retry_after: 3 }))
            .into_response(None, Some(&policy));
        assert!(response.headers().get("retry-after").is_none());
        assert_eq!(response.headers()["ratelimit"], "\"default\";r=0;t=3");
        let quiet = PlainResponse::ok(1).into_response(None, Some(&policy));
        assert!(quiet.headers().get("ratelimit").is_none());
    }

    #[test]
    fn hidden_headers_still_say_when_to_retry() {
        let response = PlainResponse::error(StatusCode::TOO_MANY_REQUESTS, 971, "slow down")
            .with_ratelimit(Some(Verdict::Limited { retry_after: 3 }))
            .into_response(None, None);
        assert!(response.headers().get("ratelimit").is_none() && response.headers().get("ratelimit-policy").is_none());
        assert_eq!(response.headers()["retry-after"], "3");
    }
}
