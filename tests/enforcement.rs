//! Does revoking change anything: `cfrevoke enforcement`, and the check
//! before every revoke, against the sandbox's custom rules.

use std::collections::BTreeSet;

use crate::support::*;

/// A CSV of one certificate in each of `zones` zones.
fn one_per_zone(zones: usize) -> String {
    let mut text = String::from("zone_id,certificate_id\n");
    for i in 0..zones {
        text.push_str(&format!("{},{}\n", zone(i), cert(i)));
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn every_verdict_is_told_apart_and_written_as_csv() {
    let work = Workdir::new();
    let input = work.write("in.csv", one_per_zone(24));
    let sandbox = SandboxProcess::start(&input, &["--enforcing-zones", "0.4"]);
    let mut cmd = sandbox.command("enforcement");
    cmd.arg(&input).arg("--output").arg(work.path("v.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "not every zone enforces: {}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("not seen in the zone's custom rules") && !table.contains("not enforced anywhere"));
    let rows = work.results("v.csv");
    assert_eq!(rows.len(), 24);
    let reasons: BTreeSet<(&str, &str)> = rows.iter().map(|r| (r["verdict"].as_str(), r["reason"].as_str())).collect();
    let expected = [
        ("enforced", "an enabled rule blocks when cf.tls_client_auth.cert_revoked is true"),
        ("not_enforced", "no custom rules"),
        (
            "not_enforced",
            "the mTLS rule checks only cf.tls_client_auth.cert_verified, which stays true after revocation",
        ),
        ("not_enforced", "the rule using cf.tls_client_auth.cert_revoked is disabled"),
        ("not_enforced", "the rule using cf.tls_client_auth.cert_revoked has action log, which does not block"),
    ];
    assert_eq!(reasons, expected.into_iter().collect(), "{rows:?}");
    let enforced = rows.iter().find(|r| r["verdict"] == "enforced").unwrap();
    assert!(enforced["rule_id"].len() == 32 && enforced["rule_action"] == "block", "{enforced:?}");
    assert!(table.contains(&format!("rule {} \"{}\"", enforced["rule_id"], enforced["rule_description"])), "{table}");
    assert_eq!(sandbox.journal().await.rules_reads, 24, "one read per zone");

    // A zone that enforces, by --zone: exit 0.
    let mut cmd = sandbox.command("enforcement");
    cmd.args(["--zone", &enforced["zone_id"]]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("1 of 1 zones block revoked certificates"), "{}", stdout(&out));

    // The CSV is never written over.
    let mut cmd = sandbox.command("enforcement");
    cmd.arg(&input).arg("--output").arg(work.path("v.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(sandbox.journal().await.rules_reads, 25, "refused before any read");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_may_not_read_rules_gets_unknown_naming_the_permission() {
    let work = Workdir::new();
    let input = work.write("in.csv", one_per_zone(2));
    let sandbox = SandboxProcess::start(&input, &["--forbid-rules-read"]);
    let mut cmd = sandbox.command("enforcement");
    cmd.arg(&input).args(["--output", "-"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(&row[1], "unknown");
        assert!(row[2].contains("HTTP 403") && row[2].contains("\"Zone WAF Read\""), "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn require_enforcement_refuses_with_nothing_revoked() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(9));
    let sandbox = SandboxProcess::start(&input, &["--enforcing-zones", "none"]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.arg("--require-enforcement");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--require-enforcement: 3 of 3 zones do not visibly enforce revocation"), "{err}");
    let journal = sandbox.journal().await;
    assert_eq!((journal.rules_reads, journal.revocations), (3, 0));
    assert_eq!(journal.by_method.get("DELETE"), None, "{journal:?}");

    // The same zones enforcing: it goes ahead.
    let sandbox = SandboxProcess::start(&input, &[]);
    let mut cmd = sandbox.revoke(&input, &work.path("out2.csv"));
    cmd.arg("--require-enforcement");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sandbox.journal().await.revocations, 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_refused_while_reading_rules_stops_the_run_before_any_delete() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(6));
    let sandbox = SandboxProcess::start(&input, &["--token-expires-after", "1"]);
    let out = run(sandbox.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("credentials refused") && stderr(&out).contains("nothing was revoked"));
    let journal = sandbox.journal().await;
    assert_eq!((journal.rules_reads, journal.by_method.get("DELETE")), (2, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoke_warns_of_each_zone_that_does_not_enforce_and_records_the_verdicts() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(9));
    let sandbox = SandboxProcess::start(&input, &["--enforcing-zones", "none"]);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.arg("--summary-json").arg(work.path("summary.json")).arg("--log-file").arg(work.path("log.jsonl"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "the warning does not stop the run: {}", stderr(&out));
    let err = stderr(&out);
    for i in 0..3 {
        let warning = format!("zone {}: revocation not seen in the zone's custom rules", zone(i));
        assert!(err.contains(&warning), "{err}");
    }
    assert!(err.contains("(not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked) would enforce it"));
    assert!(
        stdout(&out).contains("WARNING: revocation not seen in the custom rules of 3 of 3 zones"),
        "{}",
        stdout(&out)
    );
    assert_eq!(sandbox.journal().await.revocations, 9);

    let summary: serde_json::Value = serde_json::from_str(&work.read("summary.json")).unwrap();
    let checks = summary["enforcement"].as_array().expect("verdicts in the summary");
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c["verdict"] == "not_enforced"), "{checks:?}");
    let log = work.read("log.jsonl");
    let start: serde_json::Value =
        serde_json::from_str(log.lines().find(|l| l.contains("\"run_start\"")).expect("run_start")).unwrap();
    let recorded: serde_json::Value =
        serde_json::from_str(start["enforcement"].as_str().expect("enforcement")).unwrap();
    assert_eq!(&recorded, &summary["enforcement"]);
    assert_eq!(start["enforcement_check"], "warn");
}

#[tokio::test(flavor = "multi_thread")]
async fn skipping_the_check_reads_no_rules_and_a_dry_run_reads_them() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(6));
    let sandbox = SandboxProcess::start(&input, &["--enforcing-zones", "none"]);
    let mut cmd = sandbox.command("revoke");
    cmd.arg(&input).arg("--dry-run");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("dry run: nothing was revoked; the custom rules of 3 zones were read"));
    assert!(stderr(&out).contains("revocation not seen in the zone's custom rules"), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert_eq!((journal.rules_reads, journal.by_method.get("DELETE")), (3, None));

    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.arg("--skip-enforcement-check");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("custom rules"), "{}", stderr(&out));
    let journal = sandbox.journal().await;
    assert_eq!((journal.rules_reads, journal.revocations), (3, 6), "no read beyond the dry run's");
}
