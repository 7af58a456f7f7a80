//! `cfrevoke list`'s selectors by what a responder holds (serials,
//! fingerprints, SKIs, a leaked PEM, a file of identifiers from logs) against
//! `cfrevoke sandbox`, and the identifiers that matched nothing.

use std::collections::HashMap;
use std::path::Path;

use crate::support::*;

type Rows = Vec<HashMap<String, String>>;

/// A sandbox serving 30 certificates over the three zones of [`input_csv`].
fn serving(work: &Workdir) -> SandboxProcess {
    SandboxProcess::start(&work.write("in.csv", input_csv(30)), &[])
}

/// `cfrevoke list` over those zones into `out`, with `flags`.
async fn list(sandbox: &SandboxProcess, out: &Path, flags: &[&str]) -> std::process::Output {
    let mut cmd = sandbox.command("list");
    cmd.args(["--zone", &zone(0), "--zone", &zone(1), "--zone", &zone(2), "--output"]).arg(out).args(flags);
    run(cmd).await
}

async fn everything(work: &Workdir, sandbox: &SandboxProcess) -> Rows {
    let out = list(sandbox, &work.path("all.csv"), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    work.results("all.csv")
}

fn ids(rows: &Rows) -> Vec<&str> {
    rows.iter().map(|r| r["certificate_id"].as_str()).collect()
}

/// `aabbcc` as `00:AA:BB:CC`, as a log or a browser shows a serial.
fn spelled_differently(hex: &str) -> String {
    let upper = format!("00{}", hex.to_uppercase());
    upper.as_bytes().chunks(2).map(|pair| String::from_utf8_lossy(pair).into_owned()).collect::<Vec<_>>().join(":")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_serial_with_leading_zeros_and_colons_and_a_fingerprint_are_found() {
    let work = Workdir::new();
    let sandbox = serving(&work);
    let all = everything(&work, &sandbox).await;
    let serial = spelled_differently(&all[4]["serial_number"]);
    let fingerprint = all[7]["fingerprint_sha256"].to_uppercase();
    let out = list(&sandbox, &work.path("found.csv"), &["--serial", &serial, "--fingerprint", &fingerprint]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let found = work.results("found.csv");
    let mut expected = vec![all[4]["certificate_id"].as_str(), all[7]["certificate_id"].as_str()];
    let mut got = ids(&found);
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_match_file_takes_prefixes_comments_and_bare_values() {
    let work = Workdir::new();
    let sandbox = serving(&work);
    let all = everything(&work, &sandbox).await;
    let file = format!(
        "# exported from the SIEM\nserial:{}\n\n{}   # bare 64 digits: a fingerprint\nSHA256:{}\n{}\n",
        all[1]["serial_number"], all[2]["fingerprint_sha256"], all[3]["fingerprint_sha256"], all[5]["serial_number"],
    );
    let path = work.write("ids.txt", file);
    let out = list(&sandbox, &work.path("found.csv"), &["--match-file", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut got = ids(&work.results("found.csv")).into_iter().map(String::from).collect::<Vec<_>>();
    got.sort();
    let mut expected: Vec<String> = [1, 2, 3, 5].iter().map(|&i| all[i]["certificate_id"].clone()).collect();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_match_file_line_is_a_usage_error_with_file_and_line() {
    let work = Workdir::new();
    let sandbox = serving(&work);
    let path = work.write("ids.txt", "# ok\nserial:0a\nsha256:abcd\n");
    let out = list(&sandbox, &work.path("found.csv"), &["--match-file", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{}:3", path.display())), "{}", stderr(&out));
    assert_eq!(sandbox.journal().await.requests, 0, "nothing sent");
    assert!(!work.path("found.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_identifiers_are_named_and_exit_1_after_the_csv_is_written() {
    let work = Workdir::new();
    let sandbox = serving(&work);
    let all = everything(&work, &sandbox).await;
    let missing_fp = "ee".repeat(32);
    let out = list(
        &sandbox,
        &work.path("found.csv"),
        &["--serial", &all[0]["serial_number"], "--serial", "DEAD:BEEF", "--fingerprint", &missing_fp, "--ski", "0102"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(ids(&work.results("found.csv")), [all[0]["certificate_id"].as_str()], "the CSV is written all the same");
    let report = stderr(&out);
    assert!(report.contains("not found: serial:deadbeef (from --serial)"), "{report}");
    assert!(report.contains(&format!("not found: sha256:{missing_fp} (from --fingerprint)")), "{report}");
    assert!(report.contains("not found: ski:0102 (from --ski)"), "{report}");
    assert!(!report.contains(&format!("not found: serial:{}", all[0]["serial_number"])), "{report}");
    assert!(report.contains("matched 1 in 3 zones, 3 identifier(s) matched no certificate"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn organization_globs_narrow_with_the_identifiers() {
    let work = Workdir::new();
    let sandbox = serving(&work);
    let all = everything(&work, &sandbox).await;
    let org = |glob: &str, ou: &str, name: &str| {
        let (work, sandbox) = (&work, &sandbox);
        let (glob, ou, name) = (glob.to_string(), ou.to_string(), name.to_string());
        async move {
            let out = list(sandbox, &work.path(&name), &["--organization", &glob, "--organizational-unit", &ou]).await;
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            work.results(&name).len()
        }
    };
    assert_eq!(org("sandbox devices*", "MTLS ?lients", "a.csv").await, all.len());
    assert_eq!(org("Other Inc.", "*", "b.csv").await, 0);
    assert_eq!(org("*", "other unit", "c.csv").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pem_written_by_the_sandbox_is_found_by_its_fingerprint() {
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;

    let work = Workdir::new();
    let pems = work.path("pems");
    let sandbox = SandboxProcess::start(&work.write("in.csv", input_csv(30)), &["--write-pem", pems.to_str().unwrap()]);
    let all = everything(&work, &sandbox).await;
    let wanted = &all[9];
    let leaked = pems.join(format!("{}_{}.pem", wanted["zone_id"], wanted["certificate_id"]));
    let pem = std::fs::read(&leaked).expect("one PEM per certificate");
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).expect("a real certificate");
    let digest: String = sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(wanted["fingerprint_sha256"], digest, "the listed fingerprint is the SHA-256 of the PEM's DER");
    assert_eq!(std::fs::read_dir(&pems).unwrap().count(), 30);

    // A bundle: the leaked certificate and one Cloudflare never issued.
    let foreign = cfrevoke::sandbox::tls::ThrowawayCa::new().unwrap().pem().as_bytes().to_vec();
    let bundle = work.write("bundle.pem", [pem, foreign].concat());
    let out = list(&sandbox, &work.path("found.csv"), &["--pem", bundle.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(ids(&work.results("found.csv")), [wanted["certificate_id"].as_str()]);
    assert!(stderr(&out).contains(&format!("(from {} (certificate 2))", bundle.display())), "{}", stderr(&out));
    assert!(!stderr(&out).contains("(certificate 1)"), "{}", stderr(&out));

    let empty = work.write("empty.pem", "no certificate here\n");
    let out = list(&sandbox, &work.path("none.csv"), &["--pem", empty.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no certificate in the file"), "{}", stderr(&out));
}
