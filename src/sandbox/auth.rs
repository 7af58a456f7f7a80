//! The simulated user's credentials and Cloudflare's answers to bad ones.

use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::response::PlainResponse;
use crate::api::codes;
use crate::api::headers::{AUTH_EMAIL, AUTH_KEY};

/// Mixed into the seed so the credentials do not depend on other knobs.
const CREDENTIALS_STREAM: u64 = 0x746f_6b65_6e73_0001;

/// Who a request authenticated as: the token, or the legacy email and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal {
    Token,
    Key,
}

#[derive(Debug)]
pub(crate) struct Credentials {
    token: String,
    token_id: String,
    email: String,
    key: String,
    /// Requests the token still has before it dies; `None` for ever.
    uses_left: Option<u64>,
}

impl Credentials {
    /// A 40-character token and a 37-hex-digit global key, the shapes of
    /// Cloudflare's.
    pub(crate) fn new(seed: u64, expires_after: Option<u64>) -> Credentials {
        let mut rng = SmallRng::seed_from_u64(seed ^ CREDENTIALS_STREAM);
        let token = Alphanumeric.sample_string(&mut rng, 40);
        let token_id = format!("{:032x}", rng.random::<u128>());
        let key = format!("{:032x}{:05x}", rng.random::<u128>(), rng.random::<u32>() & 0xf_ffff);
        Credentials { token, token_id, email: "sandbox@example.com".to_string(), key, uses_left: expires_after }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn token_id(&self) -> &str {
        &self.token_id
    }

    pub(crate) fn email(&self) -> &str {
        &self.email
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Checks a request's credentials; a bearer token takes precedence over
    /// email and key, as in the official SDKs. Each accepted use of the token
    /// brings its death nearer.
    pub(crate) fn check(&mut self, headers: &HeaderMap) -> Result<Principal, PlainResponse> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .filter(|token| !token.is_empty() && !token.contains(char::is_whitespace))
                .ok_or_else(|| malformed("Invalid format for Authorization header", 6111))?;
            if token != self.token {
                return Err(PlainResponse::error(StatusCode::FORBIDDEN, codes::INVALID_TOKEN, "Invalid access token"));
            }
            return match &mut self.uses_left {
                Some(0) => Err(refused(StatusCode::UNAUTHORIZED)),
                Some(left) => {
                    *left -= 1;
                    Ok(Principal::Token)
                }
                None => Ok(Principal::Token),
            };
        }
        match (headers.get(AUTH_EMAIL), headers.get(AUTH_KEY)) {
            (None, None) => Err(refused(StatusCode::UNAUTHORIZED)),
            (Some(email), Some(key)) if email == self.email.as_str() && key == self.key.as_str() => Ok(Principal::Key),
            (Some(_), Some(_)) => Err(refused(StatusCode::FORBIDDEN)),
            (Some(_), None) => Err(malformed("Invalid format for X-Auth-Key header", 6103)),
            (None, Some(_)) => Err(malformed("Invalid format for X-Auth-Email header", 6102)),
        }
    }
}

/// Cloudflare's code 10000 answer: 401 without credentials (or once a
/// token's uses are spent), 403 for credentials that may not do this.
pub(crate) fn refused(status: StatusCode) -> PlainResponse {
    PlainResponse::error(status, codes::AUTH_ERROR, "Authentication error")
}

/// 400 with code 6003 and, second, the specific code Cloudflare chains to it.
fn malformed(detail: &str, detail_code: i64) -> PlainResponse {
    PlainResponse::error_chain(
        StatusCode::BAD_REQUEST,
        [(codes::BAD_AUTH_HEADER, "Invalid request headers"), (detail_code, detail)],
    )
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;
    use crate::api::Envelope;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|&(k, v)| (k.parse().unwrap(), HeaderValue::from_str(v).unwrap())).collect()
    }

    fn refusal(result: Result<Principal, PlainResponse>) -> (u16, i64) {
        let reply = result.unwrap_err();
        let envelope: Envelope<()> = serde_json::from_slice(&reply.body).unwrap();
        (reply.status.as_u16(), envelope.errors[0].code)
    }

    #[test]
    fn credentials_have_cloudflare_shapes_and_follow_the_seed() {
        let creds = Credentials::new(1, None);
        assert_eq!(creds.token().len(), 40);
        assert_eq!(creds.key().len(), 37);
        assert_eq!(creds.token(), Credentials::new(1, None).token());
        assert_ne!(creds.token(), Credentials::new(2, None).token());
    }

    #[test]
    fn accepts_the_token_or_the_email_and_key() {
        let mut creds = Credentials::new(1, None);
        let bearer = format!("Bearer {}", creds.token());
        assert_eq!(creds.check(&headers(&[("authorization", &bearer)])), Ok(Principal::Token));
        let (email, key) = (creds.email().to_string(), creds.key().to_string());
        assert_eq!(creds.check(&headers(&[("x-auth-email", &email), ("x-auth-key", &key)])), Ok(Principal::Key));
    }

    #[test]
    fn refusals_carry_cloudflare_codes() {
        let mut creds = Credentials::new(1, None);
        assert_eq!(refusal(creds.check(&HeaderMap::new())), (401, 10000));
        assert_eq!(refusal(creds.check(&headers(&[("authorization", "Bearer wrong")]))), (403, 9109));
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearer a b", "token"] {
            assert_eq!(refusal(creds.check(&headers(&[("authorization", bad)]))), (400, 6003), "{bad}");
        }
        let email = creds.email().to_string();
        assert_eq!(refusal(creds.check(&headers(&[("x-auth-email", &email), ("x-auth-key", "0")]))), (403, 10000));
        assert_eq!(refusal(creds.check(&headers(&[("x-auth-email", &email)]))), (400, 6003));
    }

    #[test]
    fn a_token_dies_after_its_uses() {
        let mut creds = Credentials::new(1, Some(2));
        let bearer = headers(&[("authorization", &format!("Bearer {}", creds.token()))]);
        assert!(creds.check(&bearer).is_ok());
        assert!(creds.check(&bearer).is_ok());
        assert_eq!(refusal(creds.check(&bearer)), (401, 10000));
        assert_eq!(refusal(creds.check(&bearer)), (401, 10000));
    }
}
