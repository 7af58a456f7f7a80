//! Value parsers for flags whose plain type allows meaningless values, in a
//! module of their own so every subcommand's arguments can use them without
//! depending on the top-level definition that names those subcommands.

use std::time::Duration;

/// Parses a duration where zero is meaningless: a timeout that fires at once,
/// a retry that does not wait, a window that holds nothing. Refused here, at
/// parse time, so such a run never starts.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(duration) if duration.is_zero() => Err("expected a duration above zero, such as 500ms or 30s".into()),
        Ok(duration) => Ok(duration),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a share between 0 and 1 (a fault rate), so a typo such as `5`
/// for 5% is refused at parse time rather than by the sandbox later.
pub fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("expected a share between 0 and 1, such as 0.05".into()),
    }
}

/// Parses a rate of requests per second, zero included (none), but not a
/// negative, infinite or NaN one.
pub fn per_second(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err("expected requests per second, 0 or more, such as 25".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meaningless_numbers_are_refused() {
        assert!(positive_duration("0s").is_err() && positive_duration("0ms").is_err());
        assert!(positive_duration("-1s").is_err() && positive_duration("soon").is_err());
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(share("1.5").is_err() && share("-0.1").is_err() && share("NaN").is_err());
        assert_eq!((share("0"), share("1")), (Ok(0.0), Ok(1.0)));
        assert!(per_second("-1").is_err() && per_second("inf").is_err() && per_second("NaN").is_err());
        assert_eq!(per_second("0"), Ok(0.0));
    }
}
