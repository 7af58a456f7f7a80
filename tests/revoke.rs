//! The pipeline end to end against the API double: outcomes, retries,
//! stopping, and every row accounted for.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;

use crate::support::*;

/// Answers GETs with the certificate and DELETEs as `delete` says.
fn api(
    delete: impl Fn(&Hit) -> TestResponse + Send + Sync + 'static,
) -> impl Fn(&Hit) -> TestResponse + Send + Sync + 'static {
    move |hit| if hit.method == Method::DELETE { delete(hit) } else { TestResponse::revoked(hit) }
}

fn by_cert(rows: &[HashMap<String, String>]) -> HashMap<String, HashMap<String, String>> {
    rows.iter().map(|r| (r["certificate_id"].clone(), r.clone())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_row_is_one_authenticated_delete_with_our_user_agent() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(60));
    let api = TestApi::start(api(TestResponse::revoked)).await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 60);
    assert!(rows.iter().all(|r| r["outcome"] == "revoked" && r["attempts"] == "1" && r["http_status"] == "200"));
    assert!(rows.iter().all(|r| r["cert_status"] == "pending_revocation" && r["cf_ray"].starts_with("ray-")));
    assert!(rows.iter().all(|r| r["finished_at"].ends_with('Z') && r["finished_at"].contains('T')));
    let deletes: Vec<Hit> = api.hits().into_iter().filter(|h| h.method == Method::DELETE).collect();
    assert_eq!(deletes.len(), 60);
    assert!(deletes.iter().all(|h| h.repeat == 0), "a certificate was revoked twice");
    assert_eq!(api.count(Method::GET), 1, "one read-only credentials check");
    let hit = &deletes[0];
    assert_eq!(hit.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(hit.user_agent.as_deref().unwrap().starts_with(concat!("cfrevoke/", env!("CARGO_PKG_VERSION"))));
    assert!(hit.path.starts_with("/client/v4/zones/") && hit.path.contains("/client_certificates/"));
    let summary = stdout(&out);
    assert!(summary.contains("revoked                60"), "{summary}");
    assert!(summary.contains(&work.path("out.csv").display().to_string()), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_ends_in_exactly_one_results_row() {
    let work = Workdir::new();
    let mut text = input_csv(40);
    text.push_str(&format!("{},{}\n", zone(1).to_uppercase(), cert(1).to_uppercase())); // duplicate
    let input = work.write("in.csv", text);
    let api = TestApi::start(api(|hit| match hit.cert().chars().last().unwrap() {
        '1' => TestResponse::error(400, 1407, "already deleted"),
        '2' => TestResponse::error(404, 1415, "not found"),
        '3' if hit.repeat < 2 => TestResponse::error(503, 1000, "upstream unavailable"),
        '4' => TestResponse::error(400, 1002, "bad request"),
        _ => TestResponse::revoked(hit),
    }))
    .await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(1), "rows not found or failed exit 1: {}", stderr(&out));
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 40, "one row per unique pair");
    let rows = by_cert(&rows);
    assert_eq!(rows.len(), 40);
    for (id, row) in &rows {
        let (outcome, attempts) = match id.chars().last().unwrap() {
            '1' => ("already_revoked", "1"),
            '2' => ("not_found", "1"),
            '3' => ("revoked", "3"),
            '4' => ("failed", "1"),
            _ => ("revoked", "1"),
        };
        assert_eq!((row["outcome"].as_str(), row["attempts"].as_str()), (outcome, attempts), "{id}: {row:?}");
    }
    assert_eq!(rows[&cert(4)]["error_code"], "1002");
    assert_eq!(rows[&cert(4)]["error_message"], "bad request");
    let deletes = api.count(Method::DELETE);
    assert_eq!(deletes, 40 + 2 * 3, "only the 5xx rows were retried (3 of them, twice each)");
    let summary = stdout(&out);
    assert!(summary.contains("1 duplicates skipped"), "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn five_hundreds_give_up_after_max_attempts() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api =
        TestApi::start(api(|_| TestResponse { status: 502, body: "<html>bad gateway</html>".into(), headers: vec![] }))
            .await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--max-attempts", "4"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!((row["outcome"].as_str(), row["attempts"].as_str()), ("failed", "4"));
        assert!(row["error_message"].starts_with("gave up after 4 attempt(s): HTTP 502"), "{row:?}");
    }
    assert_eq!(api.count(Method::DELETE), 12);
}

/// The shared pause through the binary, as the server sees it. The pause in
/// detail (every worker held, its end, Retry-After clipped) is asserted on
/// the paused clock in the dispatcher's tests.
#[tokio::test(flavor = "multi_thread")]
async fn retry_after_on_429_pauses_every_worker() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(30));
    // The 6th DELETE overall gets a 429 asking for a 1-second pause.
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let api = TestApi::start(api(move |hit| {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 5 {
            TestResponse::error(429, 971, "Please wait and consider throttling your request speed")
                .with_header("retry-after", "1")
        } else {
            TestResponse::revoked(hit)
        }
    }))
    .await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--concurrency", "8", "--rate", "50/s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(work.results("out.csv").len(), 30);
    let deletes: Vec<Hit> = api.hits().into_iter().filter(|h| h.method == Method::DELETE).collect();
    assert_eq!(deletes.len(), 31);
    let limited_at = deletes[5].at;
    // Requests already on the wire when the 429 came back may land just after
    // it; after that, nobody may send until the second is over.
    let early: Vec<Duration> = deletes[6..]
        .iter()
        .map(|h| h.at.saturating_duration_since(limited_at))
        .filter(|d| *d > Duration::from_millis(250) && *d < Duration::from_millis(1000))
        .collect();
    assert!(early.is_empty(), "requests sent during the pause: {early:?}");
    let resumed =
        deletes.iter().filter(|h| h.at.saturating_duration_since(limited_at) >= Duration::from_secs(1)).count();
    assert!(resumed >= 20, "work went on after the pause ({resumed})");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_check_revokes_nothing() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(5));
    let api = TestApi::start(|_| TestResponse::error(403, 9109, "Invalid access token")).await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(api.count(Method::DELETE), 0);
    assert_eq!(api.count(Method::GET), 1);
    assert_eq!(work.results("out.csv").len(), 0);
    assert!(stdout(&out).contains("Invalid access token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_email_and_key_are_sent_as_headers() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(1));
    let api = TestApi::start(api(TestResponse::revoked)).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.env_remove("CLOUDFLARE_API_TOKEN").env("CLOUDFLARE_EMAIL", "ops@example.com").env("CLOUDFLARE_API_KEY", "k3y");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(api.hits().iter().all(|h| h.authorization.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_input_needs_output_and_yes() {
    let work = Workdir::new();
    let api = TestApi::start(api(TestResponse::revoked)).await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN)
        .args(["revoke", "-", "--base-url", &api.base_url()])
        .write_stdin(input_csv(2));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--output"), "{}", stderr(&out));

    let mut cmd = api.revoke(std::path::Path::new("-"), &work.path("out.csv"));
    cmd.write_stdin(input_csv(7));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(work.results("out.csv").len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_run_needs_yes_when_not_on_a_terminal() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    let api = TestApi::start(api(TestResponse::revoked)).await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).arg("revoke").arg(&input).args(["--base-url", &api.base_url()]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(api.hits().is_empty());
    assert!(!work.path("in.results.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_sends_nothing_and_needs_no_credentials() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(12));
    let api = TestApi::start(api(TestResponse::revoked)).await;
    let mut cmd = cfrevoke();
    cmd.arg("revoke").arg(&input).args(["--dry-run", "--base-url", &api.base_url()]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("12 certificates to revoke in 3 zones"), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(api.hits().is_empty());
    assert!(!work.path("in.results.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_results_are_never_overwritten() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    work.write("in.results.csv", "earlier run\n");
    let api = TestApi::start(api(TestResponse::revoked)).await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).arg("revoke").arg(&input).args(["--yes", "--base-url", &api.base_url()]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(work.read("in.results.csv"), "earlier run\n");
    assert!(api.hits().is_empty());
}

#[test]
fn cleartext_base_url_off_loopback_is_refused() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(1));
    let out = cfrevoke()
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .arg("revoke")
        .arg(&input)
        .args(["--yes", "--base-url", "http://api.example.test/client/v4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("clear text"), "{}", stderr(&out));
}

#[test]
fn missing_credentials_name_the_variables() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(1));
    let out =
        cfrevoke().arg("revoke").arg(&input).args(["--yes", "--base-url", "http://127.0.0.1:9/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("CLOUDFLARE_API_TOKEN") && err.contains("CLOUDFLARE_EMAIL"), "{err}");
}
