//! `cfrevoke verify`: a GET of each certificate a revoke run revoked, because
//! the responder's question is "are they locked out", and a DELETE's answer
//! only says `pending_revocation`. With a [`Poll`], a certificate still
//! pending is read again, no more often than the interval, until it is
//! `revoked` or the deadline passes. Every read goes through the dispatcher,
//! so the pacer, the retries and the shared 429 pause apply to each one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{codes, CertStatus, CertificateState};
use crate::input::reader::Row;
use crate::operations::certificate::{halt_on_401, read, result_row};
use crate::outcome::Outcome;
use crate::output::results::ResultRow;
use crate::pipeline::dispatcher::{Dispatcher, Settled};

/// `verify --until revoked`: how often a certificate still pending is read
/// again, and for how long the run keeps at it. Plain durations, so a test
/// can make them small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// No certificate is read more often than this.
    pub interval: Duration,
    /// From the start of the run; no read is sent after it.
    pub deadline: Duration,
}

/// Reads one certificate (and, with `poll`, again while it is pending).
/// `None` when the run stopped before the first GET was sent: the pair is
/// left for a resume. `begun`: the start of the run, which the deadline
/// counts from.
pub async fn verify(dispatcher: Arc<Dispatcher>, row: Row, poll: Option<Poll>, begun: Instant) -> Option<ResultRow> {
    let schedule = poll.map(|poll| (poll, begun + poll.deadline));
    let read = || async {
        let settled = read(&dispatcher, &row).await?;
        halt_on_401(&dispatcher, &settled);
        Some(settled)
    };
    let settled = poll_until_settled(schedule, &dispatcher.stop, read).await?;
    let (outcome, error) = judge(&settled, poll.is_some());
    let mut done = result_row(&row, &settled, outcome, error);
    done.verified_status = done.cert_status;
    // Every row that is not `revoked` gets the collector's warning; this
    // one is worse than a delay, and says so.
    if outcome == Outcome::Active {
        tracing::warn!(
            "ACTIVE AGAIN: certificate {} in zone {} is {}: someone reactivated it, and it gets in",
            row.cert,
            row.zone,
            done.cert_status.unwrap_or_default()
        );
    }
    Some(done)
}

/// Whether the read's final answer shows the certificate still on its way
/// out: the only state worth reading again.
fn pending(settled: &Settled<CertificateState>) -> bool {
    settled.final_answer().is_ok_and(|reply| reply.cert_status() == Some(CertStatus::PendingRevocation))
}

/// The last read of a certificate: `read` once, and with `schedule` (the
/// poll and its deadline as an instant) again while it is pending. The next
/// read waits a whole interval after the previous one was answered, so no
/// two are closer than the interval whatever the pacer made them wait; no
/// read is started that could not begin before the deadline. A stop while
/// waiting keeps the last answer: that read was made, and its row records it.
async fn poll_until_settled<F, Fut>(
    schedule: Option<(Poll, Instant)>,
    stop: &CancellationToken,
    mut read: F,
) -> Option<Settled<CertificateState>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Settled<CertificateState>>>,
{
    let mut last = read().await?;
    let Some((poll, deadline)) = schedule else {
        return Some(last);
    };
    while pending(&last) {
        let next = Instant::now() + poll.interval;
        if next > deadline {
            break;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(next) => {}
        }
        match read().await {
            Some(settled) => last = settled,
            None => break,
        }
    }
    Some(last)
}

/// The outcome of the last read, and the error to record.
fn judge(settled: &Settled<CertificateState>, polled: bool) -> (Outcome, (Option<i64>, String)) {
    let reply = match settled.final_answer() {
        Ok(reply) => reply,
        Err(error) => return (Outcome::Failed, error),
    };
    let (code, message) = reply.error();
    match (reply.status, code, reply.cert_status()) {
        (404, ..) | (_, Some(codes::CERT_NOT_FOUND), _) => (Outcome::NotFound, (code, message)),
        (200..=299, _, Some(CertStatus::Revoked)) => (Outcome::Revoked, (None, String::new())),
        (200..=299, _, Some(CertStatus::PendingRevocation)) => {
            let when = if polled { " when the deadline passed" } else { "" };
            (Outcome::PendingRevocation, (None, format!("still pending_revocation{when}: not locked out yet")))
        }
        (200..=299, _, Some(CertStatus::Active | CertStatus::PendingReactivation)) => {
            (Outcome::Active, (None, "reactivated since the revoke: this certificate gets in".into()))
        }
        (200..=299, _, None) => (Outcome::Failed, (code, "the answer gives no certificate status".into())),
        _ => (Outcome::Failed, (code, message)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::api::Envelope;
    use crate::client::ApiReply;

    fn read_as(status: Option<CertStatus>) -> Settled<CertificateState> {
        let state = CertificateState { id: None, status };
        Settled {
            answer: Ok(ApiReply::bare(200, Ok(Envelope::ok(state)))),
            mismatch: None,
            attempts: 1,
            gave_up: false,
            interrupted: false,
            lost_reply: false,
            started: std::time::Instant::now(),
        }
    }

    /// Polls a certificate that stays pending for `pending_reads` reads
    /// (each taking `latency`), and returns when each read began.
    async fn schedule(
        poll: Poll,
        pending_reads: usize,
        latency: Duration,
    ) -> (Vec<Instant>, Settled<CertificateState>) {
        let begun = Instant::now();
        let reads = Mutex::new(Vec::new());
        let read = || {
            let n = {
                let mut reads = reads.lock().unwrap();
                reads.push(Instant::now());
                reads.len()
            };
            async move {
                tokio::time::sleep(latency).await;
                let status = if n > pending_reads { CertStatus::Revoked } else { CertStatus::PendingRevocation };
                Some(read_as(Some(status)))
            }
        };
        let last = poll_until_settled(Some((poll, begun + poll.deadline)), &CancellationToken::new(), read).await;
        (reads.into_inner().unwrap(), last.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_certificate_is_read_no_more_often_than_the_interval() {
        let poll = Poll { interval: Duration::from_secs(30), deadline: Duration::from_secs(600) };
        let latency = Duration::from_millis(700);
        let (reads, last) = schedule(poll, 3, latency).await;
        assert_eq!(reads.len(), 4, "three pending reads, then the one that sees it revoked");
        for pair in reads.windows(2) {
            assert_eq!(pair[1] - pair[0], poll.interval + latency, "a whole interval after each answer");
        }
        assert_eq!(judge(&last, true).0, Outcome::Revoked);
    }

    #[tokio::test(start_paused = true)]
    async fn no_read_starts_past_the_deadline() {
        let poll = Poll { interval: Duration::from_secs(30), deadline: Duration::from_secs(100) };
        let begun = Instant::now();
        let (reads, last) = schedule(poll, usize::MAX, Duration::from_millis(100)).await;
        // Reads at 0, 30.1, 60.2, 90.3 s; the next would be at 120.4 s.
        assert_eq!(reads.len(), 4);
        assert!(reads.iter().all(|&at| at <= begun + poll.deadline));
        assert!(Instant::now() < begun + poll.deadline, "no waiting for a read that will not be sent");
        let (outcome, (_, why)) = judge(&last, true);
        assert_eq!(outcome, Outcome::PendingRevocation);
        assert_eq!(why, "still pending_revocation when the deadline passed: not locked out yet");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_while_waiting_keeps_the_last_read() {
        let stop = CancellationToken::new();
        let poll = Poll { interval: Duration::from_secs(30), deadline: Duration::from_secs(600) };
        let reads = Mutex::new(0);
        let read = || {
            *reads.lock().unwrap() += 1;
            stop.cancel();
            async { Some(read_as(Some(CertStatus::PendingRevocation))) }
        };
        let last = poll_until_settled(Some((poll, Instant::now() + poll.deadline)), &stop, read).await.unwrap();
        assert_eq!(*reads.lock().unwrap(), 1);
        assert_eq!(judge(&last, true).0, Outcome::PendingRevocation);
    }

    #[test]
    fn what_a_read_says_about_the_lockout() {
        let outcome = |status| judge(&read_as(status), false).0;
        assert_eq!(outcome(Some(CertStatus::Revoked)), Outcome::Revoked);
        assert_eq!(outcome(Some(CertStatus::PendingRevocation)), Outcome::PendingRevocation);
        assert_eq!(outcome(Some(CertStatus::Active)), Outcome::Active);
        assert_eq!(outcome(Some(CertStatus::PendingReactivation)), Outcome::Active);
        assert_eq!(outcome(None), Outcome::Failed);
        let mut missing = read_as(None);
        missing.answer = Ok(ApiReply::bare(404, Ok(Envelope::error(codes::CERT_NOT_FOUND, "not found"))));
        assert_eq!(judge(&missing, false).0, Outcome::NotFound);
    }
}
