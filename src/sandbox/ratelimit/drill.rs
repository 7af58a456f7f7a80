//! The pacer against this limiter, on a paused clock: the cases the
//! pacing benchmark (`benches/pacing_cases.py`) runs over loopback for
//! real, here in virtual time, so that "never blocked" is a test and not
//! only a figure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pacing::headers::{Policy, Remaining};
use crate::pacing::{Pace, Pacer};

use super::{Burst, Limiter, RateLimit, Verdict, WindowKind};

/// What a drill saw.
#[derive(Debug)]
struct Drilled {
    /// From the first request to the last answer.
    took: Duration,
    refused: usize,
    busiest: usize,
}

/// Runs `rows` requests (after one credentials check) through a pacer at
/// `--rate auto` with 16 workers against a limiter with `config`, each
/// answered `latency` after it was sent (counted half way), and retried
/// after a 429's pause.
async fn drill(config: RateLimit, rows: usize, latency: Duration) -> Drilled {
    let clock = (tokio::time::Instant::now(), std::time::Instant::now());
    let limiter = Arc::new(Mutex::new(Limiter::new(&config, clock.1).expect("a quota")));
    let policy = Policy { quota: config.quota, window: config.window };
    let pacer = Arc::new(Pacer::new(Pace::Auto));
    let refused = Arc::new(Mutex::new(0usize));
    let ask = {
        let (limiter, pacer, refused) = (limiter.clone(), pacer.clone(), refused.clone());
        move || {
            let (limiter, pacer, refused) = (limiter.clone(), pacer.clone(), refused.clone());
            async move {
                loop {
                    let sent = pacer.ready().await;
                    tokio::time::sleep(latency / 2).await;
                    let now = clock.1 + clock.0.elapsed();
                    let verdict = limiter.lock().unwrap().admit(now);
                    tokio::time::sleep(latency / 2).await;
                    match verdict {
                        Verdict::Allowed { remaining, reset } => {
                            let left = Remaining { requests: remaining, reset: reset.duration() };
                            pacer.answered(sent, Some(left), Some(policy));
                            return;
                        }
                        Verdict::Limited { retry_after } => {
                            *refused.lock().unwrap() += 1;
                            pacer.refused(Some(policy));
                            pacer.pause_for(Duration::from_secs(retry_after));
                        }
                    }
                }
            }
        }
    };
    let start = tokio::time::Instant::now();
    ask().await;
    let left = Arc::new(Mutex::new(rows));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (left, ask) = (left.clone(), ask.clone());
        workers.spawn(async move {
            loop {
                {
                    let mut left = left.lock().unwrap();
                    if *left == 0 {
                        return;
                    }
                    *left -= 1;
                }
                ask().await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let busiest = limiter.lock().unwrap().max_in_window();
    let refused = *refused.lock().unwrap();
    Drilled { took: start.elapsed(), refused, busiest }
}

/// The benchmark's scale: 100 requests per 20 s, a 20 s block.
fn scaled(kind: WindowKind) -> RateLimit {
    RateLimit {
        quota: 100,
        window: Duration::from_secs(20),
        block: Duration::from_secs(20),
        window_kind: kind,
        ..RateLimit::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: usize = 200;
    const LOOPBACK: Duration = Duration::from_millis(1);

    /// The benchmark's ideal: the rows, and any other consumer's bursts, at
    /// what the enforced quota leaves after a steady consumer.
    fn ideal(config: &RateLimit) -> Duration {
        let bursts: u32 = config.background_bursts.iter().map(|b| b.requests).sum();
        let quota = config.enforced_quota.unwrap_or(config.quota);
        let left = f64::from(quota) - config.background_load.unwrap_or(0.0) * config.window.as_secs_f64();
        config.window.mul_f64((ROWS as f64 + f64::from(bursts)) / left)
    }

    /// Drills `config` and checks what holds in every case: no request
    /// lost, and no stall (a run slower than the ideal by more than a
    /// pacer's margins is waiting on something that is not the quota).
    async fn drilled(config: RateLimit) -> Drilled {
        let ideal = ideal(&config);
        let drilled = drill(config, ROWS, LOOPBACK).await;
        assert!(drilled.took < ideal.mul_f64(1.15), "{drilled:?}, ideal {ideal:?}");
        drilled
    }

    fn with_burst(requests: u32, secs: u64) -> RateLimit {
        let burst = Burst { requests, offset: Duration::from_secs(secs) };
        RateLimit { background_bursts: vec![burst], ..scaled(WindowKind::Sliding) }
    }

    #[tokio::test(start_paused = true)]
    async fn alone_no_kind_of_window_refuses_a_request_and_the_reserve_is_kept() {
        for kind in [WindowKind::Sliding, WindowKind::Fixed] {
            let drilled = drilled(scaled(kind)).await;
            assert_eq!(drilled.refused, 0, "{kind}");
            assert!(drilled.busiest <= 98, "{kind}: {drilled:?}");
        }
        // A bucket saved up lets more than the quota through in one window.
        assert_eq!(drilled(scaled(WindowKind::TokenBucket)).await.refused, 0);
    }

    /// The slots this run frees are spent beside the other tool, less what
    /// it sends meanwhile; whole-second resets stalled it at every one.
    #[tokio::test(start_paused = true)]
    async fn beside_a_steady_consumer_nothing_is_refused_and_nothing_stalls() {
        for fractional_reset in [false, true] {
            let config = RateLimit { background_load: Some(1.5), fractional_reset, ..scaled(WindowKind::Sliding) };
            let drilled = drilled(config).await;
            assert_eq!(drilled.refused, 0, "fractional: {fractional_reset}");
            assert!(drilled.busiest < 100, "{drilled:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn another_tools_bursts_within_the_reserve_or_before_the_window_fills_are_never_refused() {
        for (requests, secs) in [(2, 25), (50, 5)] {
            assert_eq!(drilled(with_burst(requests, secs)).await.refused, 0, "{requests} at {secs} s");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_enforces_less_than_it_announces_refuses_once() {
        let config = RateLimit { enforced_quota: Some(80), ..scaled(WindowKind::Sliding) };
        let drilled = drill(config, ROWS, LOOPBACK).await;
        assert_eq!(drilled.refused, 1, "{drilled:?}");
    }
}
