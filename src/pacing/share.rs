//! Another tool spending the same quota: told from the API's counts, and
//! left its share by spacing this run's requests.

use std::time::Duration;

use tokio::time::Instant;

use super::headers::Policy;

/// What this run has seen of another consumer of the quota, and the
/// spacing that leaves it its share.
#[derive(Debug, Default)]
pub(super) struct Share {
    /// This run's first request, and others' count in the first answer to
    /// name the quota. A tool already at work when this run started shows
    /// its whole use in that first count. One that starts with this run does
    /// not: until a whole window has passed, its use since then is only part
    /// of what it will use in one, and is scaled up to match.
    first_sent: Option<Instant>,
    others_at_first: Option<u32>,
    /// The spacing that leaves other consumers their observed share.
    spacing: Option<Duration>,
    /// When the latest request took its send slot.
    last_sent: Option<Instant>,
}

impl Share {
    /// A request was let through the budget at `now`: the first one starts
    /// the time another tool's use is measured over.
    pub(super) fn claimed(&mut self, now: Instant) {
        self.first_sent.get_or_insert(now);
    }

    /// Whether another tool is seen to spend the quota.
    pub(super) fn is_shared(&self) -> bool {
        self.spacing.is_some()
    }

    /// The next send slot the spacing that leaves another tool its share
    /// allows, if another tool shares the quota.
    pub(super) fn next_slot(&self) -> Option<Instant> {
        self.spacing.zip(self.last_sent).map(|(spacing, last)| last + spacing)
    }

    /// A request took its send slot at `now`.
    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    /// Takes in a count in which `others` requests of `policy`'s window were
    /// not this run's, and paces at what the other tool leaves once it uses
    /// more than the `reserve` that rounding explains.
    pub(super) fn observed(&mut self, others: u32, policy: Policy, now: Instant, reserve: u32) {
        let before = *self.others_at_first.get_or_insert(others);
        let seen_for = self.first_sent.map_or(policy.window, |first| now.saturating_duration_since(first));
        let part = (seen_for.as_secs_f64() / policy.window.as_secs_f64()).clamp(0.05, 1.0);
        let others = others.max((f64::from(others.saturating_sub(before)) / part).ceil() as u32).min(policy.quota);
        // Left unused when sharing: the other tool's use between two answers
        // cannot be seen.
        let headroom = (policy.quota / 10).max(1);
        let room = policy.quota.saturating_sub(others.saturating_add(headroom)).max(1);
        self.spacing = (others > reserve).then(|| policy.window / room);
    }
}
