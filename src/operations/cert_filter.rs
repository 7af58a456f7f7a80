//! Which listed certificates `list` keeps. The API filters only by status;
//! everything else an incident is described by (a name pattern, a date, a
//! CA) is checked here, on the certificates as the API described them.

use std::time::SystemTime;

use crate::api::ClientCertificate;
use crate::operations::glob::Glob;
use crate::operations::timestamp;

/// Every filter set must match; an unset one matches everything.
#[derive(Debug, Default)]
pub struct CertFilter {
    pub common_name: Option<Glob>,
    /// Matched against the CA's name and its ID.
    pub ca: Option<Glob>,
    pub issued_before: Option<SystemTime>,
    pub expires_before: Option<SystemTime>,
}

impl CertFilter {
    /// A certificate lacking a field a filter looks at does not match it:
    /// `list` feeds revocation, and nothing is revoked on a guess.
    pub fn matches(&self, cert: &ClientCertificate) -> bool {
        let named =
            self.common_name.as_ref().is_none_or(|glob| cert.common_name.as_deref().is_some_and(|n| glob.matches(n)));
        let from_ca = self.ca.as_ref().is_none_or(|glob| {
            cert.certificate_authority.as_ref().is_some_and(|ca| glob.matches(&ca.name) || glob.matches(&ca.id))
        });
        named
            && from_ca
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
            issued_before: date("2100-01-01"),
            expires_before: date("2100-01-01"),
        };
        assert!(all.matches(&cert()));
        assert!(!all.matches(&ClientCertificate { common_name: None, ..cert() }));
        assert!(!all.matches(&ClientCertificate { certificate_authority: None, ..cert() }));
        assert!(!all.matches(&ClientCertificate { issued_on: Some("last week".into()), ..cert() }));
        assert!(!all.matches(&ClientCertificate { expires_on: None, ..cert() }));
    }
}
