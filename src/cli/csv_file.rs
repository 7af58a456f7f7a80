//! A CSV a command writes at the end (`list`, `enforcement`): to standard
//! output, or to a new file that appears complete or not at all.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::NamedTempFile;

/// Where the CSV goes. A file is written under a temporary name beside the
/// target and moved into place without replacing anything, so the path holds
/// either nothing or the complete CSV.
pub enum CsvFile {
    Stdout,
    File { path: PathBuf, temp: NamedTempFile },
}

impl CsvFile {
    /// Checked before the first request: an hour of reading must not end in
    /// "file exists". `-` is standard output.
    pub fn open(path: &Path) -> anyhow::Result<CsvFile> {
        if path.as_os_str() == "-" {
            return Ok(CsvFile::Stdout);
        }
        if path.symlink_metadata().is_ok() {
            return Err(crate::exit::usage(exists(path)));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".cfrevoke-")
            .tempfile_in(dir)
            .map_err(|e| crate::exit::usage(format!("cannot create {}: {e}", path.display())))?;
        Ok(CsvFile::File { path: path.to_path_buf(), temp })
    }

    /// Writes the CSV; returns where it went, for the report.
    pub fn write<R: AsRef<[String]>>(self, header: &[&str], rows: &[R]) -> anyhow::Result<String> {
        match self {
            CsvFile::Stdout => {
                write_csv(io::stdout().lock(), header, rows).context("cannot write to standard output")?;
                Ok("standard output".to_string())
            }
            CsvFile::File { path, temp } => {
                let context = || format!("cannot write {}", path.display());
                write_csv(temp.as_file(), header, rows).with_context(context)?;
                temp.as_file().sync_all().with_context(context)?;
                temp.persist_noclobber(&path).map_err(|e| match e.error.kind() {
                    io::ErrorKind::AlreadyExists => anyhow::anyhow!(exists(&path)),
                    _ => anyhow::Error::new(e.error).context(context()),
                })?;
                Ok(path.display().to_string())
            }
        }
    }
}

fn exists(path: &Path) -> String {
    format!("{} already exists; cfrevoke never overwrites a file: pass --output with a new path", path.display())
}

pub fn write_csv<R: AsRef<[String]>>(out: impl Write, header: &[&str], rows: &[R]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(header)?;
    for row in rows {
        csv.write_record(row.as_ref())?;
    }
    csv.flush()?;
    Ok(())
}
