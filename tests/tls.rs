//! TLS and proxies end to end, on loopback: the sandbox serves HTTPS from a
//! throwaway CA, and the real binary must trust exactly what it is told to,
//! say what failed when it does not, send nothing before the handshake, and
//! go through (or around) a CONNECT proxy as HTTPS_PROXY and NO_PROXY say.
//! No test relies on the machine's trust store: where the client must not
//! trust the server, SSL_CERT_FILE replaces that store with an unrelated CA.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cfrevoke::sandbox::tls::ThrowawayCa;
use cfrevoke::sandbox::{Sandbox, SandboxConfig};

use crate::support::proxy::{ConnectProxy, Mode};
use crate::support::{cfrevoke, input_csv, run, stderr, stdout, SandboxProcess, Workdir};

const ROWS: usize = 6;

/// A sandbox over HTTPS serving the certificates of `input`.
async fn tls_sandbox(work: &Workdir) -> (Sandbox, PathBuf) {
    let input = work.write("in.csv", input_csv(ROWS));
    let certs = cfrevoke::input::plan::Plan::build(&input).unwrap().pairs().unwrap();
    let sandbox = Sandbox::start(SandboxConfig { certs, tls: true, ..SandboxConfig::default() }).await.unwrap();
    (sandbox, input)
}

/// `revoke` against `base_url` with fast settings and a JSON log.
fn revoke(work: &Workdir, input: &std::path::Path, base_url: &str, token: &str) -> assert_cmd::Command {
    let mut cmd = cfrevoke();
    cmd.env("CLOUDFLARE_API_TOKEN", token)
        .arg("revoke")
        .arg(input)
        .arg("--output")
        .arg(work.path("out.csv"))
        .arg("--log-file")
        .arg(work.path("log.jsonl"))
        .args(["--base-url", base_url, "--yes", "--rate", "1000/s", "--retry-delay", "5ms"])
        .args(["--retry-max-delay", "20ms", "--timeout", "5s"]);
    cmd
}

/// An unrelated CA's PEM as the whole trust store, so that nothing the
/// machine trusts can make a test pass or fail.
fn unrelated_store(work: &Workdir) -> PathBuf {
    work.write("unrelated-ca.pem", ThrowawayCa::new().unwrap().pem())
}

/// The run_start event of the JSON log.
fn run_start(work: &Workdir) -> serde_json::Value {
    work.read("log.jsonl")
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|event| event["event"] == "run_start" || event["fields"]["event"] == "run_start")
        .expect("a run_start event")
}

/// What the run said, on either stream: a stop is in the summary on stdout.
fn said(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

fn field<'a>(event: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    if event[name].is_null() {
        &event["fields"][name]
    } else {
        &event[name]
    }
}

#[tokio::test]
async fn revokes_over_tls_trusting_the_sandbox_ca_with_ca_cert() {
    let work = Workdir::new();
    let (sandbox, input) = tls_sandbox(&work).await;
    assert!(sandbox.base_url().starts_with("https://127.0.0.1:"));
    let ca = work.write("ca.pem", sandbox.ca().unwrap().pem());
    let mut cmd = revoke(&work, &input, &sandbox.base_url(), sandbox.token());
    cmd.arg("--ca-cert").arg(&ca).env("SSL_CERT_FILE", unrelated_store(&work));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sandbox.journal().revocations, ROWS as u64);
    assert_eq!(field(&run_start(&work), "ca_cert"), ca.display().to_string().as_str());
}

#[tokio::test]
async fn an_untrusted_issuer_is_named_and_nothing_is_sent() {
    let work = Workdir::new();
    let (sandbox, input) = tls_sandbox(&work).await;
    let mut cmd = revoke(&work, &input, &sandbox.base_url(), sandbox.token());
    cmd.env("SSL_CERT_FILE", unrelated_store(&work)).args([
        "--max-attempts",
        "8",
        "--retry-delay",
        "2s",
        "--retry-max-delay",
        "2s",
    ]);
    let started = Instant::now();
    let out = run(cmd).await;
    let err = said(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown issuer (pass --ca-cert"), "{err}");
    // Not retried: the same certificate would be refused again, and nothing
    // says it was.
    assert!(!err.contains("gave up") && !err.contains("kept failing"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let journal = sandbox.journal();
    assert_eq!((journal.requests, journal.revocations), (0, 0), "nothing may pass an untrusted handshake");
    assert!(!err.contains(sandbox.token()));
}

/// A TLS server on loopback presenting `acceptor`'s certificate, counting
/// handshakes that completed (none should).
async fn tls_server(acceptor: tokio_rustls::TlsAcceptor) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/client/v4", listener.local_addr().unwrap());
    let done = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
    let counted = std::sync::Arc::clone(&done);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if acceptor.accept(stream).await.is_ok() {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (url, done)
}

#[tokio::test]
async fn a_certificate_for_another_name_or_expired_says_so() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    let ca = ThrowawayCa::new().unwrap();
    let ca_file = work.write("ca.pem", ca.pem());
    for (names, expired, expect) in [
        (["other.example"], false, "is not valid for the host name 127.0.0.1 (it names other.example)"),
        (["127.0.0.1"], true, "has expired"),
    ] {
        let (url, handshakes) = tls_server(ca.acceptor(&names, expired).unwrap()).await;
        let mut cmd = revoke(&work, &input, &url, "t");
        cmd.arg("--ca-cert").arg(&ca_file).env("SSL_CERT_FILE", &ca_file);
        let out = run(cmd).await;
        let err = said(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(expect), "{expect}: {err}");
        assert_eq!(handshakes.load(std::sync::atomic::Ordering::SeqCst), 0);
        let _ = std::fs::remove_file(work.path("out.csv"));
    }
}

#[tokio::test]
async fn a_ca_bundle_without_good_certificates_is_a_usage_error() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    let none = work.write("none.pem", "not a certificate\n");
    let broken = work.write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    for (flag, file, expect) in [
        (true, &none, "holds no PEM certificate"),
        (true, &broken, "cannot be a trust root"),
        (false, &broken, "cannot be a trust root"),
    ] {
        let mut cmd = revoke(&work, &input, "https://127.0.0.1:9/client/v4", "t");
        if flag {
            cmd.arg("--ca-cert").arg(file);
        } else {
            cmd.env("SSL_CERT_FILE", file);
        }
        let out = run(cmd).await;
        let err = said(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expect), "{expect}: {err}");
        assert!(!work.path("out.csv").exists(), "nothing may start");
    }
}

#[tokio::test]
async fn https_proxy_carries_the_run_and_no_proxy_bypasses_it() {
    let work = Workdir::new();
    let (sandbox, input) = tls_sandbox(&work).await;
    let ca = work.write("ca.pem", sandbox.ca().unwrap().pem());
    let proxy = ConnectProxy::start(Mode::Tunnel).await;

    // The password in the proxy's URL never reaches the log.
    let with_login = proxy.url().replace("http://", "http://me:s3cr3t-proxy-pw@");
    let mut cmd = revoke(&work, &input, &sandbox.base_url(), sandbox.token());
    cmd.arg("--ca-cert").arg(&ca).env("HTTPS_PROXY", &with_login);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(proxy.tunnels() >= 1, "the run went through the proxy");
    assert_eq!(sandbox.journal().revocations, ROWS as u64);
    assert_eq!(field(&run_start(&work), "proxy"), proxy.addr.to_string().as_str());
    assert!(!work.read("log.jsonl").contains("s3cr3t-proxy-pw") && !said(&out).contains("s3cr3t-proxy-pw"));

    let tunnels = proxy.tunnels();
    std::fs::remove_file(work.path("out.csv")).unwrap();
    let mut cmd = revoke(&work, &input, &sandbox.base_url(), sandbox.token());
    cmd.arg("--ca-cert").arg(&ca).env("ALL_PROXY", proxy.url()).env("NO_PROXY", "127.0.0.1");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(proxy.tunnels(), tunnels, "NO_PROXY bypasses the proxy");
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_is_named() {
    let work = Workdir::new();
    let (sandbox, input) = tls_sandbox(&work).await;
    let ca = work.write("ca.pem", sandbox.ca().unwrap().pem());
    for (status, expect) in [(403, "refused the tunnel"), (407, "asks for authentication (407)")] {
        let proxy = ConnectProxy::start(Mode::Refuse(status)).await;
        let mut cmd = revoke(&work, &input, &sandbox.base_url(), sandbox.token());
        cmd.arg("--ca-cert").arg(&ca).env("HTTPS_PROXY", proxy.url());
        let out = run(cmd).await;
        let err = said(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("the proxy {} {expect}", proxy.addr)), "{err}");
        assert_eq!(proxy.connects(), 1, "a refused tunnel is not asked for again");
        let _ = std::fs::remove_file(work.path("out.csv"));
    }
    assert_eq!(sandbox.journal().requests, 0);
}

#[tokio::test]
async fn the_sandbox_command_serves_https_and_writes_its_ca() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(ROWS));
    let ca = work.path("sandbox-ca.pem");
    let sandbox = SandboxProcess::start(&input, &["--tls", "--tls-ca-out", ca.to_str().unwrap()]);
    assert!(sandbox.base_url.starts_with("https://127.0.0.1:"), "{}", sandbox.base_url);
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.arg("--ca-cert").arg(&ca);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), ROWS);
    assert!(rows.iter().all(|row| row["outcome"] == "revoked"), "{rows:?}");
}
