//! Another tool spending the same quota: told from the API's counts, and
//! left its share by spacing this run's requests.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::headers::Policy;

/// However crowded the window looks, this run keeps asking at least this
/// share of the quota per window: an estimate is only as fresh as the last
/// answer, and only a request brings an answer. The budget's count, not
/// this spacing, is what stops a request the window has no room for.
const PROBE_SHARE: u32 = 20;

/// What this run has seen of another consumer of the quota, and the
/// spacing that leaves it its share.
///
/// The estimate is rebuilt from the answers of the last window on every
/// answer, so it follows the other tool down as well as up: a one-off burst
/// is taken for what it is (its requests are in the window until they leave
/// it), and a tool that keeps going is taken at the rate its count grows.
#[derive(Debug, Default)]
pub(super) struct Share {
    /// Others' count in the window, as each answer of the last window
    /// showed it, oldest first.
    seen: VecDeque<(Instant, u32)>,
    /// The spacing that leaves other consumers their expected share.
    spacing: Option<Duration>,
    /// Whether that spacing is the probe's: the other tool seems to leave
    /// no room at all.
    full: bool,
    /// When the latest request took its send slot.
    last_sent: Option<Instant>,
}

impl Share {
    /// Whether another tool is seen to spend the quota.
    pub(super) fn is_shared(&self) -> bool {
        self.spacing.is_some()
    }

    /// The next send slot the spacing that leaves another tool its share
    /// allows, if another tool shares the quota.
    pub(super) fn next_slot(&self) -> Option<Instant> {
        self.spacing.zip(self.last_sent).map(|(spacing, last)| last + spacing)
    }

    /// Whether the other tool seems to leave this run no room at all.
    pub(super) fn is_full(&self) -> bool {
        self.full
    }

    /// A request took its send slot at `now`.
    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    /// Takes in a count in which `others` requests of `policy`'s window were
    /// not this run's, and paces at what the other tool is expected to leave
    /// once it uses more than the `reserve` that rounding explains. `stale`
    /// is how long a count may be old by the time this run's next request
    /// arrives: the other tool keeps spending meanwhile.
    pub(super) fn observed(&mut self, others: u32, policy: Policy, now: Instant, reserve: u32, stale: Duration) {
        self.seen.push_back((now, others));
        while self.seen.len() > 1 && self.seen.front().is_some_and(|&(at, _)| at + policy.window <= now) {
            self.seen.pop_front();
        }
        let expected = self.expected(policy.window);
        if expected <= f64::from(reserve) {
            (self.spacing, self.full) = (None, false);
            return;
        }
        let per_window = policy.window.as_secs_f64();
        // What the other tool may spend between a count and the arrival of
        // the request paced from it, twice over for its variation, and at
        // least one request.
        let headroom = (2.0 * expected * stale.as_secs_f64() / per_window).ceil().max(1.0);
        let room = f64::from(policy.quota) - expected - headroom - f64::from(reserve);
        let probe = f64::from((policy.quota / PROBE_SHARE).max(1));
        self.full = room <= probe;
        let spacing = policy.window.div_f64(room.max(probe));
        if self.spacing.is_none_or(|old| old.abs_diff(spacing) > old / 20) {
            tracing::debug!(others = expected.round(), room = room.max(probe).floor(), "another tool shares the quota");
        }
        self.spacing = Some(spacing);
    }

    /// How many of a window's requests the other tool is expected to
    /// spend: at least what is in the window now, and, while its count is
    /// still growing, what its rate of growth fills a window with. The rate
    /// is the median of the growth over spans of a tenth of the window,
    /// so a single burst (one step, in few of the spans) does not read as a
    /// rate, while a tool that started with this run is not taken for a
    /// one-off either.
    fn expected(&self, window: Duration) -> f64 {
        let current = self.seen.back().map_or(0, |&(_, others)| others);
        let span = window / 10;
        let mut rates: Vec<f64> = Vec::with_capacity(self.seen.len());
        let mut from = 0;
        for &(t1, o1) in &self.seen {
            while self.seen.get(from + 1).is_some_and(|&(t, _)| t + span <= t1) {
                from += 1;
            }
            let (t0, o0) = self.seen[from];
            if t0 + span <= t1 {
                rates.push((f64::from(o1) - f64::from(o0)) / (t1 - t0).as_secs_f64());
            }
        }
        if rates.is_empty() {
            return f64::from(current);
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2].max(0.0);
        f64::from(current).max(median * window.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::ms;

    const WINDOW: Duration = Duration::from_secs(20);
    const POLICY: Policy = Policy { quota: 100, window: WINDOW };

    /// Feeds `counts` of others' requests, one answer every `every`, and
    /// returns the requests per window the spacing leaves this run.
    fn room_after(counts: impl IntoIterator<Item = u32>, every: Duration) -> f64 {
        let t0 = Instant::now();
        let mut share = Share::default();
        for (i, others) in counts.into_iter().enumerate() {
            share.observed(others, POLICY, t0 + every * i as u32, 2, ms(500));
        }
        share.spacing.map_or(f64::INFINITY, |spacing| WINDOW.as_secs_f64() / spacing.as_secs_f64())
    }

    #[test]
    fn a_steady_tool_is_left_its_rate_and_little_more() {
        // 30 of every 100, already in the window when the run started.
        let room = room_after(std::iter::repeat_n(30, 40), ms(250));
        assert!((64.0..=68.0).contains(&room), "{room}");
    }

    #[test]
    fn a_tool_that_starts_with_the_run_is_taken_at_its_rate() {
        // 1.5 per second from zero: 30 a window once a window has passed.
        let counts = (0..40).map(|i| (f64::from(i) * 0.25 * 1.5) as u32);
        let room = room_after(counts, ms(250));
        assert!((60.0..=68.0).contains(&room), "{room}");
    }

    #[test]
    fn a_burst_is_a_burst_not_a_rate() {
        // 50 at once, 5 s in, and nothing more: what is left is 50, not
        // "the whole quota" from scaling 50 in 5 s up to a window.
        let counts = std::iter::repeat_n(0, 20).chain(std::iter::repeat_n(50, 20));
        let room = room_after(counts, ms(250));
        assert!((40.0..=48.0).contains(&room), "{room}");
    }

    #[test]
    fn a_window_the_other_fills_still_leaves_a_probe_and_the_estimate_follows_it_down() {
        let t0 = Instant::now();
        let mut share = Share::default();
        share.observed(99, POLICY, t0, 2, ms(500));
        assert_eq!(share.spacing, Some(WINDOW / 5), "a twentieth of the quota: the budget guards the rest");
        // A window later the burst has left, and so has its estimate.
        share.observed(0, POLICY, t0 + WINDOW, 2, ms(500));
        assert_eq!(share.spacing, None);
    }
}
