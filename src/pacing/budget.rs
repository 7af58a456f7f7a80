//! The API's budget: what its `Ratelimit` header says is left of the
//! window, what this run has spent since, who else spends the quota, and
//! when the next request may go by that count.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::headers::{Policy, Remaining};
use super::pace::Rate;
use super::pause::LONGEST_WAIT;
use super::share::{Share, PROBE_DEVIATIONS, SURGE_DEVIATIONS};

mod fixed;
use fixed::{Span, ROUNDING};

/// How long a worker waiting for the API's next answer sleeps before it
/// looks again anyway: answers wake it sooner.
const NEWS_WAIT: Duration = Duration::from_secs(1);

/// The share of the API's quota never spent, however much is left: the
/// quota is shared with the dashboard and whatever tool a colleague starts
/// mid-run, which this run cannot see coming. It also absorbs rounding in
/// the server's count.
const STANDING_RESERVE: f64 = 0.02;

/// This run's latest answers kept while the API names no window: far more
/// than can be in flight, so every answer a count may be missing is known.
const UNWINDOWED: usize = 1024;

/// Where the budget starts to bind, in requests of the window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marks {
    /// Below this many left, what is left is spread over the time to the reset.
    low: u32,
    /// Never spent: the standing reserve.
    reserve: u32,
    /// The limiter's spacing: whether this run alone could outrun the quota.
    interval: Duration,
    /// How old a count may be by the time the request paced from it
    /// arrives: the answers' latency spread and one interval.
    stale: Duration,
}

impl Marks {
    /// The marks for pacing at `rate` against the API's `quota` (the rate's
    /// own count while the API has not said), answers arriving within
    /// `spread` of each other.
    pub(super) fn of(rate: Rate, quota: Option<u32>, spread: Duration) -> Marks {
        let quota = quota.unwrap_or(rate.count);
        let reserve = (f64::from(quota) * STANDING_RESERVE).ceil().max(1.0) as u32;
        let interval = rate.interval();
        Marks { low: (rate.count / 20).max(2), reserve, interval, stale: spread + interval }
    }
}

/// A request let through the budget, to be let go or abandoned: which
/// count it was claimed against decides what abandoning it gives back.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(super) struct Claim {
    reading: u64,
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

/// What the budget allows as of a moment.
#[derive(Debug, Clone, Copy)]
struct Spendable {
    /// Requests that may go now, the reserve kept back.
    requests: u32,
    /// When the next slot surely frees, or when to look again if only news
    /// will free one.
    next_free: Instant,
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
pub(super) struct Budget {
    snapshot: Option<Snapshot>,
    /// How many counts have been read: a claim made before the latest was
    /// counted in its `owed`, one made since in its `sent_since`.
    readings: u64,
    /// Let through the budget and waiting for the limiter.
    queued: u32,
    /// Sent and not yet answered.
    in_flight: u32,
    /// The earliest the next request may go while the budget is spread.
    next: Option<Instant>,
    /// This run's answered requests that may still count in the window or
    /// may yet free a slot, in the order answered: bounded by what one
    /// window holds, or by [`UNWINDOWED`] while the API names none.
    ours: VecDeque<Counted>,
    /// Another tool spending the same quota, if one does.
    share: Share,
    /// The quota the API's counts are out of: the tightest in force.
    policy: Option<Policy>,
    /// How far below that quota a 429 showed the API to enforce: never
    /// spent of what its counts say is left.
    shortfall: u32,
    /// When the quota in force last changed.
    requoted: Option<Instant>,
    /// Whether the API's window has been seen to reset as a fixed window
    /// does: between two answers the count went down while the reset jumped
    /// back up to half the window or more. From then on a slot this run
    /// frees is not reused early, since this run's requests of the previous
    /// window were never in the count; and only this run's requests since
    /// the window began are told apart from another tool's. Before the
    /// first reset, every request of this run is in the window, and a slot
    /// taken to free at its answer plus the window frees at the reset or
    /// later, so a sliding window can safely be assumed until then.
    ///
    /// Held as the instant that window resets, and given up when a later
    /// count resets off the boundaries a fixed window would keep: a sliding
    /// window also jumps after a long pause, and a run that went on taking
    /// it for a fixed one would book its own requests as another tool's.
    fixed: Option<Span>,
    /// Other runs' sends of this credential, from the ledger: counted by
    /// the API as this user's, they are told apart from another tool's.
    remembered: Vec<Instant>,
}

impl Budget {
    #[cfg(test)]
    pub(super) fn shortfall(&self) -> u32 {
        self.shortfall
    }

    /// Whether a low budget is spread: when another tool shares the quota,
    /// or when this run's own pace is faster than the quota allows.
    fn crowded(&self, marks: Marks) -> bool {
        let outpaces = self.policy.is_some_and(|p| marks.interval.checked_mul(p.quota).is_none_or(|w| w < p.window));
        self.share.is_shared() || outpaces
    }

    /// This run's requests that were surely counted in `snapshot` and
    /// surely still in the window then: the slots they free are not in its
    /// count. As `answered` indexes, oldest first. None sent before the
    /// quota last changed: they were counted against that one.
    fn in_snapshot(&self, snapshot: &Snapshot, window: Duration) -> impl Iterator<Item = &Counted> {
        let horizon = snapshot.of.answered.checked_sub(window);
        let from = horizon.map_or(0, |h| self.ours.partition_point(|c| c.answered <= h));
        let to = self.ours.partition_point(|c| c.answered <= snapshot.of.sent);
        let requoted = self.requoted;
        self.ours
            .range(from..to.max(from))
            .filter(move |c| c.surely && horizon.is_none_or(|h| c.sent > h) && requoted.is_none_or(|r| c.sent >= r))
    }

    /// The next slot the share allows. When the other tool seems to leave
    /// no room, no later than the latest count's reset: its requests may
    /// leave the window then, and only a fresh count can tell.
    fn share_slot(&self) -> Option<Instant> {
        let slot = self.share.next_slot()?;
        let reset = self.snapshot.filter(|_| self.share.is_full()).map(|s| s.reset_at);
        Some(reset.map_or(slot, |reset| slot.min(reset)))
    }

    /// What the budget allows as of `now`, if the API has said anything.
    fn spendable(&self, now: Instant, marks: Marks) -> Option<Spendable> {
        let snapshot = self.snapshot?;
        let reset = snapshot.reset_at <= now;
        let (freed, leaves) = self.freed(&snapshot, now);
        let crowded = self.crowded(marks);
        let mut next_free = if reset { now + NEWS_WAIT } else { snapshot.reset_at };
        // With another tool at work, a slot this run frees may well go to
        // that tool: then only the reset (or a fresh answer) frees any.
        let freed_for_us = if crowded { 0 } else { freed };
        if let Some(leaves) = leaves.filter(|_| !crowded) {
            next_free = next_free.min(leaves);
        }
        let owed = [snapshot.sent_since, marks.reserve].into_iter().fold(snapshot.owed, u32::saturating_add);
        let kept = owed.saturating_add(self.shortfall).saturating_add(self.kept_for_others(&snapshot, now, marks));
        let mut requests = snapshot.left.saturating_add(freed_for_us).saturating_sub(kept);
        if reset && requests == 0 && self.may_probe(&snapshot, now, marks, freed, owed) {
            // The window has reset, but a sliding one has lost only its
            // oldest request: beyond the slots this run's own requests surely
            // freed, one request asks, the rest wait for its answer.
            requests = u32::from(self.in_flight + self.queued == 0);
        }
        Some(Spendable { requests, next_free })
    }

    /// How many of this run's requests in `snapshot` have surely left a
    /// sliding window by `now`, and when the next one does.
    fn freed(&self, snapshot: &Snapshot, now: Instant) -> (u32, Option<Instant>) {
        let Some(policy) = self.policy.filter(|_| self.fixed.is_none()) else {
            return (0, None);
        };
        let mut freed = 0;
        for counted in self.in_snapshot(snapshot, policy.window) {
            let leaves = counted.answered + policy.window;
            if leaves > now {
                return (freed, Some(leaves));
            }
            freed += 1;
        }
        (freed, None)
    }

    /// The policy of a window taken for sliding that another tool shares:
    /// only there are slots kept for it, and a probe held for it.
    fn sliding_beside_another_tool(&self) -> Option<Policy> {
        self.policy.filter(|_| self.share.is_shared() && self.fixed.is_none())
    }

    /// Slots kept back, beyond the reserve, for another tool on a sliding
    /// window: for one that burst lately, its next burst (after a first
    /// one, up to a twentieth of the quota); for one whose variation is
    /// known, the most its count may rise before this run's requests leave
    /// to make room (its surge), and at least what it sends until the
    /// count's reset, before which nothing leaves the window at all. A
    /// header in whole seconds may round that reset up by most of a second.
    fn kept_for_others(&self, snapshot: &Snapshot, now: Instant, marks: Marks) -> u32 {
        let Some(policy) = self.sliding_beside_another_tool() else {
            return 0;
        };
        // A tool that bursts lately is not watched, so at most one of these
        // applies.
        if !self.share.is_watched() {
            return self.share.burst_hold();
        }
        let rounding = if snapshot.reset.subsec_nanos() == 0 { ROUNDING } else { Duration::ZERO };
        let quiet = snapshot.reset_at.saturating_duration_since(now).saturating_sub(rounding);
        let arriving = (self.share.rate() * quiet.as_secs_f64()).round() as u32;
        self.surge(snapshot, now, policy, marks, SURGE_DEVIATIONS).max(arriving)
    }

    /// Whether a probe may go once the count's reset has passed with
    /// nothing left to spend: always alone, on a fixed window (whose reset
    /// frees it all) or beside a tool not yet watched for a span, and once
    /// the count is a window old; otherwise only if the count, with the
    /// reset's slot and those `freed` by this run's requests since, had
    /// room beyond what it `owed` and the reserve, and beyond the surge of
    /// a tool whose variation is known. Beside a tool at work, the slot a
    /// reset frees is often its.
    fn may_probe(&self, snapshot: &Snapshot, now: Instant, marks: Marks, freed: u32, owed: u32) -> bool {
        let Some(policy) = self.sliding_beside_another_tool() else {
            return true;
        };
        if !self.share.is_measured() || snapshot.of.answered + policy.window <= now {
            return true;
        }
        let room = snapshot.left.saturating_add(freed).saturating_add(1).saturating_sub(owed);
        let surge =
            if self.share.is_watched() { self.surge(snapshot, now, policy, marks, PROBE_DEVIATIONS) } else { 0 };
        room > surge
    }

    /// The slots kept for another tool's count rising by chance before this
    /// run's requests leave to make room: its surge from the count until a
    /// request sent now arrives, and from then until each of this run's
    /// requests leaves the window (each one that leaves makes room for one
    /// more of the other's), whichever needs the most. On a sliding window
    /// this run fills at a steady pace, its oldest leaves within a spacing
    /// and the surge is short; in its first window none leaves before the
    /// window has passed.
    fn surge(&self, snapshot: &Snapshot, now: Instant, policy: Policy, marks: Marks, deviations: f64) -> u32 {
        let surge = |horizon| self.share.surge(horizon, deviations);
        let age = now.saturating_duration_since(snapshot.of.sent) + marks.stale;
        let most = surge(age + policy.window);
        // This run's requests that will surely leave the window, and when.
        let leaving = self.ours.iter().filter(|c| c.surely).map(|c| c.answered + policy.window).filter(|&l| l > now);
        let mut kept = surge(age);
        let mut all = 0;
        for (gone, leaves) in leaving.enumerate() {
            // Just before it leaves, `gone` of this run's have made room.
            if gone as f64 >= most {
                break;
            }
            kept = kept.max(surge(age + (leaves - now)) - gone as f64);
            all = gone + 1;
        }
        // Once every one of them has left, the surge may still go on.
        kept.max(most - all as f64).ceil() as u32
    }

    /// When the budget lets the next request go: no sooner than others'
    /// share allows; at zero, when a slot surely frees; when crowded and
    /// below the low mark, the next spread slot.
    pub(super) fn earliest(&self, now: Instant, marks: Marks) -> Instant {
        let shared = self.share_slot().map_or(now, |slot| slot.max(now));
        match self.spendable(now, marks) {
            None => shared,
            Some(Spendable { requests: 0, next_free }) => next_free.max(shared),
            Some(Spendable { requests, .. }) if requests >= marks.low || !self.crowded(marks) => shared,
            Some(_) => self.next.map_or(shared, |next| next.max(shared)),
        }
    }

    /// Counts a request let through at `now`, to be sent once the limiter
    /// allows; when crowded and below the low mark, the next one is spaced
    /// so what is left lasts until the reset.
    pub(super) fn claimed(&mut self, now: Instant, marks: Marks) -> Claim {
        self.queued += 1;
        if let Some(snapshot) = &mut self.snapshot {
            snapshot.sent_since += 1;
        }
        self.next = match self.spendable(now, marks).map(|s| s.requests) {
            Some(spendable) if spendable > 0 && spendable < marks.low && self.crowded(marks) => {
                let reset_at = self.snapshot.map_or(now, |s| s.reset_at);
                Some(now + reset_at.saturating_duration_since(now) / spendable)
            }
            _ => None,
        };
        Claim { reading: self.readings }
    }

    /// When a spent budget next frees a slot, if it is spent: a stall, as
    /// opposed to the pace, and said when long.
    pub(super) fn spent_until(&self, now: Instant, marks: Marks) -> Option<Instant> {
        self.spendable(now, marks).filter(|s| s.requests == 0).map(|s| s.next_free)
    }

    /// Takes the send slot for a claimed request if the spacing that
    /// leaves another tool its share allows it now, and then `limited`
    /// grants it too (asked last, as it takes what it grants); otherwise
    /// says when to look again. Nothing is booked ahead: the share may
    /// change with the next answer, and a slot booked on a stale estimate
    /// could be minutes away.
    pub(super) fn take_slot(&mut self, now: Instant, limited: impl FnOnce() -> Result<(), Instant>) -> Option<Instant> {
        if let Some(slot) = self.share_slot().filter(|&slot| slot > now) {
            return Some(slot);
        }
        if let Err(at) = limited() {
            return Some(at);
        }
        self.share.sent(now);
        None
    }

    /// A claimed request goes out.
    pub(super) fn let_go(&mut self) {
        self.queued = self.queued.saturating_sub(1);
        self.in_flight += 1;
    }

    /// A claimed request will not go out after all: it is given back to
    /// the count it was claimed against, or to the one that took it as owed.
    pub(super) fn abandoned(&mut self, claim: Claim) {
        self.queued = self.queued.saturating_sub(1);
        if let Some(snapshot) = &mut self.snapshot {
            if claim.reading == self.readings {
                snapshot.sent_since = snapshot.sent_since.saturating_sub(1);
            } else {
                snapshot.owed = snapshot.owed.saturating_sub(1);
            }
        }
    }

    /// A request is no longer in flight, whatever its answer; the policy in
    /// force, if any, is the one counted with. All a 429 tells the budget:
    /// the server refused the request without counting it.
    fn settled(&mut self, policy: Option<Policy>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.policy = policy.or(self.policy);
    }

    /// Whether the API's count is what the budget spends from.
    pub(super) fn counts(&self) -> bool {
        self.snapshot.is_some()
    }

    /// This run's requests answered (not refused) and sent within `window`
    /// of `now`.
    pub(super) fn answered_within(&self, window: Duration, now: Instant) -> u32 {
        // In the order answered, not sent: a straggler may sit among them.
        self.ours.iter().filter(|c| c.sent + window > now).count() as u32
    }

    /// What the latest count, if still current, says the API had surely
    /// let through in the window, out of `quota`: requests of this run's in
    /// flight then may never have been counted, so they are not added.
    pub(super) fn surely_counted(&self, now: Instant, quota: u32) -> Option<u32> {
        self.counted_if(quota, |s| s.reset_at > now)
    }

    /// What the latest count said the API had let through in the window,
    /// current or not, if it came within a window of `now`.
    pub(super) fn last_counted(&self, now: Instant, quota: u32, window: Duration) -> Option<u32> {
        self.counted_if(quota, |s| s.of.answered + window > now)
    }

    /// What the latest count said the API had let through, out of `quota`,
    /// if that count is still `good`.
    fn counted_if(&self, quota: u32, good: impl FnOnce(&Snapshot) -> bool) -> Option<u32> {
        self.snapshot.filter(good).map(|s| quota.saturating_sub(s.left))
    }

    /// A 429 settles its request like any answer, under the policy it
    /// carried (a change of quota included); the API did not count it.
    pub(super) fn refused(&mut self, policy: Option<Policy>, now: Instant) {
        self.requota(policy, now);
        self.settled(policy);
    }

    /// A 429 showed the API to enforce `shortfall` fewer requests a window
    /// than its policy says.
    pub(super) fn learned(&mut self, shortfall: u32) {
        self.shortfall = self.shortfall.max(shortfall);
    }

    /// Records the answer to a request sent at `sent`: its rate-limit
    /// headers, if it had any. Each step below reads what the ones before
    /// it left.
    pub(super) fn answered(
        &mut self,
        sent: Instant,
        remaining: Option<Remaining>,
        policy: Option<Policy>,
        now: Instant,
        marks: Marks,
    ) {
        self.settle(sent, Some(remaining), policy, now, marks);
    }

    /// Records a request sent at `sent` that got no answer at all (a
    /// timeout, a reset connection): it is no longer in flight, but it says
    /// nothing of the count, which stays as the last answer left it.
    pub(super) fn unanswered(&mut self, sent: Instant, now: Instant, marks: Marks) {
        self.settle(sent, None, None, now, marks);
    }

    /// Both of the above: `reply` is the answer's count, if there was an
    /// answer.
    fn settle(
        &mut self,
        sent: Instant,
        reply: Option<Option<Remaining>>,
        policy: Option<Policy>,
        now: Instant,
        marks: Marks,
    ) {
        let replied = reply.is_some();
        let remaining = reply.flatten();
        self.requota(policy, now);
        self.settled(policy);
        let of = Counted { sent, answered: now, surely: remaining.is_some() };
        // A late answer to a request sent before the latest count's is older
        // news: taken only if it leaves less to spend. Whether that request
        // is in the fresher count cannot be told (on a sliding window the
        // count also rises as old requests leave), so it stays owed.
        let remaining = remaining.filter(|r| {
            self.snapshot.is_none_or(|s| of.sent >= s.of.sent || r.requests < s.left.saturating_sub(s.sent_since))
        });
        match remaining {
            Some(remaining) => self.read(of, remaining),
            // A count that has reset and is not renewed says nothing any more:
            // an API that stopped sending one is paced as one that never did.
            None if replied && self.snapshot.is_some_and(|s| sent > s.reset_at) => self.snapshot = None,
            None => {}
        }
        self.ours.push_back(of);
        // Who else spends the quota, and which slots free, can be told only
        // against the window the API counts in; without one, the latest
        // answers still tell which requests a count may be missing.
        let Some(policy) = self.policy else {
            if self.ours.len() > UNWINDOWED {
                self.ours.pop_front();
            }
            return;
        };
        self.prune(of, policy);
        if let Some(remaining) = remaining {
            self.observe_others(remaining, policy, now, marks);
        }
    }

    /// A quota other than the one counted with so far: this run's requests
    /// were counted against that one, so no slot of it frees in this one.
    fn requota(&mut self, policy: Option<Policy>, now: Instant) {
        if policy.is_some_and(|new| self.policy.is_some_and(|old| old != new)) {
            self.requoted = Some(now);
        }
    }

    /// Takes an answer's count as the snapshot to spend from, once it has
    /// been asked whether the count shows a fixed window's reset.
    fn read(&mut self, of: Counted, remaining: Remaining) {
        // Answered after this request was sent: perhaps not yet counted
        // when the server handled it.
        let answered_since = self.ours.len() - self.ours.partition_point(|c| c.answered <= of.sent);
        let owed = self.in_flight.saturating_add(self.queued).saturating_add(answered_since as u32);
        // A reset beyond the window would be a garbled header, and one
        // beyond the longest wait is clipped like a `Retry-After`.
        let reset = self.policy.map_or(remaining.reset, |p| remaining.reset.min(p.window)).min(LONGEST_WAIT);
        let left = remaining.requests;
        self.tell_window_kind(of, left, reset);
        self.readings += 1;
        self.snapshot = Some(Snapshot { left, reset, reset_at: of.answered + reset, of, owed, sent_since: 0 });
    }

    /// Forgets this run's requests gone from every window the answer to
    /// `of` (or, without a count, the latest that can still matter)
    /// describes.
    fn prune(&mut self, of: Counted, policy: Policy) {
        let horizon = if of.surely { Some(of.sent) } else { of.answered.checked_sub(policy.window) };
        while self.ours.front().zip(horizon).is_some_and(|(c, h)| c.answered + policy.window <= h) {
            self.ours.pop_front();
        }
    }

    /// Tells the share what the server counted that this run did not
    /// send: another tool's use of the quota. Anything of this run's that
    /// may still be in the window counts as ours, so others come out low
    /// rather than high; the headroom covers that.
    fn observe_others(&mut self, remaining: Remaining, policy: Policy, now: Instant, marks: Marks) {
        let counted = policy.quota.saturating_sub(remaining.requests);
        let in_window = match self.snapshot.filter(|_| self.fixed.is_some()) {
            Some(snapshot) => {
                let began = snapshot.reset_at.checked_sub(policy.window);
                self.ours.len() - began.map_or(0, |began| self.ours.partition_point(|c| c.answered <= began))
            }
            None => self.ours.len(),
        };
        // Other runs of this credential: this user's own, not a stranger's.
        let runs = self.remembered.iter().filter(|&&sent| sent + policy.window > now).count();
        let ours = self.in_flight.saturating_add(in_window as u32).saturating_add(runs as u32);
        let others = counted.saturating_sub(ours);
        self.share.observed(others, self.in_flight, policy, now, marks.reserve, marks.stale);
    }

    /// Sends of this credential by other runs, from the ledger: this user's
    /// own history. Kept for as long as any window can hold them.
    pub(super) fn remember(&mut self, sends: &[Instant], now: Instant) {
        let window = self.policy.map_or(LONGEST_WAIT, |p| p.window);
        let recent = |sent: &Instant| *sent + window > now;
        self.remembered.retain(recent);
        self.remembered.extend(sends.iter().copied().filter(recent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::{ms, policy, remaining};

    fn send(budget: &mut Budget, at: Instant, marks: Marks) {
        let _ = budget.claimed(at, marks);
        assert_eq!(budget.take_slot(at, || Ok(())), None, "the test sends no sooner than the share allows");
        budget.let_go();
    }

    /// A run whose own pace could never outrun the quota.
    const ALONE: Marks = Marks { low: 120, reserve: 1, interval: Duration::from_secs(300), stale: ms(500) };
    /// A run whose `--rate` asks for more than the API allows.
    const OUTPACING: Marks = Marks { interval: Duration::from_millis(1), ..ALONE };

    #[test]
    fn another_consumer_is_left_its_share() {
        let now = Instant::now();
        let mut budget = Budget { policy: policy(100), ..Budget::default() };
        for i in 0..10 {
            send(&mut budget, now + ms(i), ALONE);
        }
        for i in 0..9 {
            budget.answered(now + ms(i), None, None, now + ms(10), ALONE);
        }
        // The server counts 60 of 100 used; this run sent 10: another tool
        // used 50, so this run paces at what the other leaves, less the
        // reserve and what the other may spend while a count is half a
        // second old, twice over (under one, so one): 48 per 300 s.
        let seen = now + ms(20);
        budget.answered(now + ms(9), remaining(40, 300), None, seen, ALONE);
        assert_eq!(budget.earliest(seen, ALONE), now + ms(9) + Duration::from_secs(300).div_f64(48.0));
    }

    #[test]
    fn the_run_before_with_the_same_credential_is_no_stranger() {
        let t0 = Instant::now();
        let first_answer = |budget: &mut Budget| {
            send(budget, t0, ALONE);
            // 61 of 100 used: this request, and 60 of the run before.
            budget.answered(t0, remaining(39, 300), policy(100), t0 + ms(5), ALONE);
        };
        let mut unaware = Budget::default();
        first_answer(&mut unaware);
        assert!(unaware.share.is_shared(), "taken for another tool");
        let mut told = Budget::default();
        told.remember(&(0..60).map(|i| t0 - Duration::from_secs(100) + ms(i)).collect::<Vec<_>>(), t0);
        first_answer(&mut told);
        assert!(!told.share.is_shared(), "the run before is this user's own");
        assert_eq!(told.earliest(t0 + ms(5), ALONE), t0 + ms(5), "no spacing kept against it");
    }

    #[test]
    fn a_tool_that_starts_with_this_run_is_expected_to_keep_going() {
        let t0 = Instant::now();
        let mut budget = Budget::default();
        send(&mut budget, t0, ALONE);
        budget.answered(t0, remaining(99, 300), policy(100), t0, ALONE);
        assert_eq!(budget.earliest(t0, ALONE), t0, "nobody else yet");
        // A fifth of the window in, another tool has used 15: it will use 75
        // in a whole one at that pace, which leaves this run 23 once the
        // reserve and the headroom for its spending meanwhile are kept.
        let later = t0 + Duration::from_secs(60);
        send(&mut budget, later, ALONE);
        budget.answered(later, remaining(83, 300), None, later, ALONE);
        assert_eq!(budget.earliest(later, ALONE), later + Duration::from_secs(300).div_f64(23.0));
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
    fn past_the_reset_the_slots_this_run_surely_freed_are_not_held_for_one_answer() {
        let t0 = Instant::now();
        let window = Some(Policy { quota: 10, window: Duration::from_secs(2) });
        let mut budget = Budget::default();
        for (i, left) in (5..10).rev().enumerate() {
            let sent = t0 + ms(10 * i as u64);
            send(&mut budget, sent, ALONE);
            budget.answered(sent, remaining(left, 2), window, sent + ms(5), ALONE);
        }
        // Past the reset and past every answer plus the window, one request
        // asks (a slow answer, still in flight). The four the latest count
        // surely held have left: with its five left, less the one asking and
        // the reserve, seven more may go, not none until that answer.
        let later = t0 + ms(2500);
        send(&mut budget, later, ALONE);
        assert_eq!(budget.spendable(later, ALONE).map(|s| s.requests), Some(7));
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
            let _ = budget.claimed(sent, ALONE);
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
        assert!(sliding.fixed.is_none());
        // The count comes back as the reset jumps up to the whole window,
        // and later counts keep to its boundaries.
        let mut fixed = Budget::default();
        readings(&mut fixed, t0, 100, &[(5, 2), (4, 1), (99, 10), (98, 9), (97, 8), (96, 7)]);
        assert!(fixed.fixed.is_some());
    }

    #[test]
    fn a_sliding_window_that_jumped_after_a_pause_is_not_taken_for_fixed_for_long() {
        let t0 = Instant::now();
        let mut budget = Budget::default();
        // After a pause the reset jumps to the window (as a fixed one's
        // would); then, requests going every second, it stays about a window
        // away instead of counting down to the boundary.
        readings(&mut budget, t0, 100, &[(5, 2), (4, 1), (99, 10), (98, 10)]);
        assert!(budget.fixed.is_some(), "one jump looks like a fixed window");
        readings(&mut budget, t0 + Duration::from_secs(4), 100, &[(97, 10), (96, 10)]);
        assert!(budget.fixed.is_none(), "a reset that keeps moving is a sliding window's");
    }

    #[test]
    fn on_a_fixed_window_no_slot_frees_before_the_reset() {
        let t0 = Instant::now();
        let window = Some(Policy { quota: 3, window: Duration::from_secs(2) });
        let spent = |fixed: bool| {
            let mut budget = Budget { fixed: fixed.then_some(Span { from: t0, to: t0 }), ..Budget::default() };
            for (i, left) in [2, 1, 0].into_iter().enumerate() {
                let sent = t0 + ms(20 * i as u64);
                let _ = budget.claimed(sent, ALONE);
                budget.let_go();
                budget.answered(sent, remaining(left, 2), window, sent + ms(10), ALONE);
            }
            budget.share = Share::default();
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
        // With the window named, and with a count but no window.
        for policy in [policy(7), None] {
            let t0 = Instant::now();
            let mut budget = Budget::default();
            send(&mut budget, t0, ALONE);
            send(&mut budget, t0 + ms(1), ALONE);
            // The second is answered first, and its count may not hold the
            // first, still in flight; the first's answer arrives later with
            // more left, which is older news: the first stays owed.
            budget.answered(t0 + ms(1), remaining(5, 300), policy, t0 + ms(2), ALONE);
            budget.answered(t0, remaining(6, 300), policy, t0 + ms(3), ALONE);
            let spendable = budget.spendable(t0 + ms(3), ALONE).map(|s| s.requests);
            assert_eq!(spendable, Some(3), "5 less the first, less reserve: {policy:?}");
            send(&mut budget, t0 + ms(4), ALONE);
            assert_eq!(budget.spendable(t0 + ms(4), ALONE).map(|s| s.requests), Some(2));
        }
    }

    fn answer(budget: &mut Budget, sent: Instant, answered: Instant, left: u32, reset: Duration, p: Policy) {
        let _ = budget.claimed(sent, ALONE);
        budget.let_go();
        budget.answered(sent, Some(Remaining { requests: left, reset }), Some(p), answered, ALONE);
    }

    /// A fixed window of 4 per 20 s whose boundary is at 20 s, on a server
    /// that rounds its reset down (`floor`) or to nearest rather than up.
    /// Each answer's own `answered + reset` is then early by up to a second
    /// less its latency, so a slow answer's reset falls after the boundary
    /// while a quick one's falls before it. Keeping the earliest of a
    /// window's resets (tried, to pin a fixed window's boundary) sent the
    /// probe that goes "at the reset" (nothing left, nothing in flight)
    /// before the boundary, into a window with 0 left: a 429. The latest
    /// count's own reset is kept. `(sent, answered, left, reset)` of two
    /// answers; returns when the next request may go, and the boundary.
    fn probe_after_rounded_counts(counts: [(f64, f64, u32, u64); 2]) -> (Duration, Duration) {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let p = Policy { quota: 4, window: Duration::from_secs(20) };
        let mut b = Budget { fixed: Some(Span { from: t0, to: t0 }), ..Budget::default() };
        for (sent, answered, left, reset) in counts {
            answer(&mut b, s(sent), s(answered), left, Duration::from_secs(reset), p);
        }
        let after = counts[1].1;
        (b.earliest(s(after), ALONE) - t0, Duration::from_secs(20))
    }

    #[test]
    fn a_server_rounding_its_reset_down_or_to_nearest_is_not_probed_before_the_boundary() {
        for (rounding, counts) in [
            // floor(20 - 0.05) = 19 at 0.05 (answered at once): 19.051, early;
            // floor(20 - 0.9) = 19 at 0.9, answered at 1.5: 20.5, after.
            ("floor", [(0.05, 0.051, 1, 19), (0.9, 1.5, 0, 19)]),
            // round(20 - 0.6) = 19 at 0.6 (answered at once): 19.601, early;
            // round(20 - 0.7) = 19 at 0.7, answered at 1.3: 20.3, after.
            ("nearest", [(0.6, 0.601, 1, 19), (0.7, 1.3, 0, 19)]),
        ] {
            let (probe, boundary) = probe_after_rounded_counts(counts);
            assert!(
                probe >= boundary,
                "{rounding}: probe into an exhausted fixed window at {probe:?}, before {boundary:?}"
            );
        }
    }

    /// A sliding window of 4 per 20 s (not taken for fixed), its
    /// resets rounded UP as the header does. Another tool sent O1 at 0.0; this
    /// run's A, handled at 1.1 (O1 and A in the window: 2 left, O1 leaves
    /// in ceil(18.9) = 19 s), is answered slowly at 1.6: reset at 20.6.
    /// O1 leaves at 20.0; the other tool sends O2 and O3 by 20.1, so this
    /// run's B, handled at 20.2, sees 0 left (A, O2, O3, B), resetting when
    /// A leaves at 21.1 (ceil(0.9) = 1 s). The count went down by B though a
    /// request left the window (the other tool refilled it), so a rule that
    /// takes a count that went down for the same window, and keeps the
    /// earlier reset (tried), kept A's, 20.6: the probe at the reset went
    /// then, into a full window (429). B's own reset (21.2), after A has
    /// left, is the one kept.
    #[test]
    fn a_sliding_window_refilled_by_another_tool_keeps_its_own_reset() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let p = Policy { quota: 4, window: Duration::from_secs(20) };
        let mut b = Budget::default();
        answer(&mut b, s(1.1), s(1.6), 2, Duration::from_secs(19), p);
        answer(&mut b, s(20.2), s(20.21), 0, Duration::from_secs(1), p);
        let probe = b.earliest(s(20.21), ALONE);
        assert!(probe >= s(21.1), "probe into a full sliding window at {:?}, before A leaves at 21.1 s", probe - t0);
    }

    /// A fixed window of 10 per 20 s, resetting at 20 s and 40 s, exact
    /// (fractional) resets: three requests in [0, 20), then in [20, 40) the
    /// two `(sent, answered)` first answers and seven more. Returns when the
    /// budget lets the next request go after the last of them, at 38.01 s.
    fn next_after_a_fixed_window_with(first: (f64, f64), second: (f64, f64)) -> Duration {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let p = Policy { quota: 10, window: Duration::from_secs(20) };
        let mut b = Budget::default();
        let until = |at: f64, b: f64| Duration::from_secs_f64(b - at);
        for (sent, left) in [(10.0, 9), (19.0, 8), (19.5, 7)] {
            answer(&mut b, s(sent), s(sent + 0.01), left, until(sent, 20.0), p);
        }
        answer(&mut b, s(first.0), s(first.1), 9, until(first.0, 40.0), p);
        assert!(b.fixed.is_some(), "the jump is taken for a fixed window");
        answer(&mut b, s(second.0), s(second.1), 8, until(second.0, 40.0), p);
        for (i, sent) in [32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0].into_iter().enumerate() {
            answer(&mut b, s(sent), s(sent + 0.01), 7 - i as u32, until(sent, 40.0), p);
        }
        b.earliest(s(38.01), ALONE) - t0
    }

    /// One answer whose way back took 2 s puts its reset 2 s off the
    /// boundary; taking the window for a sliding one then would let the
    /// previous window's requests "leave" inside this one, freeing slots
    /// that were never in its count. 9 of 10 used, one kept in reserve:
    /// nothing may go before 40 s.
    #[test]
    fn one_slow_answer_does_not_make_a_fixed_window_free_slots_it_never_counted() {
        let next = next_after_a_fixed_window_with((20.5, 20.51), (21.0, 23.0));
        assert!(next >= Duration::from_secs(40), "{next:?}");
    }

    /// The same when the slow answer is the one that shows the jump: the
    /// boundary is held as the span its reset may fall in, so the next fast
    /// answer, exactly on the true boundary, is on it.
    #[test]
    fn a_slow_first_answer_of_a_fixed_window_does_not_make_the_next_look_off_its_boundary() {
        let next = next_after_a_fixed_window_with((20.5, 23.0), (23.1, 23.11));
        assert!(next >= Duration::from_secs(40), "{next:?}");
    }

    /// A change of the quota in force (a tighter one announced, or one
    /// expiring) keeps this run's requests: were they forgotten, the count
    /// would book them as another tool's, and the run would space against
    /// itself.
    #[test]
    fn a_change_of_quota_does_not_book_this_runs_requests_as_another_tools() {
        let t0 = Instant::now();
        let first = Policy { quota: 100, window: Duration::from_secs(300) };
        let tighter = Policy { quota: 90, window: Duration::from_secs(300) };
        let mut b = Budget::default();
        for i in 0..50u32 {
            let at = t0 + Duration::from_secs(u64::from(i));
            answer(&mut b, at, at + ms(10), 99 - i, Duration::from_secs(300 - u64::from(i)), first);
        }
        assert!(!b.share.is_shared(), "alone so far");
        let at = t0 + Duration::from_secs(50);
        answer(&mut b, at, at + ms(10), 90 - 51, Duration::from_secs(250), tighter);
        assert!(!b.share.is_shared(), "nobody else spent anything, yet shared: {:?}", b.share);
    }

    /// An answer that arrives late, to a request handled before another
    /// tool's burst, must not replace the fresher count that showed the
    /// burst, or the budget would spend again what the burst took.
    #[test]
    fn a_late_answer_does_not_undo_a_fresher_count() {
        let t0 = Instant::now();
        let p = Policy { quota: 100, window: Duration::from_secs(300) };
        let mut b = Budget::default();
        let reset = |at: Instant| Duration::from_secs(300) - (at - t0);
        // A: sent at t0, handled at once with 90 left, answered 12 s later.
        let _ = b.claimed(t0, ALONE);
        b.let_go();
        // Meanwhile another tool takes 79; this run's next ten see it.
        for i in 1..=10u32 {
            let at = t0 + Duration::from_secs(u64::from(i));
            answer(&mut b, at, at + ms(10), 90 - 79 - i, reset(at), p);
        }
        let now = t0 + Duration::from_secs(12);
        assert!(b.spent_until(now, ALONE).is_some(), "one left, kept in reserve");
        b.answered(t0, Some(Remaining { requests: 90, reset: Duration::from_secs(300) }), Some(p), now, ALONE);
        assert!(b.spent_until(now, ALONE).is_some(), "spendable {:?}", b.spendable(now, ALONE).map(|s| s.requests));
    }

    /// A late answer that leaves more than the latest count is not taken to
    /// have been in that count: on a sliding window the count also grows as
    /// old requests leave. Two requests sent before the latest count's but
    /// handled after three of this run's left stay owed, or the budget would
    /// spend one more than the window has.
    #[test]
    fn a_late_answer_on_a_sliding_window_is_not_struck_from_owed_when_it_was_not_in_the_count() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let p = Policy { quota: 10, window: Duration::from_secs(20) };
        let five = Duration::from_secs(5);
        let mut b = Budget::default();
        for (sent, left) in [(0.0, 9), (0.3, 8), (0.4, 7), (10.0, 6), (11.0, 5), (12.0, 4), (13.0, 3)] {
            answer(&mut b, s(sent), s(sent + 0.01), left, five, p);
        }
        // X1 and X2 go out, slow on the way in; S, sent after them, is handled
        // first: 8 in the window then (X1 and X2 not yet), 2 left.
        for sent in [19.8, 19.85] {
            let _ = b.claimed(s(sent), ALONE);
            b.let_go();
        }
        answer(&mut b, s(19.95), s(19.96), 2, five, p);
        // The first three have left by 20.41; X1 is handled at 20.6 (6 in the
        // window, 4 left), X2 at 20.7 (7 in the window, 3 left).
        b.answered(s(19.8), Some(Remaining { requests: 4, reset: five }), Some(p), s(20.61), ALONE);
        b.answered(s(19.85), Some(Remaining { requests: 3, reset: five }), Some(p), s(20.71), ALONE);
        // 3 left in truth, 1 kept in reserve: at most 2 may go.
        let spendable = b.spendable(s(20.71), ALONE).map(|s| s.requests);
        assert!(spendable <= Some(2), "spendable {spendable:?} with 3 left in the window and a reserve of 1");
    }

    /// Only an answer without a count drops the count: a transport error
    /// says nothing of whether the API still sends them. On a sliding window
    /// of 10 per 20 s holding 8 of this run's, the one request that asks
    /// after the reset gets a connection reset, and a `--rate` above the
    /// API's quota must still be held to what the window has.
    #[test]
    fn a_transport_error_after_the_reset_does_not_drop_the_count() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let p = Policy { quota: 10, window: Duration::from_secs(20) };
        let mut b = Budget::default();
        for i in 0..9u32 {
            let sent = f64::from(2 * i);
            // Sliding: the oldest (sent at 0) leaves at 20.
            answer(&mut b, s(sent), s(sent + 0.01), 9 - i, Duration::from_secs_f64(20.0 - sent), p);
        }
        // After the reset one asks, and its connection is reset.
        assert_eq!(b.spendable(s(20.05), OUTPACING).map(|s| s.requests), Some(1));
        let _ = b.claimed(s(20.05), OUTPACING);
        b.let_go();
        b.unanswered(s(20.05), s(20.1), OUTPACING);
        // 8 of 10 still in the window: at most 2 may go, 1 with the reserve.
        let mut went = 0;
        while went < 20 && b.earliest(s(20.1), OUTPACING) <= s(20.1) {
            let _ = b.claimed(s(20.1), OUTPACING);
            b.let_go();
            went += 1;
        }
        assert!(went <= 2, "{went} let go at once with 8 of 10 in the window");
    }

    /// A sliding window of 10 per 20 s taken for fixed: `(sent, answered,
    /// left, reset)` of two counts, then one a second from `from` until the
    /// window is at 3 left, each resetting at `oldest` (when this run's
    /// oldest in the window leaves); the other tool then sends its requests
    /// and this run's X, sent at `x`, fills the window, resetting `x_reset`
    /// later, when the next of this run's leaves. Returns when the request
    /// that asks after the reset goes, which must be no sooner than that.
    fn probe_in_a_sliding_window_taken_for_fixed(
        counts: [(f64, f64, u32, f64); 2],
        from: f64,
        oldest: f64,
        x: f64,
        x_reset: f64,
    ) -> (Duration, Duration) {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let d = Duration::from_secs_f64;
        let p = Policy { quota: 10, window: Duration::from_secs(20) };
        let mut b = Budget::default();
        for (sent, answered, left, reset) in counts {
            answer(&mut b, s(sent), s(answered), left, d(reset), p);
        }
        let mut left = counts[1].2;
        for i in 0.. {
            left -= 1;
            let sent = from + f64::from(i);
            answer(&mut b, s(sent), s(sent + 0.01), left, d(oldest - sent), p);
            if left == 3 {
                break;
            }
        }
        assert!(b.earliest(s(x), ALONE) <= s(x), "X may go: 3 left, one kept in reserve");
        answer(&mut b, s(x), s(x + 0.01), 0, d(x_reset), p);
        (b.earliest(s(x + 0.01), ALONE) - t0, Duration::from_secs_f64(x + x_reset))
    }

    /// Another tool's 5 requests at 0.0 leave together at 20.0: A (sent
    /// 19.9, 6 in the window, 4 left, reset 0.1) and B (sent and handled at
    /// 20.05, answered slowly at 20.85: A and B, 8 left, reset 19.85)
    /// bracket that, so a reset seen to pass would put the next in [39.9,
    /// 40.85]. C..G go at 21..25 s, each resetting when A leaves, 39.9: on
    /// that boundary. A leaves at 39.9, B at 40.05; the other tool sends 4
    /// at 40.2, and X at 40.3 resets when C leaves, at 41.0: within rounding
    /// of the boundary, so not off it. X's own reset is kept: the seen
    /// boundary (40.85) in its place (tried) had the probe go into a full
    /// window, a 429.
    #[test]
    fn a_sliding_window_taken_for_fixed_is_not_probed_at_a_seen_boundary_before_its_reset() {
        let counts = [(19.9, 19.91, 4, 0.1), (20.05, 20.85, 8, 19.85)];
        let (probe, leaves) = probe_in_a_sliding_window_taken_for_fixed(counts, 21.0, 39.9, 40.3, 0.7);
        assert!(probe >= leaves, "probe into a full sliding window at {probe:?}, before C leaves at {leaves:?}");
    }

    /// The same without any "seen" reset: the window jumps after a pause (A
    /// at 5.0 with another tool's 5 from 0.0 in the window: 4 left, reset
    /// 15; then B at 25.5, alone in it: 9 left, reset 20), so it is taken
    /// for fixed with its reset in [44.5, 46.51]. C..H go at 27..32 s,
    /// resetting when B leaves, 45.5; the other tool sends 3 at 45.6, and X
    /// at 45.7 resets when C leaves, at 47.0. The earlier of X's own reset
    /// and the boundary (46.51), tried, sent the probe half a second before
    /// C leaves, into a full window.
    #[test]
    fn a_sliding_window_taken_for_fixed_after_a_pause_is_not_probed_before_its_reset() {
        let counts = [(5.0, 5.01, 4, 15.0), (25.5, 25.51, 9, 20.0)];
        let (probe, leaves) = probe_in_a_sliding_window_taken_for_fixed(counts, 27.0, 45.5, 45.7, 1.3);
        assert!(probe >= leaves, "probe into a full sliding window at {probe:?}, before C leaves at {leaves:?}");
    }
}
