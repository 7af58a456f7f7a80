//! The run's side of the ledger ([`crate::pacing::ledger`]): at the start,
//! what other runs with this credential sent lately goes to the pacer; while
//! the run lives, every request the dispatcher lets go is noted at once and
//! appended in batches by one task, which also hands the pacer what the
//! other live runs sent since it last looked, and how many they are. A send
//! never waits on a disk, and a ledger that fails is said once, in one line,
//! and the run goes on without it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::escape;
use crate::pacing::ledger::{Entries, Key, Ledger, LedgerError, Refusal, PATIENCE};
use crate::pacing::{Pacer, Rate, LONGEST_WAIT};

/// Who is told what the ledger says: the pacer, or a test's recorder.
pub trait Listener: Send + Sync + 'static {
    fn remember(&self, sends: &[Instant]);
    fn peers(&self, live: u32);
    /// Another run got a 429 at `at`; the account is blocked until `until`.
    fn refused(&self, at: Instant, until: Instant, learned: Option<Rate>);
}

impl Listener for Pacer {
    fn remember(&self, sends: &[Instant]) {
        Pacer::remember(self, sends);
    }

    fn peers(&self, live: u32) {
        Pacer::peers(self, live);
    }

    fn refused(&self, at: Instant, until: Instant, learned: Option<Rate>) {
        Pacer::peer_refused(self, at, until, learned);
    }
}

/// How often the task appends and reads.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Sends are batched this long: one write per batch, not per send.
    pub append: Duration,
    /// Other runs' sends and the live runs are looked at this often: their
    /// batches arrive no faster.
    pub read: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing { append: Duration::from_millis(250), read: Duration::from_secs(1) }
    }
}

/// What the dispatcher noted and the task has not yet appended.
#[derive(Default)]
struct Pending {
    sends: Vec<Instant>,
    refusals: Vec<Refusal>,
    /// The latest end of a block noted: a retry's pause that ends no later,
    /// and teaches nothing, is no news to the other runs.
    told_until: u64,
}

/// What the dispatcher and the task share.
struct Shared {
    pending: Mutex<Pending>,
    /// `None` once it failed (or the run ended): nothing more is written.
    ledger: Mutex<Option<Ledger>>,
    /// Whether sends are still worth noting.
    on: AtomicBool,
    /// Ends the task.
    done: CancellationToken,
    /// A moment on both clocks, to write tokio's instants as wall-clock
    /// times: taken once, so this run's times never go back.
    anchor: (Instant, SystemTime),
}

impl Shared {
    /// Unix ms of a send.
    fn wall_ms(&self, sent: Instant) -> u64 {
        let (instant, wall) = self.anchor;
        let at = match sent.checked_duration_since(instant) {
            Some(after) => wall + after,
            None => wall - instant.duration_since(sent),
        };
        unix_ms(at)
    }

    /// Says why the ledger is given up, once: the ledger is dropped with it.
    fn give_up(&self, ledger: &mut Option<Ledger>, error: &LedgerError) {
        self.on.store(false, Ordering::Relaxed);
        self.done.cancel();
        *ledger = None;
        tracing::warn!("{}", warning(error));
    }

    /// Gives the ledger up because another process keeps it locked.
    fn stuck(&self) {
        let mut ledger = self.ledger.lock().expect("ledger lock");
        if let Some(path) = ledger.as_ref().map(|open| open.path().to_path_buf()) {
            self.give_up(&mut ledger, &LedgerError::Busy { path });
        }
    }

    /// Appends what is pending, waiting `patience` for the lock. With the
    /// ledger's lock taken first, an append in progress is never overtaken
    /// by the last one. Returns whether the lock was had.
    fn append(&self, patience: Duration) -> bool {
        let mut ledger = self.ledger.lock().expect("ledger lock");
        let Some(open) = ledger.as_mut() else { return true };
        let (sends, refusals) = {
            let mut pending = self.pending.lock().expect("pending lock");
            (std::mem::take(&mut pending.sends), std::mem::take(&mut pending.refusals))
        };
        if sends.is_empty() && refusals.is_empty() {
            return true;
        }
        let entries = Entries { sends: sends.iter().map(|&sent| self.wall_ms(sent)).collect(), refusals };
        match open.append(&entries, unix_ms(SystemTime::now()), patience) {
            Ok(true) => true,
            Ok(false) => {
                let mut pending = self.pending.lock().expect("pending lock");
                pending.sends.splice(0..0, sends);
                pending.refusals.splice(0..0, entries.refusals);
                false
            }
            Err(error) => {
                self.give_up(&mut ledger, &error);
                true
            }
        }
    }

    /// Hands `listener` what other runs sent since the last look, and how
    /// many are live. Returns whether the lock was had.
    fn look(&self, listener: &dyn Listener) -> bool {
        let mut ledger = self.ledger.lock().expect("ledger lock");
        let Some(open) = ledger.as_mut() else { return true };
        let now_wall = unix_ms(SystemTime::now());
        match open.read_others(now_wall, Duration::ZERO) {
            Ok(Some(entries)) => {
                tell(listener, &entries, now_wall);
                listener.peers(open.live_peers());
                true
            }
            Ok(None) => false,
            Err(error) => {
                self.give_up(&mut ledger, &error);
                true
            }
        }
    }
}

/// How many looks or appends in a row may find the ledger locked by another
/// process before it is given up: a run holds the lock only while it writes
/// a batch, so one that keeps it this long is stuck or hostile.
const BUSY_TIMES: u32 = 40;

/// The dispatcher's end of the ledger: every send let go is noted here.
/// Dropped with the dispatcher, it appends the last batch and ends the
/// task, and the run is no longer live.
pub struct Sends {
    shared: Arc<Shared>,
}

impl Sends {
    pub fn record(&self, sent: Instant) {
        if self.shared.on.load(Ordering::Relaxed) {
            self.shared.pending.lock().expect("pending lock").sends.push(sent);
        }
    }

    /// A 429 at `at`: the account is blocked until `until`, and it may
    /// have taught the account's quota.
    pub fn refused(&self, at: Instant, until: Instant, learned: Option<Rate>) {
        if !self.shared.on.load(Ordering::Relaxed) {
            return;
        }
        let until_ms = self.shared.wall_ms(until);
        let mut pending = self.shared.pending.lock().expect("pending lock");
        if learned.is_none() && until_ms <= pending.told_until {
            return;
        }
        pending.told_until = pending.told_until.max(until_ms);
        // The window in whole milliseconds, rounded up: never a faster pace.
        let learned = learned.map(|rate| (rate.count, rate.per.as_nanos().div_ceil(1_000_000) as u64));
        pending.refusals.push(Refusal { at_ms: self.shared.wall_ms(at), until_ms, learned });
    }
}

impl Drop for Sends {
    fn drop(&mut self) {
        self.shared.done.cancel();
        if !self.shared.append(PATIENCE) {
            self.shared.stuck();
        }
        self.shared.ledger.lock().expect("ledger lock").take();
    }
}

/// Opens the ledger of `key` in `dir`, tells `listener` what it holds, and
/// starts the task on `runtime`; `None` (said once) if the ledger cannot be
/// used.
pub fn start(
    runtime: &tokio::runtime::Handle,
    dir: &Path,
    key: &Key,
    listener: Arc<dyn Listener>,
    timing: Timing,
) -> Option<Sends> {
    let now_wall = unix_ms(SystemTime::now());
    let (ledger, history) = match Ledger::open(dir, key, now_wall) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!("{}", warning(&error));
            return None;
        }
    };
    let peers = ledger.live_peers();
    tracing::debug!(
        "ledger: {} earlier sends, {peers} live peers, {} 429s ({})",
        history.sends.len(),
        history.refusals.len(),
        escape::server_text(&ledger.path().display().to_string())
    );
    tell(listener.as_ref(), &history, now_wall);
    listener.peers(peers);
    let now = Instant::now();
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        ledger: Mutex::new(Some(ledger)),
        on: AtomicBool::new(true),
        done: CancellationToken::new(),
        anchor: (now, SystemTime::now()),
    });
    runtime.spawn(watch(Arc::clone(&shared), listener, timing));
    Some(Sends { shared })
}

/// Appends and looks, each on its own beat, until the run ends or the
/// ledger is given up.
async fn watch(shared: Arc<Shared>, listener: Arc<dyn Listener>, timing: Timing) {
    let beat = |every: Duration| {
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    };
    let (mut append, mut look) = (beat(timing.append), beat(timing.read));
    let mut busy = 0;
    loop {
        let had_lock = tokio::select! {
            () = shared.done.cancelled() => return,
            _ = append.tick() => shared.append(Duration::ZERO),
            _ = look.tick() => shared.look(listener.as_ref()),
        };
        busy = if had_lock { 0 } else { busy + 1 };
        if busy == BUSY_TIMES {
            return shared.stuck();
        }
    }
}

/// The one line said when the ledger cannot be used, escaped: the path
/// came from the environment.
fn warning(error: &LedgerError) -> String {
    escape::server_text(&format!(
        "the ledger of recent sends cannot be used ({error}); going on without it, so other runs with this \
         credential are not counted"
    ))
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A send recorded at `ms` (Unix ms) as tokio's instant, given both clocks
/// now. One "in the future" (another clock, skewed) is taken as now; one
/// from before this clock began is dropped.
fn to_instant(ms: u64, now_wall: u64, now: Instant) -> Option<Instant> {
    now.checked_sub(Duration::from_millis(now_wall.saturating_sub(ms)))
}

/// Hands `listener` what other runs recorded, as of `now_wall`.
fn tell(listener: &dyn Listener, entries: &Entries, now_wall: u64) {
    let now = Instant::now();
    let sends: Vec<Instant> = entries.sends.iter().filter_map(|&ms| to_instant(ms, now_wall, now)).collect();
    if !sends.is_empty() {
        listener.remember(&sends);
    }
    for refusal in &entries.refusals {
        let Some(at) = to_instant(refusal.at_ms, now_wall, now) else { continue };
        // The block as long as it was said to last from the 429, no longer
        // than the longest wait honoured.
        let block = Duration::from_millis(refusal.until_ms.saturating_sub(refusal.at_ms)).min(LONGEST_WAIT);
        let learned = refusal.learned.map(|(count, ms)| Rate { count, per: Duration::from_millis(ms) });
        listener.refused(at, at + block, learned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a listener was told.
    #[derive(Default)]
    struct Told {
        remembered: Mutex<Vec<Instant>>,
        peers: Mutex<Vec<u32>>,
        refused: Mutex<Vec<(Instant, Instant, Option<Rate>)>>,
    }

    impl Listener for Told {
        fn remember(&self, sends: &[Instant]) {
            self.remembered.lock().unwrap().extend_from_slice(sends);
        }

        fn peers(&self, live: u32) {
            self.peers.lock().unwrap().push(live);
        }

        fn refused(&self, at: Instant, until: Instant, learned: Option<Rate>) {
            self.refused.lock().unwrap().push((at, until, learned));
        }
    }

    fn key() -> Key {
        Key::of(
            "http://127.0.0.1:1/client/v4",
            &crate::credentials::Credentials::Token(crate::credentials::Secret::new("t")),
        )
    }

    fn now_ms() -> u64 {
        unix_ms(SystemTime::now())
    }

    /// The ledger task started for a run, in `dir`, and what it tells.
    fn started(dir: &Path) -> (Arc<Told>, Sends) {
        let told = Arc::new(Told::default());
        let handle = tokio::runtime::Handle::current();
        let sends = start(&handle, dir, &key(), Arc::clone(&told) as Arc<dyn Listener>, Timing::default()).unwrap();
        (told, sends)
    }

    #[test]
    fn a_send_in_the_future_is_now_and_one_in_the_past_is_as_long_ago() {
        let now = Instant::now();
        assert_eq!(to_instant(10_000 + 3_600_000, 10_000, now), Some(now), "clock skew");
        assert_eq!(to_instant(7_500, 10_000, now), now.checked_sub(Duration::from_millis(2_500)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_runs_sends_reach_the_pacer_and_this_runs_reach_the_file() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cfrevoke");
        let (mut earlier, _) = Ledger::open(&dir, &key(), now_ms()).unwrap();
        earlier.append(&Entries { sends: vec![now_ms() - 1_000], ..Entries::default() }, now_ms(), PATIENCE).unwrap();
        drop(earlier);
        let (told, sends) = started(&dir);
        let started = Instant::now();
        // The run before, ended: its send is this user's history, and no peer.
        assert_eq!(told.remembered.lock().unwrap().len(), 1);
        assert_eq!(*told.peers.lock().unwrap(), vec![0]);
        let (mut second, history) = Ledger::open(&dir, &key(), now_ms()).unwrap();
        assert_eq!(history.sends.len(), 1);
        second
            .append(&Entries { sends: vec![now_ms(), now_ms() + 1], ..Entries::default() }, now_ms(), PATIENCE)
            .unwrap();
        sends.record(Instant::now());
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let remembered = told.remembered.lock().unwrap().clone();
        assert_eq!(remembered.len(), 3, "the second run's two sends");
        assert!(remembered[1..].iter().all(|&at| at + Duration::from_secs(1) > started), "sent about now");
        assert_eq!(told.peers.lock().unwrap().last(), Some(&1), "the second run is live");
        // This run's send was appended within the batch interval.
        assert_eq!(second.read_others(now_ms(), PATIENCE).unwrap().map(|e| e.sends.len()), Some(1));
        // The last batch is appended when the run ends, and it is live no more.
        sends.record(Instant::now());
        drop(sends);
        assert_eq!(second.read_others(now_ms(), PATIENCE).unwrap().map(|e| e.sends.len()), Some(1));
        assert_eq!(second.live_peers(), 0);
    }

    /// This run's 429 goes to the file with the next batch, and another
    /// run's reaches the listener: when, until when (on this run's clock, no
    /// further off than the longest wait honoured) and its lesson. A
    /// retry's pause that ends no later and teaches nothing is not written.
    #[tokio::test(start_paused = true)]
    async fn a_429_reaches_the_other_runs_and_theirs_reach_the_pacer() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cfrevoke");
        let (told, sends) = started(&dir);
        let (mut other, _) = Ledger::open(&dir, &key(), now_ms()).unwrap();
        let now = Instant::now();
        let learned = Rate { count: 76, per: Duration::from_secs(20) };
        sends.refused(now, now + Duration::from_secs(20), Some(learned));
        sends.refused(now, now + Duration::from_secs(20), None);
        sends.refused(now, now + Duration::from_secs(25), None);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let written = other.read_others(now_ms(), PATIENCE).unwrap().unwrap().refusals;
        assert_eq!(written.len(), 2, "{written:?}");
        assert_eq!(written[0].learned, Some((76, 20_000)));
        assert_eq!((written[1].learned, written[1].until_ms - written[0].until_ms), (None, 5_000));

        let wall = now_ms();
        let theirs = [
            Refusal { at_ms: wall, until_ms: wall + 30_000, learned: Some((50, 20_000)) },
            Refusal { at_ms: wall, until_ms: wall + 10 * 86_400_000, learned: None },
        ];
        other.append(&Entries { refusals: theirs.to_vec(), ..Entries::default() }, wall, PATIENCE).unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let heard = told.refused.lock().unwrap().clone();
        assert_eq!(heard.len(), 2, "{heard:?}");
        let blocked = |i: usize| heard[i].1 - heard[i].0;
        assert!(blocked(0).abs_diff(Duration::from_secs(30)) < Duration::from_millis(100), "{:?}", blocked(0));
        assert_eq!(heard[0].2, Some(Rate { count: 50, per: Duration::from_secs(20) }));
        assert!(blocked(1) <= LONGEST_WAIT && heard[1].2.is_none(), "{:?}", blocked(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ledger_that_fails_mid_run_is_given_up_and_sends_are_no_longer_kept() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cfrevoke");
        let (told, sends) = started(&dir);
        // Another process puts a directory where the file was.
        let path = dir.join(
            std::fs::read_dir(&dir)
                .unwrap()
                .find_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.ends_with(".ledger").then_some(name)
                })
                .unwrap(),
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        sends.record(Instant::now());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(sends.shared.ledger.lock().unwrap().is_none(), "given up");
        assert!(sends.shared.done.is_cancelled(), "the task ends");
        sends.record(Instant::now());
        assert!(sends.shared.pending.lock().unwrap().sends.is_empty());
        assert_eq!(*told.peers.lock().unwrap(), vec![0], "told nothing more");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ledger_another_process_keeps_locked_is_given_up_not_waited_on() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cfrevoke");
        let (told, sends) = started(&dir);
        let path = sends.shared.ledger.lock().unwrap().as_ref().unwrap().path().to_path_buf();
        let holder = std::fs::File::open(&path).unwrap();
        holder.lock().unwrap();
        sends.record(Instant::now());
        // Forty tries in a row, four appends and one look a second.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(sends.shared.ledger.lock().unwrap().is_some(), "still trying");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(sends.shared.ledger.lock().unwrap().is_none(), "given up");
        assert_eq!(*told.peers.lock().unwrap(), vec![0], "no look got through");
    }

    #[test]
    fn the_warning_is_one_line_with_the_path_escaped() {
        let error = LedgerError::Busy { path: "/tmp/state\n\u{1b}[31mcfrevoke".into() };
        let said = warning(&error);
        assert!(!said.contains('\n') && !said.contains('\u{1b}'), "{said}");
        assert!(said.contains("going on without it"), "{said}");
    }
}
