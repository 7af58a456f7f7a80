//! What a bulk run does to each row. Its own module because the summary,
//! the results scan and the engine all ask it which outcomes exist, and the
//! engine depends on the summary, not the other way round.

use std::sync::Arc;

use crate::input::reader::Row;
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
}

impl Operation {
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Revoke { .. } => "revoke",
            Operation::Reactivate => "reactivate",
        }
    }

    /// The outcome a row gets when the operation did what it is for; its
    /// name is what a message says was (or was not) done.
    pub fn done(self) -> Outcome {
        match self {
            Operation::Revoke { .. } => Outcome::Revoked,
            Operation::Reactivate => Outcome::Reactivated,
        }
    }

    /// The outcomes this operation can record, in summary order.
    pub fn outcomes(self) -> &'static [Outcome] {
        match self {
            Operation::Revoke { .. } => {
                &[Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound, Outcome::Failed, Outcome::Invalid]
            }
            Operation::Reactivate => &[Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound, Outcome::Failed],
        }
    }

    /// The outcomes that need no further request: what `--resume` skips.
    pub fn finals(self) -> &'static [Outcome] {
        match self {
            Operation::Revoke { .. } => &[Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound],
            Operation::Reactivate => &[Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound],
        }
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
    pub(crate) async fn perform(self, dispatcher: Arc<Dispatcher>, row: Row, tried_before: bool) -> Option<ResultRow> {
        match self {
            Operation::Revoke { verify } => {
                crate::operations::revocation::revoke(dispatcher, row, verify, tried_before).await
            }
            Operation::Reactivate => crate::operations::reactivation::reactivate(dispatcher, row).await,
        }
    }
}
