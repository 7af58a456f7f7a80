//! Invented certificates that look like Cloudflare's.
//!
//! Only the IDs and the state are stored; every other field is derived from
//! the seed and the IDs whenever a certificate is answered, so a million
//! certificates cost a few dozen bytes each and stay identical across runs.
//! The real X.509 certificate behind them is made from these fields, on
//! demand ([`super::x509`]).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::x509;
use crate::api::{CertStatus, CertificateAuthority, ClientCertificate};
use crate::input::ids::{CertId, ZoneId};
pub(crate) use crate::operations::cert_filter::hex;

/// Mixed into the seed so generated IDs come from a stream of their own:
/// changing fault rates must not change which certificates exist.
const GENERATE_STREAM: u64 = 0x6365_7274_6964_7321;
/// Likewise for the certificate authority's ID.
const CA_STREAM: u64 = 0x6361_5f69_6400_0001;
/// 2022-01-01T00:00:00Z: issue dates fall in the three years after it.
const ISSUED_FROM: u64 = 1_640_995_200;
const DAY: u64 = 86_400;
const VALIDITY_DAYS: [u32; 3] = [365, 730, 3650];

/// `count` certificates with UUID IDs (the form current documentation
/// shows), dealt round-robin over `zones` new zones.
pub(crate) fn generate(seed: u64, count: usize, zones: usize) -> Vec<(ZoneId, CertId)> {
    let mut rng = SmallRng::seed_from_u64(seed ^ GENERATE_STREAM);
    let zone_ids: Vec<ZoneId> = (0..zones).map(|_| zone_id(rng.random())).collect();
    zone_ids.iter().cycle().take(count).map(|&zone| (zone, uuid(rng.random()))).collect()
}

/// Every OpenAPI field of a certificate, as the API would answer it now,
/// but its PEM and the fingerprint of it: those take signing a real
/// certificate, which [`super::x509`] does only for the answers that are read.
pub(crate) fn describe(seed: u64, zone: ZoneId, cert: CertId, status: CertStatus) -> ClientCertificate {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(zone.to_bytes())
        .chain_update(cert.to_bytes())
        .finalize();
    let detail = Sha256::digest(digest);
    let key_id = Sha256::digest(detail);
    let name = hex(&digest[..6]);
    // A serial's first byte between 0x40 and 0x7f: positive in DER and no
    // leading zero, so it has 40 digits wherever it is shown.
    let mut serial = detail[..20].to_vec();
    serial[0] = (serial[0] & 0x3f) | 0x40;
    let serial = hex(&serial);
    let validity_days = VALIDITY_DAYS[usize::from(detail[20]) % VALIDITY_DAYS.len()];
    let day = u64::from(u16::from_be_bytes([detail[21], detail[22]])) % (3 * 365);
    let issued = ISSUED_FROM + day * DAY + u64::from(u16::from_be_bytes([detail[23], detail[24]])) % DAY;
    ClientCertificate {
        id: cert.to_string(),
        status: Some(status),
        certificate: None,
        certificate_authority: Some(CertificateAuthority {
            id: uuid(SmallRng::seed_from_u64(seed ^ CA_STREAM).random()).to_string(),
            name: x509::CA_NAME.to_string(),
        }),
        common_name: Some(format!("device-{name}")),
        country: Some("US".to_string()),
        csr: Some(pem("CERTIFICATE REQUEST", &serial)),
        expires_on: Some(rfc3339(issued + u64::from(validity_days) * DAY)),
        fingerprint_sha256: None,
        issued_on: Some(rfc3339(issued)),
        location: Some("San Francisco".to_string()),
        organization: Some("Sandbox Devices Inc.".to_string()),
        organizational_unit: Some("mTLS clients".to_string()),
        serial_number: Some(serial),
        signature: Some("SHA256WithRSA".to_string()),
        ski: Some(hex(&key_id[..20])),
        state: Some("CA".to_string()),
        validity_days: Some(validity_days),
    }
}

fn zone_id(bits: u128) -> ZoneId {
    ZoneId::parse(format!("{bits:032x}").as_bytes()).expect("32 hex digits are a zone ID")
}

/// A version-4 UUID, as Cloudflare issues them.
fn uuid(random: u128) -> CertId {
    let versioned = (random & !(0xf << 76)) | (0x4 << 76);
    let bits = (versioned & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    let text = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
    CertId::parse(text.as_bytes()).expect("a formatted UUID is a certificate ID")
}

/// A placeholder in PEM framing for the CSR: nothing parses it, but it reads
/// like one.
fn pem(label: &str, filler: &str) -> String {
    format!("-----BEGIN {label}-----\nMII{filler}\n-----END {label}-----")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (Howard Hinnant's
/// days-to-civil algorithm, restricted to dates after 1970).
fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / DAY, unix % DAY);
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_677_194_280), "2023-02-23T23:18:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(rfc3339(ISSUED_FROM), "2022-01-01T00:00:00Z");
    }

    #[test]
    fn generation_is_deterministic_and_spread_over_zones() {
        let certs = generate(7, 10, 3);
        assert_eq!(certs, generate(7, 10, 3));
        assert_ne!(certs, generate(8, 10, 3));
        assert_eq!(certs[0].0, certs[3].0);
        assert_ne!(certs[0].0, certs[1].0);
        let mut ids: Vec<_> = certs.iter().map(|c| c.1).collect();
        ids.dedup();
        assert_eq!(ids.len(), 10);
        let id = certs[0].1.to_string();
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        assert!(generate(7, 10, 0).is_empty());
    }

    #[test]
    fn descriptions_are_plausible_and_stable() {
        let (zone, cert) = generate(1, 1, 1)[0];
        let described = describe(1, zone, cert, CertStatus::Active);
        assert_eq!(described, describe(1, zone, cert, CertStatus::Active));
        assert_eq!(described.id, cert.to_string());
        assert_eq!(described.serial_number.as_ref().map(String::len), Some(40));
        assert_eq!(described.ski.as_ref().map(String::len), Some(40));
        let issued = described.issued_on.unwrap();
        let expires = described.expires_on.unwrap();
        assert!(issued.starts_with("202") && issued.ends_with('Z') && issued.len() == 20, "{issued}");
        assert!(expires > issued);
        assert_eq!((described.certificate, described.fingerprint_sha256), (None, None), "made on demand only");
        assert_ne!(
            describe(2, zone, cert, CertStatus::Active).serial_number,
            describe(1, zone, cert, CertStatus::Active).serial_number
        );
    }
}
