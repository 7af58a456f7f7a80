//! Every rate-limit header dialect the client reads, end to end: a run
//! against the sandbox speaking it is paced by what the headers say, and
//! its `run_start` event names the dialect. How each value is parsed is
//! asserted in `src/pacing/headers.rs`, and what the sandbox sends in
//! `src/sandbox/response.rs`.

use cfrevoke::sandbox::Journal;

use crate::support::*;

/// A quota small enough that an unpaced run goes over it at once; a 429
/// blocks for long enough to show in the journal, not to slow a failing
/// test down much.
const LIMIT: [&str; 6] = ["--quota", "20", "--window", "2s", "--block", "2s"];

/// What a run against a sandbox speaking `dialect` left behind: the
/// sandbox's journal, and the JSON log's events.
struct Ran {
    journal: Journal,
    events: Vec<serde_json::Value>,
}

impl Ran {
    fn run_start(&self) -> &serde_json::Value {
        self.events.iter().find(|event| event["event"] == "run_start").expect("a run_start event")
    }

    fn said(&self, message: &str) -> bool {
        self.events.iter().any(|event| event["message"] == message)
    }
}

/// Revokes `rows` certificates at `--rate rate` against a sandbox allowing
/// 20 requests per 2 s and speaking `dialect`.
async fn revoke(dialect: &str, rows: usize, rate: &str) -> Ran {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(rows));
    let sandbox = SandboxProcess::start(&input, &[&LIMIT[..], &["--ratelimit-dialect", dialect]].concat());
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--rate", rate, "--concurrency", "8", "--log-file"]).arg(work.path("log.jsonl"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events = work.read("log.jsonl").lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    Ran { journal: sandbox.journal().await, events }
}

/// 20 certificates at 2000/s would be 24 requests (the reads of three
/// zones' rules and the credentials check too) within a few milliseconds:
/// only the count the headers report keeps the run within the quota.
async fn a_fast_run_is_held_to_the_quota(dialect: &str) {
    let ran = revoke(dialect, 20, "2000/s").await;
    assert_eq!(ran.journal.rate_limited, 0, "{dialect}: a 429 means the headers were not understood");
    assert_eq!(ran.journal.revocations, 20);
    assert!(ran.journal.max_in_window.unwrap() <= 20, "{:?}", ran.journal.max_in_window);
    assert_eq!(ran.run_start()["ratelimit_dialect"], dialect);
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_headers_hold_a_fast_run_to_the_quota() {
    a_fast_run_is_held_to_the_quota("structured").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn split_headers_hold_a_fast_run_to_the_quota() {
    a_fast_run_is_held_to_the_quota("split").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quota_a_split_limit_names_becomes_the_pace() {
    let ran = revoke("split", 20, "auto").await;
    assert!(ran.said("pacing at the quota the API announces"), "{:#?}", ran.events);
    assert_eq!(ran.journal.rate_limited, 0);
    assert_eq!(ran.run_start()["ratelimit_dialect"], "split");
}

/// Cloudflare's X- family names no window, and its reset comes only with a
/// 429: nothing in it to pace by, so the run keeps to `--rate` (here
/// Cloudflare's documented quota, below the sandbox's), and says which
/// dialect it heard.
#[tokio::test(flavor = "multi_thread")]
async fn x_ratelimit_headers_are_named_and_leave_the_pace_at_the_rate() {
    let ran = revoke("x-ratelimit", 10, "auto").await;
    assert_eq!(ran.run_start()["ratelimit_dialect"], "x-ratelimit");
    assert!(!ran.said("pacing at the quota the API announces"));
    assert_eq!((ran.journal.rate_limited, ran.journal.revocations), (0, 10));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_without_rate_limit_headers_is_said_to_speak_none() {
    let ran = revoke("none", 3, "2000/s").await;
    assert_eq!(ran.run_start()["ratelimit_dialect"], "none");
    assert_eq!(ran.journal.revocations, 3);
}

/// The event comes after the credentials check, to name its dialect; a
/// check that fails still leaves the whole event behind, and its answer's
/// dialect.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_still_logs_the_whole_run_start() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let sandbox = SandboxProcess::start(&input, &[&LIMIT[..], &["--ratelimit-dialect", "split"]].concat());
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.env("CLOUDFLARE_API_TOKEN", "not-the-sandbox-token").arg("--log-file").arg(work.path("log.jsonl"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let log = work.read("log.jsonl");
    let start: serde_json::Value =
        serde_json::from_str(log.lines().find(|line| line.contains("\"run_start\"")).expect("run_start")).unwrap();
    assert_eq!((start["rows"].as_u64(), start["auth"].as_str()), (Some(3), Some("api_token")));
    assert_eq!(start["ratelimit_dialect"], "split", "the 403 carried the split headers");
    assert_eq!(sandbox.journal().await.revocations, 0);
}

/// GitHub-style servers send `X-RateLimit-Reset` on every answer, as a Unix
/// time: with it the X- family paces as the others do. The double counts
/// 20 requests per fixed window of 2 s, aligned to the clock's seconds.
#[tokio::test(flavor = "multi_thread")]
async fn x_ratelimit_headers_with_a_unix_reset_hold_a_fast_run_to_the_quota() {
    use std::sync::{Arc, Mutex};
    use std::time::{SystemTime, UNIX_EPOCH};

    let refused = Arc::new(Mutex::new(0));
    let window = Arc::new(Mutex::new((0u64, 0u32)));
    let (refusals, counted) = (Arc::clone(&refused), Arc::clone(&window));
    let api = TestApi::start(move |hit: &Hit| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut window = counted.lock().unwrap();
        if window.0 != now / 2 {
            *window = (now / 2, 0);
        }
        window.1 += 1;
        let (left, reset) = (20u32.saturating_sub(window.1), (now / 2 + 1) * 2);
        let answer = if window.1 > 20 {
            *refusals.lock().unwrap() += 1;
            TestResponse::error(429, 971, "Please wait and consider throttling your request speed")
        } else {
            TestResponse::revoked(hit)
        };
        answer
            .with_header("x-ratelimit-limit", "20")
            .with_header("x-ratelimit-remaining", &left.to_string())
            .with_header("x-ratelimit-reset", &reset.to_string())
    })
    .await;
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(30));
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    // One at a time: the budget keeps this run's answers only once the API
    // has named its window, so with several in flight and no window, the
    // answers that overtake the one it reads go uncounted (at 16, one 429
    // in most runs).
    cmd.args(["--concurrency", "1"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(*refused.lock().unwrap(), 0, "a 429 means the reset was not understood");
    assert_eq!(work.results("out.csv").len(), 30);
}

/// The log takes the line saying what the run will do and the credentials
/// check's attempt (some 600 bytes), but not the whole run_start event
/// after them: the run stops before its first change, having only read.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn a_log_that_cannot_take_run_start_stops_the_run_before_its_first_change() {
    use axum::http::Method;

    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(5));
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke_std(&input, &work.path("out.csv"));
    cmd.arg("--log-file").arg(work.path("log.jsonl"));
    limit_file_size(&mut cmd, 1000);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("STOPPED: cannot write the log file"), "{}", stdout(&out));
    let log = work.read("log.jsonl");
    let whole = |line: &str| serde_json::from_str::<serde_json::Value>(line).is_ok();
    assert!(log.lines().any(|line| whole(line) && line.contains("revoke 5 certificates")), "{log}");
    assert!(!log.lines().any(|line| whole(line) && line.contains("\"run_start\"")), "only a torn run_start: {log}");
    assert_eq!((api.count(Method::GET), api.count(Method::DELETE)), (1, 0));
}
