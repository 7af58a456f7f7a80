//! Pacing fidelity: with the sandbox enforcing a quota of N requests per
//! window, `cfrevoke revoke` at its default `--rate auto` should use nearly
//! all of it (or of what another consumer of the quota leaves) and never be
//! answered 429. This is a figure, not a timing, so it is printed rather
//! than fed to criterion.
//!
//! Without latency a 429 fails the bench. With jittery latency (which the
//! sandbox adds before its limiter counts a request, as the network does
//! before Cloudflare's edge) requests sent evenly can arrive bunched, so the
//! figure shows what a fixed pace costs there; reading the `Ratelimit`
//! header is what can bring it to zero.
//!
//! `cargo bench --bench pacing` takes about 75 seconds.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cfrevoke::exit::ExitCode;
use cfrevoke::sandbox::{Faults, RateLimit, Sandbox, SandboxConfig};

struct Case {
    quota: u32,
    window: Duration,
    /// How many windows' worth of certificates to revoke.
    windows: u32,
    /// Mean of the sandbox's exponentially distributed latency (capped at 4x).
    latency: Duration,
    /// Requests per second another consumer spends from the same quota.
    background: f64,
}

// Windows of whole seconds, as the Ratelimit headers express them; a few
// seconds long so the headers' one-second granularity is not most of one.
const CASES: [Case; 4] = [
    Case { quota: 250, window: Duration::from_secs(5), windows: 4, latency: Duration::ZERO, background: 0.0 },
    Case { quota: 100, window: Duration::from_secs(2), windows: 6, latency: Duration::ZERO, background: 0.0 },
    Case {
        quota: 250,
        window: Duration::from_secs(5),
        windows: 4,
        latency: Duration::from_millis(25),
        background: 0.0,
    },
    // Half the quota spent by another tool on the same token.
    Case { quota: 250, window: Duration::from_secs(5), windows: 1, latency: Duration::ZERO, background: 25.0 },
];

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    for (case, Case { quota, window, windows, latency, background }) in CASES.into_iter().enumerate() {
        let certs = (quota * windows) as usize;
        let config = SandboxConfig {
            generate: certs,
            zones: 3,
            // A short block, so that a regression fails fast instead of
            // waiting out Cloudflare's five minutes.
            rate: RateLimit {
                quota,
                window,
                block: window,
                background_load: (background > 0.0).then_some(background),
                ..RateLimit::default()
            },
            faults: Faults { latency_mean: latency, latency_max: Some(latency * 4), ..Faults::default() },
            ..SandboxConfig::default()
        };
        let sandbox = runtime.block_on(Sandbox::start(config)).expect("sandbox starts");
        let input = dir.path().join(format!("in-{case}.csv"));
        let output = dir.path().join(format!("out-{case}.csv"));
        common::write_input(&sandbox, &input);
        let cli = common::revoke(&sandbox, &input, &output, &dir.path().join("token"), &["--rate", "auto"]);
        let started = Instant::now();
        let code = cfrevoke::run(cli);
        let elapsed = started.elapsed();
        let journal = sandbox.journal();
        runtime.block_on(sandbox.shutdown());

        let (rows, span) = first_attempts(&output);
        // n first attempts paced one interval apart span n - 1 intervals.
        let per_window = (rows - 1) as f64 * window.as_secs_f64() / span.as_secs_f64();
        let busiest = journal.max_in_window.unwrap_or(0);
        // What the other consumer leaves of each window.
        let left = f64::from(quota) - background * window.as_secs_f64();
        println!(
            "pacing at {quota}/{}, latency {}, another consumer at {background}/s: {} requests in {:.2} s; \
             first attempts at {per_window:.1} per window ({:.1}% of the {left} left); \
             busiest window {busiest}/{quota} (all consumers); 429s: {}",
            humantime::format_duration(window),
            humantime::format_duration(latency),
            journal.requests,
            elapsed.as_secs_f64(),
            100.0 * per_window / left,
            journal.rate_limited,
        );
        assert_eq!(code, ExitCode::Success);
        assert_eq!(journal.rate_limited, 0, "the quota was exceeded");
    }
}

/// How many rows the results file has, and the time from the first row's
/// first attempt to the last row's (`finished_at` less `duration_ms`).
fn first_attempts(results: &Path) -> (u64, Duration) {
    let mut reader = csv::Reader::from_path(results).expect("results readable");
    let headers = reader.headers().expect("results header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect("results column");
    let (finished, took) = (column("finished_at"), column("duration_ms"));
    let starts: Vec<SystemTime> = reader
        .records()
        .map(|row| {
            let row = row.expect("results row");
            let finished = humantime::parse_rfc3339(&row[finished]).expect("RFC 3339 time");
            finished - Duration::from_millis(row[took].parse().expect("milliseconds"))
        })
        .collect();
    let (first, last) = (starts.iter().min().expect("rows"), starts.iter().max().expect("rows"));
    (starts.len() as u64, last.duration_since(*first).expect("ordered"))
}
