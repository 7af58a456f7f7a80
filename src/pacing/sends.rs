//! This run's sends, the one record the limiter reads two ways: how many a
//! window of sends holds (for a quota announced within it, or a change of
//! pace), and which requests the server may still be counting (for the
//! arrivals, which latency bunches up).
//!
//! A send is recorded under the same lock that grants its slot, so no other
//! worker is granted one in between on a record without it; a claim the
//! pause then sends back is taken out again.
//!
//! The server counts a request at some moment between its send and its
//! answer. So each request holds its slot of a window from its send until a
//! window after its answer (or after it was given up: a timeout, a 429), and
//! one still in flight holds it for as long as it is. If the requests
//! holding a slot never exceed the quota, no window of arrivals does either,
//! whatever the latency and however it splits between the way there and
//! the way back: of any window's arrivals, every other one arrived less than
//! a window before the last of them was sent, so it held a slot then. What
//! this costs is each request's own latency, not the slow tail's for every
//! request. Taking the fastest answer's latency off as the way back would
//! free slots sooner, but where one direction is slow for some requests and
//! the other for the rest, it frees them before the requests arrived.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::pace::Rate;

/// One of this run's requests.
#[derive(Debug, Clone, Copy)]
struct Send {
    at: Instant,
    /// Its answer, or when it was given up: the server counted it by then,
    /// if at all.
    done: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct SendRecord {
    /// In the order sent: each is granted under the lock, at its own `now`.
    sends: VecDeque<Send>,
}

/// What the record must still tell: the slots held at the pace's `rate`,
/// and the latest `most` sends within `longest`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    pub(super) rate: Rate,
    pub(super) most: usize,
    pub(super) longest: Duration,
}

impl SendRecord {
    /// A send slot granted at `at`.
    pub(super) fn sent(&mut self, at: Instant, kept: Kept) {
        debug_assert!(self.sends.back().is_none_or(|last| last.at <= at), "sends are looked up by time");
        self.sends.push_back(Send { at, done: None });
        self.forget(at, kept);
    }

    /// The request sent at `at` is done (answered or given up) at `now`.
    pub(super) fn done(&mut self, at: Instant, now: Instant) {
        if let Some(index) = self.pending(at) {
            self.sends[index].done = Some(now);
        }
    }

    /// The slot granted at `at` was not used after all.
    pub(super) fn withdrawn(&mut self, at: Instant) {
        if let Some(index) = self.pending(at) {
            self.sends.remove(index);
        }
    }

    /// A send granted at `at` not yet done, looked up by its time: the
    /// record holds a window's sends, a second's at a million a second,
    /// and the ones in flight are the latest. Sends granted at one instant
    /// are alike, so which of them is the one does not matter.
    fn pending(&self, at: Instant) -> Option<usize> {
        let first = self.sends.partition_point(|s| s.at < at);
        let mut same = self.sends.range(first..).take_while(|s| s.at == at);
        same.position(|s| s.done.is_none()).map(|i| first + i)
    }

    /// When the `n`th latest send went, if there were as many.
    pub(super) fn nth_latest(&self, n: usize) -> Option<Instant> {
        self.sends.len().checked_sub(n).map(|i| self.sends[i].at)
    }

    /// Drops what the record no longer needs, oldest first: a send that
    /// holds no slot any more and is neither among the latest `most` nor
    /// within `longest`.
    fn forget(&mut self, now: Instant, kept: Kept) {
        let window = kept.rate.paced_window();
        while self.sends.front().is_some_and(|s| {
            let left = s.done.is_some_and(|done| done + window <= now);
            left && (self.sends.len() > kept.most || s.at + kept.longest <= now)
        }) {
            self.sends.pop_front();
        }
    }

    /// When a request may next be sent for this run's arrivals (those sent
    /// `since`, if given) to keep within `kept.rate`: `now`, a later instant,
    /// or `None` if only an answer can free a slot.
    pub(super) fn room(&mut self, kept: Kept, since: Option<Instant>, now: Instant) -> Option<Instant> {
        self.forget(now, kept);
        let count = kept.rate.count as usize;
        // In the order sent, so those sent since are the last ones; fewer
        // of them than the quota hold no more, whatever they hold. That
        // saves a walk over the record at a pace far below the quota (a
        // million a second against the sandbox holds a second's sends).
        let first = since.map_or(0, |since| self.sends.partition_point(|s| s.at < since));
        if self.sends.len() - first < count {
            return Some(now);
        }
        let window = kept.rate.paced_window();
        let leaves = |s: &Send| s.done.map(|done| done + window);
        let counted = || self.sends.range(first..);
        let holding = counted().filter(|s| leaves(s).is_none_or(|at| at > now)).count();
        if holding < count {
            return Some(now);
        }
        // The next slot frees as the `over`th of them leaves; those in flight
        // leave last.
        let over = holding + 1 - count;
        let mut leaving: Vec<Instant> = counted().filter_map(leaves).filter(|&at| at > now).collect();
        if over > leaving.len() {
            return None;
        }
        Some(*leaving.select_nth_unstable(over - 1).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::ms;

    /// Kept for slots only: each paced over 1050 ms (the headroom's 50 ms
    /// at least).
    fn at(rate: &str) -> Kept {
        Kept { rate: rate.parse().unwrap(), most: 0, longest: Duration::ZERO }
    }

    #[test]
    fn a_slot_frees_a_window_after_its_request_was_answered() {
        let mut sends = SendRecord::default();
        let start = Instant::now();
        let at_ms = |n| start + ms(n);
        let kept = at("2/s");
        sends.sent(start, kept);
        sends.sent(start, kept);
        assert_eq!(sends.room(kept, None, start), None, "both in flight");
        sends.done(start, at_ms(10));
        assert_eq!(sends.room(kept, None, at_ms(10)), Some(at_ms(1060)));
        // One that took 300 ms may have arrived just before its answer.
        sends.done(start, at_ms(300));
        assert_eq!(sends.room(kept, None, at_ms(1100)), Some(at_ms(1100)));
        sends.sent(at_ms(1100), kept);
        assert_eq!(sends.room(kept, None, at_ms(1100)), Some(at_ms(1350)));
    }

    #[test]
    fn a_request_given_up_holds_its_slot_a_window_after_then() {
        let mut sends = SendRecord::default();
        let start = Instant::now();
        let kept = at("1/s");
        for _ in 0..2 {
            sends.sent(start, kept);
        }
        sends.done(start, start + ms(30_000));
        sends.done(start, start + ms(20));
        assert_eq!(sends.room(kept, None, start + ms(2000)), Some(start + ms(31_050)));
        // Requests of a window long gone are forgotten; another's `done`
        // finds nothing to settle.
        assert_eq!(sends.room(kept, None, start + ms(31_050)), Some(start + ms(31_050)));
        assert!(sends.sends.is_empty());
        sends.done(start, start + ms(31_060));
        assert!(sends.sends.is_empty());
    }

    /// A send whose slot has freed is still a send of its window: a quota
    /// announced over a longer window counts it.
    #[test]
    fn a_send_is_kept_for_the_longest_window_after_its_slot_frees() {
        let mut sends = SendRecord::default();
        let start = Instant::now();
        let kept = Kept { most: 1, longest: Duration::from_secs(10), ..at("1/s") };
        sends.sent(start, kept);
        sends.done(start, start + ms(10));
        assert_eq!(sends.room(kept, None, start + ms(5000)), Some(start + ms(5000)));
        assert_eq!(sends.nth_latest(1), Some(start));
        assert_eq!(sends.room(kept, None, start + ms(10_000)), Some(start + ms(10_000)));
        assert_eq!(sends.nth_latest(1), None);
    }

    #[test]
    fn a_withdrawn_slot_is_free_at_once_and_no_longer_a_send() {
        let mut sends = SendRecord::default();
        let start = Instant::now();
        let kept = Kept { most: 10, ..at("1/s") };
        sends.sent(start, kept);
        assert_eq!(sends.room(kept, None, start), None);
        sends.withdrawn(start);
        assert_eq!(sends.room(kept, None, start), Some(start));
        assert_eq!(sends.nth_latest(1), None);
    }
}
