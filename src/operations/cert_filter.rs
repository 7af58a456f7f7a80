//! Which listed certificates `list` keeps. The API filters only by status;
//! everything else an incident is described by (a name pattern, a date, a
//! CA, a serial or fingerprint from a log, a leaked PEM) is checked here, on
//! the certificates as the API described them.

use std::fmt;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::api::ClientCertificate;
use crate::operations::glob::Glob;
use crate::operations::timestamp;

/// Every filter set must match; an unset one matches everything. The
/// identifiers are the exception: any one of them is enough, since each names
/// certificates of its own (a leaked file, a serial from a log), and the
/// other filters then narrow what they found.
#[derive(Debug, Default)]
pub struct CertFilter {
    pub common_name: Option<Glob>,
    /// Matched against the CA's name and its ID.
    pub ca: Option<Glob>,
    pub organization: Option<Glob>,
    pub organizational_unit: Option<Glob>,
    pub issued_before: Option<SystemTime>,
    pub expires_before: Option<SystemTime>,
    pub identifiers: Vec<Wanted>,
}

/// Which field of a certificate an identifier is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Serial,
    Fingerprint,
    Ski,
}

impl IdKind {
    /// The prefix a `--match-file` line may carry, also how it is shown.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Serial => "serial",
            IdKind::Fingerprint => "sha256",
            IdKind::Ski => "ski",
        }
    }

    fn field(self, cert: &ClientCertificate) -> Option<&str> {
        match self {
            IdKind::Serial => cert.serial_number.as_deref(),
            IdKind::Fingerprint => cert.fingerprint_sha256.as_deref(),
            IdKind::Ski => cert.ski.as_deref(),
        }
    }
}

/// A serial, SHA-256 fingerprint or SKI in one canonical spelling (lower-case
/// hex, no separators; a serial without leading zeros), so `0A:1B` from a log
/// and `0a1b` from the API compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    kind: IdKind,
    hex: String,
}

#[derive(Debug, thiserror::Error)]
#[error("expected a {what} in hex (colons and spaces allowed), found {found:?}")]
pub struct IdentifierError {
    what: &'static str,
    found: String,
}

impl Identifier {
    pub fn new(kind: IdKind, text: &str) -> Result<Identifier, IdentifierError> {
        let hex = canonical(kind, text).ok_or_else(|| IdentifierError {
            what: match kind {
                IdKind::Serial => "serial number",
                IdKind::Fingerprint => "SHA-256 fingerprint (64 hex digits)",
                IdKind::Ski => "subject key identifier",
            },
            found: text.chars().take(80).collect(),
        })?;
        Ok(Identifier { kind, hex })
    }

    /// A DER certificate in hand, matched by the SHA-256 the API reports.
    pub fn of_der(der: &[u8]) -> Identifier {
        Identifier { kind: IdKind::Fingerprint, hex: hex(&Sha256::digest(der)) }
    }

    pub fn kind(&self) -> IdKind {
        self.kind
    }

    fn matches(&self, cert: &ClientCertificate) -> bool {
        self.kind.field(cert).and_then(|field| canonical(self.kind, field)).is_some_and(|hex| hex == self.hex)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.prefix(), self.hex)
    }
}

/// `None` when `text` is not hex once separators are dropped, or is no
/// fingerprint's length.
fn canonical(kind: IdKind, text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| !matches!(c, ':' | ' ' | '\t')).collect::<String>().to_ascii_lowercase();
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match kind {
        IdKind::Fingerprint if hex.len() != 64 => None,
        IdKind::Serial => Some(match hex.trim_start_matches('0') {
            "" => "0".to_string(),
            digits => digits.to_string(),
        }),
        _ => Some(hex),
    }
}

/// Lower-case hex, as the API spells serials, fingerprints and SKIs.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// An identifier and where it was given, for the report of those that
/// matched nothing.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub id: Identifier,
    pub source: String,
}

impl CertFilter {
    /// Which of the identifiers `cert` answers to, by index.
    pub fn identified<'a>(&'a self, cert: &'a ClientCertificate) -> impl Iterator<Item = usize> + 'a {
        self.identifiers.iter().enumerate().filter(|(_, w)| w.id.matches(cert)).map(|(i, _)| i)
    }

    /// A certificate lacking a field a filter looks at does not match it:
    /// `list` feeds revocation, and nothing is revoked on a guess.
    pub fn matches(&self, cert: &ClientCertificate) -> bool {
        let field = |glob: &Option<Glob>, value: &Option<String>| {
            glob.as_ref().is_none_or(|glob| value.as_deref().is_some_and(|v| glob.matches(v)))
        };
        let from_ca = self.ca.as_ref().is_none_or(|glob| {
            cert.certificate_authority.as_ref().is_some_and(|ca| glob.matches(&ca.name) || glob.matches(&ca.id))
        });
        field(&self.common_name, &cert.common_name)
            && from_ca
            && field(&self.organization, &cert.organization)
            && field(&self.organizational_unit, &cert.organizational_unit)
            && (self.identifiers.is_empty() || self.identifiers.iter().any(|w| w.id.matches(cert)))
            && before(self.issued_before, cert, "issued_on", cert.issued_on.as_deref())
            && before(self.expires_before, cert, "expires_on", cert.expires_on.as_deref())
    }
}

/// Whether `date` is strictly before `cutoff` (true without a cutoff). An
/// unreadable date is worth a warning: it is the one way a certificate the
/// user meant could be left out silently.
fn before(cutoff: Option<SystemTime>, cert: &ClientCertificate, field: &str, date: Option<&str>) -> bool {
    let Some(cutoff) = cutoff else {
        return true;
    };
    match date.map(timestamp::parse) {
        Some(Ok(date)) => date < cutoff,
        Some(Err(_)) | None => {
            tracing::warn!(certificate_id = %cert.id, field, value = date, "left out: its date cannot be read");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CertificateAuthority;

    fn cert() -> ClientCertificate {
        ClientCertificate {
            id: "568b6b74-7b0c-4755-8840-4e3b8c24adeb".into(),
            common_name: Some("contractor-alice.example.com".into()),
            certificate_authority: Some(CertificateAuthority {
                id: "f7e2c1d0-0000-4000-8000-000000000001".into(),
                name: "Cloudflare Managed CA for account".into(),
            }),
            issued_on: Some("2023-02-23T23:18:00Z".into()),
            expires_on: Some("2033-02-20T23:18:00Z".into()),
            organization: Some("Contractors Ltd".into()),
            organizational_unit: Some("Field team".into()),
            serial_number: Some("00a1b2c3".into()),
            ski: Some("0011aabb".into()),
            fingerprint_sha256: Some("ab".repeat(32)),
            ..ClientCertificate::default()
        }
    }

    fn date(text: &str) -> Option<SystemTime> {
        Some(timestamp::parse(text).unwrap())
    }

    #[test]
    fn no_filter_keeps_everything() {
        assert!(CertFilter::default().matches(&cert()));
        assert!(CertFilter::default().matches(&ClientCertificate::default()));
    }

    #[test]
    fn each_filter_narrows() {
        let by_name = |glob: &str| CertFilter { common_name: Some(Glob::new(glob)), ..CertFilter::default() };
        assert!(by_name("CONTRACTOR-*").matches(&cert()));
        assert!(!by_name("employee-*").matches(&cert()));
        let by_ca = |glob: &str| CertFilter { ca: Some(Glob::new(glob)), ..CertFilter::default() };
        assert!(by_ca("cloudflare managed ca for account").matches(&cert()));
        assert!(by_ca("f7e2c1d0-*").matches(&cert()));
        assert!(!by_ca("Other CA").matches(&cert()));
        let issued = |cutoff: &str| CertFilter { issued_before: date(cutoff), ..CertFilter::default() };
        assert!(issued("2023-02-24").matches(&cert()));
        assert!(!issued("2023-02-23T23:18:00Z").matches(&cert()), "strictly before");
        let expires = |cutoff: &str| CertFilter { expires_before: date(cutoff), ..CertFilter::default() };
        assert!(expires("2034-01-01").matches(&cert()));
        assert!(!expires("2033-01-01").matches(&cert()));
    }

    #[test]
    fn a_missing_or_unreadable_field_does_not_match() {
        let all = CertFilter {
            common_name: Some(Glob::new("*")),
            ca: Some(Glob::new("*")),
            organization: Some(Glob::new("*")),
            organizational_unit: Some(Glob::new("*")),
            issued_before: date("2100-01-01"),
            expires_before: date("2100-01-01"),
            identifiers: vec![],
        };
        assert!(all.matches(&cert()));
        assert!(!all.matches(&ClientCertificate { common_name: None, ..cert() }));
        assert!(!all.matches(&ClientCertificate { certificate_authority: None, ..cert() }));
        assert!(!all.matches(&ClientCertificate { issued_on: Some("last week".into()), ..cert() }));
        assert!(!all.matches(&ClientCertificate { expires_on: None, ..cert() }));
        assert!(!all.matches(&ClientCertificate { organization: None, ..cert() }));
    }

    #[test]
    fn organization_globs_narrow() {
        let by = |o: &str, ou: &str| CertFilter {
            organization: Some(Glob::new(o)),
            organizational_unit: Some(Glob::new(ou)),
            ..CertFilter::default()
        };
        assert!(by("contractors*", "field ?eam").matches(&cert()));
        assert!(!by("Employees*", "*").matches(&cert()));
        assert!(!by("*", "office").matches(&cert()));
    }

    fn wanted(kind: IdKind, text: &str) -> Wanted {
        Wanted { id: Identifier::new(kind, text).unwrap(), source: "test".into() }
    }

    #[test]
    fn identifiers_ignore_separators_case_and_a_serials_leading_zeros() {
        let one = |w: Wanted| CertFilter { identifiers: vec![w], ..CertFilter::default() };
        assert!(one(wanted(IdKind::Serial, "A1:B2:C3")).matches(&cert()));
        assert!(one(wanted(IdKind::Serial, "0000a1 b2c3")).matches(&cert()));
        assert!(!one(wanted(IdKind::Serial, "a1b2c30")).matches(&cert()));
        assert!(one(wanted(IdKind::Ski, "00:11:AA:BB")).matches(&cert()));
        assert!(!one(wanted(IdKind::Ski, "11aabb")).matches(&cert()), "an SKI keeps its leading zeros");
        assert!(one(wanted(IdKind::Fingerprint, &"AB:".repeat(32))).matches(&cert()));
        assert!(Identifier::new(IdKind::Fingerprint, "abcd").is_err());
        assert!(Identifier::new(IdKind::Serial, "g1").is_err());
        assert!(Identifier::new(IdKind::Serial, "").is_err());
        assert_eq!(Identifier::new(IdKind::Serial, "00").unwrap().to_string(), "serial:0");
    }

    #[test]
    fn identifiers_are_ored_then_anded_with_the_other_filters() {
        let other = wanted(IdKind::Serial, "ff");
        let filter = |name: &str| CertFilter {
            common_name: Some(Glob::new(name)),
            identifiers: vec![other.clone(), wanted(IdKind::Serial, "a1b2c3")],
            ..CertFilter::default()
        };
        assert!(filter("contractor-*").matches(&cert()), "one identifier of several is enough");
        assert!(!filter("employee-*").matches(&cert()), "the other filters still narrow");
        assert_eq!(filter("*").identified(&cert()).collect::<Vec<_>>(), [1]);
        let only_other = CertFilter { identifiers: vec![other], ..CertFilter::default() };
        assert!(!only_other.matches(&cert()));
        assert_eq!(Identifier::of_der(b"der").to_string(), format!("sha256:{}", hex(&Sha256::digest(b"der"))));
    }
}
