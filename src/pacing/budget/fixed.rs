//! Whether the API's window is fixed: told from how its count and reset
//! move between two answers, and given up when a count resets off the
//! boundaries a fixed window would keep.

use std::time::Duration;

use tokio::time::Instant;

use super::{Budget, Counted};

/// The server rounds its resets to whole seconds.
pub(super) const ROUNDING: Duration = Duration::from_secs(1);

/// When a count's reset may fall: the server read its clock at some moment
/// between the request's send and its answer, and rounded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) from: Instant,
    pub(super) to: Instant,
}

impl Span {
    fn reset(of: Counted, reset: Duration) -> Span {
        let from = of.sent + reset;
        Span { from: from.checked_sub(ROUNDING).unwrap_or(from), to: of.answered + reset + ROUNDING }
    }
}

impl Budget {
    /// Takes a count of `left` resetting in `reset`, for the request `of`,
    /// as showing a fixed window's reset, or a sliding window after all.
    pub(super) fn tell_window_kind(&mut self, of: Counted, left: u32, reset: Duration) {
        if self.resets_whole(of, left, reset) {
            self.fixed = Some(Span::reset(of, reset));
        } else if self.fixed.is_some_and(|epoch| self.off_boundary(of, epoch, reset)) {
            self.fixed = None;
        }
    }

    /// Whether a count of `left` resetting in `reset`, for a request
    /// handled after the snapshot's, shows the window reset as a fixed one
    /// does: more left than before, and the reset jumped up to half the
    /// window or more. (A sliding window's reset jumps that far only after
    /// a pause of half a window, which merely makes this run cautious for
    /// the rest of it.)
    fn resets_whole(&self, of: Counted, left: u32, reset: Duration) -> bool {
        self.snapshot.filter(|before| of.sent >= before.of.answered).is_some_and(|before| {
            let jumped = self.policy.is_some_and(|p| reset > before.reset && reset * 2 >= p.window);
            left > before.left && jumped
        })
    }

    /// Whether a count for a request handled after the latest one, which
    /// resets in `reset`, resets off every boundary a fixed window whose
    /// reset fell within `epoch` keeps: no boundary can explain it, however
    /// slow either answer was. Windows too short to tell that apart are left
    /// taken for fixed: the cautious reading.
    fn off_boundary(&self, of: Counted, epoch: Span, reset: Duration) -> bool {
        let (Some(policy), Some(before)) = (self.policy, self.snapshot) else {
            return false;
        };
        if of.sent < before.of.answered || policy.window < ROUNDING * 6 {
            return false;
        }
        let now = Span::reset(of, reset);
        let nanos = |at: Instant| {
            at.duration_since(epoch.from).as_nanos() as i128 - epoch.from.duration_since(at).as_nanos() as i128
        };
        // Some boundary `epoch + k windows` overlaps `now` if k windows fall
        // between `now.from - epoch.to` and `now.to - epoch.from`.
        let (low, high) = (nanos(now.from) - nanos(epoch.to), nanos(now.to));
        let window = policy.window.as_nanos() as i128;
        let first = low.div_euclid(window) + i128::from(low.rem_euclid(window) != 0);
        first * window > high
    }
}
