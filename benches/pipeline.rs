//! End to end: `cfrevoke revoke` driven in-process against the in-process
//! sandbox, with no latency, no faults and no rate limit, so what is
//! measured is cfrevoke's own cost per certificate (plus the sandbox's, which
//! shares the machine). Target: at least 15,000 certificates per second on 2
//! cores.
//!
//! `revoke_20k_tls` is the same over HTTPS, the sandbox serving a
//! certificate from its throwaway CA and the run trusting it with
//! `--ca-cert`, at the default concurrency.
//!
//! Every iteration gets a fresh sandbox seeded with certificates never
//! revoked, and a fresh results path (results are never overwritten); only
//! the run itself is timed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use cfrevoke::exit::ExitCode;
use cfrevoke::sandbox::{RateLimit, Sandbox, SandboxConfig};

const CERTS: usize = 20_000;
const ZONES: usize = 20;
/// Requests in flight. The default of 16 is sized for Cloudflare's quota and
/// latency; these show where local throughput levels off.
const CONCURRENCY: [u16; 5] = [8, 16, 32, 64, 128];

/// Starts a sandbox of fresh certificates on `runtime` (over HTTPS with
/// `tls`) and writes them as the run's input.
fn fresh_sandbox(runtime: &tokio::runtime::Runtime, seed: u64, input: &Path, tls: bool) -> Sandbox {
    let config = SandboxConfig {
        tls,
        generate: CERTS,
        zones: ZONES,
        seed,
        rate: RateLimit { quota: 0, ..RateLimit::default() },
        ..SandboxConfig::default()
    };
    let sandbox = runtime.block_on(Sandbox::start(config)).expect("sandbox starts");
    common::write_input(&sandbox, input);
    sandbox
}

fn pipeline(c: &mut Criterion) {
    // The sandbox serves from a runtime of its own, in the background;
    // `cfrevoke::run` builds another for the client, as the binary does.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let token_file = dir.path().join("token");
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10).throughput(Throughput::Elements(CERTS as u64));
    let mut runs = 0u64;
    let cases = CONCURRENCY.map(|concurrency| ("revoke_20k", concurrency, false));
    for (name, concurrency, tls) in cases.into_iter().chain([("revoke_20k_tls", 16, true)]) {
        group.bench_with_input(BenchmarkId::new(name, concurrency), &concurrency, |b, &concurrency| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    runs += 1;
                    let input = dir.path().join(format!("in-{runs}.csv"));
                    let output = dir.path().join(format!("out-{runs}.csv"));
                    let ca = dir.path().join(format!("ca-{runs}.pem"));
                    let sandbox = fresh_sandbox(&runtime, runs, &input, tls);
                    let mut flags = vec!["--rate".to_string(), "1000000/s".into(), "--concurrency".into()];
                    flags.push(concurrency.to_string());
                    if let Some(authority) = sandbox.ca() {
                        std::fs::write(&ca, authority.pem()).expect("CA written");
                        flags.extend(["--ca-cert".into(), ca.display().to_string()]);
                    }
                    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                    let cli = common::revoke(&sandbox, &input, &output, &token_file, &flags);
                    let started = Instant::now();
                    assert_eq!(cfrevoke::run(cli), ExitCode::Success);
                    elapsed += started.elapsed();
                    assert_eq!(sandbox.journal().rate_limited, 0);
                    runtime.block_on(sandbox.shutdown());
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
