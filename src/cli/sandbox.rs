//! `cfrevoke sandbox`: serves the simulated API until Ctrl-C, so a run (or a
//! test, or a curious operator) can be pointed at it instead of Cloudflare.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::cli::values::{per_second, positive_duration, share};
use crate::exit::{usage, ExitCode};
use crate::input::ids::{CertId, ZoneId};
use crate::input::plan::Plan;
use crate::pacing::headers::Dialect;
use crate::sandbox::{Burst, Enforcing, Faults, RateLimit, Sandbox, SandboxConfig, WindowKind};

/// Certificates invented when neither `--certs` nor `--generate` says
/// otherwise, so a bare `cfrevoke sandbox` has something to list.
const DEFAULT_GENERATED: (usize, usize) = (100, 3);

/// Every flag overrides one setting of the starting profile: the faithful
/// default, or the lively `--demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Loopback address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Serve the certificates of this CSV (columns zone_id and
    /// certificate_id; other columns are ignored).
    #[arg(long, value_name = "FILE")]
    pub certs: Option<PathBuf>,
    /// Also invent N certificates [default: 100 across 3 zones when --certs is not given].
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,
    /// Spread invented certificates over M zones.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), value_name = "M")]
    pub zones: Option<usize>,
    /// Write every served certificate as a zone_id,certificate_id CSV, ready for `revoke`.
    #[arg(long, value_name = "FILE")]
    pub write_csv: Option<PathBuf>,
    /// Write each served certificate's PEM into this directory, one ZONE_ID_CERTIFICATE_ID.pem per
    /// certificate, for drills with `list --pem`.
    #[arg(long, value_name = "DIR")]
    pub write_pem: Option<PathBuf>,
    /// Seed of every random choice, for replayable runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Start from the demo profile: latency, ~3% 5xx, resets, garbled answers, one 429 block.
    #[arg(long)]
    pub demo: bool,
    /// Time a certificate stays pending_revocation (or pending_reactivation).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub revoke_delay: Option<Duration>,
    #[command(flatten)]
    pub rate: RateLimitArgs,
    #[command(flatten)]
    pub faults: FaultArgs,
    /// The token stops working (401) after this many requests.
    #[arg(long, value_name = "N")]
    pub token_expires_after: Option<u64>,
    /// Answer every DELETE and PATCH 403, as for a read-only token.
    #[arg(long)]
    pub forbid_writes: bool,
    /// Serve HTTPS, with a certificate for 127.0.0.1, localhost and ::1 from a throwaway CA made at
    /// start (pass that CA to cfrevoke with --ca-cert; see --tls-ca-out).
    #[arg(long)]
    pub tls: bool,
    /// Write the throwaway CA's certificate (PEM) here, for --ca-cert.
    #[arg(long, requires = "tls", value_name = "FILE")]
    pub tls_ca_out: Option<PathBuf>,
    /// Which zones' custom rules block revoked certificates: all, none, or a share such as 0.5 (chosen
    /// per zone from the seed). The others get, in turn, the dashboard's cert_verified-only mTLS rule,
    /// no custom rules, a disabled rule, or a rule whose action is log.
    #[arg(long, default_value = "all", value_name = "all|none|FRACTION")]
    pub enforcing_zones: Enforcing,
    /// Answer 403 to every read of custom rules, as for a token without "Zone WAF Read".
    #[arg(long)]
    pub forbid_rules_read: bool,
}

impl SandboxArgs {
    /// The configuration these flags describe, certificates read and all.
    /// Any error is the user's (exit code 2).
    pub fn config(&self) -> anyhow::Result<SandboxConfig> {
        self.build_config().map_err(|error| usage(format!("invalid sandbox settings: {error:#}")))
    }

    fn build_config(&self) -> anyhow::Result<SandboxConfig> {
        let mut config = if self.demo { SandboxConfig::demo() } else { SandboxConfig::default() };
        config.listen = self.listen;
        if let Some(path) = &self.certs {
            config.certs = read_cert_csv(path)?;
        }
        match (self.certs.is_some(), self.generate) {
            (false, None) => {
                (config.generate, config.zones) = DEFAULT_GENERATED;
            }
            (_, generate) => set(&mut config.generate, generate),
        }
        set(&mut config.zones, self.zones);
        set(&mut config.seed, self.seed);
        set(&mut config.revoke_delay, self.revoke_delay);
        set(&mut config.token_expires_after, self.token_expires_after.map(Some));
        config.forbid_writes |= self.forbid_writes;
        config.tls |= self.tls;
        config.enforcing = self.enforcing_zones;
        config.forbid_rules_read |= self.forbid_rules_read;

        self.rate.overlay(&mut config.rate);
        if self.rate.background_random {
            config.rate.random_background = Some(config.seed);
        }
        self.faults.overlay(&mut config.faults);

        config.validate()?;
        Ok(config)
    }
}

/// The flags over the profile's [`RateLimit`], in one group so each part of
/// the configuration is set from its own flags in one place.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitArgs {
    /// Requests allowed per window (0 disables rate limiting).
    #[arg(long, value_name = "N")]
    pub quota: Option<u32>,
    /// Length of the rate-limit window.
    #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
    pub window: Option<Duration>,
    /// How long exceeding the quota blocks every request.
    #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
    pub block: Option<Duration>,
    /// Turn rate limiting off entirely.
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Rate-limit headers on every answer: structured (Ratelimit, Ratelimit-Policy), split
    /// (ratelimit-limit, -remaining, -reset), x-ratelimit (X-RateLimit-Limit, -Remaining; -Reset as
    /// a date on 429s), or none, so clients learn the quota only from 429s [default: structured].
    #[arg(long, value_parser = header_dialect(), value_name = "DIALECT")]
    pub ratelimit_dialect: Option<HeaderDialect>,
    /// Requests per second another consumer spends from the same quota.
    #[arg(long, value_parser = per_second, allow_negative_numbers = true, value_name = "PER_SECOND")]
    pub background_load: Option<f64>,
    /// Let --background-load arrive at random (a Poisson stream of that mean rate, drawn from
    /// --seed) instead of evenly spaced, as a real tool's requests bunch.
    #[arg(long, requires = "background_load")]
    pub background_random: bool,
    /// Answer 429 and block once, after this many admitted requests.
    #[arg(long, value_name = "N")]
    pub force_429_after: Option<u64>,
    /// How the window counts: sliding (no span of --window holds more than --quota), fixed (counts
    /// start over every --window from the sandbox's start) or token-bucket (--quota tokens, refilled
    /// evenly at --quota per --window).
    #[arg(long, value_name = "sliding|fixed|token-bucket")]
    pub window_kind: Option<WindowKind>,
    /// Enforce only N requests per window while the headers still announce --quota, as a server
    /// whose stated policy is wrong.
    #[arg(long, value_name = "N")]
    pub enforced_quota: Option<u32>,
    /// Send the Ratelimit header's t with milliseconds (t=7.314) instead of whole seconds.
    #[arg(long)]
    pub fractional_reset: bool,
    /// Another consumer sends N requests at once, OFFSET after the sandbox starts (e.g. 50@5s),
    /// counted like every other request. Repeatable.
    #[arg(long, value_name = "N@OFFSET")]
    pub background_burst: Vec<Burst>,
}

impl RateLimitArgs {
    fn overlay(&self, rate: &mut RateLimit) {
        set(&mut rate.quota, self.quota);
        if self.no_rate_limit {
            rate.quota = 0;
        }
        set(&mut rate.window, self.window);
        set(&mut rate.block, self.block);
        set(&mut rate.background_load, self.background_load.map(Some));
        set(&mut rate.force_429_after, self.force_429_after.map(Some));
        if let Some(HeaderDialect(dialect)) = self.ratelimit_dialect {
            rate.dialect = dialect;
        }
        set(&mut rate.window_kind, self.window_kind);
        set(&mut rate.enforced_quota, self.enforced_quota.map(Some));
        rate.fractional_reset |= self.fractional_reset;
        rate.background_bursts.extend_from_slice(&self.background_burst);
    }
}

/// `--ratelimit-dialect`: a dialect cfrevoke reads, or no headers at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderDialect(pub Option<Dialect>);

fn header_dialect() -> impl clap::builder::TypedValueParser<Value = HeaderDialect> {
    let names = Dialect::ALL.map(Dialect::name).into_iter().chain([Dialect::NONE]);
    let parser = clap::builder::PossibleValuesParser::new(names);
    clap::builder::TypedValueParser::map(parser, |name: String| HeaderDialect(Dialect::from_name(&name)))
}

/// The flags over the profile's [`Faults`].
#[derive(Debug, Clone, clap::Args)]
pub struct FaultArgs {
    /// Mean added latency (exponentially distributed).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub latency_mean: Option<Duration>,
    /// Cap on the added latency.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub latency_max: Option<Duration>,
    /// Share of requests answered 500/502/503.
    #[arg(long, value_parser = share, value_name = "0..1")]
    pub error_rate: Option<f64>,
    /// Share of connections closed without an answer.
    #[arg(long, value_parser = share, value_name = "0..1")]
    pub reset_rate: Option<f64>,
    /// Share of answers held back for --slow-delay.
    #[arg(long, value_parser = share, value_name = "0..1")]
    pub slow_rate: Option<f64>,
    /// How long slow answers are held back.
    #[arg(long, value_parser = positive_duration, value_name = "DURATION")]
    pub slow_delay: Option<Duration>,
    /// Share of answers with an empty or truncated body.
    #[arg(long, value_parser = share, value_name = "0..1")]
    pub malformed_rate: Option<f64>,
    /// Probability that a fault strikes after the request was carried out.
    #[arg(long, value_parser = share, value_name = "0..1")]
    pub fault_after_change: Option<f64>,
}

impl FaultArgs {
    fn overlay(&self, faults: &mut Faults) {
        set(&mut faults.latency_mean, self.latency_mean);
        set(&mut faults.latency_max, self.latency_max.map(Some));
        set(&mut faults.error_rate, self.error_rate);
        set(&mut faults.reset_rate, self.reset_rate);
        set(&mut faults.slow_rate, self.slow_rate);
        set(&mut faults.slow_delay, self.slow_delay);
        set(&mut faults.malformed_rate, self.malformed_rate);
        set(&mut faults.after_change, self.fault_after_change);
    }
}

fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *slot = value;
    }
}

/// Serves until Ctrl-C. The first two lines of stdout are machine-readable
/// (`base_url=...`, `token=...`) for tests that start the binary on port 0.
/// Serves until Ctrl-C on a runtime of its own.
pub fn run(args: &SandboxArgs) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new().context(crate::output::logging::NO_RUNTIME)?.block_on(serve(args))
}

async fn serve(args: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let seed = config.seed;
    let sandbox = Sandbox::start(config).await?;
    let certificates = sandbox.certificates();
    if let Some(path) = &args.write_csv {
        write_cert_csv(path, &certificates)?;
    }
    if let Some(dir) = &args.write_pem {
        write_pems(dir, &sandbox, &certificates)?;
    }
    if let (Some(path), Some(ca)) = (&args.tls_ca_out, sandbox.ca()) {
        std::fs::write(path, ca.pem()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let base_url = sandbox.base_url();
    let token = sandbox.token();
    let (email, key) = sandbox.email_and_key();
    let mut out = std::io::stdout().lock();
    writeln!(out, "base_url={base_url}")?;
    writeln!(out, "token={token}")?;
    writeln!(out, "Cloudflare API sandbox: a local simulation. No real certificate is touched.")?;
    writeln!(
        out,
        "Serving {} client certificates in {} zones (seed {seed}); journal at {}",
        certificates.len(),
        sandbox.zone_count(),
        sandbox.stats_url()
    )?;
    if let Some(path) = &args.write_csv {
        writeln!(out, "Certificates written to {}", path.display())?;
    }
    if let Some(dir) = &args.write_pem {
        writeln!(out, "Certificate PEMs written to {}", dir.display())?;
    }
    if let Some(path) = &args.tls_ca_out {
        writeln!(out, "Throwaway CA written to {}", path.display())?;
    }
    writeln!(out, "Point cfrevoke at it with:")?;
    writeln!(out, "export CLOUDFLARE_BASE_URL={base_url}")?;
    if sandbox.ca().is_some() {
        match &args.tls_ca_out {
            Some(path) => writeln!(out, "cfrevoke ... --ca-cert {}", path.display())?,
            None => writeln!(out, "# pass --tls-ca-out FILE to get the CA to trust with --ca-cert FILE")?,
        }
    }
    writeln!(out, "export CLOUDFLARE_API_TOKEN={token}")?;
    writeln!(out, "# or, with legacy credentials: export CLOUDFLARE_EMAIL={email} CLOUDFLARE_API_KEY={key}")?;
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    sandbox.shutdown().await;
    Ok(ExitCode::Success)
}

/// One PEM file per certificate, named by its IDs; the directory is made if
/// missing. Only asked for, since it signs every certificate up front.
fn write_pems(dir: &Path, sandbox: &Sandbox, certificates: &[(ZoneId, CertId)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for &(zone, cert) in certificates {
        let path = dir.join(format!("{zone}_{cert}.pem"));
        let pem = sandbox.pem(zone, cert).context("a served certificate has a PEM")?;
        std::fs::write(&path, pem).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The `zone_id,certificate_id` pairs of a CSV, in file order. Rows whose
/// IDs do not parse are skipped with a warning: the sandbox serves what it
/// can, and the revoke run will report those rows itself.
pub fn read_cert_csv(path: &Path) -> anyhow::Result<Vec<(ZoneId, CertId)>> {
    let plan = Plan::build(path)?;
    if plan.invalid > 0 {
        eprintln!("warning: {} invalid rows skipped:\n{}", plan.invalid, plan.problem_report());
    }
    Ok(plan.pairs()?)
}

fn write_cert_csv(path: &Path, certs: &[(ZoneId, CertId)]) -> anyhow::Result<()> {
    let context = || format!("cannot write {}", path.display());
    let mut writer = csv::Writer::from_path(path).with_context(context)?;
    writer.write_record(["zone_id", "certificate_id"]).with_context(context)?;
    for (zone, cert) in certs {
        writer.write_record([zone.to_string(), cert.to_string()]).with_context(context)?;
    }
    writer.flush().with_context(context)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    fn config(flags: &[&str]) -> anyhow::Result<SandboxConfig> {
        let cli = Cli::try_parse_from(std::iter::once("sandbox").chain(flags.iter().copied()))?;
        cli.args.config()
    }

    #[test]
    fn flags_override_the_profile() {
        let config = config(&[
            "--listen=127.0.0.1:0",
            "--demo",
            "--quota=10",
            "--window=2s",
            "--block=250ms",
            "--error-rate=0.5",
            "--revoke-delay=100ms",
            "--token-expires-after=7",
            "--forbid-writes",
            "--enforcing-zones=0.5",
        ])
        .unwrap();
        assert_eq!((config.rate.quota, config.rate.window), (10, Duration::from_secs(2)));
        assert_eq!(config.rate.block, Duration::from_millis(250));
        assert_eq!(config.rate.force_429_after, SandboxConfig::demo().rate.force_429_after);
        assert_eq!(config.faults.error_rate, 0.5);
        assert_eq!(config.faults.reset_rate, SandboxConfig::demo().faults.reset_rate);
        assert_eq!(config.revoke_delay, Duration::from_millis(100));
        assert_eq!((config.token_expires_after, config.forbid_writes), (Some(7), true));
        assert_eq!((config.generate, config.zones), DEFAULT_GENERATED);
        assert_eq!(config.enforcing, Enforcing::Fraction(0.5));
    }

    #[test]
    fn limiter_flags_set_the_window_kind_the_lie_the_format_and_the_bursts() {
        let config = config(&[
            "--quota=100",
            "--window-kind=token-bucket",
            "--enforced-quota=80",
            "--fractional-reset",
            "--background-burst=50@5s",
            "--background-burst",
            "3@1m",
        ])
        .unwrap();
        assert_eq!(config.rate.window_kind, WindowKind::TokenBucket);
        assert_eq!((config.rate.enforced_quota, config.rate.fractional_reset), (Some(80), true));
        let bursts = [
            Burst { requests: 50, offset: Duration::from_secs(5) },
            Burst { requests: 3, offset: Duration::from_secs(60) },
        ];
        assert_eq!(config.rate.background_bursts, bursts);
        assert!(self::config(&["--window-kind=leaky"]).is_err());
        assert!(self::config(&["--background-burst=50"]).is_err());
        assert!(self::config(&["--quota=100", "--enforced-quota=120"]).is_err());
    }

    #[test]
    fn a_random_background_load_draws_from_the_seed_and_needs_a_rate() {
        let config = config(&["--background-load=1.5", "--background-random", "--seed=9"]).unwrap();
        assert_eq!((config.rate.background_load, config.rate.random_background), (Some(1.5), Some(9)));
        assert_eq!(self::config(&["--background-load=1.5"]).unwrap().rate.random_background, None);
        assert!(self::config(&["--background-random"]).is_err());
    }

    #[test]
    fn defaults_are_the_faithful_profile_with_something_to_serve() {
        let config = config(&[]).unwrap();
        let expected = SandboxConfig {
            listen: "127.0.0.1:8787".parse().unwrap(),
            generate: 100,
            zones: 3,
            ..SandboxConfig::default()
        };
        assert_eq!(config, expected);
        assert_eq!(self::config(&["--no-rate-limit"]).unwrap().rate.quota, 0);
    }

    #[test]
    fn refuses_to_listen_beyond_loopback_and_bad_rates() {
        let refused = config(&["--listen=0.0.0.0:8787"]).unwrap_err();
        assert_eq!(crate::exit::code_for(&refused), ExitCode::Usage);
        assert!(config(&["--error-rate=2"]).is_err());
        assert!(config(&["--window=soon"]).is_err());
    }

    #[test]
    fn reads_certificates_from_csv_skipping_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certs.csv");
        std::fs::write(
            &path,
            "note,zone_id,certificate_id\n\
             a,023e105f4ecef8ad9ca31a8372d0c353,568b6b74-7b0c-4755-8840-4e3b8c24adeb\n\
             b,nope,568b6b74-7b0c-4755-8840-4e3b8c24adeb\n\
             c, 023E105F4ECEF8AD9CA31A8372D0C353 ,0123456789abcdef0123456789abcdef\n\
             d\n",
        )
        .unwrap();
        let config = config(&["--certs", path.to_str().unwrap()]).unwrap();
        let ids: Vec<String> = config.certs.iter().map(|(z, c)| format!("{z}/{c}")).collect();
        assert_eq!(
            ids,
            [
                "023e105f4ecef8ad9ca31a8372d0c353/568b6b74-7b0c-4755-8840-4e3b8c24adeb",
                "023e105f4ecef8ad9ca31a8372d0c353/0123456789abcdef0123456789abcdef"
            ]
        );
        assert_eq!(config.generate, 0, "a CSV replaces the invented certificates");

        let written = dir.path().join("out.csv");
        write_cert_csv(&written, &config.certs).unwrap();
        assert_eq!(read_cert_csv(&written).unwrap(), config.certs);
        std::fs::write(&path, "zone,cert\n").unwrap();
        assert!(read_cert_csv(&path).is_err());
    }

    #[test]
    fn each_ratelimit_dialect_or_none() {
        assert_eq!(config(&[]).unwrap().rate.dialect, Some(Dialect::Structured));
        for dialect in Dialect::ALL {
            let flag = format!("--ratelimit-dialect={dialect}");
            assert_eq!(config(&[&flag]).unwrap().rate.dialect, Some(dialect));
        }
        assert_eq!(config(&["--ratelimit-dialect=none"]).unwrap().rate.dialect, None);
        assert!(config(&["--ratelimit-dialect=x-rate-limit"]).is_err());
    }
}
