//! Nothing lost: crashes, signals, overlapping runs, systemic failures and
//! fault storms, each ending with every pair recorded once as final and the
//! sandbox confirming no certificate was revoked twice.

use std::collections::HashMap;
use std::process::{Output, Stdio};

use crate::support::*;

/// Each input pair has exactly one final row (earlier `failed` rows may
/// precede it), every final row is a success, and the server revoked each
/// certificate exactly once.
async fn assert_each_pair_final_once(work: &Workdir, sandbox: &SandboxProcess, rows: usize) {
    let results = work.results("out.csv");
    let mut finals: HashMap<String, usize> = HashMap::new();
    for row in &results {
        assert!(row["outcome"] != "not_found" && row["outcome"] != "invalid", "{row:?}");
        if row["outcome"] == "revoked" || row["outcome"] == "already_revoked" {
            *finals.entry(row["certificate_id"].clone()).or_default() += 1;
        }
    }
    assert_eq!(finals.len(), rows, "every pair ends final");
    assert!(finals.values().all(|n| *n == 1), "a pair has more than one final row");
    let journal = sandbox.journal().await;
    assert_eq!(journal.revocations, rows as u64);
    assert!(journal.certs.values().all(|c| c.activity.revocations == 1), "a certificate was revoked twice");
}

fn finish(child: std::process::Child) -> Output {
    child.wait_with_output().expect("wait for cfrevoke")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_then_resume_finishes_every_row_once() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(150));
    // Without a rate limit: the resumed run would otherwise (rightly) count the
    // killed run's requests as another consumer's and pace below the quota.
    let flags = ["--latency-mean", "20ms", "--revoke-delay", "200ms", "--no-rate-limit"];
    let sandbox = SandboxProcess::start(&input, &flags);
    let out = work.path("out.csv");
    let mut first = sandbox.revoke_std(&input, &out);
    let mut child = first.args(["--rate", "100/s"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let waiting = out.clone();
    tokio::task::spawn_blocking(move || wait_for_rows(&waiting, 20)).await.unwrap();
    signal(&child, "KILL");
    child.wait().unwrap();
    let before = work.results("out.csv").len();
    assert!((20..150).contains(&before), "killed mid-run ({before} rows)");
    // A write cut short by the kill, as a power cut could leave it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"999,aaaa,cccc,revo"))
        .unwrap();

    let mut resume = sandbox.revoke(&input, &out);
    resume.arg("--resume");
    let resumed = run(resume).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("cut off a torn last line"), "{}", stderr(&resumed));
    assert!(stdout(&resumed).contains(&format!("done earlier     {before:>8}")), "{}", stdout(&resumed));
    assert_each_pair_final_once(&work, &sandbox, 150).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_prints_the_resume_command() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(200));
    let sandbox = SandboxProcess::start(&input, &["--latency-mean", "30ms", "--no-rate-limit"]);
    let out = work.path("out.csv");
    let stopped = interrupt_mid_run(&sandbox, &input, &out, "TERM", 15).await;
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let summary = stdout(&stopped);
    assert!(summary.contains("STOPPED: interrupted"), "{summary}");
    let journal = sandbox.journal().await;
    let recorded = work.results("out.csv");
    assert_eq!(recorded.len() as u64, journal.revocations, "every request in flight finished and was recorded");
    assert!(recorded.len() < 200);
    assert!(summary.contains(&format!("not attempted    {:>8}", 200 - recorded.len())), "{summary}");

    // The printed command, run as printed, finishes the job.
    let command = summary.lines().find_map(|l| l.strip_prefix("to retry what is left: ")).expect("resume command");
    assert!(command.contains("--resume"), "{command}");
    let mut resume = std::process::Command::new("sh");
    resume
        .args(["-c", command])
        .env("CLOUDFLARE_API_TOKEN", &sandbox.token)
        .env("CLOUDFLARE_BASE_URL", &sandbox.base_url);
    state_in(&mut resume, &work.path(""));
    let resumed = resume.output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_each_pair_final_once(&work, &sandbox, 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_the_same_results_file_is_refused() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(100));
    let sandbox = SandboxProcess::start(&input, &[]);
    let out = work.path("out.csv");
    let mut cmd = sandbox.revoke_std(&input, &out);
    let first = cmd.args(["--rate", "20/s"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let waiting = out.clone();
    tokio::task::spawn_blocking(move || wait_for_rows(&waiting, 3)).await.unwrap();
    for extra in [&[][..], &["--resume"][..]] {
        let mut second = sandbox.revoke(&input, &out);
        second.args(extra);
        let refused = run(second).await;
        assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("another cfrevoke process is writing"), "{}", stderr(&refused));
    }
    signal(&first, "TERM");
    let stopped = tokio::task::spawn_blocking(move || finish(first)).await.unwrap();
    assert_eq!(stopped.status.code(), Some(130));
    // The first run's file is intact: every line is a whole results row.
    let rows = work.results("out.csv");
    assert!(rows.iter().all(|r| r["outcome"] == "revoked" && r["finished_at"].ends_with('Z')));
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_transient_faults_still_revoke_every_row_once() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(150));
    let faults = [
        ["--error-rate", "0.15"],
        ["--reset-rate", "0.05"],
        ["--slow-rate", "0.05"],
        ["--slow-delay", "2s"],
        ["--malformed-rate", "0.05"],
        ["--revoke-delay", "10m"],
    ];
    let sandbox = SandboxProcess::start(&input, &faults.concat());
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--timeout", "300ms", "--max-attempts", "20", "--concurrency", "32"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    let f = &journal.faults;
    assert!(f.error > 0 && f.reset > 0 && f.slow > 0 && f.malformed > 0, "{f:?}");
    assert_each_pair_final_once(&work, &sandbox, 150).await;
    assert!(work.results("out.csv").iter().all(|r| r["outcome"] == "revoked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_with_a_block_period_is_ridden_out() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(45));
    // No Ratelimit headers to pace by, and a pace far above the quota: the
    // run meets block after block.
    let flags = ["--quota", "15", "--window", "1s", "--block", "1s", "--ratelimit-dialect", "none"];
    let sandbox = SandboxProcess::start(&input, &flags);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--rate", "500/s", "--concurrency", "8"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert!(journal.rate_limited >= 2, "{}", journal.rate_limited);
    assert_each_pair_final_once(&work, &sandbox, 45).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_failure_row_after_row_stops_the_run_early() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(200));
    let sandbox = SandboxProcess::start(&input, &["--forbid-writes"]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    // Rows the workers finish while the collector catches up with the tenth
    // failure also count, and at full speed a loaded machine let eight more
    // through: at this pace the collector would have to stall for a tenth
    // of a second. That only requests in flight finish after the stop is
    // asserted on the paused clock in the dispatcher's tests.
    cmd.args(["--concurrency", "2", "--max-same-failures", "10", "--rate", "50/s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3), "403 for everything is a credentials problem: {}", stdout(&out));
    let summary = stdout(&out);
    assert!(summary.contains("10 certificates in a row failed the same way (HTTP 403"), "{summary}");
    let rows = work.results("out.csv").len();
    assert!((10..=14).contains(&rows), "stopped early ({rows} rows)");
    assert!(summary.contains("--resume"), "{summary}");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_the_run_cleanly_and_a_resume_finishes() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(60));
    // Without a rate limit, as for the kill above.
    let sandbox = SandboxProcess::start(&input, &["--no-rate-limit"]);
    let out = work.path("out.csv");
    let mut cmd = sandbox.revoke_std(&input, &out);
    // The results file may grow to 3 KB: writes past that fail as on a full disk.
    limit_file_size(&mut cmd, 3000);
    let full = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(full.status.code(), Some(1), "{}", stderr(&full));
    assert!(stdout(&full).contains("STOPPED: cannot write the results file"), "{}", stdout(&full));
    let resumed = run({
        let mut resume = sandbox.revoke(&input, &out);
        resume.arg("--resume");
        resume
    })
    .await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert_each_pair_final_once(&work, &sandbox, 60).await;
}
