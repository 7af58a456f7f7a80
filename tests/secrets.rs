//! The token never appears in anything cfrevoke writes or prints.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_logs_results_errors_or_summary() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(20));
    let api = TestApi::start(|hit| match hit.cert().chars().last().unwrap() {
        '1' => TestResponse::error(401, 10000, "Authentication error"),
        '2' => TestResponse::error(403, 9109, "Invalid access token"),
        '3' => TestResponse { status: 500, body: "oops".into(), headers: vec![] },
        _ => TestResponse::revoked(hit),
    })
    .await;
    let mut cmd = api.revoke(&input, &work.path("out.csv"));
    cmd.args(["-vv", "--log-file"]).arg(work.path("log.jsonl"));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3));
    let log = work.read("log.jsonl");
    assert!(log.contains("\"run_start\"") && log.contains("\"run_end\"") && log.contains("\"attempt\""), "{log}");
    for (name, text) in
        [("stdout", stdout(&out)), ("stderr", stderr(&out)), ("log", log), ("results", work.read("out.csv"))]
    {
        assert!(!text.contains(TOKEN), "the token leaked into {name}");
        assert!(!text.contains("a1b2c3d4e5f6"), "part of the token leaked into {name}");
    }
}

#[test]
fn help_never_shows_credentials_from_the_environment() {
    let out = cfrevoke()
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env("CLOUDFLARE_API_KEY", TOKEN)
        .args(["revoke", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("--api-token-file"), "{help}");
    assert!(!help.contains(TOKEN), "{help}");
}

#[test]
fn a_malformed_token_is_refused_without_echoing_it() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(1));
    let out = cfrevoke()
        .env("CLOUDFLARE_API_TOKEN", "secret with\nnewline-xyzzy")
        .arg("revoke")
        .arg(&input)
        .args(["--yes", "--base-url", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("xyzzy"), "{}", stderr(&out));
}

/// A password in the base URL: refused, and never repeated, whether the
/// value comes from the flag or the environment, valid in shape or not.
#[test]
fn a_password_in_the_base_url_is_never_echoed() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(1));
    for url in ["http://u:hunter2-secret@127.0.0.1:1/x", "u:hunter2-secret@127.0.0.1", "h ttp://u:hunter2-secret@x"] {
        let by_flag = cfrevoke().arg("revoke").arg(&input).args(["--yes", "--base-url", url]).output().unwrap();
        let by_env =
            cfrevoke().env("CLOUDFLARE_BASE_URL", url).arg("revoke").arg(&input).arg("--yes").output().unwrap();
        for out in [by_flag, by_env] {
            assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
            assert!(stderr(&out).contains("--base-url"), "{url}: {}", stderr(&out));
            assert!(!stderr(&out).contains("hunter2") && !stdout(&out).contains("hunter2"), "{}", stderr(&out));
        }
    }
    for command in ["revoke", "reactivate", "list"] {
        let out = cfrevoke()
            .env("CLOUDFLARE_BASE_URL", "https://u:hunter2-secret@api.example.com/client/v4")
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(stdout(&out).contains("CLOUDFLARE_BASE_URL"), "{}", stdout(&out));
        assert!(!stdout(&out).contains("hunter2"), "{}", stdout(&out));
    }
}
