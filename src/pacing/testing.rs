//! What the pacing tests build their answers from.

use std::time::Duration;

use super::headers::{Policy, Remaining};

pub fn remaining(requests: u32, reset_secs: u64) -> Option<Remaining> {
    Some(Remaining { requests, reset: Duration::from_secs(reset_secs) })
}

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An announced quota per 300 s.
pub fn policy(quota: u32) -> Option<Policy> {
    Some(Policy { quota, window: Duration::from_secs(300) })
}

pub fn per_second(quota: u32) -> Option<Policy> {
    Some(Policy { quota, window: Duration::from_secs(1) })
}
