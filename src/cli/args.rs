//! The command line, as one clap definition shared by parsing, `--help`,
//! completions and the man page.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cli::completions::CompletionsArgs;
use crate::cli::list::ListArgs;
use crate::cli::man::ManArgs;
use crate::cli::reactivate::ReactivateArgs;
use crate::cli::revoke::RevokeArgs;
use crate::cli::sandbox::SandboxArgs;
use crate::output::logging::Verbosity;

/// Revoke Cloudflare API Shield mTLS client certificates in bulk: paced under
/// the API quota, retried, and every row accounted for in a results CSV.
///
/// Credentials come from the environment (CLOUDFLARE_API_TOKEN, or
/// CLOUDFLARE_EMAIL with CLOUDFLARE_API_KEY) or --api-token-file, never from
/// the command line.
#[derive(Debug, Parser)]
#[command(name = "cfrevoke", version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// The command line as given, for the resume hint and the audit record.
    #[arg(skip)]
    pub argv: Vec<String>,
}

impl Cli {
    /// Parses `args` (program name first) and keeps them.
    pub fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Self {
        let argv: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let mut cli = <Cli as clap::Parser>::parse_from(&argv);
        cli.argv = argv;
        cli
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Revoke every certificate listed in a CSV of zone_id,certificate_id.
    // A later flag overrides an earlier one, so wrapper scripts can set defaults.
    #[command(args_override_self = true)]
    Revoke(Box<RevokeArgs>),
    /// Undo a revoke run: reactivate the certificates its results file records as revoked, while
    /// Cloudflare still allows it (only during pending_revocation).
    #[command(args_override_self = true)]
    Reactivate(Box<ReactivateArgs>),
    /// List client certificates from the API into a CSV that `revoke` reads unchanged.
    #[command(args_override_self = true)]
    List(Box<ListArgs>),
    /// Serve a simulated Cloudflare client-certificate API on loopback, for demos, drills and tests.
    Sandbox(Box<SandboxArgs>),
    /// Write a shell completion script to standard output.
    Completions(CompletionsArgs),
    /// Write a roff man page to standard output.
    Man(ManArgs),
}

/// Parses a duration where zero is meaningless: a timeout that fires at once,
/// a retry that does not wait, a window that holds nothing. Refused here, at
/// parse time, so such a run never starts.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(duration) if duration.is_zero() => Err("expected a duration above zero, such as 500ms or 30s".into()),
        Ok(duration) => Ok(duration),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a share between 0 and 1 (a fault rate), so a typo such as `5`
/// for 5% is refused at parse time rather than by the sandbox later.
pub fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("expected a share between 0 and 1, such as 0.05".into()),
    }
}

/// Parses a rate of requests per second, zero included (none), but not a
/// negative, infinite or NaN one.
pub fn per_second(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err("expected requests per second, 0 or more, such as 25".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meaningless_numbers_are_refused() {
        assert!(positive_duration("0s").is_err() && positive_duration("0ms").is_err());
        assert!(positive_duration("-1s").is_err() && positive_duration("soon").is_err());
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(share("1.5").is_err() && share("-0.1").is_err() && share("NaN").is_err());
        assert_eq!((share("0"), share("1")), (Ok(0.0), Ok(1.0)));
        assert!(per_second("-1").is_err() && per_second("inf").is_err() && per_second("NaN").is_err());
        assert_eq!(per_second("0"), Ok(0.0));
    }
}
