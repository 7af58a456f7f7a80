//! How far apart in time the server may see requests sent evenly: the
//! spread of the answers' latency, which ages a count.

use std::collections::VecDeque;
use std::time::Duration;

/// Enough answers for a 99th percentile that one slow answer does not make.
const KEPT: usize = 128;

/// The latency of the recent answers, and their spread, worked out once
/// per answer: every worker's every look at the pace reads it.
#[derive(Debug, Default)]
pub(super) struct Latencies {
    recent: VecDeque<Duration>,
    spread: Duration,
}

impl Latencies {
    pub(super) fn record(&mut self, latency: Duration) {
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(latency);
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        // Rounded down, so that among fewer than a hundred answers the
        // slowest one alone is not the 99th percentile.
        self.spread = sorted[(sorted.len() - 1) * 99 / 100] - sorted[0];
    }

    /// The 99th percentile less the fastest: two requests sent an interval
    /// apart may arrive this much closer together, so a count may be this
    /// much older by the time a request paced from it arrives. Nothing
    /// before the first answer.
    pub(super) fn spread(&self) -> Duration {
        self.spread
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::testing::ms;

    #[test]
    fn the_spread_is_the_slow_tail_over_the_fastest_and_forgets_old_answers() {
        let mut latencies = Latencies::default();
        assert_eq!(latencies.spread(), Duration::ZERO);
        for i in 0..100 {
            latencies.record(ms(100 + i));
        }
        assert_eq!(latencies.spread(), ms(98), "p99 of 100..199 ms is 198 ms");
        // A steady latency, however long, bunches nothing.
        for _ in 0..KEPT {
            latencies.record(ms(800));
        }
        assert_eq!(latencies.spread(), Duration::ZERO);
        // Heavy tail: one in fifty takes 3 s.
        for i in 0..KEPT {
            latencies.record(if i % 50 == 0 { ms(3000) } else { ms(50) });
        }
        assert_eq!(latencies.spread(), ms(2950));
    }

    #[test]
    fn one_slow_answer_in_the_first_hundred_is_not_the_p99() {
        let mut latencies = Latencies::default();
        for _ in 0..60 {
            latencies.record(ms(50));
        }
        latencies.record(ms(30_000));
        assert!(latencies.spread() < ms(1000), "{:?}", latencies.spread());
    }
}
