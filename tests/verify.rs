//! `cfrevoke verify`: the end state read back from the sandbox, whose
//! certificates move from pending_revocation to revoked after
//! `--revoke-delay`, and whose journal counts the GETs per certificate.

use std::collections::HashMap;

use crate::support::*;

const ROWS: usize = 6;

/// A sandbox serving `ROWS` certificates with `revoke_delay`, and a revoke
/// run's results for all of them at `out.csv`.
async fn revoked(work: &Workdir, revoke_delay: &str) -> SandboxProcess {
    let input = work.write("in.csv", input_csv(ROWS));
    let sandbox = SandboxProcess::start(&input, &["--no-rate-limit", "--revoke-delay", revoke_delay]);
    let out = run(sandbox.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    sandbox
}

/// `cfrevoke verify out.csv` against `sandbox`, with `flags`.
fn verify(sandbox: &SandboxProcess, work: &Workdir, flags: &[&str]) -> assert_cmd::Command {
    let mut cmd = sandbox.command("verify");
    cmd.arg(work.path("out.csv")).args(flags);
    cmd
}

fn by_cert(rows: Vec<HashMap<String, String>>) -> HashMap<String, HashMap<String, String>> {
    rows.into_iter().map(|r| (r["certificate_id"].clone(), r)).collect()
}

/// GETs the sandbox received per certificate ID.
async fn gets(sandbox: &SandboxProcess) -> HashMap<String, u64> {
    let journal = sandbox.journal().await;
    journal.certs.iter().map(|(key, entry)| (key.rsplit('/').next().unwrap().to_string(), entry.activity.get)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn until_revoked_polls_until_every_certificate_is_revoked() {
    let work = Workdir::new();
    let sandbox = revoked(&work, "1s").await;
    // One request in flight at a time: a certificate waiting for its next
    // read must not hold the others back, or they would be read only once
    // the first is revoked, when they are too.
    let flags = ["--until", "revoked", "--poll-interval", "200ms", "--deadline", "20s", "--concurrency", "1"];
    let out = run(verify(&sandbox, &work, &flags)).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let rows = work.results("out.verified.csv");
    assert_eq!(rows.len(), ROWS, "one row per pair: {rows:?}");
    for row in &rows {
        assert_eq!((row["outcome"].as_str(), row["cert_status"].as_str()), ("revoked", "revoked"), "{row:?}");
        assert!(!row["finished_at"].is_empty());
    }
    assert!(stdout(&out).contains(&format!("{:<18} {ROWS:>8}", "revoked")), "{}", stdout(&out));
    // Each certificate was still pending when first read, so it was read
    // again; at one read per 200 ms within the second's delay, not often.
    let gets = gets(&sandbox).await;
    for i in 0..ROWS {
        let n = gets[&cert(i)];
        assert!((2..=9).contains(&n), "certificate {i} read {n} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_before_the_revocation_settles_lists_the_stragglers() {
    let work = Workdir::new();
    let sandbox = revoked(&work, "60s").await;
    let flags = ["--until", "revoked", "--poll-interval", "100ms", "--deadline", "400ms"];
    let revoking = gets(&sandbox).await;
    let out = run(verify(&sandbox, &work, &flags)).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let rows = work.results("out.verified.csv");
    assert_eq!(rows.len(), ROWS);
    assert!(rows.iter().all(|r| r["outcome"] == "pending_revocation"), "{rows:?}");
    let err = stderr(&out);
    for i in 0..ROWS {
        let listed = err.lines().any(|l| l.contains(&cert(i)) && l.contains("outcome=\"pending_revocation\""));
        assert!(listed, "{err}");
    }
    assert!(stdout(&out).contains(&format!("{:<18} {ROWS:>8}", "pending_revocation")), "{}", stdout(&out));
    // The input's first pair also gets the credentials check's GET.
    let before = gets(&sandbox).await;
    let reads = |i| before[&cert(i)] - revoking.get(&cert(i)).copied().unwrap_or(0);
    assert!((0..ROWS).all(|i| (2..=6).contains(&reads(i))), "one read per 100 ms for 400 ms at most: {before:?}");

    // A straggler is not final for `--until revoked`: a resume reads it
    // again, and the summary prints the command.
    let hint = stdout(&out).lines().find_map(|l| l.strip_prefix("to retry what is left: ")).map(str::to_string);
    let hint = hint.unwrap_or_else(|| panic!("no resume command: {}", stdout(&out)));
    assert!(hint.contains("--resume"), "{hint}");
    let mut resume = verify(&sandbox, &work, &flags);
    resume.arg("--resume");
    let resumed = run(resume).await;
    assert_eq!(resumed.status.code(), Some(1), "{}", stderr(&resumed));
    let after = gets(&sandbox).await;
    assert!((0..ROWS).all(|i| after[&cert(i)] > before[&cert(i)]), "{before:?} {after:?}");
    let rows = work.results("out.verified.csv");
    assert_eq!(rows.len(), 2 * ROWS, "each pair's later row follows its earlier one");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_reactivated_after_the_revoke_is_called_out() {
    let work = Workdir::new();
    let sandbox = revoked(&work, "60s").await;
    let mut undo = sandbox.command("reactivate");
    undo.arg(work.path("out.csv")).args(["--yes", "--certificate", &cert(2), "--output"]).arg(work.path("undo.csv"));
    let undone = run(undo).await;
    assert_eq!(undone.status.code(), Some(0), "{}", stderr(&undone));

    let out = run(verify(&sandbox, &work, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let rows = by_cert(work.results("out.verified.csv"));
    assert_eq!(rows.len(), ROWS);
    assert_eq!(rows[&cert(2)]["outcome"], "active", "{:?}", rows[&cert(2)]);
    assert!(rows[&cert(2)]["error_message"].contains("reactivated since the revoke"));
    assert!(stderr(&out).contains(&format!("ACTIVE AGAIN: certificate {}", cert(2))), "{}", stderr(&out));
    let others = rows.iter().filter(|(id, _)| **id != cert(2));
    assert!(others.clone().all(|(_, r)| r["outcome"] == "pending_revocation"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_verify_reads_only_the_pairs_left_unfinished() {
    let work = Workdir::new();
    let sandbox = revoked(&work, "10ms").await;
    let flags = ["--until", "revoked", "--poll-interval", "50ms", "--deadline", "10s"];
    let first = run(verify(&sandbox, &work, &flags)).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    // As a run killed mid-way leaves it: the rows written so far. The two
    // left out include the input's first pair, which the credentials check
    // reads, so any GET of a finished pair below is a resume's mistake.
    let input_first = work.results("out.csv")[0]["certificate_id"].clone();
    let other = work.results("out.verified.csv").into_iter().map(|r| r["certificate_id"].clone());
    let dropped = [input_first.clone(), other.into_iter().find(|id| *id != input_first).unwrap()];
    let verified = std::fs::read_to_string(work.path("out.verified.csv")).unwrap();
    let kept: String = verified
        .lines()
        .filter(|line| !dropped.iter().any(|id| line.contains(id.as_str())))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(kept.lines().count(), ROWS - 1, "the header and four rows");
    work.write("out.verified.csv", kept);
    let before = gets(&sandbox).await;

    let mut resume = verify(&sandbox, &work, &flags);
    resume.arg("--resume");
    let resumed = run(resume).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(stdout(&resumed).contains(&format!("{:<18} {:>8}", "done earlier", ROWS - 2)), "{}", stdout(&resumed));
    let after = gets(&sandbox).await;
    for i in 0..ROWS {
        let (id, sent) = (cert(i), after[&cert(i)] - before[&cert(i)]);
        if dropped.contains(&id) {
            assert!(sent >= 1, "certificate {i} was left unfinished, so it is read again");
        } else {
            assert_eq!(sent, 0, "certificate {i} was finished: no second GET");
        }
    }
    let rows = work.results("out.verified.csv");
    assert_eq!(rows.len(), ROWS, "one row per pair over both runs: {rows:?}");
    assert!(rows.iter().all(|r| r["outcome"] == "revoked"), "{rows:?}");
}

#[test]
fn polling_flags_without_until_are_a_usage_error() {
    let work = Workdir::new();
    let results = work.write("out.csv", "zone_id,certificate_id,outcome\n");
    for flags in [["--deadline", "1m"], ["--poll-interval", "5s"]] {
        let out = cfrevoke().arg("verify").arg(&results).args(flags).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--until <STATUS>"), "{}", stderr(&out));
    }
    let out = cfrevoke().arg("verify").arg(&results).args(["--until", "revoked", "--deadline", "0s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a zero deadline means nothing: {}", stderr(&out));
}
