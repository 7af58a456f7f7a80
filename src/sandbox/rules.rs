//! Each zone's WAF custom rules, so the enforcement check has something true
//! to find: a chosen share of zones block revoked certificates, and the
//! others show, in turn, each way a real zone fails to.

use sha2::{Digest, Sha256};

use crate::api::{Rule, Ruleset};
use crate::input::ids::ZoneId;
use crate::operations::enforcement::{BLOCKING_ACTION, EXAMPLE_EXPRESSION};

/// Which zones have a rule that blocks revoked certificates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Enforcing {
    All,
    None,
    /// Each zone enforces with this probability, drawn from the seed and its ID.
    Fraction(f64),
}

impl std::str::FromStr for Enforcing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Enforcing::All),
            "none" => Ok(Enforcing::None),
            _ => s
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .map(Enforcing::Fraction)
                .ok_or_else(|| format!("expected all, none or a fraction from 0 to 1, not {s:?}")),
        }
    }
}

/// What a zone that does not enforce has instead, dealt in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lapse {
    /// The rule the dashboard creates for mTLS: `cert_verified` only.
    VerifiedOnly,
    /// No custom rules at all: the entry point answers 404.
    NoRules,
    Disabled,
    /// The right expression, logged rather than blocked.
    LogOnly,
}

const LAPSES: [Lapse; 4] = [Lapse::VerifiedOnly, Lapse::NoRules, Lapse::Disabled, Lapse::LogOnly];

/// The dashboard's mTLS rule.
const VERIFIED_ONLY: &str = r#"(http.host in {"api.example.com"} and not cf.tls_client_auth.cert_verified)"#;

/// The zone's entry-point ruleset, or `None` for a zone without custom rules.
pub(crate) fn ruleset(seed: u64, zone: ZoneId, enforcing: Enforcing) -> Option<Ruleset> {
    let draw = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(zone.to_bytes()).finalize();
    let (chance, lapse) = (u64::from_le_bytes(draw[..8].try_into().expect("8 bytes")), usize::from(draw[8]));
    let enforces = match enforcing {
        Enforcing::All => true,
        Enforcing::None => false,
        Enforcing::Fraction(share) => (chance as f64) < share * u64::MAX as f64,
    };
    let id = crate::sandbox::fixtures::hex(&draw[12..28]);
    let rule = |expression: &str, action: &str, enabled: bool, description: &str| Rule {
        id: id.clone(),
        expression: expression.to_string(),
        action: action.to_string(),
        enabled,
        description: Some(description.to_string()),
    };
    let rule = if enforces {
        rule(EXAMPLE_EXPRESSION, BLOCKING_ACTION, true, "Block unverified or revoked client certificates")
    } else {
        match LAPSES[lapse % LAPSES.len()] {
            Lapse::VerifiedOnly => rule(VERIFIED_ONLY, BLOCKING_ACTION, true, "mTLS: require a client certificate"),
            Lapse::NoRules => return None,
            Lapse::Disabled => rule(EXAMPLE_EXPRESSION, BLOCKING_ACTION, false, "Block revoked certificates (off)"),
            Lapse::LogOnly => rule(EXAMPLE_EXPRESSION, "log", true, "Log revoked client certificates"),
        }
    };
    Some(Ruleset {
        id: crate::sandbox::fixtures::hex(&draw[16..32]),
        name: Some("default".to_string()),
        kind: Some("zone".to_string()),
        phase: Some(crate::api::paths::CUSTOM_FIREWALL_PHASE.to_string()),
        version: Some("1".to_string()),
        last_updated: Some("2025-01-01T00:00:00Z".to_string()),
        rules: vec![rule],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::enforcement::{judge, Verdict};

    fn zones(n: u128) -> impl Iterator<Item = ZoneId> {
        (0..n).map(|i| ZoneId::from_bytes((0xaaaa_0000 + i).to_be_bytes()))
    }

    #[test]
    fn the_share_of_enforcing_zones_is_chosen_and_the_rest_show_every_lapse() {
        assert!(zones(20).all(|z| matches!(judge(ruleset(1, z, Enforcing::All).as_ref()), Verdict::Enforced(_))));
        let lapses: std::collections::BTreeSet<String> =
            zones(40).map(|z| judge(ruleset(1, z, Enforcing::None).as_ref()).reason()).collect();
        assert_eq!(lapses.len(), LAPSES.len(), "{lapses:?}");
        let half = zones(200).filter(|&z| ruleset(7, z, Enforcing::Fraction(0.5)) == ruleset(7, z, Enforcing::All));
        assert!((70..130).contains(&half.count()));
        assert_eq!(
            ruleset(7, zones(1).next().unwrap(), Enforcing::Fraction(0.5)),
            ruleset(7, zones(1).next().unwrap(), Enforcing::Fraction(0.5))
        );
    }

    #[test]
    fn enforcing_parses() {
        assert_eq!("all".parse(), Ok(Enforcing::All));
        assert_eq!("none".parse(), Ok(Enforcing::None));
        assert_eq!("0.25".parse(), Ok(Enforcing::Fraction(0.25)));
        assert!("1.5".parse::<Enforcing>().is_err() && "some".parse::<Enforcing>().is_err());
    }
}
