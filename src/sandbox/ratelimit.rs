//! Cloudflare's per-user rate limit: a quota per window, and a block of
//! every request once the quota is exceeded. The window can also count the
//! way other servers do, and the server can lie about its quota, so a
//! client's pacer can be measured against each.
//!
//! Time is always passed in, never read, so tests can walk the clock forward
//! without sleeping.

#[cfg(test)]
mod drill;
mod window;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::ensure;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::pacing::headers::Dialect;
use window::Counter;
pub use window::WindowKind;

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
    pub window_kind: WindowKind,
    /// The quota really enforced, below the announced `quota`: a server whose
    /// stated policy is wrong, which a client can learn only from a 429.
    pub enforced_quota: Option<u32>,
    /// `t` with milliseconds (`t=7.314`), as some servers send it, instead
    /// of whole seconds.
    pub fractional_reset: bool,
    /// Another consumer's one-off bursts, counted like every other request.
    pub background_bursts: Vec<Burst>,
    /// The seed from which `background_load` arrives at random (a Poisson
    /// stream of that mean rate) instead of evenly spaced: a real tool's
    /// requests bunch, and its count in a window swings by about its root.
    pub random_background: Option<u64>,
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
            window_kind: WindowKind::Sliding,
            enforced_quota: None,
            fractional_reset: false,
            background_bursts: Vec::new(),
            random_background: None,
        }
    }
}

/// `requests` sent at once, `offset` after the sandbox started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    pub requests: u32,
    pub offset: Duration,
}

impl FromStr for Burst {
    type Err = String;

    /// `N@OFFSET`, e.g. `50@5s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected REQUESTS@OFFSET such as 50@5s, not {s:?}");
        let (requests, offset) = s.split_once('@').ok_or_else(expected)?;
        let requests = requests.trim().parse().map_err(|_| expected())?;
        let offset = humantime::parse_duration(offset.trim()).map_err(|_| expected())?;
        Ok(Burst { requests, offset })
    }
}

/// Beyond this the synthetic consumer would cost more to simulate than the
/// requests it stands for.
const MAX_BACKGROUND_LOAD: f64 = 10_000.0;
/// The largest burst: more than any quota a test would set, few enough to
/// replay in a moment.
const MAX_BURST: u32 = 1_000_000;
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
        ensure!(
            self.random_background.is_none() || self.background_load.is_some(),
            "a random background load needs a background load (its mean rate)"
        );
        if let Some(enforced) = self.enforced_quota {
            ensure!(
                (1..=self.quota).contains(&enforced),
                "the enforced quota must be between 1 and the announced quota ({}), not {enforced}",
                self.quota
            );
        }
        for burst in &self.background_bursts {
            ensure!(
                burst.requests <= MAX_BURST && burst.offset <= MAX_PERIOD,
                "a background burst must be at most {MAX_BURST} requests within {} of the start",
                humantime::format_duration(MAX_PERIOD)
            );
        }
        Ok(())
    }

    /// The quota and window the headers announce, in every dialect: the
    /// announced quota, whatever is enforced.
    pub(crate) fn announced(&self) -> (u32, u64) {
        (self.quota, whole_seconds(self.window))
    }

    /// The `Ratelimit-Policy` header value, e.g. `"default";q=1200;w=300`.
    pub(crate) fn policy_header(&self) -> String {
        let (quota, window) = self.announced();
        format!("\"default\";q={quota};w={window}")
    }

    fn enforced(&self) -> u32 {
        self.enforced_quota.unwrap_or(self.quota)
    }
}

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `remaining` requests left in the window; `reset` until the count
    /// next goes down (see [`WindowKind`]).
    Allowed { remaining: u32, reset: Seconds },
    /// Answer 429; the user may try again in `retry_after` seconds.
    Limited { retry_after: u64 },
}

impl Verdict {
    /// Requests left, and seconds until that changes, in every dialect.
    pub(crate) fn left(self) -> (u32, Seconds) {
        match self {
            Verdict::Allowed { remaining, reset } => (remaining, reset),
            Verdict::Limited { retry_after } => (0, Seconds::Whole(retry_after)),
        }
    }

    /// The `Ratelimit` header value, e.g. `"default";r=50;t=30`.
    pub(crate) fn header(self) -> String {
        let (remaining, reset) = self.left();
        format!("\"default\";r={remaining};t={reset}")
    }
}

/// A delay as the `t` parameter carries it. Both forms are rounded up, so a
/// client that waits that long is never early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seconds {
    /// At least 1.
    Whole(u64),
    /// Milliseconds, at least 1, written as seconds with three decimals.
    Millis(u64),
}

impl Seconds {
    /// As a duration, for a reset written as a date.
    pub(crate) fn duration(self) -> Duration {
        match self {
            Seconds::Whole(seconds) => Duration::from_secs(seconds),
            Seconds::Millis(ms) => Duration::from_millis(ms),
        }
    }

    fn of(d: Duration, fractional: bool) -> Seconds {
        if fractional {
            Seconds::Millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX).max(1))
        } else {
            Seconds::Whole(whole_seconds(d))
        }
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Seconds::Whole(seconds) => write!(f, "{seconds}"),
            Seconds::Millis(ms) => write!(f, "{}.{:03}", ms / 1000, ms % 1000),
        }
    }
}

/// Mixed into the seed so the arrivals do not depend on other knobs.
const ARRIVALS_STREAM: u64 = 0x6172_7269_7661_6c73;

/// The gap before the synthetic consumer's next request: `mean`, or with
/// `arrivals` an exponential draw of that mean, as between a Poisson
/// stream's arrivals.
fn gap(arrivals: &mut Option<SmallRng>, mean: Duration) -> Duration {
    match arrivals {
        // A draw of up to 37 means: past `Duration::MAX` for a load of one
        // request in centuries, when the consumer simply never sends again.
        Some(rng) => {
            Duration::try_from_secs_f64(mean.as_secs_f64() * -(1.0 - rng.random::<f64>()).ln()).unwrap_or(Duration::MAX)
        }
        None => mean,
    }
}

/// Seconds as headers carry them: rounded up, so a client that waits that
/// long is never early, and at least 1.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX).max(1)
}

/// One user's limiter. Memory is bounded by the quota (twice it for a token
/// bucket's record of the last window): requests over it are refused, not
/// stored.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: RateLimit,
    counter: Counter,
    blocked_until: Option<Instant>,
    /// When the synthetic consumer sends next, and how often on average.
    background: Option<(Instant, Duration)>,
    /// Draws the synthetic consumer's gaps, when they are random.
    arrivals: Option<SmallRng>,
    /// The bursts still to come, earliest first.
    bursts: VecDeque<(Instant, u32)>,
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
        let mut arrivals = config.random_background.map(|seed| SmallRng::seed_from_u64(seed ^ ARRIVALS_STREAM));
        let background = config
            .background_load
            .and_then(|load| Duration::try_from_secs_f64(1.0 / load).ok())
            .and_then(|mean| Some((start.checked_add(gap(&mut arrivals, mean))?, mean)));
        let mut bursts: Vec<_> = config
            .background_bursts
            .iter()
            .filter_map(|burst| Some((start.checked_add(burst.offset)?, burst.requests)))
            .collect();
        bursts.sort_by_key(|&(at, _)| at);
        Some(Limiter {
            config: config.clone(),
            counter: Counter::new(config.window_kind, config.enforced(), config.window, start),
            blocked_until: None,
            background,
            arrivals,
            bursts: bursts.into(),
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
        self.budget(now)
    }

    /// What a request at `now` would be told, without counting it: for
    /// answers that never reach the limiter but still carry its headers.
    pub(crate) fn peek(&mut self, now: Instant) -> Verdict {
        self.catch_up(now);
        if let Some(limited) = self.blocked_at(now) {
            return limited;
        }
        self.counter.advance(now);
        self.budget(now)
    }

    /// The most requests ever counted in one window, background included.
    pub(crate) fn max_in_window(&self) -> usize {
        self.max_in_window
    }

    /// Starts a new observation period for [`Self::max_in_window`].
    pub(crate) fn reset_max(&mut self) {
        self.max_in_window = self.counter.in_window();
    }

    fn blocked_at(&self, at: Instant) -> Option<Verdict> {
        let until = self.blocked_until.filter(|&until| at < until)?;
        Some(Verdict::Limited { retry_after: whole_seconds(until - at) })
    }

    fn block(&mut self, at: Instant) -> Verdict {
        self.blocked_until = Some(at + self.config.block);
        Verdict::Limited { retry_after: whole_seconds(self.config.block) }
    }

    /// Counts a request at `at` if the enforced quota has room.
    fn take_slot(&mut self, at: Instant) -> bool {
        self.counter.advance(at);
        if self.counter.left() == 0 {
            return false;
        }
        self.counter.take(at);
        self.max_in_window = self.max_in_window.max(self.counter.in_window());
        true
    }

    /// Replays the synthetic consumers' requests up to `now`, in time order,
    /// so they fill the window and can trip the block exactly as real ones
    /// would. Each synthetic request is handled once: amortised O(1).
    fn catch_up(&mut self, now: Instant) {
        while let Some((at, requests)) = self.next_background(now) {
            for _ in 0..requests {
                if self.blocked_at(at).is_some() {
                    break;
                }
                if !self.take_slot(at) {
                    self.block(at);
                }
            }
        }
    }

    /// The earliest synthetic send due by `now`, taken off its schedule.
    fn next_background(&mut self, now: Instant) -> Option<(Instant, u32)> {
        let steady = self.background.filter(|&(at, _)| at <= now);
        let burst = self.bursts.front().copied().filter(|&(at, _)| at <= now);
        if let Some((at, mean)) = steady.filter(|&(at, _)| burst.is_none_or(|(burst_at, _)| at < burst_at)) {
            self.background = at.checked_add(gap(&mut self.arrivals, mean)).map(|next| (next, mean));
            return Some((at, 1));
        }
        burst.and_then(|_| self.bursts.pop_front())
    }

    /// The budget as the headers announce it: what the enforced count leaves,
    /// plus the part of the announced quota that is not enforced at all.
    fn budget(&self, now: Instant) -> Verdict {
        let unenforced = self.config.quota.saturating_sub(self.config.enforced());
        Verdict::Allowed {
            remaining: self.counter.left().saturating_add(unenforced),
            reset: Seconds::of(self.counter.reset(now), self.config.fractional_reset),
        }
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
        assert_eq!(limiter.admit(t0), Verdict::Allowed { remaining: 2, reset: Seconds::Whole(10) });
        assert_eq!(limiter.admit(t0 + ms(1000)), Verdict::Allowed { remaining: 1, reset: Seconds::Whole(9) });
        assert_eq!(limiter.admit(t0 + ms(1500)), Verdict::Allowed { remaining: 0, reset: Seconds::Whole(9) });
        // Over quota: blocked for the whole block, Retry-After rounded up.
        assert_eq!(limiter.admit(t0 + ms(2000)), Verdict::Limited { retry_after: 5 });
        // During the block every request is refused with the time left, even
        // once the window itself has room again.
        assert_eq!(limiter.admit(t0 + ms(5000)), Verdict::Limited { retry_after: 2 });
        assert_eq!(limiter.admit(t0 + ms(6400)), Verdict::Limited { retry_after: 1 });
        // Refused requests were not counted: after the block the window holds
        // only what it held before.
        assert_eq!(limiter.admit(t0 + ms(10_500)), Verdict::Allowed { remaining: 0, reset: Seconds::Whole(1) });
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
        assert_eq!(limiter.admit(t0 + ms(1000)), Verdict::Allowed { remaining: 0, reset: Seconds::Whole(1) });
        assert!(matches!(limiter.admit(t0 + ms(1100)), Verdict::Limited { .. }));
        assert_eq!(limiter.max_in_window(), 2);
    }

    #[test]
    fn peek_reports_without_counting() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(&limit(2, 1000, 1000), t0).unwrap();
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 2, reset: Seconds::Whole(1) });
        limiter.admit(t0);
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 1, reset: Seconds::Whole(1) });
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 1, reset: Seconds::Whole(1) });
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
        assert_eq!(limiter.peek(t0 + ms(900)), Verdict::Allowed { remaining: 0, reset: Seconds::Whole(1) });
        assert_eq!(limiter.max_in_window(), 10);
        // At 1.0 s its next request finds no room and blocks the user.
        assert_eq!(limiter.admit(t0 + ms(1050)), Verdict::Limited { retry_after: 1 });
        assert_eq!(limiter.max_in_window(), 10);
    }

    /// Counts `seconds` of a background load of `load`/s, arriving evenly or
    /// at random from `seed`, second by second, in a limiter that never
    /// refuses: how many arrived in each second.
    fn arrivals_per_second(load: f64, seed: Option<u64>, seconds: u64) -> Vec<u32> {
        let t0 = Instant::now();
        let config =
            RateLimit { background_load: Some(load), random_background: seed, ..limit(1_000_000, 1_000, 1_000) };
        config.validate().unwrap();
        let mut limiter = Limiter::new(&config, t0).unwrap();
        (1..=seconds)
            .map(|second| {
                let Verdict::Allowed { remaining, .. } = limiter.peek(t0 + Duration::from_secs(second)) else {
                    panic!("refused")
                };
                // A 1 s window: what is counted at each whole second is that second's.
                1_000_000 - remaining
            })
            .collect()
    }

    #[test]
    fn a_random_background_load_keeps_its_mean_but_bunches() {
        let even = arrivals_per_second(30.0, None, 200);
        assert!(even.iter().all(|&n| (29..=31).contains(&n)), "{even:?}");
        let random = arrivals_per_second(30.0, Some(7), 200);
        let mean = f64::from(random.iter().sum::<u32>()) / 200.0;
        assert!((28.0..=32.0).contains(&mean), "mean {mean}");
        // A Poisson count of mean 30 has a standard deviation of about 5.5.
        let variance = random.iter().map(|&n| (f64::from(n) - mean).powi(2)).sum::<f64>() / 200.0;
        assert!((15.0..=50.0).contains(&variance), "variance {variance}");
        assert_eq!(random, arrivals_per_second(30.0, Some(7), 200), "the seed decides the arrivals");
        assert_ne!(random, arrivals_per_second(30.0, Some(8), 200));
    }

    #[test]
    fn the_enforced_quota_blocks_while_the_headers_announce_more() {
        let t0 = Instant::now();
        let config = RateLimit { enforced_quota: Some(3), ..limit(5, 10_000, 1_000) };
        config.validate().unwrap();
        let mut limiter = Limiter::new(&config, t0).unwrap();
        assert_eq!(limiter.peek(t0), Verdict::Allowed { remaining: 5, reset: Seconds::Whole(10) });
        for left in [4, 3, 2] {
            assert!(matches!(limiter.admit(t0), Verdict::Allowed { remaining, .. } if remaining == left));
        }
        // The lie: two left by the headers, and the fourth request blocks.
        assert_eq!(limiter.admit(t0 + ms(1)), Verdict::Limited { retry_after: 1 });
        assert_eq!(config.policy_header(), "\"default\";q=5;w=10");
        assert_eq!(limiter.max_in_window(), 3);
        for bad in [0, 6] {
            assert!(RateLimit { enforced_quota: Some(bad), ..config.clone() }.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fractional_reset_carries_milliseconds_rounded_up() {
        let t0 = Instant::now();
        let config = RateLimit { fractional_reset: true, ..limit(3, 10_000, 1_000) };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        limiter.admit(t0);
        let verdict = limiter.admit(t0 + Duration::from_micros(2_685_500));
        assert_eq!(verdict, Verdict::Allowed { remaining: 1, reset: Seconds::Millis(7315) });
        assert_eq!(verdict.header(), "\"default\";r=1;t=7.315");
        // Half a millisecond before the second leaves the window: never 0.
        assert_eq!(limiter.peek(t0 + ms(12_685)).header(), "\"default\";r=2;t=0.001");
        assert_eq!(Seconds::Millis(42).to_string(), "0.042");
        assert_eq!(Seconds::of(Duration::ZERO, true), Seconds::Millis(1));
        // A 429 still says whole seconds, as Retry-After must.
        limiter.admit(t0 + ms(12_685));
        limiter.admit(t0 + ms(12_685));
        assert_eq!(limiter.admit(t0 + ms(12_685)).header(), "\"default\";r=0;t=1");
    }

    #[test]
    fn a_fixed_window_limiter_announces_its_boundary() {
        let t0 = Instant::now();
        let config = RateLimit { window_kind: WindowKind::Fixed, ..limit(2, 10_000, 1_000) };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        assert_eq!(limiter.admit(t0 + ms(9_000)), Verdict::Allowed { remaining: 1, reset: Seconds::Whole(1) });
        assert!(matches!(limiter.admit(t0 + ms(9_500)), Verdict::Allowed { remaining: 0, .. }));
        assert_eq!(limiter.admit(t0 + ms(10_000)), Verdict::Allowed { remaining: 1, reset: Seconds::Whole(10) });
        assert_eq!(limiter.max_in_window(), 2);
    }

    #[test]
    fn a_token_bucket_limiter_announces_the_time_until_full() {
        let t0 = Instant::now();
        let config = RateLimit { window_kind: WindowKind::TokenBucket, ..limit(10, 10_000, 1_000) };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        for _ in 0..10 {
            limiter.admit(t0);
        }
        // One token a second: 4 back after 4.5 s, full 5.5 s later.
        assert_eq!(limiter.peek(t0 + ms(4_500)), Verdict::Allowed { remaining: 4, reset: Seconds::Whole(6) });
        assert!(matches!(limiter.admit(t0 + ms(4_500)), Verdict::Allowed { remaining: 3, .. }));
        assert_eq!(limiter.max_in_window(), 11, "a full bucket lets more than the quota through in a window");
    }

    #[test]
    fn bursts_spend_the_quota_in_time_order_with_the_steady_load() {
        let t0 = Instant::now();
        let config = RateLimit {
            background_load: Some(1.0),
            background_bursts: vec![Burst { requests: 4, offset: ms(2_500) }, Burst { requests: 2, offset: ms(500) }],
            ..limit(10, 10_000, 1_000)
        };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        // By 3 s: 2 (at 0.5 s) + steady at 1, 2, 3 s + 4 (at 2.5 s).
        assert!(matches!(limiter.peek(t0 + ms(3_000)), Verdict::Allowed { remaining: 1, .. }));
        assert!(matches!(limiter.admit(t0 + ms(3_100)), Verdict::Allowed { remaining: 0, .. }));
        // The steady consumer's next request at 4 s finds no room: the user is blocked.
        assert_eq!(limiter.admit(t0 + ms(4_200)), Verdict::Limited { retry_after: 1 });
        assert_eq!(limiter.max_in_window(), 10);
    }

    #[test]
    fn a_burst_over_the_quota_blocks_and_the_rest_is_not_counted() {
        let t0 = Instant::now();
        let config =
            RateLimit { background_bursts: vec![Burst { requests: 50, offset: ms(100) }], ..limit(10, 1_000, 500) };
        let mut limiter = Limiter::new(&config, t0).unwrap();
        assert_eq!(limiter.admit(t0 + ms(200)), Verdict::Limited { retry_after: 1 });
        assert_eq!(limiter.max_in_window(), 10);
        // Unblocked at 600 ms; the ten counted at 100 ms leave at 1100 ms.
        assert_eq!(limiter.peek(t0 + ms(600)), Verdict::Allowed { remaining: 0, reset: Seconds::Whole(1) });
        assert!(matches!(limiter.admit(t0 + ms(1_100)), Verdict::Allowed { remaining: 9, .. }));
    }

    #[test]
    fn bursts_parse_and_are_validated() {
        assert_eq!("50@5s".parse(), Ok(Burst { requests: 50, offset: Duration::from_secs(5) }));
        assert_eq!(" 3 @ 1m 30s".parse(), Ok(Burst { requests: 3, offset: Duration::from_secs(90) }));
        for bad in ["50", "@5s", "x@5s", "50@", "50@soon", "-1@1s"] {
            assert!(bad.parse::<Burst>().is_err(), "{bad}");
        }
        let huge =
            RateLimit { background_bursts: vec![Burst { requests: u32::MAX, offset: ms(1) }], ..RateLimit::default() };
        assert!(huge.validate().is_err());
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
        assert_eq!(Verdict::Allowed { remaining: 50, reset: Seconds::Whole(30) }.header(), "\"default\";r=50;t=30");
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
        let random_without_a_rate = RateLimit { random_background: Some(1), ..RateLimit::default() };
        assert!(random_without_a_rate.validate().is_err());
        // At random, one request in centuries draws gaps past any instant.
        let rare = RateLimit { background_load: Some(1e-18), random_background: Some(1), ..RateLimit::default() };
        rare.validate().unwrap();
        let mut limiter = Limiter::new(&rare, t0).unwrap();
        assert!(matches!(limiter.admit(t0 + Duration::from_secs(3600)), Verdict::Allowed { remaining: 1199, .. }));
    }
}
