//! The results CSV: one row per unique pair, written and flushed the moment its
//! outcome is known, so a crash loses at most the rows still in flight.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::input::resume::{self, Finished, ScanError};
use crate::outcome::{column, Outcome};

/// One line of the results file. Field order is the column order.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub line: u64,
    pub zone_id: String,
    pub certificate_id: String,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub cert_status: Option<&'static str>,
    pub attempts: u32,
    pub error_code: Option<i64>,
    pub error_message: String,
    pub cf_ray: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// With `--verify`: the status read back after the DELETE.
    pub verified_status: Option<&'static str>,
    /// Which run wrote the row (resumed runs append to one file).
    pub run_id: String,
}

/// Counts per outcome, for the summary, the log and the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub revoked: u64,
    pub already_revoked: u64,
    pub not_found: u64,
    pub failed: u64,
    pub invalid: u64,
    pub reactivated: u64,
    pub too_late: u64,
    pub pending_revocation: u64,
    pub active: u64,
}

impl Tally {
    pub fn add(&mut self, outcome: Outcome) {
        *self.slot(outcome) += 1;
    }

    pub fn get(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Revoked => self.revoked,
            Outcome::AlreadyRevoked => self.already_revoked,
            Outcome::NotFound => self.not_found,
            Outcome::Failed => self.failed,
            Outcome::Invalid => self.invalid,
            Outcome::Reactivated => self.reactivated,
            Outcome::TooLate => self.too_late,
            Outcome::PendingRevocation => self.pending_revocation,
            Outcome::Active => self.active,
        }
    }

    fn slot(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Revoked => &mut self.revoked,
            Outcome::AlreadyRevoked => &mut self.already_revoked,
            Outcome::NotFound => &mut self.not_found,
            Outcome::Failed => &mut self.failed,
            Outcome::Invalid => &mut self.invalid,
            Outcome::Reactivated => &mut self.reactivated,
            Outcome::TooLate => &mut self.too_late,
            Outcome::PendingRevocation => &mut self.pending_revocation,
            Outcome::Active => &mut self.active,
        }
    }

    pub fn total(&self) -> u64 {
        self.succeeded() + self.unsuccessful()
    }

    fn succeeded(&self) -> u64 {
        self.revoked + self.already_revoked + self.reactivated
    }

    /// Rows that did not do what was asked of them.
    pub fn unsuccessful(&self) -> u64 {
        self.not_found + self.failed + self.invalid + self.too_late + self.pending_revocation + self.active
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(
        "the results file {} already exists and cfrevoke never overwrites results: pass --resume to continue \
         that run (rows already revoked are skipped), or --output with a new path",
        .0.display()
    )]
    Exists(PathBuf),
    #[error(
        "another cfrevoke process is writing {} right now (it holds the file's lock); wait for it to finish, \
         or write elsewhere with --output",
        .0.display()
    )]
    Locked(PathBuf),
    #[error("--resume: there is no results file {} to resume; run without --resume to start", .0.display())]
    NothingToResume(PathBuf),
    #[error("cannot open the results file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write the results file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} is not a cfrevoke results file ({why}); refusing to append to it", path.display())]
    Foreign { path: PathBuf, why: String },
    #[error(
        "{} is not a regular file (a FIFO, a device or a socket): results must go to a file that can be locked, \
         fsynced and read back by --resume; pass --output with a file path",
        .0.display()
    )]
    NotRegular(PathBuf),
}

/// The default results path: `<input stem>.<kind>.csv` beside the input.
pub fn default_path(input: &Path, kind: &str) -> Option<PathBuf> {
    let stem = input.file_stem()?.to_str()?;
    Some(input.with_file_name(format!("{stem}.{kind}.csv")))
}

/// An open results file, locked for as long as it is open so that a second
/// process can never write into it (see [`ResultsError::Locked`]).
pub struct ResultsFile {
    path: PathBuf,
    csv: csv::Writer<BufWriter<File>>,
    synced: Instant,
    replaced: bool,
}

/// How often rows written to the operating system are also forced to disk.
/// Each row reaches the OS (and so survives a crash of the process) as soon
/// as it is flushed; this bounds what a power cut can take.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Takes the file's advisory lock, or explains who has it.
fn lock(file: &File, path: &Path) -> Result<(), ResultsError> {
    file.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => ResultsError::Locked(path.to_path_buf()),
        TryLockError::Error(source) => ResultsError::Open { path: path.to_path_buf(), source },
    })
}

/// Opens an existing results file for reading and appending. Only a regular
/// file will do: a FIFO would block the open (or the read of `--resume`)
/// until some other process came along, and a device cannot be locked,
/// fsynced or read back.
fn open_existing(path: &Path, refused: impl FnOnce(io::Error) -> ResultsError) -> Result<File, ResultsError> {
    let file =
        crate::output::disk::open_without_waiting(OpenOptions::new().read(true).write(true), path).map_err(refused)?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(ResultsError::NotRegular(path.to_path_buf())),
        Err(source) => Err(ResultsError::Open { path: path.to_path_buf(), source }),
    }
}

/// Whether a results file records nothing: it is empty, or holds the header
/// or the start of it (a run cut off while writing it). Such a file can be
/// started over without losing a row.
fn holds_no_rows(file: &mut File) -> io::Result<bool> {
    let header = format!("{}\n", HEADER.join(","));
    if file.metadata()?.len() > header.len() as u64 {
        return Ok(false);
    }
    let mut text = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut text)?;
    Ok(header.as_bytes().starts_with(&text))
}

impl ResultsFile {
    /// Starts a new results file. Created with `create_new`, so an existing
    /// file is never overwritten, even one that appears between check and
    /// open. The one exception holds no results: a file that is empty or
    /// holds only (part of) the header, as a run that stopped before its
    /// first row leaves it, is started over.
    pub fn create(path: &Path) -> Result<Self, ResultsError> {
        let (file, replaced) = match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(file) => {
                lock(&file, path)?;
                (file, false)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A file that is in use says more than one that merely exists.
                let mut existing = open_existing(path, |source| match source.kind() {
                    // Not ours to replace, whatever it holds.
                    io::ErrorKind::PermissionDenied => ResultsError::Exists(path.to_path_buf()),
                    _ => ResultsError::Open { path: path.to_path_buf(), source },
                })?;
                lock(&existing, path)?;
                if !holds_no_rows(&mut existing).map_err(|source| ResultsError::Open { path: path.into(), source })? {
                    return Err(ResultsError::Exists(path.to_path_buf()));
                }
                (existing, true)
            }
            Err(source) => return Err(ResultsError::Open { path: path.to_path_buf(), source }),
        };
        let mut results = ResultsFile::wrap(path, file);
        results.replaced = replaced;
        results.start()?;
        Ok(results)
    }

    /// Writes the header to an empty (or emptied) file. It goes out at once
    /// so even a run that stops early leaves a readable file, and write
    /// errors show before the first request.
    fn start(&mut self) -> Result<(), ResultsError> {
        let file = self.csv.get_ref().get_ref();
        file.set_len(0).and_then(|()| (&*file).seek(SeekFrom::Start(0))).map_err(|e| self.write_error(e))?;
        self.csv.write_record(HEADER).map_err(|e| self.write_error(e.into()))?;
        self.flush()
    }

    /// Reopens an earlier run's results for appending: locks it, repairs a
    /// torn last line, and reports which pairs are already final (their
    /// outcome is one of `finals`). A file that holds no rows yet is started
    /// over, header and all.
    pub fn resume(path: &Path, finals: &[Outcome]) -> Result<(Self, Finished), ResultsError> {
        let mut file = open_existing(path, |source| match source.kind() {
            io::ErrorKind::NotFound => ResultsError::NothingToResume(path.to_path_buf()),
            _ => ResultsError::Open { path: path.to_path_buf(), source },
        })?;
        lock(&file, path)?;
        if holds_no_rows(&mut file).map_err(|source| ResultsError::Open { path: path.into(), source })? {
            let mut results = ResultsFile::wrap(path, file);
            results.start()?;
            return Ok((results, Finished::default()));
        }
        let finished = resume::scan(&mut file, &HEADER, finals).map_err(|e| match e {
            ScanError::Io(source) => ResultsError::Open { path: path.to_path_buf(), source },
            ScanError::Foreign(why) => ResultsError::Foreign { path: path.to_path_buf(), why },
        })?;
        file.seek(SeekFrom::End(0)).map_err(|source| ResultsError::Open { path: path.to_path_buf(), source })?;
        Ok((ResultsFile::wrap(path, file), finished))
    }

    /// Whether [`ResultsFile::create`] started over a file that held no rows.
    pub fn replaced(&self) -> bool {
        self.replaced
    }

    fn wrap(path: &Path, file: File) -> Self {
        ResultsFile {
            path: path.to_path_buf(),
            csv: csv::WriterBuilder::new().has_headers(false).from_writer(BufWriter::new(file)),
            synced: Instant::now(),
            replaced: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row to the buffer; [`ResultsFile::flush`] hands it to the
    /// operating system.
    pub fn append(&mut self, row: &ResultRow) -> Result<(), ResultsError> {
        self.csv.serialize(row).map_err(|e| self.write_error(e.into()))
    }

    /// Hands every row appended so far to the operating system, in one write
    /// call when they fit the buffer.
    pub fn flush(&mut self) -> Result<(), ResultsError> {
        self.csv.flush().map_err(|e| self.write_error(e))
    }

    /// Whether it is time to force the rows to disk (about once a second).
    pub fn sync_due(&self) -> bool {
        self.synced.elapsed() >= SYNC_EVERY
    }

    /// Forces the rows to stable storage.
    pub fn sync(&mut self) -> Result<(), ResultsError> {
        self.flush()?;
        self.csv.get_ref().get_ref().sync_data().map_err(|e| self.write_error(e))?;
        self.synced = Instant::now();
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> ResultsError {
        ResultsError::Write { path: self.path.clone(), source }
    }
}

/// Written explicitly because `serialize` only writes a header with the first
/// row, and the file must be readable before then.
pub const HEADER: [&str; 14] = [
    column::LINE,
    column::ZONE_ID,
    column::CERTIFICATE_ID,
    column::OUTCOME,
    column::HTTP_STATUS,
    "cert_status",
    "attempts",
    "error_code",
    "error_message",
    "cf_ray",
    "finished_at",
    "duration_ms",
    "verified_status",
    "run_id",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn row(outcome: Outcome) -> ResultRow {
        ResultRow {
            line: 2,
            zone_id: "z".into(),
            certificate_id: "c".into(),
            outcome,
            http_status: Some(200),
            cert_status: Some("pending_revocation"),
            attempts: 1,
            error_code: None,
            error_message: String::new(),
            cf_ray: "ray".into(),
            finished_at: "2026-11-27T00:00:00Z".into(),
            duration_ms: 12,
            verified_status: None,
            run_id: "r1".into(),
        }
    }

    #[test]
    fn rows_are_on_disk_as_soon_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut file = ResultsFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", HEADER.join(",")));
        file.append(&row(Outcome::AlreadyRevoked)).unwrap();
        file.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "2,z,c,already_revoked,200,pending_revocation,1,,,ray,2026-11-27T00:00:00Z,12,,r1"
        );
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "precious").unwrap();
        let err = ResultsFile::create(&path).err().unwrap();
        assert!(matches!(err, ResultsError::Exists(_)));
        assert!(err.to_string().contains("--output") && err.to_string().contains("--resume"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn a_file_without_rows_is_started_over_with_or_without_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let header = format!("{}\n", HEADER.join(","));
        for left in ["", "line,zone_id,cert", header.as_str()] {
            std::fs::write(&path, left).unwrap();
            let file = ResultsFile::create(&path).unwrap();
            assert!(file.replaced(), "{left:?}");
            drop(file);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), header);
            std::fs::write(&path, left).unwrap();
            let (_file, finished) = ResultsFile::resume(&path, &[Outcome::Revoked]).unwrap();
            assert!(finished.is_empty());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), header, "{left:?}");
        }
        let one_row = format!("{header}2,z,c,revoked\n");
        std::fs::write(&path, &one_row).unwrap();
        assert!(matches!(ResultsFile::create(&path), Err(ResultsError::Exists(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), one_row);
    }

    #[test]
    fn only_a_regular_file_takes_results() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo reads nothing else.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(matches!(ResultsFile::create(&fifo), Err(ResultsError::NotRegular(_))));
        assert!(matches!(ResultsFile::resume(&fifo, &[Outcome::Revoked]), Err(ResultsError::NotRegular(_))));
        assert!(matches!(ResultsFile::create(Path::new("/dev/null")), Err(ResultsError::NotRegular(_))));
    }

    #[test]
    fn default_path_sits_beside_the_input() {
        assert_eq!(default_path(Path::new("/x/certs.csv"), "results").unwrap(), PathBuf::from("/x/certs.results.csv"));
    }

    #[test]
    fn tally_counts_per_outcome() {
        let mut tally = Tally::default();
        for o in [Outcome::Revoked, Outcome::Revoked, Outcome::Failed, Outcome::Invalid] {
            tally.add(o);
        }
        assert_eq!((tally.revoked, tally.total(), tally.unsuccessful()), (2, 4, 2));
    }
}
