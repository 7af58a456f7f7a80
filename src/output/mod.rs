//! What a run leaves behind: the results CSV, the summary and exit code, the metrics file,
//! the progress bar, the logs, the audit record, and the look at the files
//! and disks before the first request.

pub mod audit;
pub mod disk;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod results;
pub mod summary;
