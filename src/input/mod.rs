//! The input stage: the CSV reader, IDs parsed so nothing from the file
//! can shape a URL, the plan (pass one checks, dedupes and checksums the
//! whole file; pass two streams jobs), and the scan of an earlier run's
//! results that `--resume` skips.

mod fields;
mod header;
pub mod ids;
pub mod plan;
pub mod reader;
pub mod resume;
