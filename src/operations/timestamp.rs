//! Instants from the command line (`--issued-before 2024-06-01`) and from the
//! API's `issued_on`/`expires_on`, one parser for both so a cut-off and a
//! certificate date always compare as the same kind of value.
//!
//! humantime reads RFC 3339 but only in UTC; an offset such as `+02:00` is
//! applied here so a date copied from another tool's output is not silently
//! shifted by hours.

use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a date such as 2024-06-01 or 2024-06-01T12:00:00Z (RFC 3339), found {0:?}")]
pub struct TimestampError(String);

/// `YYYY-MM-DD` (midnight UTC), or RFC 3339 with `Z`, an offset such as
/// `+02:00`, or no zone at all (taken as UTC); `T` or a space between date
/// and time, fractional seconds allowed.
pub fn parse(text: &str) -> Result<SystemTime, TimestampError> {
    let error = || TimestampError(text.to_string());
    // RFC 3339 allows a lower-case `t` and `z`; humantime does not.
    let upper = text.trim().to_ascii_uppercase();
    if upper.len() == "2024-06-01".len() {
        return humantime::parse_rfc3339(&format!("{upper}T00:00:00Z")).map_err(|_| error());
    }
    let (local, offset) = split_offset(&upper).ok_or_else(error)?;
    let local = humantime::parse_rfc3339_weak(local).map_err(|_| error())?;
    // 12:00+02:00 is 10:00Z: an offset east of UTC is subtracted.
    let utc = match offset {
        Offset::East(by) => local.checked_sub(by),
        Offset::West(by) => local.checked_add(by),
    };
    utc.ok_or_else(error)
}

enum Offset {
    East(Duration),
    West(Duration),
}

/// Splits a trailing `Z` or `±HH:MM` off the text; `None` for a malformed
/// offset. Text without either is left whole, for humantime to judge.
fn split_offset(text: &str) -> Option<(&str, Offset)> {
    if let Some(rest) = text.strip_suffix('Z') {
        return Some((rest, Offset::East(Duration::ZERO)));
    }
    // An offset can only follow a full `YYYY-MM-DDTHH:MM:SS`; a sign byte
    // there is ASCII, so splitting at it is safe.
    let at = text.len().saturating_sub(6);
    let sign = if at >= 19 { text.as_bytes()[at] } else { 0 };
    if sign != b'+' && sign != b'-' {
        return Some((text, Offset::East(Duration::ZERO)));
    }
    let (rest, offset) = text.split_at(at);
    let (hours, minutes) = offset[1..].split_once(':')?;
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    if hours >= 24 || minutes >= 60 {
        return None;
    }
    let by = Duration::from_secs(hours * 3600 + minutes * 60);
    Some((rest, if sign == b'+' { Offset::East(by) } else { Offset::West(by) }))
}

fn two_digits(text: &str) -> Option<u64> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn a_bare_date_is_midnight_utc() {
        assert_eq!(parse("2024-06-01"), Ok(at("2024-06-01T00:00:00Z")));
        assert_eq!(parse(" 2024-02-29 "), Ok(at("2024-02-29T00:00:00Z")));
    }

    #[test]
    fn rfc3339_in_its_usual_spellings() {
        let noon = at("2024-06-01T12:00:00Z");
        for text in [
            "2024-06-01T12:00:00Z",
            "2024-06-01t12:00:00z",
            "2024-06-01 12:00:00",
            "2024-06-01T12:00:00+00:00",
            "2024-06-01T14:00:00+02:00",
            "2024-06-01T07:30:00-04:30",
        ] {
            assert_eq!(parse(text), Ok(noon), "{text}");
        }
        assert_eq!(parse("2024-06-01T12:00:00.250Z"), Ok(noon + Duration::from_millis(250)));
        assert_eq!(parse("2024-06-01T13:00:00.5+01:00"), Ok(noon + Duration::from_millis(500)));
    }

    #[test]
    fn anything_else_is_refused_with_an_example() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30",
            "01/06/2024",
            "2024-06-01T12:00",
            "2024-06-01T12:00:00+2:00",
            "2024-06-01T12:00:00+25:00",
            "2024-06-01T12:00:00+0a:00",
            "2024-06-01T12:00:00 UTC",
            "1969-12-31",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("2024-06-01") && err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}
