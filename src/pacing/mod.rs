//! How fast requests may go: the `--rate` quota and the governor limiter
//! that enforces it, the budget read from the API's rate-limit headers, the
//! account-wide pause a 429 imposes, and the retry schedule.

mod budget;
pub mod headers;
pub mod retry;

pub use budget::{Pace, Pacer, Rate, LONGEST_WAIT};
