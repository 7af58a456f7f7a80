//! The limiter: governor's GCRA on tokio's clock, the burst it may grant,
//! and the record of sends that carries the schedule over a change of quota
//! and holds each request's slot until it can no longer be counted.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::headers::Policy;
use super::pace::{Pace, Rate};
use super::sends::{Kept, SendRecord};

/// Distinct quotas remembered as announced more than once: an API has one
/// or two; a server that invents one per answer gets no more say.
const REPEATED_KEPT: usize = 16;

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
/// forgets what the window already holds; and this run's arrivals, so that
/// a slow request does not bunch a window of them over the quota.
///
/// Under `auto` the quota in force is the tightest the API announced within
/// that quota's own window, not merely the latest: a server that flaps
/// between two values (or gives GETs and DELETEs different ones) is paced
/// at the lower, steadily. And no window ever holds more requests than a
/// quota announced within it, those sent before a change included.
#[derive(Debug)]
pub(super) struct Limiter {
    pace: Pace,
    /// The quota paced at.
    pub(super) rate: Rate,
    gcra: Gcra,
    /// Every quota the API announced within its window, and when it last
    /// did, the latest last. The latest stays however old: nothing since has
    /// said otherwise.
    announced: Vec<(Policy, Instant)>,
    /// Quotas the API has announced more than once: the API's own, as
    /// opposed to a stray answer's (a proxy's limiter, a garbled header).
    repeated: Vec<Policy>,
    /// This run's sends: as many as the largest quota in force counts
    /// within the longest of their windows, and those the server may still
    /// count.
    sends: SendRecord,
    /// When the pace last changed, if it has.
    changed: Option<Instant>,
    /// What this run's record of sends is held to until a window after that
    /// change: the part after a change of quota (a tighter one waits for what
    /// its window already holds), the runs' pace together after a change of
    /// peers (the parts add up to it at every moment, whoever sent more
    /// before, so the part would only hold back the run that started first
    /// while the other may not take its place).
    held_to: Rate,
    /// The account's quota a 429 showed the API to enforce, below what it
    /// announced or what `--rate` says: for the rest of the run, split with
    /// live peers like any other.
    learned: Option<Rate>,
    /// Other live runs with this credential: the quota is split evenly.
    peers: u32,
    /// When the live peers last changed.
    repeered: Option<Instant>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(Pace::Auto)
    }
}

impl Limiter {
    pub(super) fn new(pace: Pace) -> Limiter {
        let rate = pace.initial();
        Limiter {
            pace,
            rate,
            gcra: gcra(rate),
            announced: Vec::new(),
            repeated: Vec::new(),
            sends: SendRecord::default(),
            changed: None,
            held_to: rate,
            learned: None,
            peers: 0,
            repeered: None,
        }
    }

    /// The tightest quota announced within its window: the one the API's
    /// counts are taken to be out of.
    pub(super) fn policy(&self) -> Option<Policy> {
        self.announced.iter().map(|(policy, _)| *policy).min_by(Policy::tighter)
    }

    /// Takes in the policy an answer carried, if any. Under `auto`, the
    /// tightest quota in force becomes the pace; the schedule carries over.
    pub(super) fn heard(&mut self, policy: Option<Policy>, now: Instant) {
        if let Some(policy) = policy {
            let before = self.announced.len();
            self.announced.retain(|&(old, _)| old != policy);
            if self.announced.len() < before && !self.repeated.contains(&policy) && self.repeated.len() < REPEATED_KEPT
            {
                self.repeated.push(policy);
            }
            self.announced.push((policy, now));
        }
        let until: Vec<Option<Instant>> = (0..self.announced.len()).map(|i| self.kept_until(i)).collect();
        let mut index = 0..;
        self.announced.retain(|_| index.next().and_then(|i| until[i]).is_none_or(|until| until > now));
        // Beside other runs, an equal part of the account's quota.
        let quota = self.quota();
        let rate = Rate { count: (quota.count / (self.peers + 1)).max(1), ..quota };
        if rate != self.rate {
            if self.peers > 0 {
                tracing::info!(rate = %rate, peers = self.peers, "pacing at an equal part of the quota beside other runs");
            } else if self.learned.is_none() {
                tracing::info!(rate = %rate, "pacing at the quota the API announces");
            }
            self.repace(rate, now);
        }
    }

    /// How long an announced quota stays in force: its window, but no
    /// longer than the longest window of the quotas announced repeatedly
    /// (the latest's, if none is), so that one stray answer announcing 1 a
    /// day yields to what the API keeps saying within one of its windows,
    /// and one announcing a short window does not cut the API's own short.
    fn held(&self) -> impl Fn(Policy) -> Duration {
        let repeated = self.announced.iter().filter(|(p, _)| self.repeated.contains(p)).map(|(p, _)| p.window).max();
        let reference = repeated.or(self.announced.last().map(|(p, _)| p.window)).unwrap_or(Duration::MAX);
        move |policy| policy.window.min(reference)
    }

    /// Until when the `index`-th announced quota stays in force, or `None`
    /// if for good: the latest does, however old, unless it is a stray
    /// beside quotas the API keeps announcing.
    fn kept_until(&self, index: usize) -> Option<Instant> {
        let (policy, at) = self.announced[index];
        let latest = index + 1 == self.announced.len();
        if latest && (self.repeated.is_empty() || self.repeated.contains(&policy)) {
            return None;
        }
        Some(at + self.held()(policy))
    }

    /// When the quota that binds stops being in force, if it ever does:
    /// the pace must be looked at again then, even if no answer comes,
    /// since nothing may go until it does.
    fn expiry(&self) -> Option<Instant> {
        let tightest = self.policy()?;
        let index = self.announced.iter().position(|&(policy, _)| policy == tightest)?;
        self.kept_until(index)
    }

    /// Other live runs with this credential, as the ledger tells.
    pub(super) fn peers(&mut self, live: u32, now: Instant) {
        if live != self.peers {
            self.peers = live;
            self.heard(None, now);
            self.held_to = Rate { count: self.rate.count.saturating_mul(live + 1), ..self.rate };
            self.repeered = Some(now);
        }
    }

    /// Moves the schedule to `rate`.
    fn repace(&mut self, rate: Rate, now: Instant) {
        self.gcra = carried(&self.gcra, self.rate, rate);
        self.rate = rate;
        self.held_to = rate;
        self.changed = Some(now);
    }

    /// Paces at `quota` for the rest of the run, if it is tighter than the
    /// pace: the API refused a request at that count.
    pub(super) fn learned(&mut self, quota: Rate, now: Instant) {
        if quota.per_second() < self.quota().per_second() {
            self.learned = Some(quota);
            self.heard(None, now);
        }
    }

    /// The account's quota as told, before any 429 taught otherwise:
    /// `--rate`, or under `auto` the tightest announced.
    pub(super) fn told(&self) -> Rate {
        match self.pace {
            Pace::Fixed(rate) => rate,
            Pace::Auto => self.policy().map_or(self.pace.initial(), Rate::from),
        }
    }

    /// The account's quota a 429 showed, if one did.
    pub(super) fn lesson(&self) -> Option<Rate> {
        self.learned
    }

    /// The account's quota in force, before it is split with live peers:
    /// `--rate`, or under `auto` the tightest announced; and no more than a
    /// 429 showed the API to enforce.
    pub(super) fn quota(&self) -> Rate {
        let quota = self.told();
        match self.learned {
            Some(learned) if learned.per_second() < quota.per_second() => learned,
            _ => quota,
        }
    }

    /// The slot taken at `at` was not used: a pause began before the
    /// request went.
    pub(super) fn withdrawn(&mut self, at: Instant) {
        self.sends.withdrawn(at);
    }

    /// The request let go at `sent` is done at `now`: answered, or given
    /// up (no answer, or a 429, which may have been counted).
    pub(super) fn done(&mut self, sent: Instant, now: Instant) {
        self.sends.done(sent, now);
    }

    /// Since when this run's requests count against its own part of the
    /// quota in its arrivals: for a window after the live peers changed,
    /// only those sent since. The run that started first sent more than its
    /// part before; the window's sends of both runs add up to the quota as
    /// those leave and the other run's come, and held to its part at once it
    /// would stop for a while as the other is paced at its own. That leaves
    /// nothing to spare for the latency, so it is only done where the API's
    /// count guards the window too.
    fn counted_since(&self, now: Instant) -> Option<Instant> {
        self.repeered.filter(|&at| at + self.rate.paced_window() > now)
    }

    /// Other live runs with this credential.
    pub(super) fn peer_count(&self) -> u32 {
        self.peers
    }

    /// The quotas no window of sends may exceed: the pace (as the record is
    /// held to it), and under `auto`
    /// every quota announced within its window.
    fn quotas(&self, now: Instant) -> impl Iterator<Item = Rate> + '_ {
        let announced = self
            .announced
            .iter()
            .enumerate()
            .filter(move |&(i, _)| self.kept_until(i).is_none_or(|until| until > now))
            .map(|(_, a)| a);
        let announced = announced.filter(|_| self.pace == Pace::Auto).map(|&(policy, _)| Rate::from(policy));
        std::iter::once(self.held_to).chain(announced)
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
        let quotas = self.quotas(now).filter(|&rate| !(settled && rate == self.held_to));
        quotas.fold(now, |at, rate| {
            // Room once the quota's count-th latest request has left.
            let oldest = self.sends.nth_latest(rate.count as usize);
            oldest.map_or(at, |oldest| at.max(oldest + rate.paced_window()))
        })
    }

    /// Takes a send slot at `now` if every quota's window has room, this
    /// run's arrivals have room at its pace, and governor's schedule allows
    /// one; otherwise says when to look again (an answer wakes the workers
    /// sooner). Where the API's count is `counted`, that guards the window
    /// shared with peers, and a window after they changed only the sends
    /// since count against this run's part.
    pub(super) fn take(&mut self, now: Instant, counted: bool) -> Result<(), Instant> {
        if self.expiry().is_some_and(|at| at <= now) {
            self.heard(None, now);
        }
        let since = self.counted_since(now).filter(|_| counted);
        let kept = self.kept(now);
        let arrivals = self.sends.room(kept, since, now).unwrap_or(now + self.rate.per);
        let look_again = |at: Instant| self.expiry().map_or(at, |expiry| at.min(expiry));
        let room = self.room_at(now).max(arrivals);
        if room > now {
            return Err(look_again(room));
        }
        // governor takes the slot it grants, so it is asked last.
        if let Err(not_until) = self.gcra.check() {
            return Err(look_again(Instant::from_std(not_until.earliest_possible())));
        }
        self.sends.sent(now, kept);
        Ok(())
    }

    /// What the record of sends must still tell.
    fn kept(&self, now: Instant) -> Kept {
        let (most, longest) = self.quotas(now).fold((0, Duration::ZERO), |(most, longest), rate| {
            (most.max(rate.count), longest.max(rate.paced_window()))
        });
        Kept { rate: self.rate, most: most as usize, longest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::{ms, per_second};

    #[test]
    fn a_burst_of_two_only_where_the_headroom_holds_an_interval() {
        for (rate, burst) in [("4/s", 1), ("20/1s", 1), ("100/2s", 2), ("250/5s", 2), ("1200/5m", 2)] {
            let rate: Rate = rate.parse().unwrap();
            assert_eq!(super::burst(rate).get(), burst, "{rate}");
            let most = rate.per.as_nanos() / rate.interval().as_nanos() + u128::from(burst);
            assert!(most <= u128::from(rate.count), "{rate}: {most} in one window");
        }
    }

    /// A limiter at 11 per second that sent `n` requests at that pace (on
    /// a paused clock), each answered at once, and then heard `quota` per
    /// second; and when the last one went.
    async fn told_after(n: usize, quota: u32) -> (Limiter, Instant) {
        let mut limiter = Limiter::default();
        limiter.heard(per_second(11), Instant::now());
        for _ in 0..n {
            while let Err(at) = limiter.take(Instant::now(), false) {
                tokio::time::advance(at - Instant::now()).await;
            }
            limiter.done(Instant::now(), Instant::now());
        }
        let last = Instant::now();
        limiter.heard(per_second(quota), last);
        (limiter, last)
    }

    /// A slot is held from the moment the limiter grants it: a worker that
    /// asks after another was granted one, but before that one's request
    /// went, must see it held (on a multi-threaded runtime it did not, and
    /// 101 went in flight at a quota of 100). A slot withdrawn (a pause came
    /// before the request went) is free again at once.
    #[tokio::test(start_paused = true)]
    async fn a_slot_is_held_from_when_it_is_granted_until_withdrawn_or_done() {
        let mut limiter = Limiter::new("10/s".parse().unwrap());
        let mut granted = Vec::new();
        while granted.len() < 10 {
            match limiter.take(Instant::now(), false) {
                Ok(()) => granted.push(Instant::now()),
                Err(at) => tokio::time::advance(at - Instant::now()).await,
            }
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(limiter.take(Instant::now(), false).is_err(), "ten granted and none done");
        limiter.withdrawn(granted[9]);
        assert_eq!(limiter.take(Instant::now(), false), Ok(()));
        assert!(limiter.take(Instant::now(), false).is_err());
        limiter.done(granted[0], Instant::now());
        let frees = Instant::now() + limiter.rate.paced_window();
        assert_eq!(limiter.take(Instant::now(), false), Err(frees));
        tokio::time::advance(frees - Instant::now()).await;
        assert_eq!(limiter.take(Instant::now(), false), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_quota_inherits_the_schedule_not_a_fresh_burst() {
        let (mut limiter, last) = told_after(5, 10).await;
        // A fresh limiter would let the next request go at once.
        let waits = limiter.take(last, false).unwrap_err().duration_since(last);
        let interval = Rate::from(per_second(10).unwrap()).interval();
        assert!(waits.abs_diff(interval) < Duration::from_micros(1), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tighter_quota_counts_what_its_window_already_holds() {
        let (mut limiter, last) = told_after(11, 5).await;
        // The fifth latest request must leave the window first.
        let fifth_latest = limiter.sends.nth_latest(5).unwrap();
        assert_eq!(limiter.take(last, false), Err(fifth_latest + Duration::from_millis(1050)));
    }

    /// 11 sent in the last second at 11 per second, then a peer starts: the
    /// two runs' parts (5 each) add up to the quota from now on, so this
    /// run's next request waits only for its part's spacing, not for its
    /// earlier sends to leave the window. (A tighter quota from the API,
    /// above, does wait for them.) That is where the API's count guards the
    /// shared window; without a count, its earlier sends hold their slots.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_starts_does_not_hold_the_run_before_it_to_its_earlier_sends() {
        let (mut limiter, last) = told_after(11, 11).await;
        limiter.peers(1, last);
        assert_eq!(limiter.rate.count, 5);
        let waits = limiter.take(last, true).unwrap_err().duration_since(last);
        assert!(waits <= Rate::from(per_second(5).unwrap()).interval(), "{waits:?}");
        let held = limiter.take(last, false).unwrap_err().duration_since(last);
        assert!(held > Duration::from_millis(500), "{held:?}");
    }

    /// Two runs of one credential, each at its part (5) of 10 per second
    /// for two seconds; then the API announces 4 per second to both. Each
    /// run's record of sends is all either can check the tighter quota
    /// against, so each must keep its own window to its part (2) until its
    /// earlier sends leave: checked against part x runs (4), each would wait
    /// only for its own 4th latest, and the two together would put 6 in one
    /// window of the new quota. Where the API sends counts the budget may
    /// still catch it; under a policy without counts, the limiter is all
    /// there is.
    #[tokio::test(start_paused = true)]
    async fn beside_a_peer_a_tighter_quota_counts_what_the_runs_windows_already_hold() {
        let t0 = Instant::now();
        let mut runs = [Limiter::default(), Limiter::default()];
        for run in &mut runs {
            run.heard(per_second(10), t0);
            run.peers(1, t0);
        }
        let mut sent: Vec<Instant> = Vec::new();
        async fn drive(runs: &mut [Limiter; 2], until: Instant, sent: &mut Vec<Instant>) {
            loop {
                let now = Instant::now();
                let mut next = until;
                for run in runs.iter_mut() {
                    match run.take(now, false) {
                        Ok(()) => {
                            run.done(now, now);
                            sent.push(now);
                            next = now;
                        }
                        Err(at) => next = next.min(at),
                    }
                }
                if next >= until {
                    tokio::time::advance(until - now).await;
                    break;
                }
                tokio::time::advance(next - now).await;
            }
        }
        drive(&mut runs, t0 + Duration::from_secs(2), &mut sent).await;
        let told = Instant::now();
        for run in &mut runs {
            run.heard(per_second(4), told);
        }
        drive(&mut runs, told + Duration::from_secs(3), &mut sent).await;
        let window = Rate::from(per_second(4).unwrap()).paced_window();
        let busiest = sent
            .iter()
            .filter(|&&s| s >= told)
            .map(|&s| sent.iter().filter(|&&o| o <= s && o + window > s).count())
            .max()
            .unwrap();
        assert!(busiest <= 4, "{busiest} sends within one window of the announced 4 per second");
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

    /// One stray answer announcing 1 per day (a proxy's own limiter, a
    /// garbled header) holds only as long as the API's own window.
    #[test]
    fn one_stray_policy_a_day_long_yields_to_the_apis_next_window() {
        let t0 = Instant::now();
        let mut limiter = Limiter::default();
        limiter.heard(Some(Policy { quota: 1, window: Duration::from_secs(86_400) }), t0);
        for i in 1..100 {
            limiter.heard(Some(Policy { quota: 1200, window: Duration::from_secs(300) }), t0 + ms(100 * i));
        }
        assert_ne!(limiter.rate, Rate::default(), "held for the API's window");
        limiter.heard(Some(Policy { quota: 1200, window: Duration::from_secs(300) }), t0 + Duration::from_secs(301));
        assert_eq!(limiter.rate, Rate::default(), "still paced at {}", limiter.rate);
    }

    /// The mirror of the stray day-long policy: one stray answer announcing
    /// 10 per second (a proxy's or per-IP limiter) must not evict the API's
    /// own 100 per 5 minutes, last announced 3 s before (its answers come
    /// every 3 s at that pace), or the run would go at 10 per second.
    #[test]
    fn one_stray_short_window_policy_does_not_evict_the_apis_quota() {
        let t0 = Instant::now();
        let api = Policy { quota: 100, window: Duration::from_secs(300) };
        let mut limiter = Limiter::default();
        limiter.heard(Some(api), t0);
        limiter.heard(Some(api), t0 + Duration::from_secs(3));
        limiter.heard(per_second(10), t0 + Duration::from_secs(6));
        assert_eq!(limiter.rate, Rate::from(api), "paced at {}", limiter.rate);
    }

    /// A quota learned alone is the account's, and is split when a peer
    /// starts: at 100 per 20 s on a server that enforces 80, this run learns
    /// 76; were it not split, the two would pace at 50 each, 100 together,
    /// and each round of relearning would cost a 429 (a 5-minute block).
    #[test]
    fn a_quota_learned_alone_is_split_when_a_peer_starts() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new("100/20s".parse().unwrap());
        limiter.learned(Rate { count: 76, per: Duration::from_secs(20) }, t0);
        assert_eq!(limiter.rate.count, 76);
        limiter.peers(1, t0 + ms(10));
        assert!(limiter.rate.count <= 38, "beside one peer, paced at {}", limiter.rate);
    }
}
