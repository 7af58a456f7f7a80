//! `cfrevoke list` against `cfrevoke sandbox`: paging, filters, refusals, and
//! an output that `revoke` takes as it is.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use axum::http::Method;

use crate::support::*;

type Rows = Vec<HashMap<String, String>>;

/// `cfrevoke list` over the three zones of [`input_csv`], writing `out`.
fn list(sandbox: &SandboxProcess, out: &Path) -> assert_cmd::Command {
    let mut cmd = sandbox.command("list");
    cmd.args(["--zone", &zone(0), "--zone", &zone(1), "--zone", &zone(2), "--output"]).arg(out);
    cmd
}

/// A sandbox serving `rows` certificates of [`input_csv`].
fn serving(work: &Workdir, rows: usize, flags: &[&str]) -> SandboxProcess {
    SandboxProcess::start(&work.write("in.csv", input_csv(rows)), flags)
}

/// Lists into `name` with `flags` added, expecting success.
async fn listed(work: &Workdir, sandbox: &SandboxProcess, name: &str, flags: &[&str]) -> Rows {
    let mut cmd = list(sandbox, &work.path(name));
    cmd.args(flags);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    work.results(name)
}

fn pairs(rows: &Rows) -> Vec<(String, String)> {
    rows.iter().map(|r| (r["zone_id"].clone(), r["certificate_id"].clone())).collect()
}

/// The rows of `all` that `keep` selects, in order: what a filter must give.
fn expected(all: &Rows, keep: impl Fn(&HashMap<String, String>) -> bool) -> Vec<(String, String)> {
    pairs(&all.iter().filter(|r| keep(r)).cloned().collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_lists_every_certificate_of_every_zone_exactly_once() {
    let work = Workdir::new();
    let sandbox = serving(&work, 180, &[]);
    let mut cmd = list(&sandbox, &work.path("out.csv"));
    cmd.arg("-v");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("out.csv");
    let listed = pairs(&rows);
    let unique: BTreeSet<_> = listed.iter().cloned().collect();
    let served: BTreeSet<_> = (0..180).map(|i| (zone(i % 3), cert(i))).collect();
    assert_eq!(listed.len(), 180, "no certificate twice");
    assert_eq!(unique, served);
    assert!(rows.iter().all(|r| r["status"] == "active" && r["common_name"].starts_with("device-")));
    let journal = sandbox.journal().await;
    assert_eq!(journal.requests, 9, "per zone: two pages of 50 and 10, then the empty page that ends it");
    assert_eq!(journal.revocations, 0);
    let report = stderr(&out);
    assert!(report.contains(&format!("zone {}: listed 60, matched 60", zone(1))), "{report}");
    assert!(report.contains("total: listed 180, matched 180 in 3 zones"), "{report}");
    let attempts = report.lines().filter(|l| l.contains("attempt") && l.contains(&zone(2)));
    let pages: BTreeSet<_> = attempts.filter_map(|l| l.split("page=").nth(1)?.split(' ').next()).collect();
    assert_eq!(pages, BTreeSet::from(["1", "2", "3"]), "each attempt names its page: {report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_zones_from_a_zones_file_ride_out_faults_and_a_429() {
    let work = Workdir::new();
    let served = work.path("served.csv");
    let sandbox = serving(
        &work,
        1,
        &[
            "--generate",
            "130",
            "--zones",
            "2",
            "--write-csv",
            served.to_str().unwrap(),
            "--error-rate",
            "0.2",
            "--malformed-rate",
            "0.05",
            "--force-429-after",
            "3",
            "--block",
            "200ms",
        ],
    );
    let served = work.results("served.csv");
    let zones: BTreeSet<&str> = served.iter().map(|r| r["zone_id"].as_str()).collect();
    let mut zones_file = String::from("# every zone the sandbox serves\n");
    zones.iter().for_each(|z| zones_file.push_str(&format!("{z}\n\n")));
    let zones_file = work.write("zones.txt", zones_file);
    let mut cmd = sandbox.command("list");
    cmd.arg("--zones-file").arg(&zones_file).args(["--max-attempts", "12", "-o"]).arg(work.path("out.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: BTreeSet<_> = pairs(&work.results("out.csv")).into_iter().collect();
    assert_eq!(listed, pairs(&served).into_iter().collect());
    assert_eq!(work.results("out.csv").len(), 131);
    let journal = sandbox.journal().await;
    assert!(journal.faults.error + journal.faults.malformed > 0, "{:?}", journal.faults);
    assert_eq!(journal.rate_limited, 1, "one 429, then every request waited out the block");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_goes_to_the_api_and_defaults_to_active() {
    let work = Workdir::new();
    // Several runs share this sandbox; pacing is tested elsewhere.
    let sandbox = serving(&work, 30, &["--revoke-delay", "10m", "--no-rate-limit"]);
    let some = work.write("some.csv", input_csv(5));
    let out = run(sandbox.revoke(&some, &work.path("results.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let revoked: BTreeSet<_> = (0..5).map(|i| (zone(i % 3), cert(i))).collect();

    let pending = listed(&work, &sandbox, "pending.csv", &["--status", "pending_revocation"]).await;
    assert_eq!(pairs(&pending).into_iter().collect::<BTreeSet<_>>(), revoked);
    assert!(pending.iter().all(|r| r["status"] == "pending_revocation"));
    let active = listed(&work, &sandbox, "active.csv", &[]).await;
    assert_eq!(active.len(), 25);
    assert!(pairs(&active).iter().all(|pair| !revoked.contains(pair)));
    assert!(listed(&work, &sandbox, "revoked.csv", &["--status", "revoked"]).await.is_empty());
    assert_eq!(listed(&work, &sandbox, "all.csv", &["--status", "all"]).await.len(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn common_name_ca_and_dates_narrow_the_listing() {
    let work = Workdir::new();
    let sandbox = serving(&work, 120, &["--no-rate-limit"]);
    let all = listed(&work, &sandbox, "all.csv", &[]).await;

    // Upper case and `?` against lower-case names: "device-3?*".
    let prefix = &all[0]["common_name"][..8];
    let glob = format!("{}?*", prefix.to_uppercase());
    let named = listed(&work, &sandbox, "named.csv", &["--common-name", &glob]).await;
    assert_eq!(pairs(&named), expected(&all, |r| r["common_name"].starts_with(prefix)));
    assert!(!named.is_empty() && named.len() < all.len(), "{}", named.len());

    let mut issued: Vec<&str> = all.iter().map(|r| r["issued_on"].as_str()).collect();
    issued.sort_unstable();
    let cutoff = issued[issued.len() / 2];
    let early = listed(&work, &sandbox, "early.csv", &["--issued-before", cutoff]).await;
    // Same fixed-width UTC form, so text order is time order.
    assert_eq!(pairs(&early), expected(&all, |r| r["issued_on"].as_str() < cutoff));
    let mut expires: Vec<&str> = all.iter().map(|r| &r["expires_on"][..10]).collect();
    expires.sort_unstable();
    let day = expires[expires.len() / 2];
    let expiring = listed(&work, &sandbox, "expiring.csv", &["--expires-before", day]).await;
    assert_eq!(pairs(&expiring), expected(&all, |r| r["expires_on"].as_str() < day));
    assert!(!expiring.is_empty());

    let ca = listed(&work, &sandbox, "ca.csv", &["--ca", "cloudflare managed ca*", "--common-name", "*"]).await;
    assert_eq!(ca.len(), all.len());
    assert!(listed(&work, &sandbox, "none.csv", &["--ca", "Some Other CA"]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_output_is_revoke_input_as_it_is() {
    let work = Workdir::new();
    let sandbox = serving(&work, 70, &["--no-rate-limit"]);
    let rows = listed(&work, &sandbox, "list.csv", &[]).await;
    let mut dry_run = cfrevoke();
    dry_run.arg("revoke").arg(work.path("list.csv")).arg("--dry-run");
    let out = run(dry_run).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("70 rows: 70 certificates to revoke in 3 zones, 0 duplicates skipped, 0 invalid"));

    let out = run(sandbox.revoke(&work.path("list.csv"), &work.path("results.csv"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let revoked = work.results("results.csv");
    assert_eq!(pairs(&revoked).into_iter().collect::<BTreeSet<_>>(), pairs(&rows).into_iter().collect());
    assert_eq!(sandbox.journal().await.revocations, 70);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_zone_lists_empty_on_standard_output() {
    let work = Workdir::new();
    let sandbox = serving(&work, 3, &[]);
    let mut cmd = sandbox.command("list");
    cmd.args(["--zone", &zone(99)]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "zone_id,zone_name,certificate_id,common_name,status,serial_number,issued_on,expires_on,certificate_authority,\
         fingerprint_sha256\n"
    );
    assert!(stderr(&out).contains(&format!("zone {}: listed 0, matched 0", zone(99))), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_exit_3_and_write_nothing() {
    let work = Workdir::new();
    for (flags, token, status) in
        [(&["--token-expires-after", "0"][..], None, "HTTP 401"), (&[][..], Some("not-the-token"), "HTTP 403")]
    {
        let sandbox = serving(&work, 3, flags);
        let mut cmd = list(&sandbox, &work.path("out.csv"));
        if let Some(token) = token {
            cmd.env("CLOUDFLARE_API_TOKEN", token);
        }
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains(status) && stderr(&out).contains("nothing was written"), "{}", stderr(&out));
        assert!(!work.path("out.csv").exists());
        assert_eq!(sandbox.journal().await.requests, 1, "no retry of a refusal");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_output_is_refused_before_any_request() {
    let work = Workdir::new();
    let sandbox = serving(&work, 3, &[]);
    let existing = work.write("out.csv", "precious");
    let out = run(list(&sandbox, &existing)).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(work.read("out.csv"), "precious");
    assert_eq!(sandbox.journal().await.requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_repeats_a_page_is_stopped_after_retrying_errors() {
    let work = Workdir::new();
    let page = serde_json::json!({
        "success": true, "errors": [], "messages": [],
        "result": [{"id": cert(1)}, {"id": cert(2)}]
    });
    // The first answer is a 503, every later one the same page: retried, then caught looping.
    let api = TestApi::start(move |hit| match hit.repeat {
        0 => TestResponse::error(503, 1000, "upstream unavailable"),
        _ => TestResponse { status: 200, body: page.to_string(), headers: vec![] },
    })
    .await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN)
        .args(["list", "--zone", &zone(0), "--base-url", &api.base_url(), "--retry-delay", "5ms", "-o"])
        .arg(work.path("out.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("not paging") && message.contains("nothing was written"), "{message}");
    assert_eq!(api.count(Method::GET), 3);
    assert!(!work.path("out.csv").exists());
}
