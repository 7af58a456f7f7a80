//! The pacer the dispatcher asks before every request: it ties the shared
//! 429 pause, the limiter at the quota in force, and the API's budget
//! together, and takes in what each answer says about the quota.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::budget::{Budget, Marks};
use super::headers::{Policy, Remaining};
use super::latency::Latencies;
use super::limiter::Limiter;
use super::pace::{Pace, Rate};
use super::pause::{Notice, Pause, Stall};

/// A 429 is taken to show the quota the API enforces: what it let through
/// in the window then, less this share of it (and at least one request).
const LEARNED_MARGIN: f64 = 0.05;
/// ...but only if this run had at least this fraction (one in so many) of
/// the quota paced at in the window.
const LEAST_EVIDENCE: u32 = 4;
/// Another run's lesson is taken only if it is at least this fraction (one
/// in so many) of the account's quota as told: a run learns from no less
/// than a [`LEAST_EVIDENCE`]th of its part, so a lower one is a garbled
/// ledger line or another version's, and would crawl for the rest of the run.
const LEAST_LESSON: u32 = 2 * LEAST_EVIDENCE;

/// The budget and the limiter: every send slot takes both, under one lock.
#[derive(Debug, Default)]
struct Gate {
    budget: Budget,
    limiter: Limiter,
    latencies: Latencies,
    /// A lesson was taken with nothing to read the API's counts against
    /// (another run's, before any policy was heard): the first policy over
    /// its window is.
    unread_lesson: bool,
}

/// How an ask at the gate ended.
enum Asked {
    /// Now: no wait.
    Granted,
    /// After the wait it asked for.
    Waited,
    /// An answer arrived first: what the gate knows has changed.
    News,
}

impl Gate {
    fn marks(&self) -> Marks {
        let quota = self.limiter.policy().map(|p| p.quota);
        Marks::of(self.limiter.rate, quota, self.latencies.spread())
    }

    /// Takes the send slot for a claimed request once the limiter allows
    /// it and the budget's spacing does too; otherwise says when to look
    /// again.
    fn take_slot(&mut self, now: Instant) -> Option<Instant> {
        let counts = self.budget.counts();
        self.budget.take_slot(now, || self.limiter.take(now, counts))
    }

    /// Takes in the policy an answer (or a 429) carried; what the budget
    /// counts out of is the quota in force.
    fn heard(&mut self, policy: Option<Policy>, now: Instant) -> (Option<Policy>, Marks) {
        self.limiter.heard(policy, now);
        if self.unread_lesson {
            self.unread_lesson = !self.read_lower(None);
        }
        (self.limiter.policy(), self.marks())
    }

    /// Takes in a 429. If this run had at least a [`LEAST_EVIDENCE`]th of
    /// its pace's quota answered in the window, and the API's own latest
    /// count does not already put the window at its quota, the API enforces
    /// less than it says: what it let through, less a margin, is the
    /// account's quota for the rest of the run. A server whose policy is a
    /// lie gets one 429, not one a window. Returns the policy in force, and
    /// the quota learned, if one was.
    fn refused(&mut self, policy: Option<Policy>, now: Instant) -> (Option<Policy>, Option<Rate>) {
        let (policy, _) = self.heard(policy, now);
        let account = self.limiter.quota();
        let (quota, window) = policy.map_or((account.count, account.per), |p| (p.quota, p.window));
        // What the API let through: requests it refused or has not answered
        // yet may never have been counted.
        let ours = self.budget.answered_within(window, now);
        let counted = self.budget.surely_counted(now, quota);
        // A count within a twentieth of the quota has the window full.
        let full = |c: &u32| *c >= quota - quota / 20;
        if ours < self.limiter.rate.count / LEAST_EVIDENCE || counted.as_ref().is_some_and(full) {
            // Too few of this run's in the window to be the quota, or the
            // API's own count says the window was full: the refusal is about
            // someone else's requests (a burst of another tool's), which the
            // pause it starts covers.
            return (policy, None);
        }
        // The account's count: what the API surely counted, or without a
        // current count the latest of the window if that had the window
        // full (a server never lets through more than it enforces; below
        // full, the latest count may owe much to another tool whose count
        // varies, and this run's own is the safer lesson), or else this
        // run's answers and, beside live peers, as many for each of them.
        // A count is the account's, peers' requests included, whatever
        // their parts: the run that started first has sent more than its
        // part, and its answers times the runs would overstate the quota
        // (70 of 80 times two: nothing learned, and a 429 more).
        let latest = counted.or_else(|| self.budget.last_counted(now, quota, window).filter(full));
        let allowed = latest.map_or(ours.saturating_mul(self.limiter.peer_count() + 1), |count| count.max(ours));
        let margin = (f64::from(allowed) * LEARNED_MARGIN).ceil().max(1.0) as u32;
        let learned = Rate { count: allowed.saturating_sub(margin).max(1), per: window };
        if learned.per_second() >= account.per_second() {
            return (policy, None);
        }
        tracing::warn!(
            in_window = allowed,
            rate = %learned,
            "the API refused a request below the quota paced at; pacing at what it allowed for the rest of the run"
        );
        self.learn(learned, Some(quota), now);
        (policy, Some(learned))
    }

    /// Paces at `learned`, the account's quota a 429 showed, for the rest
    /// of the run, and reads the API's counts that much lower.
    fn learn(&mut self, learned: Rate, announced: Option<u32>, now: Instant) {
        self.limiter.learned(learned, now);
        self.unread_lesson = !self.read_lower(announced);
    }

    /// Reads the API's counts lower by what the quota learned falls short
    /// of `announced`, or of the policy announced over the learned window;
    /// whether there was one.
    fn read_lower(&mut self, announced: Option<u32>) -> bool {
        let Some(lesson) = self.limiter.lesson() else { return false };
        let policy = self.limiter.policy().filter(|p| p.window == lesson.per).map(|p| p.quota);
        let Some(announced) = announced.or(policy) else { return false };
        self.budget.learned(announced.saturating_sub(lesson.count));
        true
    }
}

/// Gates every request: the shared rate-limit pause, the limiter at the
/// current quota, and the budget the API reports.
pub struct Pacer {
    gate: Mutex<Gate>,
    /// Every answer: wakes workers waiting on the budget to look again.
    news: Notify,
    pause: Pause,
    notice: Notice,
}

impl Pacer {
    pub fn new(pace: Pace) -> Self {
        Pacer {
            gate: Mutex::new(Gate { limiter: Limiter::new(pace), ..Gate::default() }),
            news: Notify::new(),
            pause: Pause::default(),
            notice: Notice::default(),
        }
    }

    /// The quota being paced at now.
    pub fn rate(&self) -> Rate {
        self.gate.lock().expect("gate lock").limiter.rate
    }

    /// Waits until a request may be sent, counts it as in flight, and
    /// returns when it was let go (for [`Self::answered`]).
    pub async fn ready(&self) -> Instant {
        'claim: loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            // The budget is claimed before the send slot is waited for, so
            // that workers queueing for slots never share one free slot of
            // the budget.
            let mut claim = None;
            let asked = self.ask(|gate, now| {
                let marks = gate.marks();
                let budget = &mut gate.budget;
                let at = budget.earliest(now, marks);
                if at <= now {
                    claim = Some(budget.claimed(now, marks));
                    return None;
                }
                if let Some(until) = budget.spent_until(now, marks) {
                    self.notice.say(until, Stall::Spent);
                }
                Some(at)
            });
            let Some(claim) = (match asked.await {
                Asked::Granted => claim,
                Asked::Waited | Asked::News => None,
            }) else {
                continue;
            };
            // A claim is good for what the gate knew when it was made: an
            // answer that arrives while it waits for its slot (a count lower
            // than the last, a pause, another tool) sends it back to the
            // budget, so workers that passed the budget before a stall do
            // not all leave together when it lifts. The slot is recorded as
            // sent when granted, under the gate's lock: the next worker asks
            // a record that holds it.
            let mut sent = None;
            loop {
                let take = |gate: &mut Gate, now| {
                    let wait = gate.take_slot(now);
                    sent = Some(now).filter(|_| wait.is_none());
                    wait
                };
                match self.ask(take).await {
                    Asked::Granted => break,
                    Asked::Waited => {}
                    Asked::News => {
                        self.gate.lock().expect("gate lock").budget.abandoned(claim);
                        continue 'claim;
                    }
                }
            }
            let sent = sent.expect("a granted slot was taken");
            // A 429 seen by another worker while this one waited means the
            // slot it got is not safe to use.
            let gate = &mut *self.gate.lock().expect("gate lock");
            if self.paused_until().is_some() {
                gate.budget.abandoned(claim);
                gate.limiter.withdrawn(sent);
                continue;
            }
            gate.budget.let_go();
            return sent;
        }
    }

    /// Asks the gate when to go (`None`: now), and if not now, sleeps
    /// until then or until an answer brings news, whichever is first.
    async fn ask(&self, ask: impl FnOnce(&mut Gate, Instant) -> Option<Instant>) -> Asked {
        // Listening before asking, so news between the two is not missed.
        let news = self.news.notified();
        tokio::pin!(news);
        news.as_mut().enable();
        let Some(at) = ask(&mut self.gate.lock().expect("gate lock"), Instant::now()) else {
            return Asked::Granted;
        };
        tokio::select! {
            () = tokio::time::sleep_until(at) => Asked::Waited,
            () = news => Asked::News,
        }
    }

    /// Takes in what an answer said about the quota for the request let go
    /// at `sent`; [`Self::unanswered`] is for a request that got none.
    pub fn answered(&self, sent: Instant, remaining: Option<Remaining>, policy: Option<Policy>) {
        self.settle(sent, remaining, policy, true);
    }

    /// Takes in a request let go at `sent` that got no answer (a timeout, a
    /// reset connection): it settles, but its wait says nothing of how
    /// arrivals bunch, and a timeout would widen every window by its length.
    pub fn unanswered(&self, sent: Instant) {
        self.settle(sent, None, None, false);
    }

    fn settle(&self, sent: Instant, remaining: Option<Remaining>, policy: Option<Policy>, replied: bool) {
        let now = Instant::now();
        let mut gate = self.gate.lock().expect("gate lock");
        if replied {
            gate.latencies.record(now.saturating_duration_since(sent));
        }
        gate.limiter.done(sent, now);
        let (policy, marks) = gate.heard(policy, now);
        if replied {
            gate.budget.answered(sent, remaining, policy, now, marks);
        } else {
            gate.budget.unanswered(sent, now, marks);
        }
        drop(gate);
        self.news.notify_waiters();
    }

    /// Takes in a 429 to the request let go at `sent`. Its `Ratelimit`
    /// describes the block, not the window, and the budget takes the request
    /// as not counted; the pause it starts is what governs. Its slot of this
    /// run's arrivals is held as if it were counted: a server may count what
    /// it refuses. Returns the account's quota it taught, if it taught one.
    pub fn refused(&self, sent: Instant, policy: Option<Policy>) -> Option<Rate> {
        let mut gate = self.gate.lock().expect("gate lock");
        let now = Instant::now();
        gate.limiter.done(sent, now);
        let (policy, learned) = gate.refused(policy, now);
        gate.budget.refused(policy, now);
        drop(gate);
        self.news.notify_waiters();
        learned
    }

    /// Another run of this credential got a 429 at `at`, by the ledger: the
    /// block is the account's, so every worker here pauses until it ends as
    /// well, and the quota it taught (if any) is this run's too. A lesson is
    /// taken only from a refusal within the learned quota's window (one from
    /// a window long gone may have been another tool's burst, read wrongly),
    /// if it is a quota an API could announce, and no lower than a
    /// [`LEAST_LESSON`]th of the quota as told (not as learned: lessons each
    /// an eighth of the last would ratchet the pace down).
    pub fn peer_refused(&self, at: Instant, until: Instant, learned: Option<Rate>) {
        let now = Instant::now();
        if until > now {
            self.pause_until(until);
        }
        if let Some(learned) = learned.filter(|rate| now.saturating_duration_since(at) < rate.per) {
            let mut gate = self.gate.lock().expect("gate lock");
            let announceable = Policy::paced(learned.count, learned.per).is_some();
            let plausible = learned.per_second() * f64::from(LEAST_LESSON) >= gate.limiter.told().per_second();
            if announceable && plausible && learned.per_second() < gate.limiter.quota().per_second() {
                tracing::warn!(
                    rate = %learned,
                    "another run of this credential was refused below the quota paced at; pacing at what it learned for the rest of the run"
                );
                gate.learn(learned, None, now);
            }
        }
        self.news.notify_waiters();
    }

    /// Holds back every worker for `delay` (never shortening a longer
    /// pause); returns when the pause ends.
    pub fn pause_for(&self, delay: Duration) -> Instant {
        self.pause_until(Instant::now() + delay)
    }

    /// Holds back every worker until `until` (or a later end in force),
    /// said on stderr; returns when the pause ends.
    fn pause_until(&self, until: Instant) -> Instant {
        let until = self.pause.extend_to(until);
        self.notice.say(until, Stall::RateLimited);
        until
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.pause.until()
    }

    /// Sends of this credential by other runs (ended or still running), as
    /// the ledger recorded them: the server counts them for this user, so
    /// they are this user's own history, not an unknown consumer that the
    /// run would keep headroom against.
    pub fn remember(&self, sends: &[Instant]) {
        self.gate.lock().expect("gate lock").budget.remember(sends, Instant::now());
    }

    /// How many other runs with the same credential are running now: each
    /// paces at an equal part of the quota, so together they keep to it.
    pub fn peers(&self, live: u32) {
        self.gate.lock().expect("gate lock").limiter.peers(live, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::pause::LONGEST_WAIT;
    use crate::pacing::testing::{ms, per_second, policy, remaining};

    #[test]
    fn auto_adopts_the_announced_quota_and_a_fixed_rate_does_not() {
        let policy = Some(Policy { quota: 60, window: Duration::from_secs(3) });
        let auto = Pacer::new(Pace::Auto);
        assert_eq!(auto.rate(), Rate::default());
        auto.answered(Instant::now(), None, policy);
        assert_eq!(auto.rate(), Rate { count: 60, per: Duration::from_secs(3) });
        let fixed = Pacer::new(Pace::Fixed("4/s".parse().unwrap()));
        fixed.refused(Instant::now(), policy);
        assert_eq!(fixed.rate(), "4/s".parse().unwrap());
    }

    #[test]
    fn runs_beside_each_other_split_the_quota_and_take_it_back_when_alone() {
        let pacer = Pacer::new(Pace::Auto);
        pacer.answered(Instant::now(), None, policy(1200));
        pacer.peers(2);
        assert_eq!(pacer.rate(), Rate { count: 400, per: Duration::from_secs(300) });
        pacer.peers(0);
        assert_eq!(pacer.rate(), Rate { count: 1200, per: Duration::from_secs(300) });
    }

    /// `workers` tasks that each wait at the pacer once, and say when they
    /// were let go.
    fn waiting(pacer: &std::sync::Arc<Pacer>, workers: usize) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
        let (sent_tx, sent_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..workers {
            let (pacer, sent_tx) = (std::sync::Arc::clone(pacer), sent_tx.clone());
            tokio::spawn(async move { sent_tx.send(pacer.ready().await) });
        }
        sent_rx
    }

    #[tokio::test(start_paused = true)]
    async fn workers_that_see_the_same_free_slot_take_it_once() {
        let pacer = std::sync::Arc::new(Pacer::new("1000/s".parse().unwrap()));
        let start = pacer.ready().await;
        // One left after the reserve.
        pacer.answered(start, remaining(2, 10), policy(3));
        let mut sent_rx = waiting(&pacer, 2);
        let sent = sent_rx.recv().await.unwrap();
        assert!(sent < start + ms(100), "{:?}", sent - start);
        // The other waits out the reset, and then for the answer to the one
        // that went: after a reset, one request asks and the rest listen.
        let reset = start + Duration::from_secs(10);
        tokio::time::sleep_until(reset + ms(500)).await;
        assert!(sent_rx.try_recv().is_err(), "the other still waits");
        pacer.answered(sent, remaining(2, 10), policy(3));
        let other = sent_rx.recv().await.unwrap();
        assert!(other >= reset + ms(500), "{:?}", other - start);
    }

    /// The answer sequence of a run that stalled for a whole window: a
    /// credentials check answered with the full budget, then workers queued
    /// behind the limiter, and one error page carrying a block's header (none
    /// left, reset in a second). The count of one answer is news, not a
    /// verdict for the whole window: once that reset has passed, requests go
    /// again.
    #[tokio::test(start_paused = true)]
    async fn one_answer_that_says_nothing_is_left_stalls_for_its_reset_not_a_window() {
        let pacer = std::sync::Arc::new(Pacer::new(Pace::Auto));
        let start = pacer.ready().await;
        pacer.answered(start, remaining(1199, 300), policy(1200));
        let mut sent_rx = waiting(&pacer, 9);
        let first = sent_rx.recv().await.unwrap();
        tokio::time::sleep(ms(3)).await;
        pacer.answered(first, Some(Remaining { requests: 0, reset: Duration::from_secs(1) }), policy(1200));
        let mut left = 1199;
        for _ in 1..9 {
            let sent = sent_rx.recv().await.unwrap();
            assert!(sent < first + Duration::from_secs(4), "stalled for {:?}", sent - first);
            tokio::time::sleep(ms(3)).await;
            left -= 1;
            pacer.answered(sent, remaining(left, 300), policy(1200));
        }
    }

    /// Sends for `span` on a paused clock, each request answered after
    /// `latency(i)` with the announced `policy` and what it leaves (if the
    /// server `announces`); the server refuses once more than `enforced`
    /// arrived within its window. Returns when each request arrived, and how
    /// many were refused.
    async fn against(
        pacer: std::sync::Arc<Pacer>,
        (policy, announces): (Policy, bool),
        enforced: usize,
        span: Duration,
        latency: fn(usize) -> Duration,
    ) -> (Vec<Instant>, usize) {
        let arrived = std::sync::Arc::new(Mutex::new((Vec::<Instant>::new(), 0usize)));
        let end = Instant::now() + span;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (pacer, arrived) = (std::sync::Arc::clone(&pacer), std::sync::Arc::clone(&arrived));
            workers.spawn(async move {
                loop {
                    let sent = pacer.ready().await;
                    if sent >= end {
                        // Let go unsent: the others still wait on its answer.
                        pacer.unanswered(sent);
                        return;
                    }
                    let n = arrived.lock().unwrap().0.len();
                    tokio::time::sleep(latency(n) / 2).await;
                    let now = Instant::now();
                    let counted = {
                        let (log, refusals) = &mut *arrived.lock().unwrap();
                        let counted = log.iter().filter(|&&at| at + policy.window > now).count();
                        if counted >= enforced {
                            *refusals += 1;
                            None
                        } else {
                            log.push(now);
                            Some(counted + 1)
                        }
                    };
                    tokio::time::sleep(latency(n) / 2).await;
                    match counted {
                        None => {
                            pacer.refused(sent, Some(policy).filter(|_| announces));
                            pacer.pause_for(Duration::from_secs(5));
                        }
                        Some(_) if !announces => pacer.answered(sent, None, None),
                        Some(counted) => {
                            let left = policy.quota.saturating_sub(counted as u32);
                            let reset = Remaining { requests: left, reset: Duration::from_secs(1) };
                            pacer.answered(sent, Some(reset), Some(policy));
                        }
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let arrived = std::mem::take(&mut *arrived.lock().unwrap());
        arrived
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_enforces_less_than_it_announces_refuses_once() {
        let (said, _guard) = Said::listen();
        let policy = Policy { quota: 100, window: Duration::from_secs(20) };
        let pacer = std::sync::Arc::new(Pacer::new(Pace::Auto));
        let (arrived, refused) = against(pacer.clone(), (policy, true), 80, Duration::from_secs(120), |_| ms(40)).await;
        assert_eq!(refused, 1, "one 429, then the learned quota holds");
        assert!(pacer.rate().count < 80, "{}", pacer.rate());
        // Still busy: the learned quota is what is paced at, not a crawl.
        assert!(arrived.len() > 80 * 5, "{} arrived", arrived.len());
        assert!(said.lines().iter().any(|l| l.contains("refused a request below the quota")), "{:?}", said.lines());
    }

    /// `--rate` at the server's real quota, which announces nothing; one
    /// answer in 25 takes 600 ms (half of it on the way there): evenly sent
    /// requests arrive bunched.
    async fn against_a_heavy_tail(window: Duration, span: Duration) -> (Vec<Instant>, usize) {
        let policy = Policy { quota: 20, window };
        let rate = Rate { count: 20, per: window };
        let pacer = std::sync::Arc::new(Pacer::new(Pace::Fixed(rate)));
        let slow = |n: usize| if n % 25 == 24 { ms(600) } else { ms(10) };
        against(pacer, (policy, false), 20, span, slow).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_heavy_tail_of_latency_never_bunches_a_window_of_arrivals_over_the_quota() {
        for window in [Duration::from_secs(1), Duration::from_secs(3)] {
            let (arrived, refused) = against_a_heavy_tail(window, Duration::from_secs(60)).await;
            let most = arrived.iter().map(|&a| arrived.iter().filter(|&&b| b <= a && b + window > a).count()).max();
            assert!(most <= Some(20), "{most:?} arrived within {window:?}");
            assert_eq!(refused, 0, "no window as the server counts it over the quota");
        }
    }

    /// Each slow request holds its own slot longer, not every window the
    /// tail's length: e483c8f paced every 1 s window 590 ms longer (the p99
    /// spread), at most 60 × 20 / 1.64 = 731 sent. Here the slow answers
    /// come in clumps (every request sent while the 25th is on its way is
    /// slow too), a fifth of them: 919.
    #[tokio::test(start_paused = true)]
    async fn a_heavy_tail_of_latency_costs_its_slow_requests_only() {
        let (arrived, _) = against_a_heavy_tail(Duration::from_secs(1), Duration::from_secs(60)).await;
        assert!(arrived.len() as f64 > 20.0 * 60.0 / 1.35, "{} arrived", arrived.len());
    }

    /// What is logged at warning level or above while the guard lives.
    #[derive(Clone, Default)]
    struct Said(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Said {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Said {
        fn listen() -> (Said, tracing::subscriber::DefaultGuard) {
            let said = Said::default();
            let writer = said.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::WARN)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            (said, tracing::subscriber::set_default(subscriber))
        }

        fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_string).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_ready_until_it_ends_and_is_said_once() {
        let (said, _guard) = Said::listen();
        let pacer = Pacer::new("1000/s".parse().unwrap());
        let start = Instant::now();
        pacer.pause_for(Duration::from_secs(90));
        pacer.pause_for(Duration::from_secs(5));
        pacer.ready().await;
        assert!(start.elapsed() >= Duration::from_secs(90));
        assert!(pacer.paused_until().is_none());
        let said = said.lines();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("WARN") && said[0].contains("every worker pauses wait=1m 30s"), "{said:?}");
    }

    /// How long the next request waits after an answer that leaves nothing
    /// until a reset `reset_secs` away, and the warnings said meanwhile.
    async fn wait_when_spent(reset_secs: u64) -> (Duration, Vec<String>) {
        let (said, _guard) = Said::listen();
        let pacer = Pacer::new(Pace::Auto);
        let sent = pacer.ready().await;
        pacer.answered(sent, remaining(0, reset_secs), None);
        let asked = Instant::now();
        pacer.ready().await;
        (asked.elapsed(), said.lines())
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_a_day_away_waits_an_hour_and_says_so() {
        let (waited, said) = wait_when_spent(86_400).await;
        assert_eq!(waited, LONGEST_WAIT, "clipped like a Retry-After");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("WARN") && said[0].contains("budget is spent") && said[0].contains("wait=1h"),
            "{said:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_for_a_spent_budget_goes_unsaid() {
        let (waited, said) = wait_when_spent(2).await;
        assert_eq!(waited, Duration::from_secs(2));
        assert_eq!(said, Vec::<String>::new());
    }

    /// Sixteen workers under `auto` for `span` of paused time, each request
    /// answered after 3 ms by an answer announcing the next of `quotas` per
    /// second. Returns when each request went, and each announcement.
    async fn flapping(quotas: &'static [u32], span: Duration) -> (Vec<Instant>, Vec<(Instant, u32)>) {
        let pacer = std::sync::Arc::new(Pacer::new(Pace::Auto));
        let record = std::sync::Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let end = Instant::now() + span;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (pacer, record) = (std::sync::Arc::clone(&pacer), std::sync::Arc::clone(&record));
            workers.spawn(async move {
                loop {
                    let sent = pacer.ready().await;
                    if sent >= end {
                        pacer.unanswered(sent);
                        return;
                    }
                    record.lock().unwrap().0.push(sent);
                    tokio::time::sleep(ms(3)).await;
                    let quota = {
                        let (_, announced) = &mut *record.lock().unwrap();
                        let quota = quotas[announced.len() % quotas.len()];
                        announced.push((Instant::now(), quota));
                        quota
                    };
                    pacer.answered(sent, None, per_second(quota));
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let record = std::mem::take(&mut *record.lock().unwrap());
        record
    }

    /// Every window of a second that holds a request holds no more than
    /// the tightest quota announced in it before that request.
    fn within_every_announced_quota(sent: &[Instant], announced: &[(Instant, u32)]) {
        let second = Duration::from_secs(1);
        for (i, &at) in sent.iter().enumerate() {
            let in_window = sent[..=i].iter().filter(|&&s| s + second > at).count();
            let tightest =
                announced.iter().filter(|&&(told, _)| told < at && told + second > at).map(|&(_, q)| q).min();
            if let Some(quota) = tightest {
                assert!(in_window <= quota as usize, "{in_window} in the second up to request {i}, quota {quota}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_that_flaps_on_every_answer_never_buys_a_burst() {
        let span = Duration::from_secs(10);
        let (sent, announced) = flapping(&[10, 11], span).await;
        within_every_announced_quota(&sent, &announced);
        // Steadily at the lower quota, and no slower.
        let paced = span.as_secs_f64() * Rate::from(per_second(10).unwrap()).per_second();
        assert!(sent.len() as f64 >= paced * 0.97, "{} sent, {paced:.1} at the pace", sent.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tighter_quota_announced_once_holds_for_its_window() {
        const NOW_AND_THEN: [u32; 16] = [11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 4];
        let (sent, announced) = flapping(&NOW_AND_THEN, Duration::from_secs(10)).await;
        assert!(announced.iter().filter(|(_, q)| *q == 4).count() >= 3, "the tighter quota was tried");
        within_every_announced_quota(&sent, &announced);
    }

    /// Beside a peer, under `auto` with no announced policy (Cloudflare's
    /// split and X- families give no window), the split is of the quota, not
    /// of the last split: answers must not divide the rate again and again.
    #[test]
    fn a_peer_without_an_announced_policy_does_not_ratchet_the_rate_down() {
        let pacer = Pacer::new(Pace::Auto);
        pacer.peers(1);
        assert_eq!(pacer.rate().count, 600, "half of 1200 beside one peer");
        for _ in 0..10 {
            pacer.answered(Instant::now(), None, None);
        }
        pacer.peers(0);
        assert_eq!(pacer.rate().count, 1200, "alone again: {}", pacer.rate());
    }

    /// A 429 that the API's own count explains (another tool filled the
    /// window: the last answer said one was left) is no lying server, and
    /// teaches no quota: the pause covers it.
    #[tokio::test(start_paused = true)]
    async fn a_429_the_count_explains_teaches_no_quota() {
        let policy = Policy { quota: 100, window: Duration::from_secs(20) };
        let pacer = Pacer::new(Pace::Auto);
        for i in 0..30u32 {
            let sent = pacer.ready().await;
            // Another tool bursts 69: the last answer shows it (one left).
            let others = if i == 29 { 69 } else { 0 };
            let left = 100u32.saturating_sub(i + 1 + others).max(1);
            pacer.answered(sent, Some(Remaining { requests: left, reset: Duration::from_secs(10) }), Some(policy));
        }
        pacer.refused(Instant::now(), Some(policy));
        let rate = pacer.rate();
        let shortfall = pacer.gate.lock().unwrap().budget.shortfall();
        assert!(rate.count >= 90 && shortfall == 0, "learned {rate}, shortfall {shortfall}");
    }

    /// After one answer's count has reset, answers without a count (an API
    /// that sends none, an edge's page that carried one once) drop it, or the
    /// run would go one request at a time for the rest of its life.
    #[tokio::test(start_paused = true)]
    async fn a_count_that_stops_coming_does_not_serialize_the_run() {
        let pacer = std::sync::Arc::new(Pacer::new("1000/s".parse().unwrap()));
        let first = pacer.ready().await;
        pacer.answered(first, remaining(500, 1), None);
        let end = Instant::now() + Duration::from_secs(10);
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (pacer, sent) = (pacer.clone(), sent.clone());
            workers.spawn(async move {
                loop {
                    let at = pacer.ready().await;
                    if at >= end {
                        pacer.answered(at, None, None);
                        return;
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(ms(100)).await;
                    pacer.answered(at, None, None);
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        // 8 workers, 100 ms each: 800 in 10 s; serialized: about 100.
        assert!(sent > 400, "{sent} sent in 10 s");
    }

    /// A request that timed out (no answer after 30 s) is no latency sample,
    /// or every window would be paced 30 s longer.
    #[tokio::test(start_paused = true)]
    async fn one_timeout_does_not_widen_the_pace_by_its_length() {
        let pacer = Pacer::new("100/20s".parse().unwrap());
        for _ in 0..50 {
            let sent = pacer.ready().await;
            tokio::time::sleep(ms(50)).await;
            pacer.answered(sent, None, None);
        }
        let sent = pacer.ready().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        pacer.unanswered(sent); // the client's timeout: a transport error
        let spread = pacer.gate.lock().unwrap().latencies.spread();
        assert!(spread < Duration::from_secs(1), "spread {spread:?}");
    }

    /// A stray policy of 1 a day expires without an answer to drop it:
    /// paced at it, nothing goes and no answer comes, so the limiter itself
    /// looks again when it expires, within the API's 300 s window.
    #[tokio::test(start_paused = true)]
    async fn a_stray_day_long_policy_expires_with_the_apis_window_when_nothing_is_in_flight() {
        let api = Some(Policy { quota: 1200, window: Duration::from_secs(300) });
        let pacer = Pacer::new(Pace::Auto);
        for _ in 0..5 {
            let sent = pacer.ready().await;
            pacer.answered(sent, None, api);
        }
        let sent = pacer.ready().await;
        pacer.answered(sent, None, Some(Policy { quota: 1, window: Duration::from_secs(86_400) }));
        let start = Instant::now();
        for i in 0..3 {
            let Ok(sent) = tokio::time::timeout(Duration::from_secs(900), pacer.ready()).await else {
                panic!("request {i} after the stray answer not let go within 900 s (the API's window is 300 s)");
            };
            pacer.answered(sent, None, api);
        }
        assert!(Instant::now() - start < Duration::from_secs(900));
    }

    /// A 429 after the API's own count showed 90 of 100 used (30 of them
    /// another tool's) teaches what the API let through, not this run's 60:
    /// taken from those, the budget would never again let the window hold
    /// more than about 55, the other tool's 30 included. So too when the
    /// 429 is met after the count's reset has passed (a probe, with nothing
    /// in flight to bring a fresher count), if that count had the window
    /// full: the API let 96 through, so it enforces no less, and what is
    /// learned is not this run's 66 (the rest of the run at two thirds).
    #[tokio::test(start_paused = true)]
    async fn a_429_teaches_no_quota_below_what_the_apis_own_count_let_through() {
        let policy = Policy { quota: 100, window: Duration::from_secs(20) };
        // This run's requests, the count's reset, how long after it the
        // 429 comes, and the most that may be learned short of the quota.
        for (ours, reset, after, short) in [(60u32, 10, 0, 15), (66, 1, 2, 10)] {
            let pacer = Pacer::new(Pace::Auto);
            for i in 0..ours {
                let sent = pacer.ready().await;
                let left = 100 - 30 - (i + 1);
                let count = Remaining { requests: left, reset: Duration::from_secs(reset) };
                pacer.answered(sent, Some(count), Some(policy));
            }
            // The other tool spends the rest before this run's next request arrives.
            tokio::time::sleep(Duration::from_secs(after)).await;
            pacer.refused(Instant::now(), Some(policy));
            let rate = pacer.rate();
            let shortfall = pacer.gate.lock().unwrap().budget.shortfall();
            // What was counted, less the 5 % margin.
            assert!(shortfall <= short && rate.count >= 85, "{ours} of ours: learned {rate}, shortfall {shortfall}");
        }
    }

    /// Beside a live peer (each paced at half), a server that announces 100
    /// per 20 s and enforces 80 refuses when the two runs together hold 80,
    /// this run's 40 of them. What is learned is the account's 80, less the
    /// margin: a shortfall from this run's 40 would hold the two together to
    /// 36 a window where 76 are safe.
    #[tokio::test(start_paused = true)]
    async fn a_429_beside_a_peer_learns_no_shortfall_from_this_runs_half_alone() {
        let policy = Policy { quota: 100, window: Duration::from_secs(20) };
        let pacer = Pacer::new(Pace::Auto);
        pacer.peers(1);
        for i in 0..40u32 {
            let sent = pacer.ready().await;
            // The peer's send, through the ledger, and this one's.
            pacer.remember(&[sent]);
            let left = 100 - 2 * (i + 1);
            pacer.answered(sent, Some(Remaining { requests: left, reset: Duration::from_secs(10) }), Some(policy));
        }
        pacer.refused(Instant::now(), Some(policy));
        let shortfall = pacer.gate.lock().unwrap().budget.shortfall();
        assert!(
            shortfall <= 30,
            "shortfall {shortfall}: the two runs together may hold {} of the 80 enforced",
            100 - shortfall - 2
        );
    }

    /// The same right after the peer started: this run sent 70 of the 80
    /// the API counted, the peer 10. The count is the account's, whatever
    /// the parts: this run's answers times the runs ("140") would teach
    /// nothing, and the next window a 429 more.
    #[tokio::test(start_paused = true)]
    async fn a_429_beside_a_peer_that_sent_less_than_its_part_learns_from_the_count() {
        let (pacer, policy) = (Pacer::new(Pace::Auto), Policy { quota: 100, window: Duration::from_secs(20) });
        for i in 0..70u32 {
            let sent = pacer.ready().await;
            if i == 60 {
                pacer.peers(1);
            }
            if i >= 60 {
                pacer.remember(&[sent]);
            }
            let counted = i + 1 + i.saturating_sub(59);
            let left = Remaining { requests: 100 - counted, reset: Duration::from_secs(10) };
            pacer.answered(sent, Some(left), Some(policy));
        }
        let learned = pacer.refused(Instant::now(), Some(policy));
        assert_eq!(learned, Some(Rate { count: 76, per: Duration::from_secs(20) }));
    }

    /// Another run's 429, by the ledger: every worker here pauses until its
    /// block ends, and its lesson is this run's too, if it is from the
    /// quota's window; an older one is not taken.
    #[tokio::test(start_paused = true)]
    async fn another_runs_429_pauses_this_run_and_its_lesson_is_taken_within_its_window() {
        let pacer = std::sync::Arc::new(Pacer::new(Pace::Auto));
        let learned = Rate { count: 76, per: Duration::from_secs(20) };
        let start = Instant::now();
        let old = Pacer::new(Pace::Auto);
        tokio::time::advance(Duration::from_secs(21)).await;
        old.peer_refused(start, start, Some(learned));
        assert_eq!(old.rate(), Rate::default(), "a lesson from a window long gone");
        let now = Instant::now();
        pacer.peer_refused(now, now + Duration::from_secs(5), Some(learned));
        assert_eq!(pacer.rate(), learned);
        let sent = waiting(&pacer, 1).recv().await.unwrap();
        assert_eq!(sent, now + Duration::from_secs(5), "paused until the block ends");
    }

    /// A peer's lesson heard before any policy (the ledger's history is
    /// told at the start, before the credentials check) is read against the
    /// first policy heard: the API's counts are read 24 lower, as for a
    /// lesson heard after it.
    #[tokio::test(start_paused = true)]
    async fn a_peers_lesson_heard_before_the_policy_is_read_against_it() {
        let policy = Policy { quota: 100, window: Duration::from_secs(20) };
        let learned = Rate { count: 76, per: Duration::from_secs(20) };
        let left = Some(Remaining { requests: 99, reset: Duration::from_secs(20) });
        let (early, late) = (Pacer::new(Pace::Auto), Pacer::new(Pace::Auto));
        early.peer_refused(Instant::now(), Instant::now(), Some(learned));
        for pacer in [&early, &late] {
            let sent = pacer.ready().await;
            pacer.answered(sent, left, Some(policy));
        }
        late.peer_refused(Instant::now(), Instant::now(), Some(learned));
        for pacer in [&early, &late] {
            assert_eq!((pacer.rate(), pacer.gate.lock().unwrap().budget.shortfall()), (learned, 24));
        }
    }

    /// A lesson of 76 against 100 per 20 s reads the counts 24 lower, and
    /// stays so when the API announces 1000 over the same window for a while
    /// and then 100 again: read again at every answer, it had become 924,
    /// and out of 100 nothing was left to spend.
    #[tokio::test(start_paused = true)]
    async fn a_lesson_is_read_against_the_policy_once_not_at_every_answer() {
        let over = |quota| Policy { quota, window: Duration::from_secs(20) };
        let (small, big) = (over(100), over(1000));
        let pacer = Pacer::new(Pace::Auto);
        let answer = |requests, policy| (Some(Remaining { requests, reset: Duration::from_secs(20) }), Some(policy));
        let sent = pacer.ready().await;
        let (left, told) = answer(99, small);
        pacer.answered(sent, left, told);
        pacer.peer_refused(Instant::now(), Instant::now(), Some(Rate { count: 76, per: Duration::from_secs(20) }));
        for (left, told) in [answer(990, big), answer(990, big), answer(990, big), answer(95, small)] {
            let sent = pacer.ready().await;
            pacer.answered(sent, left, told);
            tokio::time::advance(Duration::from_secs(11)).await;
        }
        assert_eq!(pacer.gate.lock().unwrap().budget.shortfall(), 24);
    }

    /// A peer's lesson no run could have learned (a garbled ledger line,
    /// another version's) is not taken: below an eighth of the quota as
    /// told, or over a window no API announces (a count of 1 over 2e13 ms
    /// was an interval governor panics on, under the gate's lock).
    #[test]
    fn a_peers_lesson_no_run_could_have_learned_is_not_taken() {
        let now = Instant::now();
        for per in [Duration::from_millis(20_000_000_000_000), Duration::from_millis(999)] {
            let pacer = Pacer::new(Pace::Auto);
            pacer.peer_refused(now, now, Some(Rate { count: 1, per }));
            assert_eq!(pacer.rate(), Rate::default(), "over {per:?}");
        }
        let pacer = Pacer::new(Pace::Auto);
        pacer.answered(now, None, policy(1200));
        pacer.peer_refused(now, now, Some(Rate { count: 149, per: Duration::from_secs(300) }));
        assert_eq!(pacer.rate().count, 1200, "149 of 1200");
        pacer.peer_refused(now, now, Some(Rate { count: 150, per: Duration::from_secs(300) }));
        assert_eq!(pacer.rate().count, 150);
    }

    /// With a count but no announced window (Cloudflare's split family:
    /// `ratelimit-remaining`/`-reset`, no `w`), the count still explains a
    /// 429: after 1170 of 1200 used (another tool's 770 among them) the run
    /// must not learn 380 per 5 minutes from its own 400.
    #[tokio::test(start_paused = true)]
    async fn a_429_the_count_explains_teaches_no_quota_without_an_announced_window() {
        let pacer = Pacer::new(Pace::Auto);
        for i in 0..400u32 {
            let sent = pacer.ready().await;
            let left = 1200 - 770 - (i + 1);
            pacer.answered(sent, Some(Remaining { requests: left, reset: Duration::from_secs(200) }), None);
        }
        pacer.refused(Instant::now(), None);
        let rate = pacer.rate();
        assert!(rate.count >= 1100, "learned {rate} though the API's count had the window at 1170 of 1200");
    }
}
