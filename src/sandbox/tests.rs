//! Over real HTTP: what only a socket shows (headers on the wire, resets,
//! timeouts). The API's rules themselves are tested in `origin`.

use std::time::Duration;

use reqwest::{Client, Method, Response};
use serde_json::Value;

use super::*;

async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(SandboxConfig { generate: 3, ..config }).await.unwrap()
}

fn client() -> Client {
    Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap()
}

async fn send(sandbox: &Sandbox, method: Method, path: &str) -> reqwest::Result<Response> {
    client().request(method, format!("{}{path}", sandbox.base_url())).bearer_auth(sandbox.token()).send().await
}

fn cert_path(sandbox: &Sandbox, i: usize) -> String {
    let (zone, cert) = sandbox.certificates()[i];
    format!("/zones/{zone}/client_certificates/{cert}")
}

/// reqwest is built without its `json` feature.
async fn json<T: serde::de::DeserializeOwned>(response: Response) -> T {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn code_of(response: Response) -> (u16, i64) {
    let status = response.status().as_u16();
    let body: Value = json(response).await;
    (status, body["errors"][0]["code"].as_i64().unwrap())
}

#[tokio::test]
async fn answers_in_cloudflare_envelopes_with_its_headers() {
    let sandbox = start(SandboxConfig::default()).await;
    let (zone, _) = sandbox.certificates()[0];
    let response = send(&sandbox, Method::GET, &format!("/zones/{zone}/client_certificates")).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["ratelimit"], "\"default\";r=1199;t=300");
    assert_eq!(headers["ratelimit-policy"], "\"default\";q=1200;w=300");
    assert!(headers.get("retry-after").is_none());
    let ray = headers["cf-ray"].to_str().unwrap();
    assert!(ray.len() == 20 && ray.ends_with("-SBX") && ray[..16].chars().all(|c| c.is_ascii_hexdigit()), "{ray}");
    let body: Value = json(response).await;
    assert_eq!(body["success"], true);
    assert_eq!(body["errors"], serde_json::json!([]));
    assert_eq!(body["messages"], serde_json::json!([]));
    assert_eq!(body["result"].as_array().unwrap().len(), 3);
    assert_eq!(body["result"][0]["status"], "active");
    assert_eq!(body["result_info"]["total_count"], 3);

    let response = send(&sandbox, Method::DELETE, &cert_path(&sandbox, 0)).await.unwrap();
    let body: Value = json(response).await;
    assert_eq!(body["result"]["status"], "pending_revocation");
    let response = client()
        .patch(format!("{}{}", sandbox.base_url(), cert_path(&sandbox, 0)))
        .bearer_auth(sandbox.token())
        .body(r#"{"reactivate": true}"#)
        .send()
        .await
        .unwrap();
    let body: Value = json(response).await;
    assert_eq!(body["result"]["status"], "pending_reactivation");

    let stats: Journal = json(client().get(sandbox.stats_url()).send().await.unwrap()).await;
    assert_eq!(stats, sandbox.journal());
    assert_eq!((stats.requests, stats.revocations, stats.max_in_window), (3, 1, Some(3)));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refuses_missing_and_wrong_credentials() {
    let sandbox = start(SandboxConfig::default()).await;
    let url = format!("{}{}", sandbox.base_url(), cert_path(&sandbox, 0));
    assert_eq!(code_of(client().get(&url).send().await.unwrap()).await, (401, 10000));
    assert_eq!(code_of(client().get(&url).bearer_auth("nope").send().await.unwrap()).await, (403, 9109));
    let (email, key) = sandbox.email_and_key();
    let legacy = client().get(&url).header("X-Auth-Email", email).header("X-Auth-Key", key).send().await.unwrap();
    assert_eq!(legacy.status(), 200);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_limited_answers_carry_retry_after() {
    let rate = RateLimit {
        quota: 1,
        window: Duration::from_secs(2),
        block: Duration::from_millis(1500),
        ..RateLimit::default()
    };
    let sandbox = start(SandboxConfig { rate, ..SandboxConfig::default() }).await;
    let path = cert_path(&sandbox, 0);
    assert_eq!(send(&sandbox, Method::GET, &path).await.unwrap().status(), 200);
    let limited = send(&sandbox, Method::GET, &path).await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "2");
    assert_eq!(limited.headers()["ratelimit"], "\"default\";r=0;t=2");
    assert_eq!(code_of(limited).await, (429, 971));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_reset_is_a_transport_error_and_the_journal_still_answers() {
    let faults = Faults { reset_rate: 1.0, ..Faults::default() };
    let sandbox = start(SandboxConfig { faults, ..SandboxConfig::default() }).await;
    let error = send(&sandbox, Method::GET, &cert_path(&sandbox, 0)).await.unwrap_err();
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    let stats: Journal = json(client().get(sandbox.stats_url()).send().await.unwrap()).await;
    assert_eq!((stats.requests, stats.faults.reset), (1, 1));
    assert!(stats.by_status.is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_fault_after_the_change_hides_a_done_revocation() {
    let faults = Faults { error_rate: 1.0, after_change: 1.0, ..Faults::default() };
    let sandbox = start(SandboxConfig { faults, ..SandboxConfig::default() }).await;
    let response = send(&sandbox, Method::DELETE, &cert_path(&sandbox, 0)).await.unwrap();
    assert!(response.status().is_server_error());
    assert!(response.headers().contains_key("cf-ray"));
    let journal = sandbox.journal();
    assert_eq!((journal.revocations, journal.faults.error, journal.faults.after_change), (1, 1, 1));
    assert_eq!(journal.cert_statuses["pending_revocation"], 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_outlasts_the_client_but_the_work_is_done() {
    let faults = Faults { slow_rate: 1.0, slow_delay: Duration::from_secs(30), ..Faults::default() };
    let sandbox = start(SandboxConfig { faults, ..SandboxConfig::default() }).await;
    let url = format!("{}{}", sandbox.base_url(), cert_path(&sandbox, 0));
    let impatient = Client::builder().no_proxy().timeout(Duration::from_millis(200)).build().unwrap();
    let error = impatient.delete(url).bearer_auth(sandbox.token()).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let journal = sandbox.journal();
    assert_eq!((journal.revocations, journal.faults.slow), (1, 1));
    sandbox.shutdown().await;
}
