//! The pacer against this limiter, on a paused clock: the cases the
//! pacing benchmark (`benches/pacing_cases.py`) runs over loopback for
//! real, here in virtual time, so that "never blocked" is a test and not
//! only a figure.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pacing::headers::{Policy, Remaining};
use crate::pacing::{Pace, Pacer, Rate};

use super::{Burst, Limiter, RateLimit, Verdict, WindowKind};

mod sweep;

/// What a drill saw.
#[derive(Debug)]
struct Drilled {
    /// From the first request to the last answer.
    took: Duration,
    refused: usize,
    busiest: usize,
}

/// What a run put in the ledger: its sends, and its 429s (when, until
/// when the pause it started lasts, and the quota it taught, if any).
#[derive(Debug, Default)]
struct Log {
    sends: Vec<tokio::time::Instant>,
    refusals: Vec<(tokio::time::Instant, tokio::time::Instant, Option<Rate>)>,
}

/// The limiter behind a loopback server, on tokio's clock.
struct Server {
    limiter: Mutex<Limiter>,
    policy: Policy,
    /// The paused clock and the limiter's at the same moment.
    clock: (tokio::time::Instant, std::time::Instant),
    refused: AtomicUsize,
    /// Requests sent so far, by every run: the `n` of `latency(n)`.
    sends: AtomicU64,
    latency: fn(u64) -> Duration,
    /// What the header says of the limiter's reset: as is, or rounded
    /// otherwise than up, as a server may.
    rounding: fn(Duration) -> Duration,
    /// Whether answers carry the rate-limit headers at all.
    announces: bool,
}

/// The latency of a server on loopback.
fn loopback(_: u64) -> Duration {
    Duration::from_millis(1)
}

/// The header's reset as the limiter has it.
fn as_is(reset: Duration) -> Duration {
    reset
}

impl Server {
    fn new(config: &RateLimit, latency: fn(u64) -> Duration, rounding: fn(Duration) -> Duration) -> Arc<Server> {
        let clock = (tokio::time::Instant::now(), std::time::Instant::now());
        Arc::new(Server {
            limiter: Mutex::new(Limiter::new(config, clock.1).expect("a quota")),
            policy: Policy { quota: config.quota, window: config.window },
            clock,
            refused: AtomicUsize::new(0),
            sends: AtomicU64::new(0),
            latency,
            rounding,
            announces: true,
        })
    }

    /// A server that sends no rate-limit headers: only `--rate` paces.
    fn unannounced(config: &RateLimit, latency: fn(u64) -> Duration) -> Arc<Server> {
        let server = Server::new(config, latency, as_is);
        Arc::new(Server { announces: false, ..Arc::into_inner(server).expect("not shared yet") })
    }

    /// One row's request through `pacer` until it is answered: as in the
    /// sandbox, the `n`th request sent waits `latency(n)`, then is counted
    /// and answered at once; a 429 pauses the run and the row goes again.
    async fn request(&self, pacer: &Pacer, log: &Mutex<Log>) {
        loop {
            let sent = pacer.ready().await;
            log.lock().unwrap().sends.push(sent);
            let n = self.sends.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep((self.latency)(n)).await;
            let now = self.clock.1 + self.clock.0.elapsed();
            let verdict = self.limiter.lock().unwrap().admit(now);
            match verdict {
                Verdict::Allowed { remaining, reset } => {
                    let left = Remaining { requests: remaining, reset: (self.rounding)(reset.duration()) };
                    let (left, policy) = if self.announces { (Some(left), Some(self.policy)) } else { (None, None) };
                    pacer.answered(sent, left, policy);
                    return;
                }
                Verdict::Limited { retry_after } => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    let learned = pacer.refused(sent, Some(self.policy).filter(|_| self.announces));
                    let until = pacer.pause_for(Duration::from_secs(retry_after));
                    log.lock().unwrap().refusals.push((tokio::time::Instant::now(), until, learned));
                }
            }
        }
    }

    fn drilled(&self, took: Duration) -> Drilled {
        let busiest = self.limiter.lock().unwrap().max_in_window();
        Drilled { took, refused: self.refused.load(Ordering::Relaxed), busiest }
    }
}

/// One run of `rows` requests after its credentials check, through its own
/// pacer at `--rate auto` with 16 workers; every send and 429 goes into `log`.
async fn run(server: Arc<Server>, pacer: Arc<Pacer>, rows: usize, log: Arc<Mutex<Log>>) {
    server.request(&pacer, &log).await;
    let left = Arc::new(Mutex::new(rows));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (left, server, pacer, log) = (left.clone(), server.clone(), pacer.clone(), log.clone());
        workers.spawn(async move {
            loop {
                {
                    let mut left = left.lock().unwrap();
                    if *left == 0 {
                        return;
                    }
                    *left -= 1;
                }
                server.request(&pacer, &log).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// One run alone against `server`.
async fn alone(server: Arc<Server>, rows: usize) -> Drilled {
    let start = tokio::time::Instant::now();
    run(server.clone(), Arc::new(Pacer::new(Pace::Auto)), rows, Arc::default()).await;
    server.drilled(start.elapsed())
}

/// One run alone against a limiter with `config`.
async fn drill(config: RateLimit, rows: usize, latency: fn(u64) -> Duration) -> Drilled {
    alone(Server::new(&config, latency, as_is), rows).await
}

/// One run alone against a limiter whose header rounds its (fractional)
/// reset with `rounding`: nothing says a server rounds up.
async fn drill_rounded(config: RateLimit, rows: usize, rounding: fn(Duration) -> Duration) -> Drilled {
    let config = RateLimit { fractional_reset: true, ..config };
    alone(Server::new(&config, loopback, rounding), rows).await
}

/// Two runs with the same credential, the second started `gap` after the
/// first, that know each other as the ledger tells them: every second, each
/// hears the other's sends and 429s recorded by then (a quarter second after
/// they came) and whether it still runs. `took` is from the first start to
/// the last end.
async fn drill_pair(server: Arc<Server>, pace: Pace, rows: usize, gap: Duration) -> Drilled {
    const APPEND: Duration = Duration::from_millis(250);
    const READ: Duration = Duration::from_secs(1);
    let start = tokio::time::Instant::now();
    let logs: [Arc<Mutex<Log>>; 2] = Default::default();
    let done: [Arc<AtomicBool>; 2] = Default::default();
    let mut runs = tokio::task::JoinSet::new();
    for me in 0..2 {
        let pacer = Arc::new(Pacer::new(pace));
        let (server, logs, done) = (server.clone(), logs.clone(), done.clone());
        runs.spawn(async move {
            tokio::time::sleep(gap * me as u32).await;
            let other = 1 - me;
            let watcher = tokio::spawn({
                let (pacer, log, done) = (pacer.clone(), logs[other].clone(), done[other].clone());
                async move {
                    let (mut heard, mut heard_refused) = (0, 0);
                    loop {
                        let now = tokio::time::Instant::now();
                        let recorded: Vec<_> =
                            log.lock().unwrap().sends.iter().copied().filter(|&s| s + APPEND <= now).collect();
                        // Sends are logged in order, so what is recorded only grows.
                        pacer.remember(&recorded[heard..]);
                        heard = recorded.len();
                        let refusals: Vec<_> =
                            log.lock().unwrap().refusals.iter().copied().filter(|r| r.0 + APPEND <= now).collect();
                        for &(at, until, learned) in &refusals[heard_refused..] {
                            pacer.peer_refused(at, until, learned);
                        }
                        heard_refused = refusals.len();
                        let started = !log.lock().unwrap().sends.is_empty();
                        pacer.peers(u32::from(started && !done.load(Ordering::Relaxed)));
                        tokio::time::sleep(READ).await;
                    }
                }
            });
            run(server, pacer, rows, logs[me].clone()).await;
            done[me].store(true, Ordering::Relaxed);
            watcher.abort();
        });
    }
    while runs.join_next().await.is_some() {}
    server.drilled(start.elapsed())
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

    pub(super) const ROWS: usize = 200;

    /// The benchmark's heavy tail: exponential, mean 300 ms, capped at 3 s;
    /// the same draw for the same request every run.
    pub(super) fn heavy_tail(n: u64) -> Duration {
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 32;
        let uniform = (x >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_millis(300).mul_f64(-(1.0 - uniform).ln()).min(Duration::from_secs(3))
    }

    /// Whole seconds, rounded as a server may: nothing says it rounds up.
    pub(super) fn up(reset: Duration) -> Duration {
        Duration::from_secs(reset.as_secs_f64().ceil() as u64)
    }

    pub(super) fn down(reset: Duration) -> Duration {
        Duration::from_secs(reset.as_secs())
    }

    fn nearest(reset: Duration) -> Duration {
        Duration::from_secs(reset.as_secs_f64().round() as u64)
    }

    /// The benchmark's ideal: the rows, and any other consumer's bursts, at
    /// what the enforced quota leaves after a steady consumer.
    pub(super) fn ideal(config: &RateLimit) -> Duration {
        let bursts: u32 = config.background_bursts.iter().map(|b| b.requests).sum();
        let quota = config.enforced_quota.unwrap_or(config.quota);
        let left = f64::from(quota) - config.background_load.unwrap_or(0.0) * config.window.as_secs_f64();
        config.window.mul_f64((ROWS as f64 + f64::from(bursts)) / left)
    }

    /// Drills `config` and checks what holds in every case: no stall (a run
    /// slower than the ideal by more than a pacer's margins is waiting on
    /// something that is not the quota).
    async fn drilled(config: RateLimit) -> Drilled {
        drilled_with(config, loopback).await
    }

    async fn drilled_with(config: RateLimit, latency: fn(u64) -> Duration) -> Drilled {
        let ideal = ideal(&config);
        let drilled = drill(config, ROWS, latency).await;
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

    /// Another tool that bursts periodically (a cron job: 5 requests every 7
    /// or 11 s, alone or over a light steady load), each burst above the
    /// reserve (2) but the whole far below the quota. Crediting the slots
    /// this run frees beside it, less only its median rate since the count,
    /// got each of these refused once: a burst right after a count landed on
    /// slots already spent. With fractional resets 0835711 was refused in 3
    /// of the 5, each at the second burst: only a tool seen to burst twice
    /// had a burst kept for, and whole-second resets had hidden that, a low
    /// budget spread over a reset a second too far leaving slots spare.
    #[tokio::test(start_paused = true)]
    async fn beside_a_consumer_that_bursts_periodically_nothing_is_refused() {
        for fractional_reset in [false, true] {
            for (load, requests, every) in [(0.0, 5, 11), (0.0, 5, 7), (0.5, 5, 7), (0.5, 5, 11), (1.0, 5, 11)] {
                let bursts = (1..40).map(|k| Burst { requests, offset: Duration::from_secs(every * k) }).collect();
                let background_load = Some(load).filter(|&l| l > 0.0);
                let config = RateLimit {
                    background_load,
                    background_bursts: bursts,
                    fractional_reset,
                    ..scaled(WindowKind::Sliding)
                };
                let drilled = drill(config, ROWS, loopback).await;
                let what = format!("load {load}/s, {requests} every {every} s, fractional {fractional_reset}");
                assert_eq!(drilled.refused, 0, "{what}: {drilled:?}");
            }
        }
    }

    /// Bursts so close together that the run is refused anyway (every 2 s;
    /// the standing reserve cannot absorb 5 or 8 at once): the run must
    /// still not stall. A low budget spread from the last send over the
    /// current count's reset took twice the ideal here (8 every 2 s: 253 s
    /// for an ideal of 102 s); the pacer keeps within a quarter of it.
    #[tokio::test(start_paused = true)]
    async fn beside_a_consumer_that_bursts_periodically_the_run_does_not_stall() {
        for (load, requests, every) in [(0.0, 8, 2), (0.5, 5, 2), (2.5, 2, 11)] {
            let bursts = (1..40).map(|k| Burst { requests, offset: Duration::from_secs(every * k) }).collect();
            let background_load = Some(load).filter(|&l| l > 0.0);
            let config = RateLimit { background_load, background_bursts: bursts, ..scaled(WindowKind::Sliding) };
            let ideal = ideal(&config);
            let drilled = drill(config, ROWS, loopback).await;
            assert!(
                drilled.took < ideal.mul_f64(1.25),
                "load {load}/s, {requests} every {every} s: {drilled:?}, ideal {ideal:?}"
            );
        }
    }

    /// A server whose header rounds its reset down (floor) or to nearest
    /// instead of up, on a sliding window beside a steady consumer (1.5/s):
    /// a reset taken from the earliest of a window's counts, and freed slots
    /// spent beside the consumer, got each refused once.
    #[tokio::test(start_paused = true)]
    async fn a_server_rounding_resets_down_or_to_nearest_beside_a_consumer_refuses_nothing() {
        for (name, rounding) in [("floor", down as fn(Duration) -> Duration), ("nearest", nearest)] {
            let config = RateLimit { background_load: Some(1.5), ..scaled(WindowKind::Sliding) };
            let drilled = drill_rounded(config, ROWS, rounding).await;
            assert_eq!(drilled.refused, 0, "{name}: {drilled:?}");
        }
    }

    /// A fixed window whose header counts whole seconds, rounded however a
    /// server may: alone or beside a steady consumer, nothing is refused.
    /// Rounded up, the reserve is kept too; rounded down or to nearest, the
    /// request that asks after a reset the header puts early takes a slot
    /// of it (busiest 100).
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_whose_header_rounds_any_way_refuses_nothing() {
        for (name, rounding) in [("up", up as fn(Duration) -> Duration), ("down", down), ("nearest", nearest)] {
            for background_load in [None, Some(1.5)] {
                let config = RateLimit { background_load, ..scaled(WindowKind::Fixed) };
                let drilled = drill_rounded(config, ROWS, rounding).await;
                assert_eq!(drilled.refused, 0, "{name}, load {background_load:?}: {drilled:?}");
                if name == "up" {
                    assert!(drilled.busiest < 100, "{name}, load {background_load:?}: {drilled:?}");
                }
            }
        }
    }

    /// A sliding window that resets once the way a fixed one does: another
    /// tool's 60 requests fill it before the run starts, 11 s in, and leave
    /// together at 20 s, when the header's reset jumps to the run's oldest
    /// request, 11 s away. The run takes it for fixed until a count resets
    /// off the boundaries, and nothing is refused meanwhile. A header
    /// rounded down or to nearest says a reset early, and the request that
    /// asks after it then takes a slot of the reserve (busiest 100): only
    /// rounded up is it kept.
    #[tokio::test(start_paused = true)]
    async fn a_sliding_window_that_looks_fixed_once_refuses_nothing() {
        for (name, rounding) in [("up", up as fn(Duration) -> Duration), ("down", down), ("nearest", nearest)] {
            let burst = Burst { requests: 60, offset: Duration::from_millis(100) };
            let config =
                RateLimit { background_bursts: vec![burst], fractional_reset: true, ..scaled(WindowKind::Sliding) };
            let server = Server::new(&config, loopback, rounding);
            tokio::time::sleep(Duration::from_secs(11)).await;
            let drilled = alone(server, ROWS).await;
            assert_eq!(drilled.refused, 0, "{name}: {drilled:?}");
            if name == "up" {
                assert!(drilled.busiest < 100, "{name}: {drilled:?}");
            }
        }
    }

    /// A server whose window is as long as `config` says while its policy
    /// announces `w=20`: the same as a server whose clock runs slow or fast
    /// against this machine's, or a `w` rounded in the policy.
    pub(super) fn announcing_20s(
        config: &RateLimit,
        latency: fn(u64) -> Duration,
        rounding: fn(Duration) -> Duration,
    ) -> Arc<Server> {
        let server = Arc::into_inner(Server::new(config, latency, rounding)).expect("just made");
        Arc::new(Server { policy: Policy { quota: config.quota, window: Duration::from_secs(20) }, ..server })
    }

    /// A fixed window of 21 s announced as 20 s, its header rounding up,
    /// the run alone, 600 rows: each count's reset is its own header's,
    /// which follows the real boundary. A reset seen to pass, carried an
    /// announced window on and put in place of the header's (tried, to
    /// start each window on time), had every spent window probed a second
    /// before it reset, into an exhausted window: 3 429s.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_longer_than_announced_is_not_probed_before_it_resets_alone() {
        let config = RateLimit { window: Duration::from_secs(21), fractional_reset: true, ..scaled(WindowKind::Fixed) };
        let server = announcing_20s(&config, loopback, up);
        let drilled = alone(server, 600).await;
        assert_eq!(drilled.refused, 0, "real 21 s, announced 20 s, rounded up, alone: {drilled:?}");
    }

    /// The same beside a steady consumer (1.5/s), the real window only
    /// 1.25 % (20.25 s), 2.5 % (20.5 s) or 5 % (21 s) longer than
    /// announced, exact resets or rounded up or to nearest, or 19.5 s
    /// rounded down. Spreading a low budget only until this run's oldest
    /// request leaves, an announced window after its answer (tried), got
    /// the 21 s one refused too.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_not_of_the_announced_length_beside_a_consumer_refuses_nothing() {
        for (real, name, rounding) in [
            (20_250, "up", up as fn(Duration) -> Duration),
            (20_500, "up", up),
            (21_000, "as_is", as_is),
            (21_000, "nearest", nearest),
            (19_500, "down", down),
        ] {
            let config = RateLimit {
                window: Duration::from_millis(real),
                background_load: Some(1.5),
                fractional_reset: true,
                ..scaled(WindowKind::Fixed)
            };
            let drilled = alone(announcing_20s(&config, loopback, rounding), 600).await;
            assert_eq!(drilled.refused, 0, "real {real} ms, announced 20 s, {name}, load 1.5/s: {drilled:?}");
        }
    }

    /// A fixed window (announced right, 100/20 s) beside a steady consumer
    /// (1.5/s) whose tool also bursts 30 requests at 33 s; the header rounds
    /// down or to nearest. The burst gets the run refused once, but it then
    /// ends in 198-200 s, 1.1 × the 180 s the quota allows for 600 rows and
    /// the burst. Boundaries from a reset seen to pass, with resets read a
    /// second later once a header said 0 (tried), took 469-489 s.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_beside_a_consumer_does_not_stall_after_a_burst() {
        for (name, rounding) in [("down", down as fn(Duration) -> Duration), ("nearest", nearest)] {
            let burst = Burst { requests: 30, offset: Duration::from_secs(33) };
            let config = RateLimit {
                background_load: Some(1.5),
                background_bursts: vec![burst],
                fractional_reset: true,
                ..scaled(WindowKind::Fixed)
            };
            let ideal = config.window.mul_f64(630.0 / 70.0);
            let drilled = alone(Server::new(&config, loopback, rounding), 600).await;
            assert!(drilled.took < ideal.mul_f64(1.5), "{name}: {drilled:?}, ideal {ideal:?}");
        }
    }

    /// A fixed window, its header rounding up, the benchmark's heavy tail of
    /// latency, the run alone but for another tool's one burst of 60: over 8
    /// phases of the burst (40 s to 58 s in), e483c8f was refused in 4 runs,
    /// 10 times in all, as is this pacer. Boundaries from a reset seen to pass
    /// (tried) got a second 429 with the burst at 50 s; one phase says little
    /// here: a 429 for each request in flight as the burst lands.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_with_a_heavy_tail_is_refused_no_more_than_before_after_a_burst() {
        let (mut blocked, mut refused) = (0, 0);
        for phase in 0..8 {
            let burst = Burst { requests: 60, offset: Duration::from_millis(40_000 + 2_600 * phase) };
            let config =
                RateLimit { background_bursts: vec![burst], fractional_reset: true, ..scaled(WindowKind::Fixed) };
            let drilled = alone(Server::new(&config, heavy_tail, up), 600).await;
            blocked += usize::from(drilled.refused > 0);
            refused += drilled.refused;
        }
        assert!(blocked <= 4 && refused <= 10, "{blocked} runs refused, {refused} times");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_enforces_less_than_it_announces_refuses_once() {
        let config = RateLimit { enforced_quota: Some(80), ..scaled(WindowKind::Sliding) };
        let drilled = drill(config, ROWS, loopback).await;
        assert_eq!(drilled.refused, 1, "{drilled:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_heavy_tail_of_latency_is_never_refused() {
        for fractional_reset in [false, true] {
            let config = RateLimit { fractional_reset, ..scaled(WindowKind::Sliding) };
            assert_eq!(drilled_with(config, heavy_tail).await.refused, 0, "fractional: {fractional_reset}");
        }
    }

    /// Two runs of one credential, the second 5 s after the first, are never
    /// refused, and end within 6 % of the time the quota allows for both:
    /// when the first was held to its half for what it sent alone, it
    /// stalled a quarter of a window while the other could not take its
    /// place (1.09 × that time).
    #[tokio::test(start_paused = true)]
    async fn two_runs_with_one_credential_share_the_quota_unrefused_and_unstalled() {
        let ideal = scaled(WindowKind::Sliding).window * 2;
        for kind in [WindowKind::Sliding, WindowKind::Fixed] {
            let server = Server::new(&scaled(kind), loopback, as_is);
            let drilled = drill_pair(server, Pace::Auto, ROWS / 2, Duration::from_secs(5)).await;
            assert_eq!(drilled.refused, 0, "{kind}");
            assert!(drilled.took < ideal.mul_f64(1.06), "{kind}: {drilled:?}");
        }
    }

    /// The same without rate-limit headers, `--rate` at the real quota,
    /// under the heavy tail, the second run started 5 to 8 s after the
    /// first. Once the runs know each other, each one's arrivals are held to
    /// its half, those it sent alone before included: at first the other has
    /// sent little, so the two add up to the quota with nothing to spare, and
    /// with only the half's own sends held, 16 runs of 16 were refused (50
    /// 429s; e483c8f, with every window widened by the latency's spread: 6
    /// runs, 14 429s).
    #[tokio::test(start_paused = true)]
    async fn two_runs_with_one_credential_and_no_headers_are_not_refused_under_a_heavy_tail() {
        let rate = Pace::Fixed("100/20s".parse().unwrap());
        for kind in [WindowKind::Sliding, WindowKind::Fixed] {
            let mut refused = 0;
            for n in 0..8 {
                let server = Server::unannounced(&scaled(kind), heavy_tail);
                let gap = Duration::from_millis(5000 + 450 * n);
                refused += drill_pair(server, rate, ROWS / 2, gap).await.refused;
            }
            assert_eq!(refused, 0, "{kind}");
        }
    }

    /// Two runs of one credential beside a server that announces 100 and
    /// enforces 80, the second started 3 to 13.5 s after the first: at most
    /// one 429 each. Both meet the wall within a second, before the ledger
    /// can tell either of the other's; what the first refused learns is the
    /// other's too, by the ledger. Before, a run learned nothing where its
    /// answers times the runs overstated the quota (70 of the 80 counted, so
    /// "140"), and a third 429 came: 20 in these 8 pairs. With either fix
    /// alone, 18 (the lesson from the count, not shared: two pairs of 3;
    /// shared, but from the answers times two: two pairs of 3); with both,
    /// 16.
    #[tokio::test(start_paused = true)]
    async fn two_runs_with_one_credential_beside_a_lying_server_are_refused_once_each_at_most() {
        for n in 0..8 {
            let config = RateLimit { enforced_quota: Some(80), ..scaled(WindowKind::Sliding) };
            let gap = Duration::from_millis(3000 + 1500 * n);
            let drilled = drill_pair(Server::new(&config, loopback, as_is), Pace::Auto, ROWS / 2, gap).await;
            assert!(drilled.refused <= 2, "{gap:?}: {drilled:?}");
        }
    }

    /// A steady consumer (whole-second resets) that also bursts now and
    /// then: 4 every 45 s beside 0.5, 1 or 1.5 requests a second on
    /// loopback, or 10 every 30 s beside 2 a second under the heavy tail of
    /// latency (beside 1 a second, the sweep's
    /// `bursts-10-every-30s-heavy`: a burst of 10 finds the window full in
    /// some phases whatever the pacer). Between bursts, once the last has left the window,
    /// its count rises by no more than the reserve between two answers;
    /// spreading a low budget then only until this run's oldest request
    /// leaves (tried, for the header's whole-second reset) spent it at
    /// once, and the next burst found the window full: a 429 each. Spread
    /// until the count's reset, a few slots are spare at those moments.
    #[tokio::test(start_paused = true)]
    async fn beside_a_steady_consumer_that_bursts_after_a_quiet_window_nothing_is_refused() {
        let cases = [
            (0.5, 4, 45, loopback as fn(u64) -> Duration),
            (1.0, 4, 45, loopback),
            (1.5, 4, 45, loopback),
            (2.0, 10, 30, heavy_tail),
        ];
        for (load, requests, every, latency) in cases {
            let bursts = (1..10).map(|k| Burst { requests, offset: Duration::from_secs(every * k) }).collect();
            let config =
                RateLimit { background_load: Some(load), background_bursts: bursts, ..scaled(WindowKind::Sliding) };
            let drilled = drill(config, ROWS, latency).await;
            assert_eq!(drilled.refused, 0, "load {load}/s, {requests} every {every} s: {drilled:?}");
        }
    }

    /// Another tool whose requests come at random (the sandbox's random
    /// background load, 1.5 a second, seed 8), whole-second resets, the
    /// heavy tail of latency: between two answers its count mostly rises by
    /// at most the reserve, and a budget spent until this run's oldest
    /// leaves (tried) met a cluster of its arrivals with a full window
    /// (refused twice). With other seeds, or fractional resets, such a
    /// consumer gets the run blocked anyway (see the README).
    #[tokio::test(start_paused = true)]
    async fn a_heavy_tail_beside_a_poisson_consumer_with_whole_second_resets_is_never_refused() {
        let config =
            RateLimit { background_load: Some(1.5), random_background: Some(8), ..scaled(WindowKind::Sliding) };
        let drilled = drill(config, ROWS, heavy_tail).await;
        assert_eq!(drilled.refused, 0, "Poisson 1.5/s, seed 8: {drilled:?}");
    }

    /// A sliding window 25 s long on a server that announces `w=20`, beside
    /// a steady consumer at 0.5/s, whole or fractional resets. A request
    /// "leaves" at its answer plus the announced window, 5 s before it
    /// really does; a low budget spent on that promise (tried) left the
    /// window full when the consumer's next request came. The header's
    /// reset is the server's own.
    #[tokio::test(start_paused = true)]
    async fn a_sliding_window_longer_than_announced_beside_a_consumer_is_never_refused() {
        for fractional_reset in [false, true] {
            let config = RateLimit {
                background_load: Some(0.5),
                fractional_reset,
                window: Duration::from_secs(25),
                ..scaled(WindowKind::Sliding)
            };
            let drilled = alone(announcing_20s(&config, loopback, as_is), ROWS).await;
            assert_eq!(drilled.refused, 0, "fractional: {fractional_reset}: {drilled:?}");
        }
    }

    /// A server whose clock runs 10 % slow (its 20 s window is 22 s of
    /// ours), whole-second resets, the heavy tail, a steady consumer at
    /// 1.5/s: the same, by the other clock.
    #[tokio::test(start_paused = true)]
    async fn a_server_clock_running_slow_beside_a_consumer_under_a_heavy_tail_is_never_refused() {
        let config =
            RateLimit { background_load: Some(1.5), window: Duration::from_secs(22), ..scaled(WindowKind::Sliding) };
        let drilled = alone(announcing_20s(&config, heavy_tail, as_is), ROWS).await;
        assert_eq!(drilled.refused, 0, "{drilled:?}");
    }

    /// A steady consumer at 1.5/s that bursts 10 every 21 s (whole-second
    /// resets, loopback): refused once (a burst of 10 is beyond the
    /// reserve), and the run still ends within a quarter of the ideal.
    /// With a low budget spent before the count's reset (tried), the 429
    /// met a request sent after that reset, when no count is current, and
    /// was taken for a lying server: a quota of 61 per 20 s learned on top
    /// of counts that already held the consumer's 40, about 1/s for the rest
    /// of the run (1.89 × the ideal).
    #[tokio::test(start_paused = true)]
    async fn beside_a_steady_consumer_that_bursts_ten_every_21_s_the_run_does_not_stall() {
        let bursts = (1..10).map(|k| Burst { requests: 10, offset: Duration::from_secs(21 * k) }).collect();
        let config = RateLimit { background_load: Some(1.5), background_bursts: bursts, ..scaled(WindowKind::Sliding) };
        let ideal = ideal(&config);
        let drilled = drill(config, ROWS, loopback).await;
        assert!(drilled.took < ideal.mul_f64(1.25), "{drilled:?}, ideal {ideal:?}");
    }

    /// The benchmark's scale beside a Poisson consumer at `load` a second
    /// (its arrivals drawn from `seed`), fractional resets.
    pub(super) fn poisson(load: f64, seed: u64, kind: WindowKind) -> RateLimit {
        RateLimit { background_load: Some(load), random_background: Some(seed), fractional_reset: true, ..scaled(kind) }
    }

    /// Another tool's requests one at a time, evenly spaced: `before` a
    /// second for 40 s, then `after` a second for 200 s.
    pub(super) fn speeding_up(before: f64, after: f64) -> Vec<Burst> {
        let at = |t: f64| Burst { requests: 1, offset: Duration::from_secs_f64(t) };
        let steady = (0..(40.0 * before) as u32).map(|i| at(f64::from(i) / before));
        steady.chain((0..(200.0 * after) as u32).map(|i| at(40.0 + f64::from(i) / after))).collect()
    }

    /// A server enforcing 80 (or 90) of the 100 it announces, beside a tool
    /// that bursts 5 requests every 7 or 11 s, nothing else: 3b90cae learns
    /// the lie from its first 429 and is refused once. 1b713cc takes a 429
    /// beside a bursty tool for the tool's (`Gate::refused`), and drops a
    /// quota learned before the tool was seen to burst (`Gate::refuted`):
    /// it paces at the announced 100 again and is refused 4 to 5 times, each
    /// a block of the whole account.
    #[tokio::test(start_paused = true)]
    async fn a_lying_server_beside_a_consumer_that_bursts_refuses_once() {
        for (enforced, every) in [(80, 11), (80, 7), (90, 11)] {
            let bursts = (1..40).map(|k| Burst { requests: 5, offset: Duration::from_secs(every * k) }).collect();
            let config =
                RateLimit { enforced_quota: Some(enforced), background_bursts: bursts, ..scaled(WindowKind::Sliding) };
            let drilled = drill(config, 2 * ROWS, loopback).await;
            assert!(drilled.refused <= 1, "enforces {enforced}, bursts 5 every {every} s: {drilled:?}");
        }
    }

    /// Another tool steady at 1 a second for 40 s, then 4, fractional
    /// resets, heavy tail: the quota leaves this run 4/s for 40 s and 1/s
    /// after, 80 s for its rows. 3b90cae took 148 s, with a 429 in 7 of the
    /// 8 runs of the sweep's `speeds-up`; 1b713cc took 204 s. This pacer
    /// takes 198 s, refused in 1 of 8: while the tool's count climbs, its
    /// trend is held back from the count (`Share::surge`), which a tool
    /// that stops climbing still shows for up to a window. What this bounds
    /// is a stall beyond that.
    #[tokio::test(start_paused = true)]
    async fn beside_a_steady_consumer_that_speeds_up_the_run_does_not_stall() {
        let config = RateLimit {
            background_bursts: speeding_up(1.0, 4.0),
            fractional_reset: true,
            ..scaled(WindowKind::Sliding)
        };
        let drilled = drill(config, ROWS, heavy_tail).await;
        assert!(drilled.took < Duration::from_secs(210), "1/s then 4/s, fractional: {drilled:?}");
    }

    /// A sliding window 25 s long announced as `w=20`, beside a steady
    /// consumer at 1 or 1.5 a second (more than the 0.5 of the test above),
    /// loopback, whole or fractional resets. 3b90cae is refused once in
    /// each; 1b713cc 2 or 3 times. Its guarded path in `Budget::spendable`
    /// credits freed slots at answer + the announced window, 5 s before
    /// they leave; that and the changed `Gate::refused`/`refuted` together
    /// (either one reverted alone still fails).
    #[tokio::test(start_paused = true)]
    async fn a_sliding_window_longer_than_announced_beside_a_busier_consumer_is_refused_no_more_than_before() {
        for (load, fractional_reset) in [(1.0, false), (1.5, false), (1.0, true), (1.5, true)] {
            let config = RateLimit {
                background_load: Some(load),
                fractional_reset,
                window: Duration::from_secs(25),
                ..scaled(WindowKind::Sliding)
            };
            let drilled = alone(announcing_20s(&config, loopback, as_is), ROWS).await;
            assert!(drilled.refused <= 1, "load {load}/s, fractional {fractional_reset}: {drilled:?}");
        }
    }

    /// A Poisson consumer at 60 % of the quota (3 a second, seed 3), the
    /// heavy tail, fractional resets: known to get runs blocked, but 3b90cae
    /// is refused once here, 1b713cc 4 times; with 3b90cae's `pacer.rs`
    /// (`Gate::refused`/`refuted`) it passes.
    #[tokio::test(start_paused = true)]
    async fn beside_a_poisson_consumer_at_60_percent_seed_3_the_run_is_refused_no_more_than_before() {
        let config = poisson(3.0, 3, WindowKind::Sliding);
        let drilled = drill(config, ROWS, heavy_tail).await;
        assert!(drilled.refused <= 1, "Poisson 3/s, seed 3, heavy tail, fractional: {drilled:?}");
    }

    /// A fixed window (100/20 s, announced right, fractional resets), the
    /// heavy tail, beside a Poisson consumer: 1.5/s seed 1 with the header
    /// rounded up, or 2.5/s seed 2 as is; 300 rows. 3b90cae refuses
    /// nothing in either; 1b713cc refuses once and twice. The guarded path
    /// of `Budget::spendable` (it needs only `fixed` unset: a fixed window
    /// not yet, or no longer, told from a sliding one) is the cause: with
    /// it off the test passes; dropping the freed-slot credit alone, the
    /// reset's extra slot alone or the probe rule alone does not.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_window_beside_a_poisson_consumer_under_a_heavy_tail_refuses_nothing() {
        let mut refused = Vec::new();
        for (name, rounding, load, seed) in [("up", up as fn(Duration) -> Duration, 1.5, 1), ("as_is", as_is, 2.5, 2)] {
            let config = poisson(load, seed, WindowKind::Fixed);
            let drilled = alone(Server::new(&config, heavy_tail, rounding), 300).await;
            if drilled.refused > 0 {
                refused.push(format!("{name}, Poisson {load}/s seed {seed}: {drilled:?}"));
            }
        }
        assert!(refused.is_empty(), "{refused:?}");
    }

    /// A token bucket (100, refilling over 20 s) beside a Poisson consumer
    /// at 2.5/s, seed 2, loopback, fractional resets: 3b90cae refuses
    /// nothing, 1b713cc once, with the header as is or rounded any way.
    #[tokio::test(start_paused = true)]
    async fn a_token_bucket_beside_a_poisson_consumer_refuses_nothing() {
        let config = poisson(2.5, 2, WindowKind::TokenBucket);
        let drilled = alone(Server::new(&config, loopback, as_is), 300).await;
        assert_eq!(drilled.refused, 0, "{drilled:?}");
    }

    /// 1b713cc's own case, a Poisson consumer at 30 % (1.5/s) with
    /// fractional resets, on loopback, seeds beyond the 8 it counted:
    /// 1b713cc was refused in seed 11, 3b90cae in neither; nor is this
    /// pacer (though in seed 4 the window reaches 99, the reserve less one).
    #[tokio::test(start_paused = true)]
    async fn beside_a_poisson_consumer_at_30_percent_seeds_4_and_11_are_not_refused() {
        for seed in [11, 4] {
            let drilled = drill(poisson(1.5, seed, WindowKind::Sliding), ROWS, loopback).await;
            assert_eq!(drilled.refused, 0, "seed {seed}: {drilled:?}");
        }
    }

    /// Another tool that changes behaviour: 2 a second evenly spaced for
    /// 40 s (its variation measured near nought), then at random (Poisson,
    /// 2/s, drawn from a fixed LCG) until 100 s, then 3 at once every 1.5 s,
    /// each clump below `Share::bursts`' threshold; loopback, fractional
    /// resets, 400 rows. 3b90cae is refused once, 1b713cc 3 times; with
    /// 3b90cae's `pacer.rs` (`Gate::refused`/`refuted`) it passes.
    #[tokio::test(start_paused = true)]
    async fn beside_a_tool_that_turns_from_steady_to_random_to_clumps_the_run_is_refused_no_more_than_before() {
        let bursts = steady_random_clumps(0);
        let config = RateLimit { background_bursts: bursts, fractional_reset: true, ..scaled(WindowKind::Sliding) };
        let drilled = drill(config, 2 * ROWS, loopback).await;
        assert!(drilled.refused <= 1, "{drilled:?}");
    }

    /// A tool that is steady at 2 a second for 40 s, at random (Poisson,
    /// 2/s, drawn from an LCG seeded by `seed`) until 100 s, then sends 3
    /// at once every 1.5 s.
    pub(super) fn steady_random_clumps(seed: u64) -> Vec<Burst> {
        let mut state: u64 = 7919 + 13 + seed * 101;
        let mut uniform = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let at = |requests, t: f64| Burst { requests, offset: Duration::from_secs_f64(t) };
        let mut bursts: Vec<Burst> = (0..80).map(|i| at(1, f64::from(i) / 2.0)).collect();
        let mut t = 40.0;
        while t < 100.0 {
            t += -uniform().ln() / 2.0;
            bursts.push(at(1, t));
        }
        bursts.extend((0..134).map(|k| at(3, 100.0 + 1.5 * f64::from(k))));
        bursts
    }
}
