//! What stands between cfrevoke and the API: the roots it trusts, the proxy
//! it goes through, and what their failures mean in words a responder can
//! act on. hyper and rustls report these as a chain of wrapped errors whose
//! innermost message ("invalid peer certificate: UnknownIssuer") names no
//! fix; behind a re-signing proxy that is the first thing anyone meets.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, RootCertStore};

/// Far more than any CA bundle (the system's is some 200 KB): a wrong path
/// such as `/dev/zero` is refused instead of read until memory runs out.
const MAX_BUNDLE: u64 = 16 << 20;

/// Root certificates trusted for one run on top of the system's: a company
/// CA that a TLS-inspecting proxy re-signs with, or the sandbox's own.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// Where the certificates came from, for the run_start event and errors.
    source: String,
    certs: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaBundle({}, {} certificates)", self.source, self.certs.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaBundleError {
    #[error("cannot read the CA bundle {0}: {1}")]
    Read(String, std::io::Error),
    #[error("the CA bundle {0} is over {max} MiB: not a PEM file of certificates", max = MAX_BUNDLE >> 20)]
    TooLarge(String),
    #[error("the CA bundle {0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty(String),
    #[error("the CA bundle {0} is not valid PEM: {1}")]
    Pem(String, String),
    #[error("certificate {1} in the CA bundle {0} cannot be a trust root: {2}")]
    Broken(String, usize, String),
}

impl CaBundle {
    /// Reads and checks a PEM bundle, so that a wrong file is the user's
    /// error before anything is sent rather than a handshake failure later.
    pub fn load(path: &Path) -> Result<CaBundle, CaBundleError> {
        let source = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_BUNDLE + 1).read_to_end(&mut bytes))
            .map_err(|e| CaBundleError::Read(source.clone(), e))?;
        if bytes.len() as u64 > MAX_BUNDLE {
            return Err(CaBundleError::TooLarge(source));
        }
        CaBundle::from_pem(source, &bytes)
    }

    /// The certificates of a PEM text; anything between them is ignored, as
    /// OpenSSL does, but every certificate must parse as a trust anchor.
    pub fn from_pem(source: impl Into<String>, pem: &[u8]) -> Result<CaBundle, CaBundleError> {
        let source = source.into();
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaBundleError::Pem(source.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(CaBundleError::Empty(source));
        }
        let mut store = RootCertStore::empty();
        for (i, cert) in certs.iter().enumerate() {
            store.add(cert.clone()).map_err(|e| CaBundleError::Broken(source.clone(), i + 1, e.to_string()))?;
        }
        Ok(CaBundle { source, certs })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn certificates(&self) -> impl Iterator<Item = reqwest::Certificate> + '_ {
        self.certs.iter().map(|der| reqwest::Certificate::from_der(der).expect("checked to be a certificate on load"))
    }
}

/// A request that got no HTTP answer. Messages carry no URL and no header.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("connection failed: {0}")]
    Other(String),
    /// The server's certificate was refused; the message says why and what to do.
    #[error("{0}")]
    Tls(String),
    /// The proxy would not open a tunnel to the API.
    #[error("{0}")]
    Proxy(String),
}

impl TransportError {
    /// Whether the request may have reached the API. A connection that was
    /// never made, a handshake that failed or a tunnel that was refused
    /// carried nothing: the request line and the credentials only go out
    /// once TLS is up.
    pub fn may_have_reached_api(&self) -> bool {
        matches!(self, TransportError::Timeout(_) | TransportError::Other(_))
    }

    /// Whether the same request would fail the same way: an untrusted
    /// certificate or a proxy that refuses the tunnel does not change from
    /// one attempt to the next, so retrying only delays the message.
    pub fn is_final(&self) -> bool {
        matches!(self, TransportError::Tls(_) | TransportError::Proxy(_))
    }
}

/// The proxy requests to `base` go through, as reqwest picks it from
/// `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (the same matcher), shown as
/// `host:port` only: its URL may carry a user and password.
pub fn proxy_for(base: &impl std::fmt::Display) -> Option<String> {
    let uri: hyper::Uri = base.to_string().parse().ok()?;
    let intercept = hyper_util::client::proxy::matcher::Matcher::from_system().intercept(&uri)?;
    let proxy = intercept.uri();
    let host = proxy.host()?;
    Some(match proxy.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// What a failed connection means, when it is the TLS handshake or the
/// proxy that failed; `None` for anything else (refused, reset, DNS).
pub(crate) fn failure(
    err: &(dyn std::error::Error + 'static),
    host: &str,
    proxy: Option<&str>,
) -> Option<TransportError> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls_failure(tls, host));
        }
        if let Some(tunnel) = e.to_string().strip_prefix(TUNNEL_ERROR) {
            return Some(tunnel_failure(tunnel, proxy.unwrap_or("from HTTPS_PROXY")));
        }
        // An io::Error's source() skips the error it wraps, which is where
        // hyper-rustls puts rustls's (inside another io::Error): look inside.
        cause = match e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// A certificate the verifier refused will be refused again: final, and
/// nothing (credentials included) was sent. Other handshake errors (an
/// alert, a cut connection) may pass, and are retried as connection errors.
fn tls_failure(err: &rustls::Error, host: &str) -> TransportError {
    let rustls::Error::InvalidCertificate(why) = err else {
        return TransportError::Connect(format!("TLS handshake with {host} failed: {err}"));
    };
    let what = match why {
        CertificateError::UnknownIssuer => {
            "has an unknown issuer (pass --ca-cert FILE if a proxy re-signs TLS, or for a private CA)".to_string()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "has expired".to_string(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "is not valid yet".to_string(),
        CertificateError::NotValidForName => format!("is not valid for the host name {host}"),
        CertificateError::NotValidForNameContext { presented, .. } => {
            // webpki presents names as `DnsName("example.com")`.
            let names: Vec<&str> = presented.iter().map(|name| name.split('"').nth(1).unwrap_or(name)).collect();
            format!("is not valid for the host name {host} (it names {})", names.join(", "))
        }
        other => format!("was refused: {other:?}"),
    };
    TransportError::Tls(format!("TLS: the certificate of {host} {what}; nothing was sent"))
}

/// How hyper-util's `TunnelError` starts its message. The type itself is
/// private to hyper-util, so its message is all there is to go by; the
/// proxy tests (403 and 407 to CONNECT) notice if its wording changes.
const TUNNEL_ERROR: &str = "tunnel error: ";

/// A proxy that will not open the tunnel answers the same next time;
/// one that could not be reached or hung up may come back.
fn tunnel_failure(what: &str, proxy: &str) -> TransportError {
    match what {
        "proxy authorization required" => TransportError::Proxy(format!(
            "the proxy {proxy} asks for authentication (407): put user:password in the proxy's URL"
        )),
        "unsuccessful" => TransportError::Proxy(format!(
            "the proxy {proxy} refused the tunnel to the API (CONNECT was not answered 200)"
        )),
        other => TransportError::Connect(format!("through the proxy {proxy}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_must_hold_good_certificates() {
        assert!(matches!(CaBundle::from_pem("x", b"no certificate here\n"), Err(CaBundleError::Empty(_))));
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(CaBundle::from_pem("x", broken), Err(CaBundleError::Broken(_, 1, _))));
        let torn = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(CaBundle::from_pem("x", torn).is_err());
    }

    #[test]
    fn certificate_errors_name_the_fix() {
        let shown = |why| tls_failure(&rustls::Error::InvalidCertificate(why), "127.0.0.1").to_string();
        assert!(shown(CertificateError::UnknownIssuer).contains("unknown issuer (pass --ca-cert"));
        assert!(shown(CertificateError::Expired).contains("has expired"));
        assert!(shown(CertificateError::NotValidForName).contains("not valid for the host name 127.0.0.1"));
        let alert = tls_failure(&rustls::Error::HandshakeNotComplete, "h");
        assert!(matches!(alert, TransportError::Connect(_)), "{alert:?}");
    }
}
