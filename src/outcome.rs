//! What happened to each certificate, in the words of the results file, and
//! the results columns a later run reads back.
//!
//! The results are written at the end of the flow ([`crate::output::results`])
//! and read again at its start, by the resume scan ([`crate::input::resume`])
//! and by `reactivate`, whose input is a revoke run's results. So the
//! spelling of both lives here, before every stage, once.

use serde::{Serialize, Serializer};

/// What happened to one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Revoked,
    AlreadyRevoked,
    NotFound,
    Failed,
    Invalid,
    /// Reactivate: back to active (or already active again).
    Reactivated,
    /// Reactivate: the certificate had already reached `revoked`; Cloudflare
    /// allows the undo only while it is `pending_revocation`.
    TooLate,
    /// Verify: still `pending_revocation` when read (with `--until revoked`,
    /// when the deadline passed): a straggler, not locked out yet.
    PendingRevocation,
    /// Verify: `active` or `pending_reactivation` again: someone undid the
    /// revocation, so that certificate gets in.
    Active,
}

impl Outcome {
    /// Every outcome, for reading a name back.
    pub const ALL: [Outcome; 9] = [
        Outcome::Revoked,
        Outcome::AlreadyRevoked,
        Outcome::NotFound,
        Outcome::Failed,
        Outcome::Invalid,
        Outcome::Reactivated,
        Outcome::TooLate,
        Outcome::PendingRevocation,
        Outcome::Active,
    ];

    /// The outcome a results file names, as [`Outcome::as_str`] spells it.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The name in the results' `outcome` column, the summary and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Revoked => "revoked",
            Outcome::AlreadyRevoked => "already_revoked",
            Outcome::NotFound => "not_found",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
            Outcome::Reactivated => "reactivated",
            Outcome::TooLate => "too_late",
            Outcome::PendingRevocation => "pending_revocation",
            Outcome::Active => "active",
        }
    }

    /// Whether the row did what was asked of it.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Revoked | Outcome::AlreadyRevoked | Outcome::Reactivated)
    }
}

/// Written as [`Outcome::as_str`] spells it, so the results cannot disagree
/// with what reads them back.
impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The results columns a later run reads back: the resume scan finds the
/// pair, its outcome and its answer by these names, and `reactivate` selects
/// its rows by them. A results file is a valid input, so the pair's columns
/// are also the input's own names for them.
pub mod column {
    pub const LINE: &str = "line";
    pub const ZONE_ID: &str = "zone_id";
    pub const CERTIFICATE_ID: &str = "certificate_id";
    pub const OUTCOME: &str = "outcome";
    pub const HTTP_STATUS: &str = "http_status";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_written_as_named() {
        for outcome in Outcome::ALL {
            assert_eq!(serde_json::to_string(&outcome).unwrap(), format!("\"{}\"", outcome.as_str()));
            assert_eq!(Outcome::from_name(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Outcome::from_name("Revoked"), None);
    }
}
