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

/// Marks a byte that is not a hex digit in [`HEX_VALUES`].
const NOT_HEX: u8 = 0xFF;

/// The value of every byte as a hex digit. A table lookup per digit, with
/// validity checked once per ID rather than branched on per digit, is what
/// lets pass one parse a million rows' IDs in a few tens of milliseconds.
const HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Parses exactly 32 hex digits. Each pair of digits makes one byte on its
/// own, with no chain of shifts through a 128-bit value, so the CPU can work
/// on all sixteen at once.
fn parse_hex32(digits: &[u8; 32]) -> Option<u128> {
    let mut bytes = [0u8; 16];
    let mut seen = 0u8;
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (HEX_VALUES[usize::from(pair[0])], HEX_VALUES[usize::from(pair[1])]);
        seen |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    // Valid digits are below 16, so any high bit comes from `NOT_HEX`.
    (seen < 16).then_some(u128::from_be_bytes(bytes))
}

const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

/// Parses a UUID (`8-4-4-4-12` hex digits): the dashes must be where they
/// belong, and the 32 digits between them are one value.
fn parse_uuid(raw: &[u8; 36]) -> Option<u128> {
    if UUID_DASHES.iter().any(|&i| raw[i] != b'-') {
        return None;
    }
    let mut digits = [0u8; 32];
    digits[..8].copy_from_slice(&raw[..8]);
    digits[8..12].copy_from_slice(&raw[9..13]);
    digits[12..16].copy_from_slice(&raw[14..18]);
    digits[16..20].copy_from_slice(&raw[19..23]);
    digits[20..].copy_from_slice(&raw[24..]);
    parse_hex32(&digits)
}

impl ZoneId {
    pub fn parse(raw: &[u8]) -> Result<Self, IdError> {
        match <&[u8; 32]>::try_from(raw).ok().and_then(parse_hex32) {
            Some(bits) => Ok(ZoneId(bits)),
            None => Err(IdError::Zone { found: describe(raw) }),
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        ZoneId(u128::from_be_bytes(bytes))
    }
}

impl CertId {
    pub fn parse(raw: &[u8]) -> Result<Self, IdError> {
        let parsed = if let Ok(hex) = <&[u8; 32]>::try_from(raw) {
            parse_hex32(hex).map(|bits| CertId { bits, uuid: false })
        } else if let Ok(uuid) = <&[u8; 36]>::try_from(raw) {
            parse_uuid(uuid).map(|bits| CertId { bits, uuid: true })
        } else {
            None
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

/// The 32 lowercase hex digits of a value. IDs are formatted on every
/// request's path (its URL, its results row, the sandbox's answer), where
/// `{:032x}` of a `u128` and a temporary `String` per UUID cost more than the
/// bookkeeping around them.
fn hex32(bits: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bits.to_be_bytes()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}

fn ascii(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).expect("hex digits and dashes are ASCII")
}

/// A pair in 33 bytes: compact enough to keep a million in memory (the
/// plan's dedupe set, a resumed run's finished pairs), and ordered by zone
/// first.
pub(crate) type PairKey = [u8; 33];

pub(crate) fn pair_key(zone: ZoneId, cert: CertId) -> PairKey {
    let mut k = [0u8; 33];
    k[..16].copy_from_slice(&zone.to_bytes());
    k[16..].copy_from_slice(&cert.to_bytes());
    k
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ascii(&hex32(self.0)))
    }
}

impl fmt::Display for CertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex32(self.bits);
        if !self.uuid {
            return f.write_str(ascii(&hex));
        }
        let mut uuid = [b'-'; 36];
        for (from, to) in [(0..8, 0), (8..12, 9), (12..16, 14), (16..20, 19), (20..32, 24)] {
            uuid[to..to + from.len()].copy_from_slice(&hex[from]);
        }
        f.write_str(ascii(&uuid))
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
    fn every_hex_digit_and_nothing_else_is_a_digit() {
        for b in 0..=u8::MAX {
            let raw = [b; 32];
            assert_eq!(ZoneId::parse(&raw).is_ok(), b.is_ascii_hexdigit(), "{b}");
            let mut uuid = *b"00000000-0000-0000-0000-000000000000";
            uuid[35] = b;
            assert_eq!(CertId::parse(&uuid).is_ok(), b.is_ascii_hexdigit(), "{b}");
        }
        let max = ZoneId::parse(b"ffffffffffffffffffffffffffffffff").unwrap();
        assert_eq!(max.to_bytes(), [0xFF; 16]);
    }

    #[test]
    fn errors_describe_what_was_found() {
        let err = ZoneId::parse(b"abc").unwrap_err();
        assert_eq!(err.to_string(), "a zone ID of 32 hexadecimal characters, found \"abc\" (3 characters)");
    }
}
