//! Shared test helpers: a scratch directory, deterministic IDs, the binary,
//! and a closure-built API double on loopback that records every hit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, Uri};
use axum::Router;

pub mod proxy;

/// A temporary directory for one test's files.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The results file as records (header excluded), keyed by column name.
    pub fn results(&self, name: &str) -> Vec<std::collections::HashMap<String, String>> {
        let mut reader = csv::Reader::from_path(self.path(name)).expect("results file");
        let headers = reader.headers().expect("header").clone();
        reader
            .records()
            .map(|r| headers.iter().map(str::to_string).zip(r.expect("record").iter().map(str::to_string)).collect())
            .collect()
    }
}

pub fn zone(i: usize) -> String {
    format!("{:032x}", 0xaaaa_0000_u128 + i as u128)
}

pub fn cert(i: usize) -> String {
    format!("{:032x}", 0xcccc_0000_0000_u128 + i as u128)
}

/// A CSV of `rows` pairs spread over three zones.
pub fn input_csv(rows: usize) -> String {
    let mut text = String::from("zone_id,certificate_id\n");
    for i in 0..rows {
        text.push_str(&format!("{},{}\n", zone(i % 3), cert(i)));
    }
    text
}

/// The cfrevoke binary with no Cloudflare settings inherited from the host.
pub fn cfrevoke() -> assert_cmd::Command {
    assert_cmd::Command::from_std(cfrevoke_std())
}

/// The same, as a plain process to spawn, signal and kill.
pub fn cfrevoke_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cfrevoke"));
    // Nor the host's proxies and CA bundle: a test sets what it means to test.
    let network = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY"];
    let trust = ["no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"];
    for var in ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CLOUDFLARE_BASE_URL", "RUST_LOG"]
        .into_iter()
        .chain(network)
        .chain(trust)
    {
        cmd.env_remove(var);
    }
    // Never the real ~/.local/state: the ledger of a test's runs stays in the
    // target directory, or in the test's own (see `state_in`).
    cmd.env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("state"));
    cmd
}

/// Keeps the ledger of `cmd`'s runs in `dir`, a test's directory, so that
/// runs of one test share it and tests do not.
pub fn state_in(cmd: &mut std::process::Command, dir: &Path) {
    if dir.is_absolute() {
        cmd.env("XDG_STATE_HOME", dir);
    }
}

/// Runs a command off the async runtime so the test server keeps serving.
pub async fn run(mut cmd: assert_cmd::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run cfrevoke")).await.expect("join")
}

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: Method,
    pub path: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub at: Instant,
    /// How many earlier hits had the same method and path.
    pub repeat: usize,
}

impl Hit {
    /// The certificate ID at the end of the path.
    pub fn cert(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// What the double answers.
pub struct TestResponse {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl TestResponse {
    pub fn revoked(hit: &Hit) -> TestResponse {
        let body = serde_json::json!({
            "success": true, "errors": [], "messages": [],
            "result": {"id": hit.cert(), "status": "pending_revocation"}
        });
        TestResponse { status: 200, body: body.to_string(), headers: vec![("cf-ray", format!("ray-{}", hit.cert()))] }
    }

    pub fn error(status: u16, code: i64, message: &str) -> TestResponse {
        let body = serde_json::json!({
            "success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null
        });
        TestResponse { status, body: body.to_string(), headers: vec![] }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> TestResponse {
        self.headers.push((name, value.to_string()));
        self
    }
}

type Responder = dyn Fn(&Hit) -> TestResponse + Send + Sync;

/// The API double: every request is recorded, then answered by the closure.
pub struct TestApi {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl TestApi {
    pub async fn start(responder: impl Fn(&Hit) -> TestResponse + Send + Sync + 'static) -> TestApi {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let responder: Arc<Responder> = Arc::new(responder);
        let recorded = Arc::clone(&hits);
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
            let (hits, responder) = (Arc::clone(&recorded), Arc::clone(&responder));
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                let hit = {
                    let mut hits = hits.lock().unwrap();
                    let path = uri.path().to_string();
                    let repeat = hits.iter().filter(|h| h.method == method && h.path == path).count();
                    let hit = Hit {
                        method,
                        path,
                        authorization: header("authorization"),
                        user_agent: header("user-agent"),
                        at: Instant::now(),
                        repeat,
                    };
                    hits.push(hit.clone());
                    hit
                };
                let reply = responder(&hit);
                let mut response = Response::builder().status(reply.status).header("content-type", "application/json");
                for (name, value) in reply.headers {
                    response = response.header(name, value);
                }
                response.body(Body::from(reply.body)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        TestApi { addr, hits }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn count(&self, method: Method) -> usize {
        self.hits().iter().filter(|h| h.method == method).count()
    }

    /// `cfrevoke revoke INPUT` against this double, fast settings, a token.
    pub fn revoke(&self, input: &Path, output: &Path) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.revoke_std(input, output))
    }

    /// The same, as a plain process to spawn with its own stdio or limits.
    pub fn revoke_std(&self, input: &Path, output: &Path) -> std::process::Command {
        let mut cmd = revoke_command(&self.base_url(), input, output);
        cmd.args(["--rate", "1000/s", "--retry-delay", "5ms", "--retry-max-delay", "20ms", "--timeout", "5s"])
            // The double serves no custom rules; tests/enforcement.rs covers the check.
            .arg("--skip-enforcement-check");
        cmd
    }
}

/// A token that must never show up anywhere cfrevoke writes.
pub const TOKEN: &str = "cfr-test-TOKEN-a1b2c3d4e5f6-do-not-leak";

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `cfrevoke sandbox` running as a child process on an ephemeral port,
/// killed when dropped.
pub struct SandboxProcess {
    child: std::process::Child,
    pub base_url: String,
    pub token: String,
    /// The test's directory, where the certificates are: runs keep their ledger there.
    state: PathBuf,
}

impl SandboxProcess {
    /// Starts the sandbox serving the certificates of `certs`, with `flags`.
    pub fn start(certs: &Path, flags: &[&str]) -> SandboxProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cfrevoke"))
            .args(["sandbox", "--listen", "127.0.0.1:0", "--certs"])
            .arg(certs)
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start cfrevoke sandbox");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut field = |name: &str| {
            let line = lines.next().expect("sandbox prints its settings").unwrap();
            line.strip_prefix(&format!("{name}=")).unwrap_or_else(|| panic!("expected {name}=, got {line}")).to_string()
        };
        let (base_url, token) = (field("base_url"), field("token"));
        // Keep reading, so the sandbox never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let state = certs.parent().unwrap_or(Path::new("")).to_path_buf();
        SandboxProcess { child, base_url, token, state }
    }

    /// The sandbox's journal, read over HTTP as any tool could.
    pub async fn journal(&self) -> cfrevoke::sandbox::Journal {
        let stats = self.base_url.replace("/client/v4", "/__sandbox/stats");
        let body = reqwest::get(stats).await.expect("journal").bytes().await.unwrap();
        serde_json::from_slice(&body).expect("journal JSON")
    }

    /// `cfrevoke SUBCOMMAND` against this sandbox with its token and fast retries.
    pub fn command(&self, subcommand: &str) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command_std(subcommand))
    }

    /// The same, as a plain process to spawn, signal and kill.
    pub fn command_std(&self, subcommand: &str) -> std::process::Command {
        let mut cmd = cfrevoke_std();
        cmd.env("CLOUDFLARE_API_TOKEN", &self.token).env("CLOUDFLARE_BASE_URL", &self.base_url).arg(subcommand);
        state_in(&mut cmd, &self.state);
        cmd.args(["--rate", "2000/s", "--retry-delay", "5ms", "--retry-max-delay", "50ms", "--timeout", "2s"]);
        cmd
    }

    /// `cfrevoke revoke INPUT` against this sandbox, without asking.
    pub fn revoke(&self, input: &Path, output: &Path) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.revoke_std(input, output))
    }

    /// The same, as a plain process.
    pub fn revoke_std(&self, input: &Path, output: &Path) -> std::process::Command {
        let mut cmd = self.command_std("revoke");
        cmd.arg(input).arg("--output").arg(output).arg("--yes");
        cmd
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 30 s) until the results file holds at least `rows` rows.
pub fn wait_for_rows(path: &Path, rows: usize) {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count().saturating_sub(1)) < rows {
        assert!(Instant::now() < deadline, "{} never reached {rows} rows", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Revokes `input` against `sandbox` at 50 requests/s, sends `signal` once
/// `rows` rows are recorded, and waits for the process to end.
pub async fn interrupt_mid_run(
    sandbox: &SandboxProcess,
    input: &Path,
    out: &Path,
    signal_name: &'static str,
    rows: usize,
) -> std::process::Output {
    use std::process::Stdio;
    let mut cmd = sandbox.revoke_std(input, out);
    let child = cmd.args(["--rate", "50/s"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let waiting = out.to_path_buf();
    tokio::task::spawn_blocking(move || wait_for_rows(&waiting, rows)).await.unwrap();
    signal(&child, signal_name);
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait for cfrevoke")).await.unwrap()
}

/// Sends a signal by name (`TERM`, `INT`, `KILL`) to a child process.
/// `cfrevoke revoke INPUT --output OUTPUT` against the API at `base`, with
/// a token and `--yes`; callers add the pace and retry settings they need.
pub fn revoke_command(base: &str, input: &Path, output: &Path) -> std::process::Command {
    let mut cmd = cfrevoke_std();
    cmd.env("CLOUDFLARE_API_TOKEN", TOKEN).arg("revoke").arg(input).arg("--output").arg(output);
    cmd.args(["--base-url", base, "--yes"]);
    state_in(&mut cmd, input.parent().unwrap_or(Path::new("")));
    cmd
}

/// A FIFO at `path`, for the inputs and outputs that must not hang on one.
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

pub fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(status.expect("kill").success());
}

/// Lets the files `cmd` writes grow to `bytes` (RLIMIT_FSIZE): writes past
/// that fail as on a full disk. SIGXFSZ is left at its default, which kills
/// the process, so cfrevoke itself has to ignore it.
#[cfg(target_os = "linux")]
pub fn limit_file_size(cmd: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}
