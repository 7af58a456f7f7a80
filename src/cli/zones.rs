//! The zone choice of the commands that work zone by zone (`list`,
//! `enforcement`): one definition, so a new way to name zones (by name,
//! every zone of an account) reaches them all at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::{refused, usage};
use crate::input::ids::ZoneId;
use crate::input::reader::Problem;
use crate::operations::listing::ListError;
use crate::operations::zones::{self, AccountId, NamedZone, ZoneName};
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::session::{self, Session};

/// What `--zone` and a zones file line take, for their error messages.
const WANTED: &str = "a zone ID (32 hex characters) or a zone name such as example.com";

#[derive(Debug, Clone, clap::Args)]
pub struct ZoneArgs {
    /// Zone to read, by ID (32 hex characters) or by name (example.com); repeat for several.
    #[arg(long = "zone", value_name = "ZONE")]
    pub zones: Vec<ZoneRef>,

    /// File of zone IDs or names, one per line; blank lines and lines starting with # are skipped.
    #[arg(long, value_name = "PATH")]
    pub zones_file: Option<PathBuf>,

    /// Every zone the token can read (its permission "Zone Read" lists them).
    #[arg(long, conflicts_with_all = ["zones", "zones_file"])]
    pub all_zones: bool,

    /// With --all-zones: only the zones of this account (32 hex characters).
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub account: Option<AccountId>,
}

/// A zone as given: its ID, or a name that `GET /zones` turns into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneRef {
    Id(ZoneId),
    Name(ZoneName),
}

impl std::str::FromStr for ZoneRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match ZoneId::parse(s.as_bytes()) {
            Ok(id) => Ok(ZoneRef::Id(id)),
            Err(_) => s.parse().map(ZoneRef::Name).map_err(|_| format!("expected {WANTED}")),
        }
    }
}

/// The zones chosen on the command line, read (the zones file) but not yet
/// resolved: nothing has been sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneChoice {
    /// `--zone` and `--zones-file`, in the order given; empty when neither was.
    Given(Vec<ZoneRef>),
    /// `--all-zones`, of one account or of every account the token reaches.
    All(Option<AccountId>),
}

/// A zone to work on, and its name where the choice made it known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenZone {
    pub id: ZoneId,
    pub name: Option<String>,
}

impl ZoneArgs {
    /// The choice, with the zones file read and checked: every input error
    /// comes before the first request.
    pub fn choice(&self) -> anyhow::Result<ZoneChoice> {
        if self.all_zones {
            return Ok(ZoneChoice::All(self.account.clone()));
        }
        // Checked here: clap's `requires` counts a flag's default as given.
        if self.account.is_some() {
            return Err(usage("--account narrows --all-zones; give --all-zones with it"));
        }
        let mut zones = self.zones.clone();
        if let Some(path) = &self.zones_file {
            zones.extend(read_zones_file(path)?);
        }
        Ok(ZoneChoice::Given(zones))
    }
}

impl ZoneChoice {
    /// The zones' IDs, each once, in the order given: names resolved and
    /// `--all-zones` listed with `GET /zones` through `dispatcher`. A name
    /// the token cannot see is a usage error naming it, so no certificate
    /// request is sent for a typo. `None` when interrupted.
    pub fn resolve(&self, session: &Session, dispatcher: &Arc<Dispatcher>) -> anyhow::Result<Option<Vec<ChosenZone>>> {
        let resolved = session.block_on(session::interruptible(dispatcher, self.read(dispatcher)));
        let (chosen, unknown) = match resolved {
            Ok(found) => found,
            Err(e @ ListError::CredentialsRefused { .. }) => return Err(refused(format!("{e}; nothing was written"))),
            Err(ListError::Stopped { .. }) => return Ok(None),
            Err(e) => return Err(anyhow::Error::new(e).context("reading the zones failed, so nothing was written")),
        };
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(ZoneName::to_string).collect();
            return Err(usage(format!(
                "no zone named {} among the zones the token can read (a name must match exactly); nothing was \
                 written",
                names.join(", ")
            )));
        }
        if let (ZoneChoice::All(account), true) = (self, chosen.is_empty()) {
            let of = account.as_ref().map(|a| format!(" of account {a}")).unwrap_or_default();
            return Err(usage(format!("--all-zones: the token can read no zone{of}; nothing was written")));
        }
        let mut seen = std::collections::HashSet::new();
        Ok(Some(chosen.into_iter().filter(|zone| seen.insert(zone.id)).collect()))
    }

    /// The zones found, and the names that found none.
    async fn read(&self, dispatcher: &Dispatcher) -> Result<(Vec<ChosenZone>, Vec<ZoneName>), ListError> {
        let named = |zone: NamedZone| ChosenZone { id: zone.id, name: Some(zone.name) };
        let given = match self {
            ZoneChoice::All(account) => {
                let all = zones::all(dispatcher, account.as_ref()).await?;
                return Ok((all.into_iter().map(named).collect(), Vec::new()));
            }
            ZoneChoice::Given(given) => given,
        };
        let (mut chosen, mut unknown) = (Vec::new(), Vec::new());
        for zone in given {
            match zone {
                ZoneRef::Id(id) => chosen.push(ChosenZone { id: *id, name: None }),
                ZoneRef::Name(name) => match zones::find(dispatcher, name).await? {
                    Some(found) => chosen.push(named(found)),
                    None => unknown.push(name.clone()),
                },
            }
        }
        Ok((chosen, unknown))
    }
}

/// One zone ID or name per line. Every bad line is reported, located like
/// revoke's input problems, before anything is sent.
fn read_zones_file(path: &Path) -> anyhow::Result<Vec<ZoneRef>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read the zones file {shown}: {e}")))?;
    let (mut zones, mut problems) = (Vec::new(), Vec::new());
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse() {
            Ok(zone) => zones.push(zone),
            Err(_) => {
                let problem = Problem { line: index as u64 + 1, column: None, expected: WANTED.to_string() };
                problems.push(problem.located(&shown));
            }
        }
    }
    if !problems.is_empty() {
        return Err(usage(format!("{}\nthe zones file must hold one zone ID or name per line", problems.join("\n"))));
    }
    if zones.is_empty() {
        return Err(usage(format!("{shown}: no zone in the file (expected one ID or name per line)")));
    }
    Ok(zones)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;

    const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    #[test]
    fn zones_file_takes_one_id_per_line_and_locates_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.txt");
        std::fs::write(&path, format!("\u{feff}# incident 4711\r\n\n  {}  \r\n{ZONE}\n", ZONE.to_uppercase())).unwrap();
        let id = ZoneRef::Id(ZONE.parse().unwrap());
        assert_eq!(read_zones_file(&path).unwrap(), [id.clone(), id]);

        std::fs::write(&path, "Shop.example.com\n").unwrap();
        assert_eq!(read_zones_file(&path).unwrap(), [ZoneRef::Name("shop.example.com".parse().unwrap())]);

        std::fs::write(&path, format!("{ZONE}\nzone_id\n\n{ZONE}/x\n")).unwrap();
        let err = read_zones_file(&path).unwrap_err();
        assert_eq!(crate::exit::code_for(&err), ExitCode::Usage);
        let text = err.to_string();
        assert!(text.contains("zones.txt:2: expected a zone ID") && text.contains("zones.txt:4: expected"), "{text}");

        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert!(read_zones_file(&path).unwrap_err().to_string().contains("no zone in the file"));
    }
}
