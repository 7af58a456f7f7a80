//! Hostile servers: nothing from the network can exhaust the machine, no
//! redirect is followed, and server text is printed escaped wherever it goes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// How a [`RawServer`] answers a DELETE or a list page; a GET of one
/// certificate (the credentials check) is always answered plainly.
#[derive(Clone, Copy)]
enum Flood {
    /// `Transfer-Encoding: chunked` with chunks that never end.
    Chunked,
    /// A terabyte announced in `Content-Length`, and bytes to match.
    HugeLength,
}

/// A server that stops sending after this much never dropped: proof that the
/// client kept reading, without letting a broken client eat the machine.
const FLOOD_LIMIT: usize = 64 << 20;

/// A hand-made HTTP/1.1 server on loopback, for answers no server library
/// would send. It counts the floods the client cut off.
struct RawServer {
    base_url: String,
    floods: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl RawServer {
    async fn start(flood: Flood) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let base_url = format!("http://{}/client/v4", listener.local_addr().unwrap());
        let (floods, dropped) = (Arc::<AtomicUsize>::default(), Arc::<AtomicUsize>::default());
        let counters = (Arc::clone(&floods), Arc::clone(&dropped));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (floods, dropped) = (Arc::clone(&counters.0), Arc::clone(&counters.1));
                tokio::spawn(async move {
                    if let Some(cut_off) = serve(socket, flood, &floods).await {
                        if cut_off {
                            dropped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        RawServer { base_url, floods, dropped }
    }
}

/// Serves one connection, keep-alive included. `Some(true)` once a flood was
/// cut off by the client, `Some(false)` if it ran to [`FLOOD_LIMIT`].
async fn serve(mut socket: TcpStream, flood: Flood, floods: &AtomicUsize) -> Option<bool> {
    let mut head = Vec::new();
    loop {
        head.clear();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            if socket.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        if head.starts_with("GET ") && !head.contains("?status=") {
            let body = r#"{"success":true,"errors":[],"messages":[],"result":{"status":"active"}}"#;
            let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            socket.write_all(reply.as_bytes()).await.ok()?;
            continue;
        }
        floods.fetch_add(1, Ordering::SeqCst);
        let (headers, framing) = match flood {
            Flood::Chunked => ("transfer-encoding: chunked", true),
            Flood::HugeLength => ("content-length: 1099511627776", false),
        };
        let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{headers}\r\n\r\n");
        socket.write_all(reply.as_bytes()).await.ok()?;
        // JSON whitespace: a prefix of a valid body for as long as it lasts.
        let chunk = vec![b' '; 64 << 10];
        let mut sent = 0;
        while sent < FLOOD_LIMIT {
            let written = if framing {
                socket
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await
                    .and(socket.write_all(&chunk).await)
                    .and(socket.write_all(b"\r\n").await)
            } else {
                socket.write_all(&chunk).await
            };
            if written.is_err() {
                return Some(true);
            }
            sent += chunk.len();
        }
        return Some(false);
    }
}

async fn flooded_deletes_fail_as_transient(flood: Flood) {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(1));
    let server = RawServer::start(flood).await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).arg("revoke").arg(&input).arg("--output").arg(work.path("out.csv"));
    cmd.args(["--base-url", &server.base_url, "--yes", "--max-attempts", "3", "--retry-delay", "5ms"]);
    cmd.args(["--retry-max-delay", "10ms", "--timeout", "20s"]);
    let started = Instant::now();
    let out = run(cmd).await;
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (row["outcome"].as_str(), row["attempts"].as_str(), row["http_status"].as_str()),
        ("failed", "3", "200")
    );
    assert!(row["error_message"].contains("reply body over 1 MiB: not read, connection dropped"), "{row:?}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // Each connection is closed by the client soon after the cap, which the
    // server sees as a failed write; let the last one notice.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.dropped.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.floods.load(Ordering::SeqCst), 3, "retried as transient");
    assert_eq!(server.dropped.load(Ordering::SeqCst), 3, "every flooding connection was dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_chunked_body_is_cut_off_and_retried() {
    flooded_deletes_fail_as_transient(Flood::Chunked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_content_length_is_refused_and_retried() {
    flooded_deletes_fail_as_transient(Flood::HugeLength).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_are_capped_too() {
    let work = Workdir::new();
    let server = RawServer::start(Flood::Chunked).await;
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).args(["list", "--zone", &zone(0), "--output"]).arg(work.path("out.csv"));
    cmd.args(["--base-url", &server.base_url, "--max-attempts", "2", "--retry-delay", "5ms", "--timeout", "20s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("page 1: gave up after 2 attempt(s): HTTP 200: reply body over 1 MiB"), "{err}");
    assert!(!work.path("out.csv").exists(), "nothing written");
    assert_eq!(server.floods.load(Ordering::SeqCst), 2);
}

const LOCATION: &str = "https://user:hunter2@evil.example/steal?sig=s3cr3t#frag";

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_a_final_error_and_never_followed() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(|_| TestResponse {
        status: 302,
        body: String::new(),
        headers: vec![("location", LOCATION.into())],
    })
    .await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(api.hits().len(), 1, "the credentials check, once; nothing followed or retried");
    let summary = stdout(&out);
    let shown = "HTTP 302: the API answered a redirect to https://evil.example/steal; redirects are never followed";
    assert!(summary.contains(shown) && summary.contains("Nothing was revoked"), "{summary}");
    let everything = format!("{summary}{}{}", stderr(&out), work.read("out.csv"));
    for secret in ["hunter2", "s3cr3t", "frag"] {
        assert!(!everything.contains(secret), "{secret} shown: {everything}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirected_delete_fails_its_row_after_one_attempt() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(4));
    let api = TestApi::start(|hit| match hit.method {
        Method::DELETE => {
            TestResponse { status: 307, body: "{}".into(), headers: vec![("location", "../moved".into())] }
        }
        _ => TestResponse::revoked(hit),
    })
    .await;
    let out = run(api.revoke(&input, &work.path("out.csv"))).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(api.count(Method::DELETE), 4, "one DELETE per row");
    for row in work.results("out.csv") {
        assert_eq!(
            (row["outcome"].as_str(), row["attempts"].as_str(), row["http_status"].as_str()),
            ("failed", "1", "307")
        );
        let moved = format!("http://{}/client/v4/zones/{}/moved", api.addr, row["zone_id"]);
        assert_eq!(
            row["error_message"],
            format!("the API answered a redirect to {moved}; redirects are never followed")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_text_is_escaped_in_stderr_results_and_log() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    let api = TestApi::start(|hit| match (hit.method.clone(), hit.cert().ends_with('0')) {
        (Method::DELETE, true) => TestResponse::error(400, 1002, "\x1b]0;evil\x07\r\nFAKE"),
        // An unknown status value, which serde's error quotes.
        (Method::DELETE, false) => TestResponse {
            status: 200,
            body: r#"{"success":true,"errors":[],"result":{"status":"\u001b[2J\rgone"}}"#.into(),
            headers: vec![("cf-ray", "ray\twith-tab".into())],
        },
        _ => TestResponse::revoked(hit),
    })
    .await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--max-attempts", "2", "--log-file"]).arg(work.path("log.jsonl"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = work.results("out.csv");
    let row = |i: usize| rows.iter().find(|r| r["certificate_id"] == cert(i)).unwrap();
    assert_eq!(row(0)["error_message"], r"\u{1b}]0;evil\u{7}\r\nFAKE");
    assert!(row(1)["error_message"].contains(r"unknown variant `\u{1b}[2J\rgone`"), "{:?}", row(1));
    assert_eq!(row(1)["cf_ray"], r"ray\twith-tab");
    let (err, log, results) = (stderr(&out), work.read("log.jsonl"), work.read("out.csv"));
    assert!(err.contains(r"\u{1b}]0;evil\u{7}\r\nFAKE"), "{err}");
    for (name, text) in [("stderr", &err), ("log", &log), ("results", &results)] {
        assert!(!text.contains('\x1b') && !text.contains('\x07') && !text.contains('\r'), "raw control in {name}");
        // JSON would spell a raw control this way.
        assert!(!text.contains(r"\u001b") && !text.contains(r"\u0007"), "raw control in {name}: {text}");
    }
    assert!(log.contains(r"\\u{1b}]0;evil\\u{7}\\r\\nFAKE"), "{log}");
    assert!(!err.lines().any(|l| l.starts_with("FAKE")), "a forged line: {err}");
}
