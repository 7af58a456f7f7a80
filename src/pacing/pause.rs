//! Waits that hold back every worker, as opposed to the pace: the
//! account-wide pause a 429 starts, and the notice that says a long one on
//! stderr, lest the run look hung.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A wait the API asks for (a `Retry-After`, or the reset of a spent
/// `Ratelimit` budget) longer than this is taken as a mistake and clipped: an
/// hour is already far beyond Cloudflare's 5-minute block.
pub const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// A spent budget usually frees a slot within a second or so; a stall
/// longer than this is said on stderr, lest the run look hung.
const SAID_AFTER: Duration = Duration::from_secs(3);

/// The pause a 429 starts: shared by every worker, since the API blocks
/// the whole account, not one connection.
#[derive(Debug, Default)]
pub(super) struct Pause {
    until: Mutex<Option<Instant>>,
}

impl Pause {
    /// Makes the pause last until `until`, never shortening a longer one;
    /// returns when it ends.
    pub(super) fn extend_to(&self, until: Instant) -> Instant {
        let mut paused = self.until.lock().expect("pause lock");
        let until = paused.map_or(until, |current| current.max(until));
        *paused = Some(until);
        until
    }

    /// When the pause ends, if one is in force.
    pub(super) fn until(&self) -> Option<Instant> {
        let mut paused = self.until.lock().expect("pause lock");
        match *paused {
            Some(until) if until > Instant::now() => Some(until),
            _ => {
                *paused = None;
                None
            }
        }
    }
}

/// A wait that holds back every worker, as opposed to the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stall {
    /// A 429's pause.
    RateLimited,
    /// The API's budget is spent until a slot frees or the window resets.
    Spent,
}

impl Stall {
    /// How long it must last to be said. A 429 is said whatever its length:
    /// it means the quota was overrun.
    fn said_after(self) -> Duration {
        match self {
            Stall::RateLimited => Duration::ZERO,
            Stall::Spent => SAID_AFTER,
        }
    }
}

/// The long-wait notice: remembers the end of the latest stall said, so
/// that workers meeting the same stall say it once between them.
#[derive(Debug, Default)]
pub(super) struct Notice {
    said_until: Mutex<Option<Instant>>,
}

impl Notice {
    /// Says a stall lasting until `until` on stderr, once: as a warning,
    /// since off a terminal (cron) only warnings reach stderr by default,
    /// and a silent hour looks like a hang. Within a stall already said,
    /// only one lasting much longer is news.
    pub(super) fn say(&self, until: Instant, stall: Stall) {
        let now = Instant::now();
        let mut said = self.said_until.lock().expect("notice lock");
        let (from, after) = match *said {
            Some(end) if end > now => (end, SAID_AFTER),
            _ => (now, stall.said_after()),
        };
        if until <= from + after {
            return;
        }
        *said = Some(until);
        drop(said);
        let wait = until - now;
        let shown =
            humantime::format_duration(Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_millis() >= 500)));
        let wait_ms = wait.as_millis() as u64;
        match stall {
            Stall::RateLimited => {
                tracing::warn!(wait = %shown, wait_ms, "rate limited by the API: every worker pauses");
            }
            Stall::Spent => {
                tracing::warn!(wait = %shown, wait_ms, "the API's rate-limit budget is spent: requests wait for it");
            }
        }
    }
}
