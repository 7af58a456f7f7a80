//! Pacing: the `--rate` quota, the governor limiter that enforces it, and the
//! account-wide pause that a 429 imposes on every worker.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::quota::{Policy, Remaining};

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

/// Burst of one: GCRA then spaces every request by `interval`, so no window
/// of `per` can ever hold more than `count` requests.
fn limiter(rate: Rate) -> Arc<DefaultDirectRateLimiter> {
    let quota = Quota::with_period(rate.interval()).expect("interval is non-zero").allow_burst(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(quota))
}

/// Where the budget starts to bind, in requests of the window.
#[derive(Debug, Clone, Copy)]
struct Marks {
    /// Below this many left, what is left is spread over the time to the reset.
    low: u32,
    /// Never spent: rounding in the server's count.
    reserve: u32,
    /// Left unused when sharing the quota with another tool, whose use
    /// between two answers this run cannot see.
    headroom: u32,
}

impl Marks {
    fn of(rate: Rate) -> Marks {
        Marks { low: (rate.count / 20).max(2), reserve: 1, headroom: (rate.count / 5).max(1) }
    }
}

/// What the API last said about the current window, and what is in flight.
/// Two things follow from it. When little is left, the rest is spread over
/// the time to the reset rather than spent at once and answered with a 429
/// (which blocks the whole account for minutes). And when the API counts
/// more requests than this run sent, another tool shares the quota: this
/// run then paces at what the other leaves, so neither pushes the account
/// over.
#[derive(Debug, Default)]
struct Budget {
    /// Requests left and when the window resets, as last answered.
    left: Option<(u32, Instant)>,
    /// Sent and not yet answered: the server may not have counted them yet.
    in_flight: u32,
    /// The earliest the next request may go while the budget is spread.
    next: Option<Instant>,
    /// This run's requests in the last window, oldest first.
    sends: VecDeque<Instant>,
    /// The spacing that leaves other consumers their observed share.
    share: Option<Duration>,
    /// The quota the API last announced: what its counts are out of.
    policy: Option<Policy>,
    /// This run's first request: before a whole window has passed, others'
    /// use so far is only part of what they will use in one.
    first_sent: Option<Instant>,
}

impl Budget {
    /// The budget as of `now`, if the last answer's window has not reset.
    fn spendable(&self, now: Instant, marks: Marks) -> Option<(u32, Instant)> {
        let (left, reset_at) = self.left.filter(|&(_, reset_at)| reset_at > now)?;
        Some((left.saturating_sub(self.in_flight + marks.reserve), reset_at))
    }

    /// When the budget lets the next request go: no sooner than others'
    /// share allows; below the low mark, the next spread slot; at zero, the
    /// reset (the first answer after it tells how much the reset freed).
    fn earliest(&self, now: Instant, marks: Marks) -> Instant {
        let shared = match (self.share, self.sends.back()) {
            (Some(share), Some(&last)) => (last + share).max(now),
            _ => now,
        };
        match self.spendable(now, marks) {
            None => shared,
            Some((0, reset_at)) => reset_at.max(shared),
            Some((spendable, _)) if spendable >= marks.low => shared,
            Some(_) => self.next.map_or(shared, |next| next.max(shared)),
        }
    }

    /// Counts a request sent at `now`; below the low mark, the next one is
    /// spaced so what is left lasts until the reset.
    fn sent(&mut self, now: Instant, marks: Marks) {
        self.in_flight += 1;
        self.first_sent.get_or_insert(now);
        // Kept only once the API has named its window: without one there is
        // no share to work out, and a million sends would cost 16 MB.
        if let Some(policy) = self.policy {
            self.sends.push_back(now);
            self.forget_before(now.checked_sub(policy.window).unwrap_or(now));
        }
        self.next = match self.spendable(now, marks) {
            Some((spendable, reset_at)) if spendable > 0 && spendable < marks.low => {
                Some(now + reset_at.saturating_duration_since(now) / spendable)
            }
            _ => None,
        };
    }

    /// Drops this run's sends that have left the window.
    fn forget_before(&mut self, start: Instant) {
        while self.sends.front().is_some_and(|&at| at < start) {
            self.sends.pop_front();
        }
    }

    /// Records an answer (its rate-limit headers, if it had any) to a sent
    /// request.
    fn answered(&mut self, remaining: Option<Remaining>, policy: Option<Policy>, now: Instant, marks: Marks) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.policy = policy.or(self.policy);
        let Some(remaining) = remaining else {
            return;
        };
        self.left = Some((remaining.requests, now + remaining.reset));
        // Who else spends the quota can be told only against the quota the
        // API counts with.
        let Some(policy) = self.policy else {
            return;
        };
        self.forget_before(now.checked_sub(policy.window).unwrap_or(now));
        // What the server counted that this run did not send (some of ours
        // in flight may not be counted yet: others come out a little low,
        // which the headroom covers).
        let counted = policy.quota.saturating_sub(remaining.requests);
        let ours = self.sends.len() as u32;
        let seen_for = self.first_sent.map_or(policy.window, |first| now.saturating_duration_since(first));
        let part = (seen_for.as_secs_f64() / policy.window.as_secs_f64()).clamp(0.3, 1.0);
        let others = (f64::from(counted.saturating_sub(ours)) / part).ceil() as u32;
        let room = policy.quota.saturating_sub(others + marks.headroom).max(1);
        self.share = (others > marks.reserve).then(|| policy.window / room);
    }
}

/// Gates every request: the shared rate-limit pause, the limiter at the
/// current quota, and the budget the API reports.
pub struct Pacer {
    pace: Pace,
    limiter: RwLock<(Rate, Arc<DefaultDirectRateLimiter>)>,
    budget: Mutex<Budget>,
    paused_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(pace: Pace) -> Self {
        let rate = pace.initial();
        Pacer {
            pace,
            limiter: RwLock::new((rate, limiter(rate))),
            budget: Mutex::default(),
            paused_until: Mutex::new(None),
        }
    }

    /// The quota being paced at now.
    pub fn rate(&self) -> Rate {
        self.limiter.read().expect("limiter lock").0
    }

    /// Waits until a request may be sent, and counts it as in flight.
    pub async fn ready(&self) {
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            // The budget is waited for before the limiter, never after, so
            // the limiter's spacing holds between the requests actually sent.
            let (rate, limiter) = self.limiter.read().expect("limiter lock").clone();
            let marks = Marks::of(rate);
            let at = self.budget.lock().expect("budget lock").earliest(Instant::now(), marks);
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
                continue;
            }
            limiter.until_ready().await;
            // A 429 seen by another worker while this one waited for the
            // limiter means the slot it got is not safe to use.
            if self.paused_until().is_some() {
                continue;
            }
            self.budget.lock().expect("budget lock").sent(Instant::now(), marks);
            return;
        }
    }

    /// Takes in what an answer said about the quota (nothing, for a request
    /// that got no answer). Under `auto`, a newly announced policy becomes
    /// the pace.
    pub fn answered(&self, remaining: Option<Remaining>, policy: Option<Policy>) {
        let marks = Marks::of(self.rate());
        self.budget.lock().expect("budget lock").answered(remaining, policy, Instant::now(), marks);
        let (Pace::Auto, Some(policy)) = (self.pace, policy) else {
            return;
        };
        let announced = Rate { count: policy.quota, per: policy.window };
        let mut current = self.limiter.write().expect("limiter lock");
        if current.0 != announced {
            tracing::info!(rate = %announced, "pacing at the quota the API announces");
            *current = (announced, limiter(announced));
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

    #[test]
    fn auto_or_a_rate() {
        assert_eq!("auto".parse::<Pace>().unwrap(), Pace::Auto);
        assert_eq!("4/s".parse::<Pace>().unwrap(), Pace::Fixed(Rate { count: 4, per: Duration::from_secs(1) }));
        assert!("fast".parse::<Pace>().unwrap_err().ends_with("or auto"));
    }

    fn remaining(requests: u32, reset_secs: u64) -> Option<Remaining> {
        Some(Remaining { requests, reset: Duration::from_secs(reset_secs) })
    }

    const MARKS: Marks = Marks { low: 120, reserve: 1, headroom: 1 };

    /// An announced quota per 300 s.
    fn policy(quota: u32) -> Option<Policy> {
        Some(Policy { quota, window: Duration::from_secs(300) })
    }

    #[test]
    fn another_consumer_is_left_its_share() {
        let now = Instant::now();
        let mut budget =
            Budget { policy: policy(100), first_sent: Some(now - Duration::from_secs(600)), ..Budget::default() };
        for i in 0..10 {
            budget.sent(now + Duration::from_millis(i), MARKS);
        }
        for _ in 0..10 {
            budget.answered(None, None, now + Duration::from_millis(10), MARKS);
        }
        // The server counts 60 of 100 used; this run sent 10: another tool
        // used 50, so this run paces at what the other leaves: 49 per 300 s.
        let seen = now + Duration::from_millis(20);
        budget.answered(remaining(40, 300), None, seen, MARKS);
        let last = now + Duration::from_millis(9);
        assert_eq!(budget.earliest(seen, MARKS), last + Duration::from_secs(300) / 49);
    }

    #[test]
    fn a_plentiful_budget_costs_nothing() {
        let now = Instant::now();
        let mut budget = Budget { policy: policy(1001), ..Budget::default() };
        assert_eq!(budget.earliest(now, MARKS), now, "nothing known yet");
        budget.sent(now, MARKS);
        budget.answered(remaining(1000, 300), policy(1001), now, MARKS);
        for _ in 0..500 {
            assert_eq!(budget.earliest(now, MARKS), now, "well above the low mark");
            budget.sent(now, MARKS);
        }
    }

    #[test]
    fn a_low_budget_is_spread_until_the_reset() {
        let now = Instant::now();
        let mut budget = Budget { policy: policy(12), ..Budget::default() };
        budget.sent(now, MARKS);
        budget.answered(remaining(11, 10), policy(12), now, MARKS);
        // 11 left, one kept in reserve: each request pushes the next one out.
        let mut at = now;
        let mut gaps = vec![];
        for _ in 0..9 {
            let next = budget.earliest(at, MARKS);
            gaps.push(next - at);
            budget.sent(next, MARKS);
            at = next;
        }
        assert_eq!(gaps[0], Duration::ZERO);
        assert!(gaps[1..].iter().all(|g| *g >= Duration::from_millis(900)), "{gaps:?}");
        assert!(at <= now + Duration::from_secs(10), "the budget lasts until the reset");
    }

    #[test]
    fn an_empty_budget_waits_for_the_reset_and_stale_news_is_dropped() {
        let now = Instant::now();
        let mut budget = Budget { policy: policy(2), ..Budget::default() };
        budget.sent(now, MARKS);
        budget.answered(remaining(1, 30), policy(2), now, MARKS);
        let reset = now + Duration::from_secs(30);
        assert_eq!(budget.earliest(now, MARKS), reset);
        assert_eq!(budget.earliest(reset, MARKS), reset, "a reset budget no longer binds");
    }

    #[test]
    fn auto_adopts_the_announced_quota_and_a_fixed_rate_does_not() {
        let policy = Some(Policy { quota: 60, window: Duration::from_secs(3) });
        let auto = Pacer::new(Pace::Auto);
        assert_eq!(auto.rate(), Rate::default());
        auto.answered(None, policy);
        assert_eq!(auto.rate(), Rate { count: 60, per: Duration::from_secs(3) });
        let fixed = Pacer::new(Pace::Fixed("4/s".parse().unwrap()));
        fixed.answered(None, policy);
        assert_eq!(fixed.rate(), "4/s".parse().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_ready_until_it_ends() {
        let pacer = Pacer::new("1000/s".parse().unwrap());
        pacer.answered(None, None);
        let start = Instant::now();
        assert!(pacer.pause_for(Duration::from_secs(90)));
        assert!(!pacer.pause_for(Duration::from_secs(5)));
        pacer.ready().await;
        assert!(start.elapsed() >= Duration::from_secs(90));
        assert!(pacer.paused_until().is_none());
    }
}
