//! Cloudflare's per-user rate limit: a quota per sliding window, and a block
//! of every request once the quota is exceeded.
//!
//! Time is always passed in, never read, so tests can walk the clock forward
//! without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::ensure;

use crate::pacing::headers::Dialect;

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// Requests allowed per `window`. 0 turns the limiter off, for benchmarks
    /// that measure the client rather than its patience.
    pub quota: u32,
    pub window: Duration,
    /// How long a user who went over the quota gets only 429s. Cloudflare's
    /// five minutes is what makes retry budgets of a few seconds useless.
    pub block: Duration,
    /// Requests per second that another consumer of the same user spends
    /// from the quota, as when a dashboard or a second tool shares the token.
    pub background_load: Option<f64>,
    /// After this many admitted requests the next one is answered 429 and the
    /// user blocked, once, whatever the quota: shows a pause in a short demo.
    pub force_429_after: Option<u64>,
    /// The dialect of the rate-limit headers every answer carries, as
    /// Cloudflare's pages documented one after another. `None` sends none:
    /// a client learns the quota only from 429s, as behind a proxy that
    /// strips unfamiliar headers.
    pub dialect: Option<Dialect>,
}

impl Default for RateLimit {
    /// Cloudflare's documented limit: 1200 requests per 5 minutes, then a
    /// 5-minute block.
    fn default() -> Self {
        RateLimit {
            quota: 1200,
            window: Duration::from_secs(300),
            block: Duration::from_secs(300),
            background_load: None,
            force_429_after: None,
            dialect: Some(Dialect::Structured),
        }
    }
}

/// Beyond this the synthetic consumer would cost more to simulate than the
/// requests it stands for.
const MAX_BACKGROUND_LOAD: f64 = 10_000.0;
/// Longest window or block: far beyond Cloudflare's five minutes, and short
/// enough that instants computed from it cannot overflow.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

impl RateLimit {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.quota > 0 {
            ensure!(!self.window.is_zero(), "the rate-limit window must be longer than zero");
        }
        ensure!(
            self.window <= MAX_PERIOD && self.block <= MAX_PERIOD,
            "the rate-limit window and block must not exceed {}",
            humantime::format_duration(MAX_PERIOD)
        );
        if let Some(load) = self.background_load {
            ensure!(
                load.is_finite() && (0.0..=MAX_BACKGROUND_LOAD).contains(&load),
                "the background load must be between 0 and {MAX_BACKGROUND_LOAD} requests per second, not {load}"
            );
        }
        Ok(())
    }

    /// The quota and window the headers announce, in every dialect.
    pub(crate) fn announced(&self) -> (u32, u64) {
        (self.quota, whole_seconds(self.window))
    }

    /// The `Ratelimit-Policy` header value, e.g. `"default";q=1200;w=300`.
    pub(crate) fn policy_header(&self) -> String {
        let (quota, window) = self.announced();
        format!("\"default\";q={quota};w={window}")
    }
}

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `remaining` requests left in the window; `reset` seconds until the
    /// oldest counted request leaves it.
    Allowed { remaining: u32, reset: u64 },
    /// Answer 429; the user may try again in `retry_after` seconds.
    Limited { retry_after: u64 },
}

impl Verdict {
    /// Requests left, and seconds until that changes, in every dialect.
    pub(crate) fn left(self) -> (u32, u64) {
        match self {
            Verdict::Allowed { remaining, reset } => (remaining, reset),
            Verdict::Limited { retry_after } => (0, retry_after),
        }
    }

    /// The `Ratelimit` header value, e.g. `"default";r=50;t=30`.
    pub(crate) fn header(self) -> String {
        let (remaining, reset) = self.left();
        format!("\"default\";r={remaining};t={reset}")
    }
}

/// Seconds as headers carry them: rounded up, so a client that waits that
/// long is never early, and at least 1.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX).max(1)
}

/// One user's limiter. Memory is bounded by the quota: requests over it are
/// refused, not stored.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: RateLimit,
    /// Times of the counted requests still inside the window, oldest first.
    counted: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    /// When the synthetic consumer sends next, and how often.
    background: Option<(Instant, Duration)>,
    force_after: Option<u64>,
    admitted: u64,
    max_in_window: usize,
}

impl Limiter {
    /// `None` when the configuration turns rate limiting off.
    pub(crate) fn new(config: &RateLimit, start: Instant) -> Option<Limiter> {
        if config.quota == 0 {
            return None;
        }
        let background = config
            .background_load
            .and_then(|load| Duration::try_from_secs_f64(1.0 / load).ok())
            .and_then(|interval| Some((start.checked_add(interval)?, interval)));
        Some(Limiter {
            config: config.clone(),
            counted: VecDeque::new(),
            blocked_until: None,
            background,
            force_after: config.force_429_after,
            admitted: 0,
            max_in_window: 0,
        })
    }

    /// Counts a request arriving at `now`, or refuses it. Refused requests
    /// are not counted, as on Cloudflare.
    pub(crate) fn admit(&mut self, now: Instant) -> Verdict {
        self.catch_up(now);
        if let Some(limited) = self.blocked_at(now) {
            return limited;
        }
        if self.force_after == Some(self.admitted) {
            self.force_after = None;
            return self.block(now);
        }
        if !self.take_slot(now) {
            return self.block(now);
        }
        self.admitted += 1;
        self.budget_after_eviction(now)
    }

    /// What a request at `now` would be told, without counting it: for
    /// answers that never reach the limiter but still carry its headers.
    pub(crate) fn peek(&mut self, now: Instant) -> Verdict {
        self.catch_up(now);
        if let Some(limited) = self.blocked_at(now) {
            return limited;
        }
        self.evict(now);
        self.budget_after_eviction(now)
    }

    /// The most requests ever counted in one window, background included.
    pub(crate) fn max_in_window(&self) -> usize {
        self.max_in_window
    }

    /// Starts a new observation period for [`Self::max_in_window`].
    pub(crate) fn reset_max(&mut self) {
        self.max_in_window = self.counted.len();
    }

    fn blocked_at(&self, at: Instant) -> Option<Verdict> {
        let until = self.blocked_until.filter(|&until| at < until)?;
        Some(Verdict::Limited { retry_after: whole_seconds(until - at) })
    }

    fn block(&mut self, at: Instant) -> Verdict {
        self.blocked_until = Some(at + self.config.block);
        Verdict::Limited { retry_after: whole_seconds(self.config.block) }
    }

    /// Counts a request at `at` if the window has room.
    fn take_slot(&mut self, at: Instant) -> bool {
        self.evict(at);
        if self.counted.len() >= self.config.quota as usize {
            return false;
        }
        self.counted.push_back(at);
        self.max_in_window = self.max_in_window.max(self.counted.len());
        true
    }

    fn evict(&mut self, now: Instant) {
        let Some(horizon) = now.checked_sub(self.config.window) else {
            return;
        };
        while self.counted.front().is_some_and(|&t| t <= horizon) {
            self.counted.pop_front();
        }
    }

    /// Replays the synthetic consumer's requests up to `now`, in time order,
    /// so they fill the window and can trip the block exactly as real ones
    /// would. Each synthetic request is handled once: amortised O(1).
    fn catch_up(&mut self, now: Instant) {
        while let Some((at, interval)) = self.background.filter(|&(at, _)| at <= now) {
            self.background = at.checked_add(interval).map(|next| (next, interval));
            if self.blocked_at(at).is_none() && !self.take_slot(at) {
                self.block(at);
            }
        }
    }

    fn budget_after_eviction(&self, now: Instant) -> Verdict {
        let remaining = self.config.quota.saturating_sub(self.counted.len() as u32);
        let reset = match self.counted.front() {
            Some(&oldest) => whole_seconds((oldest + self.config.window).saturating_duration_since(now)),
            None => whole_seconds(self.config.window),
        };
        Verdict::Allowed { remaining, reset }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(quota: u32, window_ms: u64, block_ms: u64) -> RateLimit {
        RateLimit {
            quota,
            window: Duration::from_millis(window_ms),
            block: Duration::from_millis(block_ms),
            ..RateLimit::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn quota_zero_turns_the_limiter_off() {
        assert!(Limiter::new(&limit(0, 1000, 1000), Instant::now()).is_none());
    }

    #[test]
    fn counts_down_the_quota_then_blocks() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(&limit(3, 10_000, 4_500), t0).unwrap();
        assert_eq!(limiter.admit(t0), Verdict::Allowed { remaining: 2, reset: 10 });
        assert_eq!(limiter.admit(t0 + ms(1000)), Verdict::Allowed { remaining: 1, reset: 9 });
        assert_eq!(limiter.admit(t0 + ms(1500)), Verdict::Allowed { remaining: 0, reset: 9 });
        // Over quota: blocked for the whole block, Retry-After rounded up.
        assert_eq!(limiter.admit(t0 + ms(2000)), Verdict::Limited { retry_after: 5 });
        // During the block every request is refused with the time left, even
        // once the window itself has room again.
        assert_eq!(limiter.admit(t0 + ms(5000)), Verdict::Limited { retry_after: 2 });
        assert_eq!(limiter.admit(t0 + ms(6400)), Verdict::Limited { retry_after: 1 });
        // Refused requests were not counted: after the block the window holds
        // only what it held before.
        assert_eq!(limiter.admit(t0 + ms(10_500)), Verdict::Allowed { remaining: 0, reset: 1 });
        assert_eq!(limiter.max_in_window(), 3);
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(&limit(2, 1000, 1000), t0).unwrap();
        assert!(matches!(limiter.admit(t0), Verdict::Allowed { .. }));
        assert!(matches!(limiter.admit(t0 + ms(600)), Verdict::Allowed { .. }));
        // The first request left the window at t0+1000: room for one more,
        // but not two.
        assert_eq!(limiter.admit(t0 + ms(1000)), Verdict::Allowed { remaining: 0, reset: 1 });
        assert!(matches!(limiter.admit(t0 + ms(1100)), Verdict::Limited { .. }));
        assert_eq!(limiter.max_in_window(), 2);
    }

    #[test]
    fn peek_reports_without_counting() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(&limit(2, 1000, 1000), t0).unwrap();
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 2, reset: 1 });
        limiter.admit(t0);
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 1, reset: 1 });
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 1, reset: 1 });
    }

    #[test]
    fn forced_429_fires_once_and_blocks() {
        let t0 = Instant::now();
        let config = RateLimit { force_429_after: Some(2), ..limit(100, 10_000, 1_200) };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        limiter.admit(t0);
        limiter.admit(t0);
        assert_eq!(limiter.admit(t0), Verdict::Limited { retry_after: 2 });
        assert_eq!(limiter.admit(t0 + ms(300)), Verdict::Limited { retry_after: 1 });
        assert!(matches!(limiter.admit(t0 + ms(1200)), Verdict::Allowed { remaining: 97, .. }));
        assert!(matches!(limiter.admit(t0 + ms(1300)), Verdict::Allowed { remaining: 96, .. }));
    }

    #[test]
    fn background_load_spends_the_same_quota() {
        let t0 = Instant::now();
        let config = RateLimit { background_load: Some(10.0), ..limit(10, 1000, 500) };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        // 0.5 s at 10/s: five synthetic requests already in the window.
        assert!(matches!(limiter.admit(t0 + ms(500)), Verdict::Allowed { remaining: 4, .. }));
        // By 0.9 s the other consumer has spent the rest.
        assert_eq!(limiter.peek(t0 + ms(900)), Verdict::Allowed { remaining: 0, reset: 1 });
        assert_eq!(limiter.max_in_window(), 10);
        // At 1.0 s its next request finds no room and blocks the user.
        assert_eq!(limiter.admit(t0 + ms(1050)), Verdict::Limited { retry_after: 1 });
        assert_eq!(limiter.max_in_window(), 10);
    }

    #[test]
    fn reset_max_starts_over_from_the_current_window() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(&limit(5, 1000, 1000), t0).unwrap();
        for i in 0..4 {
            limiter.admit(t0 + ms(i));
        }
        limiter.admit(t0 + ms(2000));
        assert_eq!(limiter.max_in_window(), 4);
        limiter.reset_max();
        assert_eq!(limiter.max_in_window(), 1);
    }

    #[test]
    fn header_formats() {
        assert_eq!(Verdict::Allowed { remaining: 50, reset: 30 }.header(), "\"default\";r=50;t=30");
        assert_eq!(Verdict::Limited { retry_after: 7 }.header(), "\"default\";r=0;t=7");
        assert_eq!(RateLimit::default().policy_header(), "\"default\";q=1200;w=300");
        assert_eq!(limit(10, 250, 1).policy_header(), "\"default\";q=10;w=1");
    }

    #[test]
    fn whole_seconds_round_up_and_never_reach_zero() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(ms(1)), 1);
        assert_eq!(whole_seconds(ms(1000)), 1);
        assert_eq!(whole_seconds(ms(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(300)), 300);
    }

    #[test]
    fn limits_are_validated() {
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e9] {
            let config = RateLimit { background_load: Some(bad), ..RateLimit::default() };
            assert!(config.validate().is_err(), "{bad}");
        }
        // Loads too small to ever send are simply idle.
        let config = RateLimit { background_load: Some(1e-300), ..RateLimit::default() };
        config.validate().unwrap();
        let t0 = Instant::now();
        let mut limiter = Limiter::new(&config, t0).unwrap();
        assert!(matches!(limiter.admit(t0 + Duration::from_secs(3600)), Verdict::Allowed { remaining: 1199, .. }));
        let long_block = RateLimit { block: Duration::from_secs(3 * 24 * 3600), ..RateLimit::default() };
        assert!(long_block.validate().is_err());
    }
}
