//! A look at free disk space before the first request. A run that fills the
//! disk stops cleanly and can be resumed, but an operator in an incident
//! would rather free space first than find out halfway through.

use std::path::Path;

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
    fn a_bare_file_name_is_in_the_working_directory() {
        assert!(Room::of(Path::new("out.csv")).is_some_and(|room| room.dir == "."));
    }
}
