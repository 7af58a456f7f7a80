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

/// How far above its trend the other tool's count is taken to rise before
/// this run's request lands, in standard deviations of the rises seen: a
/// tool whose requests come at random bunches them, and one refused request
/// blocks the user whoever sent it.
pub(super) const SURGE_DEVIATIONS: f64 = 3.0;

/// The same for a probe, sent when nothing is in flight to bring a fresh
/// count: waiting would not make a stale count any surer.
pub(super) const PROBE_DEVIATIONS: f64 = 1.5;

/// The span over which the other tool's count is watched to grow and vary:
/// a tenth of the window.
const SPAN: u32 = 10;

/// How many windows a tool seen to burst is taken to burst again: one that
/// bursts a little less often than once a window is still seen in the window
/// between two bursts.
const BURSTY_WINDOWS: u32 = 2;

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
    /// How fast the other tool's count grows, in requests a second: zero
    /// on a sliding window it holds steady in.
    trend: f64,
    /// How much its count varies about that trend over a tenth of the
    /// window, in requests squared a second, as a random walk's does.
    variance: f64,
    /// How far its count may still grow at that trend: to what it is
    /// expected to spend in a window. On a sliding window a count grows
    /// only until as many leave as arrive.
    growing: f64,
    /// Whether that variation was measured, not assumed: a span of the
    /// count's history has been seen.
    measured: bool,
    /// When the other tool was last seen to send a burst.
    burst: Option<Instant>,
    /// Whether that was within [`BURSTY_WINDOWS`].
    bursty: bool,
    /// The window over which a count varies: beyond it, every request in
    /// it has been replaced.
    window: Duration,
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

    /// Whether the other tool has been watched long enough to know how
    /// its count varies.
    pub(super) fn is_measured(&self) -> bool {
        self.measured
    }

    /// Whether the other tool sends in bursts.
    pub(super) fn is_bursty(&self) -> bool {
        self.bursty
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
        let (current, trend) = self.growth(policy.window);
        let expected = f64::from(current).max(trend * policy.window.as_secs_f64());
        self.trend = trend;
        let span = policy.window / SPAN;
        let assumed = 2.0 * expected / policy.window.as_secs_f64();
        let measured = self.variation(trend, span);
        self.measured = measured.is_some();
        self.variance = measured.map_or(assumed, |v| v / span.as_secs_f64());
        if self.bursts(expected, policy.window, reserve) {
            self.burst = self.seen.back().map(|&(at, _)| at);
        }
        self.bursty = self.burst.is_some_and(|at| at + policy.window * BURSTY_WINDOWS > now);
        (self.growing, self.window) = (expected - f64::from(current), policy.window);
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

    /// How far the other tool's count may rise over `horizon` beyond what
    /// this run last saw: its trend, and `deviations` of its variation. A
    /// count that holds steady on a sliding window (as many requests leaving
    /// as arriving) still rises by chance when its requests come at random,
    /// by about the square root of what arrives; over more than half a
    /// window, by no more than a window's count varies.
    pub(super) fn surge(&self, horizon: Duration, deviations: f64) -> f64 {
        let secs = horizon.as_secs_f64();
        let varies = horizon.min(self.window / 2).as_secs_f64();
        (self.trend * secs).min(self.growing) + deviations * (self.variance * varies).sqrt()
    }

    /// The latest count, and how fast it grows: the median of the growth
    /// over spans of a tenth of the window, so a single burst (one step,
    /// in few of the spans) does not read as a rate, while a tool that
    /// started with this run is not taken for a one-off either. A window
    /// the other tool fills at that rate is what it is expected to spend.
    fn growth(&self, window: Duration) -> (u32, f64) {
        let current = self.seen.back().map_or(0, |&(_, others)| others);
        let mut rates: Vec<f64> = self.spans(window / SPAN).map(|(rise, secs)| rise / secs).collect();
        if rates.is_empty() {
            return (current, 0.0);
        }
        rates.sort_by(f64::total_cmp);
        (current, rates[rates.len() / 2].max(0.0))
    }

    /// How the other tool's count varies about `trend` over spans of
    /// `span`, from the rises above it between two answers of the last
    /// window: only rises, as a fixed window's reset is a fall that says
    /// nothing of how its requests bunch. None until such a span is seen.
    fn variation(&self, trend: f64, span: Duration) -> Option<f64> {
        let (mut sum, mut spans) = (0.0, 0u32);
        for (rise, secs) in self.spans(span) {
            let above = (rise - trend * secs).max(0.0);
            sum += above * above * span.as_secs_f64() / secs;
            spans += 1;
        }
        // Rises are half of what varies, if it varies either way alike.
        (spans > 0).then(|| 2.0 * sum / f64::from(spans))
    }

    /// Whether the other tool's count rose between two answers by more
    /// than requests at random would at its rate, beyond the `reserve`:
    /// a tool that sends in bursts, whose next burst no measure of
    /// variation foretells.
    fn bursts(&self, expected: f64, window: Duration, reserve: u32) -> bool {
        let rate = expected / window.as_secs_f64();
        self.seen.iter().zip(self.seen.iter().skip(1)).any(|(&(t0, o0), &(t1, o1))| {
            let arrive = rate * (t1 - t0).as_secs_f64();
            f64::from(o1) - f64::from(o0) > f64::from(reserve) + arrive + SURGE_DEVIATIONS * arrive.sqrt()
        })
    }

    /// The other tool's count's change over each span of at least `span`
    /// between two answers of the last window, and the span's length in
    /// seconds.
    fn spans(&self, span: Duration) -> impl Iterator<Item = (f64, f64)> + '_ {
        let mut from = 0;
        self.seen.iter().filter_map(move |&(t1, o1)| {
            while self.seen.get(from + 1).is_some_and(|&(t, _)| t + span <= t1) {
                from += 1;
            }
            let (t0, o0) = self.seen[from];
            (t0 + span <= t1).then(|| (f64::from(o1) - f64::from(o0), (t1 - t0).as_secs_f64()))
        })
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
