//! A stateful simulation of Cloudflare's client-certificate API on loopback.
//!
//! It lets cfrevoke be demonstrated and tested end to end without touching a
//! real certificate: the same paths, envelopes, error codes and rate-limit
//! headers as the API, plus the failures a real run meets (latency, 5xx,
//! resets, slow and garbled answers, a 5-minute block), all reproducible
//! from a seed. What it saw is kept in a [`Journal`], so tests can check
//! properties such as "no certificate was revoked twice" or "the quota was
//! never exceeded".
//!
//! Endpoints, under `/client/v4` like the real base URL:
//! `GET /zones/{zone}/client_certificates`, `GET|DELETE|PATCH
//! /zones/{zone}/client_certificates/{id}`, `GET /user/tokens/verify` and
//! `GET /zones/{zone}/rulesets/phases/http_request_firewall_custom/entrypoint`
//! and `GET /zones` (each zone named `zone-N.example`, in one of two accounts);
//! outside it, without credentials or faults, `GET /__sandbox/stats` (the
//! journal) and `POST /__sandbox/reset-journal` (the journal so far, then
//! a fresh one).

mod auth;
mod config;
mod faults;
mod fixtures;
mod journal;
mod origin;
mod ratelimit;
mod response;
mod routes;
mod rules;
mod server;
mod state;
pub mod tls;
mod x509;
mod zones;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use config::SandboxConfig;
pub use faults::Faults;
pub use journal::{CertActivity, CertEntry, FaultCounts, Journal};
pub use ratelimit::{Burst, RateLimit, WindowKind};
pub use rules::Enforcing;

use crate::input::ids::{CertId, ZoneId};
use origin::Origin;
use response::Announcement;
use server::Shared;
use tls::ThrowawayCa;

/// A running sandbox. Dropping it stops the server too; [`Sandbox::shutdown`]
/// also waits until it has stopped.
pub struct Sandbox {
    addr: SocketAddr,
    token: String,
    email: String,
    key: String,
    shared: Arc<Shared>,
    /// With [`SandboxConfig::tls`], the CA its certificate is signed by.
    ca: Option<ThrowawayCa>,
    stop: DropGuard,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Binds `config.listen` and starts serving in the background.
    pub async fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let origin = Origin::new(&config, Instant::now());
        let credentials = origin.credentials();
        let (token, email, key) =
            (credentials.token().to_string(), credentials.email().to_string(), credentials.key().to_string());
        let shared = Arc::new(Shared::new(origin, Announcement::new(&config.rate)?, config.faults.slow_delay));
        let ca = config.tls.then(ThrowawayCa::new).transpose()?;
        let acceptor = ca.as_ref().map(|ca| ca.acceptor(&tls::SERVED_NAMES, false)).transpose()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, shared.clone(), stop.clone(), acceptor));
        tracing::debug!(%addr, "sandbox: listening");
        Ok(Sandbox { addr, token, email, key, shared, ca, stop: stop.drop_guard(), task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `CLOUDFLARE_BASE_URL` should be, e.g. `http://127.0.0.1:PORT/client/v4`
    /// (`https://` with [`SandboxConfig::tls`]).
    pub fn base_url(&self) -> String {
        format!("{}/client/v4", self.origin_url())
    }

    /// Where the journal is served as JSON.
    pub fn stats_url(&self) -> String {
        format!("{}/__sandbox/stats", self.origin_url())
    }

    fn origin_url(&self) -> String {
        format!("{}://{}", if self.ca.is_some() { "https" } else { "http" }, self.addr)
    }

    /// The CA to trust for HTTPS (`--ca-cert`), when serving it.
    pub fn ca(&self) -> Option<&ThrowawayCa> {
        self.ca.as_ref()
    }

    /// The bearer token the sandbox accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The legacy `X-Auth-Email` and `X-Auth-Key` it accepts.
    pub fn email_and_key(&self) -> (&str, &str) {
        (&self.email, &self.key)
    }

    /// Every certificate served, in listing order.
    pub fn certificates(&self) -> Vec<(ZoneId, CertId)> {
        self.shared.origin().store().keys()
    }

    /// The real certificate (PEM) served for `zone`/`cert`, if it is served.
    pub fn pem(&self, zone: ZoneId, cert: CertId) -> Option<String> {
        self.shared.origin().store().pem((zone, cert), Instant::now())
    }

    /// How many zones the certificates are spread over.
    pub fn zone_count(&self) -> usize {
        self.shared.origin().store().zone_count()
    }

    /// A snapshot of the journal, as `GET /__sandbox/stats` serves it.
    pub fn journal(&self) -> Journal {
        self.shared.origin().journal(Instant::now())
    }

    /// Stops accepting, aborts open connections and waits for the server.
    pub async fn shutdown(self) {
        let Sandbox { stop, task, .. } = self;
        drop(stop);
        if let Err(error) = task.await {
            tracing::debug!(%error, "sandbox: server task ended abnormally");
        }
    }
}

#[cfg(test)]
mod tests;
