//! The incident toolkit around revoke: --verify, reactivate (the undo), the
//! audit trail and machine-readable summaries.

use axum::http::Method;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn verify_reads_every_certificate_back() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(20));
    let sandbox = SandboxProcess::start(&input, &[]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.arg("--verify");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("out.csv");
    let settled = |r: &std::collections::HashMap<String, String>| {
        r["verified_status"] == "pending_revocation" || r["verified_status"] == "revoked"
    };
    assert!(rows.iter().all(|r| r["outcome"] == "revoked" && settled(r)), "{rows:?}");
    let journal = sandbox.journal().await;
    assert_eq!(journal.by_method["GET"] - journal.rules_reads, 21, "one read-back per row, plus the credentials check");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_still_active_after_the_delete_fails_verification() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    let api = TestApi::start(|hit| {
        if hit.method == Method::DELETE {
            TestResponse::revoked(hit)
        } else {
            let body = serde_json::json!({"success": true, "errors": [], "messages": [],
                "result": {"id": hit.cert(), "status": "active"}});
            TestResponse { status: 200, body: body.to_string(), headers: vec![] }
        }
    })
    .await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.arg("--verify");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    for row in work.results("out.csv") {
        assert_eq!((row["outcome"].as_str(), row["verified_status"].as_str()), ("failed", "active"));
        assert_eq!(row["error_message"], "verification: still active after the DELETE");
    }
}

/// Revokes `rows` certificates in a sandbox whose revocations settle after
/// `delay`. Without a rate limit: the next run would otherwise (rightly)
/// count this one's requests as another consumer's and pace below the quota.
async fn revoked_in_sandbox(work: &Workdir, rows: usize, delay: &str) -> SandboxProcess {
    let input = work.write("in.csv", input_csv(rows));
    let sandbox = SandboxProcess::start(&input, &["--revoke-delay", delay, "--no-rate-limit"]);
    let out = run(sandbox.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sandbox
}

#[tokio::test(flavor = "multi_thread")]
async fn reactivate_undoes_a_run_while_cloudflare_allows_it() {
    let work = Workdir::new();
    let sandbox = revoked_in_sandbox(&work, 12, "10m").await;
    let mut cmd = sandbox.command("reactivate");
    cmd.arg(work.path("out.csv")).args(["--yes", "--output"]).arg(work.path("undo.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("undo.csv");
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["outcome"] == "reactivated" && r["cert_status"] == "pending_reactivation"));
    let journal = sandbox.journal().await;
    assert_eq!(journal.by_method["PATCH"], 12);
    assert!(stdout(&out).contains("reactivated            12"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn reactivate_reports_what_already_reached_revoked() {
    let work = Workdir::new();
    // Settled at once: no waiting for a delay to pass.
    let sandbox = revoked_in_sandbox(&work, 6, "0s").await;
    let mut cmd = sandbox.command("reactivate");
    cmd.arg(work.path("out.csv")).args(["--yes", "--output"]).arg(work.path("undo.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = work.results("undo.csv");
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["outcome"] == "too_late"), "{rows:?}");
    assert!(stdout(&out).contains("too_late                6"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn reactivate_takes_a_subset_and_only_revoked_rows() {
    let work = Workdir::new();
    let sandbox = revoked_in_sandbox(&work, 9, "10m").await;
    // A failed row in the results must not be "undone".
    let mut results = work.read("out.csv");
    results.push_str(&format!("99,{},{},failed,500,,8,,gave up,,2026-11-27T00:00:00Z,1,,r0\n", zone(0), cert(99)));
    work.write("out.csv", results);
    let mut cmd = sandbox.command("reactivate");
    cmd.arg(work.path("out.csv")).args(["--yes", "--zone", &zone(1), "--output"]).arg(work.path("undo.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("undo.csv");
    assert_eq!(rows.len(), 3, "zone 1 holds every third certificate");
    assert!(rows.iter().all(|r| r["zone_id"] == zone(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_and_log_event_carries_the_run_id_and_the_summary_is_machine_readable() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(10));
    let sandbox = SandboxProcess::start(&input, &[]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--json", "--log-file"]).arg(work.path("log.jsonl")).arg("--summary-json").arg(work.path("sum.json"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let last = stdout(&out).lines().last().unwrap().to_string();
    let summary: serde_json::Value = serde_json::from_str(&last).expect("--json ends stdout with JSON");
    let from_file: serde_json::Value = serde_json::from_str(&work.read("sum.json")).unwrap();
    assert_eq!(summary, from_file);
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["counts"]["revoked"], 10);
    assert_eq!(summary["results"], work.path("out.csv").display().to_string());
    let run_id = summary["run_id"].as_str().unwrap().to_string();

    assert!(work.results("out.csv").iter().all(|r| r["run_id"] == run_id));
    let log = work.read("log.jsonl");
    let events: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.len() > 20);
    assert!(events.iter().all(|e| e["run_id"] == run_id.as_str()), "every event names the run");
    let start = events.iter().find(|e| e["event"] == "run_start").unwrap();
    assert!(start["operator"].as_str().unwrap().contains('@'));
    assert!(start["command_line"].as_str().unwrap().contains("revoke"));
    assert_eq!(start["input_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(start["rate"], "2000/1s");
}
