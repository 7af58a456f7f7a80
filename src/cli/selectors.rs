//! `list`'s selectors by what a responder holds: serials and fingerprints
//! from logs, a leaked certificate file, a list exported from a SIEM. They
//! become [`Wanted`] identifiers here, every file read and checked before
//! anything is sent.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::exit::usage;
use crate::input::reader::Problem;
use crate::operations::cert_filter::{IdKind, Identifier, Wanted};

/// A certificate file or a list of identifiers is a few KB to a few MB; more
/// is a wrong path (`/dev/zero`, a disk image), refused rather than read.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Digits of a SHA-256 fingerprint: a `--match-file` line of exactly this
/// many hex digits and no prefix is read as one.
const FINGERPRINT_DIGITS: usize = 64;

#[derive(Debug, Clone, clap::Args)]
pub struct SelectorArgs {
    /// Only the certificate with this serial number (hex; colons, spaces, case and leading zeros don't matter); repeatable.
    #[arg(long = "serial", value_name = "HEX", value_parser = |s: &str| parse(IdKind::Serial, s))]
    pub serials: Vec<Identifier>,

    /// Only the certificate with this SHA-256 fingerprint (64 hex digits, colons allowed); repeatable.
    #[arg(long = "fingerprint", value_name = "HEX", value_parser = |s: &str| parse(IdKind::Fingerprint, s))]
    pub fingerprints: Vec<Identifier>,

    /// Only the certificate with this subject key identifier (hex); repeatable.
    #[arg(long = "ski", value_name = "HEX", value_parser = |s: &str| parse(IdKind::Ski, s))]
    pub skis: Vec<Identifier>,

    /// Only the certificates in this PEM file, matched by the SHA-256 of each one's DER; repeatable.
    #[arg(long = "pem", value_name = "FILE")]
    pub pems: Vec<PathBuf>,

    /// File of identifiers, one per line: serial:HEX, sha256:HEX or ski:HEX (no prefix: 64 hex digits are a fingerprint, anything else a serial); # starts a comment.
    #[arg(long, value_name = "FILE")]
    pub match_file: Option<PathBuf>,
}

fn parse(kind: IdKind, text: &str) -> Result<Identifier, String> {
    Identifier::new(kind, text).map_err(|e| e.to_string())
}

impl SelectorArgs {
    /// Every identifier given, in the order of the flags, each with where it
    /// came from; a file that cannot be read or holds a bad line is a usage
    /// error.
    pub fn wanted(&self) -> anyhow::Result<Vec<Wanted>> {
        let flag = |name: &str, ids: &[Identifier]| {
            ids.iter().map(|id| Wanted { id: id.clone(), source: format!("--{name}") }).collect::<Vec<_>>()
        };
        let mut wanted = flag("serial", &self.serials);
        wanted.extend(flag("fingerprint", &self.fingerprints));
        wanted.extend(flag("ski", &self.skis));
        for path in &self.pems {
            wanted.extend(read_pem(path)?);
        }
        if let Some(path) = &self.match_file {
            wanted.extend(read_match_file(path)?);
        }
        Ok(wanted)
    }
}

fn read_bounded(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| usage(format!("cannot read the {what} {shown}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("cannot read the {what} {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(usage(format!("{shown}: the {what} is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    Ok(bytes)
}

/// Each certificate of a PEM file (a chain, a bundle), numbered for the
/// report; a file with none is a usage error, since matching nothing by
/// accident would look like "not in Cloudflare".
fn read_pem(path: &Path) -> anyhow::Result<Vec<Wanted>> {
    let shown = path.display();
    let bytes = read_bounded(path, "certificate file")?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(format!("{shown}: unreadable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(usage(format!("{shown}: no certificate in the file (expected PEM: -----BEGIN CERTIFICATE-----)")));
    }
    Ok(certs
        .iter()
        .enumerate()
        .map(|(i, der)| Wanted { id: Identifier::of_der(der), source: format!("{shown} (certificate {})", i + 1) })
        .collect())
}

/// One identifier per line; every bad line is reported with file:line.
fn read_match_file(path: &Path) -> anyhow::Result<Vec<Wanted>> {
    let shown = path.display().to_string();
    let bytes = read_bounded(path, "match file")?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut wanted, mut problems) = (Vec::new(), Vec::new());
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let located = format!("{shown}:{}", index + 1);
        match match_line(line) {
            Ok(id) => wanted.push(Wanted { id, source: located }),
            Err(e) => problems.push(Problem { line: index as u64 + 1, column: None, expected: e }.located(&shown)),
        }
    }
    if !problems.is_empty() {
        return Err(usage(format!(
            "{}\nthe match file must hold one serial:, sha256: or ski: identifier per line",
            problems.join("\n")
        )));
    }
    if wanted.is_empty() {
        return Err(usage(format!("{shown}: no identifier in the file (expected one per line)")));
    }
    Ok(wanted)
}

fn match_line(line: &str) -> Result<Identifier, String> {
    let prefixed = [IdKind::Serial, IdKind::Fingerprint, IdKind::Ski].into_iter().find_map(|kind| {
        let (prefix, rest) = line.split_once(':')?;
        prefix.trim().eq_ignore_ascii_case(kind.prefix()).then_some((kind, rest))
    });
    let (kind, text) = prefixed.unwrap_or_else(|| {
        let digits = line.chars().filter(char::is_ascii_hexdigit).count();
        let only_hex = line.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | ' '));
        (if only_hex && digits == FINGERPRINT_DIGITS { IdKind::Fingerprint } else { IdKind::Serial }, line)
    });
    parse(kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_prefix_is_a_fingerprint_only_at_64_digits() {
        let fp = "AB".repeat(32);
        assert_eq!(match_line(&fp).unwrap().kind(), IdKind::Fingerprint);
        assert_eq!(match_line("00:0a:1B").unwrap().to_string(), "serial:a1b");
        assert_eq!(match_line("SKI: 0a 1b").unwrap().to_string(), "ski:0a1b");
        assert_eq!(match_line(&format!("sha256:{fp}")).unwrap().kind(), IdKind::Fingerprint);
        assert!(match_line("sha256:abcd").is_err(), "a fingerprint is 64 digits");
        assert!(match_line("serial:xyz").is_err());
    }
}
