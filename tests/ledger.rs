//! The ledger of recent sends: runs with one credential see each other's,
//! `--no-ledger` keeps none, and a state directory or ledger that cannot be
//! written costs one warning, never the run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::*;

/// The ledger files under a state home.
fn ledgers(state: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state.join("cfrevoke")) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "ledger")).collect()
}

/// Certificates for a sandbox, and two inputs that split them.
fn two_inputs(work: &Workdir) -> (PathBuf, PathBuf, PathBuf) {
    let all = input_csv(10);
    let mut lines = all.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let part = |rows: &[&str]| format!("{header}\n{}\n", rows.join("\n"));
    (work.write("certs.csv", &all), work.write("one.csv", part(&rows[..5])), work.write("two.csv", part(&rows[5..])))
}

fn ledger_warnings(out: &std::process::Output) -> Vec<String> {
    stderr(out).lines().filter(|l| l.contains("ledger")).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_after_another_with_the_same_token_counts_its_sends() {
    let work = Workdir::new();
    let (certs, one, two) = two_inputs(&work);
    let sandbox = SandboxProcess::start(&certs, &[]);
    let first = run(sandbox.revoke(&one, &work.path("one.results.csv"))).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let sent = sandbox.journal().await.requests;
    assert!(sent >= 6, "the check and five revocations: {sent}");
    let mut second = sandbox.revoke(&two, &work.path("two.results.csv"));
    second.arg("-v");
    let second = run(second).await;
    assert!(second.status.success(), "{}", stderr(&second));
    let said = stderr(&second);
    assert!(said.contains(&format!("ledger: {sent} earlier sends, 0 live peers")), "{said}");
    // One file for the one credential, private, naming no secret.
    let files = ledgers(work.path("").as_path());
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(text.lines().count() as u64, 1 + sandbox.journal().await.requests, "a header, then every send: {text}");
    assert!(!text.contains(&sandbox.token) && !files[0].to_string_lossy().contains(&sandbox.token));
    assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(work.path("cfrevoke")).unwrap().permissions().mode() & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_beside_another_with_the_same_token_sees_it_live() {
    use std::process::Stdio;
    let work = Workdir::new();
    let (certs, one, two) = two_inputs(&work);
    let sandbox = SandboxProcess::start(&certs, &[]);
    let mut first = sandbox.revoke_std(&one, &work.path("one.results.csv"));
    let first = first.args(["--rate", "4/s"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let results = work.path("one.results.csv");
    tokio::task::spawn_blocking(move || wait_for_rows(&results, 1)).await.unwrap();
    let mut second = sandbox.revoke(&two, &work.path("two.results.csv"));
    second.arg("-v");
    let second = run(second).await;
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()).await.unwrap();
    assert!(first.status.success() && second.status.success(), "{}", stderr(&second));
    let said = stderr(&second);
    assert!(said.contains(" earlier sends, 1 live peers"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_ledger_writes_nothing() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(TestResponse::revoked).await;
    let state = work.path("state");
    let mut cmd = api.revoke_std(&input, &work.path("out.csv"));
    cmd.env("XDG_STATE_HOME", &state).arg("--no-ledger");
    let out = run(assert_cmd::Command::from_std(cmd)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!state.exists(), "nothing under the state home");
    // Without the flag, the same run keeps one.
    let mut cmd = api.revoke_std(&input, &work.path("again.csv"));
    cmd.env("XDG_STATE_HOME", &state);
    assert!(run(assert_cmd::Command::from_std(cmd)).await.status.success());
    assert_eq!(ledgers(&state).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_directory_that_cannot_be_made_is_only_a_warning() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(TestResponse::revoked).await;
    // A file where the state home should be: no directory can go under it.
    let state = work.write("state", "not a directory");
    let mut cmd = api.revoke_std(&input, &work.path("out.csv"));
    cmd.env("XDG_STATE_HOME", &state);
    let out = run(assert_cmd::Command::from_std(cmd)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings = ledger_warnings(&out);
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(warnings[0].contains("going on without it") && warnings[0].contains("Not a directory"), "{warnings:?}");
    assert!(work.results("out.csv").iter().all(|r| r["outcome"] == "revoked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_that_fills_the_disk_mid_run_is_only_a_warning() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(TestResponse::revoked).await;
    assert!(run(api.revoke(&input, &work.path("first.csv"))).await.status.success());
    // Another run's recent sends fill the ledger up to just below the limit
    // on the size of a file, so the next append does not fit.
    const LIMIT: u64 = 64 * 1024;
    let ledger = &ledgers(work.path("").as_path())[0];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let mut text = std::fs::read_to_string(ledger).unwrap();
    while (text.len() as u64) < LIMIT - 20 {
        text.push_str(&format!("{now} 0123456789abcdef\n"));
    }
    std::fs::write(ledger, &text).unwrap();
    let mut cmd = api.revoke_std(&input, &work.path("second.csv"));
    limit_file_size(&mut cmd, LIMIT);
    let out = run(assert_cmd::Command::from_std(cmd)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings = ledger_warnings(&out);
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(warnings[0].contains("cannot write") && warnings[0].contains("going on without it"), "{warnings:?}");
    assert_eq!(work.results("second.csv").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_in_place_of_the_ledger_never_holds_up_the_run() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(TestResponse::revoked).await;
    assert!(run(api.revoke(&input, &work.path("first.csv"))).await.status.success());
    let ledger = ledgers(work.path("").as_path()).remove(0);
    std::fs::remove_file(&ledger).unwrap();
    mkfifo(&ledger);
    let second = run(api.revoke(&input, &work.path("second.csv")));
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), second).await.expect("no hang");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let warnings = ledger_warnings(&out);
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(warnings[0].contains("is not a regular file"), "{warnings:?}");
}
