//! The input is read as CSV records, whatever their line breaks, and from
//! whatever kind of file: a FIFO or `/dev/stdin` is read once, in pass one.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;

use crate::support::*;

/// Waits for `child` up to `limit`, killing it if it is still running then.
fn finish_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll cfrevoke").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            let out = child.wait_with_output().expect("reap cfrevoke");
            panic!("cfrevoke still running after {limit:?}; stderr: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("reap cfrevoke")
}

/// The results' `line` column, in input order (rows finish in any order).
fn result_lines(work: &Workdir) -> Vec<u64> {
    let mut lines: Vec<u64> = work.results("out.csv").iter().map(|r| r["line"].parse().unwrap()).collect();
    lines.sort_unstable();
    lines
}

/// Zone `i` and certificate `i` as a row, without a line end.
fn pair(i: usize) -> String {
    format!("{},{}", zone(i), cert(i))
}

/// A zone and certificate that appear only inside a quoted field.
fn hidden() -> (String, String) {
    (zone(7), cert(99))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pair_inside_a_quoted_note_is_never_revoked() {
    let work = Workdir::new();
    let (hz, hc) = hidden();
    let text = format!(
        "zone_id,certificate_id,note\n{},\"moved, see\n{hz},{hc}\r\nfor the \"\"old\"\" one\"\n\n{},\"a\rb\"\n{},plain\n",
        pair(0),
        pair(1),
        pair(2)
    );
    let input = work.write("in.csv", text);
    // The sandbox serves the hidden certificate too, so a DELETE for it would land.
    let certs = work.write("certs.csv", format!("zone_id,certificate_id\n{}\n{hz},{hc}\n", pair(0)));
    let sandbox = SandboxProcess::start(&certs, &[]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.arg("--skip-invalid");
    let out = run(cmd).await;
    // Rows 1 and 2 are unknown to the sandbox: not_found, so exit 1; none is invalid.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut results: Vec<(u64, String)> =
        work.results("out.csv").iter().map(|r| (r["line"].parse().unwrap(), r["outcome"].clone())).collect();
    results.sort();
    assert_eq!(results, [(2, "revoked".into()), (6, "not_found".into()), (8, "not_found".into())]);
    let journal = sandbox.journal().await;
    assert!(!journal.certs.contains_key(&format!("{hz}/{hc}")), "{:?}", journal.certs);
    assert_eq!(journal.by_method.get("DELETE"), Some(&3), "{:?}", journal.by_method);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_output_whose_common_name_holds_a_line_break_is_read_whole() {
    let work = Workdir::new();
    let (hz, hc) = hidden();
    let mut csv = csv::Writer::from_path(work.path("listed.csv")).unwrap();
    csv.write_record(["zone_id", "certificate_id", "common_name", "status"]).unwrap();
    csv.write_record([zone(0).as_str(), &cert(0), &format!("device\n{hz},{hc}"), "active"]).unwrap();
    csv.write_record([zone(1).as_str(), &cert(1), "plain", "active"]).unwrap();
    csv.flush().unwrap();
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke(&work.path("listed.csv"), &work.path("out.csv"));
    cmd.arg("--skip-invalid");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deleted: Vec<String> =
        api.hits().iter().filter(|h| h.method == Method::DELETE).map(|h| h.cert().to_string()).collect();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(!deleted.contains(&hc), "{deleted:?}");
    assert_eq!(result_lines(&work), [2, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_cr_ends_a_record_and_no_row_after_it_is_lost() {
    let work = Workdir::new();
    let text = format!("zone_id,certificate_id\n{}\r{}\r\n{}\r", pair(0), pair(1), pair(2));
    let input = work.write("in.csv", text);
    let api = TestApi::start(TestResponse::revoked).await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(api.count(Method::DELETE), 3);
    assert_eq!(result_lines(&work), [2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unclosed_quote_is_refused_even_with_skip_invalid() {
    let work = Workdir::new();
    let text = format!("zone_id,certificate_id,note\n{},\"open\n{}\n", pair(0), pair(1));
    let input = work.write("in.csv", text);
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.arg("--skip-invalid");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in.csv:2:3: expected a closing quote"), "{}", stderr(&out));
    assert!(api.hits().is_empty(), "{:?}", api.hits());
}

/// `cfrevoke revoke FIFO` with a writer that sends `text` once: pass two
/// reads the copy pass one made, instead of waiting on the FIFO again.
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_input_is_read_once() {
    let work = Workdir::new();
    let text = input_csv(12);
    let certs = work.write("certs.csv", &text);
    let fifo = work.path("in.fifo");
    mkfifo(&fifo);
    let sandbox = SandboxProcess::start(&certs, &[]);
    let child = sandbox.revoke_std(&fifo, &work.path("out.csv")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.expect("start cfrevoke");
    let writer = std::thread::spawn(move || std::fs::File::create(fifo).and_then(|mut f| f.write_all(text.as_bytes())));
    let out = tokio::task::spawn_blocking(move || finish_within(child, Duration::from_secs(30))).await.unwrap();
    // Checked first: a writer that nobody opened the FIFO for would block the join.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    writer.join().unwrap().expect("write the FIFO");
    assert_eq!(work.results("out.csv").len(), 12);
    assert_eq!(sandbox.journal().await.revocations, 12);
}

/// Pass one waits for a FIFO's writer as `cat` would, and that wait ends at
/// SIGTERM with nothing sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_nobody_writes_to_ends_at_sigterm() {
    use std::os::unix::process::ExitStatusExt;
    let work = Workdir::new();
    let certs = work.write("certs.csv", input_csv(3));
    let fifo = work.path("in.fifo");
    mkfifo(&fifo);
    let sandbox = SandboxProcess::start(&certs, &[]);
    let child = sandbox.revoke_std(&fifo, &work.path("out.csv")).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.expect("start cfrevoke");
    // Where the kernel says so, wait until it is blocked opening the FIFO.
    let wchan = format!("/proc/{}/wchan", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !std::fs::read_to_string(&wchan).unwrap_or_default().contains("partner") {
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || finish_within(child, Duration::from_secs(10))).await.unwrap();
    let by_term = out.status.signal() == Some(15) || out.status.code() == Some(130);
    assert!(by_term, "{:?}: {}", out.status, stderr(&out));
    assert_eq!(sandbox.journal().await.requests, 0);
    assert!(!work.path("out.csv").exists());
}

/// A results file beside a FIFO or `/dev/stdin` has no sensible place, as
/// for `-`; the FIFO is not even opened.
#[tokio::test(flavor = "multi_thread")]
async fn an_input_that_is_not_a_regular_file_needs_output() {
    let work = Workdir::new();
    let fifo = work.path("in.fifo");
    mkfifo(&fifo);
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = cfrevoke_std();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).args(["revoke", "--yes", "--base-url", &api.base_url()]).arg(&fifo);
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start cfrevoke");
    let out = tokio::task::spawn_blocking(move || finish_within(child, Duration::from_secs(10))).await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in.fifo is not a regular file: pass --output PATH"), "{}", stderr(&out));
    assert!(api.hits().is_empty());
    assert_eq!(std::fs::read_dir(work.path("")).unwrap().count(), 1, "nothing written beside the FIFO");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_stdin_as_the_input_path_is_read_once() {
    let work = Workdir::new();
    let text = input_csv(5);
    let certs = work.write("certs.csv", &text);
    let sandbox = SandboxProcess::start(&certs, &[]);
    let mut cmd = sandbox.revoke(Path::new("/dev/stdin"), &work.path("out.csv"));
    cmd.write_stdin(text);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(work.results("out.csv").len(), 5);
    assert_eq!(sandbox.journal().await.revocations, 5);
}
