//! Zone and certificate identifiers.
//!
//! IDs are parsed into fixed-size binary values and only ever turned back into
//! text by formatting those values, so nothing read from a CSV (a slash, a dot,
//! a percent sign, a query string) can change the shape of a request URL.
//! The binary form also keeps the dedupe set compact for million-row inputs.

use std::fmt;

/// A Cloudflare zone identifier: 32 hexadecimal characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId(u128);

/// A client-certificate identifier. The OpenAPI description says 32 hex
/// characters, current documentation shows UUIDs; both are accepted and each
/// is sent back in the form it was given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertId {
    bits: u128,
    uuid: bool,
}

/// Why a string is not an identifier; worded to complete "expected ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a zone ID of 32 hexadecimal characters, found {found}")]
    Zone { found: String },
    #[error("a certificate ID of 32 hexadecimal characters or a 36-character UUID, found {found}")]
    Cert { found: String },
}

/// Quotes what was found for an error message, shortened so a stray
/// multi-kilobyte cell cannot flood the terminal.
fn describe(raw: &[u8]) -> String {
    if raw.is_empty() {
        return "an empty value".to_string();
    }
    let text = String::from_utf8_lossy(raw);
    let mut shown: String = text.chars().take(48).collect();
    if text.chars().count() > 48 {
        shown.push('…');
    }
    format!("{shown:?} ({} characters)", text.chars().count())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses exactly 32 hex digits, skipping the dash positions of a UUID.
fn parse_hex128(raw: &[u8], dashes: &[usize]) -> Option<u128> {
    let mut value: u128 = 0;
    let mut digits = 0;
    for (i, &b) in raw.iter().enumerate() {
        if dashes.contains(&i) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        value = (value << 4) | u128::from(hex_value(b)?);
        digits += 1;
    }
    (digits == 32).then_some(value)
}

const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

impl ZoneId {
    pub fn parse(raw: &[u8]) -> Result<Self, IdError> {
        if raw.len() == 32 {
            if let Some(bits) = parse_hex128(raw, &[]) {
                return Ok(ZoneId(bits));
            }
        }
        Err(IdError::Zone { found: describe(raw) })
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl CertId {
    pub fn parse(raw: &[u8]) -> Result<Self, IdError> {
        let parsed = match raw.len() {
            32 => parse_hex128(raw, &[]).map(|bits| CertId { bits, uuid: false }),
            36 => parse_hex128(raw, &UUID_DASHES).map(|bits| CertId { bits, uuid: true }),
            _ => None,
        };
        parsed.ok_or_else(|| IdError::Cert { found: describe(raw) })
    }

    /// 16 bytes of the value plus one for the form, so `0123…` and its UUID
    /// spelling stay distinct: the API treats them as different strings.
    pub fn to_bytes(self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(&self.bits.to_be_bytes());
        out[16] = u8::from(self.uuid);
        out
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.uuid {
            return write!(f, "{:032x}", self.bits);
        }
        let hex = format!("{:032x}", self.bits);
        write!(f, "{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
    }
}

impl fmt::Debug for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for ZoneId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ZoneId::parse(s.as_bytes())
    }
}

impl std::str::FromStr for CertId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertId::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_are_lower_cased_and_round_trip() {
        let id = ZoneId::parse(b"023E105F4ECEF8AD9CA31A8372D0C353").unwrap();
        assert_eq!(id.to_string(), "023e105f4ecef8ad9ca31a8372d0c353");
    }

    #[test]
    fn cert_ids_keep_their_form() {
        let hex = CertId::parse(b"0123456789abcdef0123456789ABCDEF").unwrap();
        assert_eq!(hex.to_string(), "0123456789abcdef0123456789abcdef");
        let uuid = CertId::parse(b"568B6B74-7B0C-4755-8840-4E3B8C24ADEB").unwrap();
        assert_eq!(uuid.to_string(), "568b6b74-7b0c-4755-8840-4e3b8c24adeb");
        assert_ne!(hex.to_bytes(), uuid.to_bytes());
    }

    #[test]
    fn anything_that_could_reshape_a_url_is_refused() {
        for bad in [
            "../../../../accounts/aaaaaaaaaaaaaaaaaaaaaa",
            "0123456789abcdef0123456789abcd%2F",
            "0123456789abcdef0123456789abcde?",
            "0123456789abcdef 0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "568b6b74-7b0c-4755-8840/4e3b8c24adeb",
            "568b6b747b0c-4755-8840-4e3b8c24adeb-",
            "",
        ] {
            assert!(CertId::parse(bad.as_bytes()).is_err(), "{bad}");
            assert!(ZoneId::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(ZoneId::parse(b"568b6b74-7b0c-4755-8840-4e3b8c24adeb").is_err());
    }

    #[test]
    fn errors_describe_what_was_found() {
        let err = ZoneId::parse(b"abc").unwrap_err();
        assert_eq!(err.to_string(), "a zone ID of 32 hexadecimal characters, found \"abc\" (3 characters)");
    }
}
