//! The end of a run: the summary a person reads, the `run_end` log event, and
//! the exit code cron acts on, all from the same numbers.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::exit::ExitCode;
use crate::input::plan::Plan;
use crate::operations::enforcement::{self, ZoneCheck};
use crate::outcome::Outcome;
use crate::output::results::Tally;
use crate::pipeline::dispatcher::StopReason;
use crate::pipeline::operation::Operation;
use crate::pipeline::settings::RunSettings;

/// What a run did: the value the engine hands back, for whoever shows it.
pub struct Summary {
    pub plan: Arc<Plan>,
    pub operation: Operation,
    pub run_id: String,
    pub tally: Tally,
    pub requests: u64,
    /// Answers that were 429.
    pub rate_limited: u64,
    pub elapsed: Duration,
    pub stop: Option<StopReason>,
    pub results: PathBuf,
    pub log: Option<PathBuf>,
    /// Pairs of this input an earlier run already finished (with --resume).
    pub done_before: u64,
    /// The command that picks up what this run left.
    pub resume_command: String,
    /// Each zone's verdict from the check before the run, if it ran.
    pub enforcement: Option<Vec<ZoneCheck>>,
}

impl Summary {
    /// Unique pairs with no final results row from this run or an earlier
    /// one: left for a resumed run.
    pub fn not_attempted(&self) -> u64 {
        self.plan.unique.saturating_sub(self.done_before + self.tally.total() - self.tally.invalid)
    }

    /// Rows recorded with an outcome a resume tries again (`failed`, and
    /// with `verify --until` a straggler); `invalid` ones stay as they are.
    fn left_for_a_resume(&self) -> u64 {
        let finals = self.operation.finals();
        let open = |o: &&Outcome| !finals.contains(o) && **o != Outcome::Invalid;
        self.operation.outcomes().iter().filter(open).map(|&o| self.tally.get(o)).sum()
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
            event = super::events::RUN_END,
            run_id = self.run_id.as_str(),
            revoked = self.tally.revoked,
            already_revoked = self.tally.already_revoked,
            not_found = self.tally.not_found,
            failed = self.tally.failed,
            invalid = self.tally.invalid,
            reactivated = self.tally.reactivated,
            too_late = self.tally.too_late,
            pending_revocation = self.tally.pending_revocation,
            active = self.tally.active,
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

impl Summary {
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
            "log": self.log.as_ref().map(|p| p.display().to_string()),
            "enforcement": self.enforcement.as_deref().map(enforcement::to_json),
        })
    }

    /// Writes the JSON summary to `path`. Not waiting on the open: a FIFO
    /// nobody reads must not hang the run's end, after every row is recorded.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        crate::output::disk::open_without_waiting(
            std::fs::OpenOptions::new().write(true).create(true).truncate(true),
            path,
        )
        .and_then(|mut file| file.write_all(format!("{}\n", self.to_json()).as_bytes()))
        .with_context(|| format!("cannot write the summary to {}", path.display()))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stop {
            Some(StopReason::CredentialsRefused(why)) => {
                writeln!(f, "STOPPED: the API refused the credentials ({why}). Check the token is valid and has \"SSL and Certificates Write\".")?
            }
            Some(StopReason::Unreachable(why)) => writeln!(f, "STOPPED: could not check the credentials: {why}. Nothing was {}.", self.operation.done().as_str())?,
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
        // Wide enough for the longest name (verify's `pending_revocation`).
        let width = self.operation.outcomes().iter().map(|o| o.as_str().len()).max().unwrap_or(0).max(16);
        for &outcome in self.operation.outcomes() {
            writeln!(f, "  {:<width$} {:>8}", outcome.as_str(), self.tally.get(outcome))?;
        }
        if self.done_before > 0 {
            writeln!(f, "  {:<width$} {:>8}", "done earlier", self.done_before)?;
        }
        writeln!(f, "  {:<width$} {:>8}", "not attempted", self.not_attempted())?;
        writeln!(
            f,
            "{} requests in {} ({:.2}/s)",
            self.requests,
            humantime::format_duration(Duration::from_millis(self.elapsed.as_millis() as u64)),
            self.rate()
        )?;
        writeln!(f, "results: {}", self.results.display())?;
        let checks = self.enforcement.as_deref().unwrap_or_default();
        let lapses = checks.iter().filter(|c| !c.verdict.is_enforced()).count();
        if lapses == 0 && !checks.is_empty() {
            writeln!(f, "enforcement: a custom rule blocks revoked certificates in all {} zones", checks.len())?;
        } else if lapses > 0 {
            writeln!(
                f,
                "WARNING: revocation not seen in the custom rules of {lapses} of {} zones: revoked certificates may \
                 still get in there (see the warnings above, or run `cfrevoke enforcement`)",
                checks.len()
            )?;
        }
        if let Some(log) = &self.log {
            writeln!(f, "log: {}", log.display())?;
        }
        if self.not_attempted() > 0 || self.left_for_a_resume() > 0 {
            writeln!(f, "to retry what is left: {}", self.resume_command)?;
        }
        Ok(())
    }
}

/// The command that continues a run: the command line as given, with
/// `--resume` and an explicit `--output`, quoted for a POSIX shell.
pub fn resume_command(settings: &RunSettings, output: &Path) -> String {
    let mut words: Vec<String> = if settings.argv.is_empty() {
        vec!["cfrevoke".into(), settings.operation.verb().into(), settings.input.display().to_string()]
    } else {
        settings.argv.clone()
    };
    if settings.output.is_none() {
        words.extend(["--output".into(), output.display().to_string()]);
    }
    if !settings.resume {
        words.push("--resume".into());
    }
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `operation` over a one-row input that stopped before its
    /// first request, because the API could not be reached.
    fn unreachable(operation: Operation) -> String {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(
            &input,
            "zone_id,certificate_id\n023e105f4ecef8ad9ca31a8372d0c353,0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let summary = Summary {
            plan: Arc::new(Plan::build(&input).unwrap()),
            operation,
            run_id: "r1".into(),
            tally: Tally::default(),
            requests: 8,
            rate_limited: 0,
            elapsed: Duration::from_secs(1),
            stop: Some(StopReason::Unreachable("503".into())),
            results: dir.path().join("out.csv"),
            log: None,
            done_before: 0,
            resume_command: "cfrevoke again".into(),
            enforcement: None,
        };
        summary.to_string()
    }

    #[test]
    fn a_stopped_run_says_what_was_not_done_in_its_own_words() {
        let revoke = unreachable(Operation::Revoke { verify: false });
        assert!(
            revoke.starts_with("STOPPED: could not check the credentials: 503. Nothing was revoked.\n"),
            "{revoke}"
        );
        let reactivate = unreachable(Operation::Reactivate);
        assert!(reactivate.contains(": 503. Nothing was reactivated.\n"), "{reactivate}");
        assert!(!reactivate.contains("revoked"), "{reactivate}");
        assert!(reactivate.contains("to retry what is left: cfrevoke again"), "{reactivate}");
    }

    #[test]
    fn resume_commands_survive_a_shell() {
        assert_eq!(shell_quote("in.csv"), "in.csv");
        assert_eq!(shell_quote("my certs.csv"), "'my certs.csv'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
