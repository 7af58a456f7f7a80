//! The pacer the dispatcher asks before every request: it ties the shared
//! 429 pause, the limiter at the quota in force, and the API's budget
//! together, and takes in what each answer says about the quota.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::budget::{Budget, Marks};
use super::headers::{Policy, Remaining};
use super::limiter::Limiter;
use super::pace::{Pace, Rate};
use super::pause::{Notice, Pause, Stall};

/// The budget and the limiter: every send slot takes both, under one lock.
#[derive(Debug, Default)]
struct Gate {
    budget: Budget,
    limiter: Limiter,
}

impl Gate {
    /// Takes the send slot for a claimed request once the limiter allows
    /// it and the budget's spacing does too; otherwise says when to look
    /// again.
    fn take_slot(&mut self, now: Instant) -> Option<Instant> {
        self.budget.take_slot(now, || self.limiter.take(now))
    }

    /// Takes in the policy an answer (or a 429) carried; what the budget
    /// counts out of is the quota in force.
    fn heard(&mut self, policy: Option<Policy>, now: Instant) -> (Option<Policy>, Marks) {
        self.limiter.heard(policy, now);
        (self.limiter.policy(), Marks::of(self.limiter.rate))
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
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            // The budget is claimed before the send slot is waited for, so
            // that workers queueing for slots never share one free slot of
            // the budget.
            let wait = self.until_news_or(|gate, now| {
                let (budget, marks) = (&mut gate.budget, Marks::of(gate.limiter.rate));
                let at = budget.earliest(now, marks);
                if at <= now {
                    budget.claimed(now, marks);
                    return None;
                }
                if let Some(until) = budget.spent_until(now, marks) {
                    self.notice.say(until, Stall::Spent);
                }
                Some(at)
            });
            if wait.await {
                continue;
            }
            // Claims made before another tool showed up go out at the
            // spacing that leaves it its share, too.
            while self.until_news_or(Gate::take_slot).await {}
            // A 429 seen by another worker while this one waited means the
            // slot it got is not safe to use.
            let budget = &mut self.gate.lock().expect("gate lock").budget;
            if self.paused_until().is_some() {
                budget.abandoned();
                continue;
            }
            budget.let_go();
            return Instant::now();
        }
    }

    /// Asks the gate when to go (`None`: now), and if not now, sleeps
    /// until then or until an answer brings news, whichever is first.
    /// Returns whether it waited.
    async fn until_news_or(&self, ask: impl FnOnce(&mut Gate, Instant) -> Option<Instant>) -> bool {
        // Listening before asking, so news between the two is not missed.
        let news = self.news.notified();
        tokio::pin!(news);
        news.as_mut().enable();
        let Some(at) = ask(&mut self.gate.lock().expect("gate lock"), Instant::now()) else {
            return false;
        };
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = news => {}
        }
        true
    }

    /// Takes in what an answer said about the quota for the request let go
    /// at `sent` (nothing, for a request that got no answer).
    pub fn answered(&self, sent: Instant, remaining: Option<Remaining>, policy: Option<Policy>) {
        let now = Instant::now();
        let mut gate = self.gate.lock().expect("gate lock");
        let (policy, marks) = gate.heard(policy, now);
        gate.budget.answered(sent, remaining, policy, now, marks);
        drop(gate);
        self.news.notify_waiters();
    }

    /// Takes in a 429. Its `Ratelimit` describes the block, not the window,
    /// and the request was not counted; the pause it starts is what governs.
    pub fn refused(&self, policy: Option<Policy>) {
        let mut gate = self.gate.lock().expect("gate lock");
        let (policy, _) = gate.heard(policy, Instant::now());
        gate.budget.settled(policy);
        drop(gate);
        self.news.notify_waiters();
    }

    /// Holds back every worker for `delay` (never shortening a longer pause).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        self.pause.extend_to(until);
        self.notice.say(until, Stall::RateLimited);
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.pause.until()
    }

    /// Sends of this credential by other runs (ended or still running), as the ledger recorded
    /// them: the server counts them for this user, so they are this user's own history, not an
    /// unknown consumer.
    pub fn remember(&self, sends: &[Instant]) {
        self.gate.lock().expect("gate lock").budget.remember(sends, Instant::now());
    }

    /// How many other runs with the same credential are running now: the quota is shared fairly.
    pub fn peers(&self, live: u32) {
        self.gate.lock().expect("gate lock").budget.peers(live);
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
        fixed.refused(policy);
        assert_eq!(fixed.rate(), "4/s".parse().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_that_see_the_same_free_slot_take_it_once() {
        let pacer = std::sync::Arc::new(Pacer::new("1000/s".parse().unwrap()));
        let start = pacer.ready().await;
        // One left after the reserve.
        pacer.answered(start, remaining(2, 10), policy(3));
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let (pacer, sent_tx) = (std::sync::Arc::clone(&pacer), sent_tx.clone());
            tokio::spawn(async move { sent_tx.send(pacer.ready().await) });
        }
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
}
