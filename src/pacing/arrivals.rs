//! This run's requests as the server may still be counting them: the pace
//! is kept in send times, the server counts arrival times, and a request
//! slow in the network arrives bunched up with the ones sent after it.
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

use tokio::time::Instant;

use super::pace::Rate;

/// One of this run's requests the server may count.
#[derive(Debug, Clone, Copy)]
struct Held {
    sent: Instant,
    /// Its answer, or when it was given up: the server counted it by then,
    /// if at all.
    done: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct Arrivals {
    /// In the order sent.
    held: VecDeque<Held>,
}

impl Arrivals {
    pub(super) fn sent(&mut self, at: Instant) {
        self.held.push_back(Held { sent: at, done: None });
    }

    /// The request sent at `sent` is done (answered or given up) at `now`.
    pub(super) fn done(&mut self, sent: Instant, now: Instant) {
        if let Some(held) = self.held.iter_mut().find(|h| h.sent == sent && h.done.is_none()) {
            held.done = Some(now);
        }
    }

    /// When a request may next be sent for this run's arrivals (those sent
    /// `since`, if given) to keep within `rate`: `now`, a later instant, or
    /// `None` if only an answer can free a slot.
    pub(super) fn room(&mut self, rate: Rate, since: Option<Instant>, now: Instant) -> Option<Instant> {
        let window = rate.paced_window();
        let leaves = |h: &Held| h.done.map(|done| done + window);
        // Slots left for good are forgotten, in the order sent.
        while self.held.front().and_then(leaves).is_some_and(|at| at <= now) {
            self.held.pop_front();
        }
        let counted = || self.held.iter().filter(|h| since.is_none_or(|since| h.sent >= since));
        let holding = counted().filter(|h| leaves(h).is_none_or(|at| at > now)).count();
        let count = rate.count as usize;
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

    /// Each paced over 1050 ms: the headroom's 50 ms at least.
    fn one_a_second() -> Rate {
        "1/s".parse().unwrap()
    }

    fn two_a_second() -> Rate {
        "2/s".parse().unwrap()
    }

    #[test]
    fn a_slot_frees_a_window_after_its_request_was_answered() {
        let mut arrivals = Arrivals::default();
        let start = Instant::now();
        let at = |n| start + ms(n);
        arrivals.sent(start);
        arrivals.sent(start);
        assert_eq!(arrivals.room(two_a_second(), None, start), None, "both in flight");
        arrivals.done(start, at(10));
        assert_eq!(arrivals.room(two_a_second(), None, at(10)), Some(at(1060)));
        // One that took 300 ms may have arrived just before its answer.
        arrivals.done(start, at(300));
        assert_eq!(arrivals.room(two_a_second(), None, at(1100)), Some(at(1100)));
        arrivals.sent(at(1100));
        assert_eq!(arrivals.room(two_a_second(), None, at(1100)), Some(at(1350)));
    }

    #[test]
    fn a_request_given_up_holds_its_slot_a_window_after_then() {
        let mut arrivals = Arrivals::default();
        let start = Instant::now();
        for _ in 0..2 {
            arrivals.sent(start);
        }
        arrivals.done(start, start + ms(30_000));
        arrivals.done(start, start + ms(20));
        assert_eq!(arrivals.room(one_a_second(), None, start + ms(2000)), Some(start + ms(31_050)));
        // Requests of a window long gone are forgotten; another's `done`
        // finds nothing to settle.
        assert_eq!(arrivals.room(one_a_second(), None, start + ms(31_050)), Some(start + ms(31_050)));
        assert!(arrivals.held.is_empty());
        arrivals.done(start, start + ms(31_060));
        assert!(arrivals.held.is_empty());
    }
}
