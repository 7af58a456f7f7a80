//! The dispatcher: takes jobs off a bounded channel, runs up to `concurrency`
//! of them at once, paces every request through the shared [`Pacer`], retries
//! what is worth retrying, and sends one [`ResultRow`] per finished job to the
//! collector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::codes;
use crate::client::{ApiClient, Reply, TransportError};
use crate::input::Row;
use crate::rate::Pacer;
use crate::results::{Outcome, ResultRow};
use crate::retry::{RetryPolicy, RetrySchedule};

/// A `Retry-After` longer than this is taken as a mistake and clipped: an
/// hour is already far beyond Cloudflare's 5-minute block.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
}

/// What one answer means for a row.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Final { outcome: Outcome, error: Option<(Option<i64>, String)> },
    Retry { why: String, rate_limited: bool, after: Option<Duration> },
    AuthRefused(String),
}

fn error_of(reply: &Reply) -> (Option<i64>, String) {
    match &reply.body {
        Ok(envelope) => match envelope.first_error() {
            Some(e) => (Some(e.code), e.message.clone()),
            None => (None, format!("HTTP {}", reply.status)),
        },
        Err(why) => (None, format!("HTTP {}: {why}", reply.status)),
    }
}

/// Reads a DELETE's answer. Cloudflare documents only 200 and "4XX"; the
/// rest follows what API-NOTES.md records as observed.
fn judge(reply: &Reply) -> Verdict {
    let (code, message) = error_of(reply);
    let retry = |rate_limited| Verdict::Retry {
        why: format!("HTTP {}: {message}", reply.status),
        rate_limited,
        after: reply.retry_after,
    };
    match (reply.status, code) {
        (200..=299, _) => match &reply.body {
            Ok(envelope) if envelope.success => Verdict::Final { outcome: Outcome::Revoked, error: None },
            _ => retry(false),
        },
        (401, _) => Verdict::AuthRefused(format!("HTTP 401: {message}")),
        (429, _) | (_, Some(codes::RATE_LIMITED | codes::RATE_LIMITED_OLD)) => retry(true),
        (408 | 500..=599, _) => retry(false),
        (_, Some(codes::ALREADY_REVOKED)) => Verdict::Final { outcome: Outcome::AlreadyRevoked, error: None },
        (404, _) | (_, Some(codes::CERT_NOT_FOUND)) => {
            Verdict::Final { outcome: Outcome::NotFound, error: Some((code, message)) }
        }
        _ => Verdict::Final { outcome: Outcome::Failed, error: Some((code, message)) },
    }
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

    /// Waits for the pacer, or returns `false` if the run is stopping.
    async fn paced(&self) -> bool {
        let go = tokio::select! {
            () = self.pacer.ready() => true,
            () = self.stop.cancelled() => false,
        };
        if go {
            self.requests.fetch_add(1, Ordering::Relaxed);
        }
        go
    }

    fn stopped(&self) -> StopReason {
        self.stop_reason().unwrap_or(StopReason::Interrupted)
    }

    /// Proves the credentials with one read-only request before anything is
    /// revoked: a GET of the first certificate. Any final answer other than
    /// 401/403 (a 404 included) shows the token is accepted.
    pub async fn check_credentials(&self, row: Row) -> Result<(), StopReason> {
        let mut schedule = self.retry.schedule();
        loop {
            if !self.paced().await {
                return Err(self.stopped());
            }
            let attempt = schedule.attempt();
            let answer = self.client.get(row.zone, row.cert).await;
            let (why, rate_limited, after) = match &answer {
                Ok(reply) if matches!(reply.status, 401 | 403) => {
                    Attempt { method: "GET", row: &row, number: attempt, answer: &answer }
                        .log("credentials_refused", None);
                    return Err(StopReason::CredentialsRefused(format!(
                        "HTTP {}: {}",
                        reply.status,
                        error_of(reply).1
                    )));
                }
                Ok(reply) => match judge(reply) {
                    Verdict::Retry { why, rate_limited, after } => (why, rate_limited, after),
                    _ => {
                        Attempt { method: "GET", row: &row, number: attempt, answer: &answer }.log("accepted", None);
                        return Ok(());
                    }
                },
                Err(e) => (e.to_string(), false, None),
            };
            let tried = Attempt { method: "GET", row: &row, number: attempt, answer: &answer };
            match self.wait_to_retry(&mut schedule, rate_limited, after, tried).await {
                Wait::Again => {}
                Wait::GiveUp => {
                    return Err(StopReason::Unreachable(format!("gave up after {attempt} attempt(s): {why}")))
                }
                Wait::Stopped => return Err(self.stopped()),
            }
        }
    }

    /// Logs a failed attempt with the wait it earned, then waits. A 429
    /// pauses every worker through the pacer, so this worker then waits there
    /// like the others.
    async fn wait_to_retry(
        &self,
        schedule: &mut RetrySchedule,
        rate_limited: bool,
        after: Option<Duration>,
        tried: Attempt<'_>,
    ) -> Wait {
        let Some(backoff) = schedule.next_delay() else {
            tried.log("give_up", None);
            return Wait::GiveUp;
        };
        let delay = after.map_or(backoff, |d| d.min(MAX_RETRY_AFTER));
        tried.log("retry", Some(delay));
        if rate_limited {
            if self.pacer.pause_for(delay) {
                tracing::warn!(pause_ms = delay.as_millis() as u64, "rate limited by the API: every worker pauses");
            }
            return Wait::Again;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => Wait::Again,
            () = self.stop.cancelled() => Wait::Stopped,
        }
    }

    /// Revokes one certificate, retrying as the policy allows. `None` when the
    /// run stopped before an outcome was known: the row is left for a resume.
    async fn revoke_one(&self, row: Row) -> Option<ResultRow> {
        let started = Instant::now();
        let mut schedule = self.retry.schedule();
        loop {
            if !self.paced().await {
                return None;
            }
            let attempt = schedule.attempt();
            let answer = self.client.revoke(row.zone, row.cert).await;
            let verdict = match &answer {
                Ok(reply) => judge(reply),
                Err(e) => Verdict::Retry { why: e.to_string(), rate_limited: false, after: None },
            };
            let tried = Attempt { method: "DELETE", row: &row, number: attempt, answer: &answer };
            let finish = |outcome, error: Option<(Option<i64>, String)>| {
                let reply = answer.as_ref().ok();
                let (error_code, error_message) = error.unwrap_or_default();
                ResultRow {
                    line: row.line,
                    zone_id: row.zone.to_string(),
                    certificate_id: row.cert.to_string(),
                    outcome,
                    http_status: reply.map(|r| r.status),
                    cert_status: reply
                        .and_then(|r| r.body.as_ref().ok())
                        .and_then(|e| e.result.as_ref())
                        .and_then(|c| c.status)
                        .map(|s| s.as_str()),
                    attempts: attempt,
                    error_code,
                    error_message,
                    cf_ray: reply.and_then(|r| r.cf_ray.clone()).unwrap_or_default(),
                    finished_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                    duration_ms: started.elapsed().as_millis() as u64,
                }
            };
            match verdict {
                Verdict::Final { outcome, error } => {
                    tried.log(outcome.as_str(), None);
                    return Some(finish(outcome, error));
                }
                Verdict::AuthRefused(why) => {
                    tried.log("credentials_refused", None);
                    self.halt(StopReason::CredentialsRefused(why.clone()));
                    let code = answer.as_ref().ok().and_then(|r| error_of(r).0);
                    return Some(finish(Outcome::Failed, Some((code, why))));
                }
                Verdict::Retry { why, rate_limited, after } => {
                    match self.wait_to_retry(&mut schedule, rate_limited, after, tried).await {
                        Wait::Again => {}
                        Wait::GiveUp => {
                            let code = answer.as_ref().ok().and_then(|r| error_of(r).0);
                            return Some(finish(
                                Outcome::Failed,
                                Some((code, format!("gave up after {attempt} attempt(s): {why}"))),
                            ));
                        }
                        Wait::Stopped => return None,
                    }
                }
            }
        }
    }

    /// Runs every job from `jobs`, at most `concurrency` at a time, until the
    /// channel closes or the run is stopped. Jobs still queued when it stops
    /// are simply not taken: they have no results row and a resume does them.
    pub async fn run(self: Arc<Self>, mut jobs: mpsc::Receiver<Row>, results: mpsc::Sender<ResultRow>) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
                () = self.stop.cancelled() => break,
            };
            let row = tokio::select! {
                row = jobs.recv() => match row {
                    Some(row) => row,
                    None => break,
                },
                () = self.stop.cancelled() => break,
            };
            let me = Arc::clone(&self);
            let results = results.clone();
            tasks.spawn(async move {
                if let Some(done) = me.revoke_one(row).await {
                    // The collector only goes away once every sender is gone.
                    let _ = results.send(done).await;
                }
                drop(permit);
            });
            while let Some(joined) = tasks.try_join_next() {
                surface_panic(joined);
            }
        }
        while let Some(joined) = tasks.join_next().await {
            surface_panic(joined);
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

/// One request and what came of it, for the per-attempt log event.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    method: &'static str,
    row: &'a Row,
    number: u32,
    answer: &'a Result<Reply, TransportError>,
}

impl Attempt<'_> {
    /// One structured event per attempt: what the log file is for.
    fn log(&self, verdict: &str, retry_in: Option<Duration>) {
        let reply = self.answer.as_ref().ok();
        tracing::debug!(
            target: "cfrevoke::attempt",
            method = self.method,
            line = self.row.line,
            zone_id = %self.row.zone,
            certificate_id = %self.row.cert,
            attempt = self.number,
            status = reply.map(|r| r.status),
            latency_ms = reply.map(|r| r.latency.as_millis() as u64),
            retry_after_ms = reply.and_then(|r| r.retry_after).map(|d| d.as_millis() as u64),
            retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
            cf_ray = reply.and_then(|r| r.cf_ray.as_deref()),
            error = self.answer.as_ref().err().map(tracing::field::display),
            verdict,
            "attempt"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ClientCertificate, Envelope};

    fn reply(status: u16, body: Result<Envelope<ClientCertificate>, String>) -> Reply {
        Reply { status, cf_ray: None, retry_after: None, body, latency: Duration::ZERO }
    }

    fn err(code: i64) -> Result<Envelope<ClientCertificate>, String> {
        Ok(Envelope::error(code, "msg"))
    }

    #[test]
    fn answers_map_to_outcomes() {
        let ok = Ok(Envelope::ok(ClientCertificate::default()));
        assert!(matches!(judge(&reply(200, ok)), Verdict::Final { outcome: Outcome::Revoked, .. }));
        assert!(matches!(judge(&reply(400, err(1407))), Verdict::Final { outcome: Outcome::AlreadyRevoked, .. }));
        assert!(matches!(judge(&reply(404, err(1415))), Verdict::Final { outcome: Outcome::NotFound, .. }));
        assert!(matches!(judge(&reply(400, err(1415))), Verdict::Final { outcome: Outcome::NotFound, .. }));
        assert!(matches!(
            judge(&reply(403, err(9109))),
            Verdict::Final { outcome: Outcome::Failed, error: Some((Some(9109), _)) }
        ));
        assert!(matches!(judge(&reply(401, err(10000))), Verdict::AuthRefused(_)));
    }

    #[test]
    fn transient_answers_are_retried() {
        assert!(matches!(
            judge(&reply(429, Err("empty response body".into()))),
            Verdict::Retry { rate_limited: true, .. }
        ));
        assert!(matches!(judge(&reply(400, err(971))), Verdict::Retry { rate_limited: true, .. }));
        for status in [408, 500, 502, 503, 504] {
            assert!(matches!(judge(&reply(status, err(1000))), Verdict::Retry { rate_limited: false, .. }), "{status}");
        }
        assert!(matches!(judge(&reply(200, Err("truncated".into()))), Verdict::Retry { .. }));
    }
}
