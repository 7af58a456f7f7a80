//! The zone choice of `list` and `enforcement` by name, `--all-zones` and
//! `--account`, against the sandbox's `GET /zones`.

use std::collections::BTreeSet;

use crate::support::*;

/// A sandbox with one certificate in each of `zones` zones: zone i is
/// `zone-i.example`. Without a quota: the client paces to the budget the
/// rate-limit headers leave, which after a few hundred requests would
/// stretch the test to tens of seconds.
fn one_per_zone(work: &Workdir, zones: usize) -> SandboxProcess {
    let mut text = String::from("zone_id,certificate_id\n");
    for i in 0..zones {
        text.push_str(&format!("{},{}\n", zone(i), cert(i)));
    }
    SandboxProcess::start(&work.write("in.csv", text), &["--quota", "0"])
}

/// `GET /zones?QUERY` straight from the sandbox, as any client would.
async fn zones_answer(sandbox: &SandboxProcess, query: &str) -> serde_json::Value {
    let url = format!("{}/zones?{query}", sandbox.base_url);
    let answer = reqwest::Client::new().get(url).bearer_auth(&sandbox.token).send().await.unwrap();
    serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_name_lists_that_zones_certificates_and_an_unknown_name_sends_no_certificate_request() {
    let work = Workdir::new();
    let sandbox = SandboxProcess::start(&work.write("in.csv", input_csv(6)), &[]);
    let mut cmd = sandbox.command("list");
    cmd.args(["--zone", "Zone-1.example", "--output"]).arg(work.path("out.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("out.csv");
    let listed: BTreeSet<(&str, &str, &str)> =
        rows.iter().map(|r| (r["zone_id"].as_str(), r["zone_name"].as_str(), r["certificate_id"].as_str())).collect();
    let (one, four) = (cert(1), cert(4));
    let expected = [(zone(1), one), (zone(1), four)];
    let expected: BTreeSet<_> = expected.iter().map(|(z, c)| (z.as_str(), "zone-1.example", c.as_str())).collect();
    assert_eq!(listed, expected);
    let journal = sandbox.journal().await;
    assert_eq!(journal.zones_reads, 1, "one exact-name lookup");

    // A typo among good names: exit 2 naming it, and no certificate read at all.
    let mut cmd = sandbox.command("list");
    cmd.args(["--zone", "zone-0.example", "--zone", "zone-9.example", "--zone", &zone(2), "--output"]);
    cmd.arg(work.path("typo.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no zone named zone-9.example"), "{}", stderr(&out));
    assert!(!work.path("typo.csv").exists());
    let after = sandbox.journal().await;
    assert_eq!(after.zones_reads - journal.zones_reads, 2);
    assert_eq!(after.requests - journal.requests, 2, "only the two name lookups were sent");

    // The zones file takes names too; enforcement shares the choice.
    let file = work.write("zones.txt", "# incident\nzone-2.example\n");
    let mut cmd = sandbox.command("enforcement");
    cmd.arg("--zones-file").arg(&file).args(["--output", "-"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).lines().nth(1).unwrap().starts_with(&format!("{},enforced", zone(2))), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn all_zones_reads_every_page_and_account_narrows_it() {
    let work = Workdir::new();
    let sandbox = one_per_zone(&work, 120);
    let mut cmd = sandbox.command("list");
    cmd.args(["--all-zones", "--output"]).arg(work.path("all.csv"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = work.results("all.csv");
    let listed: Vec<(String, String)> = rows.iter().map(|r| (r["zone_id"].clone(), r["zone_name"].clone())).collect();
    let every: Vec<(String, String)> = (0..120).map(|i| (zone(i), format!("zone-{i}.example"))).collect();
    assert_eq!(listed, every, "every zone once, in the API's order");
    let journal = sandbox.journal().await;
    assert_eq!(journal.zones_reads, 4, "pages of 50, 50 and 20, then the empty page that ends it");

    let answer = zones_answer(&sandbox, "name=zone-1.example").await;
    let account = answer["result"][0]["account"]["id"].as_str().unwrap().to_string();
    let mut cmd = sandbox.command("enforcement");
    cmd.args(["--all-zones", "--account", &account, "--output", "-"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let zones: Vec<String> = stdout(&out).lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(zones, (0..120).filter(|i| i % 2 == 1).map(zone).collect::<Vec<_>>(), "only that account's zones");

    let mut cmd = sandbox.command("list");
    cmd.args(["--all-zones", "--account", &"0".repeat(32)]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("can read no zone of account {}", "0".repeat(32))), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_zone_name_is_refused_before_anything_is_sent() {
    let work = Workdir::new();
    let sandbox = one_per_zone(&work, 2);
    for hostile in [
        "zone-1.example?account.id=x",
        "../zone-1.example",
        "zone-1.example/client_certificates",
        "a%2e.example",
        "a b.example",
        "-a.example",
    ] {
        let mut cmd = sandbox.command("list");
        cmd.arg(format!("--zone={hostile}"));
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{hostile}: {}", stderr(&out));
        assert!(stderr(&out).contains("expected a zone ID (32 hex characters) or a zone name"), "{}", stderr(&out));
    }
    let file = work.write("zones.txt", "zone-0.example\nzone-1.example&name=x\n");
    let mut cmd = sandbox.command("enforcement");
    cmd.arg("--zones-file").arg(&file);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("zones.txt:2: expected a zone ID"), "{}", stderr(&out));
    let mut cmd = sandbox.command("list");
    cmd.args(["--account", &"0".repeat(32), "--zone", &zone(0)]);
    assert_eq!(run(cmd).await.status.code(), Some(2), "--account narrows only --all-zones");
    assert_eq!(sandbox.journal().await.requests, 0, "nothing reached the API");
}

/// `cfrevoke list ARGS` against a double that answers every `GET /zones` with `zones`.
async fn against_zones(zones: serde_json::Value, args: &[&str]) -> (std::process::Output, Vec<Hit>) {
    let body = serde_json::json!({"success": true, "errors": [], "messages": [], "result": zones}).to_string();
    let api = TestApi::start(move |_| TestResponse { status: 200, body: body.clone(), headers: vec![] }).await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).arg("list").args(args);
    cmd.args(["--base-url", &api.base_url(), "--retry-delay", "5ms", "--timeout", "5s"]);
    let out = run(cmd).await;
    (out, api.hits())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zones_api_that_misbehaves_never_loops_nor_picks_another_zone() {
    let page = serde_json::json!([{"id": zone(0), "name": "zone-0.example"}]);
    let (out, hits) = against_zones(page.clone(), &["--all-zones"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the list of zones, page 2: the API answered only entries of earlier pages"));
    assert_eq!(hits.len(), 2, "stopped at the repeated page");
    assert!(hits.iter().all(|h| h.path == "/client/v4/zones"), "no certificate request: {hits:?}");

    // A server that ignores the name filter: its zone is not the one asked for.
    let (out, hits) = against_zones(page, &["--zone", "shop.example"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no zone named shop.example"), "{}", stderr(&out));
    assert_eq!(hits.len(), 1);

    let hostile = serde_json::json!([{"id": "../../user/tokens", "name": "zone-0.example"}]);
    let (out, hits) = against_zones(hostile, &["--zone", "zone-0.example"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("zone zone-0.example: expected a zone ID"), "{}", stderr(&out));
    assert_eq!(hits.len(), 1, "no request for an ID that is not one");
}
