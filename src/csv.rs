//! CSV reading shared by every reader of user tables (the `cohort` stage, `orchestrate stats`):
//! one set of quoting rules, one set of limits, and the line each record starts on for error
//! messages.
//!
//! Files are read as a stream: memory grows with the table's content, never with one line's
//! length (a record is capped at [`MAX_RECORD_BYTES`], so `/dev/zero` or a file without line
//! ends is refused after 1 MiB). A [`Table`] keeps every field in one text buffer with its
//! boundaries, about the file's own size, instead of a `String` per field.

use std::fmt;
use std::io::{BufRead, BufReader, Read};

/// The longest record accepted, in bytes: a clinical record of thousands of features fits many
/// times over, and a runaway line (a binary file, `/dev/zero`) is refused early.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// How many characters of an offending value an error message shows.
pub const SHOWN_CHARS: usize = 80;

/// Why a file could not be split into records.
#[derive(Debug)]
pub enum CsvError {
    /// Reading the file failed.
    Io(std::io::Error),
    /// The text is not CSV as accepted here, at a 1-based line.
    At { line: usize, message: String },
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsvError::Io(e) => write!(f, "cannot read: {e}"),
            CsvError::At { line, message } => write!(f, "line {line}: {message}"),
        }
    }
}

/// A value for an error message: the first [`SHOWN_CHARS`] characters, and the length when
/// it was cut, so a 5 MB cell gives a short line.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
    }
}

/// One CSV record with the line it starts on.
#[derive(Debug, Clone)]
pub struct Record {
    /// 1-based line of the file where the record starts.
    pub line: usize,
    pub fields: Vec<String>,
}

/// Streams the records of a CSV text: comma-separated, `"…"` quoting with `""` for a quote
/// (quoted fields may span lines), `\n` or `\r\n` line ends (a bare `\r` is refused: CR-only
/// files are old Mac text, not CSV), blank lines skipped, a leading UTF-8 BOM ignored, unquoted
/// fields trimmed of spaces, UTF-8 only.
pub struct Reader<R> {
    inner: BufReader<R>,
    /// The line the next read starts on.
    line: usize,
    first: bool,
    done: bool,
    buf: Vec<u8>,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner: BufReader::with_capacity(1 << 16, inner),
            line: 1,
            first: true,
            done: false,
            buf: Vec::new(),
        }
    }

    /// Reads one physical line (with its `\n`) into `self.buf`, appending; at most
    /// `MAX_RECORD_BYTES` in all. Returns false at the end of the input.
    fn read_line(&mut self, start: usize) -> Result<bool, CsvError> {
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(self.buf.len());
        let n = (&mut self.inner)
            .take(room as u64)
            .read_until(b'\n', &mut self.buf)
            .map_err(CsvError::Io)?;
        if self.buf.len() > MAX_RECORD_BYTES {
            return Err(CsvError::At {
                line: start,
                message: format!(
                    "the record is longer than {} MiB: is this a CSV file?",
                    MAX_RECORD_BYTES >> 20
                ),
            });
        }
        Ok(n > 0)
    }

    /// The next record, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<Record>, CsvError> {
        loop {
            let start = self.line;
            self.buf.clear();
            if !self.read_line(start)? {
                return Ok(None);
            }
            // A quoted field may span lines: keep reading until the quotes balance.
            while quotes_open(&self.buf) {
                self.line += 1;
                if !self.read_line(start)? {
                    return Err(CsvError::At {
                        line: start,
                        message: "a quoted field is never closed".to_string(),
                    });
                }
            }
            self.line += 1;
            let mut bytes: &[u8] = &self.buf;
            if self.first {
                self.first = false;
                bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
            }
            let text = std::str::from_utf8(bytes).map_err(|e| CsvError::At {
                line: start,
                message: format!("not UTF-8 text (byte {} of the record)", e.valid_up_to()),
            })?;
            let fields = split_record(text).map_err(|message| CsvError::At {
                line: start,
                message,
            })?;
            if fields.len() == 1 && fields[0].is_empty() {
                continue; // a blank line
            }
            return Ok(Some(Record {
                line: start,
                fields,
            }));
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Record, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_record().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}

/// Whether the bytes so far end inside a quoted field, by the same rules as [`split_record`]
/// (a quote opens a field only at its start; a stray quote is left for it to refuse).
fn quotes_open(bytes: &[u8]) -> bool {
    let (mut in_quotes, mut blank) = (false, true);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quotes {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quotes = false;
                    blank = false;
                }
            }
        } else {
            match b {
                b'"' if blank => in_quotes = true,
                b'"' => return false,
                b',' => blank = true,
                b if b.is_ascii_whitespace() => {}
                _ => blank = false,
            }
        }
        i += 1;
    }
    in_quotes
}

/// Splits one complete record (its quotes balanced, with or without the final line end).
fn split_record(text: &str) -> Result<Vec<String>, String> {
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !quoted => {
                field.clear();
                in_quotes = true;
                quoted = true;
            }
            '"' => return Err("a quote inside an unquoted field".to_string()),
            ',' => {
                let f = std::mem::take(&mut field);
                fields.push(if quoted { f } else { f.trim().to_string() });
                quoted = false;
            }
            '\r' => {
                return Err(
                    "a carriage return without a line feed: save the file with LF or CRLF line \
                     ends (CR-only files are not CSV)"
                        .to_string(),
                );
            }
            _ => field.push(c),
        }
    }
    fields.push(if quoted {
        field
    } else {
        field.trim().to_string()
    });
    Ok(fields)
}

/// Every record of a text (tests and small inputs).
pub fn records(text: &str) -> Result<Vec<Record>, CsvError> {
    Reader::new(text.as_bytes()).collect()
}

/// A whole CSV file in compact form: the header's fields, then every data record's fields in
/// one text buffer with their boundaries (a few bytes per field beyond the text itself).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    /// The line the header starts on.
    pub header_line: usize,
    text: String,
    /// End offset in `text` of every field, rows one after another (u32: 4 bytes a field).
    ends: Vec<u32>,
    /// Per data row: the line it starts on and the index in `ends` of its first field.
    rows: Vec<(u32, u32)>,
}

/// The most text a [`Table`] holds: its offsets are 32-bit.
pub const MAX_TABLE_BYTES: usize = u32::MAX as usize;

/// One data row of a [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// 1-based line of the file where the row starts.
    pub line: usize,
    text: &'a str,
    /// Offset of the first field, then the end of every field.
    start: u32,
    ends: &'a [u32],
}

impl<'a> Row<'a> {
    /// How many fields the row has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i` (0-based); panics past the end, like slice indexing.
    pub fn get(&self, i: usize) -> &'a str {
        let from = if i == 0 { self.start } else { self.ends[i - 1] };
        &self.text[from as usize..self.ends[i] as usize]
    }
}

impl Table {
    /// Reads a table from a stream. `Ok` with an empty header when the input has no record.
    pub fn read(input: impl Read) -> Result<Table, CsvError> {
        Table::read_sized(input, 0)
    }

    /// [`Table::read`] of an input of about `size_hint` bytes (a file's length): the text buffer
    /// is allocated once instead of doubling.
    pub fn read_sized(input: impl Read, size_hint: u64) -> Result<Table, CsvError> {
        let mut t = Table {
            text: String::with_capacity(size_hint.min(MAX_TABLE_BYTES as u64) as usize),
            ..Table::default()
        };
        let mut records = Reader::new(input);
        match records.next().transpose()? {
            None => return Ok(t),
            Some(h) => {
                t.header = h.fields;
                t.header_line = h.line;
            }
        }
        for r in records {
            t.push(&r?)?;
        }
        t.text.shrink_to_fit();
        t.ends.shrink_to_fit();
        t.rows.shrink_to_fit();
        Ok(t)
    }

    /// Appends one data record.
    fn push(&mut self, r: &Record) -> Result<(), CsvError> {
        let too_big = || CsvError::At {
            line: r.line,
            message: format!(
                "the table holds more than {} GiB of text: split it into several files",
                (MAX_TABLE_BYTES + 1) >> 30
            ),
        };
        let first = u32::try_from(self.ends.len()).map_err(|_| too_big())?;
        let line = u32::try_from(r.line).map_err(|_| too_big())?;
        self.rows.push((line, first));
        for f in &r.fields {
            if self.text.len() + f.len() > MAX_TABLE_BYTES {
                return Err(too_big());
            }
            self.text.push_str(f);
            self.ends.push(self.text.len() as u32);
        }
        Ok(())
    }

    /// Whether the input had no record at all (not even a header).
    pub fn no_header(&self) -> bool {
        self.header.is_empty()
    }

    /// Whether there is no data row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn row(&self, i: usize) -> Row<'_> {
        let (line, first) = self.rows[i];
        let first = first as usize;
        let last = self
            .rows
            .get(i + 1)
            .map_or(self.ends.len(), |r| r.1 as usize);
        Row {
            line: line as usize,
            text: &self.text,
            start: if first == 0 { 0 } else { self.ends[first - 1] },
            ends: &self.ends[first..last],
        }
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        (0..self.rows.len()).map(|i| self.row(i))
    }
}

/// Reads a CSV row by row without keeping the rows: for readers that need each row once, so
/// memory does not grow with the file.
pub struct RowReader<R> {
    records: Reader<R>,
    /// The current row, as a one-row table.
    current: Table,
}

impl<R: Read> RowReader<R> {
    pub fn new(input: R) -> RowReader<R> {
        RowReader {
            records: Reader::new(input),
            current: Table::default(),
        }
    }

    /// The first record (the header), or `None` for an input without any.
    pub fn header(&mut self) -> Result<Option<Record>, CsvError> {
        self.records.next().transpose()
    }

    /// The next record as a [`Row`], or `None` at the end.
    pub fn next_row(&mut self) -> Option<Result<Row<'_>, CsvError>> {
        let r = match self.records.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let t = &mut self.current;
        t.text.clear();
        t.ends.clear();
        t.rows.clear();
        if let Err(e) = t.push(&r) {
            return Some(Err(e));
        }
        Some(Ok(t.row(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> (usize, String) {
        match records(text) {
            Err(CsvError::At { line, message }) => (line, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn csv_records_handle_quotes_crlf_and_blank_lines() {
        let recs = records("\u{feff}a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\n\"multi\nline\",2\n3,4")
            .expect("parses");
        let rows: Vec<usize> = recs.iter().map(|r| r.line).collect();
        assert_eq!(rows, [1, 2, 4, 6]);
        assert_eq!(recs[0].fields, ["a", "b"]);
        assert_eq!(recs[1].fields, ["x,1", "say \"hi\""]);
        assert_eq!(recs[2].fields, ["multi\nline", "2"]);
        assert_eq!(recs[3].fields, ["3", "4"]);
        assert_eq!(err_of("a\n\"open,1\n").0, 2);
        assert!(err_of("a,b\n1,x\"y\n").1.contains("quote inside"));
    }

    #[test]
    fn cr_only_files_are_refused_with_the_line() {
        let (line, message) = err_of("a,b\r1,2\r3,4\r");
        assert_eq!(line, 1);
        assert!(message.contains("carriage return"), "{message}");
    }

    #[test]
    fn a_runaway_record_is_refused_after_the_cap_without_reading_the_rest() {
        // An endless stream of zeros (like /dev/zero): refused, not read into memory.
        let zeros = std::io::repeat(b'0');
        let mut r = Reader::new(zeros);
        match r.next() {
            Some(Err(CsvError::At { line: 1, message })) => {
                assert!(message.contains("longer than 1 MiB"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(r.next().is_none());
        // A record right at the cap is accepted.
        let mut big = "x".repeat(MAX_RECORD_BYTES - 1);
        big.push('\n');
        assert_eq!(
            records(&big).unwrap()[0].fields[0].len(),
            MAX_RECORD_BYTES - 1
        );
    }

    #[test]
    fn non_utf8_bytes_are_named_with_their_line() {
        let e = Reader::new(&b"a\n\xff\xfe\n"[..])
            .nth(1)
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, CsvError::At { line: 2, .. }), "{e}");
    }

    #[test]
    fn tables_store_rows_compactly_and_give_back_every_field() {
        let t = Table::read(&b"id,x\n\na,1\nb,\"2,5\",extra\n"[..]).unwrap();
        assert_eq!(t.header, ["id", "x"]);
        assert_eq!(t.len(), 2);
        let r: Vec<(usize, Vec<&str>)> = t
            .rows()
            .map(|r| (r.line, (0..r.len()).map(|i| r.get(i)).collect()))
            .collect();
        assert_eq!(r, [(3, vec!["a", "1"]), (4, vec!["b", "2,5", "extra"])]);
        assert!(Table::read(&b""[..]).unwrap().no_header());
        let mut rows = RowReader::new(&b"id,x\na,1\nb,\"2,5\"\n"[..]);
        assert_eq!(rows.header().unwrap().unwrap().fields, ["id", "x"]);
        let r = rows.next_row().unwrap().unwrap();
        assert_eq!((r.line, r.get(0), r.get(1)), (2, "a", "1"));
        let r = rows.next_row().unwrap().unwrap();
        assert_eq!((r.line, r.len(), r.get(1)), (3, 2, "2,5"));
        assert!(rows.next_row().is_none());
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        assert_eq!(shown("0.5"), "0.5");
        let long = "9".repeat(5_000_000);
        let s = shown(&long);
        assert!(s.len() < 120, "{s}");
        assert!(s.ends_with("… (5000000 bytes)"), "{s}");
    }
}
