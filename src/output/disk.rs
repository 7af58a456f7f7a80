//! The files a run reads and writes, looked at before the first request:
//! that no two of them are one file, and whether their disks have room. A
//! run that fills the disk stops cleanly and can be resumed, but an operator
//! in an incident would rather free space first than find out halfway
//! through.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

/// Opens `path` as `options` say, without waiting on it: a FIFO that nobody
/// reads fails at once (`ENXIO`) instead of hanging the run, and one nobody
/// writes to opens so that its type can be checked. Reads and writes then
/// block as usual, so a slow reader loses nothing.
pub fn open_without_waiting(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.custom_flags(OFlags::NONBLOCK.bits() as i32).open(path)?;
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
    Ok(file)
}

/// Refuses two `(name, path)` of `files` that are one file on disk, by any
/// path: the same name, a symbolic link or a hard link. `name` says which
/// flag gave the path, for the message.
pub fn ensure_distinct(files: &[(String, &Path)]) -> Result<(), String> {
    let ids: Vec<FileId> = files.iter().map(|(_, path)| FileId::of(path)).collect();
    for (i, id) in ids.iter().enumerate() {
        if let Some(j) = ids[..i].iter().position(|earlier| *earlier == *id) {
            return Err(format!(
                "{} and {} are the same file: writing one would destroy the other. Give each a path of its own; \
                 nothing was sent.",
                files[j].0, files[i].0
            ));
        }
    }
    Ok(())
}

/// What makes a file itself. One that exists is its device and inode, which
/// every name, link and hard link shares. One that does not exist yet is the
/// path it will be created at, symbolic links followed.
#[derive(Debug, PartialEq, Eq)]
enum FileId {
    Exists { dev: u64, ino: u64 },
    Missing(PathBuf),
}

impl FileId {
    fn of(path: &Path) -> FileId {
        match std::fs::metadata(path) {
            Ok(meta) => FileId::Exists { dev: meta.dev(), ino: meta.ino() },
            Err(_) => FileId::Missing(will_be_created_at(path)),
        }
    }
}

/// Where a file that does not exist yet will appear: dangling symbolic
/// links followed to their end (as `open` would, up to the kernel's limit
/// of 40), and the directory made canonical.
fn will_be_created_at(path: &Path) -> PathBuf {
    let mut path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        // An absolute target replaces the whole path; a relative one is
        // read from the link's own directory.
        path = path.parent().unwrap_or(Path::new("/")).join(target);
    }
    match (path.parent().map(Path::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => path,
    }
}

/// Generous sizes per row, from sandbox runs with faults: a results row
/// takes about 180 bytes, a certificate's JSON log events about 750.
const RESULTS_PER_ROW: u64 = 256;
const LOG_PER_ROW: u64 = 1024;

/// Where the outputs of `rows` rows will not fit: one message per
/// filesystem short of space. A filesystem that cannot be asked is taken
/// to have room; this is a warning, not a gate.
pub fn shortfalls(rows: u64, results: &Path, log: Option<&Path>) -> Vec<String> {
    let mut needs: Vec<(Room, u64)> = Vec::new();
    let outputs = [Some((results, RESULTS_PER_ROW)), log.map(|log| (log, LOG_PER_ROW))];
    for (path, per_row) in outputs.into_iter().flatten() {
        let Some(room) = Room::of(path) else {
            continue;
        };
        let need = rows.saturating_mul(per_row);
        match needs.iter_mut().find(|(known, _)| known.filesystem == room.filesystem) {
            Some((_, total)) => *total = total.saturating_add(need),
            None => needs.push((room, need)),
        }
    }
    needs
        .into_iter()
        .filter(|(room, need)| room.free < *need)
        .map(|(room, need)| {
            format!(
                "the results and logs of {rows} rows need about {}, and {} has {} free: the run will stop when the \
                 disk fills (free some space, then run again with --resume)",
                megabytes(need),
                room.dir,
                megabytes(room.free)
            )
        })
        .collect()
}

/// Free space on the filesystem a file will be written to.
struct Room {
    dir: String,
    filesystem: u64,
    free: u64,
}

impl Room {
    fn of(file: &Path) -> Option<Room> {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let stat = rustix::fs::statvfs(dir).ok()?;
        Some(Room {
            dir: dir.display().to_string(),
            filesystem: stat.f_fsid,
            free: stat.f_bavail.saturating_mul(stat.f_frsize),
        })
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_fits_and_an_impossible_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("out.csv");
        let log = dir.path().join("run.log");
        assert!(shortfalls(10, &results, Some(&log)).is_empty());
        // No disk has room for the logs of u64::MAX rows; both files share
        // one filesystem, so one message.
        let short = shortfalls(u64::MAX, &results, Some(&log));
        assert_eq!(short.len(), 1, "{short:?}");
        assert!(short[0].contains("--resume") && short[0].contains(&dir.path().display().to_string()), "{short:?}");
    }

    #[test]
    fn one_file_by_any_path_is_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("in.csv"), "x").unwrap();
        std::fs::hard_link(at("in.csv"), at("hard.csv")).unwrap();
        std::os::unix::fs::symlink(at("in.csv"), at("soft.csv")).unwrap();
        std::os::unix::fs::symlink("later.csv", at("dangling.csv")).unwrap();
        std::fs::create_dir(at("sub")).unwrap();
        let check = |a: &str, b: &str| {
            let (a, b) = (at(a), at(b));
            ensure_distinct(&[("A".to_string(), a.as_path()), ("B".to_string(), b.as_path())])
        };
        for same in ["in.csv", "hard.csv", "soft.csv", "sub/../in.csv"] {
            let refused = check("in.csv", same).unwrap_err();
            assert!(refused.starts_with("A and B are the same file"), "{refused}");
        }
        // Files still to be created: by name, and through a dangling link.
        assert!(check("out.csv", "sub/../out.csv").is_err());
        assert!(check("dangling.csv", "later.csv").is_err());
        assert!(check("in.csv", "out.csv").is_ok() && check("out.csv", "log.jsonl").is_ok());
        assert!(check("dangling.csv", "out.csv").is_ok());
    }

    #[test]
    fn a_bare_file_name_is_in_the_working_directory() {
        assert!(Room::of(Path::new("out.csv")).is_some_and(|room| room.dir == "."));
    }
}
