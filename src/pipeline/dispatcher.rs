//! The dispatcher: paces every request through the shared [`Pacer`], retries
//! what is worth retrying, and fans jobs out to workers, with at most
//! `concurrency` requests in flight.
//! What an answer means for a row is the operation's business
//! ([`crate::operations::revocation`]); this module only knows which answers are
//! transient, holds every 2xx to what the operation said it must show
//! ([`Expect`]), and remembers whether an earlier attempt may have been
//! carried out unseen.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{codes, maybe_carried_out, CertStatus, CertificateState, ClientCertificate, Ruleset, Zone};
use crate::client::{ApiClient, ApiReply, TransportError};
use crate::input::ids::{CertId, ZoneId};
use crate::input::reader::Row;
use crate::output::events;
use crate::output::results::ResultRow;
use crate::pacing::headers::Dialect;
use crate::pacing::retry::{RetryPolicy, RetrySchedule};
use crate::pacing::{Pacer, Rate, LONGEST_WAIT};
use crate::pipeline::ledger_watch::Sends;
use crate::pipeline::queue::Queue;

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

/// What is being sent, for the per-attempt log event, and what a 2xx must
/// show to answer it.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub method: &'static str,
    pub line: Option<u64>,
    /// `None` for a request about no one zone (`GET /zones`).
    pub zone: Option<ZoneId>,
    pub cert: Option<CertId>,
    /// The page of a listing.
    pub page: Option<u32>,
    pub expect: Expect,
}

/// What a 2xx must show about the request's certificate to be its answer.
/// A success status alone proves nothing: a proxy, a cache or a bug can
/// answer 200 for work that was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any 2xx will do: the credentials check, a page of a listing.
    Anything,
    /// The result is the request's certificate, in one of these statuses
    /// (any, if none is named).
    Certificate(&'static [CertStatus]),
}

impl Request {
    pub fn for_row(method: &'static str, row: &Row) -> Self {
        Request {
            method,
            line: Some(row.line),
            zone: Some(row.zone),
            cert: Some(row.cert),
            page: None,
            expect: Expect::Anything,
        }
    }

    pub fn for_page(zone: ZoneId, page: u32) -> Self {
        Request { method: "GET", line: None, zone: Some(zone), cert: None, page: Some(page), expect: Expect::Anything }
    }

    /// A page of `GET /zones`, for zone names and `--all-zones`.
    pub fn for_zones_page(page: u32) -> Self {
        Request { method: "GET", line: None, zone: None, cert: None, page: Some(page), expect: Expect::Anything }
    }

    /// A read of the zone's custom rules, for the enforcement check.
    pub fn for_rules(zone: ZoneId) -> Self {
        Request { method: "GET", line: None, zone: Some(zone), cert: None, page: None, expect: Expect::Anything }
    }

    /// A 2xx must show this request's certificate in one of `statuses`.
    pub fn expecting(self, statuses: &'static [CertStatus]) -> Self {
        Request { expect: Expect::Certificate(statuses), ..self }
    }
}

/// A result the dispatcher can hold to a request's [`Expect`].
pub trait Answer {
    /// Why a 2xx carrying `result` does not answer `request`, if it does not.
    fn mismatch(result: Option<&Self>, request: &Request) -> Option<String>;
}

impl Answer for CertificateState {
    fn mismatch(result: Option<&Self>, request: &Request) -> Option<String> {
        let (Expect::Certificate(statuses), Some(cert)) = (request.expect, request.cert) else {
            return None;
        };
        let Some(state) = result else {
            return Some("the answer carries no certificate".into());
        };
        match (state.id, state.status) {
            (None, _) => Some("the answer names no certificate".into()),
            (Some(id), _) if id != cert => Some(format!("the answer is about certificate {id}, not {cert}")),
            (_, Some(status)) if statuses.is_empty() || statuses.contains(&status) => None,
            (_, Some(status)) => Some(format!("the answer says the certificate is {}", status.as_str())),
            (_, None) if statuses.is_empty() => None,
            (_, None) => Some("the answer gives no certificate status".into()),
        }
    }
}

impl Answer for Vec<ClientCertificate> {
    fn mismatch(_: Option<&Self>, _: &Request) -> Option<String> {
        None
    }
}

impl Answer for Vec<Zone> {
    fn mismatch(_: Option<&Self>, _: &Request) -> Option<String> {
        None
    }
}

impl Answer for Ruleset {
    fn mismatch(_: Option<&Self>, _: &Request) -> Option<String> {
        None
    }
}

/// [`maybe_carried_out`] for one attempt: a connection that was never made
/// carried nothing.
fn attempt_maybe_carried_out<T>(answer: &Result<ApiReply<T>, TransportError>) -> bool {
    match answer {
        Err(error) => error.may_have_reached_api(),
        Ok(reply) => maybe_carried_out(Some(reply.status)),
    }
}

/// The last answer of a request that is done retrying.
#[derive(Debug)]
pub struct Settled<T> {
    pub answer: Result<ApiReply<T>, TransportError>,
    /// Why the 2xx in `answer` does not answer the request (see [`Expect`]).
    pub mismatch: Option<String>,
    pub attempts: u32,
    /// Attempts ran out while the answer was still transient.
    pub gave_up: bool,
    /// The run stopped before a retry: the request was attempted but has no
    /// final answer.
    pub interrupted: bool,
    /// An attempt before the last may have been carried out without an
    /// answer saying so, so a refusal such as "already revoked" may be this
    /// request's own doing.
    pub lost_reply: bool,
    /// When the first attempt was paced, waits included from there on.
    pub started: Instant,
}

impl<T> Settled<T> {
    /// The last answer in words.
    pub fn last(&self) -> String {
        match (&self.answer, &self.mismatch) {
            (Err(e), _) => e.to_string(),
            (Ok(reply), Some(why)) => format!("HTTP {}: {why}", reply.status),
            (Ok(reply), None) => reply.describe(),
        }
    }

    /// Why there is no final answer once attempts ran out, as every message
    /// about such a request (a results row, a listing's error) words it.
    pub fn exhausted(&self) -> String {
        format!("gave up after {} attempt(s): {}", self.attempts, self.last())
    }

    /// The final answer, or why there is none as a results row records it:
    /// the API's error code, if any, and a message.
    pub fn final_answer(&self) -> Result<&ApiReply<T>, (Option<i64>, String)> {
        match &self.answer {
            Ok(reply) if !self.gave_up && !self.interrupted => Ok(reply),
            answer => {
                let why = if self.interrupted {
                    format!("the run stopped after {} attempt(s); the last: {}", self.attempts, self.last())
                } else if self.gave_up {
                    self.exhausted()
                } else {
                    // A final error (a TLS failure, a refused tunnel): nothing
                    // was given up, retrying would not have helped.
                    self.last()
                };
                Err((answer.as_ref().ok().and_then(|r| r.error().0), why))
            }
        }
    }
}

/// An answer worth trying again.
#[derive(Clone, Copy)]
struct Transient {
    rate_limited: bool,
    /// The server's `Retry-After`, clipped to [`LONGEST_WAIT`].
    after: Option<Duration>,
}

/// Which answers are transient. Cloudflare documents only 200 and "4XX";
/// the rest follows what API-NOTES.md records as observed.
fn transient<T>(reply: &ApiReply<T>) -> Option<Transient> {
    let code = reply.body.as_ref().ok().and_then(|e| e.first_error()).map(|e| e.code);
    let rate_limited = reply.status == 429 || matches!(code, Some(codes::RATE_LIMITED | codes::RATE_LIMITED_OLD));
    let garbled_success = (200..300).contains(&reply.status) && !reply.body.as_ref().is_ok_and(|e| e.success);
    // A 400 cut short could be "already revoked" (success) or a real refusal:
    // only another look can tell. A redirect, 401, 403 and 404 mean what they
    // mean whatever the body says.
    let unreadable = reply.body.is_err() && !matches!(reply.status, 300..=399 | 401 | 403 | 404);
    (rate_limited || garbled_success || unreadable || matches!(reply.status, 408 | 500..=599))
        .then_some(Transient { rate_limited, after: reply.retry_after.map(|d| d.min(LONGEST_WAIT)) })
}

/// Why a 2xx does not answer `request`: its envelope is readable and says
/// success, but its result is not what the request asked for.
fn unanswered<T: Answer>(reply: &ApiReply<T>, request: &Request) -> Option<String> {
    let envelope = reply.body.as_ref().ok().filter(|e| e.success && (200..300).contains(&reply.status))?;
    T::mismatch(envelope.result.as_ref(), request)
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
    pub pacer: Arc<Pacer>,
    pub retry: RetryPolicy,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// One permit per request in flight, held from the pacer's wait to the
    /// answer: a worker that waits between requests of one job (a poll)
    /// leaves its place to another.
    in_flight: tokio::sync::Semaphore,
    pub stop: CancellationToken,
    /// Requests sent, every attempt counted, for the summary's effective rate.
    pub requests: AtomicU64,
    /// Answers that were 429, for monitoring: a run that keeps hitting the
    /// quota is one to slow down before it is one that fails.
    pub rate_limited: AtomicU64,
    reason: Mutex<Option<StopReason>>,
    /// Where each request let go is noted for the ledger, if one is kept.
    sends: Option<Sends>,
}

impl Dispatcher {
    pub fn new(client: ApiClient, pacer: impl Into<Arc<Pacer>>, retry: RetryPolicy, concurrency: usize) -> Self {
        Dispatcher {
            client,
            pacer: pacer.into(),
            retry,
            concurrency: concurrency.max(1),
            in_flight: tokio::sync::Semaphore::new(concurrency.max(1)),
            stop: CancellationToken::new(),
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            reason: Mutex::new(None),
            sends: None,
        }
    }

    /// Notes every request let go in the ledger, through `sends`.
    pub fn noting(self, sends: Option<Sends>) -> Self {
        Dispatcher { sends, ..self }
    }

    /// Stops the run; the first reason given is the one reported.
    pub fn halt(&self, reason: StopReason) {
        self.reason.lock().expect("stop reason lock").get_or_insert(reason);
        self.stop.cancel();
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.reason.lock().expect("stop reason lock").clone()
    }

    /// Waits for a place in flight, then for the pacer, and returns when
    /// the request was let go (with its place), or `None` if the run is
    /// stopping.
    async fn paced(&self) -> Option<(tokio::sync::SemaphorePermit<'_>, tokio::time::Instant)> {
        // Biased: once the run has stopped, a pacer that happens to be ready
        // too must not let one more request out.
        let sent = tokio::select! {
            biased;
            () = self.stop.cancelled() => return None,
            sent = async {
                let place = self.in_flight.acquire().await.expect("the semaphore is never closed");
                (place, self.pacer.ready().await)
            } => sent,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(sends) = &self.sends {
            sends.record(sent.1);
        }
        Some(sent)
    }

    /// Sends a request until it gets a final answer or attempts run out,
    /// pacing every attempt. `None` when the run stopped before the first
    /// attempt; once one was sent, a stop still returns the last answer
    /// (marked `interrupted`), because the request was attempted and may
    /// have been carried out.
    pub async fn send<T, F, Fut>(&self, request: &Request, mut send: F) -> Option<Settled<T>>
    where
        T: Answer,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<ApiReply<T>, TransportError>>,
    {
        let mut schedule = self.retry.schedule();
        let mut started = None;
        let mut previous: Option<Settled<T>> = None;
        loop {
            let Some((place, sent)) = self.paced().await else {
                return previous.map(|settled| Settled { interrupted: true, ..settled });
            };
            let started = *started.get_or_insert_with(Instant::now);
            let attempts = schedule.attempt();
            let answer = send().await;
            drop(place);
            let judged = answer.as_ref().ok().and_then(transient);
            match (&answer, judged) {
                (Ok(reply), Some(Transient { rate_limited: true, after })) => {
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    // The block is the account's: every worker pauses, before
                    // the news of the refusal wakes any, and whether or not
                    // this request has an attempt left.
                    let until = self.pacer.pause_for(after.unwrap_or(self.retry.initial_delay));
                    let learned = self.pacer.refused(sent, reply.policy);
                    self.tell_peers(sent, until, learned);
                }
                (Ok(reply), _) => self.pacer.answered(sent, reply.remaining, reply.policy),
                (Err(_), _) => self.pacer.unanswered(sent),
            }
            let mismatch = answer.as_ref().ok().and_then(|reply| unanswered(reply, request));
            let retry = match &answer {
                Ok(_) if mismatch.is_none() => judged,
                Err(error) if error.is_final() => None,
                _ => Some(Transient { rate_limited: false, after: None }),
            };
            let lost_reply = previous.as_ref().is_some_and(|p| p.lost_reply || attempt_maybe_carried_out(&p.answer));
            let mut settled =
                Settled { answer, mismatch, attempts, gave_up: false, interrupted: false, lost_reply, started };
            let Some(Transient { rate_limited, after }) = retry else {
                log_attempt(request, &settled, events::FINAL, None);
                return Some(settled);
            };
            let wait = self.wait_to_retry(&mut schedule, rate_limited, after);
            log_attempt(request, &settled, if wait.is_some() { events::RETRY } else { events::GIVE_UP }, wait);
            match self.sleep(wait, rate_limited).await {
                Wait::Again => previous = Some(settled),
                Wait::GiveUp => {
                    settled.gave_up = true;
                    return Some(settled);
                }
                Wait::Stopped => {
                    settled.interrupted = true;
                    return Some(settled);
                }
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
        let delay = after.unwrap_or(backoff);
        if rate_limited {
            let until = self.pacer.pause_for(delay);
            self.tell_peers(tokio::time::Instant::now(), until, None);
        }
        Some(delay)
    }

    /// Tells the other runs of this credential, by the ledger, of a 429 at
    /// `at`: the account is blocked until `until` for them too, and what it
    /// taught of the quota is theirs as well.
    fn tell_peers(&self, at: tokio::time::Instant, until: tokio::time::Instant, learned: Option<Rate>) {
        if let Some(sends) = &self.sends {
            sends.refused(at, until, learned);
        }
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
    /// 401/403 (a 404 included) shows the token is accepted. Also says
    /// which rate-limit headers the last answer, if any, carried.
    pub async fn check_credentials(&self, row: Row) -> (Result<(), StopReason>, Option<Dialect>) {
        let request = Request::for_row("GET", &row);
        let stopped = || self.stop_reason().unwrap_or(StopReason::Interrupted);
        let Some(settled) = self.send(&request, || self.client.get(row.zone, row.cert)).await else {
            return (Err(stopped()), None);
        };
        let dialect = settled.answer.as_ref().ok().and_then(|reply| reply.dialect);
        let checked = match &settled.answer {
            Ok(reply) if matches!(reply.status, 401 | 403) => Err(StopReason::CredentialsRefused(reply.describe())),
            // A redirect proves nothing about the token, and every request would get one.
            Ok(reply) if (300..400).contains(&reply.status) => Err(StopReason::Unreachable(reply.describe())),
            _ if settled.interrupted => Err(stopped()),
            _ => settled.final_answer().map(drop).map_err(|(_, why)| StopReason::Unreachable(why)),
        };
        (checked, dialect)
    }

    /// Runs `work` on every job from `jobs` with `workers` workers (at least
    /// `concurrency`; more only helps work that waits between its
    /// requests), until the queue is empty or the run is stopped. Jobs still queued when it
    /// stops are not taken: they have no results row and a resume does them.
    ///
    /// The workers are long-lived tasks that take the next job as they finish
    /// one, rather than a task spawned per job from a coordinating loop: that
    /// loop ran on the caller's thread, so every job cost handoffs between
    /// threads (a permit back, a task out) besides its request.
    pub async fn run<W, Fut>(self: Arc<Self>, jobs: Queue, results: mpsc::Sender<ResultRow>, workers: usize, work: W)
    where
        W: Fn(Arc<Dispatcher>, Row) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<ResultRow>> + Send + 'static,
    {
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
        let work = Arc::new(work);
        let count = workers.max(self.concurrency);
        let mut workers = JoinSet::new();
        for _ in 0..count {
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
fn log_attempt<T>(request: &Request, settled: &Settled<T>, verdict: &str, retry_in: Option<Duration>) {
    let answer = &settled.answer;
    let reply = answer.as_ref().ok();
    let error = match (answer, &settled.mismatch) {
        (Err(e), _) => Some(e as &dyn std::fmt::Display),
        (Ok(_), why) => why.as_ref().map(|why| why as &dyn std::fmt::Display),
    };
    tracing::debug!(
        target: "cfrevoke::attempt",
        method = request.method,
        line = request.line,
        zone_id = request.zone.map(tracing::field::display),
        certificate_id = request.cert.map(tracing::field::display),
        page = request.page,
        attempt = settled.attempts,
        status = reply.map(|r| r.status),
        latency_ms = reply.map(|r| r.latency.as_millis() as u64),
        retry_after_ms = reply.and_then(|r| r.retry_after).map(|d| d.as_millis() as u64),
        retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
        cf_ray = reply.and_then(|r| r.cf_ray.as_deref()),
        error = error.map(tracing::field::display),
        verdict,
        "{}",
        events::ATTEMPT
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::api::Envelope;
    use crate::credentials::{Credentials, Secret};

    pub(crate) fn reply(status: u16, body: Result<Envelope<CertificateState>, String>) -> ApiReply {
        ApiReply::bare(status, body)
    }

    fn err(code: i64) -> Result<Envelope<CertificateState>, String> {
        Ok(Envelope::error(code, "msg"))
    }

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const CERT: &str = "568b6b74-7b0c-4755-8840-4e3b8c24adeb";
    const OTHER: &str = "00000000000000000000000000000001";

    fn state(id: Option<&str>, status: Option<CertStatus>) -> CertificateState {
        CertificateState { id: id.map(|id| id.parse().unwrap()), status }
    }

    fn request(method: &'static str) -> Request {
        let row = Row { line: 2, zone: ZONE.parse().unwrap(), cert: CERT.parse().unwrap() };
        Request::for_row(method, &row)
    }

    /// A dispatcher whose client is never used: the tests hand `send` their own answers.
    fn dispatcher(max_attempts: u32) -> Dispatcher {
        dispatcher_with(retry_policy(max_attempts, Duration::from_millis(10), Duration::from_secs(1)), 1)
    }

    fn retry_policy(max_attempts: u32, initial_delay: Duration, max_delay: Duration) -> RetryPolicy {
        RetryPolicy { max_attempts, initial_delay, max_delay }
    }

    /// The pacer's limiter (governor) keeps real time, not tokio's. At the
    /// highest rate it allows, it holds a request back a microsecond of real
    /// time at most, so on the paused clock the time a test reads moves with
    /// the dispatcher's own waits (and the answers' latency) alone.
    fn dispatcher_with(retry: RetryPolicy, concurrency: usize) -> Dispatcher {
        let base = "http://127.0.0.1:9/client/v4".parse().unwrap();
        let client = ApiClient::new(base, &Credentials::Token(Secret::new("t")), Duration::from_secs(1)).unwrap();
        let fastest = crate::pacing::MAX_PER_SECOND;
        Dispatcher::new(client, Pacer::new(format!("{fastest}/s").parse().unwrap()), retry, concurrency)
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

    #[test]
    fn a_2xx_answers_only_what_it_shows() {
        const GONE: &[CertStatus] = &[CertStatus::PendingRevocation, CertStatus::Revoked];
        let delete = request("DELETE").expecting(GONE);
        let pending = state(Some(CERT), Some(CertStatus::PendingRevocation));
        let answered = |reply: &ApiReply| unanswered(reply, &delete);
        assert_eq!(answered(&reply(200, Ok(Envelope::ok(pending)))), None);
        let active = reply(200, Ok(Envelope::ok(state(Some(CERT), Some(CertStatus::Active)))));
        assert_eq!(answered(&active).unwrap(), "the answer says the certificate is active");
        let other = reply(200, Ok(Envelope::ok(state(Some(OTHER), Some(CertStatus::PendingRevocation)))));
        assert_eq!(answered(&other).unwrap(), format!("the answer is about certificate {OTHER}, not {CERT}"));
        let mut empty = Envelope::ok(pending);
        empty.result = None;
        assert_eq!(answered(&reply(200, Ok(empty))).unwrap(), "the answer carries no certificate");
        let anonymous = reply(200, Ok(Envelope::ok(state(None, Some(CertStatus::Revoked)))));
        assert_eq!(answered(&anonymous).unwrap(), "the answer names no certificate");
        let silent = reply(200, Ok(Envelope::ok(state(Some(CERT), None))));
        assert_eq!(answered(&silent).unwrap(), "the answer gives no certificate status");
        // A read-back takes any status, but only of its own certificate.
        let get = request("GET").expecting(&[]);
        assert_eq!(unanswered(&active, &get), None);
        assert!(unanswered(&other, &get).is_some());
        // Refusals and unexpecting requests are judged elsewhere.
        assert_eq!(answered(&reply(400, err(1407))), None);
        assert_eq!(unanswered(&active, &request("GET")), None);
    }

    #[test]
    fn what_may_hide_a_carried_out_request() {
        for status in [None, Some(200), Some(204), Some(500), Some(502), Some(520)] {
            assert!(maybe_carried_out(status), "{status:?}");
        }
        for status in [Some(400), Some(403), Some(404), Some(408), Some(429), Some(301)] {
            assert!(!maybe_carried_out(status), "{status:?}");
        }
        assert!(!attempt_maybe_carried_out::<CertificateState>(&Err(TransportError::Connect("refused".into()))));
        assert!(attempt_maybe_carried_out::<CertificateState>(&Err(TransportError::Timeout(Duration::from_secs(1)))));
    }

    /// `send` with `answer(n)` for the n-th attempt (from 0).
    async fn settle(
        dispatcher: &Dispatcher,
        request: Request,
        answer: impl Fn(u32) -> Result<ApiReply, TransportError>,
    ) -> Option<Settled<CertificateState>> {
        let sent = AtomicU32::new(0);
        dispatcher
            .send(&request, || {
                let answer = answer(sent.fetch_add(1, Ordering::Relaxed));
                async move { answer }
            })
            .await
    }

    /// A transport failure first, "already revoked" after.
    fn lost_then_1407(first: TransportError) -> impl Fn(u32) -> Result<ApiReply, TransportError> {
        move |n| if n == 0 { Err(first.clone()) } else { Ok(reply(400, err(1407))) }
    }

    #[tokio::test(start_paused = true)]
    async fn a_2xx_that_does_not_answer_is_retried_then_given_up() {
        let dispatcher = dispatcher(3);
        let active = || Ok(reply(200, Ok(Envelope::ok(state(Some(CERT), Some(CertStatus::Active))))));
        let delete = request("DELETE").expecting(&[CertStatus::PendingRevocation]);
        let settled = settle(&dispatcher, delete, |_| active()).await.unwrap();
        assert!(settled.gave_up && settled.lost_reply);
        assert_eq!(settled.attempts, 3);
        let (code, why) = settled.final_answer().unwrap_err();
        assert_eq!(
            (code, why.as_str()),
            (None, "gave up after 3 attempt(s): HTTP 200: the answer says the certificate is active")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_reply_is_remembered_but_a_connection_never_made_is_not() {
        let dispatcher = dispatcher(3);
        let timeout = TransportError::Timeout(Duration::from_secs(1));
        let settled = settle(&dispatcher, request("DELETE"), lost_then_1407(timeout)).await.unwrap();
        assert!(settled.lost_reply && !settled.gave_up && settled.final_answer().is_ok());
        let refused = TransportError::Connect("refused".into());
        let settled = settle(&dispatcher, request("DELETE"), lost_then_1407(refused)).await.unwrap();
        assert!(!settled.lost_reply);
        let settled = settle(&dispatcher, request("DELETE"), |_| Ok(reply(400, err(1407)))).await.unwrap();
        assert!(!settled.lost_reply, "a first answer has no earlier attempt");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_after_an_attempt_keeps_its_answer() {
        let dispatcher = dispatcher(8);
        let sent = AtomicU32::new(0);
        let settled = dispatcher
            .send(&request("DELETE"), || {
                sent.fetch_add(1, Ordering::Relaxed);
                dispatcher.halt(StopReason::Interrupted);
                async { Err::<ApiReply, _>(TransportError::Timeout(Duration::from_secs(1))) }
            })
            .await
            .expect("an attempted request is settled");
        assert!(settled.interrupted && !settled.gave_up);
        assert_eq!((settled.attempts, sent.load(Ordering::Relaxed)), (1, 1));
        let (_, why) = settled.final_answer().unwrap_err();
        assert_eq!(why, "the run stopped after 1 attempt(s); the last: timed out after 1s");
        // Nothing sent once the run has stopped: no row at all.
        assert!(settle(&dispatcher, request("DELETE"), |_| Ok(reply(400, err(1407)))).await.is_none());
    }

    /// The paused clock fires timers on whole milliseconds.
    const TICK: Duration = Duration::from_millis(1);

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn revoked() -> ApiReply {
        reply(200, Ok(Envelope::ok(state(Some(CERT), Some(CertStatus::PendingRevocation)))))
    }

    /// A transient refusal: 429 (rate limited) or 503, asking for `after`.
    fn refusal(status: u16, after: Option<Duration>) -> ApiReply {
        let code = if status == 429 { codes::RATE_LIMITED } else { 1000 };
        ApiReply { retry_after: after, ..reply(status, err(code)) }
    }

    /// `settle` on the paused clock, and the time between one attempt
    /// leaving and the next.
    async fn gaps_between_attempts(
        dispatcher: &Dispatcher,
        answer: impl Fn(u32) -> ApiReply,
    ) -> (Settled<CertificateState>, Vec<Duration>) {
        let sent = Mutex::new(Vec::new());
        let settled = settle(dispatcher, request("DELETE"), |n| {
            sent.lock().unwrap().push(tokio::time::Instant::now());
            Ok(answer(n))
        })
        .await
        .expect("sent");
        let gaps = sent.into_inner().unwrap().windows(2).map(|pair| pair[1] - pair[0]).collect();
        (settled, gaps)
    }

    #[track_caller]
    fn assert_between(gap: Duration, low: Duration, high: Duration) {
        assert!(gap >= low && gap <= high + TICK, "waited {gap:?}, not {low:?} to {high:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_a_backoff_that_doubles_to_its_cap_give_or_take_half() {
        let dispatcher = dispatcher_with(retry_policy(6, ms(100), ms(400)), 1);
        let (settled, gaps) = gaps_between_attempts(&dispatcher, |_| refusal(503, None)).await;
        assert!(settled.gave_up);
        assert_eq!(settled.attempts, 6);
        assert_eq!(gaps.len(), 5, "{gaps:?}");
        for (gap, base) in gaps.into_iter().zip([100, 200, 400, 400, 400].map(ms)) {
            assert_between(gap, base / 2, base * 3 / 2);
        }
    }

    /// The server's word replaces the backoff, shorter or longer, for a 503
    /// (the worker's own wait) as for a 429 (every worker's pause); each one
    /// still uses up its step of the schedule.
    #[tokio::test(start_paused = true)]
    async fn a_retry_after_replaces_the_backoff_and_is_clipped_to_an_hour() {
        for status in [503, 429] {
            let dispatcher = dispatcher_with(retry_policy(5, secs(10), secs(60)), 1);
            let answers = [Some(secs(1)), Some(secs(10 * 3600)), None];
            let (settled, gaps) = gaps_between_attempts(&dispatcher, |n| match answers.get(n as usize) {
                Some(after) => refusal(status, *after),
                None => revoked(),
            })
            .await;
            assert!(settled.final_answer().is_ok(), "{status}: {}", settled.last());
            assert_eq!((settled.attempts, gaps.len()), (4, 3), "{status}: {gaps:?}");
            assert_between(gaps[0], secs(1), secs(1));
            assert_between(gaps[1], secs(3600), secs(3600));
            // The third step of a schedule from 10 s: 40 s, give or take half.
            assert_between(gaps[2], secs(20), secs(60));
        }
    }

    /// What the test's API saw: every request as it left, and the 429 as it
    /// came back, with how many requests had left by then.
    #[derive(Default)]
    struct Wire {
        sent: Vec<Sent>,
        refused: Option<(usize, tokio::time::Instant)>,
    }

    #[derive(Debug, Clone, Copy)]
    struct Sent {
        at: tokio::time::Instant,
        line: u64,
        worker: tokio::task::Id,
    }

    /// A queue of `rows` rows, lines 2 on, each with its own certificate:
    /// one batch at most, so that it is full before the workers start.
    fn queued(rows: u64) -> Queue {
        assert!(rows <= 64, "more than a batch would wait for a worker to take one");
        let (mut feeder, jobs) = crate::pipeline::queue::channel(rows as usize);
        // Off the runtime: the feeder blocks, as the reader thread's does.
        std::thread::spawn(move || {
            for line in 2..rows + 2 {
                let cert = format!("{line:032x}").parse().unwrap();
                assert!(feeder.blocking_push(Row { line, zone: ZONE.parse().unwrap(), cert }));
            }
            feeder.blocking_finish();
        })
        .join()
        .unwrap();
        jobs
    }

    #[tokio::test(start_paused = true)]
    async fn one_429_pauses_every_worker_and_nothing_leaves_until_it_ends() {
        const WORKERS: usize = 4;
        const ROWS: u64 = 24;
        const LATENCY: Duration = ms(20);
        const PAUSE: Duration = secs(1);
        let dispatcher = Arc::new(dispatcher_with(retry_policy(8, ms(10), ms(100)), WORKERS));
        let jobs = queued(ROWS);
        let wire = Arc::new(Mutex::new(Wire::default()));
        let settled = Arc::new(Mutex::new(Vec::new()));
        let (results, _) = mpsc::channel(1);
        let (seen, done) = (Arc::clone(&wire), Arc::clone(&settled));
        let work = move |dispatcher: Arc<Dispatcher>, row: Row| {
            let (wire, settled) = (Arc::clone(&seen), Arc::clone(&done));
            async move {
                // The sixth request overall is refused, after the same latency as the rest.
                let answer = || {
                    let wire = Arc::clone(&wire);
                    let sent = tokio::time::Instant::now();
                    let nth = {
                        let mut wire = wire.lock().unwrap();
                        wire.sent.push(Sent { at: sent, line: row.line, worker: tokio::task::id() });
                        wire.sent.len()
                    };
                    async move {
                        tokio::time::sleep(LATENCY).await;
                        if nth != 6 {
                            return Ok(revoked());
                        }
                        let mut wire = wire.lock().unwrap();
                        wire.refused = Some((wire.sent.len(), tokio::time::Instant::now()));
                        Ok(refusal(429, Some(PAUSE)))
                    }
                };
                let request = Request::for_row("DELETE", &row);
                let outcome = dispatcher.send(&request, answer).await.expect("the run never stops");
                settled.lock().unwrap().push((row.line, outcome.attempts, outcome.final_answer().is_ok()));
                None
            }
        };
        Arc::clone(&dispatcher).run(jobs, results, WORKERS, work).await;

        let wire = std::mem::take(&mut *wire.lock().unwrap());
        let (left, refused_at) = wire.refused.expect("the sixth request was refused");
        let (before, after) = wire.sent.split_at(left);
        assert!(before.len() > 6, "requests were in flight when the 429 came back: {before:?}");
        let during: Vec<_> = after.iter().filter(|sent| sent.at < refused_at + PAUSE).collect();
        assert!(during.is_empty(), "sent during the pause: {during:?}");
        let workers: std::collections::HashSet<_> = after.iter().map(|sent| sent.worker).collect();
        assert_eq!(workers.len(), WORKERS, "every worker waited the pause out, then went on");
        assert!(after[0].at < refused_at + PAUSE + LATENCY, "the pause ends when asked: {after:?}");

        assert_eq!(wire.sent.len(), ROWS as usize + 1, "the refused request again, and no other");
        let mut settled = settled.lock().unwrap().clone();
        settled.sort_unstable();
        assert_eq!(settled.len(), ROWS as usize);
        for (line, attempts, ok) in settled {
            assert!(ok, "line {line}");
            assert_eq!(attempts, if line == before[5].line { 2 } else { 1 }, "line {line}");
        }
    }

    /// A halt from a finished row, as a streak of identical failures or a
    /// results file that cannot be written calls it: the requests in flight
    /// get their answers, and no other request leaves.
    #[tokio::test(start_paused = true)]
    async fn a_halt_lets_the_requests_in_flight_finish_and_sends_no_other() {
        const WORKERS: usize = 3;
        const HALT_AT: usize = 10;
        let dispatcher = Arc::new(dispatcher_with(retry_policy(8, ms(10), ms(100)), WORKERS));
        let sent = Arc::new(AtomicU32::new(0));
        let done = Arc::new(Mutex::new(Vec::new()));
        let (results, _) = mpsc::channel(1);
        let (counted, finished) = (Arc::clone(&sent), Arc::clone(&done));
        let work = move |dispatcher: Arc<Dispatcher>, row: Row| {
            let (sent, done) = (Arc::clone(&counted), Arc::clone(&finished));
            async move {
                let answer = || {
                    sent.fetch_add(1, Ordering::Relaxed);
                    async {
                        tokio::time::sleep(ms(20)).await;
                        Ok(reply(403, err(10000)))
                    }
                };
                // Stopped before it was sent: no row, as for the operations.
                let settled = dispatcher.send(&Request::for_row("DELETE", &row), answer).await?;
                let mut done = done.lock().unwrap();
                done.push((row.line, settled.attempts, settled.interrupted));
                if done.len() == HALT_AT {
                    dispatcher.halt(StopReason::Systemic { status: Some(403), why: "the same failure".into() });
                }
                None
            }
        };
        Arc::clone(&dispatcher).run(queued(60), results, WORKERS, work).await;

        let done = done.lock().unwrap().clone();
        assert!(done.len() >= HALT_AT && done.len() < HALT_AT + WORKERS, "{done:?}");
        assert_eq!(sent.load(Ordering::Relaxed) as usize, done.len(), "every request sent has its row");
        assert!(done.iter().all(|(_, attempts, interrupted)| *attempts == 1 && !interrupted), "{done:?}");
        assert!(matches!(dispatcher.stop_reason(), Some(StopReason::Systemic { status: Some(403), .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn more_workers_than_places_still_send_at_most_concurrency_at_once() {
        let dispatcher = Arc::new(dispatcher_with(retry_policy(1, ms(10), secs(1)), 2));
        let (in_flight, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let mut senders = JoinSet::new();
        for _ in 0..6 {
            let (dispatcher, in_flight, most) = (Arc::clone(&dispatcher), Arc::clone(&in_flight), Arc::clone(&most));
            senders.spawn(async move {
                let send = || {
                    let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
                    async move {
                        most.fetch_max(in_flight.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok(reply(400, err(1407)))
                    }
                };
                dispatcher.send(&request("GET"), send).await.expect("sent");
            });
        }
        while senders.join_next().await.is_some() {}
        assert_eq!(most.load(Ordering::SeqCst), 2, "six senders, two places");
        assert_eq!(dispatcher.requests.load(Ordering::Relaxed), 6);
    }

    /// A 400 with code 971 is rate limited like a 429: on a row's last
    /// attempt too it pauses every worker, or they would all go on into the
    /// account's block.
    #[tokio::test(start_paused = true)]
    async fn a_971_on_the_last_attempt_pauses_every_worker_as_a_429_does() {
        for status in [429, 400] {
            let dispatcher = dispatcher_with(retry_policy(1, secs(1), secs(60)), 1);
            let request = request("DELETE");
            let refusal = || ApiReply { retry_after: Some(secs(30)), ..reply(status, err(codes::RATE_LIMITED)) };
            let settled = dispatcher.send(&request, || std::future::ready(Ok(refusal()))).await.unwrap();
            assert_eq!(settled.attempts, 1);
            assert!(dispatcher.pacer.paused_until().is_some(), "{status} with code 971 on the last attempt: no pause");
        }
    }
}
