//! The API token file: a bounded read whatever the path holds, and a warning
//! when others can read it.

use std::time::{Duration, Instant};

use crate::support::*;

/// `cfrevoke revoke` of one row with the token in `token_file`, against `api`.
fn with_token_file(api: &TestApi, work: &Workdir, token_file: &std::path::Path) -> assert_cmd::Command {
    let input = work.write("in.csv", input_csv(1));
    let mut cmd = cfrevoke();
    cmd.arg("revoke").arg(&input).arg("--output").arg(work.path("out.csv")).arg("--api-token-file").arg(token_file);
    cmd.args(["--base-url", &api.base_url(), "--yes"]);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_token_file_is_read_a_line_at_most() {
    let api = TestApi::start(TestResponse::revoked).await;
    let work = Workdir::new();
    let sparse = work.path("sparse");
    std::fs::File::create(&sparse).unwrap().set_len(100 << 20).unwrap();
    for file in [std::path::PathBuf::from("/dev/zero"), sparse] {
        let started = Instant::now();
        let out = run(with_token_file(&api, &work, &file)).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let expected = format!("the first line of the API token file {} is longer than 4096 bytes", file.display());
        assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
    assert!(api.hits().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_file_others_can_read_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let api = TestApi::start(TestResponse::revoked).await;
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        let work = Workdir::new();
        let file = work.write("token", format!("{TOKEN}\n"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run(with_token_file(&api, &work, &file)).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let warning =
            format!("cfrevoke: warning: the API token file {} is readable by group or others", file.display());
        assert_eq!(stderr(&out).contains(&warning), warned, "{mode:o}: {}", stderr(&out));
        assert!(!stderr(&out).contains(TOKEN));
    }
}
