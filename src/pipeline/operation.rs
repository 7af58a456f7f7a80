//! What a bulk run does to each row. Its own module because the summary,
//! the results scan and the engine all ask it which outcomes exist, and the
//! engine depends on the summary, not the other way round.

use std::sync::Arc;

use tokio::time::Instant;

use crate::input::reader::Row;
use crate::operations::verification::Poll;
use crate::outcome::Outcome;
use crate::output::results::ResultRow;
use crate::pipeline::dispatcher::Dispatcher;

/// What a bulk command does to each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// DELETE; with `verify`, read each certificate back afterwards.
    Revoke { verify: bool },
    /// PATCH `{"reactivate": true}`: the undo while Cloudflare still allows it.
    Reactivate,
    /// GET each certificate a revoke run revoked, to see it locked out;
    /// with `poll`, again while it is still `pending_revocation`.
    Verify { poll: Option<Poll> },
}

impl Operation {
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Revoke { .. } => "revoke",
            Operation::Reactivate => "reactivate",
            Operation::Verify { .. } => "verify",
        }
    }

    /// The outcome a row gets when the operation did what it is for; its
    /// name is what a message says was (or was not) done.
    pub fn done(self) -> Outcome {
        match self {
            Operation::Revoke { .. } => Outcome::Revoked,
            Operation::Reactivate => Outcome::Reactivated,
            Operation::Verify { .. } => Outcome::Revoked,
        }
    }

    /// The outcomes this operation can record, in summary order.
    pub fn outcomes(self) -> &'static [Outcome] {
        match self {
            Operation::Revoke { .. } => {
                &[Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound, Outcome::Failed, Outcome::Invalid]
            }
            Operation::Reactivate => &[Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound, Outcome::Failed],
            Operation::Verify { .. } => {
                &[Outcome::Revoked, Outcome::PendingRevocation, Outcome::Active, Outcome::NotFound, Outcome::Failed]
            }
        }
    }

    /// The outcomes that need no further request: what `--resume` skips.
    pub fn finals(self) -> &'static [Outcome] {
        match self {
            Operation::Revoke { .. } => &[Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound],
            Operation::Reactivate => &[Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound],
            // A straggler is what a single read is for; `--until revoked`
            // reads it again.
            Operation::Verify { poll: None } => {
                &[Outcome::Revoked, Outcome::PendingRevocation, Outcome::Active, Outcome::NotFound]
            }
            Operation::Verify { poll: Some(_) } => &[Outcome::Revoked, Outcome::Active, Outcome::NotFound],
        }
    }

    /// Whether a run asks before it starts: a read changes nothing.
    pub fn changes_certificates(self) -> bool {
        !matches!(self, Operation::Verify { .. })
    }

    /// Whether a row waits between its requests (`verify --until`), so
    /// more rows than requests in flight are worked on at once.
    pub fn polls(self) -> bool {
        matches!(self, Operation::Verify { poll: Some(_) })
    }

    /// Requests per row when nothing goes wrong, for time estimates.
    pub fn requests_per_row(self) -> f64 {
        match self {
            Operation::Revoke { verify: true } => 2.0,
            _ => 1.0,
        }
    }

    /// `tried_before`: the run being resumed recorded this pair `failed`
    /// after an answer that may hide the request being carried out.
    /// `begun`: when the run started, which a [`Poll`]'s deadline counts from.
    pub(crate) async fn perform(
        self,
        dispatcher: Arc<Dispatcher>,
        row: Row,
        tried_before: bool,
        begun: Instant,
    ) -> Option<ResultRow> {
        match self {
            Operation::Revoke { verify } => {
                crate::operations::revocation::revoke(dispatcher, row, verify, tried_before).await
            }
            Operation::Reactivate => crate::operations::reactivation::reactivate(dispatcher, row).await,
            Operation::Verify { poll } => crate::operations::verification::verify(dispatcher, row, poll, begun).await,
        }
    }
}
