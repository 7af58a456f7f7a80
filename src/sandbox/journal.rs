//! What the sandbox saw and did, for tests to assert on: how many requests,
//! how fast, which certificates were revoked and how often.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::faults::{Fault, FaultKind};
use crate::api::CertStatus;

/// Served as JSON at `GET /__sandbox/stats` and by `Sandbox::journal`.
/// Requests to `/__sandbox/*` are not recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Every request received, including those a fault then swallowed.
    pub requests: u64,
    /// Requests by HTTP method (`"GET"`, `"DELETE"`, ...).
    pub by_method: BTreeMap<String, u64>,
    /// Responses by HTTP status; a reset has no status and is counted only
    /// under `faults.reset`.
    pub by_status: BTreeMap<u16, u64>,
    /// 429 responses served.
    pub rate_limited: u64,
    /// The most requests the quota counted in any one window (background
    /// load included); `None` when rate limiting is off.
    pub max_in_window: Option<u64>,
    pub faults: FaultCounts,
    /// Transitions into `pending_revocation`, all certificates together.
    pub revocations: u64,
    /// How many certificates are in each status now, zeros included.
    pub cert_statuses: BTreeMap<String, u64>,
    /// Reads of a zone's custom rules (the enforcement check).
    #[serde(default)]
    pub rules_reads: u64,
    /// Requests for `GET /zones` (zone names, `--all-zones`).
    #[serde(default)]
    pub zones_reads: u64,
    /// Keyed `"zone_id/certificate_id"`, every certificate that received a
    /// request; the ones missing were never touched and are still active.
    pub certs: BTreeMap<String, CertEntry>,
}

/// Faults served, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub error: u64,
    pub reset: u64,
    pub slow: u64,
    pub malformed: u64,
    /// Of the above, those that struck after the request had already changed
    /// the certificate: the client saw a failure for work that was done.
    pub after_change: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertEntry {
    pub status: CertStatus,
    #[serde(flatten)]
    pub activity: CertActivity,
}

/// Requests that addressed one certificate (whatever they were answered),
/// and how many of them moved it into `pending_revocation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertActivity {
    pub delete: u64,
    pub get: u64,
    pub patch: u64,
    pub revocations: u64,
}

impl CertActivity {
    pub(crate) fn is_empty(&self) -> bool {
        *self == CertActivity::default()
    }
}

impl Journal {
    pub(crate) fn note_request(&mut self, method: &Method) {
        self.requests += 1;
        match self.by_method.get_mut(method.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.by_method.insert(method.as_str().to_string(), 1);
            }
        }
    }

    /// `status` is `None` for a connection reset.
    pub(crate) fn note_served(&mut self, status: Option<StatusCode>, fault: Option<Fault>) {
        if let Some(status) = status {
            *self.by_status.entry(status.as_u16()).or_default() += 1;
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.rate_limited += 1;
            }
        }
        let Some(fault) = fault else { return };
        let counter = match fault.kind {
            FaultKind::Error => &mut self.faults.error,
            FaultKind::Reset => &mut self.faults.reset,
            FaultKind::Slow => &mut self.faults.slow,
            FaultKind::Malformed => &mut self.faults.malformed,
        };
        *counter += 1;
        if fault.after_change {
            self.faults.after_change += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_statuses_and_faults() {
        let mut journal = Journal::default();
        journal.note_request(&Method::DELETE);
        journal.note_request(&Method::DELETE);
        journal.note_request(&Method::GET);
        journal.note_served(Some(StatusCode::OK), None);
        journal.note_served(Some(StatusCode::TOO_MANY_REQUESTS), None);
        let reset = Fault { kind: FaultKind::Reset, after_change: true, form: 0 };
        journal.note_served(None, Some(reset));
        assert_eq!(journal.requests, 3);
        assert_eq!(journal.by_method["DELETE"], 2);
        assert_eq!(journal.by_status, BTreeMap::from([(200, 1), (429, 1)]));
        assert_eq!(journal.rate_limited, 1);
        assert_eq!(journal.faults, FaultCounts { reset: 1, after_change: 1, ..FaultCounts::default() });
    }

    #[test]
    fn round_trips_through_json_with_flat_cert_entries() {
        let mut journal = Journal { max_in_window: Some(4), ..Journal::default() };
        journal.by_status.insert(404, 2);
        let activity = CertActivity { delete: 2, revocations: 1, ..CertActivity::default() };
        journal.certs.insert("z/c".to_string(), CertEntry { status: CertStatus::Revoked, activity });
        let json = serde_json::to_value(&journal).unwrap();
        assert_eq!(
            json["certs"]["z/c"],
            serde_json::json!({"status": "revoked", "delete": 2, "get": 0, "patch": 0, "revocations": 1})
        );
        assert_eq!(json["by_status"]["404"], 2);
        assert_eq!(serde_json::from_value::<Journal>(json).unwrap(), journal);
    }
}
