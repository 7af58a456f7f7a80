//! `cfrevoke list`: builds revoke's input from the API. Every page of every
//! zone is read first and the CSV written only then, so a list never mixes
//! with a revocation (paging while revoking skips certificates) and a failed
//! run leaves no half-written file behind.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::api::{list_query, CertStatus, ClientCertificate};
use crate::cli::api_args::ApiArgs;
use crate::cli::csv_file::CsvFile;
use crate::cli::selectors::SelectorArgs;
use crate::cli::zones::{ChosenZone, ZoneArgs};
use crate::exit::{refused, ExitCode};
use crate::input::ids::{CertId, ZoneId};
use crate::operations::cert_filter::{CertFilter, Wanted};
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
const HEADER: [&str; 10] = [
    "zone_id",
    "zone_name",
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
#[command(group = clap::ArgGroup::new("zone_source").args(["zones", "zones_file", "all_zones"]).required(true).multiple(true))]
pub struct ListArgs {
    #[command(flatten)]
    pub zones: ZoneArgs,

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

    /// Only certificates whose organization (O) matches this pattern; * and ? work as in --common-name.
    #[arg(long, value_name = "GLOB")]
    pub organization: Option<Glob>,

    /// Only certificates whose organizational unit (OU) matches this pattern; * and ? work as in --common-name.
    #[arg(long, value_name = "GLOB")]
    pub organizational_unit: Option<Glob>,

    #[command(flatten)]
    pub selectors: SelectorArgs,

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
    let choice = args.zones.choice()?;
    let filter = CertFilter {
        common_name: args.common_name.clone(),
        ca: args.ca.clone(),
        organization: args.organization.clone(),
        organizational_unit: args.organizational_unit.clone(),
        issued_before: args.issued_before,
        expires_before: args.expires_before,
        identifiers: args.selectors.wanted()?,
    };
    let output = CsvFile::open(&args.output)?;
    let api = args.api.settings(args.api.credentials()?)?;
    // Nothing to draw while listing; the hidden bar only lends its writer.
    let session = Session::start(verbosity, Progress::new(0, true, "").writer(), None, &audit::run_id())?;
    // One request at a time: pages of a zone depend on each other, and the
    // rate, not concurrency, is what limits a listing.
    let dispatcher = Arc::new(api.dispatcher(&session, 1)?);
    let Some(zones) = choice.resolve(&session, &dispatcher)? else {
        eprintln!("interrupted: nothing was written");
        return Ok(ExitCode::Interrupted);
    };
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
    let destination = output.write(&HEADER, &listing.rows)?;
    let unmatched = listing.unmatched(&filter);
    // Said even with --quiet: a leaked certificate not found is the news.
    for wanted in &unmatched {
        eprintln!("not found: {} (from {})", wanted.id, wanted.source);
    }
    if !verbosity.is_quiet() {
        eprint!("{}", listing.report(&destination, unmatched.len()));
    }
    Ok(if unmatched.is_empty() { ExitCode::Success } else { ExitCode::RowsFailed })
}

/// Every zone, one after the other, each read to its end.
async fn list(
    dispatcher: &Dispatcher,
    zones: &[ChosenZone],
    status: Option<CertStatus>,
    filter: &CertFilter,
) -> Result<Listing, ListError> {
    let mut listing = Listing::default();
    for zone in zones {
        let certificates = listing::list_zone(dispatcher, zone.id, status).await?;
        listing.add(zone, &certificates, filter);
    }
    Ok(listing)
}

/// The rows to write and what each zone contributed.
#[derive(Debug, Default)]
struct Listing {
    rows: Vec<[String; HEADER.len()]>,
    zones: Vec<ZoneCount>,
    /// Indices of the filter's identifiers that some written row answers to.
    identified: HashSet<usize>,
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
    fn add(&mut self, chosen: &ChosenZone, certificates: &[ClientCertificate], filter: &CertFilter) {
        let zone = chosen.id;
        let mut count = ZoneCount { zone, listed: certificates.len(), matched: 0, unusable: 0 };
        for cert in certificates.iter().filter(|c| filter.matches(c)) {
            match CertId::parse(cert.id.as_bytes()) {
                Ok(id) => {
                    self.identified.extend(filter.identified(cert));
                    self.rows.push(row(chosen, id, cert));
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

    /// The identifiers no written row answers to, in the order given.
    fn unmatched<'a>(&self, filter: &'a CertFilter) -> Vec<&'a Wanted> {
        filter.identifiers.iter().enumerate().filter(|(i, _)| !self.identified.contains(i)).map(|(_, w)| w).collect()
    }

    /// Counts per zone and in total, for stderr.
    fn report(&self, destination: &str, unmatched: usize) -> String {
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
        if unmatched > 0 {
            out.push_str(&format!(", {unmatched} identifier(s) matched no certificate"));
        }
        out.push_str(&format!("; written to {destination}\n"));
        out
    }
}

/// One output row, in [`HEADER`] order; an absent field is an empty cell.
fn row(zone: &ChosenZone, id: CertId, cert: &ClientCertificate) -> [String; HEADER.len()] {
    let text = |field: &Option<String>| field.clone().unwrap_or_default();
    [
        zone.id.to_string(),
        text(&zone.name),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::csv_file::write_csv;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn a_row_follows_the_header_and_leaves_absent_fields_empty() {
        let cert = ClientCertificate {
            id: "568B6B74-7B0C-4755-8840-4E3B8C24ADEB".into(),
            status: Some(CertStatus::PendingRevocation),
            common_name: Some("a,b".into()),
            ..ClientCertificate::default()
        };
        let zone = ChosenZone { id: ZONE.parse().unwrap(), name: Some("shop.example".into()) };
        let row = row(&zone, cert.id.parse().unwrap(), &cert);
        let mut out = Vec::new();
        write_csv(&mut out, &HEADER, &[row]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "{}\n{ZONE},shop.example,568b6b74-7b0c-4755-8840-4e3b8c24adeb,\"a,b\",pending_revocation,,,,,\n",
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
        listing.add(&ChosenZone { id: ZONE.parse().unwrap(), name: None }, &certs, &CertFilter::default());
        assert_eq!(listing.rows.len(), 1);
        let report = listing.report("out.csv", 0);
        assert!(report.contains("listed 2, matched 1, 1 left out (unusable ID)"), "{report}");
        assert!(
            report.ends_with("total: listed 2, matched 1 in 1 zones, 1 left out (unusable ID); written to out.csv\n")
        );
    }
}
