//! The ledger: when a credential's recent requests went, as every run on
//! this machine recorded them, and which of those runs are still going. The
//! server counts a credential's requests whichever process sent them, so a
//! run that starts right after another, or beside it, must know the other's
//! sends to know what is left of the quota; without them, they look like an
//! unknown consumer's.
//!
//! One file per credential, named by a salted hash of it ([`Key`]): a header
//! line, then one `<unix ms> <run id>` line per send, and one `<unix ms>
//! <run id> 429 <until> [<count>/<window ms>]` line per 429 (the account is
//! blocked for every run, and what it taught of the quota is every run's),
//! appended under the file's advisory lock. Beside it, one lock file per
//! live run, held while the run lives: the kernel drops a crashed run's
//! lock, so a run that finds such a file unlocked knows its owner is gone.
//!
//! The ledger only makes pacing better, so nothing here may hang or fail a
//! run: every lock is tried rather than waited on, no file is read past
//! `MAX_BYTES`, and every problem is an error the caller warns of once
//! before it goes on without the ledger.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags};
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;

/// Sends older than this are dropped when a file is compacted. No window
/// that matters is longer: Cloudflare's is five minutes, and the longest
/// wait the pacer honours (a reset, a `Retry-After`) is clipped to this, so
/// an older send can bear on no budget.
const RETENTION: Duration = super::pause::LONGEST_WAIT;

/// How far ahead of this machine's clock a 429 may be dated and still be
/// read: one further ahead was written under a clock that has since been
/// set back (or by no run at all), and would block every run for as long
/// as the line is kept, which is until its time comes.
const AHEAD: u64 = 5_000;

/// Whether a line dated `ms` is a 429 from the future as of `now_ms`.
fn from_the_future(ms: u64, refusal: Option<&Refusal>, now_ms: u64) -> bool {
    refusal.is_some() && ms > now_ms.saturating_add(AHEAD)
}

/// The most a ledger file ever holds. An hour at Cloudflare's quota (1200
/// per five minutes) is 14,400 sends, about 450 KB; a run at a far higher
/// `--rate` keeps its latest sends, as a full file drops its oldest.
const MAX_BYTES: u64 = 1 << 20;

/// What compaction brings a full file down to, so that the next one is far off.
const COMPACT_TO: u64 = MAX_BYTES / 2;

/// How long opening the ledger and the last append wait for another run's
/// lock, which it holds only while it appends a batch.
pub const PATIENCE: Duration = Duration::from_millis(200);

/// The header: a format tag, then the file's generation in hex, which every
/// compaction bumps so that a reader knows to read the file again from the top.
const MAGIC: &[u8] = b"cfrevoke-ledger 1 ";
const HEADER_LEN: usize = MAGIC.len() + 16 + 1;

/// A run's id in the ledger: 16 lowercase hex digits.
type RunId = [u8; 16];

/// A 429 a run got, at `at_ms` (Unix ms): the API blocks the account, not
/// the run, until `until_ms`; and if the refusal showed the API to enforce
/// less than it announced, the account's quota it learned, `(count, window
/// in ms)`, which spares every other run of the credential its own 429 to
/// learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub at_ms: u64,
    pub until_ms: u64,
    pub learned: Option<(u32, u64)>,
}

/// Lines of the ledger: sends (Unix ms) and refusals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    pub sends: Vec<u64>,
    pub refusals: Vec<Refusal>,
}

/// Where ledgers live: `$XDG_STATE_HOME/cfrevoke`, or
/// `$HOME/.local/state/cfrevoke` when XDG_STATE_HOME is unset, empty or
/// relative (the XDG spec says a relative one is to be ignored). `None`
/// without either. The values are parameters: the caller reads the
/// environment, so tests never touch the real one.
pub fn directory(xdg_state_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let base = match absolute(xdg_state_home) {
        Some(state) => state.to_path_buf(),
        None => absolute(home)?.join(".local/state"),
    };
    Some(base.join("cfrevoke"))
}

fn absolute(value: Option<&OsStr>) -> Option<&Path> {
    value.map(Path::new).filter(|path| path.is_absolute())
}

/// A credential's name in the ledger directory. A hash, so the secret is
/// never written; salted with a prefix of cfrevoke's own, so the name is not
/// the token's plain SHA-256 that a lookup table of leaked tokens could
/// match. The API root is in it because the quota is that API's: a sandbox
/// and Cloudflare do not share one. A global key's quota is its user's, so
/// the email (not the key) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn of(api_root: &str, credentials: &Credentials) -> Key {
        let mut hash = Sha256::new();
        hash.update(b"cfrevoke ledger key 1\0");
        hash.update(api_root.as_bytes());
        match credentials {
            Credentials::Token(token) => {
                hash.update(b"\0token\0");
                hash.update(token.expose().as_bytes());
            }
            Credentials::EmailKey { email, .. } => {
                hash.update(b"\0email\0");
                hash.update(email.to_ascii_lowercase().as_bytes());
            }
        }
        Key(hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    fn file_name(&self) -> String {
        format!("{}.ledger", self.0)
    }

    fn live_prefix(&self) -> String {
        format!("{}-", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot use the directory {}: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },
    #[error("others may write to the directory {} (mode {mode:04o}), so what it holds cannot be trusted", path.display())]
    SharedDir { path: PathBuf, mode: u32 },
    #[error("{} is a symbolic link", path.display())]
    Symlink { path: PathBuf },
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{} holds {size} bytes, more than a ledger ever does ({MAX_BYTES})", path.display())]
    TooBig { path: PathBuf, size: u64 },
    #[error("{} is not a cfrevoke ledger", path.display())]
    Foreign { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("another process keeps {} locked", path.display())]
    Busy { path: PathBuf },
}

/// One credential's ledger, open for this run, which it marks live until dropped.
pub struct Ledger {
    dir: File,
    dir_path: PathBuf,
    key: Key,
    path: PathBuf,
    file: File,
    run: RunId,
    live_name: String,
    /// The live file, locked for as long as this run lives.
    _live: File,
    /// The generation the file had when last read, and how far it was read;
    /// `None`: read it whole next time.
    read: Option<(u64, u64)>,
    /// The latest send read of each other run: after a compaction the file
    /// is read again whole, and only what is later is news.
    seen: HashMap<RunId, u64>,
    /// The latest send this run wrote: its lines never go back in time.
    last: u64,
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Gone before its lock is released, so no reader takes it for a crashed run's.
        let _ = rustix::fs::unlinkat(&self.dir, self.live_name.as_str(), AtFlags::empty());
    }
}

/// A lock held on a file until dropped.
struct Held<'a>(&'a File);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Takes `file`'s lock, waiting at most `patience` for another process to
/// let go of it: `None` if it still holds it then.
fn lock(file: &File, exclusive: bool, patience: Duration) -> io::Result<Option<Held<'_>>> {
    let start = std::time::Instant::now();
    loop {
        let tried = if exclusive { file.try_lock() } else { file.try_lock_shared() };
        match tried {
            Ok(()) => return Ok(Some(Held(file))),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) if start.elapsed() >= patience => return Ok(None),
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// `error` from opening `path`, a symbolic link said as such.
fn open_error(path: &Path, error: io::Error) -> LedgerError {
    match error.raw_os_error() {
        Some(libc::ELOOP) => LedgerError::Symlink { path: path.to_path_buf() },
        _ => LedgerError::Open { path: path.to_path_buf(), source: error },
    }
}

/// Creates the directory (0700, as the XDG spec asks) if need be, and
/// opens it: not through a symbolic link, and not one others may write to.
fn open_dir(dir: &Path) -> Result<File, LedgerError> {
    let failed = |source| LedgerError::Dir { path: dir.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(failed)?;
    if std::fs::symlink_metadata(dir).map_err(failed)?.is_symlink() {
        return Err(LedgerError::Symlink { path: dir.to_path_buf() });
    }
    // Not followed here either, should it have become a link since.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir_file = File::from(rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| failed(e.into()))?);
    let mode = dir_file.metadata().map_err(failed)?.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(LedgerError::SharedDir { path: dir.to_path_buf(), mode });
    }
    Ok(dir_file)
}

/// Opens (creating, 0600) the regular file `name` in `dir`, without waiting
/// on a FIFO or following a link, and no bigger than a ledger gets.
fn open_file(dir: &File, name: &str, path: &Path) -> Result<File, LedgerError> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let opened =
        rustix::fs::openat(dir, name, flags, Mode::RUSR | Mode::WUSR).map_err(|e| open_error(path, e.into()))?;
    let file = File::from(opened);
    let meta = file.metadata().map_err(|source| LedgerError::Read { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(LedgerError::NotRegular { path: path.to_path_buf() });
    }
    if meta.len() > MAX_BYTES {
        return Err(LedgerError::TooBig { path: path.to_path_buf(), size: meta.len() });
    }
    Ok(file)
}

/// A line's time, run and refusal (`None`: a send), if it is a line this
/// module writes.
fn parse(line: &[u8]) -> Option<(u64, RunId, Option<Refusal>)> {
    let mut fields = line.split(|&b| b == b' ');
    let ms = number(fields.next()?)?;
    let run = fields.next()?;
    let hex = run.len() == 16 && run.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex {
        return None;
    }
    let refusal = match fields.next() {
        None => None,
        Some(b"429") => {
            let until_ms = number(fields.next()?)?;
            let learned = match fields.next() {
                None => None,
                Some(quota) => {
                    let slash = quota.iter().position(|&b| b == b'/')?;
                    let count = u32::try_from(number(&quota[..slash])?).ok().filter(|&c| c > 0)?;
                    let window = number(&quota[slash + 1..]).filter(|&w| w > 0)?;
                    Some((count, window))
                }
            };
            Some(Refusal { at_ms: ms, until_ms, learned })
        }
        Some(_) => return None,
    };
    if fields.next().is_some() {
        return None;
    }
    Some((ms, run.try_into().ok()?, refusal))
}

/// Decimal digits, no sign and no more than a u64 holds.
fn number(digits: &[u8]) -> Option<u64> {
    let plain = !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit);
    plain.then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
}

fn line(ms: u64, run: &RunId, refusal: Option<&Refusal>) -> Vec<u8> {
    let mut line = format!("{ms} ").into_bytes();
    line.extend_from_slice(run);
    if let Some(refusal) = refusal {
        line.extend_from_slice(format!(" 429 {}", refusal.until_ms).as_bytes());
        if let Some((count, window)) = refusal.learned {
            line.extend_from_slice(format!(" {count}/{window}").as_bytes());
        }
    }
    line.push(b'\n');
    line
}

fn header(generation: u64) -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(format!("{generation:016x}\n").as_bytes());
    header
}

/// The oldest send time kept as of `now_ms`.
fn horizon(now_ms: u64) -> u64 {
    now_ms.saturating_sub(RETENTION.as_millis() as u64)
}

impl Ledger {
    /// Opens the ledger of `key` in `dir` (creating both if need be), marks
    /// this run live, drops lines older than `RETENTION` (an hour), and returns
    /// what other runs recorded since then.
    pub fn open(dir: &Path, key: &Key, now_ms: u64) -> Result<(Ledger, Entries), LedgerError> {
        let dir_file = open_dir(dir)?;
        let path = dir.join(key.file_name());
        let file = open_file(&dir_file, &key.file_name(), &path)?;
        let run: RunId = format!("{:016x}", rand::random::<u64>()).into_bytes().try_into().expect("16 hex digits");
        let live_name = format!("{}{}.live", key.live_prefix(), String::from_utf8_lossy(&run));
        let live = live::mark(&dir_file, dir, &live_name)?;
        let mut ledger = Ledger {
            dir: dir_file,
            dir_path: dir.to_path_buf(),
            key: key.clone(),
            path,
            file,
            run,
            live_name,
            _live: live,
            read: None,
            seen: HashMap::new(),
            last: 0,
        };
        let busy = || LedgerError::Busy { path: dir.join(key.file_name()) };
        ledger.write(&Entries::default(), now_ms, PATIENCE, true)?.then_some(()).ok_or_else(busy)?;
        let history = ledger.read_others(now_ms, PATIENCE)?.ok_or_else(busy)?;
        Ok((ledger, history))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends this run's `entries`; `false` if another process held the
    /// lock for longer than `patience`, and nothing was written.
    pub fn append(&mut self, entries: &Entries, now_ms: u64, patience: Duration) -> Result<bool, LedgerError> {
        self.write(entries, now_ms, patience, false)
    }

    /// What other runs recorded since the last read (or, at first, all of
    /// the last `RETENTION`); `None` if another process held the lock for
    /// longer than `patience`.
    pub fn read_others(&mut self, now_ms: u64, patience: Duration) -> Result<Option<Entries>, LedgerError> {
        self.follow()?;
        let Some(_held) = lock(&self.file, false, patience).map_err(|e| self.read_error(e))? else {
            return Ok(None);
        };
        let len = self.len()?;
        if len < HEADER_LEN as u64 {
            // Emptied by someone: whatever comes next is read whole.
            self.read = None;
            return Ok(Some(Entries::default()));
        }
        let generation = self.generation()?;
        let (from, whole) = match self.read {
            Some((read, offset)) if read == generation && offset <= len => (offset, false),
            _ => (HEADER_LEN as u64, true),
        };
        let bytes = self.bytes(from, len)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut others = Entries::default();
        // Against what was seen before this read: a run sends several in one millisecond.
        let mut latest = HashMap::new();
        for (ms, run, refusal) in bytes[..complete].split(|&b| b == b'\n').filter_map(parse) {
            let seen = || self.seen.get(&run).is_some_and(|&seen| ms <= seen);
            if run == self.run || ms <= horizon(now_ms) || (whole && seen()) {
                continue;
            }
            if from_the_future(ms, refusal.as_ref(), now_ms) {
                continue;
            }
            latest.entry(run).and_modify(|at: &mut u64| *at = (*at).max(ms)).or_insert(ms);
            match refusal {
                Some(refusal) => others.refusals.push(refusal),
                None => others.sends.push(ms),
            }
        }
        for (run, ms) in latest {
            self.seen.entry(run).and_modify(|at| *at = (*at).max(ms)).or_insert(ms);
        }
        self.read = Some((generation, from + complete as u64));
        self.seen.retain(|_, &mut ms| ms > horizon(now_ms));
        Ok(Some(others))
    }

    /// How many other runs of this credential are live now.
    pub fn live_peers(&self) -> u32 {
        live::count(&self.dir, &self.dir_path, &self.key.live_prefix(), &self.live_name)
    }

    /// Writes `entries` under the exclusive lock, starting the file if it is
    /// empty and compacting it when it would grow past [`MAX_BYTES`] (or,
    /// with `tidy`, when it holds anything stale or unreadable).
    fn write(&mut self, entries: &Entries, now_ms: u64, patience: Duration, tidy: bool) -> Result<bool, LedgerError> {
        self.follow()?;
        let Some(_held) = lock(&self.file, true, patience).map_err(|e| self.write_error(e))? else {
            return Ok(false);
        };
        let sends = entries.sends.iter().map(|&ms| (ms, None));
        let mut sorted: Vec<(u64, Option<&Refusal>)> =
            sends.chain(entries.refusals.iter().map(|r| (r.at_ms, Some(r)))).collect();
        sorted.sort_unstable_by_key(|&(ms, _)| ms);
        let mut lines = Vec::with_capacity(sorted.len() * 32);
        // Each batch starts after the last one ended: a reader that reads
        // the file again whole (after a compaction) skips what is no later
        // than the latest it had of this run, and a line of a later batch
        // at that same millisecond (a 429 told at its request's send) would
        // never be read.
        let mut floor = if self.last == 0 { 0 } else { self.last + 1 };
        for (ms, refusal) in sorted {
            floor = floor.max(ms);
            self.last = floor;
            lines.extend(line(floor, &self.run, refusal));
        }
        let len = self.len()?;
        if len < HEADER_LEN as u64 {
            // New, or emptied by someone: started over at a generation no
            // reader has seen, and read whole next time.
            self.read = None;
            return self.rewrite(rand::random(), lines).map(|()| true);
        }
        let generation = self.generation()?;
        if tidy || len + lines.len() as u64 > MAX_BYTES {
            return self.compact(generation, len, lines, now_ms, tidy).map(|()| true);
        }
        if lines.is_empty() {
            return Ok(true);
        }
        if self.bytes(len - 1, len)? != b"\n" {
            // A writer that died mid-line: its fragment stays a line of its own.
            lines.insert(0, b'\n');
        }
        self.file.write_all_at(&lines, len).map_err(|e| self.write_error(e))?;
        Ok(true)
    }

    /// Rewrites the file keeping only the lines of the last [`RETENTION`],
    /// then `lines`, as many of the latest as fit in [`COMPACT_TO`]. With
    /// `tidy` the file is left alone if there is nothing to drop.
    fn compact(&self, generation: u64, len: u64, lines: Vec<u8>, now_ms: u64, tidy: bool) -> Result<(), LedgerError> {
        let bytes = self.bytes(HEADER_LEN as u64, len)?;
        let mut kept = Vec::with_capacity(bytes.len() + lines.len());
        let mut dropped = false;
        for raw in bytes.split(|&b| b == b'\n').filter(|raw| !raw.is_empty()) {
            match parse(raw) {
                Some((ms, run, refusal)) if ms > horizon(now_ms) && !from_the_future(ms, refusal.as_ref(), now_ms) => {
                    kept.extend(line(ms, &run, refusal.as_ref()));
                }
                _ => dropped = true,
            }
        }
        if tidy && !dropped && lines.is_empty() {
            return Ok(());
        }
        kept.extend(lines);
        let room = (COMPACT_TO as usize).saturating_sub(HEADER_LEN);
        if kept.len() > room {
            let cut = kept.len() - room;
            let start = kept[cut..].iter().position(|&b| b == b'\n').map_or(kept.len(), |i| cut + i + 1);
            kept.drain(..start);
        }
        self.rewrite(generation.wrapping_add(1), kept)
    }

    /// The file as a header of `generation` and `body`, rewritten in place:
    /// other runs hold locks on this inode, so it is never replaced.
    fn rewrite(&self, generation: u64, body: Vec<u8>) -> Result<(), LedgerError> {
        let mut contents = header(generation);
        contents.extend(body);
        self.file.write_all_at(&contents, 0).map_err(|e| self.write_error(e))?;
        self.file.set_len(contents.len() as u64).map_err(|e| self.write_error(e))
    }

    /// Reopens the ledger if its name now points at another file than the
    /// one open (replaced or removed by another process).
    fn follow(&mut self) -> Result<(), LedgerError> {
        let open = self.file.metadata().map_err(|e| self.read_error(e))?;
        let on_disk = rustix::fs::statat(&self.dir, self.key.file_name().as_str(), AtFlags::SYMLINK_NOFOLLOW);
        if on_disk.is_ok_and(|st| st.st_dev == open.dev() && st.st_ino == open.ino()) {
            return Ok(());
        }
        self.file = open_file(&self.dir, &self.key.file_name(), &self.path)?;
        self.read = None;
        Ok(())
    }

    fn len(&self) -> Result<u64, LedgerError> {
        let len = self.file.metadata().map_err(|e| self.read_error(e))?.len();
        if len > MAX_BYTES {
            return Err(LedgerError::TooBig { path: self.path.clone(), size: len });
        }
        Ok(len)
    }

    /// The generation in the file's header.
    fn generation(&self) -> Result<u64, LedgerError> {
        let header = self.bytes(0, HEADER_LEN as u64)?;
        let foreign = || LedgerError::Foreign { path: self.path.clone() };
        let hex = header.strip_prefix(MAGIC).and_then(|rest| rest.strip_suffix(b"\n")).ok_or_else(foreign)?;
        let hex = std::str::from_utf8(hex).map_err(|_| foreign())?;
        u64::from_str_radix(hex, 16).map_err(|_| foreign())
    }

    /// The bytes from `from` to `to` (at most [`MAX_BYTES`] apart, since the
    /// length was checked), fewer if the file is shorter by now.
    fn bytes(&self, from: u64, to: u64) -> Result<Vec<u8>, LedgerError> {
        let mut bytes = vec![0; to.saturating_sub(from) as usize];
        let mut filled = 0;
        while filled < bytes.len() {
            match self.file.read_at(&mut bytes[filled..], from + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }

    fn read_error(&self, source: io::Error) -> LedgerError {
        LedgerError::Read { path: self.path.clone(), source }
    }

    fn write_error(&self, source: io::Error) -> LedgerError {
        LedgerError::Write { path: self.path.clone(), source }
    }
}

mod live;
#[cfg(test)]
mod tests;
