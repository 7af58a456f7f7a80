//! The pipeline against `cfrevoke sandbox`: a stateful simulated API whose
//! journal shows what really happened on the server side.

use crate::support::*;

/// Every row `revoked` in the results, and every certificate revoked exactly
/// once according to the sandbox.
async fn assert_all_revoked_once(work: &Workdir, sandbox: &SandboxProcess, rows: usize) {
    let results = work.results("out.csv");
    assert_eq!(results.len(), rows);
    let not_revoked: Vec<_> = results.iter().filter(|r| r["outcome"] != "revoked").collect();
    assert!(not_revoked.is_empty(), "{not_revoked:?}");
    let journal = sandbox.journal().await;
    assert_eq!(journal.revocations, rows as u64);
    assert_eq!(journal.certs.len(), rows);
    let twice: Vec<_> = journal.certs.iter().filter(|(_, c)| c.activity.revocations != 1).collect();
    assert!(twice.is_empty(), "revoked other than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_against_the_sandbox() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(50));
    let sandbox = SandboxProcess::start(&input, &[]);
    let out = run(sandbox.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_all_revoked_once(&work, &sandbox, 50).await;
    let results = work.results("out.csv");
    assert!(results.iter().all(|r| r["cert_status"] == "pending_revocation" && r["cf_ray"].ends_with("-SBX")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaled_down_quota_is_respected_with_zero_429s() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(40));
    let sandbox = SandboxProcess::start(&input, &["--quota", "10", "--window", "1s", "--block", "30s"]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--rate", "10/1s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert_eq!(journal.rate_limited, 0, "a 429 would block the account for the block period");
    assert!(journal.max_in_window.unwrap() <= 10, "{:?}", journal.max_in_window);
    assert_all_revoked_once(&work, &sandbox, 40).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_block_is_ridden_out_by_every_worker_together() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(40));
    let sandbox = SandboxProcess::start(&input, &["--force-429-after", "15", "--block", "2s"]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--concurrency", "8", "--rate", "100/s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stderr(&out), work.read("out.csv"));
    let journal = sandbox.journal().await;
    assert!(journal.rate_limited >= 1);
    // Only requests already on the wire meet the block; nobody keeps knocking.
    assert!(journal.rate_limited <= 8, "{} requests hit the block", journal.rate_limited);
    assert_all_revoked_once(&work, &sandbox, 40).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_percent_5xx_plus_resets_still_revoke_every_row_once() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(120));
    let sandbox = SandboxProcess::start(
        &input,
        &["--error-rate", "0.2", "--reset-rate", "0.05", "--malformed-rate", "0.02", "--revoke-delay", "10m"],
    );
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--max-attempts", "12"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert!(journal.faults.error > 10 && journal.faults.reset > 0, "{:?}", journal.faults);
    assert!(journal.faults.after_change > 0, "some faults struck after the revocation: retries met it");
    assert_all_revoked_once(&work, &sandbox, 120).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_dies_mid_run_stops_it_with_exit_3() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(100));
    let sandbox = SandboxProcess::start(&input, &["--token-expires-after", "20"]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--concurrency", "4", "--rate", "200/s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert!(journal.requests < 40, "the run went on with a dead token: {} requests", journal.requests);
    let results = work.results("out.csv");
    let revoked = results.iter().filter(|r| r["outcome"] == "revoked").count() as u64;
    assert_eq!(revoked, journal.revocations, "every revocation the server made is recorded");
    assert!(stdout(&out).contains("not attempted"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_write_permission_fails_rows_without_retrying() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(5));
    let sandbox = SandboxProcess::start(&input, &["--forbid-writes"]);
    let out = run(sandbox.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results = work.results("out.csv");
    assert!(results.iter().all(|r| r["outcome"] == "failed" && r["http_status"] == "403" && r["attempts"] == "1"));
    assert_eq!(sandbox.journal().await.revocations, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_sandbox_runs_in_process_and_says_so() {
    let work = Workdir::new();
    let input = work.write("drill.csv", input_csv(30));
    let args = ["cfrevoke", "revoke", input.to_str().unwrap(), "--rate", "500/s", "--log-file"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(work.path("log.jsonl").display().to_string());
    args.push("--sandbox".into());
    let code = tokio::task::spawn_blocking(move || {
        use clap::Parser;
        cfrevoke::run(cfrevoke::cli::Cli::parse_from(args))
    })
    .await
    .unwrap();
    assert_eq!(code, cfrevoke::exit::ExitCode::Success);
    let results = work.results("drill.sandbox-results.csv");
    assert_eq!(results.len(), 30);
    assert!(results.iter().all(|r| r["outcome"] == "revoked" || r["outcome"] == "already_revoked"));
    let log = work.read("log.jsonl");
    assert!(log.contains("\"sandbox\":true"));
    // The rehearsal's zones enforce revocation, as a real incident's should.
    assert!(log.contains(r#"\"verdict\":\"enforced\""#) && !log.contains("not_enforced"), "{log}");
}
