//! Whether revoking changes anything: a zone blocks a revoked certificate
//! only if one of its WAF custom rules says so (API-NOTES.md, "Whether a zone
//! enforces revocation"). The dashboard's mTLS rule checks `cert_verified`,
//! which stays true after revocation, so a zone can look protected and
//! still let every revoked certificate in.
//!
//! Revocation can also be enforced where this check cannot see (a Worker,
//! an account-level ruleset), so a verdict is about the zone's custom rules
//! and is worded that way: "not seen", never "not enforced anywhere".

use serde::Serialize;

use crate::api::{Rule, Ruleset};
use crate::input::ids::ZoneId;
use crate::pipeline::dispatcher::{Dispatcher, Request, Settled};

/// The field that is true for a revoked certificate.
pub const REVOKED_FIELD: &str = "cf.tls_client_auth.cert_revoked";
/// The field the dashboard's mTLS rule checks; revocation does not change it.
pub const VERIFIED_FIELD: &str = "cf.tls_client_auth.cert_verified";
/// The one action that turns a request away whoever sends it: a challenge
/// can be passed by a person holding the revoked certificate.
pub const BLOCKING_ACTION: &str = "block";
/// What a rule that enforces revocation checks, for the advice in a warning.
pub const EXAMPLE_EXPRESSION: &str = "(not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked)";
/// The token permission that reads custom rules.
pub const READ_PERMISSION: &str = "Zone WAF Read";

/// The rule a verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub id: String,
    pub description: Option<String>,
    pub expression: String,
    pub action: String,
}

impl From<&Rule> for RuleRef {
    fn from(rule: &Rule) -> RuleRef {
        RuleRef {
            id: rule.id.clone(),
            description: rule.description.clone(),
            expression: rule.expression.clone(),
            action: rule.action.clone(),
        }
    }
}

/// Why a zone's custom rules let a revoked certificate in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lapse {
    NoCustomRules,
    /// Custom rules, none of which looks at the client certificate.
    NoCertificateRule,
    OnlyCertVerified(RuleRef),
    RuleDisabled(RuleRef),
    ActionDoesNotBlock(RuleRef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Enforced(RuleRef),
    NotEnforced(Lapse),
    /// The rules could not be read; the reason says why.
    Unknown(String),
}

impl Verdict {
    /// The verdict's name in the table, the CSV, the log and the summary.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Enforced(_) => "enforced",
            Verdict::NotEnforced(_) => "not_enforced",
            Verdict::Unknown(_) => "unknown",
        }
    }

    pub fn is_enforced(&self) -> bool {
        matches!(self, Verdict::Enforced(_))
    }

    /// The verdict in a phrase.
    pub fn reason(&self) -> String {
        match self {
            Verdict::Enforced(_) => format!("an enabled rule blocks when {REVOKED_FIELD} is true"),
            Verdict::NotEnforced(lapse) => match lapse {
                Lapse::NoCustomRules => "no custom rules".to_string(),
                Lapse::NoCertificateRule => "no custom rule checks the client certificate".to_string(),
                Lapse::OnlyCertVerified(_) => {
                    format!("the mTLS rule checks only {VERIFIED_FIELD}, which stays true after revocation")
                }
                Lapse::RuleDisabled(_) => format!("the rule using {REVOKED_FIELD} is disabled"),
                Lapse::ActionDoesNotBlock(rule) => {
                    format!("the rule using {REVOKED_FIELD} has action {}, which does not block", rule.action)
                }
            },
            Verdict::Unknown(why) => why.clone(),
        }
    }

    pub fn rule(&self) -> Option<&RuleRef> {
        match self {
            Verdict::Enforced(rule)
            | Verdict::NotEnforced(
                Lapse::OnlyCertVerified(rule) | Lapse::RuleDisabled(rule) | Lapse::ActionDoesNotBlock(rule),
            ) => Some(rule),
            _ => None,
        }
    }
}

/// One zone's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneCheck {
    pub zone: ZoneId,
    pub verdict: Verdict,
}

impl ZoneCheck {
    /// What a revocation in a zone that does not (visibly) enforce must
    /// say: that it may change nothing, and what rule would.
    pub fn warning(&self) -> Option<String> {
        let zone = self.zone;
        let advice = format!(
            "a custom rule with action {BLOCKING_ACTION} and an expression such as {EXAMPLE_EXPRESSION} would enforce it"
        );
        match &self.verdict {
            Verdict::Enforced(_) => None,
            Verdict::NotEnforced(_) => Some(format!(
                "zone {zone}: revocation not seen in the zone's custom rules ({}); revoked certificates may still get \
                 in: {advice}",
                self.verdict.reason()
            )),
            Verdict::Unknown(why) => {
                Some(format!("zone {zone}: cannot tell whether the zone enforces revocation ({why}); {advice}"))
            }
        }
    }

    /// The verdict as the run_start event and the JSON summary record it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "zone_id": self.zone.to_string(),
            "verdict": self.verdict.name(),
            "reason": self.verdict.reason(),
            "rule_id": self.verdict.rule().map(|r| r.id.as_str()),
        })
    }
}

/// Every check as a JSON array.
pub fn to_json(checks: &[ZoneCheck]) -> serde_json::Value {
    checks.iter().map(ZoneCheck::to_json).collect()
}

/// What stops the check as a whole; anything else is the zone's `unknown`.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// 401: the token is dead.
    #[error("zone {zone}: credentials refused: {answer}")]
    CredentialsRefused { zone: ZoneId, answer: String },
    #[error("stopped before zone {zone}'s custom rules were read")]
    Stopped { zone: ZoneId },
    /// A failure that every other request would meet too (TLS refused, a
    /// proxy refusing the tunnel): reading the next zone would only repeat it.
    #[error("cannot read zone {zone}'s custom rules: {why}")]
    Unreachable { zone: ZoneId, why: String },
}

/// Reads each zone's custom rules, one request per zone, through
/// `dispatcher` (its pacer, 429 pause and retries).
pub async fn check_zones(dispatcher: &Dispatcher, zones: &[ZoneId]) -> Result<Vec<ZoneCheck>, CheckError> {
    let mut checks = Vec::with_capacity(zones.len());
    for &zone in zones {
        let settled = dispatcher
            .send(&Request::for_rules(zone), || dispatcher.client.custom_rules(zone))
            .await
            .filter(|settled| !settled.interrupted)
            .ok_or(CheckError::Stopped { zone })?;
        checks.push(ZoneCheck { zone, verdict: answer(zone, settled)? });
    }
    Ok(checks)
}

/// What a settled read of the rules says.
fn answer(zone: ZoneId, settled: Settled<Ruleset>) -> Result<Verdict, CheckError> {
    let exhausted = settled.exhausted();
    let reply = match &settled.answer {
        Err(e) if e.is_final() => return Err(CheckError::Unreachable { zone, why: e.to_string() }),
        Err(_) => return Ok(Verdict::Unknown(format!("could not read the custom rules: {exhausted}"))),
        Ok(reply) => reply,
    };
    match reply.status {
        401 => Err(CheckError::CredentialsRefused { zone, answer: reply.describe() }),
        403 => Ok(Verdict::Unknown(format!(
            "{}: the token may not read custom rules; it needs \"{READ_PERMISSION}\"",
            reply.describe()
        ))),
        404 => Ok(Verdict::NotEnforced(Lapse::NoCustomRules)),
        _ if settled.gave_up => Ok(Verdict::Unknown(format!("could not read the custom rules: {exhausted}"))),
        200..=299 => match &reply.body {
            Ok(envelope) if envelope.success => Ok(judge(envelope.result.as_ref())),
            _ => Ok(Verdict::Unknown(format!("could not read the custom rules: {}", reply.describe()))),
        },
        _ => Ok(Verdict::Unknown(format!("could not read the custom rules: {}", reply.describe()))),
    }
}

/// The verdict on a zone's entry-point ruleset (`None`: no custom rules).
/// A rule that enforces wins; otherwise the lapse closest to enforcing is
/// named, as it is the one to fix.
pub fn judge(ruleset: Option<&Ruleset>) -> Verdict {
    let rules = ruleset.map_or(&[][..], |r| &r.rules);
    let revoked = || rules.iter().filter(|r| r.expression.contains(REVOKED_FIELD));
    if let Some(rule) = revoked().find(|r| r.enabled && r.action == BLOCKING_ACTION) {
        return Verdict::Enforced(rule.into());
    }
    let lapse = if let Some(rule) = revoked().find(|r| r.enabled) {
        Lapse::ActionDoesNotBlock(rule.into())
    } else if let Some(rule) = revoked().next() {
        Lapse::RuleDisabled(rule.into())
    } else if let Some(rule) = rules.iter().find(|r| r.expression.contains(VERIFIED_FIELD)) {
        Lapse::OnlyCertVerified(rule.into())
    } else if rules.is_empty() {
        Lapse::NoCustomRules
    } else {
        Lapse::NoCertificateRule
    };
    Verdict::NotEnforced(lapse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(expression: &str, action: &str, enabled: bool) -> Rule {
        Rule {
            id: format!("r-{action}-{enabled}"),
            expression: expression.into(),
            action: action.into(),
            enabled,
            description: None,
        }
    }

    fn verdict(rules: Vec<Rule>) -> Verdict {
        judge(Some(&Ruleset { id: "rs".into(), rules, ..Ruleset::default() }))
    }

    #[test]
    fn only_an_enabled_blocking_cert_revoked_rule_enforces() {
        let host = r#"http.host eq "api.example.com""#;
        let enforced = verdict(vec![rule(host, "log", true), rule(EXAMPLE_EXPRESSION, "block", true)]);
        assert_eq!(enforced.rule().map(|r| r.id.as_str()), Some("r-block-true"));
        assert!(enforced.is_enforced());
        let names = |v: Verdict| (v.name(), v.reason());
        assert_eq!(names(judge(None)), ("not_enforced", "no custom rules".into()));
        assert_eq!(verdict(vec![]).reason(), "no custom rules");
        assert_eq!(verdict(vec![rule(host, "block", true)]).reason(), "no custom rule checks the client certificate");
        let verified = verdict(vec![rule("not cf.tls_client_auth.cert_verified", "block", true)]);
        assert!(verified.reason().contains("checks only cf.tls_client_auth.cert_verified"), "{verified:?}");
        let disabled = verdict(vec![rule(EXAMPLE_EXPRESSION, "block", false)]);
        assert_eq!(disabled.reason(), "the rule using cf.tls_client_auth.cert_revoked is disabled");
        for action in ["log", "managed_challenge", "skip"] {
            let lapse = verdict(vec![rule(EXAMPLE_EXPRESSION, "block", false), rule(EXAMPLE_EXPRESSION, action, true)]);
            assert!(lapse.reason().contains(&format!("has action {action}, which does not block")), "{lapse:?}");
        }
    }

    #[test]
    fn a_warning_never_claims_more_than_the_custom_rules_show() {
        let zone: ZoneId = "023e105f4ecef8ad9ca31a8372d0c353".parse().unwrap();
        let check = ZoneCheck { zone, verdict: judge(None) };
        let warning = check.warning().unwrap();
        assert!(warning.contains("not seen in the zone's custom rules") && warning.contains(EXAMPLE_EXPRESSION));
        assert!(!warning.contains("not enforced anywhere"));
        assert_eq!(ZoneCheck { zone, verdict: verdict(vec![rule(EXAMPLE_EXPRESSION, "block", true)]) }.warning(), None);
        assert_eq!(check.to_json()["verdict"], "not_enforced");
    }
}
