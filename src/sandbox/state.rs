//! The certificates and their life cycle.
//!
//! Cloudflare's transitions are asynchronous: a revoked certificate sits in
//! `pending_revocation` for a while. Rather than run timers, each pending
//! state remembers when it began and is settled whenever it is looked at.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::fixtures;
use super::journal::{CertActivity, CertEntry};
use super::routes::{CertKey, CertOp};
use super::x509::X509Cache;
use crate::api::{CertStatus, ClientCertificate, ResultInfo};
use crate::input::ids::{CertId, ZoneId};

/// Why a certificate operation was refused; the caller words the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound,
    AlreadyRevoked,
    NotPendingRevocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Active,
    PendingRevocation(Instant),
    Revoked,
    PendingReactivation(Instant),
}

impl Phase {
    fn settled(self, now: Instant, delay: Duration) -> Phase {
        match self {
            Phase::PendingRevocation(since) if now.saturating_duration_since(since) >= delay => Phase::Revoked,
            Phase::PendingReactivation(since) if now.saturating_duration_since(since) >= delay => Phase::Active,
            other => other,
        }
    }

    fn status(self) -> CertStatus {
        match self {
            Phase::Active => CertStatus::Active,
            Phase::PendingRevocation(_) => CertStatus::PendingRevocation,
            Phase::Revoked => CertStatus::Revoked,
            Phase::PendingReactivation(_) => CertStatus::PendingReactivation,
        }
    }
}

#[derive(Debug)]
struct Record {
    zone: ZoneId,
    cert: CertId,
    phase: Phase,
    activity: CertActivity,
}

#[derive(Debug)]
pub(crate) struct CertStore {
    records: Vec<Record>,
    index: HashMap<CertKey, usize>,
    /// Each zone's records in listing order (the order they were added), so
    /// paging is stable while states change.
    zones: HashMap<ZoneId, Vec<usize>>,
    delay: Duration,
    seed: u64,
    x509: X509Cache,
}

impl CertStore {
    pub(crate) fn new(certs: impl IntoIterator<Item = CertKey>, delay: Duration, seed: u64) -> CertStore {
        let mut store = CertStore {
            records: Vec::new(),
            index: HashMap::new(),
            zones: HashMap::new(),
            delay,
            seed,
            x509: X509Cache::new(seed),
        };
        for (zone, cert) in certs {
            let next = store.records.len();
            if *store.index.entry((zone, cert)).or_insert(next) != next {
                continue;
            }
            store.records.push(Record { zone, cert, phase: Phase::Active, activity: CertActivity::default() });
            store.zones.entry(zone).or_default().push(next);
        }
        store
    }

    pub(crate) fn zone_count(&self) -> usize {
        self.zones.len()
    }

    pub(crate) fn keys(&self) -> Vec<CertKey> {
        self.records.iter().map(|r| (r.zone, r.cert)).collect()
    }

    /// Records a request addressed to `key`; unknown certificates are not
    /// tracked, so a client probing random IDs cannot grow the journal.
    pub(crate) fn note(&mut self, key: CertKey, op: CertOp) {
        if let Some(&i) = self.index.get(&key) {
            let activity = &mut self.records[i].activity;
            match op {
                CertOp::Get => activity.get += 1,
                CertOp::Delete => activity.delete += 1,
                CertOp::Patch => activity.patch += 1,
            }
        }
    }

    pub(crate) fn get(&mut self, key: CertKey, now: Instant) -> Result<ClientCertificate, Refusal> {
        self.settled(key, now)?;
        let mut described = self.describe(key, now);
        self.x509.fill(key, &mut described);
        Ok(described)
    }

    /// The PEM of a certificate served, as a GET would answer it.
    pub(crate) fn pem(&self, key: CertKey, now: Instant) -> Option<String> {
        self.index.get(&key)?;
        let mut described = self.describe(key, now);
        self.x509.fill(key, &mut described);
        described.certificate
    }

    /// DELETE: an active certificate starts its revocation. Asking again
    /// while it is pending is answered like the first time and changes
    /// nothing, so a retry after a lost response is harmless; once revoked,
    /// Cloudflare refuses with 1407.
    pub(crate) fn revoke(&mut self, key: CertKey, now: Instant) -> Result<ClientCertificate, Refusal> {
        let record = self.settled(key, now)?;
        match record.phase {
            Phase::Revoked => return Err(Refusal::AlreadyRevoked),
            Phase::PendingRevocation(_) => {}
            Phase::Active | Phase::PendingReactivation(_) => {
                record.phase = Phase::PendingRevocation(now);
                record.activity.revocations += 1;
            }
        }
        Ok(self.changed(key, now))
    }

    /// PATCH `{"reactivate": true}`: undoes a revocation still pending. The
    /// certificate passes through `pending_reactivation` for the same delay,
    /// mirroring the way in; asking again meanwhile is harmless.
    pub(crate) fn reactivate(&mut self, key: CertKey, now: Instant) -> Result<ClientCertificate, Refusal> {
        let record = self.settled(key, now)?;
        match record.phase {
            Phase::PendingRevocation(_) => record.phase = Phase::PendingReactivation(now),
            Phase::PendingReactivation(_) => {}
            Phase::Active | Phase::Revoked => return Err(Refusal::NotPendingRevocation),
        }
        Ok(self.changed(key, now))
    }

    /// One page of a zone's certificates, optionally of one status. An
    /// unknown zone lists as empty. A status filter scans the zone, which
    /// only listing pays for; revocations stay O(1).
    pub(crate) fn list(
        &self,
        zone: ZoneId,
        filter: Option<CertStatus>,
        page: u64,
        per_page: u64,
        now: Instant,
    ) -> (Vec<ClientCertificate>, ResultInfo) {
        let indices = self.zones.get(&zone).map_or(&[][..], Vec::as_slice);
        let matching = || {
            indices.iter().map(|&i| &self.records[i]).filter(move |r| filter.is_none_or(|s| self.status(r, now) == s))
        };
        let total_count = match filter {
            None => indices.len() as u64,
            Some(_) => matching().count() as u64,
        };
        // Only the page's own certificates are described (and signed).
        let (records, info) = page_of(matching(), total_count, page, per_page);
        let result = records
            .into_iter()
            .map(|r| {
                let mut described = fixtures::describe(self.seed, r.zone, r.cert, self.status(r, now));
                self.x509.fill((r.zone, r.cert), &mut described);
                described
            })
            .collect();
        (result, info)
    }

    /// Every zone, in the order its first certificate was added. Sorted from
    /// the per-zone index rather than found by a pass over every record, so
    /// a million generated certificates do not slow the start.
    pub(crate) fn zone_ids(&self) -> Vec<ZoneId> {
        let mut firsts: Vec<(usize, ZoneId)> = self.zones.iter().map(|(zone, records)| (records[0], *zone)).collect();
        firsts.sort_unstable();
        firsts.into_iter().map(|(_, zone)| zone).collect()
    }

    /// How many certificates are in each status, every status present.
    pub(crate) fn status_counts(&self, now: Instant) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> =
            [CertStatus::Active, CertStatus::PendingReactivation, CertStatus::PendingRevocation, CertStatus::Revoked]
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect();
        for record in &self.records {
            if let Some(count) = counts.get_mut(self.status(record, now).as_str()) {
                *count += 1;
            }
        }
        counts
    }

    /// State and activity of every certificate that received a request.
    pub(crate) fn touched(&self, now: Instant) -> BTreeMap<String, CertEntry> {
        self.records
            .iter()
            .filter(|r| !r.activity.is_empty())
            .map(|r| {
                let entry = CertEntry { status: self.status(r, now), activity: r.activity };
                (format!("{}/{}", r.zone, r.cert), entry)
            })
            .collect()
    }

    pub(crate) fn revocations(&self) -> u64 {
        self.records.iter().map(|r| r.activity.revocations).sum()
    }

    pub(crate) fn clear_activity(&mut self) {
        for record in &mut self.records {
            record.activity = CertActivity::default();
        }
    }

    fn status(&self, record: &Record, now: Instant) -> CertStatus {
        record.phase.settled(now, self.delay).status()
    }

    fn describe(&self, (zone, cert): CertKey, now: Instant) -> ClientCertificate {
        let record = &self.records[self.index[&(zone, cert)]];
        fixtures::describe(self.seed, zone, cert, self.status(record, now))
    }

    /// The answer to a DELETE or PATCH: revocation reads only the status, so
    /// the certificate is not signed for it, though one already made is shown.
    fn changed(&self, key: CertKey, now: Instant) -> ClientCertificate {
        let mut described = self.describe(key, now);
        self.x509.fill_if_made(key, &mut described);
        described
    }

    /// The record for `key` with any finished transition applied.
    fn settled(&mut self, key: CertKey, now: Instant) -> Result<&mut Record, Refusal> {
        let delay = self.delay;
        let &i = self.index.get(&key).ok_or(Refusal::NotFound)?;
        let record = &mut self.records[i];
        record.phase = record.phase.settled(now, delay);
        Ok(record)
    }
}

/// Page `page` of `per_page` of `items`, which number `total_count`, and
/// its `result_info`: how every list endpoint pages.
pub(crate) fn page_of<T>(
    items: impl Iterator<Item = T>,
    total_count: u64,
    page: u64,
    per_page: u64,
) -> (Vec<T>, ResultInfo) {
    let skip = usize::try_from(page.saturating_sub(1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let result: Vec<T> = items.skip(skip).take(per_page as usize).collect();
    let info = ResultInfo {
        count: result.len() as u64,
        page,
        per_page,
        total_count,
        total_pages: total_count.div_ceil(per_page),
    };
    (result, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(500);

    fn store(n: usize, zones: usize) -> (CertStore, Vec<CertKey>) {
        let keys = fixtures::generate(3, n, zones);
        (CertStore::new(keys.clone(), DELAY, 3), keys)
    }

    fn status_of(store: &mut CertStore, key: CertKey, now: Instant) -> CertStatus {
        store.get(key, now).unwrap().status.unwrap()
    }

    #[test]
    fn revocation_is_pending_then_final() {
        let (mut store, keys) = store(2, 1);
        let t0 = Instant::now();
        let cert = store.revoke(keys[0], t0).unwrap();
        assert_eq!(cert.status, Some(CertStatus::PendingRevocation));
        assert_eq!(cert.id, keys[0].1.to_string());
        // A retry while pending succeeds again and is not a second revocation.
        let again = store.revoke(keys[0], t0 + DELAY / 2).unwrap();
        assert_eq!(again.status, Some(CertStatus::PendingRevocation));
        assert_eq!(status_of(&mut store, keys[0], t0 + DELAY), CertStatus::Revoked);
        assert_eq!(store.revoke(keys[0], t0 + DELAY), Err(Refusal::AlreadyRevoked));
        assert_eq!(store.revocations(), 1);
        assert_eq!(status_of(&mut store, keys[1], t0 + DELAY), CertStatus::Active);
    }

    #[test]
    fn unknown_certificates_are_not_found() {
        let (mut store, keys) = store(1, 1);
        let (_, other) = fixtures::generate(99, 1, 1)[0];
        let unknown = (keys[0].0, other);
        let now = Instant::now();
        assert_eq!(store.get(unknown, now), Err(Refusal::NotFound));
        assert_eq!(store.revoke(unknown, now), Err(Refusal::NotFound));
        assert_eq!(store.reactivate(unknown, now), Err(Refusal::NotFound));
        store.note(unknown, CertOp::Delete);
        assert!(store.touched(now).is_empty());
    }

    #[test]
    fn reactivation_only_undoes_a_pending_revocation() {
        let (mut store, keys) = store(1, 1);
        let key = keys[0];
        let t0 = Instant::now();
        assert_eq!(store.reactivate(key, t0), Err(Refusal::NotPendingRevocation));
        store.revoke(key, t0).unwrap();
        let cert = store.reactivate(key, t0).unwrap();
        assert_eq!(cert.status, Some(CertStatus::PendingReactivation));
        assert!(store.reactivate(key, t0).is_ok(), "a repeated undo is harmless");
        assert_eq!(status_of(&mut store, key, t0 + DELAY), CertStatus::Active);
        // Too late once revoked.
        store.revoke(key, t0 + DELAY).unwrap();
        assert_eq!(store.reactivate(key, t0 + DELAY * 2), Err(Refusal::NotPendingRevocation));
        assert_eq!(store.revocations(), 2);
    }

    #[test]
    fn duplicates_are_served_once() {
        let keys = fixtures::generate(3, 2, 1);
        let store = CertStore::new([keys[0], keys[1], keys[0]], DELAY, 3);
        assert_eq!(store.keys(), keys);
    }

    #[test]
    fn lists_page_in_a_stable_order() {
        let (store, keys) = store(12, 2);
        let zone = keys[0].0;
        let now = Instant::now();
        let (page1, info) = store.list(zone, None, 1, 5, now);
        assert_eq!(info, ResultInfo { count: 5, page: 1, per_page: 5, total_count: 6, total_pages: 2 });
        let (page2, info) = store.list(zone, None, 2, 5, now);
        assert_eq!((info.count, page2.len()), (1, 1));
        let listed: Vec<String> = page1.iter().chain(&page2).map(|c| c.id.clone()).collect();
        let expected: Vec<String> = keys.iter().step_by(2).map(|k| k.1.to_string()).collect();
        assert_eq!(listed, expected);
        let (past_end, info) = store.list(zone, None, 3, 5, now);
        assert!(past_end.is_empty());
        assert_eq!((info.count, info.total_count), (0, 6));
        let (huge, _) = store.list(zone, None, u64::MAX, 50, now);
        assert!(huge.is_empty());
        let (none, info) = store.list(fixtures::generate(5, 1, 1)[0].0, None, 1, 20, now);
        assert!(none.is_empty());
        assert_eq!(info.total_pages, 0);
    }

    #[test]
    fn lists_filter_by_current_status() {
        let (mut store, keys) = store(6, 1);
        let t0 = Instant::now();
        store.revoke(keys[1], t0).unwrap();
        store.revoke(keys[4], t0 + DELAY).unwrap();
        let zone = keys[0].0;
        let (revoked, info) = store.list(zone, Some(CertStatus::Revoked), 1, 20, t0 + DELAY);
        assert_eq!(info.total_count, 1);
        assert_eq!(revoked[0].id, keys[1].1.to_string());
        let (pending, _) = store.list(zone, Some(CertStatus::PendingRevocation), 1, 20, t0 + DELAY);
        assert_eq!(pending[0].id, keys[4].1.to_string());
        let (active, info) = store.list(zone, Some(CertStatus::Active), 1, 20, t0 + DELAY);
        assert_eq!((active.len(), info.total_count), (4, 4));
        let counts = store.status_counts(t0 + DELAY);
        assert_eq!(counts["active"], 4);
        assert_eq!(counts["revoked"], 1);
        assert_eq!(counts["pending_revocation"], 1);
        assert_eq!(counts["pending_reactivation"], 0);
    }

    #[test]
    fn activity_is_tracked_per_certificate() {
        let (mut store, keys) = store(3, 1);
        let now = Instant::now();
        store.note(keys[0], CertOp::Delete);
        store.note(keys[0], CertOp::Delete);
        store.note(keys[0], CertOp::Get);
        store.revoke(keys[0], now).unwrap();
        store.note(keys[2], CertOp::Patch);
        let touched = store.touched(now);
        assert_eq!(touched.len(), 2);
        let entry = &touched[&format!("{}/{}", keys[0].0, keys[0].1)];
        assert_eq!(entry.status, CertStatus::PendingRevocation);
        assert_eq!(entry.activity, CertActivity { delete: 2, get: 1, patch: 0, revocations: 1 });
        store.clear_activity();
        assert!(store.touched(now).is_empty());
    }
}
