//! Turning an input file into a plan (pass one: check everything, count, dedupe)
//! and then into a stream of jobs (pass two).
//!
//! Two passes keep memory bounded by the pipeline rather than the file: pass one
//! keeps only a sorted vector of 33-byte keys (about 33 MB for a million rows),
//! pass two reads the file again and feeds rows into a bounded channel.
//!
//! Pass one opens the input once, and pass two reads the file it opened, by
//! position: pass two never opens a path, so nothing it does can wait on the
//! outside world. An input that is not a regular file (standard input, a FIFO,
//! `/dev/stdin`, a terminal) can be read only once: pass one copies it to a
//! temporary file as it reads. Pass one runs before any signal handler is
//! installed, so an open or a read that waits on a writer that never comes
//! still ends at Ctrl-C or SIGTERM, with nothing sent.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::input::ids::{pair_key, CertId, PairKey, ZoneId};
use crate::input::reader::{InputError, InputReader, Invalid, Problem, Record, Row, Selection};
use crate::input::resume::Finished;

/// How many problems are listed before the rest are only counted.
pub const PROBLEMS_SHOWN: usize = 20;

/// Sorts keys that agree on their first `from` bytes into byte order, as
/// `sort_unstable` would. A comparison sort moves each 33-byte key some twenty
/// times and calls `memcmp` for every comparison: a third of pass one's time
/// for a million rows. This is an in-place MSD radix sort (American flag
/// sort) instead: it skips the bytes all keys share, puts each key into one of
/// 256 buckets by the first byte that differs, and recurses, leaving only
/// small buckets to a comparison sort. It needs no memory beyond a few
/// kilobytes of stack per level, and there are at most 33 levels.
fn sort_keys(keys: &mut [PairKey], from: usize) {
    /// Below this a comparison sort is quicker than another radix pass.
    const SMALL: usize = 48;
    if keys.len() <= SMALL {
        keys.sort_unstable();
        return;
    }
    let first = keys[0];
    let mut varies = [0u8; 33];
    for key in keys.iter() {
        for ((v, a), b) in varies[from..].iter_mut().zip(&key[from..]).zip(&first[from..]) {
            *v |= a ^ b;
        }
    }
    let Some(byte) = (from..33).find(|&i| varies[i] != 0) else {
        return; // all equal
    };
    // Where each bucket ends, then where the next key of each goes.
    let mut ends = [0usize; 256];
    for key in keys.iter() {
        ends[usize::from(key[byte])] += 1;
    }
    let mut total = 0;
    for end in &mut ends {
        total += *end;
        *end = total;
    }
    let mut next = [0usize; 256];
    next[1..].copy_from_slice(&ends[..255]);
    // Swap each key into its bucket; the key swapped back is placed next.
    for bucket in 0..256 {
        while next[bucket] < ends[bucket] {
            let home = usize::from(keys[next[bucket]][byte]);
            keys.swap(next[bucket], next[home]);
            next[home] += 1;
        }
    }
    let mut start = 0;
    for end in ends {
        sort_keys(&mut keys[start..end], byte + 1);
        start = end;
    }
}

/// Where pass two reads the rows: the regular file pass one opened, or the
/// copy it made of an input that can be read only once.
pub enum Source {
    File(File),
    Spool(tempfile::NamedTempFile),
}

impl Source {
    fn file(&self) -> &File {
        match self {
            Source::File(file) => file,
            Source::Spool(spool) => spool.as_file(),
        }
    }
}

/// Reads a file from its start by position: each pass two (`pairs` and then
/// `jobs`) reads the same bytes, without a shared file offset.
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// What pass one learnt about the input.
pub struct Plan {
    /// The name used in messages: the path as given, or `<stdin>`.
    pub display: String,
    pub source: Source,
    /// Non-blank data rows.
    pub rows: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub zones: u64,
    /// The first `PROBLEMS_SHOWN` problems, in file order.
    pub problems: Vec<Problem>,
    pub sha256: String,
    /// The first valid row, used for the read-only credentials check.
    pub first: Option<Row>,
    keys: Vec<PairKey>,
    selections: Vec<Selection>,
}

/// Feeds every byte read through SHA-256, and optionally copies it to a spool.
struct Tee<R, W> {
    inner: R,
    hasher: Sha256,
    copy: Option<W>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot open the input {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("cannot copy the input to a temporary file: {0}")]
    Spool(io::Error),
    #[error("{0}")]
    Input(String),
}

impl Plan {
    /// Pass one over `input` (`-` for standard input).
    pub fn build(input: &Path) -> Result<Plan, PlanError> {
        Plan::build_selecting(input, Vec::new())
    }

    /// Pass one over the rows of `input` that match every selection.
    pub fn build_selecting(input: &Path, selections: Vec<Selection>) -> Result<Plan, PlanError> {
        if input == Path::new("-") {
            return Plan::spool("<stdin>".into(), io::stdin().lock(), selections);
        }
        let display = input.display().to_string();
        let open = |source| PlanError::Open { path: display.clone(), source };
        // Opening a FIFO waits for a writer, as `cat` does.
        let file = File::open(input).map_err(open)?;
        if !file.metadata().map_err(open)?.is_file() {
            return Plan::spool(display, file, selections);
        }
        let tee = Tee::<_, io::Sink> { inner: file.try_clone().map_err(open)?, hasher: Sha256::new(), copy: None };
        Plan::scan(display, Source::File(file), tee, selections)
    }

    /// Pass one over an input that can be read only once, copying it to a
    /// temporary file for pass two.
    fn spool(display: String, input: impl Read, selections: Vec<Selection>) -> Result<Plan, PlanError> {
        let spool = tempfile::NamedTempFile::new().map_err(PlanError::Spool)?;
        let writer = io::BufWriter::new(spool.reopen().map_err(PlanError::Spool)?);
        let tee = Tee { inner: input, hasher: Sha256::new(), copy: Some(writer) };
        Plan::scan(display, Source::Spool(spool), tee, selections)
    }

    fn scan<R: Read, W: Write>(
        display: String,
        source: Source,
        mut tee: Tee<R, W>,
        selections: Vec<Selection>,
    ) -> Result<Plan, PlanError> {
        let located = |e: InputError| PlanError::Input(e.located(&display));
        let mut reader =
            InputReader::selecting(BufReader::with_capacity(1 << 16, &mut tee), &selections).map_err(located)?;
        let mut plan = Plan {
            display: String::new(),
            source,
            rows: 0,
            unique: 0,
            duplicates: 0,
            invalid: 0,
            zones: 0,
            problems: vec![],
            sha256: String::new(),
            first: None,
            keys: vec![],
            selections,
        };
        while let Some(record) = reader.next_record().map_err(located)? {
            plan.rows += 1;
            match record {
                Record::Valid(row) => {
                    plan.first.get_or_insert(row);
                    plan.keys.push(pair_key(row.zone, row.cert));
                }
                Record::Invalid(bad) => {
                    plan.invalid += 1;
                    if plan.problems.len() < PROBLEMS_SHOWN {
                        plan.problems.push(bad.problem);
                    }
                }
            }
        }
        drop(reader);
        if let Some(copy) = tee.copy.as_mut() {
            copy.flush().map_err(PlanError::Spool)?;
        }
        if plan.rows == 0 {
            return Err(PlanError::Input(format!(
                "{display}: expected at least one row of zone_id,certificate_id after the header; the input has none"
            )));
        }
        sort_keys(&mut plan.keys, 0);
        let valid = plan.keys.len() as u64;
        plan.keys.dedup();
        plan.keys.shrink_to_fit();
        plan.unique = plan.keys.len() as u64;
        plan.duplicates = valid - plan.unique;
        plan.zones = count_zones(&plan.keys);
        plan.sha256 = format!("{:x}", tee.hasher.finalize());
        plan.display = display;
        Ok(plan)
    }

    /// Every problem found, one per line, with a count of those not listed.
    pub fn problem_report(&self) -> String {
        let mut out: Vec<String> = self.problems.iter().map(|p| p.located(&self.display)).collect();
        let hidden = self.invalid - self.problems.len() as u64;
        if hidden > 0 {
            out.push(format!("... and {hidden} more invalid row(s)"));
        }
        out.join("\n")
    }

    /// Pass two: reads the input again and yields each unique valid row once, in
    /// file order, plus the invalid rows (so they can be recorded).
    pub fn jobs(&self) -> Result<Jobs<'_>, PlanError> {
        let file = ReadAt { file: self.source.file(), offset: 0 };
        let reader = InputReader::selecting(BufReader::with_capacity(1 << 16, file), &self.selections)
            .map_err(|e| PlanError::Input(e.located(&self.display)))?;
        Ok(Jobs { reader, keys: &self.keys, seen: vec![0u64; self.keys.len().div_ceil(64)], display: &self.display })
    }
}

impl Plan {
    /// How many of this input's unique pairs an earlier run already finished.
    pub fn count_finished(&self, finished: &Finished) -> u64 {
        self.keys.iter().filter(|k| finished.contains_key(k)).count() as u64
    }

    /// The zones of the input's valid rows, each once, in ID order: what the
    /// enforcement check reads before a revocation.
    pub fn zone_ids(&self) -> Vec<ZoneId> {
        zone_runs(&self.keys).map(|run| ZoneId::from_bytes(run[0][..16].try_into().expect("16 bytes"))).collect()
    }

    /// Every unique valid pair in file order, for seeding the sandbox.
    pub fn pairs(&self) -> Result<Vec<(ZoneId, CertId)>, PlanError> {
        let mut pairs = Vec::with_capacity(self.keys.len());
        for job in self.jobs()? {
            if let Job::Revoke(row) = job? {
                pairs.push((row.zone, row.cert));
            }
        }
        Ok(pairs)
    }
}

/// Keys sort by zone first, so distinct zones are runs of equal prefixes.
fn zone_runs(keys: &[PairKey]) -> impl Iterator<Item = &[PairKey]> {
    keys.chunk_by(|a, b| a[..16] == b[..16])
}

fn count_zones(keys: &[PairKey]) -> u64 {
    zone_runs(keys).count() as u64
}

/// The job stream of pass two; duplicates are dropped using a bitset over the
/// sorted keys, so the first occurrence of each pair is the one revoked.
pub struct Jobs<'a> {
    reader: InputReader<BufReader<ReadAt<'a>>>,
    keys: &'a [PairKey],
    seen: Vec<u64>,
    display: &'a str,
}

/// A unit of work for the dispatcher, or a row to record as invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Revoke(Row),
    Invalid(Invalid),
}

impl Iterator for Jobs<'_> {
    type Item = Result<Job, PlanError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let record = match self.reader.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(e) => return Some(Err(PlanError::Input(e.located(self.display)))),
            };
            match record {
                Record::Invalid(bad) => return Some(Ok(Job::Invalid(bad))),
                Record::Valid(row) => {
                    let Ok(index) = self.keys.binary_search(&pair_key(row.zone, row.cert)) else {
                        return Some(Err(PlanError::Input(format!(
                            "{}:{}: the input changed while cfrevoke was reading it; run again on a stable copy",
                            self.display, row.line
                        ))));
                    };
                    let (word, bit) = (index / 64, 1u64 << (index % 64));
                    if self.seen[word] & bit == 0 {
                        self.seen[word] |= bit;
                        return Some(Ok(Job::Revoke(row)));
                    }
                    tracing::debug!(line = row.line, zone_id = %row.zone, certificate_id = %row.cert, "duplicate pair skipped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z1: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const Z2: &str = "ffffffffffffffffffffffffffffffff";
    const C1: &str = "0123456789abcdef0123456789abcdef";
    const C2: &str = "568b6b74-7b0c-4755-8840-4e3b8c24adeb";

    fn plan_of(text: &str) -> (tempfile::TempDir, Result<Plan, PlanError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, text).unwrap();
        let plan = Plan::build(&path);
        (dir, plan)
    }

    #[test]
    fn duplicates_are_revoked_once_in_file_order() {
        let text =
            format!("zone_id,certificate_id\n{Z2},{C1}\n{Z1},{C2}\n{Z2},{}\n{Z1},bad\n{Z1},{C1}\n", C1.to_uppercase());
        let (_dir, plan) = plan_of(&text);
        let plan = plan.unwrap();
        assert_eq!((plan.rows, plan.unique, plan.duplicates, plan.invalid, plan.zones), (5, 3, 1, 1, 2));
        assert_eq!(plan.first.unwrap().line, 2);
        let jobs: Vec<Job> = plan.jobs().unwrap().map(Result::unwrap).collect();
        let lines: Vec<u64> = jobs
            .iter()
            .map(|j| match j {
                Job::Revoke(r) => r.line,
                Job::Invalid(bad) => bad.line,
            })
            .collect();
        assert_eq!(lines, vec![2, 3, 5, 6]);
        assert!(matches!(jobs[2], Job::Invalid(_)));
    }

    proptest::proptest! {
        #[test]
        fn keys_sort_as_sort_unstable_does(
            keys in proptest::collection::vec(proptest::collection::vec(0u8..3, 33), 0..400),
            zone in proptest::array::uniform16(proptest::num::u8::ANY),
        ) {
            // Few byte values and a shared zone: long runs of equal bytes,
            // buckets of every size and many duplicates, as real inputs have.
            let mut keys: Vec<PairKey> = keys.iter().map(|k| k.as_slice().try_into().unwrap()).collect();
            for (i, key) in keys.iter_mut().enumerate().filter(|(i, _)| i % 3 != 0) {
                key[..16].copy_from_slice(&zone);
                key[20] = (i % 7) as u8;
            }
            let mut expected = keys.clone();
            expected.sort_unstable();
            sort_keys(&mut keys, 0);
            proptest::prop_assert_eq!(keys, expected);
        }
    }

    /// Pass two reads what pass one opened: a file renamed over the input
    /// path in between (as an editor saves) changes nothing it reads.
    #[test]
    fn pass_two_reads_the_file_pass_one_opened() {
        let (dir, plan) = plan_of(&format!("zone_id,certificate_id\n{Z1},{C1}\n"));
        let plan = plan.unwrap();
        let other = dir.path().join("other.csv");
        std::fs::write(&other, format!("zone_id,certificate_id\n{Z2},{C2}\n")).unwrap();
        std::fs::rename(&other, dir.path().join("in.csv")).unwrap();
        for _ in 0..2 {
            let pairs = plan.pairs().unwrap();
            assert_eq!(pairs, vec![(Z1.parse().unwrap(), C1.parse().unwrap())]);
        }
    }

    #[test]
    fn checksum_is_of_the_bytes_read() {
        let text = format!("zone_id,certificate_id\n{Z1},{C1}\n");
        let (_dir, plan) = plan_of(&text);
        let expected = format!("{:x}", Sha256::digest(text.as_bytes()));
        assert_eq!(plan.unwrap().sha256, expected);
    }

    #[test]
    fn header_only_input_is_refused() {
        let (_dir, plan) = plan_of("zone_id,certificate_id\n\n");
        let err = plan.err().unwrap().to_string();
        assert!(err.contains("expected at least one row"), "{err}");
    }

    #[test]
    fn problem_report_counts_what_it_does_not_list() {
        let mut text = String::from("zone_id,certificate_id\n");
        for _ in 0..PROBLEMS_SHOWN + 5 {
            text.push_str("x,y\n");
        }
        let (_dir, plan) = plan_of(&text);
        let report = plan.unwrap().problem_report();
        assert_eq!(report.lines().count(), PROBLEMS_SHOWN + 1);
        assert!(report.ends_with("... and 5 more invalid row(s)"), "{report}");
    }
}
