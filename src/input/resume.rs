//! Reading an earlier run's results so a resumed run can skip what is done.
//!
//! Which outcomes are final is the operation's business (the caller passes
//! them): a resumed `reactivate` skips the pairs it reactivated, not the ones
//! a revoke run revoked.
//!
//! A run killed mid-write can leave a torn last line; it is cut off here, and
//! its pair, no longer recorded as final, is sent again (a second DELETE of a
//! revoked certificate answers "already revoked", which is success).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use crate::api::maybe_carried_out;
use crate::input::ids::{pair_key, CertId, PairKey, ZoneId};
use crate::outcome::{column, Outcome};

/// The pairs an earlier run finished, and what reading them found.
#[derive(Debug, Default)]
pub struct Finished {
    keys: Vec<PairKey>,
    /// Pairs recorded `failed` after an answer that may hide the request
    /// being carried out (no answer, a 5xx, a 2xx that did not answer): a
    /// resumed revoke that then hears "already revoked" takes it as the
    /// earlier run's revocation.
    maybe_done: Vec<PairKey>,
    /// Input lines already recorded as `invalid`, so a resume does not record them twice.
    invalid_lines: Vec<u64>,
    /// Results rows read (all outcomes): tests see by it that no row was
    /// taken for a torn one.
    #[cfg(test)]
    rows: u64,
    /// Bytes of a torn last line that were cut off.
    pub repaired: u64,
}

impl Finished {
    pub fn contains(&self, zone: ZoneId, cert: CertId) -> bool {
        self.contains_key(&pair_key(zone, cert))
    }

    pub(crate) fn contains_key(&self, key: &PairKey) -> bool {
        self.keys.binary_search(key).is_ok()
    }

    pub fn maybe_done(&self, zone: ZoneId, cert: CertId) -> bool {
        self.maybe_done.binary_search(&pair_key(zone, cert)).is_ok()
    }

    pub fn has_invalid_line(&self, line: u64) -> bool {
        self.invalid_lines.binary_search(&line).is_ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{0}")]
    Foreign(String),
}

/// Where the last complete line ends: every row cfrevoke writes ends in a
/// newline, so anything after the last one is a torn write.
fn end_of_last_line(file: &mut File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads the results in `file` (positioned anywhere), repairs a torn tail in
/// place, and collects the pairs whose outcome is one of `finals`.
pub fn scan(file: &mut File, header: &[&str], finals: &[Outcome]) -> Result<Finished, ScanError> {
    let len = file.metadata()?.len();
    let mut keep = end_of_last_line(file, len)?;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = csv::ReaderBuilder::new().from_reader(BufReader::new(Read::by_ref(file).take(keep)));
    let found = reader.headers().map_err(|e| ScanError::Foreign(format!("unreadable header: {e}")))?.clone();
    if found.iter().ne(header.iter().copied()) {
        return Err(ScanError::Foreign(format!("its header is {:?}", found.iter().collect::<Vec<_>>().join(","))));
    }
    let position = |name: &str| header.iter().position(|h| *h == name).expect("known column");
    let (zone_col, cert_col) = (position(column::ZONE_ID), position(column::CERTIFICATE_ID));
    let (outcome_col, line_col, status_col) =
        (position(column::OUTCOME), position(column::LINE), position(column::HTTP_STATUS));
    let is_final = |outcome: &str| finals.iter().any(|f| f.as_str() == outcome);
    let mut finished = Finished::default();
    let mut record = csv::StringRecord::new();
    loop {
        let start = reader.position().byte();
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.len() == header.len() => {
                #[cfg(test)]
                {
                    finished.rows += 1;
                }
                let outcome = &record[outcome_col];
                let pair = ZoneId::parse(record[zone_col].as_bytes())
                    .and_then(|zone| Ok(pair_key(zone, CertId::parse(record[cert_col].as_bytes())?)));
                if outcome == Outcome::Invalid.as_str() {
                    finished.invalid_lines.extend(record[line_col].parse::<u64>().ok());
                } else if is_final(outcome) {
                    let pair = pair
                        .map_err(|_| ScanError::Foreign(format!("line {line} has a final outcome but no valid IDs")))?;
                    finished.keys.push(pair);
                } else if outcome == Outcome::Failed.as_str() && maybe_carried_out(record[status_col].parse().ok()) {
                    finished.maybe_done.extend(pair.ok());
                }
            }
            // A bad record is a torn write only if nothing follows it.
            _ => {
                if reader.read_record(&mut record).unwrap_or(true) {
                    return Err(ScanError::Foreign(format!("line {line} is not a results row")));
                }
                keep = start;
                break;
            }
        }
    }
    drop(reader);
    if keep < len {
        file.set_len(keep)?;
        finished.repaired = len - keep;
    }
    for keys in [&mut finished.keys, &mut finished.maybe_done] {
        keys.sort_unstable();
        keys.dedup();
    }
    finished.invalid_lines.sort_unstable();
    Ok(finished)
}

/// What tests ask of a scan; a run asks only about pairs.
#[cfg(test)]
impl Finished {
    /// Distinct pairs already final.
    pub fn len(&self) -> u64 {
        self.keys.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const HEADER: [&str; 5] = ["line", "zone_id", "certificate_id", "outcome", "http_status"];
    const REVOKE: [Outcome; 3] = [Outcome::Revoked, Outcome::AlreadyRevoked, Outcome::NotFound];
    const Z: &str = "023e105f4ecef8ad9ca31a8372d0c353";

    fn cert(i: u32) -> String {
        format!("{i:032x}")
    }

    fn scan_text(text: &str) -> (Result<Finished, ScanError>, String) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let result = scan(&mut file, &HEADER, &REVOKE);
        let mut after = String::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut after).unwrap();
        (result, after)
    }

    #[test]
    fn final_pairs_are_collected_and_failed_ones_are_not() {
        let text = format!(
            "line,zone_id,certificate_id,outcome,http_status\n2,{Z},{},revoked,200\n3,{Z},{},failed,403\n\
             4,{Z},{},not_found,404\n5,,,invalid,\n",
            cert(1),
            cert(2),
            cert(3)
        );
        let (finished, after) = scan_text(&text);
        let finished = finished.unwrap();
        let zone = ZoneId::parse(Z.as_bytes()).unwrap();
        let has = |i| finished.contains(zone, CertId::parse(cert(i).as_bytes()).unwrap());
        assert!(has(1) && !has(2) && has(3));
        assert!(finished.has_invalid_line(5) && !finished.has_invalid_line(3));
        assert_eq!((finished.rows, finished.len(), finished.repaired), (4, 2, 0));
        assert_eq!(after, text, "an intact file is left alone");
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let good = format!("line,zone_id,certificate_id,outcome,http_status\n2,{Z},{},revoked,200\n", cert(1));
        for torn in [format!("3,{Z},{},rev", cert(2)), format!("3,{Z},\"{}", cert(2)), "3,\"multi\nline".into()] {
            let (finished, after) = scan_text(&format!("{good}{torn}"));
            let finished = finished.unwrap();
            assert_eq!((finished.rows, finished.len()), (1, 1), "{torn:?}");
            assert_eq!(finished.repaired, torn.len() as u64);
            assert_eq!(after, good);
        }
    }

    #[test]
    fn other_files_are_refused() {
        let (result, after) = scan_text("name,email\nx,y\n");
        assert!(matches!(result, Err(ScanError::Foreign(_))));
        assert_eq!(after, "name,email\nx,y\n");
        let broken_middle =
            format!("line,zone_id,certificate_id,outcome,http_status\n2,{Z}\n3,{Z},{},revoked,200\n", cert(1));
        let (result, _) = scan_text(&broken_middle);
        assert!(matches!(result, Err(ScanError::Foreign(m)) if m.contains("line 2")));
    }

    #[test]
    fn each_operation_skips_its_own_final_outcomes() {
        let text = format!(
            "line,zone_id,certificate_id,outcome,http_status\n2,{Z},{},reactivated,200\n3,{Z},{},too_late,400\n\
             4,{Z},{},revoked,200\n",
            cert(1),
            cert(2),
            cert(3)
        );
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let reactivate = [Outcome::Reactivated, Outcome::TooLate, Outcome::NotFound];
        let finished = scan(&mut file, &HEADER, &reactivate).unwrap();
        let zone = ZoneId::parse(Z.as_bytes()).unwrap();
        let has = |i| finished.contains(zone, CertId::parse(cert(i).as_bytes()).unwrap());
        assert!(has(1) && has(2) && !has(3), "a revoke outcome is not final for reactivate");
        let finished = scan(&mut file, &HEADER, &REVOKE).unwrap();
        let has = |i| finished.contains(zone, CertId::parse(cert(i).as_bytes()).unwrap());
        assert!(!has(1) && !has(2) && has(3));
    }

    #[test]
    fn failures_that_may_hide_a_revocation_are_remembered() {
        let text = format!(
            "line,zone_id,certificate_id,outcome,http_status\n2,{Z},{},failed,\n3,{Z},{},failed,503\n\
             4,{Z},{},failed,403\n5,{Z},{},failed,429\n6,{Z},{},failed,200\n",
            cert(1),
            cert(2),
            cert(3),
            cert(4),
            cert(5)
        );
        let finished = scan_text(&text).0.unwrap();
        let zone = ZoneId::parse(Z.as_bytes()).unwrap();
        let maybe = |i| finished.maybe_done(zone, CertId::parse(cert(i).as_bytes()).unwrap());
        assert_eq!((1..=5).map(maybe).collect::<Vec<_>>(), [true, true, false, false, true]);
        assert!(finished.is_empty());
    }
}
