//! Pacing: the `--rate` quota, the governor limiter that enforces it, and the
//! account-wide pause that a 429 imposes on every worker.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::pacing::headers::{Policy, Remaining};

/// Cloudflare's documented quota per user: 1200 requests per 5 minutes.
pub const CLOUDFLARE_QUOTA: &str = "1200/5m";

/// The pace is kept this fraction below the quota, and at least
/// [`MIN_HEADROOM`] per window, so that network and scheduling jitter (two
/// requests sent a full interval apart arriving a little closer) cannot push a
/// window over the limit as the server counts it.
const HEADROOM: f64 = 0.01;
const MIN_HEADROOM: Duration = Duration::from_millis(50);

/// How long a worker waiting for the API's next answer sleeps before it
/// looks again anyway: answers wake it sooner.
const NEWS_WAIT: Duration = Duration::from_secs(1);

/// A wait the API asks for (a `Retry-After`, or the reset of a spent
/// `Ratelimit` budget) longer than this is taken as a mistake and clipped: an
/// hour is already far beyond Cloudflare's 5-minute block.
pub const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// A spent budget usually frees a slot within a second or so; a stall
/// longer than this is said on stderr, lest the run look hung.
const SAID_AFTER: Duration = Duration::from_secs(3);

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
    fn paced_window(&self) -> Duration {
        self.per.mul_f64(1.0 + HEADROOM).max(self.per + MIN_HEADROOM)
    }

    /// Requests per second at the paced interval, for estimates and summaries.
    pub fn per_second(&self) -> f64 {
        1.0 / self.interval().as_secs_f64()
    }
}

impl From<Policy> for Rate {
    fn from(policy: Policy) -> Self {
        Rate { count: policy.quota, per: policy.window }
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

/// governor's clock: tokio's, so that the limiter keeps the time every
/// other wait here keeps, a paused test clock included.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// governor's GCRA, on tokio's clock.
type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// GCRA spaces requests by `interval`. It lets through `floor(per /
/// interval) + burst` requests in any window of `per` at most, so a burst of
/// two is allowed where the headroom holds a whole interval. That slack is
/// what keeps the pace: with a burst of one, a worker woken a fraction of a
/// millisecond late restarts the schedule from its own late start, and the
/// lateness of every wake-up adds up to a percent of the quota lost.
fn gcra(rate: Rate) -> Gcra {
    let quota = Quota::with_period(rate.interval()).expect("interval is non-zero").allow_burst(burst(rate));
    RateLimiter::direct_with_clock(quota, TokioClock)
}

fn burst(rate: Rate) -> NonZeroU32 {
    let whole_intervals = rate.per.as_nanos() / rate.interval().as_nanos();
    if whole_intervals + 2 <= u128::from(rate.count) {
        NonZeroU32::new(2).expect("two is not zero")
    } else {
        NonZeroU32::MIN
    }
}

/// A limiter at `rate` whose schedule stands as many of its intervals
/// ahead as `old`'s (at `was`) stood of its own, rounded up: a fresh one
/// would grant a whole burst, and a server whose announced quota changes on
/// every answer would get one per answer. No further ahead than its burst:
/// that is as full as governor's limiter gets, the next request one
/// interval away.
fn carried(old: &Gcra, was: Rate, rate: Rate) -> Gcra {
    let new = gcra(rate);
    // A whole burst may go once the old schedule is due, and not before.
    let Ok(Err(due)) = old.check_n(burst(was)) else {
        return new;
    };
    let ahead = due.wait_time_from(old.clock().now()).as_nanos().div_ceil(was.interval().as_nanos());
    let cells = ahead.min(u128::from(burst(rate).get())) as u32;
    if let Some(cells) = NonZeroU32::new(cells) {
        new.check_n(cells).expect("within the burst").expect("a fresh limiter grants a whole burst");
    }
    new
}

/// The pace: governor's GCRA at the quota in force, and this run's latest
/// sends, so that a change of quota neither restarts the schedule nor
/// forgets what the window already holds.
///
/// Under `auto` the quota in force is the tightest the API announced within
/// that quota's own window, not merely the latest: a server that flaps
/// between two values (or gives GETs and DELETEs different ones) is paced
/// at the lower, steadily. And no window ever holds more requests than a
/// quota announced within it, those sent before a change included.
#[derive(Debug)]
struct Limiter {
    pace: Pace,
    /// The quota paced at.
    rate: Rate,
    gcra: Gcra,
    /// Every quota the API announced within its window, and when it last
    /// did, the latest last. The latest stays however old: nothing since has
    /// said otherwise.
    announced: Vec<(Policy, Instant)>,
    /// When this run's latest requests went, oldest first: as many as the
    /// largest quota in force counts, within the longest of their windows.
    sent: VecDeque<Instant>,
    /// When the pace last changed, if it has.
    changed: Option<Instant>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(Pace::Auto)
    }
}

impl Limiter {
    fn new(pace: Pace) -> Limiter {
        let rate = pace.initial();
        Limiter { pace, rate, gcra: gcra(rate), announced: Vec::new(), sent: VecDeque::new(), changed: None }
    }

    /// The tightest quota announced within its window: the one the API's
    /// counts are taken to be out of.
    fn policy(&self) -> Option<Policy> {
        self.announced.iter().map(|(policy, _)| *policy).min_by(Policy::tighter)
    }

    /// Takes in the policy an answer carried, if any. Under `auto`, the
    /// tightest quota in force becomes the pace; the schedule carries over.
    fn heard(&mut self, policy: Option<Policy>, now: Instant) {
        if let Some(policy) = policy {
            self.announced.retain(|&(old, _)| old != policy);
            self.announced.push((policy, now));
        }
        let latest = self.announced.len().saturating_sub(1);
        let mut index = 0..;
        self.announced.retain(|&(old, at)| index.next() == Some(latest) || at + old.window > now);
        let rate = match self.pace {
            Pace::Fixed(rate) => rate,
            Pace::Auto => self.policy().map_or(self.rate, Rate::from),
        };
        if rate != self.rate {
            tracing::info!(rate = %rate, "pacing at the quota the API announces");
            self.gcra = carried(&self.gcra, self.rate, rate);
            self.rate = rate;
            self.changed = Some(now);
        }
    }

    /// The quotas no window of sends may exceed: the pace, and under `auto`
    /// every quota announced within its window.
    fn quotas(&self, now: Instant) -> impl Iterator<Item = Rate> + '_ {
        let announced = self.announced.iter().filter(move |&&(policy, at)| at + policy.window > now);
        let announced = announced.filter(|_| self.pace == Pace::Auto).map(|&(policy, _)| Rate::from(policy));
        std::iter::once(self.rate).chain(announced)
    }

    /// When each quota's window has room for the next request, by the
    /// record of sends.
    ///
    /// A whole window after the pace last changed, GCRA alone keeps the
    /// pace's own windows within its quota, and the record is not asked
    /// about it: by then the record would only hand on each window's late
    /// wake-ups to the next, and they would add up over a long run.
    fn room_at(&self, now: Instant) -> Instant {
        let settled = self.changed.is_none_or(|changed| changed + self.rate.paced_window() <= now);
        let quotas = self.quotas(now).filter(|&rate| !(settled && rate == self.rate));
        quotas.fold(now, |at, rate| {
            // Room once the quota's count-th latest request has left.
            let oldest = self.sent.len().checked_sub(rate.count as usize).map(|i| self.sent[i]);
            oldest.map_or(at, |oldest| at.max(oldest + rate.paced_window()))
        })
    }

    /// Takes a send slot at `now` if every quota's window has room and
    /// governor's schedule allows one; otherwise says when to look again.
    fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let room = self.room_at(now);
        if room > now {
            return Err(room);
        }
        // governor takes the slot it grants, so it is asked last.
        self.gcra.check().map_err(|not_until| Instant::from_std(not_until.earliest_possible()))?;
        self.sent.push_back(now);
        let (most, longest) = self.quotas(now).fold((0, Duration::ZERO), |(most, longest), rate| {
            (most.max(rate.count), longest.max(rate.paced_window()))
        });
        while self.sent.len() > most as usize || self.sent.front().is_some_and(|&at| at + longest <= now) {
            self.sent.pop_front();
        }
        Ok(())
    }
}

/// Where the budget starts to bind, in requests of the window.
#[derive(Debug, Clone, Copy)]
struct Marks {
    /// Below this many left, what is left is spread over the time to the reset.
    low: u32,
    /// Never spent: rounding in the server's count.
    reserve: u32,
    /// The limiter's spacing: whether this run alone could outrun the quota.
    interval: Duration,
}

impl Marks {
    fn of(rate: Rate) -> Marks {
        Marks { low: (rate.count / 20).max(2), reserve: 1, interval: rate.interval() }
    }
}

/// One of this run's requests, done. If the server counted it, it did so at
/// some moment between the two instants, so it has surely left a sliding
/// window by `answered + window`, and was surely still in it until
/// `sent + window`.
#[derive(Debug, Clone, Copy)]
struct Counted {
    sent: Instant,
    answered: Instant,
    /// Answered with a `Ratelimit` header: the API's limiter saw it. Without
    /// one (no answer at all, or an edge's error page) it may never have
    /// been counted, so its leaving must not free a slot.
    surely: bool,
}

/// What the latest answer said about the window: `left` requests as the
/// server counted when it handled the request behind it.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    left: u32,
    /// The header's reset, and when that is.
    reset: Duration,
    reset_at: Instant,
    /// The request the answer was for.
    of: Counted,
    /// This run's requests the server may not have counted yet when it
    /// handled that one: queued or in flight then, or answered while it was.
    owed: u32,
    /// Requests let through the budget since.
    sent_since: u32,
}

/// What the API last said about the current window, and what this run sent
/// since. Three things follow from it.
///
/// The `Ratelimit` header's reset counts whole seconds, so on a sliding
/// window it says "1" while this run's oldest request leaves within
/// milliseconds. Each of this run's requests is known to have left the
/// window by its answer plus the window, which frees its slot long before
/// the header admits it: that is what lets a run at the full quota keep its
/// pace when arrivals bunch up.
///
/// When the API counts more requests than this run sent, another tool shares
/// the quota: this run then paces at what the other leaves, so neither
/// pushes the account over. Then the slots this run frees may go to the
/// other tool, so only the reset (or a fresh answer) frees any.
///
/// And only when crowded like that (or when `--rate` asks for more than the
/// API allows) is a low budget spread over the time to the reset rather than
/// spent: alone at its own pace, this run cannot outrun a window.
#[derive(Debug, Default)]
struct Budget {
    snapshot: Option<Snapshot>,
    /// Let through the budget and waiting for the limiter.
    queued: u32,
    /// Sent and not yet answered.
    in_flight: u32,
    /// The earliest the next request may go while the budget is spread.
    next: Option<Instant>,
    /// This run's answered requests that may still count in the window or
    /// may yet free a slot, in the order answered. Kept only once the API has
    /// named its window, and bounded by what one window holds.
    ours: VecDeque<Counted>,
    /// When the latest request took its send slot.
    last_sent: Option<Instant>,
    /// The spacing that leaves other consumers their observed share.
    share: Option<Duration>,
    /// The quota the API's counts are out of: the tightest in force.
    policy: Option<Policy>,
    /// This run's first request, and others' count in the first answer to
    /// name the quota. A tool already at work when this run started shows
    /// its whole use in that first count. One that starts with this run does
    /// not: until a whole window has passed, its use since then is only part
    /// of what it will use in one, and is scaled up to match.
    first_sent: Option<Instant>,
    others_at_first: Option<u32>,
    /// Whether the API's window has been seen to reset as a fixed window
    /// does: between two answers the count went down while the reset jumped
    /// back up to half the window or more. From then on a slot this run
    /// frees is not reused early, since this run's requests of the previous
    /// window were never in the count; and only this run's requests since
    /// the window began are told apart from another tool's. Before the
    /// first reset, every request of this run is in the window, and a slot
    /// taken to free at its answer plus the window frees at the reset or
    /// later, so a sliding window can safely be assumed until then.
    fixed: bool,
}

impl Budget {
    /// Whether a low budget is spread: when another tool shares the quota,
    /// or when this run's own pace is faster than the quota allows.
    fn crowded(&self, marks: Marks) -> bool {
        let outpaces = self.policy.is_some_and(|p| marks.interval.checked_mul(p.quota).is_none_or(|w| w < p.window));
        self.share.is_some() || outpaces
    }

    /// This run's requests that were surely counted in `snapshot` and
    /// surely still in the window then: the slots they free are not in its
    /// count. As `answered` indexes, oldest first.
    fn in_snapshot(&self, snapshot: &Snapshot, window: Duration) -> impl Iterator<Item = &Counted> {
        let horizon = snapshot.of.answered.checked_sub(window);
        let from = horizon.map_or(0, |h| self.ours.partition_point(|c| c.answered <= h));
        let to = self.ours.partition_point(|c| c.answered <= snapshot.of.sent);
        self.ours.range(from..to.max(from)).filter(move |c| c.surely && horizon.is_none_or(|h| c.sent > h))
    }

    /// The budget as of `now`, if the API has said anything, and when the
    /// next slot surely frees (or when to look again, if only news will
    /// free one).
    fn spendable(&self, now: Instant, marks: Marks) -> Option<(u32, Instant)> {
        let snapshot = self.snapshot?;
        if snapshot.reset_at <= now {
            // The window has reset, but a sliding one has lost only its
            // oldest request: one request asks, the rest wait for its answer.
            let asking = self.in_flight + self.queued;
            return Some((u32::from(asking == 0), now + NEWS_WAIT));
        }
        let mut freed = 0u32;
        let mut next_free = snapshot.reset_at;
        // With another tool at work, a slot this run frees may well go to
        // that tool: then only the reset (or a fresh answer) frees any.
        if let Some(policy) = self.policy.filter(|_| !self.fixed && !self.crowded(marks)) {
            for counted in self.in_snapshot(&snapshot, policy.window) {
                let leaves = counted.answered + policy.window;
                if leaves <= now {
                    freed += 1;
                } else {
                    next_free = next_free.min(leaves);
                    break;
                }
            }
        }
        let spent = snapshot.owed + snapshot.sent_since + marks.reserve;
        Some((snapshot.left.saturating_add(freed).saturating_sub(spent), next_free))
    }

    /// The next send slot the spacing that leaves another tool its share
    /// allows, if another tool shares the quota.
    fn share_slot(&self) -> Option<Instant> {
        self.share.zip(self.last_sent).map(|(share, last)| last + share)
    }

    /// When the budget lets the next request go: no sooner than others'
    /// share allows; at zero, when a slot surely frees; when crowded and
    /// below the low mark, the next spread slot.
    fn earliest(&self, now: Instant, marks: Marks) -> Instant {
        let shared = self.share_slot().map_or(now, |slot| slot.max(now));
        match self.spendable(now, marks) {
            None => shared,
            Some((0, next_free)) => next_free.max(shared),
            Some((spendable, _)) if spendable >= marks.low || !self.crowded(marks) => shared,
            Some(_) => self.next.map_or(shared, |next| next.max(shared)),
        }
    }

    /// Counts a request let through at `now`, to be sent once the limiter
    /// allows; when crowded and below the low mark, the next one is spaced
    /// so what is left lasts until the reset.
    fn claimed(&mut self, now: Instant, marks: Marks) {
        self.queued += 1;
        self.first_sent.get_or_insert(now);
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.sent_since += 1;
        }
        self.next = match self.spendable(now, marks) {
            Some((spendable, _)) if spendable > 0 && spendable < marks.low && self.crowded(marks) => {
                let reset_at = self.snapshot.map_or(now, |s| s.reset_at);
                Some(now + reset_at.saturating_duration_since(now) / spendable)
            }
            _ => None,
        };
    }

    /// When a spent budget next frees a slot, if it is spent: a stall, as
    /// opposed to the pace, and said when long.
    fn spent_until(&self, now: Instant, marks: Marks) -> Option<Instant> {
        self.spendable(now, marks).and_then(|(spendable, next_free)| (spendable == 0).then_some(next_free))
    }

    /// Takes the send slot for a claimed request if the spacing that
    /// leaves another tool its share allows it now, and then `limited`
    /// grants it too (asked last, as it takes what it grants); otherwise
    /// says when to look again. Nothing is booked ahead: the share may
    /// change with the next answer, and a slot booked on a stale estimate
    /// could be minutes away.
    fn take_slot(&mut self, now: Instant, limited: impl FnOnce() -> Result<(), Instant>) -> Option<Instant> {
        if let Some(slot) = self.share_slot().filter(|&slot| slot > now) {
            return Some(slot);
        }
        if let Err(at) = limited() {
            return Some(at);
        }
        self.last_sent = Some(now);
        None
    }

    /// A claimed request goes out.
    fn let_go(&mut self) {
        self.queued = self.queued.saturating_sub(1);
        self.in_flight += 1;
    }

    /// A claimed request will not go out after all. Until the next answer
    /// the budget stays one lower than it could be.
    fn abandoned(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }

    /// A request is no longer in flight, whatever its answer; the policy in
    /// force, if any, is the one counted with. All a 429 tells the budget:
    /// the server refused the request without counting it.
    fn settled(&mut self, policy: Option<Policy>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.policy = policy.or(self.policy);
    }

    /// Records the answer to a request sent at `sent`: its rate-limit
    /// headers, if it had any.
    fn answered(
        &mut self,
        sent: Instant,
        remaining: Option<Remaining>,
        policy: Option<Policy>,
        now: Instant,
        marks: Marks,
    ) {
        if policy.is_some_and(|new| self.policy.is_some_and(|old| old != new)) {
            // Counted against another quota: no slot of it frees in this one.
            self.ours.clear();
        }
        self.settled(policy);
        let of = Counted { sent, answered: now, surely: remaining.is_some() };
        if let Some(remaining) = remaining {
            // Answered after this request was sent: perhaps not yet counted
            // when the server handled it.
            let answered_since = self.ours.len() - self.ours.partition_point(|c| c.answered <= sent);
            let owed = self.in_flight + self.queued + answered_since as u32;
            // A reset beyond the window would be a garbled header, and one
            // beyond the longest wait is clipped like a `Retry-After`.
            let reset = self.policy.map_or(remaining.reset, |p| remaining.reset.min(p.window)).min(LONGEST_WAIT);
            let left = remaining.requests;
            if let Some(before) = self.snapshot.filter(|before| sent >= before.of.answered) {
                // Handled after the last one. (A sliding window's reset
                // jumps that far only after a pause of half a window, which
                // merely makes this run cautious for the rest of it.)
                let jumped = self.policy.is_some_and(|p| reset > before.reset && reset * 2 >= p.window);
                self.fixed |= left > before.left && jumped;
            }
            self.snapshot = Some(Snapshot { left, reset, reset_at: now + reset, of, owed, sent_since: 0 });
        }
        // Who else spends the quota, and which slots free, can be told only
        // against the window the API counts in.
        let Some(policy) = self.policy else {
            return;
        };
        self.ours.push_back(of);
        // Gone from every window this answer (or, without one, the latest
        // that can still matter) describes.
        let horizon = if remaining.is_some() { Some(sent) } else { now.checked_sub(policy.window) };
        while self.ours.front().zip(horizon).is_some_and(|(c, h)| c.answered + policy.window <= h) {
            self.ours.pop_front();
        }
        let Some(remaining) = remaining else {
            return;
        };
        // What the server counted that this run did not send. Anything of
        // this run's that may still be in the window counts as ours, so
        // others come out low rather than high; the headroom covers that.
        let counted = policy.quota.saturating_sub(remaining.requests);
        let in_window = match self.snapshot.filter(|_| self.fixed) {
            Some(snapshot) => {
                let began = snapshot.reset_at.checked_sub(policy.window);
                self.ours.len() - began.map_or(0, |began| self.ours.partition_point(|c| c.answered <= began))
            }
            None => self.ours.len(),
        };
        let ours = self.in_flight + in_window as u32;
        let others = counted.saturating_sub(ours);
        let before = *self.others_at_first.get_or_insert(others);
        let seen_for = self.first_sent.map_or(policy.window, |first| now.saturating_duration_since(first));
        let part = (seen_for.as_secs_f64() / policy.window.as_secs_f64()).clamp(0.05, 1.0);
        let others = others.max((f64::from(others.saturating_sub(before)) / part).ceil() as u32).min(policy.quota);
        // Left unused when sharing: the other tool's use between two answers
        // cannot be seen.
        let headroom = (policy.quota / 10).max(1);
        let room = policy.quota.saturating_sub(others.saturating_add(headroom)).max(1);
        self.share = (others > marks.reserve).then(|| policy.window / room);
    }
}

/// The budget and the limiter: every send slot takes both, under one lock.
#[derive(Debug, Default)]
struct Gate {
    budget: Budget,
    limiter: Limiter,
}

impl Gate {
    /// Takes the send slot for a claimed request once the limiter allows
    /// it and the budget's spacing does too; otherwise says when to look
    /// again.
    fn take_slot(&mut self, now: Instant) -> Option<Instant> {
        self.budget.take_slot(now, || self.limiter.take(now))
    }

    /// Takes in the policy an answer (or a 429) carried; what the budget
    /// counts out of is the quota in force.
    fn heard(&mut self, policy: Option<Policy>, now: Instant) -> (Option<Policy>, Marks) {
        self.limiter.heard(policy, now);
        (self.limiter.policy(), Marks::of(self.limiter.rate))
    }
}

/// A wait that holds back every worker, as opposed to the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// A 429's pause.
    RateLimited,
    /// The API's budget is spent until a slot frees or the window resets.
    Spent,
}

impl Stall {
    /// How long it must last to be said. A 429 is said whatever its length:
    /// it means the quota was overrun.
    fn said_after(self) -> Duration {
        match self {
            Stall::RateLimited => Duration::ZERO,
            Stall::Spent => SAID_AFTER,
        }
    }
}

/// Gates every request: the shared rate-limit pause, the limiter at the
/// current quota, and the budget the API reports.
pub struct Pacer {
    gate: Mutex<Gate>,
    /// Every answer: wakes workers waiting on the budget to look again.
    news: Notify,
    paused_until: Mutex<Option<Instant>>,
    /// The end of the latest stall said on stderr.
    said_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(pace: Pace) -> Self {
        Pacer {
            gate: Mutex::new(Gate { limiter: Limiter::new(pace), ..Gate::default() }),
            news: Notify::new(),
            paused_until: Mutex::new(None),
            said_until: Mutex::new(None),
        }
    }

    /// The quota being paced at now.
    pub fn rate(&self) -> Rate {
        self.gate.lock().expect("gate lock").limiter.rate
    }

    /// Waits until a request may be sent, counts it as in flight, and
    /// returns when it was let go (for [`Self::answered`]).
    pub async fn ready(&self) -> Instant {
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            // The budget is claimed before the send slot is waited for, so
            // that workers queueing for slots never share one free slot of
            // the budget.
            let wait = self.until_news_or(|gate, now| {
                let (budget, marks) = (&mut gate.budget, Marks::of(gate.limiter.rate));
                let at = budget.earliest(now, marks);
                if at <= now {
                    budget.claimed(now, marks);
                    return None;
                }
                if let Some(until) = budget.spent_until(now, marks) {
                    self.say(until, Stall::Spent);
                }
                Some(at)
            });
            if wait.await {
                continue;
            }
            // Claims made before another tool showed up go out at the
            // spacing that leaves it its share, too.
            while self.until_news_or(Gate::take_slot).await {}
            // A 429 seen by another worker while this one waited means the
            // slot it got is not safe to use.
            let budget = &mut self.gate.lock().expect("gate lock").budget;
            if self.paused_until().is_some() {
                budget.abandoned();
                continue;
            }
            budget.let_go();
            return Instant::now();
        }
    }

    /// Asks the gate when to go (`None`: now), and if not now, sleeps
    /// until then or until an answer brings news, whichever is first.
    /// Returns whether it waited.
    async fn until_news_or(&self, ask: impl FnOnce(&mut Gate, Instant) -> Option<Instant>) -> bool {
        // Listening before asking, so news between the two is not missed.
        let news = self.news.notified();
        tokio::pin!(news);
        news.as_mut().enable();
        let Some(at) = ask(&mut self.gate.lock().expect("gate lock"), Instant::now()) else {
            return false;
        };
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = news => {}
        }
        true
    }

    /// Takes in what an answer said about the quota for the request let go
    /// at `sent` (nothing, for a request that got no answer).
    pub fn answered(&self, sent: Instant, remaining: Option<Remaining>, policy: Option<Policy>) {
        let now = Instant::now();
        let mut gate = self.gate.lock().expect("gate lock");
        let (policy, marks) = gate.heard(policy, now);
        gate.budget.answered(sent, remaining, policy, now, marks);
        drop(gate);
        self.news.notify_waiters();
    }

    /// Takes in a 429. Its `Ratelimit` describes the block, not the window,
    /// and the request was not counted; the pause it starts is what governs.
    pub fn refused(&self, policy: Option<Policy>) {
        let mut gate = self.gate.lock().expect("gate lock");
        let (policy, _) = gate.heard(policy, Instant::now());
        gate.budget.settled(policy);
        drop(gate);
        self.news.notify_waiters();
    }

    /// Holds back every worker for `delay` (never shortening a longer pause).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut paused = self.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
        drop(paused);
        self.say(until, Stall::RateLimited);
    }

    /// Says a stall lasting until `until` on stderr, once: as a warning,
    /// since off a terminal (cron) only warnings reach stderr by default,
    /// and a silent hour looks like a hang. Within a stall already said,
    /// only one lasting much longer is news.
    fn say(&self, until: Instant, stall: Stall) {
        let now = Instant::now();
        let mut said = self.said_until.lock().expect("notice lock");
        let (from, after) = match *said {
            Some(end) if end > now => (end, SAID_AFTER),
            _ => (now, stall.said_after()),
        };
        if until <= from + after {
            return;
        }
        *said = Some(until);
        drop(said);
        let wait = until - now;
        let shown =
            humantime::format_duration(Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_millis() >= 500)));
        let wait_ms = wait.as_millis() as u64;
        match stall {
            Stall::RateLimited => {
                tracing::warn!(wait = %shown, wait_ms, "rate limited by the API: every worker pauses");
            }
            Stall::Spent => {
                tracing::warn!(wait = %shown, wait_ms, "the API's rate-limit budget is spent: requests wait for it");
            }
        }
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
    fn a_burst_of_two_only_where_the_headroom_holds_an_interval() {
        for (rate, burst) in [("4/s", 1), ("20/1s", 1), ("100/2s", 2), ("250/5s", 2), ("1200/5m", 2)] {
            let rate: Rate = rate.parse().unwrap();
            assert_eq!(super::burst(rate).get(), burst, "{rate}");
            let most = rate.per.as_nanos() / rate.interval().as_nanos() + u128::from(burst);
            assert!(most <= u128::from(rate.count), "{rate}: {most} in one window");
        }
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn send(budget: &mut Budget, at: Instant, marks: Marks) {
        budget.claimed(at, marks);
        assert_eq!(budget.take_slot(at, || Ok(())), None, "the test sends no sooner than the share allows");
        budget.let_go();
    }

    /// A run whose own pace could never outrun the quota.
    const ALONE: Marks = Marks { low: 120, reserve: 1, interval: Duration::from_secs(300) };
    /// A run whose `--rate` asks for more than the API allows.
    const OUTPACING: Marks = Marks { interval: Duration::from_millis(1), ..ALONE };

    /// An announced quota per 300 s.
    fn policy(quota: u32) -> Option<Policy> {
        Some(Policy { quota, window: Duration::from_secs(300) })
    }

    #[test]
    fn another_consumer_is_left_its_share() {
        let now = Instant::now();
        let mut budget = Budget { policy: policy(100), first_sent: Some(now - ms(600_000)), ..Budget::default() };
        for i in 0..10 {
            send(&mut budget, now + ms(i), ALONE);
        }
        for i in 0..9 {
            budget.answered(now + ms(i), None, None, now + ms(10), ALONE);
        }
        // The server counts 60 of 100 used; this run sent 10: another tool
        // used 50, so this run paces at what the other leaves, less a tenth
        // of the quota: 40 per 300 s.
        let seen = now + ms(20);
        budget.answered(now + ms(9), remaining(40, 300), None, seen, ALONE);
        assert_eq!(budget.earliest(seen, ALONE), now + ms(9) + Duration::from_secs(300) / 40);
    }

    #[test]
    fn a_tool_that_starts_with_this_run_is_expected_to_keep_going() {
        let t0 = Instant::now();
        let mut budget = Budget::default();
        send(&mut budget, t0, ALONE);
        budget.answered(t0, remaining(99, 300), policy(100), t0, ALONE);
        assert_eq!(budget.earliest(t0, ALONE), t0, "nobody else yet");
        // A fifth of the window in, another tool has used 15: it will use 75
        // in a whole one at that pace, which leaves this run 15 once a tenth
        // of the quota is kept as headroom.
        let later = t0 + Duration::from_secs(60);
        send(&mut budget, later, ALONE);
        budget.answered(later, remaining(83, 300), None, later, ALONE);
        assert_eq!(budget.earliest(later, ALONE), later + Duration::from_secs(300) / 15);
    }

    #[test]
    fn a_plentiful_budget_costs_nothing() {
        let now = Instant::now();
        let mut budget = Budget::default();
        assert_eq!(budget.earliest(now, ALONE), now, "nothing known yet");
        send(&mut budget, now, ALONE);
        budget.answered(now, remaining(1000, 300), policy(1001), now, ALONE);
        for _ in 0..500 {
            assert_eq!(budget.earliest(now, ALONE), now, "well above the low mark");
            send(&mut budget, now, ALONE);
        }
    }

    /// Sends one request at `now`, answered at once with `left` of `quota`
    /// left and the window resetting in `reset` seconds, then as many more as
    /// the budget lets go before the reset; returns the gaps between them.
    fn spend_the_rest(left: u32, quota: u32, reset: u64, marks: Marks) -> Vec<Duration> {
        let now = Instant::now();
        let mut budget = Budget::default();
        send(&mut budget, now, marks);
        budget.answered(now, remaining(left, reset), policy(quota), now, marks);
        let mut at = now;
        let mut gaps = vec![];
        loop {
            let next = budget.earliest(at, marks);
            if next >= now + Duration::from_secs(reset) {
                return gaps;
            }
            gaps.push(next - at);
            send(&mut budget, next, marks);
            at = next;
        }
    }

    #[test]
    fn a_low_budget_is_spread_until_the_reset_when_the_pace_could_outrun_it() {
        // 11 left, one kept in reserve: each request pushes the next one out.
        let gaps = spend_the_rest(11, 12, 10, OUTPACING);
        assert_eq!(gaps.len(), 9, "{gaps:?}");
        assert_eq!(gaps[0], Duration::ZERO);
        assert!(gaps[1..].iter().all(|g| *g >= ms(900)), "{gaps:?}");
    }

    #[test]
    fn alone_at_its_own_pace_a_run_spends_a_low_budget_as_the_limiter_allows() {
        let gaps = spend_the_rest(11, 12, 10, ALONE);
        assert_eq!(gaps, vec![Duration::ZERO; 10], "the limiter alone spaces these");
    }

    #[test]
    fn an_empty_budget_waits_for_the_reset_and_stale_news_is_dropped() {
        let now = Instant::now();
        let mut budget = Budget::default();
        send(&mut budget, now, ALONE);
        budget.answered(now, remaining(1, 30), policy(2), now, ALONE);
        let reset = now + Duration::from_secs(30);
        assert_eq!(budget.earliest(now, ALONE), reset);
        assert_eq!(budget.earliest(reset, ALONE), reset, "a reset budget no longer binds");
    }

    #[test]
    fn a_full_window_frees_a_slot_as_this_runs_oldest_request_leaves_it() {
        // 3 per second; the header's reset is in whole seconds.
        let t0 = Instant::now();
        let window = Some(Policy { quota: 3, window: Duration::from_secs(1) });
        let mut budget = Budget::default();
        for (i, left) in [2, 1, 0].into_iter().enumerate() {
            let sent = t0 + ms(20 * i as u64);
            send(&mut budget, sent, ALONE);
            budget.answered(sent, remaining(left, 1), window, sent + ms(10), ALONE);
        }
        // The first request surely left at its answer plus the window, 40 ms
        // before the header's reset; one slot stays in reserve, so the
        // second's leaving is what lets the next request go.
        assert_eq!(budget.earliest(t0 + ms(50), ALONE), t0 + ms(1010));
        assert_eq!(budget.earliest(t0 + ms(1010), ALONE), t0 + ms(1030));
        assert_eq!(budget.earliest(t0 + ms(1030), ALONE), t0 + ms(1030));
        send(&mut budget, t0 + ms(1030), ALONE);
        assert_eq!(budget.earliest(t0 + ms(1030), ALONE), t0 + ms(1050), "the third frees the next");
    }

    /// Answers to requests sent 1 s apart, each after the last was
    /// answered: `(left, reset seconds)`.
    fn readings(budget: &mut Budget, t0: Instant, quota: u32, readings: &[(u32, u64)]) {
        for (i, &(left, reset)) in readings.iter().enumerate() {
            let sent = t0 + Duration::from_secs(i as u64);
            budget.claimed(sent, ALONE);
            budget.let_go();
            let window = Some(Policy { quota, window: Duration::from_secs(10) });
            budget.answered(sent, remaining(left, reset), window, sent + ms(10), ALONE);
        }
    }

    #[test]
    fn a_window_that_resets_whole_is_taken_for_a_fixed_one() {
        let t0 = Instant::now();
        let mut sliding = Budget::default();
        readings(&mut sliding, t0, 100, &[(5, 2), (4, 1), (5, 1), (4, 2), (5, 1)]);
        assert!(!sliding.fixed);
        // The count comes back as the reset jumps up to the whole window.
        let mut fixed = Budget::default();
        readings(&mut fixed, t0, 100, &[(5, 2), (4, 1), (99, 10), (98, 9)]);
        assert!(fixed.fixed);
    }

    #[test]
    fn on_a_fixed_window_no_slot_frees_before_the_reset() {
        let t0 = Instant::now();
        let window = Some(Policy { quota: 3, window: Duration::from_secs(2) });
        let spent = |fixed| {
            let mut budget = Budget { fixed, ..Budget::default() };
            for (i, left) in [2, 1, 0].into_iter().enumerate() {
                let sent = t0 + ms(20 * i as u64);
                budget.claimed(sent, ALONE);
                budget.let_go();
                budget.answered(sent, remaining(left, 2), window, sent + ms(10), ALONE);
            }
            budget.share = None;
            budget.earliest(t0 + ms(50), ALONE)
        };
        assert_eq!(spent(false), t0 + ms(2010), "sliding: when the first request leaves");
        assert_eq!(spent(true), t0 + ms(2050), "fixed: the reset");
    }

    #[test]
    fn a_request_the_api_may_not_have_counted_frees_no_slot() {
        let t0 = Instant::now();
        let window = Some(Policy { quota: 3, window: Duration::from_secs(1) });
        let mut budget = Budget::default();
        // The first got an edge's error page, without a Ratelimit header.
        send(&mut budget, t0, ALONE);
        budget.answered(t0, None, window, t0 + ms(10), ALONE);
        for (i, left) in [1, 0].into_iter().enumerate() {
            let sent = t0 + ms(20 * (i as u64 + 1));
            send(&mut budget, sent, ALONE);
            budget.answered(sent, remaining(left, 1), window, sent + ms(10), ALONE);
        }
        // The second's slot is the first that surely frees; after it, only
        // the header's reset does (the third is not in its own count's past).
        assert_eq!(budget.earliest(t0 + ms(50), ALONE), t0 + ms(1030));
        assert_eq!(budget.earliest(t0 + ms(1030), ALONE), t0 + ms(1050));
    }

    #[test]
    fn requests_answered_after_another_was_sent_may_be_missing_from_its_count() {
        let t0 = Instant::now();
        let mut budget = Budget::default();
        send(&mut budget, t0, ALONE);
        send(&mut budget, t0 + ms(1), ALONE);
        // The second is answered first; the first's answer, which arrives
        // later, may have been counted before the second arrived.
        budget.answered(t0 + ms(1), remaining(5, 300), policy(7), t0 + ms(2), ALONE);
        budget.answered(t0, remaining(6, 300), policy(7), t0 + ms(3), ALONE);
        assert_eq!(budget.spendable(t0 + ms(3), ALONE).map(|(n, _)| n), Some(4), "6 less the second, less reserve");
        send(&mut budget, t0 + ms(4), ALONE);
        assert_eq!(budget.spendable(t0 + ms(4), ALONE).map(|(n, _)| n), Some(3));
    }

    #[test]
    fn auto_adopts_the_announced_quota_and_a_fixed_rate_does_not() {
        let policy = Some(Policy { quota: 60, window: Duration::from_secs(3) });
        let auto = Pacer::new(Pace::Auto);
        assert_eq!(auto.rate(), Rate::default());
        auto.answered(Instant::now(), None, policy);
        assert_eq!(auto.rate(), Rate { count: 60, per: Duration::from_secs(3) });
        let fixed = Pacer::new(Pace::Fixed("4/s".parse().unwrap()));
        fixed.refused(policy);
        assert_eq!(fixed.rate(), "4/s".parse().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_that_see_the_same_free_slot_take_it_once() {
        let pacer = std::sync::Arc::new(Pacer::new("1000/s".parse().unwrap()));
        let start = pacer.ready().await;
        // One left after the reserve.
        pacer.answered(start, remaining(2, 10), policy(3));
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let (pacer, sent_tx) = (std::sync::Arc::clone(&pacer), sent_tx.clone());
            tokio::spawn(async move { sent_tx.send(pacer.ready().await) });
        }
        let sent = sent_rx.recv().await.unwrap();
        assert!(sent < start + ms(100), "{:?}", sent - start);
        // The other waits out the reset, and then for the answer to the one
        // that went: after a reset, one request asks and the rest listen.
        let reset = start + Duration::from_secs(10);
        tokio::time::sleep_until(reset + ms(500)).await;
        assert!(sent_rx.try_recv().is_err(), "the other still waits");
        pacer.answered(sent, remaining(2, 10), policy(3));
        let other = sent_rx.recv().await.unwrap();
        assert!(other >= reset + ms(500), "{:?}", other - start);
    }

    /// What is logged at warning level or above while the guard lives.
    #[derive(Clone, Default)]
    struct Said(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Said {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Said {
        fn listen() -> (Said, tracing::subscriber::DefaultGuard) {
            let said = Said::default();
            let writer = said.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            (said, tracing::subscriber::set_default(subscriber))
        }

        fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_string).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_ready_until_it_ends_and_is_said_once() {
        let (said, _guard) = Said::listen();
        let pacer = Pacer::new("1000/s".parse().unwrap());
        let start = Instant::now();
        pacer.pause_for(Duration::from_secs(90));
        pacer.pause_for(Duration::from_secs(5));
        pacer.ready().await;
        assert!(start.elapsed() >= Duration::from_secs(90));
        assert!(pacer.paused_until().is_none());
        let said = said.lines();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("WARN") && said[0].contains("every worker pauses wait=1m 30s"), "{said:?}");
    }

    /// How long the next request waits after an answer that leaves nothing
    /// until a reset `reset_secs` away, and the warnings said meanwhile.
    async fn wait_when_spent(reset_secs: u64) -> (Duration, Vec<String>) {
        let (said, _guard) = Said::listen();
        let pacer = Pacer::new(Pace::Auto);
        let sent = pacer.ready().await;
        pacer.answered(sent, remaining(0, reset_secs), None);
        let asked = Instant::now();
        pacer.ready().await;
        (asked.elapsed(), said.lines())
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_a_day_away_waits_an_hour_and_says_so() {
        let (waited, said) = wait_when_spent(86_400).await;
        assert_eq!(waited, LONGEST_WAIT, "clipped like a Retry-After");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("WARN") && said[0].contains("budget is spent") && said[0].contains("wait=1h"),
            "{said:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_for_a_spent_budget_goes_unsaid() {
        let (waited, said) = wait_when_spent(2).await;
        assert_eq!(waited, Duration::from_secs(2));
        assert_eq!(said, Vec::<String>::new());
    }

    fn per_second(quota: u32) -> Option<Policy> {
        Some(Policy { quota, window: Duration::from_secs(1) })
    }

    /// A limiter at 11 per second that sent `n` requests at that pace (on
    /// a paused clock) and then heard `quota` per second; and when the last
    /// one went.
    async fn told_after(n: usize, quota: u32) -> (Limiter, Instant) {
        let mut limiter = Limiter::default();
        limiter.heard(per_second(11), Instant::now());
        for _ in 0..n {
            while let Err(at) = limiter.take(Instant::now()) {
                tokio::time::advance(at - Instant::now()).await;
            }
        }
        let last = Instant::now();
        limiter.heard(per_second(quota), last);
        (limiter, last)
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_quota_inherits_the_schedule_not_a_fresh_burst() {
        let (mut limiter, last) = told_after(5, 10).await;
        // A fresh limiter would let the next request go at once.
        let waits = limiter.take(last).unwrap_err().duration_since(last);
        let interval = Rate::from(per_second(10).unwrap()).interval();
        assert!(waits.abs_diff(interval) < Duration::from_micros(1), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tighter_quota_counts_what_its_window_already_holds() {
        let (mut limiter, last) = told_after(11, 5).await;
        // The fifth latest request must leave the window first.
        let fifth_latest = limiter.sent[limiter.sent.len() - 5];
        assert_eq!(limiter.take(last), Err(fifth_latest + Duration::from_millis(1050)));
    }

    #[test]
    fn flapping_between_two_quotas_paces_at_the_lower_and_a_fixed_rate_ignores_both() {
        let t0 = Instant::now();
        let mut auto = Limiter::default();
        let mut fixed = Limiter::new("100/s".parse().unwrap());
        for (i, quota) in [10, 11, 10, 11, 11, 10].into_iter().enumerate() {
            let at = t0 + ms(10 * i as u64);
            auto.heard(per_second(quota), at);
            fixed.heard(per_second(quota), at);
            assert_eq!(auto.rate, Rate::from(per_second(10).unwrap()), "after {quota}");
            assert_eq!(fixed.rate, "100/s".parse().unwrap());
        }
        assert_eq!(fixed.policy(), per_second(10), "the budget still counts out of the tightest");
        // Once the lower one is a whole window old, the higher one is the pace.
        auto.heard(per_second(11), t0 + ms(1100));
        assert_eq!(auto.rate, Rate::from(per_second(11).unwrap()));
    }

    /// Sixteen workers under `auto` for `span` of paused time, each request
    /// answered after 3 ms by an answer announcing the next of `quotas` per
    /// second. Returns when each request went, and each announcement.
    async fn flapping(quotas: &'static [u32], span: Duration) -> (Vec<Instant>, Vec<(Instant, u32)>) {
        let pacer = std::sync::Arc::new(Pacer::new(Pace::Auto));
        let record = std::sync::Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let end = Instant::now() + span;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (pacer, record) = (std::sync::Arc::clone(&pacer), std::sync::Arc::clone(&record));
            workers.spawn(async move {
                loop {
                    let sent = pacer.ready().await;
                    if sent >= end {
                        return;
                    }
                    record.lock().unwrap().0.push(sent);
                    tokio::time::sleep(ms(3)).await;
                    let quota = {
                        let (_, announced) = &mut *record.lock().unwrap();
                        let quota = quotas[announced.len() % quotas.len()];
                        announced.push((Instant::now(), quota));
                        quota
                    };
                    pacer.answered(sent, None, per_second(quota));
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let record = std::mem::take(&mut *record.lock().unwrap());
        record
    }

    /// Every window of a second that holds a request holds no more than
    /// the tightest quota announced in it before that request.
    fn within_every_announced_quota(sent: &[Instant], announced: &[(Instant, u32)]) {
        let second = Duration::from_secs(1);
        for (i, &at) in sent.iter().enumerate() {
            let in_window = sent[..=i].iter().filter(|&&s| s + second > at).count();
            let tightest =
                announced.iter().filter(|&&(told, _)| told < at && told + second > at).map(|&(_, q)| q).min();
            if let Some(quota) = tightest {
                assert!(in_window <= quota as usize, "{in_window} in the second up to request {i}, quota {quota}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_that_flaps_on_every_answer_never_buys_a_burst() {
        let span = Duration::from_secs(10);
        let (sent, announced) = flapping(&[10, 11], span).await;
        within_every_announced_quota(&sent, &announced);
        // Steadily at the lower quota, and no slower.
        let paced = span.as_secs_f64() * Rate::from(per_second(10).unwrap()).per_second();
        assert!(sent.len() as f64 >= paced * 0.97, "{} sent, {paced:.1} at the pace", sent.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tighter_quota_announced_once_holds_for_its_window() {
        const NOW_AND_THEN: [u32; 16] = [11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 4];
        let (sent, announced) = flapping(&NOW_AND_THEN, Duration::from_secs(10)).await;
        assert!(announced.iter().filter(|(_, q)| *q == 4).count() >= 3, "the tighter quota was tried");
        within_every_announced_quota(&sent, &announced);
    }
}
