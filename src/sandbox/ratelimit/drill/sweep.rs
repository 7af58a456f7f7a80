//! The drill's hostile cases, each run many times over: one run says little
//! of a case where another tool's requests, or the phase between its bursts
//! and this run's, decide whether a request lands on a full window. A seed
//! a pacer passes may be one where it nearly failed, so these tests bound
//! how many of a case's runs are refused, not whether one run is. The
//! ignored `sweep_table` prints every case for the README's table:
//! `cargo test --release --lib sweep_table -- --ignored --nocapture`.

use std::time::Duration;

use crate::pacing::Pace;

use super::tests::{announcing_20s, down, heavy_tail, ideal, poisson, speeding_up, steady_random_clumps, up, ROWS};
use super::{alone, as_is, drill_pair, loopback, scaled, Burst, Drilled, RateLimit, Server, WindowKind};

/// How a case's run is set up: its limiter, rows and latency, the header's
/// rounding of the reset, and whether the policy announces a 20 s window
/// whatever the limiter's is.
struct Setup {
    config: RateLimit,
    rows: usize,
    latency: fn(u64) -> Duration,
    rounding: fn(Duration) -> Duration,
    announces_20s: bool,
    /// A second run of the same credential, started this long after.
    pair: Option<Duration>,
}

impl Setup {
    fn alone(config: RateLimit) -> Setup {
        Setup { config, rows: ROWS, latency: loopback, rounding: as_is, announces_20s: false, pair: None }
    }

    fn heavy(self) -> Setup {
        Setup { latency: heavy_tail, ..self }
    }

    fn whole(self) -> Setup {
        Setup { config: RateLimit { fractional_reset: false, ..self.config }, ..self }
    }
}

/// One case: a name for the table, what it is, and its `n`th run.
struct Case {
    name: &'static str,
    what: &'static str,
    setup: fn(u64) -> Setup,
}

/// Bursts of `requests` every `every` (from `from`), for 200 s.
fn every(requests: u32, every: Duration, from: Duration) -> Vec<Burst> {
    (1..=(200.0 / every.as_secs_f64()) as u32).map(|k| Burst { requests, offset: from + every * k }).collect()
}

/// A tool that sends `bursts` over a steady `load` (none at 0) on a
/// sliding window with fractional resets, where the header's rounding
/// leaves no spare slot to hide a burst in.
fn cron(load: f64, bursts: Vec<Burst>) -> Setup {
    Setup::alone(RateLimit {
        background_load: Some(load).filter(|&l| l > 0.0),
        background_bursts: bursts,
        fractional_reset: true,
        ..scaled(WindowKind::Sliding)
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const CASES: &[Case] = &[
    Case {
        name: "alone-sliding",
        what: "alone, sliding window",
        setup: |n| Setup { rows: ROWS + 13 * n as usize, ..Setup::alone(scaled(WindowKind::Sliding)) },
    },
    Case {
        name: "alone-fixed",
        what: "alone, fixed window, resets rounded up",
        setup: |n| Setup {
            rows: ROWS + 13 * n as usize,
            rounding: up,
            ..Setup::alone(RateLimit { fractional_reset: true, ..scaled(WindowKind::Fixed) })
        },
    },
    Case {
        name: "alone-token-bucket",
        what: "alone, token bucket",
        setup: |n| Setup { rows: ROWS + 13 * n as usize, ..Setup::alone(scaled(WindowKind::TokenBucket)) },
    },
    Case {
        name: "latency",
        what: "alone, heavy tail, fractional resets",
        setup: |n| Setup {
            rows: ROWS + 13 * n as usize,
            ..Setup::alone(RateLimit { fractional_reset: true, ..scaled(WindowKind::Sliding) }).heavy()
        },
    },
    Case {
        name: "lie-100-80",
        what: "announces 100, enforces 80",
        setup: |n| Setup {
            rows: ROWS + 13 * n as usize,
            ..Setup::alone(RateLimit { enforced_quota: Some(80), ..scaled(WindowKind::Sliding) })
        },
    },
    Case {
        name: "consumer-30",
        what: "a steady consumer at 30 %",
        setup: |n| Setup {
            rows: ROWS + 7 * n as usize,
            ..Setup::alone(RateLimit { background_load: Some(1.5), ..scaled(WindowKind::Sliding) })
        },
    },
    Case {
        name: "consumer-30-fractional",
        what: "the same, fractional resets",
        setup: |n| Setup {
            rows: ROWS + 7 * n as usize,
            ..Setup::alone(RateLimit {
                background_load: Some(1.5),
                fractional_reset: true,
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "consumer-30-heavy",
        what: "a steady consumer at 30 %, heavy tail",
        setup: |n| Setup {
            rows: ROWS + 7 * n as usize,
            ..Setup::alone(RateLimit { background_load: Some(1.5), ..scaled(WindowKind::Sliding) }).heavy()
        },
    },
    Case {
        name: "random-30",
        what: "a random (Poisson) consumer at 30 %",
        setup: |n| Setup::alone(poisson(1.5, n, WindowKind::Sliding)).whole(),
    },
    Case {
        name: "random-30-fractional",
        what: "the same, fractional resets",
        setup: |n| Setup::alone(poisson(1.5, n, WindowKind::Sliding)),
    },
    Case {
        name: "random-30-heavy",
        what: "random at 30 %, heavy tail",
        setup: |n| Setup::alone(poisson(1.5, n, WindowKind::Sliding)).whole().heavy(),
    },
    Case {
        name: "random-30-fractional-heavy",
        what: "the same, fractional resets",
        setup: |n| Setup::alone(poisson(1.5, n, WindowKind::Sliding)).heavy(),
    },
    Case {
        name: "random-10-fractional",
        what: "random at 10 %, fractional resets",
        setup: |n| Setup::alone(poisson(0.5, n, WindowKind::Sliding)),
    },
    Case {
        name: "random-60",
        what: "random at 60 %",
        setup: |n| Setup::alone(poisson(3.0, n, WindowKind::Sliding)).whole(),
    },
    Case {
        name: "random-60-fractional-heavy",
        what: "random at 60 %, fractional resets, heavy tail",
        setup: |n| Setup::alone(poisson(3.0, n, WindowKind::Sliding)).heavy(),
    },
    Case {
        name: "random-30-fixed",
        what: "random at 30 %, fixed window rounded up, heavy tail",
        setup: |n| Setup { rows: 300, rounding: up, ..Setup::alone(poisson(1.5, n, WindowKind::Fixed)).heavy() },
    },
    Case {
        name: "random-50-fixed",
        what: "random at 50 %, fixed window, heavy tail",
        setup: |n| Setup { rows: 300, ..Setup::alone(poisson(2.5, n, WindowKind::Fixed)).heavy() },
    },
    Case {
        name: "random-50-token-bucket",
        what: "random at 50 %, token bucket",
        setup: |n| Setup { rows: 300, ..Setup::alone(poisson(2.5, n, WindowKind::TokenBucket)) },
    },
    Case {
        name: "steady-random-clumps",
        what: "steady, then random, then 3 at once every 1.5 s",
        setup: |n| Setup {
            rows: 2 * ROWS,
            ..Setup::alone(RateLimit {
                background_bursts: steady_random_clumps(n),
                fractional_reset: true,
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "window-25s",
        what: "a 25 s window announced as 20 s, a steady consumer",
        setup: |n| Setup {
            announces_20s: true,
            ..Setup::alone(RateLimit {
                background_load: Some(1.0 + 0.1 * n as f64),
                window: Duration::from_secs(25),
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "window-25s-fractional",
        what: "the same, fractional resets",
        setup: |n| Setup {
            announces_20s: true,
            ..Setup::alone(RateLimit {
                background_load: Some(1.0 + 0.1 * n as f64),
                window: Duration::from_secs(25),
                fractional_reset: true,
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "bursts-10-every-21s",
        what: "30 % steady, and 10 at once every 21 s",
        setup: |n| {
            Setup::alone(RateLimit {
                background_load: Some(1.5),
                background_bursts: every(10, Duration::from_secs(21), Duration::from_secs(n)),
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "bursts-5-every-7s",
        what: "10 % steady, and 5 at once every 7 s",
        setup: |n| {
            Setup::alone(RateLimit {
                background_load: Some(0.5),
                fractional_reset: true,
                background_bursts: every(5, Duration::from_secs(7), Duration::from_secs(n)),
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "bursts-5-every-2s",
        what: "10 % steady, and 5 at once every 2 s",
        setup: |n| {
            Setup::alone(RateLimit {
                background_load: Some(0.5),
                background_bursts: every(5, Duration::from_secs(2), ms(150 * n)),
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "bursts-8-every-2s",
        what: "8 at once every 2 s",
        setup: |n| {
            Setup::alone(RateLimit {
                background_bursts: every(8, Duration::from_secs(2), ms(150 * n)),
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "bursts-2-every-11s",
        what: "50 % steady, and 2 at once every 11 s",
        setup: |n| {
            Setup::alone(RateLimit {
                background_load: Some(2.5),
                background_bursts: every(2, Duration::from_secs(11), ms(500 * n)),
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "bursts-5-every-11s-fractional",
        what: "0-20 % steady, and 5 at once every 11 s, fractional resets",
        setup: |n| cron([0.0, 0.5, 0.75, 1.0][(n % 4) as usize], every(5, Duration::from_secs(11), ms(700 * n))),
    },
    Case {
        name: "bursts-4-every-45s-fractional",
        what: "10-25 % steady, and 4 at once every 45 s, fractional resets",
        setup: |n| cron(0.5 + 0.25 * (n % 4) as f64, every(4, Duration::from_secs(45), ms(1500 * n))),
    },
    Case {
        name: "bursts-10-every-30s-heavy",
        what: "20-40 % steady, 10 at once every 30 s, heavy tail",
        setup: |n| {
            Setup::alone(RateLimit {
                background_load: Some(1.0 + 0.25 * (n % 5) as f64),
                background_bursts: every(10, Duration::from_secs(30), Duration::from_secs(n)),
                ..scaled(WindowKind::Sliding)
            })
            .heavy()
        },
    },
    Case {
        name: "burst-50-at-5s",
        what: "one burst of 50, 5 s in",
        setup: |n| {
            Setup::alone(RateLimit {
                background_bursts: vec![Burst { requests: 50, offset: ms(5000 + 300 * n) }],
                ..scaled(WindowKind::Sliding)
            })
        },
    },
    Case {
        name: "burst-30-fixed",
        what: "fixed window rounded down, 30 % steady, one burst of 30",
        setup: |n| Setup {
            rows: 600,
            rounding: down,
            ..Setup::alone(RateLimit {
                background_load: Some(1.5),
                fractional_reset: true,
                background_bursts: vec![Burst { requests: 30, offset: Duration::from_secs(33 + n) }],
                ..scaled(WindowKind::Fixed)
            })
        },
    },
    Case {
        name: "speeds-up",
        what: "steady 1/s (and up), then 4/s from 40 s, heavy tail",
        setup: |n| {
            Setup::alone(RateLimit {
                background_bursts: speeding_up(1.0 + 0.05 * n as f64, 4.0),
                ..scaled(WindowKind::Sliding)
            })
            .heavy()
        },
    },
    Case {
        name: "speeds-up-fractional",
        what: "0.5/s (and up), then 2.5/s, fractional resets, heavy tail",
        setup: |n| {
            Setup::alone(RateLimit {
                background_bursts: speeding_up(0.5 + 0.05 * n as f64, 2.5),
                fractional_reset: true,
                ..scaled(WindowKind::Sliding)
            })
            .heavy()
        },
    },
    Case {
        name: "two-processes-sliding",
        what: "two runs of one credential, 5 s apart",
        setup: |n| Setup { pair: Some(ms(5000 + 450 * n)), ..Setup::alone(scaled(WindowKind::Sliding)) },
    },
    Case {
        name: "two-processes-fixed",
        what: "the same on a fixed window",
        setup: |n| Setup { pair: Some(ms(5000 + 450 * n)), ..Setup::alone(scaled(WindowKind::Fixed)) },
    },
];

/// What a case's runs came to.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    runs: u64,
    /// Runs with at least one 429.
    blocked: u64,
    refused: usize,
    /// The mean of each run's time over the ideal for its rows.
    over_ideal: f64,
}

/// Runs `name`'s first `runs` setups.
async fn tally(name: &str, runs: u64) -> Tally {
    let case = CASES.iter().find(|c| c.name == name).expect("a case of CASES");
    let mut tally = Tally { runs, ..Tally::default() };
    for n in 0..runs {
        let setup = (case.setup)(n);
        let rows = setup.rows;
        let runs_of = if setup.pair.is_some() { 2.0 } else { 1.0 };
        let ideal = ideal(&setup.config).mul_f64(runs_of * rows as f64 / ROWS as f64);
        let drilled: Drilled = match setup.pair {
            Some(gap) => drill_pair(Server::new(&setup.config, loopback, as_is), Pace::Auto, rows, gap).await,
            None if setup.announces_20s => {
                alone(announcing_20s(&setup.config, setup.latency, setup.rounding), rows).await
            }
            None => alone(Server::new(&setup.config, setup.latency, setup.rounding), rows).await,
        };
        tally.blocked += u64::from(drilled.refused > 0);
        tally.refused += drilled.refused;
        tally.over_ideal += drilled.took.as_secs_f64() / ideal.as_secs_f64() / runs as f64;
    }
    tally
}

/// Asserts of each named case that at most `blocked` of `runs` were
/// refused at all and that its runs took at most `over_ideal` × the ideal
/// on average.
async fn bound(runs: u64, cases: &[(&str, u64, f64)]) {
    let mut failed = Vec::new();
    for &(name, blocked, over_ideal) in cases {
        let tally = tally(name, runs).await;
        if tally.blocked > blocked || tally.over_ideal > over_ideal {
            failed.push(format!("{name}: {tally:?}, bound {blocked} blocked, {over_ideal} × ideal"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A random consumer's count varies by about its square root, and in the
/// run's first window nothing of this run's leaves to make room: 3b90cae
/// was refused in 7 of 8 runs at 30 % with fractional resets and in 8 of 8
/// at 60 %.
#[tokio::test(start_paused = true)]
async fn beside_a_random_consumer_few_runs_are_refused() {
    bound(
        8,
        &[
            ("random-30", 0, 1.25),
            ("random-30-fractional", 1, 1.25),
            ("random-30-heavy", 0, 1.30),
            ("random-30-fractional-heavy", 1, 1.30),
            ("random-10-fractional", 0, 1.10),
            ("random-60", 5, 2.3),
            ("random-60-fractional-heavy", 5, 2.3),
            ("steady-random-clumps", 5, f64::INFINITY),
        ],
    )
    .await;
}

/// The same on windows that are not sliding: 3b90cae 4, 5 and 3 of 8.
#[tokio::test(start_paused = true)]
async fn beside_a_random_consumer_fixed_windows_and_token_buckets_are_refused_no_more_than_before() {
    bound(8, &[("random-30-fixed", 3, 1.40), ("random-50-fixed", 5, 1.75), ("random-50-token-bucket", 3, 1.0)]).await;
}

/// A steady consumer is never refused, and what is kept back for a random
/// one costs it little: 3b90cae took 1.08, 1.04 and 1.13 × the ideal.
#[tokio::test(start_paused = true)]
async fn beside_a_steady_consumer_nothing_is_refused_and_little_is_kept_back() {
    bound(4, &[("consumer-30", 0, 1.10), ("consumer-30-fractional", 0, 1.06), ("consumer-30-heavy", 0, 1.16)]).await;
}

/// A window longer than announced, its slots freeing later than this run
/// counts on: 3b90cae was refused in every run, 17 times in 16.
#[tokio::test(start_paused = true)]
async fn a_window_longer_than_announced_is_not_refused() {
    bound(8, &[("window-25s", 0, f64::INFINITY), ("window-25s-fractional", 1, f64::INFINITY)]).await;
}

/// Tools that burst again and again: 3b90cae was refused in every run of
/// each, 2 every 11 s at 1.76 × the ideal. Where a 429 is met anyway, the
/// quota it teaches slows the rest of the run, unless the API's latest
/// count had the window full (a fixed window after a burst of 30: 1.14 ×
/// the ideal; taught from this run's answers alone, 1.57). Until a burst
/// was kept for only once a tool had burst twice, 0835711 was refused at
/// the second burst in 3 of 8 runs beside 5 every 7 s, and 6 of 8 beside 5
/// every 11 s with fractional resets. A first burst on a full window is
/// beyond any pacing but the standing reserve: 4 every 45 s with
/// fractional resets, 5 of 8 either way.
#[tokio::test(start_paused = true)]
async fn beside_a_tool_that_bursts_again_and_again_few_runs_are_refused_and_none_stalls() {
    bound(
        8,
        &[
            ("bursts-5-every-7s", 1, 1.10),
            ("bursts-2-every-11s", 0, 1.10),
            ("bursts-5-every-11s-fractional", 0, 1.10),
            ("bursts-4-every-45s-fractional", 5, 1.30),
            ("bursts-5-every-2s", 8, 1.20),
            ("bursts-8-every-2s", 8, 1.45),
            ("bursts-10-every-21s", 8, 1.45),
            ("burst-30-fixed", 8, 1.65),
        ],
    )
    .await;
}

/// Bursts of 10 every 30 s beside a steady consumer, the heavy tail: the
/// burst often lands on a full window either way (3b90cae: 16 429s in 16
/// runs, 1.07 × the ideal; this pacer 14, but 1.25: what it keeps back for
/// the bursts and the surge between them, left as it is).
#[tokio::test(start_paused = true)]
async fn beside_a_consumer_that_bursts_after_a_quiet_window_the_run_is_refused_no_more_than_before() {
    let tally = tally("bursts-10-every-30s-heavy", 16).await;
    assert!(tally.refused <= 16 && tally.over_ideal < 1.3, "{tally:?}");
}

/// A tool that speeds up fourfold at 40 s: 3b90cae was refused in 7 and 4
/// of 8 runs. Beside it this run now yields more while the tool's count
/// climbs (1.05 × the ideal against 0.81; the ideal counts the tool's
/// first rate only).
#[tokio::test(start_paused = true)]
async fn beside_a_tool_that_speeds_up_few_runs_are_refused() {
    bound(8, &[("speeds-up", 1, 1.15), ("speeds-up-fractional", 0, 0.5)]).await;
}

/// Prints every case's tally for the README: with `--ignored`.
#[tokio::test(start_paused = true)]
#[ignore = "prints the table of every case; slow in a debug build"]
async fn sweep_table() {
    println!("| case | what | runs | runs refused | 429s | time over the ideal |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for case in CASES {
        let tally = tally(case.name, 8).await;
        println!(
            "| `{}` | {} | {} | {} | {} | {:.2} |",
            case.name, case.what, tally.runs, tally.blocked, tally.refused, tally.over_ideal
        );
    }
}

#[test]
fn every_case_has_a_name_of_its_own() {
    let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
}
