//! The configured quota is never exceeded in any window, as the server counts.
//! One busiest-window test drives the binary; how the pacer keeps every
//! window within a quota that flaps or changes is asserted in-process, on
//! tokio's paused clock (`src/pacing/pacer.rs` and `limiter.rs`).

use std::time::Duration;

use axum::http::Method;

use crate::support::*;

/// The most hits inside any window of `width` (half-open), by sliding over sorted times.
fn most_in_window(hits: &[Hit], width: Duration) -> usize {
    let mut times: Vec<_> = hits.iter().map(|h| h.at).collect();
    times.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Revokes `rows` certificates against `api` at `--rate rate`, 16 at a
/// time; returns every request the double saw, and what went to stderr.
async fn revoke_at(api: &TestApi, rows: usize, rate: &str) -> (Vec<Hit>, String) {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(rows));
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--rate", rate, "--concurrency", "16"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (api.hits(), stderr(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_never_exceed_the_quota_in_any_window() {
    let api = TestApi::start(TestResponse::revoked).await;
    let (hits, _) = revoke_at(&api, 45, "20/1s").await;
    assert_eq!(hits.len(), 46, "45 DELETEs and the credentials check all count");
    assert_eq!(api.count(Method::DELETE), 45);
    let most = most_in_window(&hits, Duration::from_secs(1));
    assert!(most <= 20, "{most} requests in one 1s window");
    // The pace is also not needlessly slow: the quota is nearly used.
    assert!(most >= 18, "only {most} requests in the busiest window");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_pace_shares_the_quota_with_another_consumer_without_a_429() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(90));
    // 60 per second, half of it spent by another tool on the same token.
    let flags = ["--quota", "60", "--window", "1s", "--block", "30s", "--background-load", "30"];
    let sandbox = SandboxProcess::start(&input, &flags);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--rate", "auto", "--concurrency", "8"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert_eq!(journal.rate_limited, 0, "a 429 would block the account, the other tool included");
    assert_eq!(journal.revocations, 90);
    assert!(journal.max_in_window.unwrap() <= 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_wait_for_a_spent_budget_is_said_at_the_default_verbosity() {
    // The credentials check spends the budget until a reset 4 s away.
    let api = TestApi::start(|hit: &Hit| {
        let left = if hit.method == Method::GET { "\"default\";r=0;t=4" } else { "\"default\";r=9;t=4" };
        TestResponse::revoked(hit).with_header("ratelimit", left)
    })
    .await;
    let (_, said) = revoke_at(&api, 1, "1000/s").await;
    assert!(said.contains("WARN") && said.contains("budget is spent") && said.contains("wait=4s"), "{said}");
}

/// The run that once stalled until it was interrupted: the sandbox's error
/// pages during its block carry "none left, reset in a second", which the
/// pacer took for another tool holding the whole window. Every row now ends
/// in an answer of its own; the timeout is what a stall would hit.
#[tokio::test(flavor = "multi_thread")]
async fn error_pages_that_say_nothing_is_left_do_not_stall_the_run() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(10));
    let flags = ["--force-429-after", "3", "--block", "50ms", "--error-rate", "0.3", "--seed", "7"];
    let sandbox = SandboxProcess::start(&input, &flags);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--max-attempts", "2", "--retry-delay", "5ms", "--retry-max-delay", "50ms", "--timeout", "2s"]);
    cmd.arg("--skip-enforcement-check").timeout(Duration::from_secs(120));
    let out = run(cmd).await;
    let results = work.results("out.csv");
    assert_eq!(results.len(), 10, "{}", stderr(&out));
    assert!(results.iter().all(|row| row["outcome"] == "revoked" || row["outcome"] == "failed"), "{results:?}");
    assert!(results.iter().any(|row| row["outcome"] == "revoked"), "{results:?}");
    assert_ne!(out.status.code(), Some(130), "{}", stderr(&out));
}
