//! Retry timing. This is the only module that knows the `backoff` crate, which
//! RustSec lists as unmaintained (RUSTSEC-2025-0012): swapping it for `backon`
//! means rewriting this file and nothing else.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

/// How hard to try one certificate.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts from 0.5 s doubling to 60 s ride out several minutes of
    /// trouble: the official SDKs give up after two retries, well before a
    /// 5-minute rate-limit block lifts.
    fn default() -> Self {
        RetryPolicy { max_attempts: 8, initial_delay: Duration::from_millis(500), max_delay: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    pub fn schedule(&self) -> RetrySchedule {
        let backoff = ExponentialBackoff {
            current_interval: self.initial_delay,
            initial_interval: self.initial_delay,
            randomization_factor: 0.5,
            multiplier: 2.0,
            max_interval: self.max_delay,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        RetrySchedule { backoff, attempts: 1, max_attempts: self.max_attempts }
    }
}

/// The delays between one certificate's attempts: exponential with jitter.
pub struct RetrySchedule {
    backoff: ExponentialBackoff,
    attempts: u32,
    max_attempts: u32,
}

impl RetrySchedule {
    /// The wait before the next attempt, or `None` once attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempts >= self.max_attempts {
            return None;
        }
        self.attempts += 1;
        self.backoff.next_backoff()
    }

    /// The attempt about to be made (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stop_at_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        };
        let mut schedule = policy.schedule();
        let delays: Vec<Duration> = std::iter::from_fn(|| schedule.next_delay()).collect();
        assert_eq!(delays.len(), 4);
        assert_eq!(schedule.attempt(), 5);
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(150), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(600)), "{delays:?}");
        assert!(delays[3] >= Duration::from_millis(200), "{delays:?}");
    }

    #[test]
    fn a_single_attempt_never_retries() {
        let mut schedule = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }.schedule();
        assert_eq!(schedule.next_delay(), None);
    }
}
