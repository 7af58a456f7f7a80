//! How fast requests may go. [`Pacer`] is what the dispatcher asks before
//! each request; it ties together pieces that can each be read alone:
//!
//! - `pace`: the quota (`--rate`, or `auto`) and the spacing that keeps
//!   every window within it;
//! - `limiter`: governor's GCRA on tokio's clock, and (in `sends`) the
//!   record of sends that carries its schedule over a change of quota and
//!   holds each request's slot until the server can no longer count it;
//!   `latency`: how much closer together than sent the server may see
//!   requests arrive;
//! - `budget`: what the API's `Ratelimit` header says is left ([`headers`]
//!   parses the header), and `share`: another tool that spends the quota;
//! - [`ledger`]: the sends of this credential by every run on the machine,
//!   and which runs are live, in a file the runs share;
//! - `pause`: the account-wide pause a 429 imposes, and the notice that says
//!   a long wait on stderr;
//! - [`retry`]: the schedule of attempts after a failure.

mod budget;
pub mod headers;
mod latency;
pub mod ledger;
mod limiter;
mod pace;
mod pacer;
mod pause;
pub mod retry;
mod sends;
mod share;
#[cfg(test)]
mod testing;

pub use pace::{Pace, Rate, MAX_PER_SECOND};
pub use pacer::Pacer;
pub use pause::LONGEST_WAIT;
