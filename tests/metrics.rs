//! `--metrics-file`: Prometheus text for node_exporter's textfile collector,
//! what cron monitoring alerts on.

use std::collections::HashMap;

use crate::support::*;

/// One sample line: its metric name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `text` as the Prometheus text exposition format, strictly enough
/// for what cfrevoke writes: every sample line `name{k="v",...} value`, every
/// metric with one HELP and one TYPE before its samples. Panics otherwise.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the last line is ended: {text:?}");
    let (mut help, mut kind) = (HashMap::new(), HashMap::new());
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (keyword, name, rest) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap_or(""));
            assert!(valid_name(name), "{line}");
            let seen = match keyword {
                "HELP" => help.insert(name.to_string(), rest.to_string()),
                "TYPE" => {
                    assert!(["counter", "gauge"].contains(&rest), "{line}");
                    kind.insert(name.to_string(), rest.to_string())
                }
                _ => panic!("unknown comment {line}"),
            };
            assert!(seen.is_none(), "a second {keyword} for {name}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"))),
            None => (series, ""),
        };
        assert!(valid_name(name), "{line}");
        assert!(help.contains_key(name) && kind.contains_key(name), "HELP and TYPE before {line}");
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("label without =: {line}"));
                assert!(valid_name(key), "{line}");
                let value = quoted.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                (key.to_string(), value.unwrap_or_else(|| panic!("unquoted label: {line}")).to_string())
            })
            .collect();
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    assert!(help.keys().all(|name| samples.iter().any(|s| s.name == *name)), "a metric without samples: {text}");
    samples
}

/// The one value of metric `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} in {samples:?}");
    found[0].value
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_run_writes_prometheus_text_with_its_counts() {
    let work = Workdir::new();
    // The sandbox holds 8 of the 10 certificates and
    // blocks once with a 429 after 3 requests.
    let certs = work.write("certs.csv", input_csv(8));
    let input = work.write("in.csv", input_csv(10));
    let flags = ["--force-429-after", "3", "--block", "50ms", "--revoke-delay", "1ms"];
    let sandbox = SandboxProcess::start(&certs, &flags);
    let metrics = work.path("cfrevoke.prom");
    let before = now();
    let mut cmd = sandbox.revoke(&input, &work.path("out.csv"));
    cmd.args(["--skip-enforcement-check", "--max-attempts", "2", "--metrics-file"]).arg(&metrics);
    let out = run(cmd).await;
    let samples = parse(&std::fs::read_to_string(&metrics).unwrap());

    let results = work.results("out.csv");
    assert_eq!(results.len(), 10, "{}", stderr(&out));
    for outcome in ["revoked", "already_revoked", "not_found", "failed", "invalid"] {
        let rows = results.iter().filter(|row| row["outcome"] == outcome).count();
        let counted = value(&samples, "cfrevoke_certificates", &[("operation", "revoke"), ("outcome", outcome)]);
        assert_eq!(counted, rows as f64, "{outcome}");
    }
    let counted: f64 = samples.iter().filter(|s| s.name == "cfrevoke_certificates").map(|s| s.value).sum();
    assert_eq!(counted, 10.0);
    assert_eq!(value(&samples, "cfrevoke_not_attempted", &[]), 0.0);
    let journal = sandbox.journal().await;
    assert!(journal.rate_limited >= 1, "{journal:?}");
    assert_eq!(value(&samples, "cfrevoke_rate_limited_total", &[]), journal.rate_limited as f64);
    // Every DELETE the sandbox saw was sent by the run, which also checks the token first.
    let requests = value(&samples, "cfrevoke_requests_total", &[]);
    assert!(journal.by_method["DELETE"] as f64 <= requests && requests <= journal.requests as f64, "{journal:?}");
    assert_eq!(value(&samples, "cfrevoke_last_run_exit_code", &[]), f64::from(out.status.code().unwrap()));
    let ran = value(&samples, "cfrevoke_last_run_timestamp_seconds", &[]);
    assert!(before <= ran && ran <= now(), "{ran}");
    let success = value(&samples, "cfrevoke_last_success_timestamp_seconds", &[]);
    assert_eq!(success, if out.status.success() { ran } else { 0.0 });
    assert!(value(&samples, "cfrevoke_last_run_duration_seconds", &[]) <= now() - before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_file_is_replaced_whole_and_a_failed_run_keeps_the_last_success() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(3));
    let dir = work.path("textfile");
    std::fs::create_dir(&dir).unwrap();
    let metrics = dir.join("cfrevoke.prom");
    let good = TestApi::start(TestResponse::revoked).await;
    let mut cmd = good.revoke(&input, &work.path("out.csv"));
    cmd.arg("--metrics-file").arg(&metrics);
    assert_eq!(run(cmd).await.status.code(), Some(0));
    let first = std::fs::read_to_string(&metrics).unwrap();
    let success = value(&parse(&first), "cfrevoke_last_success_timestamp_seconds", &[]);
    // A reader holding the old file keeps it whole: the new one is another file.
    let held = std::fs::File::open(&metrics).unwrap();

    let refused = TestApi::start(|_| TestResponse::error(401, 10000, "Authentication error")).await;
    let mut cmd = refused.revoke(&input, &work.path("again.csv"));
    cmd.arg("--metrics-file").arg(&metrics);
    assert_eq!(run(cmd).await.status.code(), Some(3));
    let second = std::fs::read_to_string(&metrics).unwrap();
    let samples = parse(&second);
    assert_eq!(second.matches("# TYPE cfrevoke_certificates ").count(), 1, "replaced, not appended: {second}");
    assert_eq!(value(&samples, "cfrevoke_last_run_exit_code", &[]), 3.0);
    assert_eq!(value(&samples, "cfrevoke_certificates", &[("outcome", "revoked")]), 0.0);
    assert_eq!(value(&samples, "cfrevoke_not_attempted", &[]), 3.0);
    assert!(value(&samples, "cfrevoke_last_run_timestamp_seconds", &[]) >= success);
    assert_eq!(value(&samples, "cfrevoke_last_success_timestamp_seconds", &[]), success, "carried over");
    assert_eq!(std::io::read_to_string(held).unwrap(), first, "the old file was not written into");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["cfrevoke.prom"], "no temporary file is left");

    // Without an earlier success, the last one is never: 0, which an age alert catches.
    let fresh = dir.join("fresh.prom");
    let mut cmd = refused.revoke(&input, &work.path("third.csv"));
    cmd.arg("--metrics-file").arg(&fresh);
    assert_eq!(run(cmd).await.status.code(), Some(3));
    let samples = parse(&std::fs::read_to_string(&fresh).unwrap());
    assert_eq!(value(&samples, "cfrevoke_last_success_timestamp_seconds", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_file_over_another_output_is_refused_before_any_request() {
    let work = Workdir::new();
    let input = work.write("in.csv", input_csv(2));
    let api = TestApi::start(TestResponse::revoked).await;
    let out = work.path("out.csv");
    for flags in [vec!["--metrics-file".into(), out.clone()], vec!["--metrics-file".into(), input.clone()]] {
        let mut cmd = api.revoke(&input, &out);
        cmd.args(&flags);
        let result = run(cmd).await;
        assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
        assert!(stderr(&result).contains("--metrics-file") && stderr(&result).contains("are the same file"));
        assert!(api.hits().is_empty(), "a request was sent");
    }
    assert!(!out.exists());
}
