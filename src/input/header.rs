//! Which header fields name the pair's columns: the spellings accepted for
//! each, and what to say when a header has none of them.

use crate::input::fields::Fields;
use crate::input::ids::{CertId, ZoneId};
use crate::outcome::column;

/// Header spellings accepted for each column, compared after lower-casing and
/// turning spaces and dashes into underscores.
pub(super) const ZONE_ALIASES: &[&str] = &[column::ZONE_ID, "zone", "zoneid", "zone_identifier"];
pub(super) const CERT_ALIASES: &[&str] = &[
    column::CERTIFICATE_ID,
    "client_certificate_id",
    "cert_id",
    "certificate",
    "client_certificate",
    "cert",
    "certid",
    "certificateid",
];

fn normalise_header(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

/// The first header field that is one of `aliases`, compared as the aliases say.
pub(super) fn find_column(headers: &Fields, aliases: &[&str]) -> Option<usize> {
    headers.iter().position(|h| aliases.contains(&normalise_header(h).as_str()))
}

/// Says what a good header looks like, and spots the common mistake of a file
/// that starts straight with data.
pub(super) fn header_hint(headers: &Fields) -> String {
    let found: Vec<String> = headers.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect();
    let looks_like_data = headers.iter().any(|h| ZoneId::parse(h).is_ok() || CertId::parse(h).is_ok());
    let mut hint = format!(
        "a header line naming the columns zone_id and certificate_id (also accepted: {} / {}), found {:?}",
        ZONE_ALIASES[1..].join(", "),
        CERT_ALIASES[1..].join(", "),
        found.join(",")
    );
    if looks_like_data {
        hint.push_str("; the first line looks like data: add the line `zone_id,certificate_id` above it");
    }
    hint
}
