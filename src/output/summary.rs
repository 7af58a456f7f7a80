//! The end of a run: the summary a person reads, the `run_end` log event, and
//! the exit code cron acts on, all from the same numbers.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::exit::ExitCode;
use crate::input::plan::Plan;
use crate::output::results::Tally;
use crate::pipeline::dispatcher::StopReason;
use crate::pipeline::run::Operation;

pub struct Summary<'a> {
    pub plan: &'a Plan,
    pub operation: Operation,
    pub run_id: &'a str,
    pub tally: Tally,
    pub requests: u64,
    pub elapsed: Duration,
    pub stop: Option<StopReason>,
    pub results: &'a Path,
    pub log: Option<&'a Path>,
    /// Pairs of this input an earlier run already finished (with --resume).
    pub done_before: u64,
    /// The command that picks up what this run left.
    pub resume_command: String,
}

impl Summary<'_> {
    /// Unique pairs with no final results row from this run or an earlier
    /// one: left for a resumed run.
    pub fn not_attempted(&self) -> u64 {
        self.plan.unique.saturating_sub(self.done_before + self.tally.total() - self.tally.invalid)
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    pub fn exit_code(&self) -> ExitCode {
        match self.stop {
            Some(StopReason::CredentialsRefused(_)) => ExitCode::CredentialsRefused,
            // Every certificate refused the same way with 401/403 is a token
            // problem, whatever the first answer said.
            Some(StopReason::Systemic { status: Some(401 | 403), .. }) => ExitCode::CredentialsRefused,
            Some(StopReason::Interrupted) => ExitCode::Interrupted,
            Some(_) => ExitCode::RowsFailed,
            None if self.tally.unsuccessful() > 0 || self.not_attempted() > 0 => ExitCode::RowsFailed,
            None => ExitCode::Success,
        }
    }

    pub fn log(&self) {
        tracing::info!(
            target: crate::output::logging::AUDIT,
            event = "run_end",
            run_id = self.run_id,
            revoked = self.tally.revoked,
            already_revoked = self.tally.already_revoked,
            not_found = self.tally.not_found,
            failed = self.tally.failed,
            invalid = self.tally.invalid,
            reactivated = self.tally.reactivated,
            too_late = self.tally.too_late,
            duplicates = self.plan.duplicates,
            not_attempted = self.not_attempted(),
            done_before = self.done_before,
            requests = self.requests,
            elapsed_ms = self.elapsed.as_millis() as u64,
            stop = self.stop.as_ref().map(|s| format!("{s:?}")),
            exit_code = self.exit_code().code(),
            "run finished"
        );
    }
}

impl Summary<'_> {
    /// The machine-readable summary for `--summary-json` and `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let counts: serde_json::Map<String, serde_json::Value> =
            self.operation.outcomes().iter().map(|&o| (o.as_str().to_string(), self.tally.get(o).into())).collect();
        serde_json::json!({
            "run_id": self.run_id,
            "operation": self.operation.verb(),
            "exit_code": self.exit_code().code(),
            "stopped": self.stop.as_ref().map(|s| format!("{s:?}")),
            "counts": counts,
            "done_earlier": self.done_before,
            "not_attempted": self.not_attempted(),
            "duplicates": self.plan.duplicates,
            "requests": self.requests,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "input": self.plan.display,
            "input_sha256": self.plan.sha256,
            "results": self.results.display().to_string(),
            "log": self.log.map(|p| p.display().to_string()),
        })
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stop {
            Some(StopReason::CredentialsRefused(why)) => {
                writeln!(f, "STOPPED: the API refused the credentials ({why}). Check the token is valid and has \"SSL and Certificates Write\".")?
            }
            Some(StopReason::Unreachable(why)) => writeln!(f, "STOPPED: could not check the credentials, the API kept failing ({why}). Nothing was revoked.")?,
            Some(StopReason::Interrupted) => writeln!(f, "STOPPED: interrupted.")?,
            Some(StopReason::Output(why) | StopReason::Input(why) | StopReason::Systemic { why, .. }) => {
                writeln!(f, "STOPPED: {why}")?
            }
            None => {}
        }
        writeln!(
            f,
            "run {}: {} rows, {} unique certificates in {} zones ({} duplicates skipped)",
            self.run_id, self.plan.rows, self.plan.unique, self.plan.zones, self.plan.duplicates
        )?;
        for &outcome in self.operation.outcomes() {
            writeln!(f, "  {:<16} {:>8}", outcome.as_str(), self.tally.get(outcome))?;
        }
        if self.done_before > 0 {
            writeln!(f, "  {:<16} {:>8}", "done earlier", self.done_before)?;
        }
        writeln!(f, "  {:<16} {:>8}", "not attempted", self.not_attempted())?;
        writeln!(
            f,
            "{} requests in {} ({:.2}/s)",
            self.requests,
            humantime::format_duration(Duration::from_millis(self.elapsed.as_millis() as u64)),
            self.rate()
        )?;
        writeln!(f, "results: {}", self.results.display())?;
        if let Some(log) = self.log {
            writeln!(f, "log: {}", log.display())?;
        }
        if self.not_attempted() > 0 || self.tally.failed > 0 {
            writeln!(f, "to retry what is left: {}", self.resume_command)?;
        }
        Ok(())
    }
}
