//! Zones named the way a responder knows them: by domain, or "every zone the
//! token can read" (of one account). Both are `GET /zones`, paged and
//! guarded like a certificate listing and sent through the same dispatcher.

use crate::api::Zone;
use crate::client::ZoneFilter;
use crate::input::ids::ZoneId;
use crate::operations::listing::{self, ListError, Listed};
use crate::pipeline::dispatcher::Dispatcher;

/// The most `GET /zones` allows, so an account costs as few requests as possible.
const PER_PAGE: u32 = listing::PER_PAGE;

/// A zone's domain name: letters, digits and hyphens in dot-separated
/// labels, lower-cased. Nothing else gets through, so a name cannot reach
/// a path or smuggle a second query parameter; it is sent only as the
/// `name` query value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ZoneName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected a zone ID (32 hex characters) or a zone name such as example.com (letters, digits, hyphens and dots)"
)]
pub struct ZoneNameError;

impl std::str::FromStr for ZoneName {
    type Err = ZoneNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let labels: Vec<&str> = name.split('.').collect();
        if name.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
            return Err(ZoneNameError);
        }
        Ok(ZoneName(name))
    }
}

impl std::fmt::Display for ZoneName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account ID: 32 hex characters, lower-cased, like a zone ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected an account ID (32 hex characters)")]
pub struct AccountIdError;

impl std::str::FromStr for AccountId {
    type Err = AccountIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(AccountId(s.to_ascii_lowercase()))
        } else {
            Err(AccountIdError)
        }
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A zone whose ID is usable, with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedZone {
    pub id: ZoneId,
    pub name: String,
}

/// The zone called `name`, if the token can read one. The API's `name`
/// filter is exact; the answer is still compared, so a server that ignores
/// the filter cannot hand back some other zone.
/// At most one zone has a name, so its first page is the whole answer.
pub async fn find(dispatcher: &Dispatcher, name: &ZoneName) -> Result<Option<NamedZone>, ListError> {
    let filter = ZoneFilter { name: Some(&name.0), account: None };
    let zones =
        listing::read_page(dispatcher, Listed::Zones, 1, |page| dispatcher.client.list_zones(&filter, page, PER_PAGE))
            .await?;
    let found = zones.into_iter().find(|zone| zone.name.eq_ignore_ascii_case(&name.0));
    found.map(usable).transpose()
}

/// Every zone the token can read, or only `account`'s, in the API's order.
pub async fn all(dispatcher: &Dispatcher, account: Option<&AccountId>) -> Result<Vec<NamedZone>, ListError> {
    read(dispatcher, ZoneFilter { name: None, account: account.map(|a| a.0.as_str()) }).await
}

/// All pages of `GET /zones` under `filter`.
async fn read(dispatcher: &Dispatcher, filter: ZoneFilter<'_>) -> Result<Vec<NamedZone>, ListError> {
    let zones: Vec<Zone> =
        listing::read_pages(dispatcher, Listed::Zones, |page| dispatcher.client.list_zones(&filter, page, PER_PAGE))
            .await?;
    zones.into_iter().map(usable).collect()
}

/// A zone whose ID is not one fails the lookup: nothing could be sent for
/// it, and leaving it out silently would hide a zone from the responder.
fn usable(zone: Zone) -> Result<NamedZone, ListError> {
    match ZoneId::parse(zone.id.as_bytes()) {
        Ok(id) => Ok(NamedZone { id, name: zone.name }),
        Err(e) => Err(ListError::UnusableZone { name: zone.name, why: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_name_is_a_dns_name_and_nothing_else() {
        let name: ZoneName = "Shop.Example.COM.".parse().unwrap();
        assert_eq!(name.to_string(), "shop.example.com");
        assert!("zone-3.example".parse::<ZoneName>().is_ok());
        for hostile in [
            "example",
            "a/b.com",
            "a.com?x=1",
            "a.com&account.id=1",
            "a%2e.com",
            "a .com",
            "a..com",
            "-a.com",
            "a-.com",
            "",
            ".",
            "ex\u{e4}mple.com",
            "a.com#x",
            "../zones.com",
        ] {
            assert_eq!(hostile.parse::<ZoneName>(), Err(ZoneNameError), "{hostile:?}");
        }
        assert!(format!("{}.com", "a".repeat(64)).parse::<ZoneName>().is_err());
    }

    #[test]
    fn an_account_id_is_32_hex_characters() {
        let id: AccountId = "0123456789ABCDEF0123456789abcdef".parse().unwrap();
        assert_eq!(id.0, "0123456789abcdef0123456789abcdef");
        for bad in ["", "0123456789abcdef", "0123456789abcdef0123456789abcdeg", "0123456789abcdef0123456789abcdef0"] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad}");
        }
    }
}
