//! The quota paced at: `--rate`'s value (`Rate`, or `auto`), how it is
//! spelled, and the spacing that keeps every window within it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Cloudflare's documented quota per user: 1200 requests per 5 minutes.
pub const CLOUDFLARE_QUOTA: &str = "1200/5m";

/// The pace is kept this fraction below the quota, and at least
/// [`MIN_HEADROOM`] per window, so that network and scheduling jitter (two
/// requests sent a full interval apart arriving a little closer) cannot push a
/// window over the limit as the server counts it.
const HEADROOM: f64 = 0.01;
const MIN_HEADROOM: Duration = Duration::from_millis(50);

/// A quota: at most `count` requests in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The spacing between requests that keeps every window within the quota.
    pub fn interval(&self) -> Duration {
        self.paced_window() / self.count
    }

    /// The window paced in: the server's, widened by the headroom that
    /// absorbs jitter between a request's send and its arrival.
    pub(super) fn paced_window(&self) -> Duration {
        self.per.mul_f64(1.0 + HEADROOM).max(self.per + MIN_HEADROOM)
    }

    /// Requests per second at the paced interval, for estimates and summaries.
    pub fn per_second(&self) -> f64 {
        1.0 / self.interval().as_secs_f64()
    }
}

impl Default for Rate {
    fn default() -> Self {
        CLOUDFLARE_QUOTA.parse().expect("the built-in quota parses")
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `4/s`, `100/m`, `1200/5m`, `10/2s`, `50/500ms`, `3600/h`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("a rate such as 4/s, 100/m or 1200/5m, found {s:?}");
        let (count, per) = s.trim().split_once('/').ok_or_else(expected)?;
        let count: u32 = count.trim().parse().map_err(|_| expected())?;
        let per = per.trim();
        let per = match per {
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| expected())?,
        };
        if count == 0 || per.is_zero() {
            return Err(format!("a rate above zero, found {s:?}"));
        }
        if !paceable(count, per) {
            return Err(format!("a rate of at most {MAX_PER_SECOND} per second, found {s:?}"));
        }
        Ok(Rate { count, per })
    }
}

/// Beyond this the limiter's interval would round down to nothing (and the
/// API allows 200 requests per second per client IP anyway).
pub const MAX_PER_SECOND: u32 = 1_000_000;

/// Whether `count` per `per` is a pace the limiter can keep.
pub fn paceable(count: u32, per: Duration) -> bool {
    f64::from(count) / per.as_secs_f64() <= f64::from(MAX_PER_SECOND)
}

/// `--rate`: a fixed quota, or `auto`, which starts at Cloudflare's
/// documented quota and adopts the one the API announces in
/// `Ratelimit-Policy` (the tightest, if it announces several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Auto,
    Fixed(Rate),
}

impl Pace {
    /// The quota paced at before the API has said anything.
    pub fn initial(self) -> Rate {
        match self {
            Pace::Auto => Rate::default(),
            Pace::Fixed(rate) => rate,
        }
    }
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pace::Auto => f.write_str("auto"),
            Pace::Fixed(rate) => rate.fmt(f),
        }
    }
}

impl FromStr for Pace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Pace::Auto);
        }
        s.parse().map(Pace::Fixed).map_err(|e| format!("{e}, or auto"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!("4/s".parse::<Rate>().unwrap(), Rate { count: 4, per: Duration::from_secs(1) });
        assert_eq!("100/m".parse::<Rate>().unwrap(), Rate { count: 100, per: Duration::from_secs(60) });
        assert_eq!("1200/5m".parse::<Rate>().unwrap(), Rate { count: 1200, per: Duration::from_secs(300) });
        assert_eq!(" 50 / 500ms ".parse::<Rate>().unwrap(), Rate { count: 50, per: Duration::from_millis(500) });
        for bad in ["", "4", "0/s", "4/0s", "x/s", "4/fortnight", "-1/s", "4000000000/s", "2000/1ms"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_pace_stays_under_cloudflare_quota() {
        let rate = Rate::default();
        let per_window = rate.per.as_secs_f64() / rate.interval().as_secs_f64();
        assert!(per_window <= 1200.0 && per_window > 1180.0, "{per_window}");
    }

    #[test]
    fn short_windows_keep_a_fixed_margin() {
        let rate: Rate = "20/1s".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_micros(52_500));
    }

    #[test]
    fn auto_or_a_rate() {
        assert_eq!("auto".parse::<Pace>().unwrap(), Pace::Auto);
        assert_eq!("4/s".parse::<Pace>().unwrap(), Pace::Fixed(Rate { count: 4, per: Duration::from_secs(1) }));
        assert!("fast".parse::<Pace>().unwrap_err().ends_with("or auto"));
    }
}
