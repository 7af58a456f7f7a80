//! Wire types of Cloudflare's v4 envelope, shared by the client and the sandbox
//! so both sides agree on one description of the API.

use serde::{Deserialize, Serialize};

use crate::escape;
use crate::input::ids::CertId;

/// Error codes observed from the client-certificate endpoints
/// (see `shared/cloudflare/API-NOTES.md`).
pub mod codes {
    /// Revoking a certificate that is already revoked.
    pub const ALREADY_REVOKED: i64 = 1407;
    /// Unknown client certificate.
    pub const CERT_NOT_FOUND: i64 = 1415;
    /// Rate limited: "Please wait and consider throttling your request speed".
    pub const RATE_LIMITED: i64 = 971;
    /// Older rate-limit code still seen in the wild.
    pub const RATE_LIMITED_OLD: i64 = 10100;
    /// Authentication error.
    pub const AUTH_ERROR: i64 = 10000;
    /// Unauthorized / invalid token.
    pub const INVALID_TOKEN: i64 = 9109;
    /// Malformed Authorization header.
    pub const BAD_AUTH_HEADER: i64 = 6003;
    /// No route for the URI.
    pub const NO_ROUTE: i64 = 7000;
    /// Invalid object identifier.
    pub const INVALID_IDENTIFIER: i64 = 7003;
}

/// Whether a request may have been carried out although its answer does not
/// say so: no answer at all (`None`), a 5xx (an edge can fail after the API
/// did the work), or a 2xx that could not be read or did not answer the
/// request. A 4xx is a refusal. The dispatcher asks it of each attempt, and
/// a resumed run of a results row's `http_status`, where empty means no
/// answer.
pub fn maybe_carried_out(status: Option<u16>) -> bool {
    status.is_none_or(|s| matches!(s, 200..=299 | 500..=599))
}

/// `{"success": bool, "errors": [...], "messages": [...], "result": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    #[serde(default)]
    pub messages: Vec<ApiMessage>,
    #[serde(default = "Option::default")]
    pub result: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
}

/// An error or message of the envelope. Its text is the server's, bound for
/// stderr, results and logs, so it is escaped as it is decoded
/// ([`crate::escape`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMessage {
    pub code: i64,
    #[serde(deserialize_with = "escape::deserialize")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "escape::deserialize_option")]
    pub documentation_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSource {
    #[serde(deserialize_with = "escape::deserialize")]
    pub pointer: String,
}

/// Paging data of list responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultInfo {
    pub count: u64,
    pub page: u64,
    pub per_page: u64,
    pub total_count: u64,
    pub total_pages: u64,
}

/// The certificate states of the OpenAPI `status` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertStatus {
    Active,
    PendingReactivation,
    PendingRevocation,
    Revoked,
}

impl CertStatus {
    pub const ALL: [CertStatus; 4] =
        [CertStatus::Active, CertStatus::PendingReactivation, CertStatus::PendingRevocation, CertStatus::Revoked];

    /// [`CertStatus::ALL`] by name, for saying what is accepted.
    pub const NAMES: [&'static str; 4] = {
        let mut names = [""; 4];
        let mut i = 0;
        while i < names.len() {
            names[i] = CertStatus::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// The API's name for the status, in its answers and in the list
    /// endpoint's query; cfrevoke's results and listings spell it the same.
    pub const fn as_str(self) -> &'static str {
        match self {
            CertStatus::Active => "active",
            CertStatus::PendingReactivation => "pending_reactivation",
            CertStatus::PendingRevocation => "pending_revocation",
            CertStatus::Revoked => "revoked",
        }
    }

    /// The status `name` is the API's name for.
    pub fn parse(name: &str) -> Option<CertStatus> {
        CertStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// Written and read by [`CertStatus::as_str`], so the client, the sandbox
/// and the listing cannot disagree on a name.
impl Serialize for CertStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CertStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        CertStatus::parse(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, &CertStatus::NAMES))
    }
}

/// The path segments of the certificate endpoints,
/// `zones/{zone}/client_certificates[/{cert}]`, as the client builds them and
/// the sandbox routes them.
pub mod paths {
    pub const ZONES: &str = "zones";
    pub const CLIENT_CERTIFICATES: &str = "client_certificates";
    /// `zones/{zone}/rulesets/phases/http_request_firewall_custom/entrypoint`:
    /// the zone's WAF custom rules, where revocation is (or is not) enforced.
    pub const CUSTOM_RULES: [&str; 4] = ["rulesets", "phases", CUSTOM_FIREWALL_PHASE, "entrypoint"];
    /// The phase of WAF custom rules, as a ruleset names it.
    pub const CUSTOM_FIREWALL_PHASE: &str = "http_request_firewall_custom";
}

/// The list endpoint's query parameters, as the client sends them and the
/// sandbox reads them.
pub mod list_query {
    pub const STATUS: &str = "status";
    pub const PAGE: &str = "page";
    pub const PER_PAGE: &str = "per_page";
    /// The `status` value that asks for certificates in every status.
    pub const ALL: &str = "all";
}

/// `GET /zones`'s query parameters besides [`list_query::PAGE`] and
/// [`list_query::PER_PAGE`], as the client sends them and the sandbox reads them.
pub mod zones_query {
    /// An exact zone name (the API reads a `contains:`-style prefix as an operator).
    pub const NAME: &str = "name";
    pub const ACCOUNT_ID: &str = "account.id";
}

/// A zone as `GET /zones` answers it. cfrevoke reads the ID and the name;
/// the rest is what the sandbox serves so that other clients (the official
/// SDK) find a zone's usual shape. The name is the server's and bound for
/// the terminal and a CSV, so it is escaped as it is decoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub id: String,
    #[serde(default, deserialize_with = "escape::deserialize")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<ZoneAccount>,
}

/// The account a zone belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneAccount {
    pub id: String,
    #[serde(default, deserialize_with = "escape::deserialize")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateAuthority {
    pub id: String,
    pub name: String,
}

/// A client certificate as the API returns it. Every field but `id` is
/// optional on the way in: the client must cope with partial answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientCertificate {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CertStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<CertificateAuthority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ski: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<u32>,
}

/// What a reply about one certificate is read for: its status. Only this is
/// decoded; the rest of the certificate (the PEM and the CSR are most of the
/// body) is skipped without being copied, which matters at thousands of
/// replies a second. `list` reads whole [`ClientCertificate`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct CertificateState {
    /// Which certificate the answer is about: a 2xx about another one is no
    /// answer to the request.
    #[serde(default, deserialize_with = "answered_id")]
    pub id: Option<CertId>,
    #[serde(default)]
    pub status: Option<CertStatus>,
}

/// An answer's `id`, parsed as the input's IDs are so that it compares with
/// the certificate asked about. An `id` no certificate can have makes the
/// body unreadable, which is retried like any garbled answer.
fn answered_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<CertId>, D::Error> {
    struct Id;
    impl serde::de::Visitor<'_> for Id {
        type Value = Option<CertId>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a certificate id")
        }

        fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<Self::Value, E> {
            CertId::parse(id.as_bytes()).map(Some).map_err(|e| E::custom(format!("expected {e}")))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Id)
}

impl<T> Envelope<T> {
    pub fn ok(result: T) -> Self {
        Envelope { success: true, errors: vec![], messages: vec![], result: Some(result), result_info: None }
    }

    pub fn error(code: i64, message: impl Into<String>) -> Self {
        Envelope {
            success: false,
            errors: vec![ApiMessage { code, message: message.into(), documentation_url: None, source: None }],
            messages: vec![],
            result: None,
            result_info: None,
        }
    }

    /// The first error, which is what a results row reports.
    pub fn first_error(&self) -> Option<&ApiMessage> {
        self.errors.first()
    }
}

/// A zone's entry-point ruleset for a phase (API-NOTES.md, "Whether a zone
/// enforces revocation"). Only what the enforcement check reads is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ruleset {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One custom rule. Its text is the server's and bound for the terminal and
/// a CSV, so it is escaped as it is decoded, like every server message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, deserialize_with = "escape::deserialize")]
    pub id: String,
    #[serde(default, deserialize_with = "escape::deserialize")]
    pub expression: String,
    #[serde(default, deserialize_with = "escape::deserialize")]
    pub action: String,
    /// The API's default when the field is absent.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "escape::deserialize_option")]
    pub description: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// The content type of every envelope, in a request body and in an answer.
pub const JSON: &str = "application/json";

/// The headers that the client and the sandbox both name.
pub mod headers {
    /// The IETF-draft rate-limit headers Cloudflare sends on every response.
    pub const RATELIMIT: &str = "ratelimit";
    pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
    /// The split form of an earlier draft, which Cloudflare documented before the structured one.
    pub const RATELIMIT_LIMIT: &str = "ratelimit-limit";
    pub const RATELIMIT_REMAINING: &str = "ratelimit-remaining";
    pub const RATELIMIT_RESET: &str = "ratelimit-reset";
    /// The form Cloudflare documented first, and many other APIs send.
    pub const X_RATELIMIT_LIMIT: &str = "x-ratelimit-limit";
    pub const X_RATELIMIT_REMAINING: &str = "x-ratelimit-remaining";
    pub const X_RATELIMIT_RESET: &str = "x-ratelimit-reset";
    pub const RETRY_AFTER: &str = "retry-after";
    pub const CF_RAY: &str = "cf-ray";
    /// The legacy credentials: an account's email and its global API key.
    pub const AUTH_EMAIL: &str = "x-auth-email";
    pub const AUTH_KEY: &str = "x-auth-key";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_one_name_both_ways() {
        for status in CertStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<CertStatus>(&json).unwrap(), status);
            assert_eq!(CertStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CertStatus::NAMES, ["active", "pending_reactivation", "pending_revocation", "revoked"]);
        let err = serde_json::from_str::<CertStatus>("\"gone\"").unwrap_err().to_string();
        assert!(err.starts_with("unknown variant `gone`, expected one of `active`, `pending_reactivation`"), "{err}");
        assert_eq!(CertStatus::parse(list_query::ALL), None);
    }
}
