//! Pacing: the `--rate` quota, the governor limiter that enforces it, and the
//! account-wide pause that a 429 imposes on every worker.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

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
        let window = self.per.mul_f64(1.0 + HEADROOM).max(self.per + MIN_HEADROOM);
        window / self.count
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
        Ok(Rate { count, per })
    }
}

/// Gates every request: first the shared rate-limit pause, then the limiter.
pub struct Pacer {
    limiter: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(rate: Rate) -> Self {
        // Burst of one: GCRA then spaces every request by `interval`, so no
        // window of `per` can ever hold more than `count` requests.
        let quota = Quota::with_period(rate.interval()).expect("interval is non-zero").allow_burst(NonZeroU32::MIN);
        Pacer { limiter: RateLimiter::direct(quota), paused_until: Mutex::new(None) }
    }

    /// Waits until a request may be sent.
    pub async fn ready(&self) {
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            self.limiter.until_ready().await;
            // A 429 seen by another worker while this one waited for the
            // limiter means the slot it got is not safe to use.
            if self.paused_until().is_none() {
                return;
            }
        }
    }

    /// Holds back every worker for `delay` (never shortening a longer pause).
    /// Returns whether this started a pause, as opposed to extending one that
    /// other workers' 429s already started.
    pub fn pause_for(&self, delay: Duration) -> bool {
        let now = Instant::now();
        let until = now + delay;
        let mut paused = self.paused_until.lock().expect("pause lock");
        let started = paused.is_none_or(|current| current <= now);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
        started
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        let mut paused = self.paused_until.lock().expect("pause lock");
        match *paused {
            Some(until) if until > Instant::now() => Some(until),
            _ => {
                *paused = None;
                None
            }
        }
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
        for bad in ["", "4", "0/s", "4/0s", "x/s", "4/fortnight", "-1/s"] {
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

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_ready_until_it_ends() {
        let pacer = Pacer::new("1000/s".parse().unwrap());
        let start = Instant::now();
        assert!(pacer.pause_for(Duration::from_secs(90)));
        assert!(!pacer.pause_for(Duration::from_secs(5)));
        pacer.ready().await;
        assert!(start.elapsed() >= Duration::from_secs(90));
        assert!(pacer.paused_until().is_none());
    }
}
