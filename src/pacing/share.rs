//! Another tool spending the same quota: told from the API's counts, and
//! left its share by spacing this run's requests, and by what the budget
//! keeps back for its surges and bursts.

use std::time::Duration;

use tokio::time::Instant;

use super::headers::Policy;

mod watch;
use watch::Watch;

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

/// The most kept back for a tool that has burst once lately, as a share of
/// the quota: enough for a cron job's handful of requests beyond the
/// standing reserve, where one burst of half the quota held back whole
/// would slow the run for two windows (repeated bursts are held whole).
const ONE_BURST_HOLD: f64 = 0.05;

/// The same for a probe, sent when nothing is in flight to bring a fresh
/// count: waiting would not make a stale count any surer.
pub(super) const PROBE_DEVIATIONS: f64 = 1.5;

/// What this run has seen of another consumer of the quota, and the
/// spacing that leaves it its share.
///
/// The estimate is rebuilt from the answers of the last window on every
/// answer, so it follows the other tool down as well as up: a one-off burst
/// is taken for what it is (its requests are in the window until they leave
/// it), and a tool that keeps going is taken at the rate its count grows.
#[derive(Debug, Default)]
pub(super) struct Share {
    /// The other tool's counts of the last window.
    watch: Watch,
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
    /// How much its count varies about that trend, in requests squared a
    /// second, as a random walk's does.
    variance: f64,
    /// How many of a window's requests it is expected to spend.
    expected: f64,
    /// Whether that variation was measured, not assumed: a span of the
    /// count's history has been seen.
    measured: bool,
    /// Whether the other tool has burst lately.
    bursty: bool,
    /// Slots kept for a tool that has burst lately: its latest burst, up
    /// to [`ONE_BURST_HOLD`] of the quota; for one that bursts again and
    /// again, its largest recent burst.
    burst_hold: u32,
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

    /// Whether the other tool has been watched for a span of its count.
    pub(super) fn is_measured(&self) -> bool {
        self.measured
    }

    /// Whether how the other tool's count varies is known: measured, and
    /// not in bursts, which no measure of variation foretells.
    pub(super) fn is_watched(&self) -> bool {
        self.measured && !self.bursty
    }

    /// Slots to keep for the next burst of a tool that has burst lately.
    pub(super) fn burst_hold(&self) -> u32 {
        self.burst_hold
    }

    /// A request took its send slot at `now`.
    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    /// Takes in a count in which `others` requests of `policy`'s window were
    /// not this run's (`in_flight` of this run's were in flight then), and
    /// paces at what the other tool is expected to leave once it uses more
    /// than the `reserve` that rounding explains. `stale` is how long a
    /// count may be old by the time this run's next request arrives: the
    /// other tool keeps spending meanwhile.
    pub(super) fn observed(
        &mut self,
        others: u32,
        in_flight: u32,
        policy: Policy,
        now: Instant,
        reserve: u32,
        stale: Duration,
    ) {
        let window = policy.window;
        self.watch.push(now, others, in_flight, window);
        self.trend = self.watch.trend(window);
        // At least what is in the window now, and, while its count is still
        // growing, what its rate of growth fills a window with.
        let expected = f64::from(self.watch.current()).max(self.trend * window.as_secs_f64());
        let measured = self.watch.variance(self.trend, window);
        self.measured = measured.is_some();
        // Until measured, taken to vary as requests at random would.
        self.variance = measured.unwrap_or(2.0 * expected / window.as_secs_f64());
        self.watch.note_bursts(expected / window.as_secs_f64(), reserve);
        self.bursty = self.watch.bursty(now, window);
        let once = self.watch.latest_burst(now, window).map(|size| size.min(f64::from(policy.quota) * ONE_BURST_HOLD));
        let hold = self.watch.repeated_burst(now, window).or(once);
        self.burst_hold = hold.map_or(0, |size| size.ceil() as u32);
        (self.expected, self.window) = (expected, window);
        if expected <= f64::from(reserve) {
            (self.spacing, self.full) = (None, false);
            return;
        }
        let per_window = window.as_secs_f64();
        // What the other tool may spend between a count and the arrival of
        // the request paced from it, twice over for its variation, and at
        // least one request.
        let headroom = (2.0 * expected * stale.as_secs_f64() / per_window).ceil().max(1.0);
        let room = f64::from(policy.quota) - expected - headroom - f64::from(reserve);
        let probe = f64::from((policy.quota / PROBE_SHARE).max(1));
        self.full = room <= probe;
        let spacing = window.div_f64(room.max(probe));
        if self.spacing.is_none_or(|old| old.abs_diff(spacing) > old / 20) {
            tracing::debug!(others = expected.round(), room = room.max(probe).floor(), "another tool shares the quota");
        }
        self.spacing = Some(spacing);
    }

    /// How many requests a second the other tool sends, if it shares the
    /// quota: a window's expected requests over the window, or for a tool
    /// that bursts, whose count is mostly its bursts, its trend.
    pub(super) fn rate(&self) -> f64 {
        match self.spacing {
            None => 0.0,
            Some(_) if self.bursty => self.trend,
            Some(_) => self.expected / self.window.as_secs_f64(),
        }
    }

    /// How far the other tool's count may rise over `horizon` beyond what
    /// this run last saw: its trend (until it fills the window it is
    /// expected to), and `deviations` of its variation. A count that holds
    /// steady on a sliding window (as many requests leaving as arriving)
    /// still rises by chance when its requests come at random, by about the
    /// square root of what arrives; over more than half a window, by no
    /// more than a window's count varies.
    pub(super) fn surge(&self, horizon: Duration, deviations: f64) -> f64 {
        let growing = self.expected - f64::from(self.watch.current());
        let varies = horizon.min(self.window / 2).as_secs_f64();
        (self.trend * horizon.as_secs_f64()).min(growing) + deviations * (self.variance * varies).sqrt()
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
            share.observed(others, 0, POLICY, t0 + every * i as u32, 2, ms(500));
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

    /// The slots held for the next burst after a quiet count jumps by
    /// `first` and, `gap` later, by `second` (if any), and after another
    /// two windows of nothing.
    fn held_after(first: u32, second: Option<(Duration, u32)>) -> (u32, u32) {
        let t0 = Instant::now();
        let mut share = Share::default();
        let mut at = t0;
        let mut count = 0;
        let answer = |share: &mut Share, at: Instant, count: u32| share.observed(count, 0, POLICY, at, 2, ms(500));
        for _ in 0..40 {
            at += ms(250);
            answer(&mut share, at, count);
        }
        count += first;
        answer(&mut share, at + ms(250), count);
        if let Some((gap, requests)) = second {
            count += requests;
            answer(&mut share, at + gap, count);
        }
        let held = share.burst_hold();
        answer(&mut share, at + WINDOW * 3, 0);
        (held, share.burst_hold())
    }

    #[test]
    fn a_burst_is_held_for_as_it_may_come_again_a_large_one_in_part() {
        // A cron job's 4 at once: the next 4 are kept for, for two windows.
        assert_eq!(held_after(4, None), (4, 0));
        // 30 at once may be a one-off: a twentieth of the quota is kept.
        assert_eq!(held_after(30, None), (5, 0));
        // Once it comes again, the larger is kept whole.
        assert_eq!(held_after(30, Some((Duration::from_secs(2), 20))).0, 30);
    }

    #[test]
    fn a_window_the_other_fills_still_leaves_a_probe_and_the_estimate_follows_it_down() {
        let t0 = Instant::now();
        let mut share = Share::default();
        share.observed(99, 0, POLICY, t0, 2, ms(500));
        assert_eq!(share.spacing, Some(WINDOW / 5), "a twentieth of the quota: the budget guards the rest");
        // A window later the burst has left, and so has its estimate.
        share.observed(0, 0, POLICY, t0 + WINDOW, 2, ms(500));
        assert_eq!(share.spacing, None);
    }
}
