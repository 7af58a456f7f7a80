//! How another tool's count moves, from the counts of the last window: its
//! trend, how it varies about that trend, and its bursts.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The span over which the other tool's count is watched to grow and vary:
/// a tenth of the window.
const SPAN: u32 = 10;

/// How many windows a tool seen to burst is taken to burst again: one that
/// bursts a little less often than once a window is still seen in the window
/// between two bursts.
const BURSTY_WINDOWS: u32 = 2;

/// Rises of the count less than this apart are one burst, caught landing
/// by the answers between them.
const ONE_BURST: Duration = Duration::from_secs(1);

/// What a steady tool's count varies by over a span, in requests squared,
/// only because a count is whole requests read at moments of this run's
/// choosing: not variation to keep slots for.
const GRAIN: f64 = 1.0;

/// How far a rise between two answers may go beyond what arrivals at
/// random explain before it is taken for a burst, in standard deviations.
const BURST_DEVIATIONS: f64 = 3.0;

/// One answer's reading of the other tool's count.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    others: u32,
    /// This run's requests in flight then: counted as this run's, though
    /// the server may not have counted them yet, so the other's count may
    /// read low by as many, and the next answer's rise high.
    in_flight: u32,
}

/// A rise of the count beyond what arrivals explain: when it was seen,
/// and by how much.
#[derive(Debug, Clone, Copy)]
struct Burst {
    at: Instant,
    size: f64,
}

/// Whether `burst` came within the windows a bursty tool is taken to burst again.
fn lately(burst: Burst, now: Instant, window: Duration) -> bool {
    burst.at + window * BURSTY_WINDOWS > now
}

/// The other tool's counts of the last window, and its latest two bursts.
#[derive(Debug, Default)]
pub(super) struct Watch {
    seen: VecDeque<Seen>,
    burst: Option<Burst>,
    burst_before: Option<Burst>,
}

impl Watch {
    /// Takes in an answer's count, forgetting those a `window` old.
    pub(super) fn push(&mut self, at: Instant, others: u32, in_flight: u32, window: Duration) {
        self.seen.push_back(Seen { at, others, in_flight });
        while self.seen.len() > 1 && self.seen.front().is_some_and(|s| s.at + window <= at) {
            self.seen.pop_front();
        }
    }

    /// The latest count.
    pub(super) fn current(&self) -> u32 {
        self.seen.back().map_or(0, |s| s.others)
    }

    /// How fast the count grows, in requests a second: the median of the
    /// growth over spans of a tenth of the window, so a single burst (one
    /// step, in few of the spans) does not read as a rate, while a tool
    /// that started with this run is not taken for a one-off either.
    pub(super) fn trend(&self, window: Duration) -> f64 {
        let mut rates: Vec<f64> = self.spans(window / SPAN).map(|(rise, secs)| rise / secs).collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).map_or(0.0, |&median| median.max(0.0))
    }

    /// How much the count varies about `trend`, in requests squared a
    /// second (as a random walk's variance grows), from its rises above the
    /// trend over spans of a tenth of the window: only rises, as a fixed
    /// window's reset is a fall that says nothing of how requests bunch.
    /// None until such a span has been seen.
    pub(super) fn variance(&self, trend: f64, window: Duration) -> Option<f64> {
        let span = (window / SPAN).as_secs_f64();
        let (mut sum, mut spans) = (0.0, 0u32);
        for (rise, secs) in self.spans(window / SPAN) {
            let above = (rise - trend * secs).max(0.0);
            sum += above * above * span / secs;
            spans += 1;
        }
        // Rises are half of what varies, if it varies either way alike.
        (spans > 0).then(|| (2.0 * sum / f64::from(spans) - GRAIN).max(0.0) / span)
    }

    /// Notes the latest rise between two answers beyond what requests at
    /// `rate` a second arriving at random explain, and the `reserve`: a
    /// burst, which no measure of variation foretells.
    pub(super) fn note_bursts(&mut self, rate: f64, reserve: u32) {
        let pairs = self.seen.iter().zip(self.seen.iter().skip(1));
        let latest = pairs
            .filter_map(|(before, after)| {
                let arrive = rate * (after.at - before.at).as_secs_f64();
                let rise = f64::from(after.others) - f64::from(before.others) - f64::from(before.in_flight);
                let explained = f64::from(reserve) + arrive + BURST_DEVIATIONS * arrive.sqrt();
                (rise > explained).then_some(Burst { at: after.at, size: rise })
            })
            .next_back();
        let Some(latest) = latest else {
            return;
        };
        match self.burst {
            Some(last) if latest.at < last.at + ONE_BURST => {
                self.burst = Some(Burst { size: last.size.max(latest.size), ..last });
            }
            last => (self.burst_before, self.burst) = (last, Some(latest)),
        }
    }

    /// Whether the tool has burst lately.
    pub(super) fn bursty(&self, now: Instant, window: Duration) -> bool {
        self.burst.is_some_and(|b| lately(b, now, window))
    }

    /// The tool's latest burst, if lately: a tool that burst once may be a
    /// cron job that does so again before this run's requests make room.
    pub(super) fn latest_burst(&self, now: Instant, window: Duration) -> Option<f64> {
        self.burst.filter(|&b| lately(b, now, window)).map(|b| b.size)
    }

    /// The largest of the tool's last two bursts, if both were lately: a
    /// tool that bursts again and again is held to do so once more.
    pub(super) fn repeated_burst(&self, now: Instant, window: Duration) -> Option<f64> {
        let before = self.burst_before.filter(|&b| lately(b, now, window))?;
        Some(self.latest_burst(now, window)?.max(before.size))
    }

    /// The count's change over each span of at least `span` between two
    /// answers of the last window, and the span's length in seconds.
    fn spans(&self, span: Duration) -> impl Iterator<Item = (f64, f64)> + '_ {
        let mut from = 0;
        self.seen.iter().filter_map(move |&Seen { at, others, .. }| {
            while self.seen.get(from + 1).is_some_and(|s| s.at + span <= at) {
                from += 1;
            }
            let start = self.seen[from];
            (start.at + span <= at)
                .then(|| (f64::from(others) - f64::from(start.others), (at - start.at).as_secs_f64()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::ms;

    const WINDOW: Duration = Duration::from_secs(20);

    /// A watch fed `counts` (and this run's requests in flight at each),
    /// one answer every 250 ms.
    fn watched(counts: impl IntoIterator<Item = (u32, u32)>) -> (Watch, Instant) {
        let t0 = Instant::now();
        let mut watch = Watch::default();
        let mut at = t0;
        for (i, (others, in_flight)) in counts.into_iter().enumerate() {
            at = t0 + ms(250) * i as u32;
            watch.push(at, others, in_flight, WINDOW);
            watch.note_bursts(1.5, 2);
        }
        (watch, at)
    }

    #[test]
    fn a_steady_count_varies_by_nothing_worth_keeping_slots_for() {
        // 30 in the window, read as 29 or 31 now and then.
        let (watch, _) = watched((0..80).map(|i| (30 + u32::from(i % 7 == 0) - u32::from(i % 11 == 0), 0)));
        assert_eq!(watch.variance(watch.trend(WINDOW), WINDOW), Some(0.0));
    }

    #[test]
    fn a_count_that_wanders_as_random_arrivals_do_is_measured_so() {
        // Up and down by 3 over a couple of seconds, as 1.5 a second at
        // random arriving and leaving might: of the order of a random
        // walk's 2 × 1.5 a second, and far from nothing.
        let wander = [0, 1, 2, 3, 3, 2, 1, 0, -1, -2, -3, -3, -2, -1];
        let (watch, _) = watched((0..80).map(|i| ((30 + wander[i % wander.len()]) as u32, 0)));
        let variance = watch.variance(watch.trend(WINDOW), WINDOW).unwrap();
        assert!((1.0..=8.0).contains(&variance), "{variance}");
    }

    #[test]
    fn a_rise_by_what_this_run_had_in_flight_is_not_a_burst() {
        // Five of this run's in flight at one answer, counted by the next:
        // the other's count reads five low, then right.
        let (watch, at) = watched((0..40).map(|i| if i == 20 { (25, 5) } else { (30, 0) }));
        assert!(!watch.bursty(at, WINDOW));
        let (watch, at) = watched((0..40).map(|i| if i < 20 { (30, 0) } else { (38, 0) }));
        assert!(watch.bursty(at, WINDOW), "8 at once beside 1.5 a second is");
    }

    #[test]
    fn only_a_tool_that_bursts_again_has_its_next_burst_kept() {
        let once = (0..40).map(|i| (if i < 20 { 10 } else { 18 }, 0));
        let (watch, at) = watched(once);
        assert_eq!(watch.repeated_burst(at, WINDOW), None);
        // 8 at 2.5 s, then 6 more at 7.5 s.
        let twice = (0..40).map(|i| (10 + 8 * u32::from(i >= 10) + 6 * u32::from(i >= 30), 0));
        let (watch, at) = watched(twice);
        assert_eq!(watch.repeated_burst(at, WINDOW), Some(8.0));
    }
}
