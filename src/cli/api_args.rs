//! The flags of every command that talks to the API: where, as whom, how
//! fast and how persistently. One definition, flattened into each command,
//! so `list` and `revoke` cannot drift apart in defaults or meaning.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::values::positive_duration;
use crate::client::{BaseUrl, DEFAULT_BASE_URL};
use crate::credentials::{self, Credentials};
use crate::exit::usage;
use crate::pacing::ledger;
use crate::pacing::retry::RetryPolicy;
use crate::pacing::Pace;
use crate::pipeline::settings::ApiSettings;
use crate::transport::{CaBundle, CaBundleError};

#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// API root. Plain http:// is refused except to a loopback address.
    // The value may hold a password (refused, but typed all the same): it is
    // shown neither in `--help`'s [env: ...] nor in a parse error.
    #[arg(
        long,
        env = "CLOUDFLARE_BASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_BASE_URL,
        value_parser = BaseUrlParser,
        value_name = "URL"
    )]
    pub base_url: BaseUrl,

    /// Read the API token from the first line of this file instead of CLOUDFLARE_API_TOKEN.
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    /// Most requests per window, e.g. 4/s, 100/m, 1200/5m, or auto: Cloudflare's quota per user
    /// (1200/5m) until the API announces its own in Ratelimit-Policy. Every request counts (checks and
    /// retries too) and the pace stays 1% under the quota. Whatever the rate, when the Ratelimit header
    /// says little is left, the rest is spread over the time to the reset.
    #[arg(long, default_value = "auto", value_name = "N/WINDOW|auto")]
    pub rate: Pace,

    /// Attempts per request, the first included, for 429, 5xx, 408 and connection errors.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100), value_name = "N")]
    pub max_attempts: u32,

    /// First retry delay; it doubles (with jitter) up to --retry-max-delay. A Retry-After header wins.
    #[arg(long, default_value = "500ms", value_parser = positive_duration, value_name = "DURATION")]
    pub retry_delay: Duration,

    /// Longest backoff between two attempts.
    #[arg(long, default_value = "60s", value_parser = positive_duration, value_name = "DURATION")]
    pub retry_max_delay: Duration,

    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = positive_duration, value_name = "DURATION")]
    pub timeout: Duration,

    /// PEM bundle of CA certificates trusted for this run on top of the system's store, e.g. the CA a
    /// TLS-inspecting proxy re-signs with. SSL_CERT_FILE, when set, also replaces the system's store,
    /// as OpenSSL reads it.
    // Read and checked while parsing, so a wrong file is a usage error (exit 2) before anything is sent.
    #[arg(long, env = "SSL_CERT_FILE", value_parser = ca_bundle, value_name = "FILE")]
    pub ca_cert: Option<CaBundle>,

    /// Keep no ledger of recent sends. By default each request's time is noted in
    /// $XDG_STATE_HOME/cfrevoke (~/.local/state/cfrevoke), under a hash of the credential, so runs with
    /// the same credential on this machine count each other's requests against the quota.
    #[arg(long)]
    pub no_ledger: bool,
}

fn ca_bundle(path: &str) -> Result<CaBundle, CaBundleError> {
    CaBundle::load(Path::new(path))
}

impl ApiArgs {
    /// The credentials from `--api-token-file` or the environment; missing
    /// ones are the user's to fix (exit code 2), before anything is sent.
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        credentials::resolve(self.api_token_file.as_deref(), |k| std::env::var(k).ok())
            .map_err(|e| usage(e.to_string()))
    }

    /// The engine's settings from these flags, sending as `credentials`.
    /// A retry cap below the first delay is a slip the user should hear of
    /// (exit code 2), not a schedule quietly bent into shape.
    pub fn settings(&self, credentials: Credentials) -> anyhow::Result<ApiSettings> {
        if self.retry_max_delay < self.retry_delay {
            return Err(usage(format!(
                "--retry-max-delay ({}) is shorter than --retry-delay ({}); give a cap at least as long as the first delay",
                humantime::format_duration(self.retry_max_delay),
                humantime::format_duration(self.retry_delay)
            )));
        }
        Ok(ApiSettings {
            base_url: self.base_url.clone(),
            credentials,
            pace: self.rate,
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                initial_delay: self.retry_delay,
                max_delay: self.retry_max_delay,
            },
            timeout: self.timeout,
            ca_cert: self.ca_cert.clone(),
            ledger: self.ledger_dir(),
        })
    }

    /// Where the ledger lives, from the environment (the engine reads none).
    fn ledger_dir(&self) -> Option<PathBuf> {
        if self.no_ledger {
            return None;
        }
        let (state, home) = (std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"));
        ledger::directory(state.as_deref(), home.as_deref())
    }
}

/// Parses `--base-url` without echoing it: clap's own error for a value
/// parser quotes the value, and this one may carry a password.
#[derive(Debug, Clone, Copy)]
struct BaseUrlParser;

impl clap::builder::TypedValueParser for BaseUrlParser {
    type Value = BaseUrl;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<BaseUrl, clap::Error> {
        let parsed = value.to_str().map_or(Err(crate::client::BaseUrlError::Invalid), str::parse);
        parsed.map_err(|e| {
            let flag = arg.map_or_else(|| "--base-url".to_string(), ToString::to_string);
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("invalid value for '{flag}': {e}\n"))
                .with_cmd(cmd)
        })
    }
}
