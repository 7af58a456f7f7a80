//! Which endpoint a request is for, and its list parameters.
//!
//! Routing is done by hand rather than by a router so that every answer,
//! a bad identifier or an unknown path included, is Cloudflare's envelope
//! with Cloudflare's code, and so the same parse serves both the journal
//! (at arrival) and the handler.

use hyper::Method;

use crate::api::{list_query, paths, zones_query, CertStatus};
use crate::input::ids::{CertId, ZoneId};

/// The certificate a request addresses; the store is keyed the same way, so
/// a parsed route can be handed to it as it is.
pub(crate) type CertKey = (ZoneId, CertId);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertOp {
    Get,
    Delete,
    Patch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Api(Endpoint),
    /// Answered 404 with code 7000, like any path Cloudflare does not serve.
    Unknown,
    /// `GET /__sandbox/stats`
    Stats,
    /// `POST /__sandbox/reset-journal`
    ResetJournal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    List(ZoneId),
    Cert(CertOp, CertKey),
    VerifyToken,
    /// `GET zones`: the zones the token can read.
    Zones,
    /// `GET zones/{zone}/rulesets/phases/http_request_firewall_custom/entrypoint`
    CustomRules(ZoneId),
    /// A known path whose zone or certificate ID does not parse (code 7003).
    InvalidId,
}

const API_PREFIX: &str = "/client/v4/";

impl Route {
    pub(crate) fn parse(method: &Method, path: &str) -> Route {
        let Some(rest) = path.strip_prefix(API_PREFIX) else {
            return match (method, path) {
                (&Method::GET, "/__sandbox/stats") => Route::Stats,
                (&Method::POST, "/__sandbox/reset-journal") => Route::ResetJournal,
                _ => Route::Unknown,
            };
        };
        if let Some(endpoint) = custom_rules(method, rest) {
            return Route::Api(endpoint);
        }
        let mut parts = rest.split('/');
        let segments: [Option<&str>; 4] = std::array::from_fn(|_| parts.next());
        if parts.next().is_some() {
            return Route::Unknown;
        }
        let endpoint = match segments {
            [Some(paths::ZONES), None, None, None] if method == Method::GET => Endpoint::Zones,
            [Some(paths::ZONES), Some(zone), Some(paths::CLIENT_CERTIFICATES), None] if method == Method::GET => {
                ZoneId::parse(zone.as_bytes()).map_or(Endpoint::InvalidId, Endpoint::List)
            }
            [Some(paths::ZONES), Some(zone), Some(paths::CLIENT_CERTIFICATES), Some(cert)] => {
                let op = match *method {
                    Method::GET => CertOp::Get,
                    Method::DELETE => CertOp::Delete,
                    Method::PATCH => CertOp::Patch,
                    _ => return Route::Unknown,
                };
                match (ZoneId::parse(zone.as_bytes()), CertId::parse(cert.as_bytes())) {
                    (Ok(zone), Ok(cert)) => Endpoint::Cert(op, (zone, cert)),
                    _ => Endpoint::InvalidId,
                }
            }
            [Some("user"), Some("tokens"), Some("verify"), None] if method == Method::GET => Endpoint::VerifyToken,
            _ => return Route::Unknown,
        };
        Route::Api(endpoint)
    }
}

/// The custom-rules entry point, if `rest` (the path under the API root) is it.
fn custom_rules(method: &Method, rest: &str) -> Option<Endpoint> {
    let (zone, tail) = rest.strip_prefix(paths::ZONES)?.strip_prefix('/')?.split_once('/')?;
    let matches = method == Method::GET && tail.split('/').eq(paths::CUSTOM_RULES);
    matches.then(|| ZoneId::parse(zone.as_bytes()).map_or(Endpoint::InvalidId, Endpoint::CustomRules))
}

/// The list endpoint's query: `status`, `page`, `per_page`; other
/// parameters (the spec also names `limit` and `offset`) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListQuery {
    /// `None` for `all`.
    pub status: Option<CertStatus>,
    pub page: u64,
    pub per_page: u64,
}

impl ListQuery {
    /// Values are taken literally (no percent-decoding): every valid value
    /// is plain ASCII. The error is the message to answer with.
    pub(crate) fn parse(query: Option<&str>) -> Result<ListQuery, String> {
        let mut parsed = ListQuery { status: None, page: 1, per_page: 20 };
        for (key, value) in pairs(query) {
            match key {
                list_query::STATUS => parsed.status = parse_status(value)?,
                _ => parse_paging(key, value, &mut parsed.page, &mut parsed.per_page)?,
            }
        }
        Ok(parsed)
    }
}

/// `GET /zones`'s query: the exact `name`, `account.id`, `page`, `per_page`;
/// other parameters are ignored. A `name` is percent-decoded, as the SDKs
/// encode it; the rest is plain ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZonesQuery {
    pub name: Option<String>,
    pub account: Option<String>,
    pub page: u64,
    pub per_page: u64,
}

impl ZonesQuery {
    pub(crate) fn parse(query: Option<&str>) -> Result<ZonesQuery, String> {
        let mut parsed = ZonesQuery { name: None, account: None, page: 1, per_page: 20 };
        for (key, value) in pairs(query) {
            match key {
                zones_query::NAME => {
                    let decoded = percent_decode(value).ok_or_else(|| format!("name is not valid UTF-8: {value:?}"))?;
                    parsed.name = Some(decoded);
                }
                zones_query::ACCOUNT_ID => parsed.account = Some(value.to_ascii_lowercase()),
                _ => parse_paging(key, value, &mut parsed.page, &mut parsed.per_page)?,
            }
        }
        Ok(parsed)
    }
}

fn pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// `page` and `per_page`, read alike by both list endpoints; any other key is ignored.
fn parse_paging(key: &str, value: &str, page: &mut u64, per_page: &mut u64) -> Result<(), String> {
    match key {
        list_query::PAGE => {
            *page = value
                .parse()
                .ok()
                .filter(|&p| p >= 1)
                .ok_or_else(|| format!("page must be a whole number of at least 1, not {value:?}"))?;
        }
        list_query::PER_PAGE => {
            *per_page = value
                .parse()
                .ok()
                .filter(|p| (5..=50).contains(p))
                .ok_or_else(|| format!("per_page must be a whole number from 5 to 50, not {value:?}"))?;
        }
        _ => {}
    }
    Ok(())
}

/// `%XX` and `+` decoded; `None` if the bytes are not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let (bytes, mut out, mut i) = (value.as_bytes(), Vec::with_capacity(value.len()), 0);
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn parse_status(value: &str) -> Result<Option<CertStatus>, String> {
    if value == list_query::ALL {
        return Ok(None);
    }
    CertStatus::parse(value).map(Some).ok_or_else(|| {
        format!("status must be one of {}, {}, not {value:?}", list_query::ALL, CertStatus::NAMES.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const CERT: &str = "568b6b74-7b0c-4755-8840-4e3b8c24adeb";

    fn cert_path(zone: &str, cert: &str) -> String {
        format!("/client/v4/zones/{zone}/client_certificates/{cert}")
    }

    #[test]
    fn certificate_endpoints() {
        let key = (ZONE.parse().unwrap(), CERT.parse().unwrap());
        for (method, op) in
            [(Method::GET, CertOp::Get), (Method::DELETE, CertOp::Delete), (Method::PATCH, CertOp::Patch)]
        {
            assert_eq!(Route::parse(&method, &cert_path(ZONE, CERT)), Route::Api(Endpoint::Cert(op, key)));
        }
        assert_eq!(Route::parse(&Method::POST, &cert_path(ZONE, CERT)), Route::Unknown);
        let list = format!("/client/v4/zones/{ZONE}/client_certificates");
        assert_eq!(Route::parse(&Method::GET, &list), Route::Api(Endpoint::List(key.0)));
        assert_eq!(Route::parse(&Method::DELETE, &list), Route::Unknown);
        assert_eq!(Route::parse(&Method::GET, "/client/v4/user/tokens/verify"), Route::Api(Endpoint::VerifyToken));
        assert_eq!(Route::parse(&Method::GET, "/client/v4/zones"), Route::Api(Endpoint::Zones));
        assert_eq!(Route::parse(&Method::DELETE, "/client/v4/zones"), Route::Unknown);
        let rules = "rulesets/phases/http_request_firewall_custom/entrypoint";
        let path = format!("/client/v4/zones/{ZONE}/{rules}");
        assert_eq!(Route::parse(&Method::GET, &path), Route::Api(Endpoint::CustomRules(key.0)));
        assert_eq!(Route::parse(&Method::PUT, &path), Route::Unknown);
        assert_eq!(
            Route::parse(&Method::GET, &format!("/client/v4/zones/nope/{rules}")),
            Route::Api(Endpoint::InvalidId)
        );
        assert_eq!(Route::parse(&Method::GET, &format!("{path}/x")), Route::Unknown);
    }

    #[test]
    fn bad_identifiers_and_unknown_paths() {
        for path in [cert_path("nope", CERT), cert_path(ZONE, "..%2F..%2Fx"), cert_path(ZONE, "")] {
            assert_eq!(Route::parse(&Method::DELETE, &path), Route::Api(Endpoint::InvalidId), "{path}");
        }
        for path in [
            format!("{}/extra", cert_path(ZONE, CERT)),
            "/client/v4/".to_string(),
            "/".to_string(),
            "/__sandbox/nothing".to_string(),
        ] {
            assert_eq!(Route::parse(&Method::GET, &path), Route::Unknown, "{path}");
        }
        assert_eq!(Route::parse(&Method::GET, "/__sandbox/stats"), Route::Stats);
        assert_eq!(Route::parse(&Method::POST, "/__sandbox/reset-journal"), Route::ResetJournal);
        assert_eq!(Route::parse(&Method::GET, "/__sandbox/reset-journal"), Route::Unknown);
    }

    #[test]
    fn list_query_defaults_and_limits() {
        assert_eq!(ListQuery::parse(None), Ok(ListQuery { status: None, page: 1, per_page: 20 }));
        assert_eq!(
            ListQuery::parse(Some("status=revoked&page=3&per_page=50&limit=7")),
            Ok(ListQuery { status: Some(CertStatus::Revoked), page: 3, per_page: 50 })
        );
        assert_eq!(ListQuery::parse(Some("status=all")).unwrap().status, None);
        for bad in ["per_page=4", "per_page=51", "per_page=x", "page=0", "page=-1", "status=gone", "page"] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn zones_query_reads_name_account_and_paging() {
        assert_eq!(
            ZonesQuery::parse(Some("name=zone%2D1.example&account.id=ABC&page=2&per_page=5&status=active")),
            Ok(ZonesQuery { name: Some("zone-1.example".into()), account: Some("abc".into()), page: 2, per_page: 5 })
        );
        assert_eq!(ZonesQuery::parse(None).unwrap(), ZonesQuery { name: None, account: None, page: 1, per_page: 20 });
        for bad in ["per_page=51", "page=0", "name=%FF"] {
            assert!(ZonesQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
