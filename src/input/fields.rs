//! One CSV record split into fields, with the physical line each field
//! starts on. A line without a quote is split at its commas; a record that
//! holds a quote goes through csv-core, a line at a time, however many lines
//! its quoted fields span.

use std::ops::Range;

/// The longest record read, quotes and line ends included. A real row is a few
/// hundred bytes even with a long note; without a bound, a quote left open (or
/// an input with no line end at all, such as `/dev/zero`) would pull the rest
/// of the input into memory as one field.
pub(super) const MAX_RECORD: usize = 1 << 20;

/// One physical line: its text, and what ended it (nothing at the end of an
/// input without a final line end).
pub(super) struct Line<'a> {
    pub number: u64,
    pub body: &'a [u8],
    pub end: &'a [u8],
}

/// One record split into fields.
pub(super) struct Fields {
    /// Reads the records that hold a quote. It is never reset: csv-core drops a
    /// BOM from the first bytes it is given after a reset, wherever in the
    /// file those lie.
    parser: csv_core::Reader,
    /// The fields' text: a copy of the line on the fast path, csv-core's
    /// unquoted output otherwise.
    bytes: Vec<u8>,
    /// Where each field lies in `bytes`.
    spans: Vec<Range<usize>>,
    /// For each line a field of the record starts on, the first such field
    /// and the line: one entry unless a quoted field spans lines.
    lines: Vec<(usize, u64)>,
    /// csv-core's field ends, counted from the start of the record.
    ends: Vec<usize>,
    /// How far csv-core is through the record: bytes written to `bytes`,
    /// fields ended, input bytes taken.
    written: usize,
    ended: usize,
    taken: usize,
}

impl Default for Fields {
    /// Built by hand: csv-core's derived `Default` leaves the parser
    /// unconfigured. The parser is given a line end to skip, so that it counts
    /// as started and leaves any BOM to [`without_bom`], which drops only the
    /// file's own.
    fn default() -> Self {
        let mut parser = csv_core::Reader::new();
        parser.read_record(b"\n", &mut [0], &mut [0]);
        Fields {
            parser,
            bytes: Vec::new(),
            spans: Vec::new(),
            lines: Vec::new(),
            ends: Vec::new(),
            written: 0,
            ended: 0,
            taken: 0,
        }
    }
}

impl Fields {
    /// A line without a quote is a whole record, split at its commas.
    /// csv-core would split it the same way, one byte at a time through its
    /// state machine: a sixth of pass one's time before this fast path.
    pub(super) fn split_plain(&mut self, line: &Line<'_>) {
        self.bytes.clear();
        self.bytes.extend_from_slice(line.body);
        self.spans.clear();
        let mut start = 0;
        for comma in memchr::memchr_iter(b',', line.body) {
            self.spans.push(start..comma);
            start = comma + 1;
        }
        self.spans.push(start..line.body.len());
        self.lines.clear();
        self.lines.push((0, line.number));
    }

    /// Starts a record for csv-core at line `number`.
    pub(super) fn begin(&mut self, number: u64) {
        (self.written, self.ended, self.taken) = (0, 0, 0);
        self.lines.clear();
        self.lines.push((0, number));
    }

    /// Gives csv-core the next line of the record; `true` once the record
    /// has ended, `None` if it has grown past [`MAX_RECORD`].
    pub(super) fn feed(&mut self, line: &Line<'_>) -> Option<bool> {
        self.taken += line.body.len() + line.end.len();
        if self.taken > MAX_RECORD {
            return None;
        }
        // A line's text holds no line end, so only its end can end the
        // record. csv-core takes empty input for the end of the file; the
        // last line of an input without a final line end gets one instead.
        self.read(line.body, line.number);
        Some(self.read(if line.end.is_empty() { b"\n" } else { line.end }, line.number))
    }

    /// Runs csv-core over `input`, from line `number`; `true` if the record
    /// ended in it. What follows its end in `input` can only be the LF of a
    /// CRLF, which csv-core would skip anyway.
    fn read(&mut self, mut input: &[u8], number: u64) -> bool {
        while !input.is_empty() {
            if self.written == self.bytes.len() {
                self.bytes.resize((self.bytes.len() * 2).max(256), 0);
            }
            if self.ended == self.ends.len() {
                self.ends.resize((self.ends.len() * 2).max(8), 0);
            }
            let (result, read, written, ended) =
                self.parser.read_record(input, &mut self.bytes[self.written..], &mut self.ends[self.ended..]);
            input = &input[read..];
            self.written += written;
            // A field ends at a comma, so the one after it starts on this line.
            if ended > 0 && self.lines.last().map(|&(_, line)| line) != Some(number) {
                self.lines.push((self.ended + 1, number));
            }
            self.ended += ended;
            match result {
                // `End` answers only empty input, which is never given.
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => {
                    self.spans.clear();
                    let mut start = 0;
                    for &end in &self.ends[..self.ended] {
                        self.spans.push(start..end);
                        start = end;
                    }
                    return true;
                }
                csv_core::ReadRecordResult::InputEmpty
                | csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {}
            }
        }
        false
    }

    /// Where the field csv-core is reading starts: its physical line and its
    /// 1-based column, for a record the input ends inside.
    pub(super) fn open_field(&self) -> (u64, usize) {
        (self.line_of(self.ended), self.ended + 1)
    }

    /// The physical line field `index` starts on.
    pub(super) fn line_of(&self, index: usize) -> u64 {
        self.lines.iter().rev().find(|&&(first, _)| first <= index).map_or(0, |&(_, line)| line)
    }

    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(super) fn get(&self, index: usize) -> Option<&[u8]> {
        let span = self.spans.get(index)?.clone();
        Some(unquote(self.bytes[span].trim_ascii()))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    pub(super) fn is_blank(&self) -> bool {
        self.iter().all(<[u8]>::is_empty)
    }

    /// Each field as csv-core gave it, neither trimmed nor unquoted, for tests
    /// that compare the split with the `csv` crate's.
    #[cfg(test)]
    pub(super) fn raw(&self) -> Vec<Vec<u8>> {
        self.spans.iter().map(|span| self.bytes[span.clone()].to_vec()).collect()
    }
}

/// A field quoted after a space (`a, "b"`) is not quoted as far as CSV is
/// concerned; spreadsheets and hand edits produce it, so the quotes go too.
pub(super) fn unquote(field: &[u8]) -> &[u8] {
    match field {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => field,
    }
}
