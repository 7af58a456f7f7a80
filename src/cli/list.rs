//! `cfrevoke list`: builds revoke's input from the API. Every page of every
//! zone is read first and the CSV written only then, so a list never mixes
//! with a revocation (paging while revoking skips certificates) and a failed
//! run leaves no half-written file behind.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tempfile::NamedTempFile;

use crate::api::{list_query, CertStatus, ClientCertificate};
use crate::cli::api_args::ApiArgs;
use crate::exit::{refused, usage, ExitCode};
use crate::input::ids::{CertId, ZoneId};
use crate::input::reader::Problem;
use crate::operations::cert_filter::CertFilter;
use crate::operations::glob::Glob;
use crate::operations::listing::{self, ListError};
use crate::operations::timestamp;
use crate::output::audit;
use crate::output::logging::Verbosity;
use crate::output::progress::Progress;
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::session::{self, Session};

/// Columns of the output; `revoke` reads the first two and ignores the rest,
/// which are there for the person deciding what to revoke.
const HEADER: [&str; 9] = [
    "zone_id",
    "certificate_id",
    "common_name",
    "status",
    "serial_number",
    "issued_on",
    "expires_on",
    "certificate_authority",
    "fingerprint_sha256",
];

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("zone_source").args(["zones", "zones_file"]).required(true).multiple(true))]
pub struct ListArgs {
    /// Zone to list (32 hex characters); repeat for several.
    #[arg(long = "zone", value_name = "ZONE_ID")]
    pub zones: Vec<ZoneId>,

    /// File of zone IDs, one per line; blank lines and lines starting with # are skipped.
    #[arg(long, value_name = "PATH")]
    pub zones_file: Option<PathBuf>,

    /// Only certificates in this state; the API does this filtering.
    #[arg(long, value_enum, default_value_t = StatusFilter(Some(CertStatus::Active)))]
    pub status: StatusFilter,

    /// Only common names matching this pattern: * for any run of characters, ? for one; case-insensitive.
    #[arg(long, value_name = "GLOB")]
    pub common_name: Option<Glob>,

    /// Only certificates issued before this instant: 2024-06-01 (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = timestamp::parse, value_name = "DATE")]
    pub issued_before: Option<SystemTime>,

    /// Only certificates expiring before this instant: 2024-06-01 (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = timestamp::parse, value_name = "DATE")]
    pub expires_before: Option<SystemTime>,

    /// Only certificates from this certificate authority, by name or ID; * and ? work as in --common-name.
    #[arg(long, value_name = "NAME-OR-ID")]
    pub ca: Option<Glob>,

    /// CSV to create, never overwritten; - writes to standard output.
    #[arg(short, long, default_value = "-", value_name = "PATH")]
    pub output: PathBuf,

    #[command(flatten)]
    pub api: ApiArgs,
}

/// The `status` values the list endpoint takes: `all` (`None`), or one
/// status by the API's own name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFilter(Option<CertStatus>);

impl StatusFilter {
    /// `all`, then every status in the API's order.
    const EVERY: [StatusFilter; CertStatus::ALL.len() + 1] = {
        let mut every = [StatusFilter(None); CertStatus::ALL.len() + 1];
        let mut i = 0;
        while i < CertStatus::ALL.len() {
            every[i + 1] = StatusFilter(Some(CertStatus::ALL[i]));
            i += 1;
        }
        every
    };

    fn api(self) -> Option<CertStatus> {
        self.0
    }
}

impl clap::ValueEnum for StatusFilter {
    fn value_variants<'a>() -> &'a [Self] {
        &StatusFilter::EVERY
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.map_or(list_query::ALL, CertStatus::as_str)))
    }
}

pub fn run(args: &ListArgs, verbosity: Verbosity) -> anyhow::Result<ExitCode> {
    let zones = zones(args)?;
    let filter = CertFilter {
        common_name: args.common_name.clone(),
        ca: args.ca.clone(),
        issued_before: args.issued_before,
        expires_before: args.expires_before,
    };
    // Checked before the first request: an hour of paging must not end in
    // "file exists".
    let output = Output::open(&args.output)?;
    let api = args.api.settings(args.api.credentials()?);
    // Nothing to draw while listing; the hidden bar only lends its writer.
    let session = Session::start(verbosity, Progress::new(0, true, "").writer(), None, &audit::run_id())?;
    // One request at a time: pages of a zone depend on each other, and the
    // rate, not concurrency, is what limits a listing.
    let dispatcher = Arc::new(api.dispatcher(1)?);
    let listed =
        session.block_on(session::interruptible(&dispatcher, list(&dispatcher, &zones, args.status.api(), &filter)));
    let listing = match listed {
        Ok(listing) => listing,
        Err(e @ ListError::CredentialsRefused { .. }) => return Err(refused(format!("{e}; nothing was written"))),
        Err(ListError::Stopped { .. }) => {
            eprintln!("interrupted: nothing was written");
            return Ok(ExitCode::Interrupted);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("listing failed, so nothing was written")),
    };
    let destination = output.write(&listing.rows)?;
    if !verbosity.is_quiet() {
        eprint!("{}", listing.report(&destination));
    }
    Ok(ExitCode::Success)
}

/// The zones of `--zone` and `--zones-file`, each once, in the order given.
fn zones(args: &ListArgs) -> anyhow::Result<Vec<ZoneId>> {
    let mut zones = args.zones.clone();
    if let Some(path) = &args.zones_file {
        zones.extend(read_zones_file(path)?);
    }
    let mut seen = std::collections::HashSet::new();
    zones.retain(|zone| seen.insert(*zone));
    Ok(zones)
}

/// One zone ID per line. Every bad line is reported, located like revoke's
/// input problems, before anything is sent.
fn read_zones_file(path: &Path) -> anyhow::Result<Vec<ZoneId>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read the zones file {shown}: {e}")))?;
    let (mut zones, mut problems) = (Vec::new(), Vec::new());
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match ZoneId::parse(line.as_bytes()) {
            Ok(zone) => zones.push(zone),
            Err(e) => {
                let problem = Problem { line: index as u64 + 1, column: None, expected: e.to_string() };
                problems.push(problem.located(&shown));
            }
        }
    }
    if !problems.is_empty() {
        return Err(usage(format!("{}\nthe zones file must hold one zone ID per line", problems.join("\n"))));
    }
    if zones.is_empty() {
        return Err(usage(format!("{shown}: no zone ID in the file (expected one per line)")));
    }
    Ok(zones)
}

/// Every zone, one after the other, each read to its end.
async fn list(
    dispatcher: &Dispatcher,
    zones: &[ZoneId],
    status: Option<CertStatus>,
    filter: &CertFilter,
) -> Result<Listing, ListError> {
    let mut listing = Listing::default();
    for &zone in zones {
        let certificates = listing::list_zone(dispatcher, zone, status).await?;
        listing.add(zone, &certificates, filter);
    }
    Ok(listing)
}

/// The rows to write and what each zone contributed.
#[derive(Debug, Default)]
struct Listing {
    rows: Vec<[String; HEADER.len()]>,
    zones: Vec<ZoneCount>,
}

#[derive(Debug)]
struct ZoneCount {
    zone: ZoneId,
    listed: usize,
    matched: usize,
    /// Matched, but with an ID revoke would refuse, so not written.
    unusable: usize,
}

impl Listing {
    fn add(&mut self, zone: ZoneId, certificates: &[ClientCertificate], filter: &CertFilter) {
        let mut count = ZoneCount { zone, listed: certificates.len(), matched: 0, unusable: 0 };
        for cert in certificates.iter().filter(|c| filter.matches(c)) {
            match CertId::parse(cert.id.as_bytes()) {
                Ok(id) => {
                    self.rows.push(row(zone, id, cert));
                    count.matched += 1;
                }
                Err(e) => {
                    tracing::warn!(zone_id = %zone, "certificate left out: expected {e}");
                    count.unusable += 1;
                }
            }
        }
        self.zones.push(count);
    }

    /// Counts per zone and in total, for stderr.
    fn report(&self, destination: &str) -> String {
        let mut out = String::new();
        let (mut listed, mut matched, mut unusable) = (0, 0, 0);
        for zone in &self.zones {
            out.push_str(&format!("zone {}: listed {}, matched {}", zone.zone, zone.listed, zone.matched));
            if zone.unusable > 0 {
                out.push_str(&format!(", {} left out (unusable ID)", zone.unusable));
            }
            out.push('\n');
            (listed, matched, unusable) = (listed + zone.listed, matched + zone.matched, unusable + zone.unusable);
        }
        out.push_str(&format!("total: listed {listed}, matched {matched} in {} zones", self.zones.len()));
        if unusable > 0 {
            out.push_str(&format!(", {unusable} left out (unusable ID)"));
        }
        out.push_str(&format!("; written to {destination}\n"));
        out
    }
}

/// One output row, in [`HEADER`] order; an absent field is an empty cell.
fn row(zone: ZoneId, id: CertId, cert: &ClientCertificate) -> [String; HEADER.len()] {
    let text = |field: &Option<String>| field.clone().unwrap_or_default();
    [
        zone.to_string(),
        id.to_string(),
        text(&cert.common_name),
        cert.status.map(CertStatus::as_str).unwrap_or_default().to_string(),
        text(&cert.serial_number),
        text(&cert.issued_on),
        text(&cert.expires_on),
        cert.certificate_authority.as_ref().map(|ca| ca.name.clone()).unwrap_or_default(),
        text(&cert.fingerprint_sha256),
    ]
}

/// Where the CSV goes. A file is written under a temporary name beside the
/// target and moved into place without replacing anything, so the path holds
/// either nothing or the complete listing.
enum Output {
    Stdout,
    File { path: PathBuf, temp: NamedTempFile },
}

impl Output {
    fn open(path: &Path) -> anyhow::Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output::Stdout);
        }
        if path.symlink_metadata().is_ok() {
            return Err(usage(exists(path)));
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".cfrevoke-list-")
            .tempfile_in(dir)
            .map_err(|e| usage(format!("cannot create {}: {e}", path.display())))?;
        Ok(Output::File { path: path.to_path_buf(), temp })
    }

    /// Writes the CSV; returns where it went, for the report.
    fn write(self, rows: &[[String; HEADER.len()]]) -> anyhow::Result<String> {
        match self {
            Output::Stdout => {
                write_csv(io::stdout().lock(), rows).context("cannot write to standard output")?;
                Ok("standard output".to_string())
            }
            Output::File { path, temp } => {
                let context = || format!("cannot write {}", path.display());
                write_csv(temp.as_file(), rows).with_context(context)?;
                temp.as_file().sync_all().with_context(context)?;
                temp.persist_noclobber(&path).map_err(|e| match e.error.kind() {
                    io::ErrorKind::AlreadyExists => anyhow::anyhow!(exists(&path)),
                    _ => anyhow::Error::new(e.error).context(context()),
                })?;
                Ok(path.display().to_string())
            }
        }
    }
}

fn exists(path: &Path) -> String {
    format!("{} already exists; cfrevoke never overwrites a file: pass --output with a new path", path.display())
}

fn write_csv(out: impl Write, rows: &[[String; HEADER.len()]]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(HEADER)?;
    for row in rows {
        csv.write_record(row)?;
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn zones_file_takes_one_id_per_line_and_locates_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.txt");
        std::fs::write(&path, format!("\u{feff}# incident 4711\r\n\n  {}  \r\n{ZONE}\n", ZONE.to_uppercase())).unwrap();
        let zones: Vec<String> = read_zones_file(&path).unwrap().iter().map(ZoneId::to_string).collect();
        assert_eq!(zones, [ZONE, ZONE]);

        std::fs::write(&path, format!("{ZONE}\nzone_id\n\n{ZONE}/x\n")).unwrap();
        let err = read_zones_file(&path).unwrap_err();
        assert_eq!(crate::exit::code_for(&err), ExitCode::Usage);
        let text = err.to_string();
        assert!(text.contains("zones.txt:2: expected a zone ID") && text.contains("zones.txt:4: expected"), "{text}");

        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert!(read_zones_file(&path).unwrap_err().to_string().contains("no zone ID"));
    }

    #[test]
    fn a_row_follows_the_header_and_leaves_absent_fields_empty() {
        let cert = ClientCertificate {
            id: "568B6B74-7B0C-4755-8840-4E3B8C24ADEB".into(),
            status: Some(CertStatus::PendingRevocation),
            common_name: Some("a,b".into()),
            ..ClientCertificate::default()
        };
        let row = row(ZONE.parse().unwrap(), cert.id.parse().unwrap(), &cert);
        let mut out = Vec::new();
        write_csv(&mut out, &[row]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "{}\n{ZONE},568b6b74-7b0c-4755-8840-4e3b8c24adeb,\"a,b\",pending_revocation,,,,,\n",
                HEADER.join(",")
            )
        );
    }

    #[test]
    fn unusable_ids_are_counted_not_written() {
        let mut listing = Listing::default();
        let certs: Vec<ClientCertificate> = ["0123456789abcdef0123456789abcdef", "../../x"]
            .iter()
            .map(|id| ClientCertificate { id: id.to_string(), ..ClientCertificate::default() })
            .collect();
        listing.add(ZONE.parse().unwrap(), &certs, &CertFilter::default());
        assert_eq!(listing.rows.len(), 1);
        let report = listing.report("out.csv");
        assert!(report.contains("listed 2, matched 1, 1 left out (unusable ID)"), "{report}");
        assert!(
            report.ends_with("total: listed 2, matched 1 in 1 zones, 1 left out (unusable ID); written to out.csv\n")
        );
    }
}
