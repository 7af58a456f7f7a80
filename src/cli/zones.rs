//! The zone choice of the commands that work zone by zone (`list`,
//! `enforcement`): one definition, so a new way to name zones (by name,
//! every zone of an account) reaches them all at once.

use std::path::{Path, PathBuf};

use crate::exit::usage;
use crate::input::ids::ZoneId;
use crate::input::reader::Problem;

#[derive(Debug, Clone, clap::Args)]
pub struct ZoneArgs {
    /// Zone to read (32 hex characters); repeat for several.
    #[arg(long = "zone", value_name = "ZONE_ID")]
    pub zones: Vec<ZoneId>,

    /// File of zone IDs, one per line; blank lines and lines starting with # are skipped.
    #[arg(long, value_name = "PATH")]
    pub zones_file: Option<PathBuf>,
}

impl ZoneArgs {
    /// The zones of `--zone` and `--zones-file`, each once, in the order given.
    pub fn zones(&self) -> anyhow::Result<Vec<ZoneId>> {
        let mut zones = self.zones.clone();
        if let Some(path) = &self.zones_file {
            zones.extend(read_zones_file(path)?);
        }
        let mut seen = std::collections::HashSet::new();
        zones.retain(|zone| seen.insert(*zone));
        Ok(zones)
    }
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
}
