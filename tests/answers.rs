//! An answer means what it says, and undo and resume cover every operation:
//! a 2xx that does not show the change is no success, a revocation whose
//! reply was lost is still this run's (so `reactivate` undoes it), a resumed
//! `reactivate` skips what it already did, and a request in flight when the
//! run stops is recorded.

use std::collections::HashMap;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, Response};

use crate::support::*;

/// A success envelope whose result is `result`.
fn ok(result: serde_json::Value) -> TestResponse {
    let body = serde_json::json!({"success": true, "errors": [], "messages": [], "result": result});
    TestResponse { status: 200, body: body.to_string(), headers: vec![] }
}

fn by_cert(rows: Vec<HashMap<String, String>>) -> HashMap<String, HashMap<String, String>> {
    rows.into_iter().map(|r| (r["certificate_id"].clone(), r)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2xx_that_does_not_show_the_revocation_is_a_failure() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(4));
    let api = TestApi::start(|hit| match (hit.method.clone(), hit.cert()) {
        (Method::DELETE, c) if c == cert(0) => ok(serde_json::json!({"id": c, "status": "active"})),
        (Method::DELETE, c) if c == cert(1) => ok(serde_json::json!({"id": cert(9), "status": "pending_revocation"})),
        (Method::DELETE, c) if c == cert(2) => ok(serde_json::Value::Null),
        _ => TestResponse::revoked(hit),
    })
    .await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--max-attempts", "2"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rows = by_cert(work.results("out.csv"));
    let expected = [
        (0, "failed", "gave up after 2 attempt(s): HTTP 200: the answer says the certificate is active"),
        (
            1,
            "failed",
            &format!(
                "gave up after 2 attempt(s): HTTP 200: the answer is about certificate {}, not {}",
                cert(9),
                cert(1)
            ),
        ),
        (2, "failed", "gave up after 2 attempt(s): HTTP 200: the answer carries no certificate"),
        (3, "revoked", ""),
    ];
    for (i, outcome, message) in expected {
        let row = &rows[&cert(i)];
        assert_eq!((row["outcome"].as_str(), row["error_message"].as_str()), (outcome, message), "{row:?}");
    }
    assert_eq!(rows[&cert(0)]["cert_status"], "active", "the row shows what the answer said");
    assert_eq!(rows[&cert(0)]["attempts"], "2", "a 2xx that does not answer is retried first");
    assert_eq!(api.count(Method::DELETE), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2xx_to_reactivate_must_show_the_certificate_coming_back() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(|hit| match (hit.method.clone(), hit.cert()) {
        (Method::PATCH, c) if c == cert(0) => ok(serde_json::json!({"id": c, "status": "pending_revocation"})),
        (Method::PATCH, c) if c == cert(1) => ok(serde_json::json!({"id": cert(9), "status": "pending_reactivation"})),
        (Method::PATCH, c) => ok(serde_json::json!({"id": c, "status": "pending_reactivation"})),
        _ => TestResponse::revoked(hit),
    })
    .await;
    let revoked = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN)
        .arg("reactivate")
        .arg(work.path("out.csv"))
        .arg("--output")
        .arg(work.path("undo.csv"))
        .args(["--base-url", &api.base_url(), "--yes", "--rate", "1000/s", "--retry-delay", "5ms"])
        .args(["--retry-max-delay", "20ms", "--max-attempts", "2"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rows = by_cert(work.results("undo.csv"));
    assert_eq!(rows[&cert(0)]["outcome"], "failed");
    assert_eq!(
        rows[&cert(0)]["error_message"],
        "gave up after 2 attempt(s): HTTP 200: the answer says the certificate is pending_revocation"
    );
    assert_eq!(rows[&cert(1)]["outcome"], "failed");
    assert!(rows[&cert(1)]["error_message"].contains("the answer is about certificate"), "{:?}", rows[&cert(1)]);
    assert_eq!(rows[&cert(2)]["outcome"], "reactivated");
}

#[tokio::test(flavor = "multi_thread")]
async fn revocations_whose_replies_were_lost_are_undone_by_reactivate() {
    let work = Workdir::new();
    let rows = 40;
    let input = work.write("in.csv", input_csv(rows));
    // Half the answers are lost after the DELETE took effect, and a
    // revocation settles before the retry: the retry hears "already revoked".
    let flags = ["--reset-rate", "0.5", "--fault-after-change", "1", "--revoke-delay", "10ms", "--seed", "7"];
    let sandbox = SandboxProcess::start(&input, &[&flags[..], &["--no-rate-limit"]].concat());
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--retry-delay", "60ms", "--retry-max-delay", "60ms", "--max-attempts", "20"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = work.results("out.csv");
    let others: Vec<_> = results.iter().filter(|r| r["outcome"] != "revoked").collect();
    assert!(others.is_empty(), "{others:?}");
    let lost: Vec<_> = results.iter().filter(|r| r["error_code"] == "1407").collect();
    assert!(!lost.is_empty(), "the seed loses some first replies");
    assert!(lost.iter().all(|r| r["error_message"].contains("an earlier attempt may have revoked it")), "{lost:?}");
    assert!(stdout(&out).contains(&format!("{:<16} {rows:>8}", "revoked")), "{}", stdout(&out));
    let journal = sandbox.journal().await;
    assert_eq!(journal.revocations, rows as u64);

    let mut undo = sandbox.command("reactivate");
    undo.arg(work.path("out.csv")).args(["--yes", "--max-attempts", "20", "--output"]).arg(work.path("undo.csv"));
    let undone = run(undo).await;
    assert!(!stderr(&undone).contains("has none"), "{}", stderr(&undone));
    let journal = sandbox.journal().await;
    assert_eq!(journal.certs.len(), rows);
    assert!(journal.certs.values().all(|c| c.activity.patch >= 1), "every revocation of this run gets its PATCH");
    let undone_rows = work.results("undo.csv");
    assert_eq!(undone_rows.len(), rows);
    // Settled after 10 ms: Cloudflare no longer allows the undo.
    assert!(undone_rows.iter().all(|r| r["outcome"] == "too_late"), "{undone_rows:?}");
}

fn finish(child: std::process::Child) -> Output {
    child.wait_with_output().expect("wait for cfrevoke")
}

#[tokio::test(flavor = "multi_thread")]
async fn reactivate_resume_skips_the_pairs_it_already_reactivated() {
    let work = Workdir::new();
    let rows = 80;
    let input = work.write("in.csv", input_csv(rows));
    let sandbox =
        SandboxProcess::start(&input, &["--revoke-delay", "10m", "--latency-mean", "20ms", "--no-rate-limit"]);
    let revoked = run(sandbox.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));

    let undo = work.path("undo.csv");
    let mut first = sandbox.command_std("reactivate");
    first.arg(work.path("out.csv")).args(["--yes", "--rate", "40/s", "--output"]).arg(&undo);
    let child = first.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let waiting = undo.clone();
    tokio::task::spawn_blocking(move || wait_for_rows(&waiting, 10)).await.unwrap();
    signal(&child, "TERM");
    let stopped = tokio::task::spawn_blocking(move || finish(child)).await.unwrap();
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let before = work.results("undo.csv").len();
    assert!((10..rows).contains(&before), "stopped mid-run ({before} rows)");

    let mut resume = sandbox.command("reactivate");
    resume.arg(work.path("out.csv")).args(["--yes", "--resume", "--output"]).arg(&undo);
    let resumed = run(resume).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(stdout(&resumed).contains(&format!("{:<16} {before:>8}", "done earlier")), "{}", stdout(&resumed));
    let journal = sandbox.journal().await;
    assert_eq!(journal.by_method["PATCH"], rows as u64, "one PATCH per pair over both runs");
    assert!(journal.certs.values().all(|c| c.activity.patch == 1));
    let undone = work.results("undo.csv");
    assert_eq!(undone.len(), rows, "one row per pair");
    assert!(undone.iter().all(|r| r["outcome"] == "reactivated"), "{undone:?}");
}

/// A loopback API whose GETs answer at once. While `hang` is set its DELETEs
/// never answer in time (as if the work was done and the reply lost); after,
/// they answer "already revoked". It counts the DELETEs it received.
struct HangingDeletes {
    base: String,
    deletes: Arc<AtomicUsize>,
    hang: Arc<AtomicBool>,
}

impl HangingDeletes {
    async fn start() -> HangingDeletes {
        let (deletes, hang) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(true)));
        let (seen, hanging) = (Arc::clone(&deletes), Arc::clone(&hang));
        let app = axum::Router::new().fallback(move |method: Method, uri: axum::http::Uri| {
            let (seen, hanging) = (Arc::clone(&seen), Arc::clone(&hanging));
            async move {
                let id = uri.path().rsplit('/').next().unwrap_or("").to_string();
                let reply = if method != Method::DELETE {
                    ok(serde_json::json!({"id": id, "status": "active"}))
                } else {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if hanging.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    TestResponse::error(400, 1407, "already revoked")
                };
                Response::builder()
                    .status(reply.status)
                    .header("content-type", "application/json")
                    .body(reply.body)
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base = format!("http://{}/client/v4", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        HangingDeletes { base, deletes, hang }
    }

    fn revoke(&self, input: &std::path::Path, output: &std::path::Path) -> std::process::Command {
        let mut cmd = revoke_command(&self.base, input, output);
        cmd.args(["--rate", "1000/s", "--concurrency", "2"]).args([
            "--timeout",
            "500ms",
            "--retry-delay",
            "10s",
            "--retry-max-delay",
            "10s",
        ]);
        cmd
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_at_sigterm_that_times_out_is_recorded_as_attempted() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(5));
    let api = HangingDeletes::start().await;
    let out = work.path("out.csv");
    let child = api.revoke(&input, &out).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.deletes.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the DELETEs never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "TERM");
    let stopped = tokio::task::spawn_blocking(move || finish(child)).await.unwrap();
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 2, "both requests in flight are recorded: {rows:?}");
    for row in &rows {
        assert_eq!(row["outcome"], "failed");
        assert!(row["error_message"].starts_with("the run stopped after 1 attempt(s)"), "{row:?}");
        assert!(row["error_message"].ends_with("timed out after 500ms"), "{row:?}");
    }
    let summary = stdout(&stopped);
    assert!(summary.contains(&format!("{:<16} {:>8}", "not attempted", 3)), "{summary}");
    assert_eq!(api.deletes.load(Ordering::SeqCst), 2, "nothing new was sent after the signal");

    // The resume hears "already revoked" for every pair. For the two the
    // stopped run may have revoked, that is this run's revocation; the
    // other three were never sent by it, so they were revoked before.
    api.hang.store(false, Ordering::SeqCst);
    let mut resume = api.revoke(&input, &out);
    let resumed = tokio::task::spawn_blocking(move || resume.arg("--resume").output().unwrap()).await.unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let last: HashMap<_, _> = by_cert(work.results("out.csv"));
    let outcome = |i| last[&cert(i)]["outcome"].clone();
    let tried = rows.iter().map(|r| r["certificate_id"].clone()).collect::<Vec<_>>();
    for i in 0..5 {
        let expected = if tried.contains(&cert(i)) { "revoked" } else { "already_revoked" };
        assert_eq!(outcome(i), expected, "{:?}", last[&cert(i)]);
    }
}
