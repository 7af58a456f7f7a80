//! Bad input is refused before any request, with file, line and column.

use crate::support::*;

async fn refused(text: &str) -> (String, usize) {
    let work = Workdir::new();
    let input = work.write("certs.csv", text);
    let api = TestApi::start(TestResponse::revoked).await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!work.path("out.csv").exists(), "no results file for a refused input");
    (stderr(&out).replace(&input.display().to_string(), "certs.csv"), api.hits().len())
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_header_is_explained() {
    let (err, hits) = refused(&format!("zone,serial\n{},{}\n", zone(0), cert(0))).await;
    assert_eq!(hits, 0);
    assert!(err.contains("certs.csv:1: expected a header line naming the columns zone_id and certificate_id"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn headerless_data_gets_a_hint() {
    let (err, hits) = refused(&format!("{},{}\n", zone(0), cert(0))).await;
    assert_eq!(hits, 0);
    assert!(err.contains("looks like data"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_files_are_refused() {
    for text in ["", "\n\n", "zone_id,certificate_id\n"] {
        let (err, hits) = refused(text).await;
        assert_eq!(hits, 0);
        assert!(err.contains("certs.csv:"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_id_is_reported_with_line_and_column_and_nothing_is_sent() {
    let z = zone(0);
    let c = cert(0);
    let text = format!(
        "zone_id,certificate_id\n{z},{c}\n{z},../../{c}\n{z},{}%2F\n{z},{}?x\n\r\n{z}/..,{c}\n{z},\n{z},{c}#\n",
        &c[..29],
        &c[..30]
    );
    let (err, hits) = refused(&text).await;
    assert_eq!(hits, 0, "nothing may be sent while the input has errors");
    for expected in [
        "certs.csv:3:2: expected a certificate ID",
        "certs.csv:4:2: expected a certificate ID",
        "certs.csv:5:2: expected a certificate ID",
        "certs.csv:7:1: expected a zone ID",
        "certs.csv:8:2: expected a certificate ID of 32 hexadecimal characters or a 36-character UUID, found an empty value",
        "certs.csv:9:2: expected a certificate ID",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("6 of 7 rows are invalid; nothing was sent"), "{err}");
    assert!(err.contains("--skip-invalid"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_invalid_records_bad_rows_and_revokes_the_rest() {
    let work = Workdir::new();
    let text = format!("zone_id,certificate_id\n{},{}\nnope,{}\n{},{}\n", zone(0), cert(0), cert(1), zone(2), cert(2));
    let input = work.write("in.csv", text);
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.arg("--skip-invalid");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "an invalid row means not every row was revoked");
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 3);
    let invalid: Vec<_> = rows.iter().filter(|r| r["outcome"] == "invalid").collect();
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0]["line"], "3");
    assert!(invalid[0]["error_message"].starts_with("column 1: expected a zone ID"), "{:?}", invalid[0]);
    assert_eq!(api.hits().iter().filter(|h| h.method == axum::http::Method::DELETE).count(), 2);
}
