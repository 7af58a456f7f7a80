//! The zones the sandbox's token can read, for zone names and `--all-zones`:
//! each zone of the store, named `zone-N.example` after its index N (in the
//! order its first certificate was added), active, in one of two accounts
//! so that an account filter has something to leave out.

use sha2::{Digest, Sha256};

use super::routes::ZonesQuery;
use super::state::page_of;
use crate::api::{ResultInfo, Zone, ZoneAccount};
use crate::input::ids::ZoneId;

/// Zone i belongs to account `i % ACCOUNTS`: one account for a lone zone, two otherwise.
const ACCOUNTS: usize = 2;

/// The catalogue `GET /zones` answers from, built once at start.
#[derive(Debug, Default)]
pub(crate) struct Zones(Vec<Zone>);

impl Zones {
    pub(crate) fn new(seed: u64, zones: &[ZoneId]) -> Zones {
        let accounts: Vec<ZoneAccount> = (0..ACCOUNTS)
            .map(|k| {
                let draw = Sha256::new().chain_update(seed.to_le_bytes()).chain_update([k as u8]).finalize();
                ZoneAccount { id: super::fixtures::hex(&draw[..16]), name: format!("Sandbox account {}", k + 1) }
            })
            .collect();
        let zones = zones.iter().enumerate().map(|(i, zone)| Zone {
            id: zone.to_string(),
            name: name(i),
            status: Some("active".to_string()),
            paused: Some(false),
            account: Some(accounts[i % ACCOUNTS].clone()),
        });
        Zones(zones.collect())
    }

    /// One page of the zones `query` selects. A name matches exactly (case
    /// aside, as DNS does), like the API's `name` without an operator.
    pub(crate) fn list(&self, query: &ZonesQuery) -> (Vec<Zone>, ResultInfo) {
        let selected = || {
            self.0.iter().filter(move |zone| {
                let named = query.name.as_ref().is_none_or(|name| zone.name.eq_ignore_ascii_case(name));
                let owned = query.account.as_ref().is_none_or(|id| zone.account.as_ref().is_some_and(|a| &a.id == id));
                named && owned
            })
        };
        page_of(selected().cloned(), selected().count() as u64, query.page, query.per_page)
    }
}

/// The name of the zone of index `i`.
pub(crate) fn name(i: usize) -> String {
    format!("zone-{i}.example")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: Option<&str>, account: Option<&str>, page: u64) -> ZonesQuery {
        ZonesQuery { name: name.map(str::to_string), account: account.map(str::to_string), page, per_page: 5 }
    }

    #[test]
    fn zones_page_and_filter_by_name_and_account() {
        let ids: Vec<ZoneId> = (0..12u128).map(|i| ZoneId::from_bytes((i + 1).to_be_bytes())).collect();
        let zones = Zones::new(7, &ids);
        let (page, info) = zones.list(&query(None, None, 3));
        assert_eq!((info.count, info.total_count, info.total_pages), (2, 12, 3));
        assert_eq!(page[0].name, "zone-10.example");

        let (found, info) = zones.list(&query(Some("ZONE-3.example"), None, 1));
        assert_eq!((found.len(), info.total_count), (1, 1));
        assert_eq!(found[0].id, ids[3].to_string());
        assert!(zones.list(&query(Some("zone-3.exampl"), None, 1)).0.is_empty(), "exact, not a prefix");

        let account = found[0].account.clone().unwrap();
        let (owned, info) = zones.list(&query(None, Some(&account.id), 1));
        assert_eq!(info.total_count, 6);
        assert!(owned.iter().all(|z| z.account.as_ref() == Some(&account)));
        assert_ne!(zones.list(&query(Some("zone-0.example"), None, 1)).0[0].account, Some(account));
    }
}
