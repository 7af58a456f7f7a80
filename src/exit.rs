//! The exit codes cron and scripts can rely on (documented in the README).

/// Every code cfrevoke exits with. Keep the README table in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every row revoked or already revoked.
    Success = 0,
    /// Some rows failed or were not found; the results file says which.
    RowsFailed = 1,
    /// Usage or input error: nothing was sent.
    Usage = 2,
    /// Credentials refused (401, or 403 on the first request): the run stopped.
    CredentialsRefused = 3,
    /// Another cfrevoke process is writing the same results file.
    Locked = 4,
    /// Interrupted by Ctrl-C, SIGTERM or SIGHUP.
    Interrupted = 130,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// An error the user made (bad arguments, bad input, an existing output file):
/// reported with exit code 2, and always before any request is sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Shorthand for returning a [`UsageError`] through `anyhow`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The API refused the credentials (401/403): reported with exit code 3, so
/// a script can tell a dead token from a flaky network.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RefusedError(pub String);

/// Shorthand for returning a [`RefusedError`] through `anyhow`.
pub fn refused(message: impl Into<String>) -> anyhow::Error {
    RefusedError(message.into()).into()
}

/// The exit code for an error that reached the top.
pub fn code_for(error: &anyhow::Error) -> ExitCode {
    let locked = |e: &(dyn std::error::Error + 'static)| {
        matches!(
            e.downcast_ref::<crate::output::results::ResultsError>(),
            Some(crate::output::results::ResultsError::Locked(_))
        )
    };
    if error.chain().any(locked) {
        ExitCode::Locked
    } else if error.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::Usage
    } else if error.chain().any(|e| e.is::<RefusedError>()) {
        ExitCode::CredentialsRefused
    } else {
        ExitCode::RowsFailed
    }
}
