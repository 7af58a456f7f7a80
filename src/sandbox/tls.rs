//! A throwaway certificate authority, so the sandbox can serve HTTPS and a
//! run can be tested end to end over TLS: the client verifies a real chain
//! (CA, then a server certificate for the address it dials) through the
//! same verifier it uses against Cloudflare, and trusts it only because it
//! was told to (`--ca-cert`). The CA's key lives in memory and dies with
//! the process.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::transport::CaBundle;

/// A CA made for one process.
pub struct ThrowawayCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// The host names and addresses the sandbox's certificate is good for.
pub const SERVED_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

impl ThrowawayCa {
    pub fn new() -> anyhow::Result<ThrowawayCa> {
        let key = KeyPair::generate().context("cannot generate the sandbox CA's key")?;
        let mut params = CertificateParams::default();
        // A name of its own: a verifier that trusts another sandbox's CA must
        // find no issuer (unknown issuer), not one of the same name whose
        // signature fails.
        let made = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let name = format!("cfrevoke sandbox throwaway CA {}.{}", std::process::id(), made.as_nanos());
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).context("cannot sign the sandbox CA")?;
        Ok(ThrowawayCa { issuer: Issuer::new(params, key), pem: cert.pem() })
    }

    /// The CA certificate, as `--ca-cert` reads it.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The same, as the roots a client trusts.
    pub fn bundle(&self) -> CaBundle {
        CaBundle::from_pem("the sandbox's throwaway CA", self.pem.as_bytes()).expect("rcgen writes valid PEM")
    }

    /// A TLS acceptor presenting a certificate for `names`, signed by this
    /// CA; `expired` backdates it, for tests of what an expired one says.
    pub fn acceptor(&self, names: &[&str], expired: bool) -> anyhow::Result<TlsAcceptor> {
        let key = KeyPair::generate().context("cannot generate the sandbox server's key")?;
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .context("invalid sandbox host name")?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("sandbox"));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).context("cannot sign the sandbox server's certificate")?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
