//! What each operation sends and what an answer means for a row: revoke,
//! reactivate, verify, and list with the filters that choose what it keeps.

pub mod cert_filter;
pub mod glob;
pub mod listing;
pub mod reactivation;
pub mod revocation;
pub mod timestamp;
pub mod verification;
