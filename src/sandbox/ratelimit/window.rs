//! The three ways servers count a quota. A client's pacer can be right on one
//! and wrong on another (a fixed window forgives a burst at its start that a
//! sliding one refuses), so the sandbox offers each behind one interface and
//! the limiter's block, background consumers and headers stay the same.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// Every span of one window holds at most the quota (Cloudflare's).
    #[default]
    Sliding,
    /// Counts start over at each multiple of the window from the server's
    /// start, whatever was sent just before.
    Fixed,
    /// A bucket of quota tokens, refilled evenly at quota per window.
    TokenBucket,
}

impl WindowKind {
    const NAMES: [(WindowKind, &'static str); 3] =
        [(WindowKind::Sliding, "sliding"), (WindowKind::Fixed, "fixed"), (WindowKind::TokenBucket, "token-bucket")];
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = WindowKind::NAMES.iter().find(|(kind, _)| kind == self).map_or("", |&(_, name)| name);
        f.write_str(name)
    }
}

impl FromStr for WindowKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WindowKind::NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|&(kind, _)| kind)
            .ok_or_else(|| format!("expected sliding, fixed or token-bucket, not {s:?}"))
    }
}

/// One user's count under one [`WindowKind`], for a quota of `capacity`
/// requests per `window`. Time is passed in and never goes backwards.
#[derive(Debug)]
pub(super) struct Counter {
    capacity: u32,
    window: Duration,
    rule: Rule,
}

#[derive(Debug)]
enum Rule {
    /// Times of the counted requests still inside the window, oldest first.
    Sliding(VecDeque<Instant>),
    /// The current window's start and what it has counted.
    Fixed { since: Instant, count: u32 },
    /// Tokens spent and not yet refilled, in units of 1/window-nanoseconds
    /// of a token: integers keep "one token left" exact, where floats would
    /// round a full refill down to 0.999... and refuse a request in time.
    /// `spent` is only for [`Counter::in_window`]: the bucket itself has no
    /// window.
    Bucket { debt: u128, at: Instant, spent: VecDeque<Instant> },
}

impl Counter {
    pub(super) fn new(kind: WindowKind, capacity: u32, window: Duration, start: Instant) -> Counter {
        let rule = match kind {
            WindowKind::Sliding => Rule::Sliding(VecDeque::new()),
            WindowKind::Fixed => Rule::Fixed { since: start, count: 0 },
            WindowKind::TokenBucket => Rule::Bucket { debt: 0, at: start, spent: VecDeque::new() },
        };
        Counter { capacity, window, rule }
    }

    /// Brings the count to `now`: old requests leave, a window rolls over,
    /// tokens come back.
    pub(super) fn advance(&mut self, now: Instant) {
        let window = self.window;
        match &mut self.rule {
            Rule::Sliding(counted) => evict(counted, now, window),
            Rule::Fixed { since, count } => {
                let elapsed = now.saturating_duration_since(*since);
                if elapsed >= window {
                    let into_current = elapsed.as_nanos() % window.as_nanos();
                    *since = now - Duration::from_nanos(u64::try_from(into_current).unwrap_or(u64::MAX));
                    *count = 0;
                }
            }
            Rule::Bucket { debt, at, spent } => {
                let refilled = now.saturating_duration_since(*at).as_nanos() * u128::from(self.capacity);
                *debt = debt.saturating_sub(refilled);
                *at = now;
                evict(spent, now, window);
            }
        }
    }

    /// Requests the rule would still accept at the last [`Self::advance`].
    pub(super) fn left(&self) -> u32 {
        let used = match &self.rule {
            Rule::Sliding(counted) => u32::try_from(counted.len()).unwrap_or(u32::MAX),
            Rule::Fixed { count, .. } => *count,
            Rule::Bucket { debt, .. } => u32::try_from(debt.div_ceil(self.window.as_nanos())).unwrap_or(u32::MAX),
        };
        self.capacity.saturating_sub(used)
    }

    /// Counts a request at `at`, the time of the last [`Self::advance`];
    /// the caller checked [`Self::left`].
    pub(super) fn take(&mut self, at: Instant) {
        let token = self.window.as_nanos();
        match &mut self.rule {
            Rule::Sliding(counted) => counted.push_back(at),
            Rule::Fixed { count, .. } => *count += 1,
            Rule::Bucket { debt, spent, .. } => {
                *debt += token;
                spent.push_back(at);
            }
        }
    }

    /// How long from `now` until the count goes down, the `t` a server
    /// announces: until the oldest request leaves a sliding window, until
    /// a fixed window's end, until a bucket is full again.
    pub(super) fn reset(&self, now: Instant) -> Duration {
        match &self.rule {
            Rule::Sliding(counted) => match counted.front() {
                Some(&oldest) => (oldest + self.window).saturating_duration_since(now),
                None => self.window,
            },
            Rule::Fixed { since, .. } => (*since + self.window).saturating_duration_since(now),
            Rule::Bucket { debt, .. } => {
                let nanos = debt.div_ceil(u128::from(self.capacity.max(1)));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        }
    }

    /// Requests counted in the current window, for the journal's busiest
    /// window: a fixed window's own count, or the last `window` of time for
    /// the other two (a bucket saved up can let more than the quota through
    /// in one window, and that is what this shows).
    pub(super) fn in_window(&self) -> usize {
        match &self.rule {
            Rule::Sliding(counted) | Rule::Bucket { spent: counted, .. } => counted.len(),
            Rule::Fixed { count, .. } => *count as usize,
        }
    }
}

fn evict(counted: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    let Some(horizon) = now.checked_sub(window) else {
        return;
    };
    while counted.front().is_some_and(|&t| t <= horizon) {
        counted.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Takes a request at `t0 + at_ms` if the rule has room.
    fn try_take(counter: &mut Counter, t0: Instant, at_ms: u64) -> bool {
        counter.advance(t0 + ms(at_ms));
        let room = counter.left() > 0;
        if room {
            counter.take(t0 + ms(at_ms));
        }
        room
    }

    #[test]
    fn kinds_parse_and_print_by_name() {
        for name in ["sliding", "fixed", "token-bucket"] {
            assert_eq!(name.parse::<WindowKind>().unwrap().to_string(), name);
        }
        assert!("bucket".parse::<WindowKind>().is_err());
        assert_eq!(WindowKind::default(), WindowKind::Sliding);
    }

    #[test]
    fn a_fixed_window_starts_over_at_its_boundary() {
        let t0 = Instant::now();
        let mut counter = Counter::new(WindowKind::Fixed, 2, ms(1000), t0);
        assert!(try_take(&mut counter, t0, 900));
        assert!(try_take(&mut counter, t0, 950));
        assert!(!try_take(&mut counter, t0, 999));
        assert_eq!(counter.reset(t0 + ms(999)), ms(1));
        // A sliding window would still hold both; this one is empty again.
        assert!(try_take(&mut counter, t0, 1000));
        assert!(try_take(&mut counter, t0, 1001));
        assert_eq!((counter.left(), counter.in_window()), (0, 2));
        assert_eq!(counter.reset(t0 + ms(1001)), ms(999));
        // After idle windows the boundary stays on the grid from the start.
        counter.advance(t0 + ms(5300));
        assert_eq!((counter.left(), counter.reset(t0 + ms(5300))), (2, ms(700)));
    }

    #[test]
    fn a_token_bucket_refills_evenly_and_resets_when_full() {
        let t0 = Instant::now();
        // 4 tokens per second: one back every 250 ms.
        let mut counter = Counter::new(WindowKind::TokenBucket, 4, ms(1000), t0);
        for _ in 0..4 {
            assert!(try_take(&mut counter, t0, 0));
        }
        assert!(!try_take(&mut counter, t0, 249));
        assert_eq!(counter.reset(t0 + ms(249)), ms(751), "full again 1 s after emptying");
        assert!(try_take(&mut counter, t0, 250), "exactly one token back, not 0.999");
        assert!(!try_take(&mut counter, t0, 251));
        counter.advance(t0 + ms(600));
        assert_eq!(counter.left(), 1, "1.4 tokens is one request");
        counter.advance(t0 + ms(5000));
        assert_eq!((counter.left(), counter.reset(t0 + ms(5000))), (4, Duration::ZERO));
        assert_eq!(counter.in_window(), 0, "nothing spent in the last second");
    }

    #[test]
    fn a_saved_up_bucket_shows_more_than_the_quota_in_one_window() {
        let t0 = Instant::now();
        let mut counter = Counter::new(WindowKind::TokenBucket, 4, ms(1000), t0);
        let taken = (0..=1000).step_by(50).filter(|&at| try_take(&mut counter, t0, at)).count();
        // Four in the first 150 ms from the full bucket, then one per 250 ms.
        assert_eq!(taken, 8);
        assert_eq!(counter.in_window(), 7, "all but the one at 0 are within the last second");
    }

    #[test]
    fn a_sliding_window_resets_when_its_oldest_request_leaves() {
        let t0 = Instant::now();
        let mut counter = Counter::new(WindowKind::Sliding, 2, ms(1000), t0);
        assert_eq!(counter.reset(t0), ms(1000));
        assert!(try_take(&mut counter, t0, 100));
        assert!(try_take(&mut counter, t0, 700));
        assert!(!try_take(&mut counter, t0, 1000));
        assert_eq!(counter.reset(t0 + ms(1000)), ms(100));
        assert!(try_take(&mut counter, t0, 1100));
    }
}
