//! The command line, as one clap definition shared by parsing, `--help`,
//! completions and the man page.

use clap::{Parser, Subcommand};

use crate::cli::completions::CompletionsArgs;
use crate::cli::enforcement::EnforcementArgs;
use crate::cli::list::ListArgs;
use crate::cli::man::ManArgs;
use crate::cli::reactivate::ReactivateArgs;
use crate::cli::report::ReportArgs;
use crate::cli::revoke::RevokeArgs;
use crate::cli::sandbox::SandboxArgs;
use crate::cli::verify::VerifyArgs;
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
    pub verbosity: VerbosityArgs,
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

/// `-v` and `-q`, on every subcommand.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct VerbosityArgs {
    /// More detail on stderr (-v: every attempt, -vv: everything). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less on stderr (-q: warnings and errors only, no progress bar).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl From<VerbosityArgs> for Verbosity {
    fn from(args: VerbosityArgs) -> Verbosity {
        Verbosity { verbose: args.verbose, quiet: args.quiet }
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
    /// Does revoking change anything? Say for each zone whether its custom rules block revoked certificates.
    #[command(args_override_self = true)]
    Enforcement(Box<EnforcementArgs>),
    /// Read back every certificate a revoke run revoked, to confirm it is revoked (with --until revoked,
    /// until it is); certificates still pending or active again are listed.
    #[command(args_override_self = true)]
    Verify(Box<VerifyArgs>),
    /// Write the incident record of a run, as one self-contained HTML page or Markdown, from its results
    /// file, log and verify results.
    Report(Box<ReportArgs>),
    /// Serve a simulated Cloudflare client-certificate API on loopback, for demos, drills and tests.
    Sandbox(Box<SandboxArgs>),
    /// Write a shell completion script to standard output.
    Completions(CompletionsArgs),
    /// Write a roff man page to standard output.
    Man(ManArgs),
}
