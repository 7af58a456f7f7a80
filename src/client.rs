//! The HTTP client for the client-certificate endpoints. It sends one request
//! and reports what came back; deciding what an answer means for a row is the
//! dispatcher's job.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::api::{
    headers, list_query, paths, zones_query, CertStatus, CertificateState, ClientCertificate, Envelope, Ruleset, Zone,
    JSON,
};
use crate::credentials::Credentials;
use crate::escape;
use crate::input::ids::{CertId, ZoneId};
use crate::pacing::headers::{self as ratelimit, Dialect, Policy, Remaining};
pub use crate::transport::TransportError;
use crate::transport::{self, CaBundle};

pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
pub const USER_AGENT: &str =
    concat!("cfrevoke/", env!("CARGO_PKG_VERSION"), " (+bulk mTLS client-certificate revocation)");

/// A validated API root, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(Url);

#[derive(Debug, thiserror::Error)]
pub enum BaseUrlError {
    /// The value is not repeated: it may hold a password.
    #[error("expected an absolute http(s) URL such as {DEFAULT_BASE_URL}")]
    Invalid,
    #[error("refusing plain http:// to {0}: the API token would travel in clear text; use https:// (plain http is allowed only to a loopback address such as 127.0.0.1)")]
    Cleartext(String),
    #[error("the base URL must not carry credentials, a query or a fragment: {0:?}")]
    Extras(String),
}

impl std::str::FromStr for BaseUrl {
    type Err = BaseUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(s.trim()).map_err(|_| BaseUrlError::Invalid)?;
        let host = url.host_str().ok_or(BaseUrlError::Invalid)?.to_string();
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(BaseUrlError::Extras(url.origin().ascii_serialization()));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => return Err(BaseUrlError::Cleartext(host)),
            _ => return Err(BaseUrlError::Invalid),
        }
        Ok(BaseUrl(url))
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

impl BaseUrl {
    /// A zone's certificate collection, `rest` appended to the path. IDs are
    /// formatted from validated binary values (hex digits and dashes), so the
    /// path has exactly this shape whatever the input held and needs no
    /// percent-encoding: it is written out whole and only it is parsed, not
    /// the scheme and host again, nor segment by segment.
    fn collection(&self, zone: ZoneId, rest: std::fmt::Arguments<'_>) -> Url {
        let mut url = self.0.clone();
        let (root, zones, certificates) =
            (self.0.path().trim_end_matches('/'), paths::ZONES, paths::CLIENT_CERTIFICATES);
        url.set_path(&format!("{root}/{zones}/{zone}/{certificates}{rest}"));
        url
    }

    /// The URL of one certificate.
    fn certificate(&self, zone: ZoneId, cert: CertId) -> Url {
        self.collection(zone, format_args!("/{cert}"))
    }

    /// The zone's WAF custom-rules entry point.
    fn custom_rules(&self, zone: ZoneId) -> Url {
        let mut url = self.0.clone();
        let (root, zones, rules) = (self.0.path().trim_end_matches('/'), paths::ZONES, paths::CUSTOM_RULES.join("/"));
        url.set_path(&format!("{root}/{zones}/{zone}/{rules}"));
        url
    }

    /// One page of `GET /zones`. A name is sent only as a query parameter,
    /// never in the path, and is percent-encoded like any query value.
    fn zones(&self, filter: &ZoneFilter<'_>, page: u32, per_page: u32) -> Url {
        let mut url = self.0.clone();
        url.set_path(&format!("{}/{}", self.0.path().trim_end_matches('/'), paths::ZONES));
        let mut query = url.query_pairs_mut();
        if let Some(name) = filter.name {
            query.append_pair(zones_query::NAME, name);
        }
        if let Some(account) = filter.account {
            query.append_pair(zones_query::ACCOUNT_ID, account);
        }
        query.append_pair(list_query::PAGE, &page.to_string()).append_pair(list_query::PER_PAGE, &per_page.to_string());
        drop(query);
        url
    }

    /// One page of a zone's certificates. `status` is always sent, `all`
    /// included, so the answer never rests on an undocumented default.
    fn page(&self, zone: ZoneId, status: Option<CertStatus>, page: u32, per_page: u32) -> Url {
        let mut url = self.collection(zone, format_args!(""));
        url.query_pairs_mut()
            .append_pair(list_query::STATUS, status.map_or(list_query::ALL, CertStatus::as_str))
            .append_pair(list_query::PAGE, &page.to_string())
            .append_pair(list_query::PER_PAGE, &per_page.to_string());
        url
    }
}

/// What `GET /zones` is narrowed to: an exact name, one account.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZoneFilter<'a> {
    pub name: Option<&'a str>,
    pub account: Option<&'a str>,
}

/// What one request brought back; `T` is the envelope's `result`.
#[derive(Debug)]
pub struct ApiReply<T = CertificateState> {
    pub status: u16,
    pub cf_ray: Option<String>,
    pub retry_after: Option<Duration>,
    /// What the rate-limit headers say, where well-formed, and in which
    /// dialect the API said it.
    pub remaining: Option<Remaining>,
    pub policy: Option<Policy>,
    pub dialect: Option<Dialect>,
    /// The envelope, or why the body could not be read as one.
    pub body: Result<Envelope<T>, String>,
    pub latency: Duration,
}

impl ApiReply<CertificateState> {
    /// The certificate status the answer reports, if it carried one.
    pub fn cert_status(&self) -> Option<CertStatus> {
        self.body.as_ref().ok()?.result?.status
    }
}

impl<T> ApiReply<T> {
    /// The API's first error code and message; without an envelope, why the
    /// body could not be read.
    pub fn error(&self) -> (Option<i64>, String) {
        match &self.body {
            Ok(envelope) => envelope.first_error().map_or((None, String::new()), |e| (Some(e.code), e.message.clone())),
            Err(why) => (None, why.clone()),
        }
    }

    /// `HTTP 403: Invalid access token`, for messages about the last answer.
    pub fn describe(&self) -> String {
        match self.error() {
            (_, message) if message.is_empty() => format!("HTTP {}", self.status),
            (Some(code), message) => format!("HTTP {} (code {code}): {message}", self.status),
            (None, message) => format!("HTTP {}: {message}", self.status),
        }
    }
}

/// The client-certificate API, authenticated.
pub struct ApiClient {
    http: reqwest::Client,
    base: BaseUrl,
    timeout: Duration,
    /// The proxy requests go through (`host:port`), named in its errors.
    proxy: Option<String>,
}

fn sensitive(value: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(value).expect("credentials were checked to be header-safe");
    v.set_sensitive(true);
    v
}

/// The innermost cause of an error, which is where hyper and the OS say what
/// actually happened.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl ApiClient {
    pub fn new(base: BaseUrl, credentials: &Credentials, timeout: Duration) -> anyhow::Result<Self> {
        ApiClient::trusting(base, credentials, timeout, None)
    }

    /// The same, trusting `ca` on top of the system's roots (rustls with the
    /// platform verifier, as browsers and curl trust).
    pub fn trusting(
        base: BaseUrl,
        credentials: &Credentials,
        timeout: Duration,
        ca: Option<&CaBundle>,
    ) -> anyhow::Result<Self> {
        let mut auth = HeaderMap::new();
        match credentials {
            Credentials::Token(token) => {
                auth.insert(AUTHORIZATION, sensitive(&format!("Bearer {}", token.expose())));
            }
            Credentials::EmailKey { email, key } => {
                auth.insert(headers::AUTH_EMAIL, sensitive(email));
                auth.insert(headers::AUTH_KEY, sensitive(key.expose()));
            }
        }
        let extra = ca.into_iter().flat_map(CaBundle::certificates);
        let builder = if base.0.scheme() == "http" {
            // Cleartext goes to loopback only (see BaseUrl) and redirects are
            // never followed: no handshake can happen, so the system's store
            // is not even read (a minimal container may have none).
            reqwest::Client::builder().tls_certs_only(extra)
        } else {
            reqwest::Client::builder().tls_certs_merge(extra)
        };
        let http = builder
            .user_agent(USER_AGENT)
            .default_headers(auth)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            // Every attempt is the dispatcher's: paced, counted against the
            // quota and logged. reqwest 0.13 would otherwise resend on its own
            // (HTTP/2 refusals), and clone every request in case it does
            // unless none is allowed.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot set up the HTTP client: {} (pass --ca-cert FILE if this machine has no CA store)",
                    root_cause(&e)
                )
            })?;
        let proxy = transport::proxy_for(&base);
        Ok(ApiClient { http, base, timeout, proxy })
    }

    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    pub async fn revoke(&self, zone: ZoneId, cert: CertId) -> Result<ApiReply, TransportError> {
        self.send(Method::DELETE, self.base.certificate(zone, cert), None).await
    }

    pub async fn get(&self, zone: ZoneId, cert: CertId) -> Result<ApiReply, TransportError> {
        self.send(Method::GET, self.base.certificate(zone, cert), None).await
    }

    /// One page of a zone's certificates, `None` for every status. The API
    /// takes `per_page` from 5 to 50.
    pub async fn list_page(
        &self,
        zone: ZoneId,
        status: Option<CertStatus>,
        page: u32,
        per_page: u32,
    ) -> Result<ApiReply<Vec<ClientCertificate>>, TransportError> {
        self.send(Method::GET, self.base.page(zone, status, page, per_page), None).await
    }

    /// One page of the zones the token can read, narrowed by `filter`.
    pub async fn list_zones(
        &self,
        filter: &ZoneFilter<'_>,
        page: u32,
        per_page: u32,
    ) -> Result<ApiReply<Vec<Zone>>, TransportError> {
        self.send(Method::GET, self.base.zones(filter, page, per_page), None).await
    }

    /// The zone's custom rules, read to learn whether it blocks revoked
    /// certificates; 404 means it has none.
    pub async fn custom_rules(&self, zone: ZoneId) -> Result<ApiReply<Ruleset>, TransportError> {
        self.send(Method::GET, self.base.custom_rules(zone), None).await
    }

    /// The undo: only works while the certificate is `pending_revocation`.
    pub async fn reactivate(&self, zone: ZoneId, cert: CertId) -> Result<ApiReply, TransportError> {
        self.send(Method::PATCH, self.base.certificate(zone, cert), Some(r#"{"reactivate":true}"#)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        json: Option<&'static str>,
    ) -> Result<ApiReply<T>, TransportError> {
        let started = std::time::Instant::now();
        let mut request = self.http.request(method, url);
        if let Some(body) = json {
            request = request.header(reqwest::header::CONTENT_TYPE, JSON).body(body);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let cf_ray = header(headers::CF_RAY).map(escape::server_text);
        let retry_after = header(headers::RETRY_AFTER).and_then(|v| parse_retry_after(v, SystemTime::now()));
        let ratelimit::RateLimitInfo { remaining, policy, dialect } =
            ratelimit::read(response.headers(), SystemTime::now());
        let body = if status.is_redirection() {
            // Not read: a redirect's body is not the API's answer.
            Err(redirect(response.url(), response.headers().get(LOCATION)))
        } else {
            read_capped(response).await.map_err(|e| self.transport(&e))?.and_then(|bytes| decode(&bytes))
        };
        Ok(ApiReply {
            status: status.as_u16(),
            cf_ray,
            retry_after,
            remaining,
            policy,
            dialect,
            body,
            latency: started.elapsed(),
        })
    }

    fn transport(&self, err: &reqwest::Error) -> TransportError {
        if err.is_timeout() {
            TransportError::Timeout(self.timeout)
        } else if let Some(failure) =
            transport::failure(err, self.base.0.host_str().unwrap_or_default(), self.proxy.as_deref())
        {
            failure
        } else if err.is_connect() {
            TransportError::Connect(root_cause(err))
        } else {
            TransportError::Other(root_cause(err))
        }
    }
}

/// The most of a reply body that is read. A certificate's envelope is a few
/// KB and a list page of 50 some hundred KB at most (the sandbox's is 46 KB);
/// a server that sends more (an endless chunked body, a huge
/// `Content-Length`) would otherwise be read into memory until the machine
/// gives out.
const MAX_BODY: usize = 1 << 20;

/// The body, or why it was not read to the end. Over [`MAX_BODY`] the
/// response is dropped unread, and hyper closes a connection whose body was
/// not drained, so nothing more is taken from it.
async fn read_capped(mut response: reqwest::Response) -> Result<Result<Vec<u8>, String>, reqwest::Error> {
    let too_large = || Ok(Err(format!("reply body over {} MiB: not read, connection dropped", MAX_BODY >> 20)));
    let announced = response.content_length().unwrap_or(0);
    if announced > MAX_BODY as u64 {
        return too_large();
    }
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return too_large();
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

/// The envelope, or why the body is not one. serde's message can quote the
/// body (an unknown status value), so it is escaped like any server text.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<T>, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        if bytes.is_empty() {
            "empty response body".to_string()
        } else {
            escape::server_text(&format!("response body is not the API's JSON envelope ({e})"))
        }
    })
}

/// What a 3xx is recorded as. No redirect is ever followed: the credentials
/// would go wherever it points. The location is shown resolved, without the
/// user, password, query or fragment it may carry (a signed link's secret),
/// and escaped.
fn redirect(from: &Url, location: Option<&HeaderValue>) -> String {
    let target = location.map(|value| {
        let mut url = from.join(&String::from_utf8_lossy(value.as_bytes())).ok()?;
        url.set_query(None);
        url.set_fragment(None);
        // Both only fail for URLs that cannot have a user, which then has none.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(url)
    });
    match target {
        Some(Some(url)) => {
            format!(
                "the API answered a redirect to {}; redirects are never followed",
                escape::server_text(url.as_str())
            )
        }
        Some(None) => "the API answered a redirect to an unreadable location; redirects are never followed".into(),
        None => "the API answered a redirect without a location; redirects are never followed".into(),
    }
}

/// `Retry-After` is either whole seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
impl<T> ApiReply<T> {
    /// An answer with just a status and a body, for unit tests of what
    /// answers mean.
    pub(crate) fn bare(status: u16, body: Result<Envelope<T>, String>) -> Self {
        ApiReply {
            status,
            cf_ray: None,
            retry_after: None,
            remaining: None,
            policy: None,
            dialect: None,
            body,
            latency: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_refuses_cleartext_off_loopback() {
        for ok in [
            "https://api.cloudflare.com/client/v4",
            "http://127.0.0.1:8080/client/v4/",
            "http://localhost:1",
            "http://[::1]:9/x",
        ] {
            assert!(ok.parse::<BaseUrl>().is_ok(), "{ok}");
        }
        for bad in [
            "http://api.cloudflare.com/client/v4",
            "http://10.0.0.1/",
            "ftp://x",
            "api.cloudflare.com",
            "https://u:p@h/",
            "https://h/?q=1",
        ] {
            assert!(bad.parse::<BaseUrl>().is_err(), "{bad}");
        }
        let err = "https://user:hunter2@h/".parse::<BaseUrl>().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn certificate_urls_have_a_fixed_shape() {
        let base: BaseUrl = "https://api.cloudflare.com/client/v4/".parse().unwrap();
        let url = base.certificate(
            "023E105F4ECEF8AD9CA31A8372D0C353".parse().unwrap(),
            "568b6b74-7b0c-4755-8840-4e3b8c24adeb".parse().unwrap(),
        );
        assert_eq!(
            url.as_str(),
            "https://api.cloudflare.com/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/client_certificates/568b6b74-7b0c-4755-8840-4e3b8c24adeb"
        );
        assert_eq!(base.to_string(), "https://api.cloudflare.com/client/v4");
    }

    #[test]
    fn page_urls_carry_status_and_paging() {
        let base: BaseUrl = "http://127.0.0.1:9/client/v4".parse().unwrap();
        let zone = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        assert_eq!(
            base.page(zone, Some(CertStatus::PendingRevocation), 3, 50).as_str(),
            "http://127.0.0.1:9/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/client_certificates?status=pending_revocation&page=3&per_page=50"
        );
        assert!(base.page(zone, None, 1, 5).as_str().ends_with("/client_certificates?status=all&page=1&per_page=5"));
    }

    #[test]
    fn zones_urls_carry_the_name_only_in_the_query() {
        let base: BaseUrl = "http://127.0.0.1:9/client/v4/".parse().unwrap();
        let filter = ZoneFilter { name: Some("shop.example.com"), account: Some("0123456789abcdef0123456789abcdef") };
        assert_eq!(
            base.zones(&filter, 2, 50).as_str(),
            "http://127.0.0.1:9/client/v4/zones?name=shop.example.com&account.id=0123456789abcdef0123456789abcdef&page=2&per_page=50"
        );
        assert_eq!(
            base.zones(&ZoneFilter::default(), 1, 5).as_str(),
            "http://127.0.0.1:9/client/v4/zones?page=1&per_page=5"
        );
    }

    #[test]
    fn custom_rules_url_is_the_zones_entry_point() {
        let base: BaseUrl = "http://127.0.0.1:9/client/v4/".parse().unwrap();
        assert_eq!(
            base.custom_rules("023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap()).as_str(),
            "http://127.0.0.1:9/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/rulesets/phases/http_request_firewall_custom/entrypoint"
        );
    }

    #[test]
    fn a_redirect_is_reported_without_secrets() {
        let from: Url = "https://api.cloudflare.com/client/v4/zones/z/client_certificates/c".parse().unwrap();
        let shown =
            |location: Option<&str>| redirect(&from, location.map(|l| HeaderValue::from_str(l).unwrap()).as_ref());
        assert_eq!(
            shown(Some("https://me:pw@evil.example/a%20b?sig=x#f")),
            "the API answered a redirect to https://evil.example/a%20b; redirects are never followed"
        );
        assert!(
            shown(Some("other")).contains("to https://api.cloudflare.com/client/v4/zones/z/client_certificates/other;")
        );
        assert!(shown(Some("http://[::1")).contains("to an unreadable location;"));
        assert!(shown(None).contains("a redirect without a location;"));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("300", now), Some(Duration::from_secs(300)));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(120)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
