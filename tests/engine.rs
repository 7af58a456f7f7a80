//! The engine driven in-process, its settings built by hand: no command line,
//! no clap. What another front end, or a test of the engine, would do.

use std::time::Duration;

use cfrevoke::credentials::{Credentials, Secret};
use cfrevoke::exit::ExitCode;
use cfrevoke::output::logging::Verbosity;
use cfrevoke::pacing::retry::RetryPolicy;
use cfrevoke::pipeline::enforcement::EnforcementCheck;
use cfrevoke::pipeline::operation::Operation;
use cfrevoke::pipeline::run::Checked;
use cfrevoke::pipeline::settings::{ApiSettings, RunSettings};
use cfrevoke::sandbox::{Sandbox, SandboxConfig};

use crate::support::{input_csv, Workdir};

#[test]
fn a_revoke_built_from_plain_settings_runs_against_the_in_process_sandbox() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(12));
    let settings = RunSettings {
        operation: Operation::Revoke { verify: true },
        input: input.clone(),
        selections: Vec::new(),
        skip_invalid: false,
        sandbox: false,
        output: Some(work.path("out.csv")),
        log_file: Some(work.path("log.jsonl")),
        summary_json: None,
        metrics_file: None,
        concurrency: 4,
        resume: false,
        max_same_failures: 10,
        enforcement: EnforcementCheck::Warn,
        argv: Vec::new(),
    };
    let checked = Checked::new(settings).unwrap();
    assert_eq!((checked.plan().unique, checked.plan().zones), (12, 3));
    let opened = checked.open().unwrap();
    assert!(!opened.replaced() && opened.repaired() == 0);
    let (session, ready) = opened.start(Verbosity { verbose: 0, quiet: 1 }, "").unwrap();

    let certs = cfrevoke::input::plan::Plan::build(&input).unwrap().pairs().unwrap();
    let sandbox = session.block_on(Sandbox::start(SandboxConfig { certs, ..SandboxConfig::default() })).unwrap();
    let api = ApiSettings {
        base_url: sandbox.base_url().parse().unwrap(),
        credentials: Credentials::Token(Secret::new(sandbox.token())),
        pace: "200/s".parse().unwrap(),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(10),
        ca_cert: None,
        ledger: None,
    };
    let summary = ready.execute(&session, &api).unwrap();
    let journal = sandbox.journal();
    session.block_on(sandbox.shutdown());

    assert_eq!(summary.exit_code(), ExitCode::Success, "{summary}");
    assert_eq!((summary.tally.revoked, summary.tally.failed, summary.not_attempted()), (12, 0, 0));
    assert_eq!(journal.revocations, 12);
    // One custom-rules read per zone, the credentials check, then a DELETE
    // and a read-back per certificate.
    assert_eq!((summary.requests, journal.requests, journal.rules_reads), (28, 28, 3));
    let checks = summary.enforcement.as_deref().expect("the check ran");
    assert!(checks.len() == 3 && checks.iter().all(|c| c.verdict.is_enforced()), "{checks:?}");
    let rows = work.results("out.csv");
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["outcome"] == "revoked" && r["verified_status"] == "pending_revocation"), "{rows:?}");
    assert!(rows.iter().all(|r| r["run_id"] == summary.run_id));
    // No command line: the resume hint names the operation and the input.
    let expected = format!("cfrevoke revoke {} --resume", input.display());
    assert_eq!(summary.resume_command, expected);
    let log = work.read("log.jsonl");
    assert!(log.contains("\"event\":\"run_start\"") && log.contains("\"event\":\"run_end\""), "{log}");
}
