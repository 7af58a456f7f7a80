//! This run's requests as the server may still be counting them: the pace
//! is kept in send times, the server counts arrival times, and a request
//! slow in the network arrives bunched up with the ones sent after it.
//!
//! The server counts a request at some moment between its send and its
//! answer; a request answered later than the fastest did may have spent
//! that much longer on the way there. So each request holds its slot of a
//! window from its send until a window after the latest it can have
//! arrived, its answer less the fastest answer's latency, and one still
//! in flight holds it for as long as it is. If the requests holding a slot
//! never exceed the quota, no window of arrivals does either, however the
//! latency is distributed: for the last sent of any window's arrivals,
//! every other one of them arrived less than a window before its send, so
//! held a slot then. What this costs is each request's own lateness over
//! the fastest, not the slow tail's for every request.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::pace::Rate;

/// One of this run's requests the server may count.
#[derive(Debug, Clone, Copy)]
struct Held {
    sent: Instant,
    /// Its answer, or when it was given up for lost: the server counted it
    /// by then, if at all.
    done: Option<Instant>,
    /// Answered: the fastest answer's latency may be taken off `done`, the
    /// part of every round trip that is the way back. A request given up
    /// may have arrived at the very moment.
    answered: bool,
}

#[derive(Debug, Default)]
pub(super) struct Arrivals {
    /// In the order sent.
    held: VecDeque<Held>,
}

impl Arrivals {
    pub(super) fn sent(&mut self, at: Instant) {
        self.held.push_back(Held { sent: at, done: None, answered: false });
    }

    /// The request sent at `sent` is done at `now`: `answered`, or given
    /// up (no answer, or a 429 that may have been counted).
    pub(super) fn done(&mut self, sent: Instant, answered: bool, now: Instant) {
        if let Some(held) = self.held.iter_mut().find(|h| h.sent == sent && h.done.is_none()) {
            held.done = Some(now);
            held.answered = answered;
        }
    }

    /// When a request may next be sent for this run's arrivals to keep
    /// within `rate`, answers having come `fastest` at best: `now`, a later
    /// instant, or `None` if only an answer can free a slot.
    pub(super) fn room(&mut self, rate: Rate, fastest: Duration, now: Instant) -> Option<Instant> {
        let window = rate.paced_window();
        let leaves = |h: &Held| {
            let arrived = |done: Instant| if h.answered { done.max(h.sent + fastest) - fastest } else { done };
            h.done.map(|done| arrived(done) + window)
        };
        // Slots left for good are forgotten, in the order sent.
        while self.held.front().and_then(leaves).is_some_and(|at| at <= now) {
            self.held.pop_front();
        }
        let mut holding: Vec<Option<Instant>> =
            self.held.iter().map(leaves).filter(|at| at.is_none_or(|at| at > now)).collect();
        let count = rate.count as usize;
        if holding.len() < count {
            return Some(now);
        }
        // The next slot frees as the `over`th of them leaves; those in flight
        // (`None`) leave last.
        let over = holding.len() + 1 - count;
        holding.sort_unstable_by_key(|at| at.map_or((1, now), |at| (0, at)));
        holding[over - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::ms;

    /// Each paced over 1050 ms: the headroom's 50 ms at least.
    fn one_a_second() -> Rate {
        "1/s".parse().unwrap()
    }

    fn two_a_second() -> Rate {
        "2/s".parse().unwrap()
    }

    #[test]
    fn a_slot_frees_a_window_after_the_latest_its_request_can_have_arrived() {
        let mut arrivals = Arrivals::default();
        let start = Instant::now();
        let at = |n| start + ms(n);
        arrivals.sent(start);
        arrivals.sent(start);
        assert_eq!(arrivals.room(two_a_second(), ms(0), start), None, "both in flight");
        // The fastest answer, 10 ms: on its way back all of that time.
        arrivals.done(start, true, at(10));
        assert_eq!(arrivals.room(two_a_second(), ms(10), at(10)), Some(at(1050)));
        // One of 300 ms may have arrived 290 ms after it went.
        arrivals.done(start, true, at(300));
        assert_eq!(arrivals.room(two_a_second(), ms(10), at(1100)), Some(at(1100)));
        arrivals.sent(at(1100));
        assert_eq!(arrivals.room(two_a_second(), ms(10), at(1100)), Some(at(1340)));
    }

    #[test]
    fn a_request_given_up_may_have_arrived_when_it_was() {
        let mut arrivals = Arrivals::default();
        let start = Instant::now();
        for _ in 0..2 {
            arrivals.sent(start);
        }
        arrivals.done(start, false, start + ms(30_000));
        arrivals.done(start, true, start + ms(20));
        // No fastest answer's latency is taken off the one that timed out.
        assert_eq!(arrivals.room(one_a_second(), ms(20), start + ms(2000)), Some(start + ms(31_050)));
        // Requests of a window long gone are forgotten; another's `done`
        // finds nothing to settle.
        assert_eq!(arrivals.room(one_a_second(), ms(20), start + ms(31_050)), Some(start + ms(31_050)));
        assert!(arrivals.held.is_empty());
        arrivals.done(start, true, start + ms(31_060));
        assert!(arrivals.held.is_empty());
    }
}
