//! Outputs never destroy data: files that are one file, a log that cannot be
//! written, results files left without rows, a closed stdout, a FIFO, hang-ups
//! and file-size limits.

use std::process::Stdio;
use std::time::Duration;

use axum::http::Method;

use crate::support::*;

/// Asserts a usage error (exit 2) that sent nothing; returns stderr.
fn refused_before_sending(out: &std::process::Output, api: &TestApi) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    assert!(api.hits().is_empty(), "a request was sent: {:?}", api.hits());
    stderr(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn outputs_that_are_one_file_are_refused_before_any_request() {
    let work = Workdir::new();
    let text = input_csv(5);
    let input = work.write("in.csv", &text);
    let earlier = work.write("earlier.csv", "line,zone_id,certificate_id,outcome\n");
    std::os::unix::fs::symlink(&input, work.path("link.csv")).unwrap();
    std::fs::hard_link(&input, work.path("hard.json")).unwrap();
    let api = TestApi::start(TestResponse::revoked).await;
    let out = work.path("out.csv");
    let cases: [(&str, &[&std::path::Path]); 5] = [
        ("--summary-json over the results", &["--summary-json".as_ref(), out.as_path()]),
        ("--log-file through a symlink to the input", &["--log-file".as_ref(), &work.path("link.csv")]),
        ("--summary-json as a hard link of the input", &["--summary-json".as_ref(), &work.path("hard.json")]),
        (
            "--log-file and --summary-json",
            &["--log-file".as_ref(), &work.path("x.log"), "--summary-json".as_ref(), &work.path("x.log")],
        ),
        (
            "--log-file over resumed results",
            &["--resume".as_ref(), "--output".as_ref(), &earlier, "--log-file".as_ref(), &earlier],
        ),
    ];
    for (case, flags) in cases {
        let mut cmd = api.revoke(&input, &out);
        cmd.args(flags);
        let err = refused_before_sending(&run(cmd).await, &api);
        assert!(err.contains("are the same file") && err.contains("nothing was sent"), "{case}: {err}");
        assert!(!out.exists(), "{case}: a results file was created");
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), text, "the input is untouched");
    assert_eq!(work.read("earlier.csv"), "line,zone_id,certificate_id,outcome\n");

    // Reactivate reads a results file: its own results may not be that file.
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).arg("reactivate").arg(&earlier).arg("--output").arg(&earlier);
    cmd.args(["--resume", "--yes", "--base-url", &api.base_url()]);
    let err = refused_before_sending(&run(cmd).await, &api);
    assert!(err.contains("are the same file"), "{err}");

    // `list` never writes over an existing file, so its zones file is safe.
    let zones = work.write("zones.txt", format!("{}\n", zone(0)));
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).args(["list", "--base-url", &api.base_url(), "--zones-file"]);
    cmd.arg(&zones).arg("--output").arg(&zones);
    refused_before_sending(&run(cmd).await, &api);
    assert_eq!(work.read("zones.txt"), format!("{}\n", zone(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_that_cannot_be_written_stops_the_run_before_the_first_request() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(10));
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--log-file", "/dev/full"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("STOPPED: cannot write the log file /dev/full"), "{summary}");
    assert!(summary.contains("not attempted          10") && summary.contains("--resume"), "{summary}");
    assert!(api.hits().is_empty(), "nothing is sent without an audit record: {:?}", api.hits());
    assert!(work.results("out.csv").is_empty());
}

/// A log that fills up mid-run (RLIMIT_FSIZE, with SIGXFSZ left at its
/// default, which kills the process) stops the run as a full results disk
/// does: every row in flight recorded, and a resume finishes the rest.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn a_file_size_limit_stops_the_run_cleanly_and_a_resume_finishes() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(60));
    let api = TestApi::start(TestResponse::revoked).await;
    let out = work.path("out.csv");
    let mut cmd = api.revoke_std(&input, &out);
    cmd.arg("--log-file").arg(work.path("run.jsonl"));
    limit_file_size(&mut cmd, 8000);
    let full = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(full.status.code(), Some(1), "{:?} {}", full.status, stderr(&full));
    assert!(stdout(&full).contains("STOPPED: cannot write the log file"), "{}", stdout(&full));
    let recorded = work.results("out.csv").len();
    assert!(recorded < 60, "stopped mid-run ({recorded} rows)");
    assert_eq!(api.count(Method::DELETE), recorded, "every request in flight was recorded");

    let mut resume = api.revoke(&input, &out);
    resume.arg("--resume").arg("--log-file").arg(work.path("resumed.jsonl"));
    let resumed = run(resume).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_eq!(work.results("out.csv").len(), 60);
    let deletes = api.hits().into_iter().filter(|h| h.method == Method::DELETE).collect::<Vec<_>>();
    assert!(deletes.len() == 60 && deletes.iter().all(|h| h.repeat == 0), "each certificate revoked once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_results_file_left_without_rows_is_started_over_with_or_without_resume() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(4));
    // A run whose token is refused leaves only the header behind.
    let dead = TestApi::start(|_| TestResponse::error(401, 10000, "Authentication error")).await;
    assert_eq!(run(dead.revoke(&input, &work.path("out.csv"))).await.status.code(), Some(3));
    assert!(work.read("out.csv").starts_with("line,zone_id") && work.results("out.csv").is_empty());

    let api = TestApi::start(TestResponse::revoked).await;
    let again = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(again.status.code(), Some(0), "the same command again just works: {}", stderr(&again));
    assert!(stderr(&again).contains("it held no results rows"), "{}", stderr(&again));
    assert_eq!(work.results("out.csv").len(), 4);

    for (name, left) in [("empty.csv", ""), ("header.csv", "line,zone_id,certificate_id,outcome,http_status,")] {
        work.write(name, left);
        let mut cmd = api.revoke(&input, &work.path(name));
        cmd.arg("--resume");
        let resumed = run(cmd).await;
        assert_eq!(resumed.status.code(), Some(0), "{name}: {}", stderr(&resumed));
        assert_eq!(work.results(name).len(), 4, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_is_no_panic_and_the_files_are_written_first() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(5));
    let mut cmd = cfrevoke_std();
    cmd.arg("revoke").arg(&input).arg("--sandbox").arg("--output").arg(work.path("out.csv"));
    cmd.arg("--summary-json").arg(work.path("summary.json")).arg("--json");
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // `| true`: the reader is gone before anything is printed
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(work.results("out.csv").len(), 5);
    let summary: serde_json::Value = serde_json::from_str(&work.read("summary.json")).unwrap();
    assert_eq!((summary["exit_code"].as_u64(), summary["counts"]["revoked"].as_u64()), (Some(0), Some(5)));

    // The exit code still says what happened to the rows.
    let api = TestApi::start(|hit| {
        if hit.method == Method::DELETE {
            TestResponse::error(404, 1415, "not found")
        } else {
            TestResponse::revoked(hit)
        }
    })
    .await;
    let mut cmd = api.revoke_std(&input, &work.path("missing.csv"));
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(work.results("missing.csv").iter().all(|r| r["outcome"] == "not_found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_is_an_interruption_with_the_resume_command() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(200));
    let sandbox = SandboxProcess::start(&input, &["--latency-mean", "30ms", "--no-rate-limit"]);
    let out = work.path("out.csv");
    let stopped = interrupt_mid_run(&sandbox, &input, &out, "HUP", 10).await;
    assert_eq!(stopped.status.code(), Some(130), "{:?} {}", stopped.status, stderr(&stopped));
    let summary = stdout(&stopped);
    assert!(summary.contains("STOPPED: interrupted"), "{summary}");
    let recorded = work.results("out.csv").len() as u64;
    assert_eq!(recorded, sandbox.journal().await.revocations, "every request in flight was recorded");
    let resume = summary.lines().find_map(|l| l.strip_prefix("to retry what is left: ")).expect("resume command");
    assert!(resume.contains("--resume"), "{resume}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_as_the_results_file_is_refused_before_any_request() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let fifo = work.path("out.fifo");
    mkfifo(&fifo);
    let api = TestApi::start(TestResponse::revoked).await;
    for resume in [false, true] {
        let mut cmd = api.revoke(&input, &fifo);
        cmd.args(resume.then_some("--resume")).timeout(Duration::from_secs(20));
        let err = refused_before_sending(&run(cmd).await, &api);
        assert!(err.contains("is not a regular file"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_summary_fifo_nobody_reads_does_not_hang_the_end_of_the_run() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let fifo = work.path("summary.fifo");
    mkfifo(&fifo);
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.arg("--summary-json").arg(&fifo).timeout(Duration::from_secs(20));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write the summary to"), "{}", stderr(&out));
    assert!(work.results("out.csv").iter().all(|r| r["outcome"] == "revoked"), "the rows were recorded first");
}
