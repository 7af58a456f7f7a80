//! `cfrevoke report`: the incident record people read, made from the files a
//! run already wrote. The results CSV, the JSON log and a `verify` file are
//! streamed into an aggregate ([`model`], by [`read`]); [`view`] turns it into
//! the report's sections as plain text, and [`html`] (with its [`svg`]
//! timeline) and [`markdown`] only lay those out, so the two formats cannot
//! say different things.

pub mod escape;
pub mod html;
pub mod markdown;
pub mod model;
pub mod read;
pub mod svg;
pub mod view;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Which layout the report takes, chosen by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
}

impl Format {
    /// `.html` or `.htm` for HTML, `.md` or `.markdown` for Markdown.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "html" | "htm" => Some(Format::Html),
            "md" | "markdown" => Some(Format::Markdown),
            _ => None,
        }
    }
}

/// What `cfrevoke report` was asked for, flags resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub results: PathBuf,
    pub log: Option<PathBuf>,
    pub verified: Option<PathBuf>,
    pub output: PathBuf,
    pub format: Format,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "{} is not a regular file (a FIFO, a device or a socket): a report is made from files that can be read \
         whole and hashed",
        .0.display()
    )]
    NotRegular(PathBuf),
    #[error("{}:{line}:{column}: {why}", path.display())]
    Malformed { path: PathBuf, line: u64, column: u64, why: String },
    #[error("{0}")]
    SameFile(String),
    #[error("cannot write the report {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

impl ReportError {
    /// Whether the files asked for are at fault (exit 2), not the disk.
    pub fn is_usage(&self) -> bool {
        !matches!(self, ReportError::Write { .. })
    }
}

/// The default output: `<results stem>.report.html` beside the results.
pub fn default_output(results: &Path) -> Option<PathBuf> {
    let stem = results.file_stem()?.to_str()?;
    Some(results.with_file_name(format!("{stem}.report.html")))
}

/// Reads the files into the aggregate.
pub fn build(settings: &Settings) -> Result<model::Report, ReportError> {
    let mut report = model::Report::default();
    read::results(&settings.results, &mut report)?;
    if let Some(log) = &settings.log {
        read::log(log, &mut report)?;
    }
    if let Some(verified) = &settings.verified {
        read::verified(verified, &mut report)?;
    }
    report.sort_runs();
    Ok(report)
}

/// The report as text in `format`.
pub fn render(report: &model::Report, format: Format) -> String {
    let view = view::View::of(report);
    match format {
        Format::Html => html::render(&view, report),
        Format::Markdown => markdown::render(&view),
    }
}

/// Makes the report and writes it. None of the files it reads may be the
/// output; the output is written beside itself and renamed into place, so a
/// failed write leaves the previous report, not half of one.
pub fn write(settings: &Settings) -> Result<model::Report, ReportError> {
    let mut files = vec![(format!("RESULTS {}", settings.results.display()), settings.results.as_path())];
    for (flag, path) in [("--log", &settings.log), ("--verified", &settings.verified)] {
        if let Some(path) = path {
            files.push((format!("{flag} {}", path.display()), path.as_path()));
        }
    }
    files.push((format!("--output {}", settings.output.display()), settings.output.as_path()));
    crate::output::disk::ensure_distinct(&files).map_err(ReportError::SameFile)?;
    let report = build(settings)?;
    let text = render(&report, settings.format);
    let path = &settings.output;
    let write_error = |source| ReportError::Write { path: path.clone(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new().prefix(".cfrevoke-report.").tempfile_in(dir).map_err(write_error)?;
    temp.write_all(text.as_bytes()).map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(report)
}
