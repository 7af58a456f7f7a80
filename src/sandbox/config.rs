//! Every knob of the sandbox in one value, so a test, the `sandbox`
//! subcommand and `revoke --sandbox` describe a simulated Cloudflare the same way.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, ensure};

use super::faults::Faults;
use super::ratelimit::RateLimit;
use super::rules::Enforcing;
use crate::input::ids::{CertId, ZoneId};

#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Must be a loopback address: a test double must never be reachable
    /// from elsewhere, where it could be mistaken for the real API. Port 0
    /// picks a free port.
    pub listen: SocketAddr,
    /// Certificates to serve, listed in this order (typically the rows a run
    /// is about to revoke). Duplicates are served once.
    pub certs: Vec<(ZoneId, CertId)>,
    /// Further certificates to invent, dealt round-robin over `zones` zones.
    pub generate: usize,
    pub zones: usize,
    /// Drives every random choice (IDs, certificate fields, faults, latency,
    /// cf-ray, credentials) so a surprising run can be replayed exactly.
    pub seed: u64,
    /// How long `pending_revocation` and `pending_reactivation` last before
    /// settling: Cloudflare applies both asynchronously, and a client that
    /// reads back a certificate it just revoked must cope with that.
    pub revoke_delay: Duration,
    pub rate: RateLimit,
    pub faults: Faults,
    /// The bearer token stops working after this many authenticated requests
    /// (401 from then on), like a token that expires or is rolled mid-run.
    pub token_expires_after: Option<u64>,
    /// Answer every DELETE and PATCH with 403, as for a token that has
    /// "SSL and Certificates Read" but not `#ssl:edit`.
    pub forbid_writes: bool,
    /// Serve HTTPS with a certificate from a throwaway CA made at start
    /// ([`crate::sandbox::Sandbox::ca`]), as Cloudflare serves: the client's
    /// trust roots and handshake get tested too.
    pub tls: bool,
    /// Which zones' custom rules block revoked certificates.
    pub enforcing: Enforcing,
    /// Answer 403 to every read of custom rules, as for a token without
    /// "Zone WAF Read".
    pub forbid_rules_read: bool,
}

impl Default for SandboxConfig {
    /// A quiet, faithful API: no faults, no latency, Cloudflare's real quota.
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            certs: Vec::new(),
            generate: 0,
            zones: 1,
            seed: 1,
            revoke_delay: Duration::from_secs(2),
            rate: RateLimit::default(),
            faults: Faults::default(),
            token_expires_after: None,
            forbid_writes: false,
            tls: false,
            enforcing: Enforcing::All,
            forbid_rules_read: false,
        }
    }
}

impl SandboxConfig {
    /// A lively profile for demonstrations: every failure a real run meets,
    /// often enough to show up in a few hundred rows, yet short enough that
    /// such a run finishes in seconds. The user is blocked once, after 120
    /// requests, as if another tool sharing the token had used up the quota.
    pub fn demo() -> Self {
        SandboxConfig {
            // Cloudflare's quota with time running ten times faster, so a demo
            // paced at the full quota takes seconds rather than minutes.
            rate: RateLimit {
                window: Duration::from_secs(30),
                block: Duration::from_secs(4),
                force_429_after: Some(120),
                ..RateLimit::default()
            },
            faults: Faults {
                latency_mean: Duration::from_millis(25),
                latency_max: Some(Duration::from_millis(250)),
                error_rate: 0.03,
                reset_rate: 0.01,
                malformed_rate: 0.01,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        }
    }

    /// Refuses settings that would make the simulation meaningless or
    /// expose it beyond this machine.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() {
            bail!("the sandbox listens only on a loopback address (127.0.0.1 or [::1]), not {}", self.listen);
        }
        ensure!(self.generate == 0 || self.zones > 0, "generating certificates needs at least one zone");
        self.rate.validate()?;
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_demo_are_valid() {
        SandboxConfig::default().validate().unwrap();
        SandboxConfig::demo().validate().unwrap();
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let mut config = SandboxConfig::default();
        for ok in ["127.0.0.1:0", "127.3.4.5:8787", "[::1]:0"] {
            config.listen = ok.parse().unwrap();
            config.validate().unwrap();
        }
        for bad in ["0.0.0.0:8787", "192.168.1.2:80", "[::]:0"] {
            config.listen = bad.parse().unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn generating_needs_zones() {
        let config = SandboxConfig { generate: 5, zones: 0, ..SandboxConfig::default() };
        assert!(config.validate().is_err());
    }
}
