//! Reading revoke's input CSV: header aliases, tolerant parsing (BOM, CRLF,
//! spaces, blank lines), and a precise account of every bad row.

use std::io::{self, BufRead};
use std::ops::Range;

use crate::ids::{CertId, ZoneId};

/// Header spellings accepted for each column, compared after lower-casing and
/// turning spaces and dashes into underscores.
const ZONE_ALIASES: &[&str] = &["zone_id", "zone", "zoneid", "zone_identifier"];
const CERT_ALIASES: &[&str] = &[
    "certificate_id",
    "client_certificate_id",
    "cert_id",
    "certificate",
    "client_certificate",
    "cert",
    "certid",
    "certificateid",
];

/// A row that can be revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// 1-based line of the file where the record starts.
    pub line: u64,
    pub zone: ZoneId,
    pub cert: CertId,
}

/// One thing wrong with the input, located well enough to fix it in an editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    /// 1-based column, when the problem is in one field.
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Valid(Row),
    Invalid(Problem),
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The header is missing or lacks a required column; nothing else can be read.
    #[error("{}", .0.expected)]
    Header(Problem),
    #[error("could not read the input: {0}")]
    Read(#[from] io::Error),
}

impl InputError {
    pub fn located(&self, file: &str) -> String {
        match self {
            InputError::Header(p) => p.located(file),
            InputError::Read(e) => format!("{file}: {e}"),
        }
    }
}

/// Streams records out of CSV text one physical line at a time, reusing its
/// buffers. Reading by line (an ID can never contain a newline) is what makes
/// the reported line numbers exact, whatever blank lines or CRLFs surround a
/// row; the `csv` crate reports where its parser started instead.
pub struct InputReader<R: BufRead> {
    source: R,
    line: u64,
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

/// One line split into fields.
struct Fields {
    parser: csv_core::Reader,
    /// The fields' text: the line itself on the fast path, csv-core's
    /// unquoted output otherwise.
    bytes: Vec<u8>,
    /// Where each field lies in `bytes`.
    spans: Vec<Range<usize>>,
    /// Scratch for csv-core's field ends.
    ends: Vec<usize>,
}

impl Default for Fields {
    /// Built by hand: csv-core's derived `Default` leaves the parser unconfigured.
    fn default() -> Self {
        Fields { parser: csv_core::Reader::new(), bytes: Vec::new(), spans: Vec::new(), ends: Vec::new() }
    }
}

impl Fields {
    /// Nearly every line of a real input has no quotes, and for those csv-core
    /// does nothing but split at commas, one byte at a time through its state
    /// machine: a sixth of pass one's time before this fast path. csv-core
    /// also ends a record at a lone CR, so only a line whose single CR is its
    /// last byte takes the fast path; anything else gets csv-core's reading.
    fn split(&mut self, line: &[u8]) {
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        if memchr::memchr2(b'"', b'\r', body).is_some() {
            self.split_csv(line);
        } else {
            self.split_plain(body);
        }
    }

    fn split_plain(&mut self, body: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(body);
        self.spans.clear();
        let mut start = 0;
        for comma in memchr::memchr_iter(b',', body) {
            self.spans.push(start..comma);
            start = comma + 1;
        }
        self.spans.push(start..body.len());
    }

    fn split_csv(&mut self, line: &[u8]) {
        // Output never exceeds the input line; field ends start with room for 8.
        self.bytes.resize(line.len().max(1), 0);
        self.ends.resize(self.ends.len().max(8), 0);
        self.parser.reset();
        let (mut input, mut out, mut nends) = (line, 0, 0);
        loop {
            let (result, read, written, ended) =
                self.parser.read_record(input, &mut self.bytes[out..], &mut self.ends[nends..]);
            input = &input[read..];
            out += written;
            nends += ended;
            match result {
                csv_core::ReadRecordResult::OutputFull => self.bytes.resize(self.bytes.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
                csv_core::ReadRecordResult::InputEmpty => {}
            }
        }
        // csv-core counts field ends from the start of the record, across
        // calls, and writes the fields back to back.
        self.spans.clear();
        let mut start = 0;
        for &end in &self.ends[..nends] {
            self.spans.push(start..end);
            start = end;
        }
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn get(&self, index: usize) -> Option<&[u8]> {
        let span = self.spans.get(index)?.clone();
        Some(unquote(self.bytes[span].trim_ascii()))
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    fn is_blank(&self) -> bool {
        self.iter().all(<[u8]>::is_empty)
    }
}

/// A field quoted after a space (`a, "b"`) is not quoted as far as CSV is
/// concerned; spreadsheets and hand edits produce it, so the quotes go too.
fn unquote(field: &[u8]) -> &[u8] {
    match field {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => field,
    }
}

fn normalise_header(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

fn find_column(headers: &Fields, aliases: &[&str]) -> Option<usize> {
    headers.iter().position(|h| aliases.contains(&normalise_header(h).as_str()))
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

    /// A reader that passes over rows outside every `selection` like blank lines.
    pub fn selecting(source: R, selections: &[Selection]) -> Result<Self, InputError> {
        let mut reader = InputReader {
            source,
            line: 0,
            raw: Vec::new(),
            fields: Fields::default(),
            zone_col: 0,
            cert_col: 0,
            selected: Vec::new(),
        };
        loop {
            if !reader.next_line()? {
                return Err(InputError::Header(Problem {
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
        let header_problem = |expected| InputError::Header(Problem { line: reader.line, column: None, expected });
        let (Some(zone_col), Some(cert_col)) =
            (find_column(&reader.fields, ZONE_ALIASES), find_column(&reader.fields, CERT_ALIASES))
        else {
            return Err(header_problem(header_hint(&reader.fields)));
        };
        let mut selected = Vec::new();
        for selection in selections {
            let column = match selection.column {
                "zone_id" => Some(zone_col),
                "certificate_id" => Some(cert_col),
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

    /// Reads and splits the next physical line; `false` at the end of input.
    /// A line that lies whole in the reader's buffer is split where it lies;
    /// only one that straddles a refill (or the end of a file without a final
    /// newline) is first copied out with `read_until`.
    fn next_line(&mut self) -> Result<bool, InputError> {
        let available = match self.source.fill_buf() {
            Ok(available) => available,
            // `read_until` below retries an interrupted read.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => &[],
            Err(e) => return Err(e.into()),
        };
        if let Some(end) = memchr::memchr(b'\n', available) {
            self.line += 1;
            self.fields.split(without_bom(&available[..end], self.line));
            self.source.consume(end + 1);
            return Ok(true);
        }
        self.raw.clear();
        if self.source.read_until(b'\n', &mut self.raw)? == 0 {
            return Ok(false);
        }
        self.line += 1;
        let line = self.raw.strip_suffix(b"\n").unwrap_or(&self.raw);
        self.fields.split(without_bom(line, self.line));
        Ok(true)
    }

    /// The next non-blank record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, InputError> {
        while self.next_line()? {
            if !self.fields.is_blank() && self.is_selected() {
                return Ok(Some(self.check()));
            }
        }
        Ok(None)
    }

    fn check(&self) -> Record {
        let line = self.line;
        let count = self.fields.len();
        let problem = |col: usize, expected: String| Record::Invalid(Problem { line, column: Some(col + 1), expected });
        let Some(zone_raw) = self.fields.get(self.zone_col) else {
            return problem(
                self.zone_col,
                format!("a zone ID in column {}, but the row has only {count} field(s)", self.zone_col + 1),
            );
        };
        let zone = match ZoneId::parse(zone_raw) {
            Ok(zone) => zone,
            Err(e) => return problem(self.zone_col, e.to_string()),
        };
        let Some(cert_raw) = self.fields.get(self.cert_col) else {
            return problem(
                self.cert_col,
                format!("a certificate ID in column {}, but the row has only {count} field(s)", self.cert_col + 1),
            );
        };
        match CertId::parse(cert_raw) {
            Ok(cert) => Record::Valid(Row { line, zone, cert }),
            Err(e) => problem(self.cert_col, e.to_string()),
        }
    }
}

/// Says what a good header looks like, and spots the common mistake of a file
/// that starts straight with data.
fn header_hint(headers: &Fields) -> String {
    let found: Vec<String> = headers.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect();
    let looks_like_data = headers.iter().any(|h| ZoneId::parse(h).is_ok() || CertId::parse(h).is_ok());
    let mut hint = format!(
        "a header line naming the columns zone_id and certificate_id (also accepted: {} / {}), found {:?}",
        ZONE_ALIASES[1..].join(", "),
        CERT_ALIASES[1..].join(", "),
        found.join(",")
    );
    if looks_like_data {
        hint.push_str("; the first line looks like data: add the line `zone_id,certificate_id` above it");
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;

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
                Record::Invalid(p) => Some(p.located("in.csv")),
                Record::Valid(_) => None,
            })
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("in.csv:3:2: expected a certificate ID"), "{}", problems[0]);
        assert!(problems[1].starts_with("in.csv:4:1: expected a zone ID"), "{}", problems[1]);
        assert!(problems[2].starts_with("in.csv:5:2: expected a certificate ID in column 2"), "{}", problems[2]);
    }

    proptest::proptest! {
        /// The fast path must read every line it takes exactly as csv-core
        /// does; blank lines need only be blank for both.
        #[test]
        fn fast_split_agrees_with_csv_core(line in "[a ,\"\r]{0,10}") {
            let (mut fast, mut slow) = (Fields::default(), Fields::default());
            fast.split(line.as_bytes());
            slow.split_csv(line.as_bytes());
            proptest::prop_assert_eq!(fast.is_blank(), slow.is_blank());
            if !slow.is_blank() {
                let fields = |f: &Fields| f.spans.iter().map(|span| f.bytes[span.clone()].to_vec()).collect::<Vec<_>>();
                proptest::prop_assert_eq!(fields(&fast), fields(&slow));
            }
        }
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
