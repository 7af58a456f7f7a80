//! `cfrevoke report`: the incident record, in HTML and Markdown, from the
//! files real sandbox runs wrote.

use std::path::Path;
use std::process::Stdio;

use sha2::{Digest, Sha256};

use crate::support::*;

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn report(results: &Path, extra: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = cfrevoke().arg("report").arg(results).args(extra).timeout(std::time::Duration::from_secs(30)).output();
    out.expect("run cfrevoke report")
}

/// Writes the report of `results` (with `log`) as `name`, and reads it.
fn made(work: &Workdir, results: &Path, log: &Path, name: &str) -> String {
    let out = report(results, &["--log".as_ref(), log.as_os_str(), "-o".as_ref(), work.path(name).as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("report: {}", work.path(name).display())), "{}", stdout(&out));
    work.read(name)
}

/// The run ids a log's run_start lines name.
fn run_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("\"event\":\"run_start\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["run_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_faulty_run_with_a_429_pause_reads_the_same_in_html_and_markdown() {
    let work = Workdir::new();
    // 9 of the 12 certificates exist; answers come back garbled now and
    // then, and the API blocks once after 4 requests.
    let certs = work.write("certs.csv", input_csv(9));
    let input = work.write("in.csv", input_csv(12));
    let flags = ["--force-429-after", "4", "--block", "50ms", "--malformed-rate", "0.3"];
    let sandbox = SandboxProcess::start(&certs, &flags);
    let (results, log) = (work.path("out.csv"), work.path("run.jsonl"));
    let mut cmd = sandbox.revoke(&input, &results);
    cmd.arg("--log-file").arg(&log);
    let ran = run(cmd).await;
    assert_eq!(ran.status.code(), Some(1), "{}", stderr(&ran));

    let html = made(&work, &results, &log, "report.html");
    let md = made(&work, &results, &log, "report.md");
    assert_eq!(html.matches("<svg").count(), 1);
    assert!(!html.contains("http://") && !html.contains("https://"), "no reference leaves the page");
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("<img") && !html.contains("src="));
    assert!(html.contains("<meta name=\"viewport\"") && html.contains("@media print"));

    let rows = work.results("out.csv");
    for outcome in ["revoked", "already_revoked", "not_found", "failed", "invalid"] {
        let n = rows.iter().filter(|r| r["outcome"] == outcome).count();
        let label = outcome.replace('_', " ");
        let figure = format!("<span class=\"value\">{n}</span><span class=\"label\">{label}</span>");
        assert!(html.contains(&figure), "{figure} in the HTML");
        assert!(md.contains(&format!("| {label} | {n}")), "{label} {n} in the Markdown");
    }
    let unwell: Vec<_> =
        rows.iter().filter(|r| !["revoked", "already_revoked"].contains(&r["outcome"].as_str())).collect();
    assert!(unwell.len() >= 3, "the 3 unknown certificates at least: {rows:?}");
    for row in unwell {
        assert!(!row["cf_ray"].is_empty(), "{row:?}");
        for (format, text) in [("HTML", &html), ("Markdown", &md)] {
            assert!(text.contains(&row["cf_ray"]), "{} in the {format}", row["cf_ray"]);
            assert!(text.contains(&row["certificate_id"]), "{} in the {format}", row["certificate_id"]);
        }
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
    let start: serde_json::Value =
        serde_json::from_str(log_text.lines().find(|l| l.contains("\"event\":\"run_start\"")).unwrap()).unwrap();
    let evidence = [
        sha256(&results),
        sha256(&log),
        start["run_id"].as_str().unwrap().to_string(),
        start["input_sha256"].as_str().unwrap().to_string(),
        start["operator"].as_str().unwrap().to_string(),
        start["version"].as_str().unwrap().to_string(),
    ];
    for item in &evidence {
        assert!(html.contains(item.as_str()) && md.contains(item.as_str()), "{item} in both");
    }
    // The pause the 429 caused (and any wait for a spent budget) is on the
    // chart and in the Markdown's timeline.
    assert!(log_text.contains("every worker pauses"), "the log records the 429's pause");
    let pauses = log_text.lines().filter(|l| l.contains("\"wait_ms\":")).count();
    assert_eq!(html.matches("<g class=\"pause\">").count(), pauses);
    assert_eq!(md.matches("every worker paused for").count(), pauses);
    for figure in ["answers of 429", "retries", "of the quota used"] {
        assert!(md.contains(&format!("| {figure} | ")), "{figure}");
        assert!(html.contains(&format!("<span class=\"label\">{figure}</span>")), "{figure}");
    }
    let retries = log_text.lines().filter(|l| l.contains("\"verdict\":\"retry\"")).count();
    assert!(retries >= 1, "the 429 is retried at least");
    assert!(md.contains(&format!("| retries | {retries} |")), "{retries} retries");
    assert!(!md.contains("<svg"));
}

/// Revokes 60 certificates with a log, stops the run with `signal_name`
/// after 10 rows, resumes it to the end, and returns the reports (HTML,
/// Markdown) with the two run ids and the rows the first run wrote.
async fn stopped_and_resumed(signal_name: &str) -> (String, String, Vec<String>, usize) {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(60));
    let sandbox = SandboxProcess::start(&input, &["--no-rate-limit"]);
    let (results, log) = (work.path("out.csv"), work.path("run.jsonl"));
    let mut cmd = sandbox.revoke_std(&input, &results);
    cmd.args(["--rate", "50/s", "--log-file"]).arg(&log);
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let waiting = results.clone();
    tokio::task::spawn_blocking(move || wait_for_rows(&waiting, 10)).await.unwrap();
    signal(&child, signal_name);
    let stopped = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(!stopped.status.success());
    let mut resume = sandbox.revoke(&input, &results);
    resume.args(["--resume", "--log-file"]).arg(&log);
    assert_eq!(run(resume).await.status.code(), Some(0));

    let ids = run_ids(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(ids.len(), 2);
    let html = made(&work, &results, &log, "report.html");
    let md = made(&work, &results, &log, "report.md");
    let first = work.results("out.csv").iter().filter(|r| r["run_id"] == ids[0]).count();
    assert!((10..60).contains(&first), "{first}");
    (html, md, ids, first)
}

/// The Markdown's row of the Runs table for run `n`.
fn runs_row<'a>(md: &'a str, n: usize, id: &str) -> &'a str {
    md.lines().find(|l| l.starts_with(&format!("| {n} | {id} |"))).unwrap_or_else(|| panic!("run {n} in {md}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_and_resumed_run_is_one_incident_with_two_runs() {
    let (html, md, ids, first) = stopped_and_resumed("TERM").await;
    assert_eq!(html.matches("<g class=\"band band").count(), 2, "one band per run");
    for text in [&html, &md] {
        assert!(ids.iter().all(|id| text.contains(id.as_str())));
    }
    assert!(html.contains("<span class=\"value\">60</span><span class=\"label\">revoked</span>"));
    // Each run with its own rows, the first one interrupted (exit 130).
    let (one, two) = (runs_row(&md, 1, &ids[0]), runs_row(&md, 2, &ids[1]));
    assert!(
        one.contains("| first run |") && one.contains(&format!("| {first} |")) && one.ends_with("| 130 |"),
        "{one}"
    );
    assert!(
        two.contains("| resume |") && two.contains(&format!("| {} |", 60 - first)) && two.ends_with("| 0 |"),
        "{two}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_ends_at_its_last_log_line() {
    let (html, md, ids, first) = stopped_and_resumed("KILL").await;
    assert_eq!(html.matches("<g class=\"band band").count(), 2, "one band per run");
    let one = runs_row(&md, 1, &ids[0]);
    assert!(one.contains("(no run\\_end: stopped without one)") && one.ends_with("| not logged |"), "{one}");
    assert!(one.contains(&format!("| {first} |")), "{one}");
    assert!(runs_row(&md, 2, &ids[1]).contains("| resume |"));
}

/// A results file written by hand, with text an attacker could plant in an
/// error message or a cf-ray.
fn hostile(work: &Workdir) -> std::path::PathBuf {
    let header = "line,zone_id,certificate_id,outcome,http_status,cert_status,attempts,error_code,error_message,\
                  cf_ray,finished_at,duration_ms,verified_status,run_id";
    let rows = [
        format!("2,{},{},revoked,200,pending_revocation,1,,,ray-ok,2026-12-01T10:00:00.000Z,5,,r1", zone(0), cert(0)),
        format!(
            "3,{},{},failed,500,,8,,\"<script>alert(1)</script> | `x`\nsecond line\",<img src=x>,\
             2026-12-01T10:00:01.000Z,5,,r1",
            zone(1),
            cert(1)
        ),
    ];
    work.write("hostile.csv", format!("{header}\n{}\n{}\n", rows[0], rows[1]))
}

#[test]
fn text_from_the_files_is_escaped_for_html_and_markdown() {
    let work = Workdir::new();
    let results = hostile(&work);
    for name in ["r.html", "r.md"] {
        let out = report(&results, &["-o".as_ref(), work.path(name).as_os_str()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let html = work.read("r.html");
    assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && html.contains("&lt;img src=x&gt;"));
    let md = work.read("r.md");
    assert!(!md.contains("<script>") && md.contains("\\<script\\>"));
    // The failed row is one table row, with as many cells as the header.
    let header = md.lines().find(|l| l.starts_with("| line | zone |")).unwrap();
    let row = md.lines().find(|l| l.contains(&cert(1)) && l.starts_with("| 3 |")).unwrap();
    let cells = |line: &str| line.replace("\\|", "").matches('|').count();
    assert_eq!(cells(row), cells(header), "{row}");
    assert!(row.contains("\\`x\\`") && row.contains("second line"));
}

#[test]
fn the_default_report_is_html_beside_the_results() {
    let work = Workdir::new();
    let results = hostile(&work);
    let out = report(&results, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = work.read("hostile.report.html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains(&sha256(&results)));
    assert!(html.contains("confirmed revoked (no --verified file)") && html.contains("of the quota used (no --log)"));
}

#[test]
fn a_verify_file_gives_the_confirmed_count() {
    let work = Workdir::new();
    let results = hostile(&work);
    let header = work.read("hostile.csv").lines().next().unwrap().to_string();
    let verified = work.write(
        "verified.csv",
        format!(
            "{header}\n2,{},{},revoked,200,revoked,1,,,ray-v,2026-12-01T11:00:00.000Z,5,revoked,v1\n",
            zone(0),
            cert(0)
        ),
    );
    let out =
        report(&results, &["--verified".as_ref(), verified.as_os_str(), "-o".as_ref(), work.path("r.md").as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(work.read("r.md").contains("| confirmed revoked, of 1 read back | 1 |"), "{}", work.read("r.md"));
}

#[test]
fn bad_input_is_named_by_file_line_and_column_with_exit_2() {
    let work = Workdir::new();
    let not_results = work.write("in.csv", input_csv(3));
    let out = report(&not_results, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{}:1:1: not a cfrevoke results file", not_results.display())),
        "{}",
        stderr(&out)
    );

    let results = hostile(&work);
    let text = work.read("hostile.csv").replace(",revoked,200,", ",revokd,200,");
    std::fs::write(&results, text).unwrap();
    let out = report(&results, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{}:2:4: expected an outcome", results.display())), "{}", stderr(&out));

    let results = hostile(&work);
    let log = work.write("run.jsonl", "{\"run_id\":\"r1\"}\n{broken\n{\"run_id\":\"r1\"}\n");
    let out = report(&results, &["--log".as_ref(), log.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{}:2:", log.display())), "{}", stderr(&out));
}

#[test]
fn the_files_read_are_never_written_and_a_fifo_does_not_hang() {
    let work = Workdir::new();
    let results = hostile(&work);
    let before = work.read("hostile.csv");
    let log = work.write("run.jsonl", "");
    // Links named as reports, to the files the report reads.
    let (to_results, to_log) = (work.path("results.html"), work.path("log.md"));
    std::os::unix::fs::symlink(&results, &to_results).unwrap();
    std::os::unix::fs::symlink(&log, &to_log).unwrap();
    for (extra, why) in [
        (vec!["-o".as_ref(), to_results.as_os_str()], "are the same file"),
        (vec!["--log".as_ref(), log.as_os_str(), "-o".as_ref(), to_log.as_os_str()], "are the same file"),
        (vec!["-o".as_ref(), results.as_os_str()], "the format follows the extension"),
        (vec!["-o".as_ref(), work.path("r.txt").as_os_str()], "the format follows the extension"),
    ] {
        let out = report(&results, &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    assert_eq!(work.read("hostile.csv"), before);
    assert_eq!(work.read("run.jsonl"), "");

    let fifo = work.path("fifo.csv");
    mkfifo(&fifo);
    let out = report(&fifo, &["-o".as_ref(), work.path("r.html").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a regular file"), "{}", stderr(&out));
    let out = report(&results, &["--log".as_ref(), fifo.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
}
