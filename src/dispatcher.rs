//! The dispatcher: paces every request through the shared [`Pacer`], retries
//! what is worth retrying, and fans jobs out to at most `concurrency` workers.
//! What an answer means for a row is the operation's business
//! ([`crate::revocation`]); this module only knows which answers are
//! transient.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::codes;
use crate::client::{ApiClient, Reply, TransportError};
use crate::ids::{CertId, ZoneId};
use crate::input::Row;
use crate::queue::Queue;
use crate::rate::{Pacer, LONGEST_WAIT};
use crate::results::ResultRow;
use crate::retry::{RetryPolicy, RetrySchedule};

/// Why a run ended before every job was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// 401 (or 401/403 on the credentials check): the token is dead.
    CredentialsRefused(String),
    /// The API could not be reached for the credentials check.
    Unreachable(String),
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The results file could not be written.
    Output(String),
    /// The input could not be read again for pass two.
    Input(String),
    /// Row after row failed the same final way.
    Systemic { status: Option<u16>, why: String },
}

/// What is being sent, for the per-attempt log event.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub method: &'static str,
    pub line: Option<u64>,
    pub zone: ZoneId,
    pub cert: Option<CertId>,
    /// The page of a listing.
    pub page: Option<u32>,
}

impl Request {
    pub fn for_row(method: &'static str, row: &Row) -> Self {
        Request { method, line: Some(row.line), zone: row.zone, cert: Some(row.cert), page: None }
    }

    pub fn for_page(zone: ZoneId, page: u32) -> Self {
        Request { method: "GET", line: None, zone, cert: None, page: Some(page) }
    }
}

/// The last answer of a request that is done retrying.
#[derive(Debug)]
pub struct Settled<T> {
    pub answer: Result<Reply<T>, TransportError>,
    pub attempts: u32,
    /// Attempts ran out while the answer was still transient.
    pub gave_up: bool,
    /// When the first attempt was paced, waits included from there on.
    pub started: Instant,
}

/// An answer worth trying again.
struct Transient {
    rate_limited: bool,
    after: Option<Duration>,
}

/// Which answers are transient. Cloudflare documents only 200 and "4XX";
/// the rest follows what API-NOTES.md records as observed.
fn transient<T>(reply: &Reply<T>) -> Option<Transient> {
    let code = reply.body.as_ref().ok().and_then(|e| e.first_error()).map(|e| e.code);
    let rate_limited = reply.status == 429 || matches!(code, Some(codes::RATE_LIMITED | codes::RATE_LIMITED_OLD));
    let garbled_success = (200..300).contains(&reply.status) && !reply.body.as_ref().is_ok_and(|e| e.success);
    // A 400 cut short could be "already revoked" (success) or a real refusal:
    // only another look can tell. 401, 403 and 404 mean what they mean
    // whatever the body says.
    let unreadable = reply.body.is_err() && !matches!(reply.status, 401 | 403 | 404);
    (rate_limited || garbled_success || unreadable || matches!(reply.status, 408 | 500..=599))
        .then_some(Transient { rate_limited, after: reply.retry_after })
}

/// What to do after a failed attempt.
enum Wait {
    Again,
    GiveUp,
    Stopped,
}

/// Shared by every job of one run.
pub struct Dispatcher {
    pub client: ApiClient,
    pub pacer: Pacer,
    pub retry: RetryPolicy,
    pub concurrency: usize,
    pub stop: CancellationToken,
    /// Requests sent, every attempt counted, for the summary's effective rate.
    pub requests: AtomicU64,
    reason: Mutex<Option<StopReason>>,
}

impl Dispatcher {
    pub fn new(client: ApiClient, pacer: Pacer, retry: RetryPolicy, concurrency: usize) -> Self {
        Dispatcher {
            client,
            pacer,
            retry,
            concurrency: concurrency.max(1),
            stop: CancellationToken::new(),
            requests: AtomicU64::new(0),
            reason: Mutex::new(None),
        }
    }

    /// Stops the run; the first reason given is the one reported.
    pub fn halt(&self, reason: StopReason) {
        self.reason.lock().expect("stop reason lock").get_or_insert(reason);
        self.stop.cancel();
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.reason.lock().expect("stop reason lock").clone()
    }

    /// Waits for the pacer and returns when the request was let go, or
    /// `None` if the run is stopping.
    async fn paced(&self) -> Option<tokio::time::Instant> {
        let sent = tokio::select! {
            sent = self.pacer.ready() => sent,
            () = self.stop.cancelled() => return None,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        Some(sent)
    }

    /// Sends a request until it gets a final answer or attempts run out,
    /// pacing every attempt. `None` when the run stopped first.
    pub async fn send<T, F, Fut>(&self, request: &Request, mut send: F) -> Option<Settled<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Reply<T>, TransportError>>,
    {
        let mut schedule = self.retry.schedule();
        let mut started = None;
        loop {
            let sent = self.paced().await?;
            let started = *started.get_or_insert_with(Instant::now);
            let attempts = schedule.attempt();
            let answer = send().await;
            match &answer {
                Ok(reply) if reply.status == 429 => self.pacer.refused(reply.policy),
                Ok(reply) => self.pacer.answered(sent, reply.remaining, reply.policy),
                Err(_) => self.pacer.answered(sent, None, None),
            }
            let retry = match &answer {
                Ok(reply) => transient(reply),
                Err(_) => Some(Transient { rate_limited: false, after: None }),
            };
            let Some(Transient { rate_limited, after }) = retry else {
                log_attempt(request, attempts, &answer, "final", None);
                return Some(Settled { answer, attempts, gave_up: false, started });
            };
            let wait = self.wait_to_retry(&mut schedule, rate_limited, after);
            log_attempt(request, attempts, &answer, if wait.is_some() { "retry" } else { "give_up" }, wait);
            match self.sleep(wait, rate_limited).await {
                Wait::Again => {}
                Wait::GiveUp => return Some(Settled { answer, attempts, gave_up: true, started }),
                Wait::Stopped => return None,
            }
        }
    }

    /// The wait before the next attempt, or `None` when attempts are used up.
    /// A 429 pauses every worker through the pacer.
    fn wait_to_retry(
        &self,
        schedule: &mut RetrySchedule,
        rate_limited: bool,
        after: Option<Duration>,
    ) -> Option<Duration> {
        let backoff = schedule.next_delay()?;
        let delay = after.map_or(backoff, |d| d.min(LONGEST_WAIT));
        if rate_limited {
            self.pacer.pause_for(delay);
        }
        Some(delay)
    }

    /// A rate-limited worker waits at the pacer like every other one; the
    /// rest sleep out their own backoff.
    async fn sleep(&self, wait: Option<Duration>, rate_limited: bool) -> Wait {
        let Some(delay) = wait else {
            return Wait::GiveUp;
        };
        if rate_limited {
            return Wait::Again;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => Wait::Again,
            () = self.stop.cancelled() => Wait::Stopped,
        }
    }

    /// Proves the credentials with one read-only request before anything is
    /// revoked: a GET of the first certificate. Any final answer other than
    /// 401/403 (a 404 included) shows the token is accepted.
    pub async fn check_credentials(&self, row: Row) -> Result<(), StopReason> {
        let request = Request::for_row("GET", &row);
        let stopped = || self.stop_reason().unwrap_or(StopReason::Interrupted);
        let settled = self.send(&request, || self.client.get(row.zone, row.cert)).await.ok_or_else(stopped)?;
        match &settled.answer {
            Ok(reply) if matches!(reply.status, 401 | 403) => Err(StopReason::CredentialsRefused(reply.describe())),
            _ if settled.gave_up || settled.answer.is_err() => {
                let last = match &settled.answer {
                    Ok(reply) => reply.describe(),
                    Err(e) => e.to_string(),
                };
                Err(StopReason::Unreachable(format!("gave up after {} attempt(s): {last}", settled.attempts)))
            }
            _ => Ok(()),
        }
    }

    /// Runs `work` on every job from `jobs` with `concurrency` workers, until
    /// the queue is empty or the run is stopped. Jobs still queued when it
    /// stops are not taken: they have no results row and a resume does them.
    ///
    /// The workers are long-lived tasks that take the next job as they finish
    /// one, rather than a task spawned per job from a coordinating loop: that
    /// loop ran on the caller's thread, so every job cost handoffs between
    /// threads (a permit back, a task out) besides its request.
    pub async fn run<W, Fut>(self: Arc<Self>, jobs: Queue, results: mpsc::Sender<ResultRow>, work: W)
    where
        W: Fn(Arc<Dispatcher>, Row) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<ResultRow>> + Send + 'static,
    {
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        let work = Arc::new(work);
        let mut workers = JoinSet::new();
        for _ in 0..self.concurrency {
            let (dispatcher, jobs, work, results) =
                (Arc::clone(&self), Arc::clone(&jobs), Arc::clone(&work), results.clone());
            workers.spawn(async move {
                while let Some(row) = dispatcher.next_job(&jobs).await {
                    if let Some(done) = work(Arc::clone(&dispatcher), row).await {
                        // The collector only goes away once every sender is gone.
                        let _ = results.send(done).await;
                    }
                }
            });
        }
        drop(results);
        while let Some(joined) = workers.join_next().await {
            surface_panic(joined);
        }
    }

    /// The next job, or `None` once the queue is empty or the run is stopping.
    async fn next_job(&self, jobs: &tokio::sync::Mutex<Queue>) -> Option<Row> {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => None,
            row = async { jobs.lock().await.next().await } => row,
        }
    }
}

fn surface_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// One structured event per attempt: what the log file is for.
fn log_attempt<T>(
    request: &Request,
    attempt: u32,
    answer: &Result<Reply<T>, TransportError>,
    verdict: &str,
    retry_in: Option<Duration>,
) {
    let reply = answer.as_ref().ok();
    tracing::debug!(
        target: "cfrevoke::attempt",
        method = request.method,
        line = request.line,
        zone_id = %request.zone,
        certificate_id = request.cert.map(tracing::field::display),
        page = request.page,
        attempt,
        status = reply.map(|r| r.status),
        latency_ms = reply.map(|r| r.latency.as_millis() as u64),
        retry_after_ms = reply.and_then(|r| r.retry_after).map(|d| d.as_millis() as u64),
        retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
        cf_ray = reply.and_then(|r| r.cf_ray.as_deref()),
        error = answer.as_ref().err().map(tracing::field::display),
        verdict,
        "attempt"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateState, Envelope};

    pub(crate) fn reply(status: u16, body: Result<Envelope<CertificateState>, String>) -> Reply {
        Reply::bare(status, body)
    }

    fn err(code: i64) -> Result<Envelope<CertificateState>, String> {
        Ok(Envelope::error(code, "msg"))
    }

    #[test]
    fn transient_answers_are_retried() {
        assert!(transient(&reply(429, Err("empty response body".into()))).is_some_and(|t| t.rate_limited));
        assert!(transient(&reply(400, err(971))).is_some_and(|t| t.rate_limited));
        for status in [408, 500, 502, 503, 504] {
            assert!(transient(&reply(status, err(1000))).is_some_and(|t| !t.rate_limited), "{status}");
        }
        assert!(transient(&reply(200, Err("truncated".into()))).is_some());
        assert!(transient(&reply(400, Err("truncated".into()))).is_some(), "1407 or a refusal: ask again");
    }

    #[test]
    fn final_answers_are_not() {
        assert!(transient(&reply(200, Ok(Envelope::ok(CertificateState::default())))).is_none());
        for (status, code) in [(400, 1407), (404, 1415), (403, 9109), (401, 10000), (400, 1002)] {
            assert!(transient(&reply(status, err(code))).is_none(), "{status}");
        }
        for status in [401, 403, 404] {
            assert!(transient(&reply(status, Err("an edge's HTML page".into()))).is_none(), "{status}");
        }
    }
}
