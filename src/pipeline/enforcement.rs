//! The check before a revocation: does each zone of the plan block revoked
//! certificates at all? Without such a rule a revocation changes nothing
//! at the door, so the run says so loudly, or refuses when told to.

use std::sync::Arc;

use anyhow::Context;

use crate::exit::{refused, usage};
use crate::input::ids::ZoneId;
use crate::operations::enforcement::{self, CheckError, ZoneCheck};
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::session::{self, Session};

/// What a revocation does about zones that do not visibly enforce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnforcementCheck {
    /// No reads (`--skip-enforcement-check`, and every undo).
    Skip,
    /// Read and warn, then go ahead.
    Warn,
    /// Read, and revoke nothing unless every zone enforces (`--require-enforcement`).
    Require,
}

impl EnforcementCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementCheck::Skip => "skip",
            EnforcementCheck::Warn => "warn",
            EnforcementCheck::Require => "require",
        }
    }
}

/// Reads the custom rules of `zones` on `session`, through `dispatcher`
/// (so the reads are paced with everything else the run sends), and warns
/// of every zone that does not enforce. `None` when skipped, or when a
/// signal stopped the reads: the dispatcher is halted then, and the run
/// stops before its first DELETE.
pub fn check(
    session: &Session,
    dispatcher: &Arc<Dispatcher>,
    zones: &[ZoneId],
    mode: EnforcementCheck,
) -> anyhow::Result<Option<Vec<ZoneCheck>>> {
    if mode == EnforcementCheck::Skip {
        return Ok(None);
    }
    let Some(checks) = read(session, dispatcher, zones).context("nothing was revoked")? else {
        return Ok(None);
    };
    let lapses: Vec<String> = checks.iter().filter_map(ZoneCheck::warning).collect();
    for lapse in &lapses {
        tracing::warn!("{lapse}");
    }
    if lapses.is_empty() {
        tracing::info!("revocation is enforced by a custom rule in every zone of the plan ({})", checks.len());
    }
    if mode == EnforcementCheck::Require && !lapses.is_empty() {
        return Err(usage(format!(
            "--require-enforcement: {} of {} zones do not visibly enforce revocation (see the warnings above); \
             nothing was revoked",
            lapses.len(),
            checks.len()
        )));
    }
    Ok(Some(checks))
}

/// The verdicts alone, read as [`check`] reads them; `None` when a signal
/// stopped the reads. A refused token is exit code 3.
pub fn read(
    session: &Session,
    dispatcher: &Arc<Dispatcher>,
    zones: &[ZoneId],
) -> anyhow::Result<Option<Vec<ZoneCheck>>> {
    let checked = session.block_on(session::interruptible(dispatcher, enforcement::check_zones(dispatcher, zones)));
    match checked {
        Ok(checks) => Ok(Some(checks)),
        Err(e @ CheckError::CredentialsRefused { .. }) => Err(refused(e.to_string())),
        Err(CheckError::Stopped { .. }) => Ok(None),
        Err(e @ CheckError::Unreachable { .. }) => Err(e.into()),
    }
}
