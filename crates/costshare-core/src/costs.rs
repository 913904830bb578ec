//! Cost lines and exchange rates, parsed from CSV bytes (SPEC section 6).
//!
//! Parsing takes bytes the caller has read; nothing here touches files. Every
//! bad row is reported (by physical line number, the header being line 1, and
//! id); a file with any bad row yields no lines at all.

use crate::agreement::Agreement;
use crate::calendar::Date;
use crate::money::{self, Currency};
use crate::num::{self, BigRational, Q};
use std::collections::HashMap;
use std::fmt;

/// One recorded cost, converted to the agreement currency.
#[derive(Clone, Debug, PartialEq)]
pub struct CostLine {
    pub id: String,
    pub date: Date,
    /// Index into `Agreement::categories`.
    pub category: usize,
    /// Minor units of the agreement currency.
    pub amount: i64,
    /// The amount as written, in `currency`'s minor units.
    pub source_amount: i64,
    pub currency: String,
    /// The rate applied (agreement currency per major unit), when converted.
    pub rate: Option<(Date, BigRational)>,
    /// Quantity, only for categories that declare a unit.
    pub quantity: Option<Q>,
    pub site: String,
    pub description: String,
    /// Physical line number of the row in its file (header = 1).
    pub row: usize,
    /// The id this line supersedes, if any.
    pub replaces: Option<String>,
    /// The party (index into `Agreement::parties`) that paid the bill, if
    /// the row says (`paid_by`).
    pub paid_by: Option<usize>,
}

/// A problem with one row (or the header) of a CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// Physical line number (header = 1); 0 for the file as a whole.
    pub line: usize,
    pub id: Option<String>,
    pub message: String,
}

impl RowError {
    /// A row the one rule refused ([`accept`]), as every reader of a costs
    /// file names it: its line, its id when it has one, every problem.
    pub fn refused(raw: &RowRef<'_>, problems: &RowProblems) -> RowError {
        RowError {
            line: raw.line,
            id: (!raw.id.is_empty()).then(|| raw.id.to_string()),
            message: problems.to_string(),
        }
    }

    /// The error as users see it, located in `file`: `FILE:LINE, id ID:
    /// message`, `FILE:LINE: message`, or `FILE:message` for the file as a
    /// whole.
    pub fn located(&self, file: &str) -> String {
        match (&self.id, self.line) {
            (Some(id), l) => format!("{file}:{l}, id {}: {}", shown_id(id), self.message),
            (None, 0) => format!("{file}:{}", self.message),
            (None, l) => format!("{file}:{l}: {}", self.message),
        }
    }
}

/// An id as a message shows it: whole when within [`MAX_ID_BYTES`], else its
/// first 64 characters and `…` (the error says how long it is).
pub fn shown_id(id: &str) -> std::borrow::Cow<'_, str> {
    let printable = |c: char| !(c.is_control() || is_direction_control(c));
    if id.len() <= MAX_ID_BYTES && id.chars().all(printable) {
        return id.into();
    }
    // a control character is shown as its code point, never written raw
    let mut out = String::new();
    for c in id.chars().take(64) {
        if printable(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        }
    }
    if id.chars().count() > 64 {
        out.push('…');
    }
    out.into()
}

/// Free text (a description, a site, a void's reason) as a table or a text
/// report shows it: a control character or a direction control is shown as
/// its code point (`\u{001B}`), never written raw, so recorded text cannot
/// move the terminal's cursor, colour it, or fake a line of the report. The
/// text itself is kept as recorded (CSV and JSON outputs carry it whole).
pub fn shown_text(s: &str) -> std::borrow::Cow<'_, str> {
    let printable = |c: char| !(c.is_control() || is_direction_control(c));
    if s.chars().all(printable) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if printable(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        }
    }
    out.into()
}

/// A character that changes the direction text is shown in.
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.id, self.line) {
            (Some(id), l) => write!(f, "line {l}, id {}: {}", shown_id(id), self.message),
            (None, 0) => write!(f, "{}", self.message),
            (None, l) => write!(f, "line {l}: {}", self.message),
        }
    }
}

/// Exchange rates: agreement currency per one major unit, by currency and date.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    /// Per currency, sorted by date: (date, rate, factor) where factor converts
    /// the currency's minor units to the agreement's minor units.
    by_currency: HashMap<String, Vec<(Date, BigRational)>>,
}

impl Rates {
    pub fn empty() -> Rates {
        Rates::default()
    }

    /// The latest rate dated on or before `date`.
    pub fn lookup(&self, currency: &str, date: Date) -> Option<&(Date, BigRational)> {
        let v = self.by_currency.get(currency)?;
        let idx = v.partition_point(|(d, _)| *d <= date);
        if idx == 0 { None } else { v.get(idx - 1) }
    }

    pub fn len(&self) -> usize {
        self.by_currency.values().map(Vec::len).sum()
    }

    /// Build from (currency, date, rate) rows; a second rate for one
    /// currency and date is refused (returned).
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Date, BigRational)>) -> Result<Rates, (String, Date)> {
        let mut r = Rates::default();
        for (c, d, rate) in rows {
            let v = r.by_currency.entry(c.clone()).or_default();
            if v.iter().any(|(x, _)| *x == d) {
                return Err((c, d));
            }
            v.push((d, rate));
        }
        for v in r.by_currency.values_mut() {
            v.sort_by_key(|(d, _)| *d);
        }
        Ok(r)
    }

    /// Every rate as (currency, date, rate), currencies in byte order.
    pub fn rows(&self) -> Vec<(String, Date, BigRational)> {
        let mut out: Vec<(String, Date, BigRational)> = self
            .by_currency
            .iter()
            .flat_map(|(c, v)| v.iter().map(move |(d, r)| (c.clone(), *d, r.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Strip a UTF-8 byte-order mark.
fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

/// Physical line numbers of record starts, counted from byte offsets (a line
/// ends at LF, CRLF or a lone CR), so CRLF files and quoted line breaks
/// number the way an editor does.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> LineCounter<'a> {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of a record starting at byte `to` (offsets only move
    /// forward). The reader may place a record's start on the line break that
    /// ended the previous one, so line-break bytes there are skipped.
    fn line_at(&mut self, to: usize) -> usize {
        let mut to = to.min(self.bytes.len());
        while to < self.bytes.len() && (self.bytes[to] == b'\n' || self.bytes[to] == b'\r') {
            to += 1;
        }
        if to > self.offset {
            let chunk = &self.bytes[self.offset..to];
            for (i, &b) in chunk.iter().enumerate() {
                if b == b'\n'
                    || (b == b'\r' && chunk.get(i + 1).copied().or_else(|| self.bytes.get(to).copied()) != Some(b'\n'))
                {
                    self.line += 1;
                }
            }
            self.offset = to;
        }
        self.line
    }
}

/// The line of a quote that is never closed (the reader would otherwise take
/// the rest of the file into one field). Mirrors the reader's quoting: a quote
/// opens only at the start of a field, `""` inside quotes is a literal quote.
fn unterminated_quote(bytes: &[u8]) -> Option<usize> {
    #[derive(PartialEq)]
    enum St {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut st = St::FieldStart;
    let mut line = 1usize;
    let mut open_line = 0usize;
    let mut prev_cr = false;
    for &b in bytes {
        let newline = b == b'\n' && !prev_cr || b == b'\r';
        prev_cr = b == b'\r';
        st = match st {
            St::FieldStart if b == b'"' => {
                open_line = line;
                St::Quoted
            }
            St::FieldStart | St::Unquoted => {
                if b == b',' || b == b'\n' || b == b'\r' {
                    St::FieldStart
                } else {
                    St::Unquoted
                }
            }
            St::Quoted => {
                if b == b'"' {
                    St::QuoteInQuoted
                } else {
                    St::Quoted
                }
            }
            St::QuoteInQuoted => match b {
                b'"' => St::Quoted,
                b',' | b'\n' | b'\r' => St::FieldStart,
                _ => St::Unquoted,
            },
        };
        if newline {
            line += 1;
        }
    }
    (st == St::Quoted).then_some(open_line)
}

fn reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(strip_bom(bytes))
}

/// Surrounding spaces (only spaces, as the contract says) are not part of a field.
fn trim(s: &str) -> &str {
    s.trim_matches(' ')
}

struct Header {
    cols: HashMap<String, usize>,
}

impl Header {
    /// Read the header. A column the program reads (`known`) may appear only
    /// once; other columns are ignored, repeated or not.
    fn read(
        rdr: &mut csv::Reader<&[u8]>,
        required: &[&str],
        known: &[&str],
        errors: &mut Vec<RowError>,
    ) -> Option<Header> {
        let mut rec = csv::ByteRecord::new();
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => {
                errors.push(RowError {
                    line: 1,
                    id: None,
                    message: format!("the file is empty: a header with {} is required", required.join(", ")),
                });
                return None;
            }
            Err(e) => {
                errors.push(RowError {
                    line: 1,
                    id: None,
                    message: format!("unreadable header: {e}"),
                });
                return None;
            }
        }
        let mut cols = HashMap::new();
        for (i, f) in rec.iter().enumerate() {
            let Ok(name) = std::str::from_utf8(f) else {
                errors.push(RowError {
                    line: 1,
                    id: None,
                    message: "the header is not valid UTF-8".into(),
                });
                return None;
            };
            let name = trim(name).to_string();
            if name.is_empty() {
                continue;
            }
            if !known.contains(&name.as_str()) {
                continue;
            }
            if cols.insert(name.clone(), i).is_some() {
                errors.push(RowError {
                    line: 1,
                    id: None,
                    message: format!("column `{name}` appears twice in the header"),
                });
            }
        }
        let missing: Vec<&str> = required.iter().copied().filter(|c| !cols.contains_key(*c)).collect();
        if !missing.is_empty() {
            errors.push(RowError {
                line: 1,
                id: None,
                message: format!(
                    "the header lacks the required column{} {}",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", ")
                ),
            });
            return None;
        }
        Some(Header { cols })
    }

    fn get<'r>(&self, rec: &'r [&'r str], name: &str) -> &'r str {
        self.cols.get(name).and_then(|&i| rec.get(i)).copied().unwrap_or("")
    }
}

/// Split a byte record into trimmed UTF-8 fields.
fn fields(rec: &csv::ByteRecord) -> Result<Vec<&str>, usize> {
    rec.iter()
        .enumerate()
        .map(|(i, f)| std::str::from_utf8(f).map(trim).map_err(|_| i + 1))
        .collect()
}

/// Parse a rates CSV. Rows for `agreement_currency` are ignored.
pub fn parse_rates(bytes: &[u8], agreement_currency: &str) -> Result<Rates, Vec<RowError>> {
    let (rates, errors) = parse_rates_partial(bytes, agreement_currency);
    if errors.is_empty() { Ok(rates) } else { Err(errors) }
}

/// Parse a rates CSV, keeping the good rows even when others are bad, so
/// that a costs file can still be checked against them and every bad row of
/// both files reported in one run.
pub fn parse_rates_partial(bytes: &[u8], agreement_currency: &str) -> (Rates, Vec<RowError>) {
    let mut errors = Vec::new();
    let mut rdr = reader(bytes);
    let Some(h) = Header::read(
        &mut rdr,
        &["date", "currency", "rate"],
        &["date", "currency", "rate"],
        &mut errors,
    ) else {
        return (Rates::default(), errors);
    };
    let mut rates = Rates::default();
    let mut seen: HashMap<(String, Date), usize> = HashMap::new();
    let mut rec = csv::ByteRecord::new();
    let body = strip_bom(bytes);
    let mut lc = LineCounter::new(body);
    if let Some(l) = unterminated_quote(body) {
        errors.push(RowError {
            line: l,
            id: None,
            message: "a quoted field is never closed (a missing `\"`)".into(),
        });
        return (rates, errors);
    }
    loop {
        let line = lc.line_at(rdr.position().byte() as usize);
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                errors.push(RowError {
                    line,
                    id: None,
                    message: format!("unreadable CSV: {e}"),
                });
                break;
            }
        }
        let line = rec.position().map(|p| lc.line_at(p.byte() as usize)).unwrap_or(line);
        let f = match fields(&rec) {
            Ok(f) => f,
            Err(col) => {
                errors.push(RowError {
                    line,
                    id: None,
                    message: format!("field {col} is not valid UTF-8"),
                });
                continue;
            }
        };
        if f.iter().all(|s| s.is_empty()) {
            continue;
        }
        if let Some((column, len)) = ["date", "currency", "rate"]
            .into_iter()
            .map(|c| (c, h.get(&f, c).len()))
            .find(|&(_, len)| len > MAX_ID_BYTES)
        {
            errors.push(RowError {
                line,
                id: None,
                message: format!("{column} is {len} bytes long; the limit is {MAX_ID_BYTES} bytes"),
            });
            continue;
        }
        let cur = h.get(&f, "currency");
        if cur == agreement_currency {
            continue;
        }
        let mut bad = Vec::new();
        let date = Date::parse(h.get(&f, "date"));
        if date.is_none() {
            bad.push(format!("date `{}` is not a valid YYYY-MM-DD date", h.get(&f, "date")));
        }
        if !money::valid_code(cur) {
            bad.push(format!(
                "currency `{cur}` is not a currency code (three capital letters)"
            ));
        }
        let rate_text = h.get(&f, "rate");
        let rate = match num::parse_rational(rate_text, 18) {
            Ok(r) if r.is_zero() => {
                bad.push(format!("rate `{rate_text}` is zero"));
                None
            }
            Ok(r) => Some(r),
            Err(e) => {
                bad.push(format!("rate `{rate_text}` is {e}"));
                None
            }
        };
        if !bad.is_empty() {
            errors.push(RowError {
                line,
                id: None,
                message: bad.join("; "),
            });
            continue;
        }
        let (Some(date), Some(rate)) = (date, rate) else {
            continue;
        };
        if let Some(prev) = seen.insert((cur.to_string(), date), line) {
            errors.push(RowError {
                line,
                id: None,
                message: format!("a second {cur} rate for {date} (the first is on line {prev})"),
            });
            continue;
        }
        rates.by_currency.entry(cur.to_string()).or_default().push((date, rate));
    }
    for v in rates.by_currency.values_mut() {
        v.sort_by_key(|(d, _)| *d);
    }
    (rates, errors)
}

/// The lines of a costs file, in file order after duplicates and replaced
/// lines are dropped.
#[derive(Clone, Debug, Default)]
pub struct Costs {
    pub lines: Vec<CostLine>,
    /// Rows that repeated an earlier row exactly.
    pub duplicates: usize,
    /// Lines dropped because a later row replaces them.
    pub replaced: usize,
}

/// One costs row as text: the columns of SPEC section 6, trimmed, empty where
/// missing, with its physical line number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRow {
    pub line: usize,
    pub id: String,
    pub date: String,
    pub category: String,
    pub amount: String,
    pub currency: String,
    pub quantity: String,
    pub site: String,
    pub description: String,
    pub replaces: String,
    pub paid_by: String,
}

/// A costs row borrowed from the reader's buffer: the same columns as
/// [`RawRow`] without copying them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowRef<'a> {
    pub line: usize,
    pub id: &'a str,
    pub date: &'a str,
    pub category: &'a str,
    pub amount: &'a str,
    pub currency: &'a str,
    pub quantity: &'a str,
    pub site: &'a str,
    pub description: &'a str,
    pub replaces: &'a str,
    pub paid_by: &'a str,
    /// A line read back from a ledger's journal, which is the truth: the
    /// input limits added after it may have been recorded (field lengths,
    /// identifier characters) are not applied to it again, so a ledger
    /// written by an earlier build still replays. Every other rule is.
    pub recorded: bool,
}

impl RawRow {
    pub fn as_ref(&self) -> RowRef<'_> {
        RowRef {
            line: self.line,
            id: &self.id,
            date: &self.date,
            category: &self.category,
            amount: &self.amount,
            currency: &self.currency,
            quantity: &self.quantity,
            site: &self.site,
            description: &self.description,
            replaces: &self.replaces,
            paid_by: &self.paid_by,
            recorded: false,
        }
    }
}

/// The costs columns the program reads.
pub const COST_COLUMNS: [&str; 10] = [
    "id",
    "date",
    "category",
    "amount",
    "currency",
    "quantity",
    "site",
    "description",
    "replaces",
    "paid_by",
];

/// Call `f` with each row of a costs CSV, borrowed (no copy per field);
/// returns the problems of the CSV layer (header, quoting, encoding).
pub fn for_each_row(bytes: &[u8], f: impl FnMut(RowRef<'_>)) -> Vec<RowError> {
    read_rows(bytes, f).0
}

/// [`for_each_row`], and whether the reader reached the end of the bytes
/// (`false`: a problem of the header or the CSV layer stopped it).
fn read_rows(bytes: &[u8], mut f: impl FnMut(RowRef<'_>)) -> (Vec<RowError>, bool) {
    let mut errors = Vec::new();
    let mut rdr = reader(bytes);
    let Some(h) = Header::read(
        &mut rdr,
        &["id", "date", "category", "amount"],
        &COST_COLUMNS,
        &mut errors,
    ) else {
        return (errors, false);
    };
    let body = strip_bom(bytes);
    let mut lc = LineCounter::new(body);
    if let Some(l) = unterminated_quote(body) {
        errors.push(RowError {
            line: l,
            id: None,
            message: "a quoted field is never closed (a missing `\"`)".into(),
        });
        return (errors, false);
    }
    let mut rec = csv::ByteRecord::new();
    // column positions, looked up once
    let ix: [Option<usize>; 10] = COST_COLUMNS.map(|c| h.cols.get(c).copied());
    loop {
        let pos_line = lc.line_at(rdr.position().byte() as usize);
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                errors.push(RowError {
                    line: pos_line,
                    id: None,
                    message: format!("unreadable CSV: {e}"),
                });
                return (errors, false);
            }
        }
        let line = rec
            .position()
            .map(|p| lc.line_at(p.byte() as usize))
            .unwrap_or(pos_line);
        let fl = match fields(&rec) {
            Ok(f) => f,
            Err(col) => {
                let id = h
                    .cols
                    .get("id")
                    .and_then(|&i| rec.get(i))
                    .and_then(|b| std::str::from_utf8(b).ok());
                errors.push(RowError {
                    line,
                    id: id.map(|s| trim(s).to_string()).filter(|s| !s.is_empty()),
                    message: format!("field {col} is not valid UTF-8"),
                });
                continue;
            }
        };
        if fl.iter().all(|s| s.is_empty()) && fl.len() <= 1 {
            continue; // a blank line
        }
        let get = |k: usize| ix[k].and_then(|i| fl.get(i)).copied().unwrap_or("");
        f(RowRef {
            line,
            id: get(0),
            date: get(1),
            category: get(2),
            amount: get(3),
            currency: get(4),
            quantity: get(5),
            site: get(6),
            description: get(7),
            replaces: get(8),
            paid_by: get(9),
            recorded: false,
        });
    }
    (errors, true)
}

/// Files smaller than this are read by one thread ([`for_each_row_split`]).
const SPLIT_MIN_BYTES: usize = 1 << 20;
/// [`for_each_row_split`]'s progress step, in rows.
pub const TICK_ROWS: u64 = 20_000;

/// [`for_each_row`] on two threads, each with its own state `S` made by
/// `init`: the rows before a line break near the middle on this thread, the
/// rest on another (after the same header). The states come back in file
/// order, and the CSV problems are [`for_each_row`]'s, lines and all.
///
/// It cuts only where a cut cannot change a row: a file of at least a
/// megabyte with no quote and no carriage return, where every line break
/// ends a record. Otherwise it is [`for_each_row`] on one thread, one state;
/// and when a problem of the header or the CSV layer stops the first half
/// (the reader stops at it), the second half's rows and problems are
/// dropped: they are not rows of the file as [`for_each_row`] reads it.
///
/// `tick` is called on the calling thread every [`TICK_ROWS`] of its rows
/// with the rows both threads have read (for progress).
pub fn for_each_row_split<S: Send>(
    bytes: &[u8],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, RowRef<'_>) + Sync,
    tick: &mut dyn FnMut(u64),
) -> (Vec<S>, Vec<RowError>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let read = AtomicU64::new(0);
    let count = |n: &mut u64| {
        *n += 1;
        if (*n).is_multiple_of(TICK_ROWS) {
            read.fetch_add(TICK_ROWS, Ordering::Relaxed) + TICK_ROWS
        } else {
            0
        }
    };
    let cut = (|| {
        if bytes.len() < SPLIT_MIN_BYTES || memchr::memchr2(b'"', b'\r', bytes).is_some() {
            return None;
        }
        let header = memchr::memchr(b'\n', bytes)? + 1;
        let cut = header + crate::stream::split_point(&bytes[header..])?;
        (cut < bytes.len()).then_some((header, cut))
    })();
    let Some((header, cut)) = cut else {
        let mut s = init();
        let mut n = 0;
        let errors = for_each_row(bytes, |r| {
            if count(&mut n) > 0 {
                tick(n);
            }
            f(&mut s, r)
        });
        return (vec![s], errors);
    };
    // the second half's physical lines are this many after its copy's
    let shift = memchr::memchr_iter(b'\n', &bytes[header..cut]).count();
    let mut second: Vec<u8> = Vec::with_capacity(header + bytes.len() - cut);
    second.extend_from_slice(&bytes[..header]);
    second.extend_from_slice(&bytes[cut..]);
    let (first, rest) = std::thread::scope(|scope| {
        let rest = scope.spawn(|| {
            let mut s = init();
            let mut n = 0;
            let (mut errors, _) = read_rows(&second, |mut r| {
                count(&mut n);
                r.line += shift;
                f(&mut s, r)
            });
            // the header's problems are the first half's to name (this half
            // read a copy of the header, as its line 1)
            errors.retain(|e| e.line > 1);
            for e in &mut errors {
                e.line += shift;
            }
            (s, errors)
        });
        let mut s = init();
        let mut n = 0;
        let read = read_rows(&bytes[..cut], |r| {
            let both = count(&mut n);
            if both > 0 {
                tick(both);
            }
            f(&mut s, r)
        });
        ((s, read), rest.join())
    });
    let (s0, (mut e0, whole)) = first;
    if !whole {
        return (vec![s0], e0);
    }
    match rest {
        Ok((s1, e1)) => {
            e0.extend(e1);
            (vec![s0, s1], e0)
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The rate a conversion used (its date and value, borrowed from the
/// [`Rates`]); none for the agreement's own currency.
pub type RateUsed<'r> = Option<(Date, &'r BigRational)>;

/// A row the agreement accepts, in the agreement's terms: what every path
/// (the general parser, the streaming report, the ledger's record and
/// replay) takes from a row. Borrows the rate it used from the [`Rates`];
/// building one allocates nothing unless a number leaves `u128` or the
/// amount is converted from another currency.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted<'r> {
    pub date: Date,
    /// Index into `Agreement::categories`.
    pub category: usize,
    /// Minor units of the agreement currency.
    pub amount: i64,
    /// The amount as written, in `currency`'s minor units.
    pub source_amount: i64,
    pub currency: Currency,
    /// The rate applied (agreement currency per major unit), when converted.
    pub rate: RateUsed<'r>,
    /// Quantity, only for categories that declare a unit.
    pub quantity: Option<Q>,
    /// The party that paid the bill (index into `Agreement::parties`).
    pub paid_by: Option<usize>,
}

impl Accepted<'_> {
    /// The cost line of the accepted row `raw`.
    pub fn into_line(self, raw: &RowRef<'_>) -> CostLine {
        CostLine {
            id: raw.id.to_string(),
            date: self.date,
            category: self.category,
            amount: self.amount,
            source_amount: self.source_amount,
            currency: self.currency.code().to_string(),
            rate: self.rate.map(|(d, r)| (d, r.clone())),
            quantity: self.quantity,
            site: raw.site.to_string(),
            description: raw.description.to_string(),
            row: raw.line,
            replaces: if raw.replaces.is_empty() {
                None
            } else {
                Some(raw.replaces.to_string())
            },
            paid_by: self.paid_by,
        }
    }
}

/// Why a row is refused: one variant per rule of the contract. `Display`
/// gives the message the user reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowProblem {
    IdEmpty,
    DateEmpty,
    /// Not a `YYYY-MM-DD` date (the text as written).
    DateInvalid(String),
    DateOutsideTerm {
        date: Date,
        start: Date,
        end: Date,
    },
    CategoryEmpty,
    /// The category as written, and the agreement's categories.
    CategoryUnknown {
        category: String,
        known: Vec<String>,
    },
    /// The currency code as written.
    CurrencyUnknown(String),
    AmountEmpty,
    /// The amount as written.
    AmountNegative(String),
    /// Malformed, too many decimals for the currency, or too large.
    AmountInvalid {
        text: String,
        error: num::DecimalError,
        currency: Currency,
    },
    /// The category (as written) counts `unit`, and the quantity is zero.
    QuantityZero {
        category: String,
        unit: String,
    },
    /// The category (as written) counts `unit`, and no quantity is given.
    QuantityMissing {
        category: String,
        unit: String,
    },
    QuantityInvalid {
        text: String,
        error: num::DecimalError,
    },
    /// The amount cannot be converted (`amount` as written).
    Conversion {
        amount: String,
        error: ConvertError,
    },
    ReplacesItself,
    /// A field longer than its limit ([`MAX_ID_BYTES`] for `id`, `replaces`
    /// and `site`; [`MAX_FIELD_BYTES`] for the others). The text is not kept,
    /// so a message never echoes it.
    FieldTooLong {
        column: &'static str,
        len: usize,
        limit: usize,
    },
    /// An identifier field (`id`, `replaces`, `site`, `paid_by`) holds a
    /// control character (a tab, a newline, an escape, …) or a
    /// bidirectional override: it would print as something else than it is.
    /// The character is named by its code point, never echoed.
    ControlCharacter {
        column: &'static str,
        code: u32,
    },
    /// Unreachable: a row with no problem and a missing value.
    Incomplete,
    /// `paid_by` names no party of the agreement (the text as written, and
    /// the agreement's parties).
    PaidByUnknown {
        party: String,
        known: Vec<String>,
    },
}

/// The longest `id`, `replaces` or `site` a costs row may carry, in bytes.
/// Ids are stored in every journal entry and index; 256 bytes is far above
/// any id seen in practice and keeps a hostile file from bloating a ledger.
pub const MAX_ID_BYTES: usize = 256;
/// The longest any other field may be, in bytes (a description, mostly).
pub const MAX_FIELD_BYTES: usize = 4096;

/// The field-length rule: the first field of `raw` over its limit, if any.
fn too_long(raw: &RowRef<'_>) -> Option<RowProblem> {
    let fields: [(&'static str, &str, usize); 10] = [
        ("id", raw.id, MAX_ID_BYTES),
        ("replaces", raw.replaces, MAX_ID_BYTES),
        ("site", raw.site, MAX_ID_BYTES),
        ("date", raw.date, MAX_FIELD_BYTES),
        ("category", raw.category, MAX_FIELD_BYTES),
        ("amount", raw.amount, MAX_FIELD_BYTES),
        ("currency", raw.currency, MAX_FIELD_BYTES),
        ("quantity", raw.quantity, MAX_FIELD_BYTES),
        ("description", raw.description, MAX_FIELD_BYTES),
        ("paid_by", raw.paid_by, MAX_ID_BYTES),
    ];
    fields
        .into_iter()
        .find(|(_, text, limit)| text.len() > *limit)
        .map(|(column, text, limit)| RowProblem::FieldTooLong {
            column,
            len: text.len(),
            limit,
        })
}

/// The identifier rule: the first identifier field of `raw` holding a
/// control character or a bidirectional control, if any. Ids are printed in
/// tables, CSV, journals and terminals: a character that moves the cursor,
/// changes colours or reverses text would make an id print as another.
fn control_in_identifier(raw: &RowRef<'_>) -> Option<RowProblem> {
    let bad = |c: char| c.is_control() || is_direction_control(c);
    [
        ("id", raw.id),
        ("replaces", raw.replaces),
        ("site", raw.site),
        ("paid_by", raw.paid_by),
    ]
    .into_iter()
    .find_map(|(column, text)| {
        // ASCII text needs only the byte test (the hot path's common case)
        let hit = if text.is_ascii() {
            text.bytes().find(|b| *b < 0x20 || *b == 0x7f).map(char::from)
        } else {
            text.chars().find(|c| bad(*c))
        };
        hit.map(|c| RowProblem::ControlCharacter { column, code: c as u32 })
    })
}

impl RowProblem {
    /// A short, fixed description (for logs, such as the streaming path's
    /// reason to fall back).
    pub fn reason(&self) -> &'static str {
        match self {
            RowProblem::IdEmpty => "an empty id",
            RowProblem::DateEmpty | RowProblem::DateInvalid(_) => "a bad date",
            RowProblem::DateOutsideTerm { .. } => "a date outside the term",
            RowProblem::CategoryEmpty | RowProblem::CategoryUnknown { .. } => "an unknown category",
            RowProblem::CurrencyUnknown(_) => "an unknown currency",
            RowProblem::AmountEmpty | RowProblem::AmountNegative(_) | RowProblem::AmountInvalid { .. } => {
                "a bad amount"
            }
            RowProblem::QuantityZero { .. } => "a zero quantity",
            RowProblem::QuantityMissing { .. } | RowProblem::QuantityInvalid { .. } => "a bad quantity",
            RowProblem::Conversion {
                error: ConvertError::NoRate { .. },
                ..
            } => "no rate",
            RowProblem::Conversion { .. } => "a conversion beyond 64 bits",
            RowProblem::ReplacesItself => "a line replacing itself",
            RowProblem::FieldTooLong { .. } => "a field over its length limit",
            RowProblem::ControlCharacter { .. } => "a control character in an identifier",
            RowProblem::Incomplete => "an incomplete row",
            RowProblem::PaidByUnknown { .. } => "an unknown paid_by party",
        }
    }
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::IdEmpty => f.write_str("id is empty"),
            RowProblem::DateEmpty => f.write_str("date is empty"),
            RowProblem::DateInvalid(t) => write!(f, "date `{t}` is not a valid YYYY-MM-DD date"),
            RowProblem::DateOutsideTerm { date, start, end } => {
                write!(f, "date {date} is outside the agreement term {start} to {end}")
            }
            RowProblem::CategoryEmpty => f.write_str("category is empty"),
            RowProblem::CategoryUnknown { category, known } => {
                write!(
                    f,
                    "unknown category `{category}` (the agreement has {})",
                    known.join(", ")
                )
            }
            RowProblem::CurrencyUnknown(c) => {
                write!(
                    f,
                    "unknown currency `{c}` (declare it under [currencies] in the agreement)"
                )
            }
            RowProblem::AmountEmpty => f.write_str("amount is empty"),
            RowProblem::AmountNegative(t) => {
                write!(
                    f,
                    "amount `{t}` is negative; record a correction with `replaces` instead"
                )
            }
            RowProblem::AmountInvalid { text, error, currency } => write!(
                f,
                "amount `{text}` is {error} ({} has {} decimals)",
                currency.code(),
                currency.decimals()
            ),
            RowProblem::QuantityZero { category, unit } => write!(
                f,
                "quantity is zero; category `{category}` counts {unit} and needs a positive quantity"
            ),
            RowProblem::QuantityMissing { category, unit } => write!(
                f,
                "quantity is missing; category `{category}` counts {unit} and needs a positive quantity"
            ),
            RowProblem::QuantityInvalid { text, error } => write!(f, "quantity `{text}` is {error}"),
            RowProblem::Conversion {
                error: e @ ConvertError::NoRate { .. },
                ..
            } => write!(f, "{e}"),
            RowProblem::Conversion {
                amount,
                error: ConvertError::TooLarge { currency },
            } => write!(
                f,
                "amount {amount} {} converts beyond the limit of a 64-bit amount",
                currency.code()
            ),
            RowProblem::ReplacesItself => f.write_str("a line cannot replace itself"),
            RowProblem::FieldTooLong { column, len, limit } => {
                write!(f, "{column} is {len} bytes long; the limit is {limit} bytes")
            }
            RowProblem::ControlCharacter { column, code } => write!(
                f,
                "{column} holds the control character U+{code:04X}; identifiers are printable text (no tabs, newlines, escapes or direction overrides)"
            ),
            RowProblem::Incomplete => f.write_str("incomplete row"),
            RowProblem::PaidByUnknown { party, known } => write!(
                f,
                "paid_by `{party}` is not a party of the agreement (the agreement has {})",
                known.join(", ")
            ),
        }
    }
}

/// Every problem of one row, in the order the rules are checked (id, date,
/// category, currency, amount, quantity, conversion, replacement). `Display`
/// joins their messages with `; `.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowProblems(pub Vec<RowProblem>);

impl RowProblems {
    pub fn iter(&self) -> std::slice::Iter<'_, RowProblem> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for RowProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The one rule for a costs row: check it against the agreement and rates
/// and convert it to the agreement currency, or name every problem.
///
/// A good row costs no heap allocation (rows in the agreement currency skip
/// the currency lookup and the conversion; quantities are read into `u128`
/// before the general rational parser is tried).
#[inline]
pub fn accept<'r>(agreement: &Agreement, rates: &'r Rates, raw: &RowRef<'_>) -> Result<Accepted<'r>, RowProblems> {
    // a field over its limit is the row's one problem: the others would
    // echo the oversized text
    if !raw.recorded
        && let Some(p) = too_long(raw)
    {
        return Err(RowProblems(vec![p]));
    }
    let mut bad: Vec<RowProblem> = Vec::new();
    if raw.id.is_empty() {
        bad.push(RowProblem::IdEmpty);
    }
    if !raw.recorded
        && let Some(p) = control_in_identifier(raw)
    {
        bad.push(p);
    }
    let date_text = raw.date;
    let date = Date::parse(date_text);
    match date {
        None if date_text.is_empty() => bad.push(RowProblem::DateEmpty),
        None => bad.push(RowProblem::DateInvalid(date_text.to_string())),
        Some(d) if !agreement.in_term(d) => bad.push(RowProblem::DateOutsideTerm {
            date: d,
            start: agreement.start,
            end: agreement.end,
        }),
        _ => {}
    }
    let cat_text = raw.category;
    let category = agreement.category_index(cat_text);
    if category.is_none() {
        if cat_text.is_empty() {
            bad.push(RowProblem::CategoryEmpty);
        } else {
            bad.push(RowProblem::CategoryUnknown {
                category: cat_text.to_string(),
                known: agreement.categories.iter().map(|c| c.id.clone()).collect(),
            });
        }
    }
    // the agreement's own currency is the agreement's `currency` (the loader
    // resolves it as `Agreement::currency` would)
    let own = raw.currency.is_empty() || agreement.currency.has_code(raw.currency);
    let ccy = if own {
        Some(agreement.currency)
    } else {
        let c = agreement.currency(raw.currency);
        if c.is_none() {
            bad.push(RowProblem::CurrencyUnknown(raw.currency.to_string()));
        }
        c
    };
    let amount_text = raw.amount;
    let source_amount = match &ccy {
        Some(c) => match num::parse_minor_units(amount_text, c.decimals()) {
            Ok(a) => Some(a),
            Err(num::DecimalError::Empty) => {
                bad.push(RowProblem::AmountEmpty);
                None
            }
            Err(num::DecimalError::Negative) => {
                bad.push(RowProblem::AmountNegative(amount_text.to_string()));
                None
            }
            Err(error) => {
                bad.push(RowProblem::AmountInvalid {
                    text: amount_text.to_string(),
                    error,
                    currency: *c,
                });
                None
            }
        },
        None => None,
    };
    let unit = category.and_then(|c| agreement.categories[c].unit.as_deref());
    let qty_text = raw.quantity;
    let quantity = match unit {
        // a field that is present is checked even where nothing uses it
        None if qty_text.is_empty() => None,
        None => {
            if Q::parse_decimal(qty_text, 18).is_none()
                && let Err(error) = num::parse_rational(qty_text, 18)
            {
                bad.push(RowProblem::QuantityInvalid {
                    text: qty_text.to_string(),
                    error,
                });
            }
            None
        }
        Some(unit) => {
            let q = match Q::parse_decimal(qty_text, 18) {
                Some(q) => Ok(q),
                None => num::parse_rational(qty_text, 18).map(|q| Q::from_big(&q)),
            };
            match q {
                Ok(q) if !q.is_zero() => Some(q),
                Ok(_) => {
                    bad.push(RowProblem::QuantityZero {
                        category: cat_text.to_string(),
                        unit: unit.to_string(),
                    });
                    None
                }
                Err(num::DecimalError::Empty) => {
                    bad.push(RowProblem::QuantityMissing {
                        category: cat_text.to_string(),
                        unit: unit.to_string(),
                    });
                    None
                }
                Err(error) => {
                    bad.push(RowProblem::QuantityInvalid {
                        text: qty_text.to_string(),
                        error,
                    });
                    None
                }
            }
        }
    };
    let mut converted = None;
    if let (true, Some(a)) = (own, source_amount) {
        converted = Some((a, None));
    } else if let (Some(c), Some(a), Some(d)) = (&ccy, source_amount, date) {
        match convert(agreement, rates, c, a, d) {
            Ok(v) => converted = Some(v),
            Err(error) => bad.push(RowProblem::Conversion {
                amount: amount_text.to_string(),
                error,
            }),
        }
    }
    if !raw.replaces.is_empty() && raw.replaces == raw.id {
        bad.push(RowProblem::ReplacesItself);
    }
    let paid_by = if raw.paid_by.is_empty() {
        None
    } else {
        let p = agreement.parties.iter().position(|p| p.id == raw.paid_by);
        if p.is_none() {
            bad.push(RowProblem::PaidByUnknown {
                party: raw.paid_by.to_string(),
                known: agreement.parties.iter().map(|p| p.id.clone()).collect(),
            });
        }
        p
    };
    match (date, category, converted, source_amount, ccy) {
        (Some(date), Some(category), Some((amount, rate)), Some(source_amount), Some(currency)) if bad.is_empty() => {
            Ok(Accepted {
                date,
                category,
                amount,
                source_amount,
                currency,
                rate,
                quantity,
                paid_by,
            })
        }
        _ => {
            if bad.is_empty() {
                bad.push(RowProblem::Incomplete);
            }
            Err(RowProblems(bad))
        }
    }
}

/// Check one row against the agreement and rates and convert it to the
/// agreement currency. The error lists every problem of the row.
pub fn validate_row(agreement: &Agreement, rates: &Rates, raw: &RawRow) -> Result<CostLine, String> {
    validate_ref(agreement, rates, &raw.as_ref())
}

/// [`validate_row`] on a borrowed row: [`accept`], then the line.
pub fn validate_ref(agreement: &Agreement, rates: &Rates, raw: &RowRef<'_>) -> Result<CostLine, String> {
    validate(agreement, rates, raw).map_err(|p| p.to_string())
}

/// [`validate_ref`] with the problems typed.
pub fn validate(agreement: &Agreement, rates: &Rates, raw: &RowRef<'_>) -> Result<CostLine, RowProblems> {
    accept(agreement, rates, raw).map(|a| a.into_line(raw))
}

/// Why an amount cannot be converted into the agreement currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvertError {
    /// No rate for `currency` dated on or before `date`.
    NoRate { currency: Currency, date: Date },
    /// The converted amount does not fit a signed 64-bit count of minor units.
    TooLarge { currency: Currency },
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::NoRate { currency, date } => {
                write!(f, "no {} rate dated on or before {date}", currency.code())
            }
            ConvertError::TooLarge { currency } => write!(
                f,
                "an amount in {} converts beyond the limit of a 64-bit amount",
                currency.code()
            ),
        }
    }
}

/// Convert `amount` (minor units of `c`) dated `d` into the agreement
/// currency: the latest rate on or before `d`, half to even. Returns the
/// amount and the rate used (none for the agreement's own currency).
pub fn convert<'r>(
    agreement: &Agreement,
    rates: &'r Rates,
    c: &Currency,
    amount: i64,
    d: Date,
) -> Result<(i64, RateUsed<'r>), ConvertError> {
    if c.same_code(&agreement.currency) {
        return Ok((amount, None));
    }
    let Some((rd, r)) = rates.lookup(c.code(), d) else {
        return Err(ConvertError::NoRate { currency: *c, date: d });
    };
    // a (minor of c) / 10^dc · rate · 10^da, half to even
    let v = BigRational::from_int(amount)
        .mul(r)
        .mul(&BigRational::from_int(num::pow10(agreement.currency.decimals())))
        .div(&BigRational::from_int(num::pow10(c.decimals())))
        .round_half_even();
    match i64::try_from(v) {
        Ok(v) => Ok((v, Some((*rd, r)))),
        Err(_) => Err(ConvertError::TooLarge { currency: *c }),
    }
}

/// Parse a costs CSV against an agreement and rates.
pub fn parse_costs(agreement: &Agreement, bytes: &[u8], rates: &Rates) -> Result<Costs, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut lines: Vec<CostLine> = Vec::with_capacity(bytes.len() / 48);
    let mut by_id: HashMap<String, usize, crate::fxhash::BuildFx> = HashMap::default();
    let mut duplicates = 0usize;
    let mut total: i128 = 0;
    // rows are validated as they are read: no copy of the file's text is kept
    let csv_errors = for_each_row(bytes, |raw| {
        let cl = match validate(agreement, rates, &raw) {
            Ok(cl) => cl,
            Err(problems) => {
                errors.push(RowError::refused(&raw, &problems));
                return;
            }
        };
        match by_id.get(&cl.id) {
            Some(&prev) => {
                if same_values(&lines[prev], &cl) {
                    duplicates += 1;
                } else {
                    errors.push(RowError {
                        line: raw.line,
                        id: Some(cl.id.clone()),
                        message: format!("id repeated with different values (first on line {})", lines[prev].row),
                    });
                }
            }
            None => {
                total += cl.amount as i128;
                if total > i64::MAX as i128 {
                    errors.push(RowError {
                        line: raw.line,
                        id: Some(cl.id.clone()),
                        message:
                            "the total of the lines so far exceeds the limit of a signed 64-bit count of minor units"
                                .into(),
                    });
                    total = i64::MIN as i128; // report once
                }
                by_id.insert(cl.id.clone(), lines.len());
                lines.push(cl);
            }
        }
    });
    if !csv_errors.is_empty() {
        // the CSV layer failed (header, quoting, encoding): report those with the row errors
        let mut all = csv_errors;
        all.extend(errors);
        all.sort_by_key(|e| e.line);
        return Err(all);
    }
    // replacements within the file
    let with: Vec<Replacing<'_>> = lines
        .iter()
        .filter_map(|l| {
            l.replaces.as_deref().map(|r| Replacing {
                line: l.row,
                id: &l.id,
                replaces: r,
            })
        })
        .collect();
    let gone = check_replacements(&with, |id| by_id.contains_key(id), &mut errors);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    let replaced = gone.len();
    if replaced > 0 {
        let gone: std::collections::HashSet<String> = gone.into_iter().map(str::to_string).collect();
        lines.retain(|l| !gone.contains(&l.id));
    }
    Ok(Costs {
        lines,
        duplicates,
        replaced,
    })
}

/// A line of a file that replaces another: what the replacement rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replacing<'a> {
    /// Physical line number (header = 1).
    pub line: usize,
    pub id: &'a str,
    /// The id it replaces.
    pub replaces: &'a str,
}

/// The replacements within one file (SPEC section 6), `with` in line order,
/// ids unique, `in_file` saying which ids the file's accepted lines hold:
/// each replaced id must be in the file and replaced once, and no line may
/// be on a cycle of replacements. The problems are pushed to `errors` (those
/// of the first rule in line order, then the cycles in line order); returns
/// the ids replaced, to drop. Every reader of a costs file (the general
/// parser, the streaming report) calls this one rule.
pub fn check_replacements<'a>(
    with: &[Replacing<'a>],
    in_file: impl Fn(&str) -> bool,
    errors: &mut Vec<RowError>,
) -> Vec<&'a str> {
    // replaced id -> position in `with` of the line replacing it
    let mut replaced_by: HashMap<&str, usize, crate::fxhash::BuildFx> = HashMap::default();
    let mut gone = Vec::new();
    for (i, l) in with.iter().enumerate() {
        let r = l.replaces;
        if !in_file(r) {
            errors.push(RowError {
                line: l.line,
                id: Some(l.id.to_string()),
                message: format!("replaces `{r}`, which is not in this file"),
            });
        } else if let Some(&other) = replaced_by.get(r) {
            errors.push(RowError {
                line: l.line,
                id: Some(l.id.to_string()),
                message: format!("replaces `{r}`, which line {} already replaces", with[other].line),
            });
        } else {
            replaced_by.insert(r, i);
            gone.push(r);
        }
    }
    // a cycle of replacements (p replaces q, q replaces p) would drop them all
    let edges: Vec<(&str, &str)> = with.iter().map(|l| (l.id, l.replaces)).collect();
    for k in replacement_cycles(&edges) {
        errors.push(RowError {
            line: with[k].line,
            id: Some(with[k].id.to_string()),
            message: replacement_cycle_message(with[k].id),
        });
    }
    gone
}

/// Which replacements are part of a cycle (p replaces q, q replaces p: the
/// lines would drop each other, and none would be left). `edges` holds one
/// `(id, replaces)` pair per line that replaces another, ids unique; the
/// result is the positions in `edges` of the lines on a cycle, in order. A
/// line replacing itself is a cycle of one. Linear time: each line is walked
/// once.
pub fn replacement_cycles(edges: &[(&str, &str)]) -> Vec<usize> {
    let at: HashMap<&str, usize, crate::fxhash::BuildFx> = edges.iter().enumerate().map(|(i, e)| (e.0, i)).collect();
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; edges.len()];
    let mut on_cycle = vec![false; edges.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..edges.len() {
        if state[start] != NEW {
            continue;
        }
        path.clear();
        let mut cur = Some(start);
        while let Some(i) = cur {
            match state[i] {
                NEW => {
                    state[i] = ON_PATH;
                    path.push(i);
                    cur = at.get(edges[i].1).copied();
                }
                ON_PATH => {
                    // the walk came back to a line of this path: from there on, a cycle
                    let from = path.iter().position(|&p| p == i).unwrap_or(path.len());
                    for &p in &path[from..] {
                        on_cycle[p] = true;
                    }
                    cur = None;
                }
                _ => cur = None,
            }
        }
        for &p in &path {
            state[p] = DONE;
        }
    }
    (0..edges.len()).filter(|&i| on_cycle[i]).collect()
}

/// What a line on a cycle of replacements is told.
pub fn replacement_cycle_message(id: &str) -> String {
    format!("is part of a cycle of replacements that leads back to `{id}`")
}

/// Two rows with one id are the same line when every parsed value agrees.
/// Call `f` with each non-blank record of a CSV file other than a costs file
/// (payments): the same conventions as [`for_each_row`] (header required and
/// matched by trimmed name, any column order, extra columns ignored, BOM,
/// CRLF, fields trimmed, a missing column the same as an empty field,
/// physical line numbers). `f` gets the record's line and its fields in the
/// order of `known`. Returns the problems of the CSV layer.
pub fn for_each_record(
    bytes: &[u8],
    required: &[&str],
    known: &[&str],
    mut f: impl FnMut(usize, &[&str]),
) -> Vec<RowError> {
    let mut errors = Vec::new();
    let mut rdr = reader(bytes);
    let Some(h) = Header::read(&mut rdr, required, known, &mut errors) else {
        return errors;
    };
    let body = strip_bom(bytes);
    let mut lc = LineCounter::new(body);
    if let Some(l) = unterminated_quote(body) {
        errors.push(RowError {
            line: l,
            id: None,
            message: "a quoted field is never closed (a missing `\"`)".into(),
        });
        return errors;
    }
    let mut rec = csv::ByteRecord::new();
    loop {
        let pos_line = lc.line_at(rdr.position().byte() as usize);
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                errors.push(RowError {
                    line: pos_line,
                    id: None,
                    message: format!("unreadable CSV: {e}"),
                });
                break;
            }
        }
        let line = rec
            .position()
            .map(|p| lc.line_at(p.byte() as usize))
            .unwrap_or(pos_line);
        let fl = match fields(&rec) {
            Ok(f) => f,
            Err(col) => {
                errors.push(RowError {
                    line,
                    id: None,
                    message: format!("field {col} is not valid UTF-8"),
                });
                continue;
            }
        };
        if fl.iter().all(|s| s.is_empty()) {
            continue; // a blank line
        }
        let row: Vec<&str> = known.iter().map(|k| h.get(&fl, k)).collect();
        f(line, &row);
    }
    errors
}

fn same_values(a: &CostLine, b: &CostLine) -> bool {
    a.date == b.date
        && a.category == b.category
        && a.source_amount == b.source_amount
        && a.currency == b.currency
        && a.quantity == b.quantity
        && a.site == b.site
        && a.description == b.description
        && a.replaces == b.replaces
        && a.paid_by == b.paid_by
}

/// One row of a `forecast` budget: the amount (agreement currency) and
/// quantity planned for a category (and site) in a month.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetRow {
    /// Month index ([`Date::month_index`]).
    pub month: i32,
    /// Index into `Agreement::categories`.
    pub category: usize,
    pub amount: i64,
    pub quantity: Option<Q>,
    pub site: String,
}

/// Parse a budget CSV (`month,category,amount[,quantity,site]`, month
/// `YYYY-MM`, amount in the agreement currency): the same reader, header,
/// trimming and physical line numbers as the costs file. Every bad row is
/// named by its line; a (month, category, site) given twice is bad; a
/// category with a unit needs a positive quantity.
pub fn parse_budget(ag: &Agreement, bytes: &[u8]) -> Result<Vec<BudgetRow>, Vec<RowError>> {
    const COLS: [&str; 5] = ["month", "category", "amount", "quantity", "site"];
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut seen: HashMap<(i32, usize, String), usize> = HashMap::new();
    // the CSV layer (header, quoting, UTF-8, blank lines) is the one reader
    // of every non-costs file
    let csv_errors = for_each_record(bytes, &COLS[..3], &COLS, |line, f| {
        let [mt, ct, at, qt, site] = [f[0], f[1], f[2], f[3], f[4]];
        if let Some((column, len)) = COLS
            .into_iter()
            .zip(f)
            .map(|(c, v)| (c, v.len()))
            .find(|&(_, len)| len > MAX_ID_BYTES)
        {
            errors.push(RowError {
                line,
                id: None,
                message: format!("{column} is {len} bytes long; the limit is {MAX_ID_BYTES} bytes"),
            });
            return;
        }
        let mut bad = Vec::new();
        let month = (mt.len() == 7)
            .then(|| Date::parse(&format!("{mt}-01")))
            .flatten()
            .map(Date::month_index);
        if month.is_none() {
            bad.push(format!("month `{mt}` is not a YYYY-MM month"));
        }
        let category = ag.category_index(ct);
        if category.is_none() {
            bad.push(format!("unknown category `{ct}`"));
        }
        let amount = crate::num::parse_minor_units(at, ag.currency.decimals()).ok();
        if amount.is_none() {
            bad.push(format!(
                "amount `{at}` is not a non-negative {} amount with at most {} decimals",
                ag.currency.code(),
                ag.currency.decimals()
            ));
        }
        let unit = category.and_then(|c| ag.categories[c].unit.as_ref());
        let quantity = if unit.is_some() {
            match Q::parse_decimal(qt, 18).filter(|q| !q.is_zero()) {
                Some(q) => Some(q),
                None => {
                    bad.push(format!(
                        "quantity `{qt}` is not a positive decimal (the category counts units)"
                    ));
                    None
                }
            }
        } else {
            None
        };
        let site = site.to_string();
        if let (Some(m), Some(c)) = (month, category)
            && let Some(first) = seen.insert((m, c, site.clone()), line)
        {
            bad.push(format!("month, category and site repeat line {first}"));
        }
        match (month, category, amount, bad.is_empty()) {
            (Some(month), Some(category), Some(amount), true) => out.push(BudgetRow {
                month,
                category,
                amount,
                quantity,
                site,
            }),
            _ => errors.push(RowError {
                line,
                id: None,
                message: bad.join("; "),
            }),
        }
    });
    errors.extend(csv_errors);
    errors.sort_by_key(|e| e.line);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_printable_unless_recorded() {
        let text = "[agreement]\nid = \"t\"\ncurrency = \"JPY\"\nstart = \"2022-04-01\"\nend = \"2023-03-31\"\n\
                    [parties.A]\nname = \"A\"\n[categories.c]\nname = \"C\"\n[[categories.c.layers]]\nsplit = { A = \"100%\" }\n";
        let ag = crate::load::load(text).agreement.expect("loads");
        let rates = Rates::empty();
        let row = |id: &'static str, site: &'static str, recorded: bool| RowRef {
            line: 2,
            id,
            date: "2022-05-01",
            category: "c",
            amount: "10",
            currency: "",
            quantity: "",
            site,
            description: "tabs\tand\nnewlines are fine in a description",
            replaces: "",
            paid_by: "",
            recorded,
        };
        for (id, site, column, code) in [
            ("a\tb", "", "id", 9),
            ("a\u{1b}[31m", "", "id", 0x1b),
            ("x\u{202E}y", "", "id", 0x202e),
            ("ok", "Oki\u{7f}", "site", 0x7f),
            ("ok", "\u{2067}", "site", 0x2067),
        ] {
            let problems = match accept(&ag, &rates, &row(id, site, false)) {
                Err(p) => p.0,
                Ok(_) => panic!("{id:?} {site:?} accepted"),
            };
            assert!(
                problems.iter().any(
                    |p| matches!(p, RowProblem::ControlCharacter { column: c, code: k } if *c == column && *k == code)
                ),
                "{id:?}: {problems:?}"
            );
            // a line already in a journal still replays
            assert!(accept(&ag, &rates, &row(id, site, true)).is_ok(), "{id:?} recorded");
        }
        assert!(accept(&ag, &rates, &row("Kadena-2022/05 ü", "沖縄", false)).is_ok());
        // messages show a control character by its code point, never raw
        let e = RowError {
            line: 2,
            id: Some("a\u{1b}[31m".into()),
            message: "m".into(),
        };
        assert_eq!(e.located("f.csv"), "f.csv:2, id a\\u{001B}[31m: m");
    }

    #[test]
    fn physical_lines() {
        let b = b"h\r\na\r\n\"x\r\ny\"\r\nb\rc\n";
        let mut lc = LineCounter::new(b);
        assert_eq!(lc.line_at(0), 1);
        assert_eq!(lc.line_at(2), 2); // on the CRLF itself
        assert_eq!(lc.line_at(6), 3);
        assert_eq!(lc.line_at(14), 5); // after a quoted CRLF
        assert_eq!(lc.line_at(15), 6); // on a lone CR: the next line
    }

    #[test]
    fn cycles_of_replacements() {
        // a -> b -> c -> a is a cycle; d -> a leads into it but is not on it;
        // e replaces itself; f -> g ends at a line that replaces nothing
        let edges = [
            ("a", "b"),
            ("d", "a"),
            ("b", "c"),
            ("c", "a"),
            ("e", "e"),
            ("f", "g"),
            ("x", "y"),
            ("y", "x"),
        ];
        assert_eq!(replacement_cycles(&edges), [0, 2, 3, 4, 6, 7]);
        assert_eq!(replacement_cycles(&[]), Vec::<usize>::new());
        // against the walk of every line up to n steps, on random graphs
        let mut seed = 7u64;
        let mut rand = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let names: Vec<String> = (0..12).map(|i| format!("l{i}")).collect();
        for _ in 0..500 {
            let n = 1 + rand(12) as usize;
            let edges: Vec<(&str, &str)> = (0..n)
                .map(|i| (names[i].as_str(), names[rand(12) as usize].as_str()))
                .collect();
            let next: HashMap<&str, &str> = edges.iter().copied().collect();
            let walk: Vec<usize> = (0..n)
                .filter(|&i| {
                    let mut cur = edges[i].0;
                    (0..n).any(|_| match next.get(cur) {
                        Some(&t) => {
                            cur = t;
                            t == edges[i].0
                        }
                        None => {
                            cur = "";
                            false
                        }
                    })
                })
                .collect();
            assert_eq!(replacement_cycles(&edges), walk, "{edges:?}");
        }
    }

    #[test]
    fn quotes() {
        assert_eq!(unterminated_quote(b"a,b\n1,\"x\"\"y\"\n"), None);
        assert_eq!(unterminated_quote(b"a,b\n1,\"open\n2,3\n"), Some(2));
        assert_eq!(unterminated_quote(b"a,b\n1,x\"y\n"), None);
        assert_eq!(unterminated_quote(b"a\r\n\"x\r\n"), Some(2));
    }

    /// Two threads read the same rows as one: every row with its line, in
    /// order, and the same CSV problems (with their lines), whatever the
    /// file's shape near the cut.
    #[test]
    fn rows_read_in_two_halves_are_the_rows_read_in_one() {
        let rows = |bytes: &[u8]| {
            let mut seen: Vec<(usize, String, String, String)> = Vec::new();
            let errors = for_each_row(bytes, |r| {
                seen.push((
                    r.line,
                    r.id.to_string(),
                    r.amount.to_string(),
                    r.description.to_string(),
                ))
            });
            (seen, errors)
        };
        let split = |bytes: &[u8]| {
            let mut ticks = 0u64;
            let (states, errors) = for_each_row_split(
                bytes,
                Vec::new,
                |s: &mut Vec<(usize, String, String, String)>, r| {
                    s.push((
                        r.line,
                        r.id.to_string(),
                        r.amount.to_string(),
                        r.description.to_string(),
                    ))
                },
                &mut |n| ticks = ticks.max(n),
            );
            (states.len(), states.concat(), errors, ticks)
        };
        let mut body = String::from("\u{feff}id,date,category,amount,description\n");
        let mut k = 0;
        while body.len() < 3 * SPLIT_MIN_BYTES {
            k += 1;
            match k % 997 {
                0 => body.push('\n'),                                    // a blank line
                1 => body.push_str(&format!("s{k},2023-01-01,labor\n")), // a short row
                _ => body.push_str(&format!("r{k},2023-01-{:02},labor,{k},row number {k}\n", 1 + k % 28)),
            }
        }
        let mut bad_utf8 = body.clone().into_bytes();
        // a byte that is not UTF-8 in each half: a problem of a row, not one
        // that stops the reader
        for quarter in [1, 3] {
            let at = bad_utf8.len() * quarter / 4;
            let at = at + bad_utf8[at..].iter().position(|&b| b == b'r').unwrap() + 1;
            bad_utf8[at] = 0xff;
        }
        let mut no_newline = body.clone();
        no_newline.push_str("last,2023-02-01,labor,5,no line break");
        // a header with a problem that does not stop the reader (a column twice)
        let twice = body.replacen("description\n", "description,id\n", 1);
        for (name, bytes) in [
            ("plain", body.clone().into_bytes()),
            ("a column twice in the header", twice.into_bytes()),
            ("bad UTF-8 in each half", bad_utf8),
            ("no final line break", no_newline.into_bytes()),
        ] {
            let (want, want_errors) = rows(&bytes);
            let (threads, got, errors, ticks) = split(&bytes);
            assert_eq!(threads, 2, "{name}: a large plain file is read in two halves");
            assert_eq!(got, want, "{name}");
            assert_eq!(errors, want_errors, "{name}");
            assert!(name != "bad UTF-8 in each half" || errors.len() == 2, "{errors:?}");
            assert!(ticks > 0 && ticks <= want.len() as u64 + TICK_ROWS, "{name}: {ticks}");
        }
        // a quote anywhere, a carriage return, or a small file: one thread
        for (name, bytes) in [
            ("quote", format!("{body}q,2023-01-01,labor,1,\"a, b\"\n")),
            ("carriage return", format!("{body}c,2023-01-01,labor,1,x\r\n")),
            ("small", "id,date,category,amount\na,2023-01-01,labor,1\n".to_string()),
        ] {
            let (want, want_errors) = rows(bytes.as_bytes());
            let (threads, got, errors, _) = split(bytes.as_bytes());
            assert_eq!(threads, 1, "{name}");
            assert_eq!((got, errors), (want, want_errors), "{name}");
        }
    }
}
