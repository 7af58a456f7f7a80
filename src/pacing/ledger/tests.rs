use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::credentials::Secret;

const TOKEN: &str = "cfr-ledger-TOKEN-0123456789-do-not-leak";
const ROOT: &str = "https://api.cloudflare.com/client/v4";
/// A wall-clock instant to write entries at, in Unix ms.
const NOW: u64 = 1_764_600_000_000;
const HOUR: u64 = 3_600_000;

fn key() -> Key {
    Key::of(ROOT, &Credentials::Token(Secret::new(TOKEN)))
}

/// A ledger directory of its own, and where it is.
fn state() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("cfrevoke");
    (temp, dir)
}

/// Opens the ledger as a run would, and the sends of other runs it held.
fn open(dir: &Path) -> (Ledger, Vec<u64>) {
    let (ledger, history) = Ledger::open(dir, &key(), NOW).unwrap();
    (ledger, history.sends)
}

fn sends(ms: &[u64]) -> Entries {
    Entries { sends: ms.to_vec(), refusals: Vec::new() }
}

fn ledger_file(dir: &Path) -> PathBuf {
    dir.join(key().file_name())
}

/// A ledger file holding `lines` after a header, as another run left it.
fn written(dir: &Path, lines: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut contents = header(7);
    contents.extend_from_slice(lines.as_bytes());
    std::fs::write(ledger_file(dir), contents).unwrap();
}

#[test]
fn the_state_directory_follows_the_xdg_spec() {
    let home = Some(OsStr::new("/home/ops"));
    let xdg = |value: &str| directory(Some(OsStr::new(value)), home);
    assert_eq!(xdg("/var/state"), Some(PathBuf::from("/var/state/cfrevoke")));
    // Relative or empty: ignored, as the spec says.
    assert_eq!(xdg("state"), Some(PathBuf::from("/home/ops/.local/state/cfrevoke")));
    assert_eq!(xdg(""), Some(PathBuf::from("/home/ops/.local/state/cfrevoke")));
    assert_eq!(directory(None, home), Some(PathBuf::from("/home/ops/.local/state/cfrevoke")));
    assert_eq!(directory(None, Some(OsStr::new("relative"))), None);
    assert_eq!(directory(None, None), None);
}

#[test]
fn a_key_is_a_salted_hash_that_names_no_secret() {
    let key = key();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(key.0.len(), 32);
    assert!(!key.0.contains(TOKEN) && !key.0.contains("do-not-leak"));
    assert!(!hex(&Sha256::digest(TOKEN)).starts_with(&key.0), "not the token's plain hash");
    assert_eq!(Key::of(ROOT, &Credentials::Token(Secret::new(TOKEN))), key, "stable");
    assert_ne!(Key::of("http://127.0.0.1:8080/client/v4", &Credentials::Token(Secret::new(TOKEN))), key);
    let email =
        |email: &str, key: &str| Key::of(ROOT, &Credentials::EmailKey { email: email.into(), key: Secret::new(key) });
    assert_eq!(email("Ops@Example.com", "k1"), email("ops@example.com", "k2"), "the user's quota, whichever key");
    assert_ne!(email("ops@example.com", TOKEN), key);
    // Nor does anything the ledger writes name it.
    let (_temp, dir) = state();
    let (mut ledger, _) = open(&dir);
    ledger.append(&sends(&[NOW]), NOW, PATIENCE).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        assert!(!entry.file_name().to_string_lossy().contains(TOKEN));
        let contents = std::fs::read(entry.path()).unwrap();
        assert!(!String::from_utf8_lossy(&contents).contains(TOKEN));
    }
}

#[test]
fn two_runs_read_each_others_sends_and_not_their_own() {
    let (_temp, dir) = state();
    let (mut first, history) = open(&dir);
    assert_eq!(history, Vec::<u64>::new());
    assert!(first.append(&sends(&[NOW + 2, NOW + 1, NOW + 1]), NOW, PATIENCE).unwrap());
    let (mut second, history) = open(&dir);
    assert_eq!(history, vec![NOW + 1, NOW + 1, NOW + 2], "the first run's sends, oldest first");
    assert_eq!((first.live_peers(), second.live_peers()), (1, 1));
    second.append(&sends(&[NOW + 3]), NOW, PATIENCE).unwrap();
    first.append(&sends(&[NOW + 4]), NOW, PATIENCE).unwrap();
    assert_eq!(
        first.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends),
        Some(vec![NOW + 3]),
        "new since the last read"
    );
    assert_eq!(first.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends), Some(vec![]));
    assert_eq!(second.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends), Some(vec![NOW + 4]));
    drop(second);
    assert_eq!(first.live_peers(), 0, "an ended run is no peer");
}

#[test]
fn a_run_that_crashed_is_no_peer_and_its_lock_file_goes() {
    let (_temp, dir) = state();
    let (ledger, _) = open(&dir);
    // A crashed run's file: its lock went with its process.
    let crashed = dir.join(format!("{}0123456789abcdef.live", key().live_prefix()));
    std::fs::write(&crashed, "").unwrap();
    assert_eq!(ledger.live_peers(), 0);
    assert!(!crashed.exists());
}

#[test]
fn opening_drops_what_is_older_than_an_hour_and_what_cannot_be_read() {
    let (_temp, dir) = state();
    written(&dir, &format!("{} 0123456789abcdef\ngarbage\n{} 0123456789abcdef\n", NOW - 2 * HOUR, NOW - 1000));
    let (_ledger, history) = open(&dir);
    assert_eq!(history, vec![NOW - 1000]);
    let contents = std::fs::read_to_string(ledger_file(&dir)).unwrap();
    assert_eq!(contents.lines().skip(1).collect::<Vec<_>>(), vec![format!("{} 0123456789abcdef", NOW - 1000)]);
}

#[test]
fn a_full_file_is_compacted_and_a_reader_then_gets_only_what_it_had_not_seen() {
    let (_temp, dir) = state();
    let (mut writer, _) = open(&dir);
    let (mut reader, _) = open(&dir);
    let batch: Vec<u64> = (0..1000).map(|i| NOW + i).collect();
    assert!(writer.append(&sends(&batch), NOW, PATIENCE).unwrap());
    assert_eq!(reader.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends).map(|s| s.len()), Some(1000));
    let mut sent = 1000;
    let mut compacted = false;
    while !compacted {
        let before = std::fs::metadata(ledger_file(&dir)).unwrap().len();
        let batch: Vec<u64> = (sent..sent + 1000).map(|i| NOW + i).collect();
        writer.append(&sends(&batch), NOW, PATIENCE).unwrap();
        sent += 1000;
        let after = std::fs::metadata(ledger_file(&dir)).unwrap().len();
        assert!(after <= MAX_BYTES, "{after} bytes");
        compacted = after < before;
    }
    assert!(std::fs::metadata(ledger_file(&dir)).unwrap().len() <= COMPACT_TO);
    // The reader last read 1000; the file now begins far later, and holds
    // the latest batch: the news is everything it kept that is later.
    let news = reader.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends).unwrap();
    assert!(!news.is_empty() && news.iter().all(|&ms| ms >= NOW + 1000), "{} read", news.len());
    assert_eq!(news.last(), Some(&(NOW + sent - 1)));
    assert_eq!(reader.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends), Some(vec![]));
}

#[test]
fn a_writer_that_died_mid_line_costs_only_its_line() {
    let (_temp, dir) = state();
    written(&dir, &format!("{} 0123456789abcdef\n{} 01234", NOW - 5, NOW - 4));
    let (mut ledger, history) = open(&dir);
    assert_eq!(history, vec![NOW - 5]);
    ledger.append(&sends(&[NOW]), NOW, PATIENCE).unwrap();
    let (_other, history) = open(&dir);
    assert_eq!(history, vec![NOW - 5, NOW]);
}

#[test]
fn a_huge_file_is_refused_without_reading_it() {
    let (_temp, dir) = state();
    written(&dir, "");
    std::fs::OpenOptions::new().write(true).open(ledger_file(&dir)).unwrap().set_len(1 << 40).unwrap();
    let started = std::time::Instant::now();
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::TooBig { size: 1_099_511_627_776, .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_file_that_is_not_a_ledger_is_left_alone() {
    let (_temp, dir) = state();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(ledger_file(&dir), "#!/bin/sh\necho this is not a ledger at all\n").unwrap();
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::Foreign { .. }), "{error}");
    assert!(std::fs::read_to_string(ledger_file(&dir)).unwrap().starts_with("#!/bin/sh"));
}

#[test]
fn a_fifo_a_symlink_or_a_directory_at_the_ledger_is_refused_without_waiting() {
    let (temp, dir) = state();
    std::fs::create_dir_all(&dir).unwrap();
    let path = ledger_file(&dir);
    rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::NotRegular { .. }), "{error}");
    std::fs::remove_file(&path).unwrap();
    let elsewhere = temp.path().join("elsewhere");
    std::fs::write(&elsewhere, "keep").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::Symlink { .. }), "{error}");
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::Open { .. }), "{error}");
    // No live file is left behind by a run that could not use the ledger.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![path.file_name().unwrap().to_owned()]);
}

#[test]
fn a_directory_that_is_a_symlink_shared_or_impossible_is_refused() {
    let (temp, dir) = state();
    let real = temp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, &dir).unwrap();
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::Symlink { .. }), "{error}");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = Ledger::open(&real, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::SharedDir { mode: 0o777, .. }), "{error}");
    // A state home that is a file (or on a read-only disk): no directory.
    let file = temp.path().join("file");
    std::fs::write(&file, "").unwrap();
    let error = Ledger::open(&file.join("cfrevoke"), &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::Dir { .. }), "{error}");
}

#[test]
fn a_new_directory_is_private_and_so_are_the_files() {
    let (_temp, dir) = state();
    let (_ledger, _) = open(&dir);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    for entry in std::fs::read_dir(&dir).unwrap() {
        assert_eq!(entry.unwrap().metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn a_write_that_fails_is_an_error() {
    let (_temp, dir) = state();
    let (mut ledger, _) = open(&dir);
    // As on a full or read-only disk: the descriptor cannot write.
    ledger.file = File::open(ledger_file(&dir)).unwrap();
    let error = ledger.append(&sends(&[NOW]), NOW, PATIENCE).err().unwrap();
    assert!(matches!(error, LedgerError::Write { .. }), "{error}");
}

#[test]
fn a_lock_held_elsewhere_is_waited_on_only_as_long_as_asked() {
    let (_temp, dir) = state();
    let (mut ledger, _) = open(&dir);
    let holder = File::open(ledger_file(&dir)).unwrap();
    holder.lock().unwrap();
    assert!(!ledger.append(&sends(&[NOW]), NOW, Duration::ZERO).unwrap());
    assert_eq!(ledger.read_others(NOW, Duration::ZERO).unwrap().map(|e| e.sends), None);
    let error = Ledger::open(&dir, &key(), NOW).err().unwrap();
    assert!(matches!(error, LedgerError::Busy { .. }), "{error}");
    drop(holder);
    assert!(ledger.append(&sends(&[NOW]), NOW, Duration::ZERO).unwrap());
}

#[test]
fn a_file_changed_between_two_reads_is_followed_or_refused() {
    let (_temp, dir) = state();
    let (mut ledger, _) = open(&dir);
    // Replaced by another file: that one is read.
    let replacement = dir.join("replacement");
    let mut contents = header(1);
    contents.extend(line(NOW, b"0123456789abcdef", None));
    std::fs::write(&replacement, contents).unwrap();
    std::fs::rename(&replacement, ledger_file(&dir)).unwrap();
    assert_eq!(ledger.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends), Some(vec![NOW]));
    // Overwritten with something else: refused.
    std::fs::write(ledger_file(&dir), "0123456789012345678901234567890123456789\n").unwrap();
    let error = ledger.read_others(NOW, PATIENCE).err().unwrap();
    assert!(matches!(error, LedgerError::Foreign { .. }), "{error}");
}

/// A 429 goes to the other runs as its own line, with the block's end and
/// the quota it taught, and stays through a compaction; a line of that
/// form with anything out of place is not read.
#[test]
fn a_refusal_reaches_the_other_runs_and_a_garbled_one_is_not_read() {
    let (_temp, dir) = state();
    let (mut first, _) = open(&dir);
    let taught = Refusal { at_ms: NOW + 5, until_ms: NOW + 20_005, learned: Some((76, 20_000)) };
    let blocked = Refusal { at_ms: NOW + 9, until_ms: NOW + 30_000, learned: None };
    let entries = Entries { sends: vec![NOW + 1, NOW + 7], refusals: vec![blocked, taught] };
    assert!(first.append(&entries, NOW, PATIENCE).unwrap());
    let (mut second, history) = Ledger::open(&dir, &key(), NOW).unwrap();
    assert_eq!(history, Entries { sends: vec![NOW + 1, NOW + 7], refusals: vec![taught, blocked] });
    assert!(second.append(&Entries::default(), NOW, PATIENCE).unwrap());
    // A compaction (as a new run's open tidies) keeps them.
    first.compact(first.generation().unwrap(), first.len().unwrap(), Vec::new(), NOW, false).unwrap();
    let (_third, history) = Ledger::open(&dir, &key(), NOW).unwrap();
    assert_eq!(history.refusals, vec![taught, blocked]);

    let (_temp, dir) = state();
    let run = "0123456789abcdef";
    let garbled = [
        format!("{NOW} {run} 429"),
        format!("{NOW} {run} 429 x"),
        format!("{NOW} {run} 429 {NOW} 0/20000"),
        format!("{NOW} {run} 429 {NOW} 76/0"),
        format!("{NOW} {run} 429 {NOW} 76"),
        format!("{NOW} {run} 429 {NOW} 76/20000 more"),
        format!("{NOW} {run} 428 {NOW}"),
        format!("{NOW} {run} 429 {NOW} 4294967296/20000"),
    ];
    written(&dir, &format!("{}\n{NOW} {run} 429 {NOW}\n", garbled.join("\n")));
    let (_ledger, history) = Ledger::open(&dir, &key(), NOW - 1).unwrap();
    assert_eq!(history.refusals, vec![Refusal { at_ms: NOW, until_ms: NOW, learned: None }]);
    assert!(history.sends.is_empty());
}

/// A 429 is told at its request's send, which has its line already: the
/// batch it goes in starts after that one, or a reader that reads the file
/// again whole after a compaction (here, a run's open an hour after the
/// first line) would skip it as seen.
#[test]
fn a_refusal_told_at_a_send_already_read_is_read_after_a_compaction() {
    let (_temp, dir) = state();
    let (mut writer, _) = open(&dir);
    let (mut reader, _) = open(&dir);
    assert!(writer.append(&sends(&[NOW + 1, NOW + 10]), NOW, PATIENCE).unwrap());
    assert_eq!(reader.read_others(NOW, PATIENCE).unwrap().map(|e| e.sends), Some(vec![NOW + 1, NOW + 10]));
    let refusal = Refusal { at_ms: NOW + 10, until_ms: NOW + 300_000, learned: Some((76, 20_000)) };
    assert!(writer.append(&Entries { refusals: vec![refusal], ..Entries::default() }, NOW, PATIENCE).unwrap());
    let later = NOW + 1 + RETENTION.as_millis() as u64;
    let (_third, _) = Ledger::open(&dir, &key(), later).unwrap();
    let news = reader.read_others(later, PATIENCE).unwrap().unwrap();
    assert_eq!(news.refusals, vec![Refusal { at_ms: NOW + 11, ..refusal }]);
}

/// A 429 dated ahead of the clock (written before the clock was set back)
/// is not read, and a compaction drops it: kept, it would block every run
/// that opens until its time came.
#[test]
fn a_refusal_from_the_future_is_neither_read_nor_kept() {
    let (_temp, dir) = state();
    let day = 86_400_000;
    written(&dir, &format!("{} 0123456789abcdef 429 {}\n{NOW} 0123456789abcdef\n", NOW + day, NOW + day + 300_000));
    let (ledger, history) = Ledger::open(&dir, &key(), NOW).unwrap();
    assert_eq!(history, Entries { sends: vec![NOW], refusals: Vec::new() });
    ledger.compact(ledger.generation().unwrap(), ledger.len().unwrap(), Vec::new(), NOW, false).unwrap();
    let contents = std::fs::read_to_string(ledger_file(&dir)).unwrap();
    assert!(!contents.contains(" 429 "), "{contents}");
}
