//! Reading revoke's input CSV: header aliases (`header.rs`),
//! tolerant parsing (BOM, CRLF, spaces, blank lines, quoted line breaks, the
//! record split into fields by `fields.rs`), and a precise
//! account of every bad row.

use std::io::{self, BufRead};

use crate::input::fields::{Fields, Line, MAX_RECORD};
use crate::input::header::{find_column, header_hint, CERT_ALIASES, ZONE_ALIASES};
use crate::input::ids::{CertId, ZoneId};
use crate::outcome::column;

/// A row that can be revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// 1-based line of the file where the record starts.
    pub line: u64,
    pub zone: ZoneId,
    pub cert: CertId,
}

/// One thing wrong with the input, located well enough to fix it in an editor:
/// the physical line of the field at fault, which in a record with quoted line
/// breaks may be later than the line the record starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    /// 1-based column (field number), when the problem is in one field.
    pub column: Option<usize>,
    pub expected: String,
}

impl Problem {
    /// `file:line:column: expected ...`, the form editors and grep understand.
    pub fn located(&self, file: &str) -> String {
        match self.column {
            Some(col) => format!("{file}:{}:{col}: expected {}", self.line, self.expected),
            None => format!("{file}:{}: expected {}", self.line, self.expected),
        }
    }
}

/// A record that cannot be revoked, and the line it starts on: the line its
/// results row names, and the one `--resume` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub line: u64,
    pub problem: Problem,
}

impl Invalid {
    /// The problem as a results row says it. The row already names the line the
    /// record starts on, so only a field on a later line names its own.
    pub fn message(&self) -> String {
        let line = if self.problem.line == self.line { String::new() } else { format!("line {}, ", self.problem.line) };
        match self.problem.column {
            Some(col) => format!("{line}column {col}: expected {}", self.problem.expected),
            None => format!("{line}expected {}", self.problem.expected),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Valid(Row),
    Invalid(Invalid),
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Nothing after this point can be read as its author meant: the header is
    /// missing or lacks a required column, or a record never ends (a quote left
    /// open, or more than `fields::MAX_RECORD` bytes).
    #[error("{}", .0.expected)]
    Unreadable(Problem),
    #[error("could not read the input: {0}")]
    Read(#[from] io::Error),
}

impl InputError {
    pub fn located(&self, file: &str) -> String {
        match self {
            InputError::Unreadable(p) => p.located(file),
            InputError::Read(e) => format!("{file}: {e}"),
        }
    }
}

fn too_long(line: u64) -> InputError {
    InputError::Unreadable(Problem {
        line,
        column: None,
        expected: format!(
            "a record of at most {} MiB; the one that starts here is longer (is a quote left open?)",
            MAX_RECORD >> 20
        ),
    })
}

/// Gives the record being read its next line; `true` once the record has ended.
fn feed(fields: &mut Fields, line: &Line<'_>) -> Result<bool, InputError> {
    fields.feed(line).ok_or_else(|| too_long(fields.line_of(0)))
}

/// The input ended inside a quoted field.
fn unclosed(fields: &Fields) -> InputError {
    let (line, column) = fields.open_field();
    InputError::Unreadable(Problem {
        line,
        column: Some(column),
        expected: "a closing quote for the quoted field that starts here; the input ends inside it".into(),
    })
}

/// Streams CSV records (RFC 4180: a quoted field may hold commas, quotes and
/// line breaks), however many physical lines each spans, and keeps the
/// physical line every field starts on: a problem points where an editor
/// shows the bad field, and a row names the line where its record starts. The
/// `csv` crate counts only LFs, and reports where its parser started rather
/// than where the record did. A physical line ends at an LF, a CRLF or a lone
/// CR, each of which also ends a record outside quotes, as in csv-core (old
/// Mac spreadsheets end every line with a lone CR).
pub struct InputReader<R: BufRead> {
    source: R,
    /// Physical lines read so far.
    line: u64,
    /// A line that straddles a refill of `source`, copied out whole.
    raw: Vec<u8>,
    fields: Fields,
    zone_col: usize,
    cert_col: usize,
    /// Column index and accepted values of each [`Selection`].
    selected: Vec<(usize, Vec<String>)>,
}

/// Keeps only rows whose `column` holds one of `values` (compared without
/// case): how `reactivate` reads the rows of a results file that were revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub column: &'static str,
    pub values: Vec<String>,
}

/// Where the first line of `buf` ends: the end of its text and of its line
/// end. `None` when its line end is not in `buf`, or may not all be: a CR as
/// the last byte may be half of a CRLF.
fn line_end(buf: &[u8]) -> Option<(usize, usize)> {
    let at = memchr::memchr2(b'\n', b'\r', buf)?;
    if buf[at] == b'\n' {
        return Some((at, at + 1));
    }
    let next = *buf.get(at + 1)?;
    Some((at, at + 1 + usize::from(next == b'\n')))
}

/// The length of the line end `line` finishes with.
fn end_len(line: &[u8]) -> usize {
    if line.ends_with(b"\r\n") {
        2
    } else {
        usize::from(line.ends_with(b"\n") || line.ends_with(b"\r"))
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A UTF-8 byte-order mark is dropped from the start of the first line only.
fn without_bom(line: &[u8], number: u64) -> &[u8] {
    if number == 1 {
        line.strip_prefix(BOM).unwrap_or(line)
    } else {
        line
    }
}

impl<R: BufRead> InputReader<R> {
    pub fn new(source: R) -> Result<Self, InputError> {
        Self::selecting(source, &[])
    }

    /// A reader before its header.
    fn unread(source: R) -> Self {
        InputReader {
            source,
            line: 0,
            raw: Vec::new(),
            fields: Fields::default(),
            zone_col: 0,
            cert_col: 0,
            selected: Vec::new(),
        }
    }

    /// A reader that passes over rows outside every `selection` like blank lines.
    pub fn selecting(source: R, selections: &[Selection]) -> Result<Self, InputError> {
        let mut reader = Self::unread(source);
        loop {
            if !reader.next_fields()? {
                return Err(InputError::Unreadable(Problem {
                    line: 1,
                    column: None,
                    expected: "a header line `zone_id,certificate_id` followed by one row per certificate; \
                               the input is empty"
                        .into(),
                }));
            }
            if !reader.fields.is_blank() {
                break;
            }
        }
        let line = reader.fields.line_of(0);
        let header_problem = |expected| InputError::Unreadable(Problem { line, column: None, expected });
        let (Some(zone_col), Some(cert_col)) =
            (find_column(&reader.fields, ZONE_ALIASES), find_column(&reader.fields, CERT_ALIASES))
        else {
            return Err(header_problem(header_hint(&reader.fields)));
        };
        let mut selected = Vec::new();
        for selection in selections {
            let column = match selection.column {
                column::ZONE_ID => Some(zone_col),
                column::CERTIFICATE_ID => Some(cert_col),
                name => find_column(&reader.fields, &[name]),
            };
            let column = column.ok_or_else(|| header_problem(format!("a column named {}", selection.column)))?;
            selected.push((column, selection.values.iter().map(|v| v.to_ascii_lowercase()).collect()));
        }
        Ok(InputReader { zone_col, cert_col, selected, ..reader })
    }

    fn is_selected(&self) -> bool {
        self.selected.iter().all(|(column, values)| {
            let field = self.fields.get(*column).unwrap_or_default();
            values.iter().any(|v| field.eq_ignore_ascii_case(v.as_bytes()))
        })
    }

    /// Reads the next record into `fields`; `false` at the end of input.
    fn next_fields(&mut self) -> Result<bool, InputError> {
        let first = self.next_line(|fields, line| {
            if memchr::memchr(b'"', line.body).is_none() {
                fields.split_plain(line);
                Ok(true)
            } else {
                fields.begin(line.number);
                feed(fields, line)
            }
        })?;
        let Some(mut ended) = first.transpose()? else {
            return Ok(false);
        };
        while !ended {
            ended = match self.next_line(feed)? {
                Some(fed) => fed?,
                None => return Err(unclosed(&self.fields)),
            };
        }
        Ok(true)
    }

    /// Reads the next physical line and hands it to `take`; `None` at the end
    /// of input. A line that lies whole in the reader's buffer is taken where
    /// it lies; only one that straddles a refill (or ends the input without a
    /// line end) is first copied out.
    fn next_line<T>(&mut self, take: impl FnOnce(&mut Fields, &Line<'_>) -> T) -> Result<Option<T>, InputError> {
        let available = match self.source.fill_buf() {
            Ok(available) => available,
            // `copy_line` below retries an interrupted read.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => &[],
            Err(e) => return Err(e.into()),
        };
        if let Some((body, end)) = line_end(available) {
            if end > MAX_RECORD {
                return Err(too_long(self.line + 1));
            }
            self.line += 1;
            let line = Line {
                number: self.line,
                body: without_bom(&available[..body], self.line),
                end: &available[body..end],
            };
            let taken = take(&mut self.fields, &line);
            self.source.consume(end);
            return Ok(Some(taken));
        }
        self.copy_line()?;
        if self.raw.is_empty() {
            return Ok(None);
        }
        self.line += 1;
        let body = self.raw.len() - end_len(&self.raw);
        let line = Line { number: self.line, body: without_bom(&self.raw[..body], self.line), end: &self.raw[body..] };
        Ok(Some(take(&mut self.fields, &line)))
    }

    /// Copies the next line, line end included, into `raw`.
    fn copy_line(&mut self) -> Result<(), InputError> {
        self.raw.clear();
        loop {
            let available = match self.source.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if self.raw.last() == Some(&b'\r') {
                // A CR ends the line either way, and takes an LF after it along.
                if available.first() == Some(&b'\n') {
                    self.raw.push(b'\n');
                    self.source.consume(1);
                }
                return Ok(());
            }
            if available.is_empty() {
                return Ok(());
            }
            let (taken, ended) = match memchr::memchr2(b'\n', b'\r', available) {
                Some(at) => (at + 1, available[at] == b'\n'),
                None => (available.len(), false),
            };
            self.raw.extend_from_slice(&available[..taken]);
            self.source.consume(taken);
            if self.raw.len() > MAX_RECORD {
                return Err(too_long(self.line + 1));
            }
            if ended {
                return Ok(());
            }
        }
    }

    /// The next non-blank record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        while self.next_fields()? {
            if !self.fields.is_blank() && self.is_selected() {
                return Ok(Some(self.check()));
            }
        }
        Ok(None)
    }

    fn check(&self) -> Record {
        let line = self.fields.line_of(0);
        let count = self.fields.len();
        // A missing field has no line of its own, so the record's is given.
        let invalid = |col: usize, expected: String| {
            let at = if col < count { self.fields.line_of(col) } else { line };
            Record::Invalid(Invalid { line, problem: Problem { line: at, column: Some(col + 1), expected } })
        };
        let Some(zone_raw) = self.fields.get(self.zone_col) else {
            return invalid(
                self.zone_col,
                format!("a zone ID in column {}, but the row has only {count} field(s)", self.zone_col + 1),
            );
        };
        let zone = match ZoneId::parse(zone_raw) {
            Ok(zone) => zone,
            Err(e) => return invalid(self.zone_col, e.to_string()),
        };
        let Some(cert_raw) = self.fields.get(self.cert_col) else {
            return invalid(
                self.cert_col,
                format!("a certificate ID in column {}, but the row has only {count} field(s)", self.cert_col + 1),
            );
        };
        match CertId::parse(cert_raw) {
            Ok(cert) => Record::Valid(Row { line, zone, cert }),
            Err(e) => invalid(self.cert_col, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::fields::unquote;

    fn read_all(text: &str) -> Result<Vec<Record>, InputError> {
        let mut reader = InputReader::new(text.as_bytes())?;
        let mut out = vec![];
        while let Some(r) = reader.next_record()? {
            out.push(r);
        }
        Ok(out)
    }

    const Z: &str = "023e105f4ecef8ad9ca31a8372d0c353";
    const C: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn tolerates_bom_crlf_spaces_blank_lines_and_extra_columns() {
        let text = format!(
            "\u{feff}Note , Client Certificate ID,ZONE\r\n\r\n  x , {} , {} \r\n   \r\ny,{C},{Z}\r\n",
            C.to_uppercase(),
            Z
        );
        let rows = read_all(&text).unwrap();
        assert_eq!(rows.len(), 2);
        match rows[0] {
            Record::Valid(row) => {
                assert_eq!(row.line, 3);
                assert_eq!(row.zone.to_string(), Z);
                assert_eq!(row.cert.to_string(), C);
            }
            ref other => panic!("{other:?}"),
        }
        assert!(matches!(rows[1], Record::Valid(Row { line: 5, .. })));
    }

    #[test]
    fn bad_ids_are_located_by_line_and_column() {
        let text = format!("zone_id,certificate_id\n{Z},{C}\n{Z},../{C}\nnot-a-zone,{C}\n{Z}\n");
        let rows = read_all(&text).unwrap();
        let problems: Vec<String> = rows
            .iter()
            .filter_map(|r| match r {
                Record::Invalid(bad) => Some(bad.problem.located("in.csv")),
                Record::Valid(_) => None,
            })
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("in.csv:3:2: expected a certificate ID"), "{}", problems[0]);
        assert!(problems[1].starts_with("in.csv:4:1: expected a zone ID"), "{}", problems[1]);
        assert!(problems[2].starts_with("in.csv:5:2: expected a certificate ID in column 2"), "{}", problems[2]);
    }

    /// A record's first line and raw fields.
    type RawRecord = (u64, Vec<Vec<u8>>);

    /// Every non-blank record, and the error that stopped the reading if any.
    fn raw_records(text: &[u8], capacity: usize) -> (Vec<RawRecord>, Option<InputError>) {
        let mut reader = InputReader::unread(io::BufReader::with_capacity(capacity, text));
        let mut out = vec![];
        loop {
            match reader.next_fields() {
                Ok(true) if reader.fields.is_blank() => {}
                Ok(true) => {
                    let f = &reader.fields;
                    out.push((f.line_of(0), f.raw()));
                }
                Ok(false) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// Lines as an editor counts them: LF, CRLF and a lone CR each end one.
    fn lines_before(text: &[u8]) -> u64 {
        let mut lines = 1;
        for (i, &b) in text.iter().enumerate() {
            lines += u64::from(b == b'\n' || (b == b'\r' && text.get(i + 1) != Some(&b'\n')));
        }
        lines
    }

    proptest::proptest! {
        /// The reader's records are the `csv` crate's, wherever lines end
        /// and buffers refill, and start on the line an editor shows; the one
        /// difference is an input that ends inside quotes, which csv takes as
        /// a record and this reader refuses.
        #[test]
        fn records_are_those_of_the_csv_crate(
            bom in proptest::bool::ANY,
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", ",", "\"", "\r", "\n", "\r\n", " ", "\u{feff}"]),
                0..40,
            ),
            capacity in 1usize..24,
        ) {
            let text = format!("{}{}", if bom { "\u{feff}" } else { "" }, pieces.concat());
            let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
            // Every record csv reads, and whether it is blank.
            let mut records = vec![];
            let mut record = csv::ByteRecord::new();
            while csv.read_byte_record(&mut record).unwrap() {
                // csv's position is where its parser started, before the
                // file's BOM and the line ends it skipped.
                let from = record.position().unwrap().byte() as usize;
                let from = if from == 0 && text.starts_with('\u{feff}') { BOM.len() } else { from };
                let skipped = text.as_bytes()[from..].iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
                let line = lines_before(&text.as_bytes()[..from + skipped]);
                let blank = record.iter().all(|f| unquote(f.trim_ascii()).is_empty());
                records.push(((line, record.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()), blank));
            }
            let non_blank = |records: &[_]| -> Vec<RawRecord> {
                records.iter().filter(|(_, blank)| !blank).map(|(r, _)| r).cloned().collect()
            };
            for capacity in [capacity, 1 << 16] {
                let (got, error) = raw_records(text.as_bytes(), capacity);
                match error {
                    None => proptest::prop_assert_eq!(got, non_blank(&records)),
                    Some(InputError::Unreadable(problem)) => {
                        proptest::prop_assert!(problem.expected.contains("closing quote"), "{problem:?}");
                        proptest::prop_assert!(!records.is_empty());
                        proptest::prop_assert_eq!(got, non_blank(&records[..records.len() - 1]));
                    }
                    Some(other) => proptest::prop_assert!(false, "{other}"),
                }
            }
        }
    }

    #[test]
    fn quoted_line_breaks_stay_in_their_field_and_problems_keep_their_line() {
        let text = format!("zone_id,note,certificate_id\n{Z},\"first\n{Z},{C}\r\nlast\",{C}x\n{Z},\"\",{C}\n");
        let rows = read_all(&text).unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let Record::Invalid(bad) = &rows[0] else { panic!("{rows:?}") };
        // The record starts on line 2, its certificate on line 4.
        assert_eq!(bad.line, 2);
        assert!(bad.problem.located("f").starts_with("f:4:3: expected a certificate ID"), "{bad:?}");
        assert!(bad.message().starts_with("line 4, column 3: expected a certificate ID"), "{}", bad.message());
        assert!(matches!(rows[1], Record::Valid(Row { line: 5, .. })), "{rows:?}");
    }

    #[test]
    fn a_lone_cr_ends_a_line_and_a_record() {
        let text = format!("zone_id,certificate_id\r{Z},{C}\r{Z},{}\r\r\n{Z},x\r", C.to_uppercase());
        let rows = read_all(&text).unwrap();
        let lines: Vec<u64> = rows
            .iter()
            .map(|r| match r {
                Record::Valid(row) => row.line,
                Record::Invalid(bad) => bad.line,
            })
            .collect();
        assert_eq!(lines, vec![2, 3, 5], "{rows:?}");
        assert!(matches!(rows[2], Record::Invalid(_)));
    }

    #[test]
    fn an_unclosed_quote_is_located_and_stops_the_reading() {
        let text = format!("zone_id,certificate_id,note\n{Z},{C},ok\n{Z},{C},\"open\n{Z},{C}\n");
        let mut reader = InputReader::new(text.as_bytes()).unwrap();
        assert!(matches!(reader.next_record().unwrap(), Some(Record::Valid(_))));
        let err = reader.next_record().unwrap_err().located("f");
        assert!(err.starts_with("f:3:3: expected a closing quote"), "{err}");
    }

    #[test]
    fn a_record_longer_than_the_bound_is_refused() {
        for note in ["\"", ""] {
            let text = format!("zone_id,certificate_id,note\n{Z},{C},{note}{}\n", "x".repeat(MAX_RECORD));
            // Whether the line lies whole in the reader's buffer or not.
            for capacity in [1 << 16, text.len() + 1] {
                let mut reader = InputReader::new(io::BufReader::with_capacity(capacity, text.as_bytes())).unwrap();
                let err = reader.next_record().unwrap_err().located("f");
                assert!(err.starts_with("f:2: expected a record of at most 1 MiB"), "{err}");
            }
        }
    }

    #[test]
    fn only_the_files_own_bom_is_dropped() {
        let text = format!("\u{feff}zone_id,certificate_id\n\u{feff}{Z},\"{C}\"\n");
        let rows = read_all(&text).unwrap();
        assert!(matches!(&rows[..], [Record::Invalid(bad)] if bad.problem.column == Some(1)), "{rows:?}");
    }

    #[test]
    fn selections_keep_only_matching_rows() {
        let text = format!("zone_id,certificate_id,outcome\n{Z},{C},revoked\n{Z},{C},FAILED\n{Z},{C},Revoked\n");
        let keep = [Selection { column: "outcome", values: vec!["revoked".into()] }];
        let mut reader = InputReader::selecting(text.as_bytes(), &keep).unwrap();
        let mut lines = vec![];
        while let Some(Record::Valid(row)) = reader.next_record().unwrap() {
            lines.push(row.line);
        }
        assert_eq!(lines, vec![2, 4]);
        let missing = [Selection { column: "status", values: vec![] }];
        let err = InputReader::selecting(text.as_bytes(), &missing).err().unwrap();
        assert!(err.located("r.csv").starts_with("r.csv:1: expected a column named status"));
    }

    #[test]
    fn missing_or_wrong_header_is_explained() {
        let err = read_all("").err().unwrap();
        assert!(err.located("f").contains("the input is empty"));
        let err = read_all(&format!("{Z},{C}\n")).err().unwrap();
        let text = err.located("f.csv");
        assert!(text.starts_with("f.csv:1: expected a header line"), "{text}");
        assert!(text.contains("looks like data"), "{text}");
        let err = read_all("zone_id,serial\n").err().unwrap();
        assert!(err.located("f").contains("found \"zone_id,serial\""));
    }
}
