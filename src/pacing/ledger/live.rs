//! Which runs of a credential are live: each holds the lock of a file of
//! its own for as long as it lives. The kernel lets go of a crashed run's
//! lock, so a file found unlocked was left by a run that is gone.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::LedgerError;

/// Entries of the directory looked at when counting live runs: a directory
/// of millions costs no more than this.
const MAX_DIR_ENTRIES: usize = 4096;

/// Creates this run's live file, locked, under its final name: it is locked
/// under a temporary name first, so no reader ever sees it unlocked.
pub(super) fn mark(dir: &File, dir_path: &Path, name: &str) -> Result<File, LedgerError> {
    let temporary = format!(".{name}.new");
    let failed = |source: io::Error| LedgerError::Open { path: dir_path.join(name), source };
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file = File::from(
        rustix::fs::openat(dir, temporary.as_str(), flags, Mode::RUSR | Mode::WUSR).map_err(|e| failed(e.into()))?,
    );
    let renamed = file.try_lock().map_err(|e| match e {
        TryLockError::Error(e) => e,
        TryLockError::WouldBlock => io::ErrorKind::WouldBlock.into(),
    });
    let renamed = renamed.and_then(|()| Ok(rustix::fs::renameat(dir, temporary.as_str(), dir, name)?));
    if let Err(e) = renamed {
        let _ = rustix::fs::unlinkat(dir, temporary.as_str(), AtFlags::empty());
        return Err(failed(e));
    }
    Ok(file)
}

/// How many files named `prefix`...`.live` in `dir`, other than `own`, are
/// locked by their runs. An unlocked one is removed.
pub(super) fn count(dir: &File, dir_path: &Path, prefix: &str, own: &str) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir_path) else {
        return 0;
    };
    let mut live = 0;
    for entry in entries.take(MAX_DIR_ENTRIES).flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) || !name.ends_with(".live") || name == own {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let Ok(opened) = rustix::fs::openat(dir, name, flags, Mode::empty()) else { continue };
        let file = File::from(opened);
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        match file.try_lock_shared() {
            Err(TryLockError::WouldBlock) => live += 1,
            Ok(()) => {
                let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
            }
            Err(TryLockError::Error(_)) => {}
        }
    }
    live
}
