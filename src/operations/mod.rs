//! What each operation sends and what an answer means for a row: revoke,
//! reactivate, verify, list with the filters that choose what it keeps, and
//! the check of whether a zone enforces revocation at all, and the zones
//! named by domain or read whole (zones). `certificate` holds the steps
//! every operation takes with one certificate.

pub mod cert_filter;
pub mod certificate;
pub mod enforcement;
pub mod glob;
pub mod listing;
pub mod reactivation;
pub mod revocation;
pub mod timestamp;
pub mod verification;
pub mod zones;
