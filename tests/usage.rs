//! Usage errors are usage errors: numbers that mean nothing are refused at
//! parse time, with exit code 2 and nothing sent.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn numbers_that_mean_nothing_are_usage_errors() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(TestResponse::revoked).await;
    let zero = [
        ["--timeout", "0s"],
        ["--retry-delay", "0ms"],
        ["--retry-max-delay", "0s"],
        ["--concurrency", "0"],
        ["--max-attempts", "0"],
        ["--rate", "0/s"],
    ];
    for flag in zero {
        let mut cmd = api.revoke(&input, &work.path("out.csv"));
        cmd.args(flag);
        let out = run(cmd).await;
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(flag[0]), "{flag:?}: {err}");
    }
    for flag in [["--timeout", "0s"], ["--max-attempts", "0"]] {
        let mut cmd = cfrevoke();
        cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).args(["list", "--zone", &zone(0), "--base-url", &api.base_url()]);
        cmd.args(flag);
        assert_eq!(run(cmd).await.status.code(), Some(2), "{flag:?}");
    }
    assert!(api.hits().is_empty(), "a request was sent: {:?}", api.hits());
    let sandbox_flags = [
        ["--zones", "0"],
        ["--window", "0s"],
        ["--block", "0s"],
        ["--slow-delay", "0s"],
        ["--error-rate", "5"],
        ["--background-load", "-1"],
    ];
    for flag in sandbox_flags {
        let mut cmd = cfrevoke();
        cmd.args(["sandbox", "--listen", "127.0.0.1:0"]).args(flag).timeout(Duration::from_secs(20));
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {:?} {}", out.status, stderr(&out));
        assert!(stderr(&out).contains(flag[0]), "{flag:?}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_cap_below_the_first_delay_is_refused_before_anything_is_sent() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let api = TestApi::start(TestResponse::revoked).await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["--retry-delay", "2s", "--retry-max-delay", "1s"]);
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--retry-max-delay (1s) is shorter than --retry-delay (2s)"), "{err}");
    assert!(api.hits().is_empty(), "a request was sent: {:?}", api.hits());
}
