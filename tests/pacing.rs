//! The configured quota is never exceeded in any window, as the server counts.

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

#[tokio::test(flavor = "multi_thread")]
async fn requests_never_exceed_the_quota_in_any_window() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(45));
    let api = TestApi::start(Reply::revoked).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--rate", "20/1s", "--concurrency", "16"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hits = api.hits();
    assert_eq!(hits.len(), 46, "45 DELETEs and the credentials check all count");
    assert_eq!(api.count(Method::DELETE), 45);
    let most = most_in_window(&hits, Duration::from_secs(1));
    assert!(most <= 20, "{most} requests in one 1s window");
    // The pace is also not needlessly slow: the quota is nearly used.
    assert!(most >= 18, "only {most} requests in the busiest window");
}
