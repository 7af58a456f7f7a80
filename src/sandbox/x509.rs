//! Real X.509 client certificates for the sandbox's invented ones, so a PEM
//! it serves (or writes for a drill) is matched by `list --pem` exactly as a
//! leaked Cloudflare certificate would be: its `fingerprint_sha256` is the
//! SHA-256 of that PEM's DER, and its serial, SKI, subject and dates are the
//! ones the API reports.
//!
//! Signing costs tens of microseconds, which a million generated
//! certificates revoked at tens of thousands a second cannot afford at start
//! or on every DELETE. So a certificate is made on its first read (a GET, a
//! list page), kept, and made again identically if the cache was cleared:
//! its key is seeded from the sandbox seed and its IDs, its serial, SKI and
//! dates come from the description, and Ed25519 signatures are
//! deterministic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    SerialNumber, PKCS_ED25519,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use sha2::{Digest, Sha256};

use super::routes::CertKey;
use crate::api::ClientCertificate;
use crate::operations::cert_filter::hex;
use crate::operations::timestamp;

/// Certificates kept at most; past it the cache starts over, which only
/// costs re-signing, so listing a million certificates stays bounded in
/// memory.
const MAX_CACHED: usize = 65_536;

/// The issuer the API names in `certificate_authority`.
pub(crate) const CA_NAME: &str = "Cloudflare Managed CA for account";

/// Ed25519 private keys in PKCS#8 v1 are this prefix and the 32-byte seed
/// (RFC 8410), which is how a key is made from a seed without an RNG.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// A certificate as served: its PEM and the SHA-256 of its DER.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Made {
    pub pem: String,
    pub fingerprint: String,
}

pub(crate) struct X509Cache {
    seed: u64,
    ca: OnceLock<Issuer<'static, KeyPair>>,
    made: Mutex<HashMap<CertKey, Arc<Made>>>,
}

impl std::fmt::Debug for X509Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Cache").field("seed", &self.seed).finish_non_exhaustive()
    }
}

impl X509Cache {
    pub(crate) fn new(seed: u64) -> X509Cache {
        X509Cache { seed, ca: OnceLock::new(), made: Mutex::new(HashMap::new()) }
    }

    /// Completes `described` with its real certificate, making it if need be.
    pub(crate) fn fill(&self, key: CertKey, described: &mut ClientCertificate) {
        let made = self.made_for(key, described);
        attach(&made, described);
    }

    /// Completes `described` only if its certificate was made already: the
    /// answers to DELETE and PATCH, which nobody reads but for the status,
    /// must stay cheap.
    pub(crate) fn fill_if_made(&self, key: CertKey, described: &mut ClientCertificate) {
        let made = self.made.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if let Some(made) = made {
            attach(&made, described);
        }
    }

    fn made_for(&self, key: CertKey, described: &ClientCertificate) -> Arc<Made> {
        if let Some(made) = self.made.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return made.clone();
        }
        let made = Arc::new(self.sign(key, described));
        let mut cache = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, made.clone());
        made
    }

    fn sign(&self, (zone, cert): CertKey, described: &ClientCertificate) -> Made {
        let ca = self.ca.get_or_init(|| managed_ca(self.seed));
        let key = seeded_key(&[&self.seed.to_le_bytes(), b"client", &zone.to_bytes(), &cert.to_bytes()]);
        let mut params = CertificateParams::default();
        let subject = [
            (DnType::CommonName, &described.common_name),
            (DnType::OrganizationName, &described.organization),
            (DnType::OrganizationalUnitName, &described.organizational_unit),
            (DnType::CountryName, &described.country),
            (DnType::StateOrProvinceName, &described.state),
            (DnType::LocalityName, &described.location),
        ];
        for (kind, value) in subject {
            if let Some(value) = value {
                params.distinguished_name.push(kind, value.as_str());
            }
        }
        params.serial_number = described.serial_number.as_deref().map(|s| SerialNumber::from_slice(&unhex(s)));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_identifier_method =
            KeyIdMethod::PreSpecified(described.ski.as_deref().map(unhex).unwrap_or_default());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let instant = |date: &Option<String>| {
            let at = date.as_deref().and_then(|d| timestamp::parse(d).ok()).unwrap_or(UNIX_EPOCH);
            rcgen::date_time_ymd(1970, 1, 1) + at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
        };
        params.not_before = instant(&described.issued_on);
        params.not_after = instant(&described.expires_on);
        let cert = params.signed_by(&key, ca).expect("a sandbox certificate from fixed fields signs");
        Made { pem: cert.pem(), fingerprint: hex(&Sha256::digest(cert.der())) }
    }
}

fn attach(made: &Made, described: &mut ClientCertificate) {
    described.certificate = Some(made.pem.clone());
    described.fingerprint_sha256 = Some(made.fingerprint.clone());
}

/// The account's managed CA, one per seed, so every certificate a sandbox
/// serves chains to the same issuer.
fn managed_ca(seed: u64) -> Issuer<'static, KeyPair> {
    let key = seeded_key(&[&seed.to_le_bytes(), b"managed ca"]);
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Issuer::new(params, key)
}

fn seeded_key(parts: &[&[u8]]) -> KeyPair {
    let seed = parts.iter().fold(Sha256::new(), |hash, part| hash.chain_update(part)).finalize();
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&seed);
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)
        .expect("a 32-byte seed is an Ed25519 key")
}

/// Hex the sandbox wrote itself, so never malformed.
fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("0"), 16).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    use super::*;
    use crate::api::CertStatus;
    use crate::sandbox::fixtures;

    fn served(cache: &X509Cache, key: CertKey) -> ClientCertificate {
        let mut described = fixtures::describe(cache.seed, key.0, key.1, CertStatus::Active);
        cache.fill(key, &mut described);
        described
    }

    /// `needle` as a DER element: tag, one length byte, content.
    fn element(tag: u8, content: &[u8]) -> Vec<u8> {
        [&[tag, content.len() as u8][..], content].concat()
    }

    #[test]
    fn the_fingerprint_serial_and_ski_are_those_of_the_pem() {
        let key = fixtures::generate(3, 1, 1)[0];
        let cert = served(&X509Cache::new(3), key);
        let der = CertificateDer::from_pem_slice(cert.certificate.as_deref().unwrap().as_bytes()).unwrap();
        assert_eq!(cert.fingerprint_sha256.as_deref(), Some(hex(&Sha256::digest(&der)).as_str()));
        let contains = |needle: Vec<u8>| der.windows(needle.len()).any(|w| w == needle.as_slice());
        assert!(contains(element(0x02, &unhex(cert.serial_number.as_deref().unwrap()))), "serial INTEGER");
        assert!(contains(element(0x04, &unhex(cert.ski.as_deref().unwrap()))), "SKI OCTET STRING");
        assert!(contains(cert.common_name.unwrap().into_bytes()));
    }

    #[test]
    fn certificates_are_the_same_whenever_made_and_differ_per_certificate() {
        let keys = fixtures::generate(3, 2, 1);
        let first = served(&X509Cache::new(3), keys[0]);
        assert_eq!(first, served(&X509Cache::new(3), keys[0]), "seeded key, fixed fields, Ed25519");
        assert_ne!(first.fingerprint_sha256, served(&X509Cache::new(3), keys[1]).fingerprint_sha256);
    }

    #[test]
    fn a_changed_answer_shows_only_a_certificate_already_made() {
        let cache = X509Cache::new(3);
        let key = fixtures::generate(3, 1, 1)[0];
        let mut answer = fixtures::describe(3, key.0, key.1, CertStatus::PendingRevocation);
        cache.fill_if_made(key, &mut answer);
        assert_eq!(answer.certificate, None, "not signed for a DELETE");
        let read = served(&cache, key);
        cache.fill_if_made(key, &mut answer);
        assert_eq!((answer.certificate, answer.fingerprint_sha256), (read.certificate, read.fingerprint_sha256));
    }
}
