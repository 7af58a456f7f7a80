//! The results CSV: one row per unique pair, written and flushed the moment its
//! outcome is known, so a crash loses at most the rows still in flight.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What happened to one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Revoked,
    AlreadyRevoked,
    NotFound,
    Failed,
    Invalid,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound, Outcome::Failed, Outcome::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Revoked => "revoked",
            Outcome::AlreadyRevoked => "already_revoked",
            Outcome::NotFound => "not_found",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
        }
    }

    /// Whether the certificate is, as far as the API says, no longer usable.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Revoked | Outcome::AlreadyRevoked)
    }
}

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
}

/// Counts per outcome, for the summary, the log and the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub revoked: u64,
    pub already_revoked: u64,
    pub not_found: u64,
    pub failed: u64,
    pub invalid: u64,
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
        }
    }

    fn slot(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Revoked => &mut self.revoked,
            Outcome::AlreadyRevoked => &mut self.already_revoked,
            Outcome::NotFound => &mut self.not_found,
            Outcome::Failed => &mut self.failed,
            Outcome::Invalid => &mut self.invalid,
        }
    }

    pub fn total(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.get(*o)).sum()
    }

    /// Rows that did not end in a revoked certificate.
    pub fn unsuccessful(&self) -> u64 {
        self.not_found + self.failed + self.invalid
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("the results file {} already exists; cfrevoke never overwrites results: pass --output with a new path, or move the old file away", .0.display())]
    Exists(PathBuf),
    #[error("cannot create the results file {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write the results file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// The default results path: `<input stem>.<kind>.csv` beside the input.
pub fn default_path(input: &Path, kind: &str) -> Option<PathBuf> {
    let stem = input.file_stem()?.to_str()?;
    Some(input.with_file_name(format!("{stem}.{kind}.csv")))
}

/// An open results file. Created with `create_new`, so an existing file is
/// never overwritten, even one that appears between the check and the open.
pub struct ResultsFile {
    path: PathBuf,
    csv: csv::Writer<BufWriter<File>>,
}

impl ResultsFile {
    pub fn create(path: &Path) -> Result<Self, ResultsError> {
        let file =
            OpenOptions::new().write(true).create_new(true).open(path).map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => ResultsError::Exists(path.to_path_buf()),
                _ => ResultsError::Create { path: path.to_path_buf(), source },
            })?;
        let mut results = ResultsFile {
            path: path.to_path_buf(),
            csv: csv::WriterBuilder::new().has_headers(false).from_writer(BufWriter::new(file)),
        };
        // The header goes out at once so even a run that stops early leaves a
        // readable file, and write errors show before the first request.
        results.csv.write_record(HEADER).map_err(|e| results.write_error(e.into()))?;
        results.flush()?;
        Ok(results)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row and hands it to the operating system.
    pub fn write(&mut self, row: &ResultRow) -> Result<(), ResultsError> {
        self.csv.serialize(row).map_err(|e| self.write_error(e.into()))?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), ResultsError> {
        self.csv.flush().map_err(|e| self.write_error(e))
    }

    /// Forces the rows to stable storage, for the end of a run.
    pub fn sync(&mut self) -> Result<(), ResultsError> {
        self.flush()?;
        self.csv.get_ref().get_ref().sync_all().map_err(|e| self.write_error(e))
    }

    fn write_error(&self, source: io::Error) -> ResultsError {
        ResultsError::Write { path: self.path.clone(), source }
    }
}

/// Written explicitly because `serialize` only writes a header with the first
/// row, and the file must be readable before then.
const HEADER: [&str; 12] = [
    "line",
    "zone_id",
    "certificate_id",
    "outcome",
    "http_status",
    "cert_status",
    "attempts",
    "error_code",
    "error_message",
    "cf_ray",
    "finished_at",
    "duration_ms",
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
        }
    }

    #[test]
    fn rows_are_on_disk_as_soon_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut file = ResultsFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", HEADER.join(",")));
        file.write(&row(Outcome::AlreadyRevoked)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "2,z,c,already_revoked,200,pending_revocation,1,,,ray,2026-11-27T00:00:00Z,12"
        );
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "precious").unwrap();
        let err = ResultsFile::create(&path).err().unwrap();
        assert!(matches!(err, ResultsError::Exists(_)));
        assert!(err.to_string().contains("--output"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
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
