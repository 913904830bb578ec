//! The agreement loader: TOML text in, an [`Agreement`] or every problem out.
//!
//! The loader walks the spanned TOML tree once and records a [`Diagnostic`]
//! for each problem instead of stopping at the first one. Unknown fields are
//! errors. An agreement is returned only when no error was found.

use crate::agreement::*;
use crate::calendar::{Date, FiscalCalendar, FiscalYear, FyLabel, PeriodKind};
use crate::diag::Diagnostic;
use crate::keys::{self, KeyError};
use crate::money::{self, Currency, MAX_DECIMALS};
use crate::num::{self, BigRational, Q, fmt_percent};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

type V<'i> = Spanned<DeValue<'i>>;

/// The outcome of loading: the agreement when valid, and all diagnostics
/// (errors and warnings) in file order.
#[derive(Debug)]
pub struct Loaded {
    pub agreement: Option<Agreement>,
    /// The problems found, in file order; at most [`MAX_DIAGNOSTICS`].
    pub diagnostics: Vec<Diagnostic>,
    /// Problems found beyond the first [`MAX_DIAGNOSTICS`], not listed.
    pub omitted: usize,
}

/// Most fiscal years a term may span.
pub const MAX_TERM_YEARS: i32 = 100;

// Limits on an agreement, so that hostile or mistaken input gets one clear
// error and memory stays proportional to the file (README: "Limits").
/// Largest agreement file, in bytes.
pub const MAX_AGREEMENT_BYTES: usize = 1 << 20;
/// Most parties.
pub const MAX_PARTIES: usize = 1_000;
/// Most categories.
pub const MAX_CATEGORIES: usize = 1_000;
/// Most keys.
pub const MAX_KEYS: usize = 100;
/// Most layers in one category.
pub const MAX_LAYERS: usize = 100;
/// Most resolved shares: layers (over all categories) × fiscal years × parties.
pub const MAX_SHARE_CELLS: usize = 2_000_000;
/// Most problems listed for one file (the rest are counted).
pub const MAX_DIAGNOSTICS: usize = 100;
const MAX_FRAC: u32 = 18;

/// The text of an agreement file as the loader reads it: UTF-8 (else `Err`
/// with the offset of the first invalid byte), a leading BOM dropped. The
/// one home of that rule for every caller (files, a ledger's init and amend).
pub fn text_of(bytes: &[u8]) -> Result<&str, usize> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.valid_up_to())?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Load an agreement from TOML text.
pub fn load(src: &str) -> Loaded {
    if src.len() > MAX_AGREEMENT_BYTES {
        return Loaded {
            agreement: None,
            diagnostics: vec![Diagnostic::error(
                0..0,
                format!(
                    "the agreement is {} bytes; the limit is {} bytes (1 MiB)",
                    src.len(),
                    MAX_AGREEMENT_BYTES
                ),
            )],
            omitted: 0,
        };
    }
    let (doc, errors) = DeTable::parse_recoverable(src);
    // one syntax error, the first: what follows it is read out of step and
    // would only cascade; say where an unclosed table, array or string began
    if let Some(e) = errors.first() {
        let span = e.span().unwrap_or(0..0);
        let mut message = format!("invalid TOML: {}", e.message().trim_end());
        if let Some((what, at)) = open_before(src, span.start) {
            let (line, col) = line_col(src, at);
            message.push_str(&format!(
                "; the {what} opened at line {line}, column {col} is not closed"
            ));
        }
        return Loaded {
            agreement: None,
            diagnostics: vec![Diagnostic::error(span, message)],
            omitted: 0,
        };
    }
    let mut cx = Cx {
        diags: Vec::new(),
        term: None,
        failed_keys: Vec::new(),
        failed_currencies: Vec::new(),
    };
    let agreement = cx.document(doc.get_ref());
    let mut diagnostics = cx.diags;
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    let ok = !diagnostics.iter().any(|d| d.is_error());
    let omitted = diagnostics.len().saturating_sub(MAX_DIAGNOSTICS);
    diagnostics.truncate(MAX_DIAGNOSTICS);
    Loaded {
        agreement: if ok { agreement } else { None },
        diagnostics,
        omitted,
    }
}

/// The innermost inline table, array or string still open at byte `pos` of
/// TOML text (comments and string contents skipped), and where it opened.
/// Table headers (`[x]`, `[[x]]` at the start of a line) are not values.
fn open_before(src: &str, pos: usize) -> Option<(&'static str, usize)> {
    let b = src.as_bytes();
    let end = pos.min(b.len());
    let mut stack: Vec<(&'static str, usize)> = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < end {
        let c = b[i];
        match c {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < end && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' if line_start && stack.is_empty() => {
                // a table header: skip to the end of its line
                while i < end && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let triple = b[i..].starts_with(if c == b'"' { b"\"\"\"" } else { b"'''" });
                let start = i;
                i += if triple { 3 } else { 1 };
                let mut closed = false;
                while i < end {
                    if c == b'"' && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if !triple && b[i] == b'\n' {
                        break;
                    }
                    if b[i] == c && (!triple || b[i..].starts_with(if c == b'"' { b"\"\"\"" } else { b"'''" })) {
                        i += if triple { 3 } else { 1 };
                        closed = true;
                        break;
                    }
                    i += 1;
                }
                if !closed {
                    return Some(("string", start));
                }
            }
            b'{' => {
                stack.push(("inline table", i));
                i += 1;
            }
            b'[' => {
                stack.push(("array", i));
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            _ => i += 1,
        }
        line_start = false;
    }
    stack.pop()
}

/// 1-based line and column (in characters) of byte `at`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn is_reserved(id: &str) -> bool {
    matches!(id, "UNALLOCATED" | "key" | "default") || FiscalYear::is_label_like(id)
}

pub fn valid_id(id: &str) -> bool {
    let mut b = id.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

#[derive(Clone, Copy)]
struct Term {
    first_fy: i32,
    count: usize,
}

struct Cx {
    diags: Vec<Diagnostic>,
    term: Option<Term>,
    /// Keys and currencies that are declared but wrong: already reported, so
    /// their uses are not reported again as unknown.
    failed_keys: Vec<String>,
    failed_currencies: Vec<String>,
}

struct Ctx<'a> {
    currency: Option<Currency>,
    parties: &'a [Party],
    keys: &'a [Key],
}

fn entries<'a, 'i>(t: &'a DeTable<'i>) -> impl Iterator<Item = (&'a str, Range<usize>, &'a V<'i>)> {
    t.iter().map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
}

fn field<'a, 'i>(t: &'a DeTable<'i>, name: &str) -> Option<(Range<usize>, &'a V<'i>)> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == name)
        .map(|(k, v)| (k.span(), v))
}

fn kind_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn looks_like_schedule(t: &DeTable) -> bool {
    !t.is_empty()
        && t.iter()
            .all(|(k, _)| k.get_ref() == "default" || FiscalYear::is_label_like(k.get_ref()))
}

impl Cx {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>, expected: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, msg).expected(expected));
    }

    fn warn(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(span, msg));
    }

    fn unknown_fields(&mut self, t: &DeTable, allowed: &[&str], what: &str) {
        for (k, span, _) in entries(t) {
            if !allowed.contains(&k) {
                self.err(
                    span,
                    format!("unknown field `{k}` in {what}"),
                    format!("one of: {}", allowed.join(", ")),
                );
            }
        }
    }

    fn table<'a, 'i>(&mut self, v: &'a V<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(
                    v.span(),
                    format!("{what} must be a table, found {}", kind_name(other)),
                    "a table",
                );
                None
            }
        }
    }

    fn string<'a>(&mut self, v: &'a V, what: &str, expected: &str) -> Option<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.err(
                    v.span(),
                    format!("{what} must be a string, found {}", kind_name(other)),
                    expected,
                );
                None
            }
        }
    }

    fn id(&mut self, id: &str, span: Range<usize>, what: &str) -> bool {
        if !valid_id(id) {
            self.err(
                span,
                format!("invalid {what} id `{id}`"),
                "an id matching [A-Za-z][A-Za-z0-9_-]*",
            );
            return false;
        }
        if is_reserved(id) {
            self.err(
                span,
                format!("`{id}` is reserved and cannot be a {what} id"),
                "an id other than UNALLOCATED, key, default or FY followed by digits",
            );
            return false;
        }
        true
    }

    /// The text of a number written as a TOML string or integer.
    fn number_text(&mut self, v: &V, what: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) if i.radix() == 10 => {
                let t = i.as_str();
                if t.starts_with('-') && t != "-0" {
                    self.err(v.span(), format!("{what} is negative: {t}"), "a number of zero or more");
                    None
                } else {
                    Some(t.trim_start_matches(['+', '-']).to_string())
                }
            }
            DeValue::Integer(i) => match u128::from_str_radix(i.as_str(), i.radix()) {
                // hexadecimal, octal and binary TOML integers are integers too
                Ok(n) => Some(n.to_string()),
                Err(_) => {
                    self.err(
                        v.span(),
                        format!("{what} is not a number of zero or more"),
                        "a number of zero or more",
                    );
                    None
                }
            },
            DeValue::Float(f) => {
                self.err(
                    v.span(),
                    format!("{what} is a TOML float ({}); floats are never exact", f.as_str()),
                    match float_as_decimal(f.as_str()) {
                        Some(d) => format!("the number as a string: \"{d}\""),
                        None => "a non-negative number as a string, e.g. \"1500000000\"".to_string(),
                    },
                );
                None
            }
            other => {
                self.err(
                    v.span(),
                    format!("{what} must be a number, found {}", kind_name(other)),
                    "a number as a string or integer",
                );
                None
            }
        }
    }

    fn money(&mut self, v: &V, what: &str, ccy: &Option<Currency>) -> Option<i64> {
        let t = self.number_text(v, what)?;
        let c = ccy.as_ref()?;
        match num::parse_minor_units(&t, c.decimals()) {
            Ok(m) => Some(m),
            Err(e) => {
                self.err(
                    v.span(),
                    format!("{what} `{t}` is {e}"),
                    format!("an amount in {} with at most {} decimals", c.code(), c.decimals()),
                );
                None
            }
        }
    }

    fn quantity(&mut self, v: &V, what: &str) -> Option<BigRational> {
        let t = self.number_text(v, what)?;
        match num::parse_rational(&t, MAX_FRAC) {
            Ok(r) => Some(r),
            Err(e) => {
                self.err(
                    v.span(),
                    format!("{what} `{t}` is {e}"),
                    "a decimal number with at most 18 digits after the point",
                );
                None
            }
        }
    }

    fn percent(&mut self, v: &V, what: &str) -> Option<BigRational> {
        let s = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            other => {
                self.err(
                    v.span(),
                    format!("{what} must be a percentage string, found {}", kind_name(other)),
                    "a string such as \"61.5%\"",
                );
                return None;
            }
        };
        let Some(body) = s.trim_matches(' ').strip_suffix('%') else {
            self.err(
                v.span(),
                format!("{what} `{s}` has no `%` sign"),
                "a percentage such as \"61.5%\"",
            );
            return None;
        };
        match num::parse_rational(body, MAX_FRAC) {
            Ok(r) => {
                let share = r.div(&BigRational::from_int(100));
                if share > BigRational::one() {
                    self.err(
                        v.span(),
                        format!("{what} `{s}` is over 100%"),
                        "a percentage from 0% to 100%",
                    );
                    return None;
                }
                Some(share)
            }
            Err(e) => {
                self.err(
                    v.span(),
                    format!("{what} `{s}` is {e}"),
                    "a percentage from 0% to 100% such as \"61.5%\"",
                );
                None
            }
        }
    }

    /// A plain value, or a schedule by fiscal year with an optional `default`.
    fn schedule<T: Clone>(
        &mut self,
        v: &V,
        what: &str,
        allow_schedule: bool,
        mut one: impl FnMut(&mut Cx, &V) -> Option<T>,
    ) -> Option<ByFy<T>> {
        let table = match v.get_ref() {
            DeValue::Table(t) if allow_schedule || !looks_like_schedule(t) => t,
            DeValue::Table(_) => {
                self.err(
                    v.span(),
                    format!("{what} on a `term` period cannot be a schedule (a term has no single fiscal year)"),
                    "a plain number",
                );
                return None;
            }
            _ => {
                let x = one(self, v)?;
                let n = self.term.map(|t| t.count).unwrap_or(1);
                return Some(ByFy { values: vec![x; n] });
            }
        };
        let mut default: Option<T> = None;
        let mut default_failed = false;
        let mut failed_years: Vec<i32> = Vec::new();
        let mut years: Vec<(i32, T)> = Vec::new();
        let mut ok = true;
        for (k, kspan, val) in entries(table) {
            if k == "default" {
                match one(self, val) {
                    Some(x) => default = Some(x),
                    None => {
                        ok = false;
                        default_failed = true;
                    }
                }
                continue;
            }
            let Some(FiscalYear(fy)) = FiscalYear::parse(k) else {
                self.err(
                    kspan,
                    format!("`{k}` in {what} is not a fiscal-year label"),
                    "a label such as FY2022, or `default`",
                );
                ok = false;
                continue;
            };
            if let Some(t) = self.term
                && (fy < t.first_fy || fy >= t.first_fy + t.count as i32)
            {
                self.err(
                    kspan,
                    format!(
                        "`{k}` in {what} is outside the term ({}–{})",
                        FiscalYear(t.first_fy),
                        FiscalYear(t.first_fy + t.count as i32 - 1)
                    ),
                    "fiscal years of the term only",
                );
                ok = false;
                continue;
            }
            match one(self, val) {
                Some(x) => years.push((fy, x)),
                None => {
                    ok = false;
                    failed_years.push(fy);
                }
            }
        }
        let term = self.term?;
        let mut values = Vec::with_capacity(term.count);
        let mut missing = Vec::new();
        for i in 0..term.count {
            let fy = term.first_fy + i as i32;
            match years
                .iter()
                .find(|(y, _)| *y == fy)
                .map(|(_, x)| x.clone())
                .or_else(|| default.clone())
            {
                Some(x) => values.push(x),
                // a year whose value was wrong is reported already, not missing
                None if failed_years.contains(&fy) || (default_failed && !ok) => {}
                None => missing.push(FiscalYear(fy).to_string()),
            }
        }
        if !missing.is_empty() {
            self.err(
                v.span(),
                format!("{what} has no value for {} and no `default`", missing.join(", ")),
                "a value for every fiscal year of the term, or a `default`",
            );
            return None;
        }
        if !ok {
            return None;
        }
        Some(ByFy { values })
    }

    fn document(&mut self, doc: &DeTable) -> Option<Agreement> {
        self.unknown_fields(
            doc,
            &["agreement", "parties", "categories", "keys", "currencies"],
            "the file",
        );
        // currencies first: the agreement's currency may be declared there
        let declared = match field(doc, "currencies") {
            Some((_, v)) => self.currencies(v),
            None => Vec::new(),
        };
        let head = match field(doc, "agreement") {
            Some((_, v)) => self.agreement_head(v, &declared),
            None => {
                self.err(
                    0..0,
                    "missing [agreement] table",
                    "an [agreement] table with id, currency, start and end",
                );
                None
            }
        };
        if let Some(h) = &head {
            self.term = Some(Term {
                first_fy: h.first_fy,
                count: h.fy_count,
            });
        }
        let parties = match field(doc, "parties") {
            Some((_, v)) => self.parties(v),
            None => {
                self.err(
                    0..0,
                    "no parties: add a [parties.ID] table for each party",
                    "at least one [parties.ID] table",
                );
                Vec::new()
            }
        };
        let ctx_currency = head.as_ref().map(|h| h.currency);
        let keys = match field(doc, "keys") {
            Some((_, v)) => self.keys(v, &parties),
            None => Vec::new(),
        };
        let cx = Ctx {
            currency: ctx_currency,
            parties: &parties,
            keys: &keys,
        };
        let categories = match field(doc, "categories") {
            Some((_, v)) => self.categories(v, &cx),
            None => {
                self.err(
                    0..0,
                    "no categories: add a [categories.ID] table with layers",
                    "at least one [categories.ID] table",
                );
                Vec::new()
            }
        };
        let h = head?;
        Some(Agreement {
            id: h.id,
            title: h.title,
            currency: h.currency,
            start: h.start,
            end: h.end,
            calendar: h.calendar,
            parties,
            declared_currencies: declared,
            keys,
            categories,
            first_fy: h.first_fy,
            fy_count: h.fy_count,
            _sealed: crate::agreement::Sealed::default(),
        })
    }

    fn currencies(&mut self, v: &V) -> Vec<Currency> {
        let mut out = Vec::new();
        let Some(t) = self.table(v, "[currencies]") else {
            return out;
        };
        for (code, span, val) in entries(t) {
            if !money::valid_code(code) {
                self.err(
                    span,
                    format!("`{code}` is not a currency code"),
                    "three capital letters, e.g. KRW",
                );
                continue;
            }
            if Currency::builtin(code).is_some() {
                self.err(
                    span,
                    format!("{code} is built in and cannot be redefined"),
                    "a currency other than JPY, USD, EUR, AUD, GBP",
                );
                continue;
            }
            match val.get_ref() {
                DeValue::Integer(i) if i.radix() == 10 => match i.as_str().parse::<u32>() {
                    Ok(d) if d <= MAX_DECIMALS => out.push(Currency::declared(code, d)),
                    _ => {
                        self.failed_currencies.push(code.to_string());
                        self.err(
                            val.span(),
                            format!("minor units of {code} must be 0 to 18"),
                            "an integer from 0 to 18",
                        )
                    }
                },
                other => {
                    self.failed_currencies.push(code.to_string());
                    self.err(
                        val.span(),
                        format!("minor units of {code} must be an integer, found {}", kind_name(other)),
                        "an integer from 0 to 18, e.g. KRW = 0",
                    )
                }
            }
        }
        out
    }

    fn date(&mut self, v: &V, what: &str) -> Option<Date> {
        let text = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) if d.date.is_some() && d.time.is_none() => d.to_string(),
            other => {
                self.err(
                    v.span(),
                    format!("{what} must be a date, found {}", kind_name(other)),
                    "a date \"YYYY-MM-DD\"",
                );
                return None;
            }
        };
        let d = Date::parse(&text);
        if d.is_none() {
            self.err(
                v.span(),
                format!("{what} `{text}` is not a valid date"),
                "a date \"YYYY-MM-DD\"",
            );
        }
        d
    }

    fn agreement_head(&mut self, v: &V, declared: &[Currency]) -> Option<Head> {
        let t = self.table(v, "[agreement]")?;
        self.unknown_fields(
            t,
            &[
                "id",
                "title",
                "currency",
                "start",
                "end",
                "fiscal_year_start",
                "fiscal_year_label",
            ],
            "[agreement]",
        );
        let req = |cx: &mut Cx, name: &str| {
            let f = field(t, name);
            if f.is_none() {
                cx.err(
                    v.span().start..v.span().start,
                    format!("[agreement] has no `{name}`"),
                    format!("`{name} = ...` in [agreement]"),
                );
            }
            f
        };
        let id = req(self, "id").and_then(|(_, v)| self.string(v, "`id`", "a string").map(str::to_string));
        if let Some(i) = &id
            && i.trim().is_empty()
        {
            self.err(
                field(t, "id").map(|f| f.1.span()).unwrap_or(0..0),
                "`id` is empty",
                "a non-empty id",
            );
        }
        let title = field(t, "title").and_then(|(_, v)| self.string(v, "`title`", "a string").map(str::to_string));
        let currency = req(self, "currency").and_then(|(_, cv)| {
            let code = self.string(cv, "`currency`", "a currency code such as \"JPY\"")?;
            let c = Currency::builtin(code).or_else(|| declared.iter().find(|c| c.code() == code).cloned());
            if c.is_none() && !self.failed_currencies.iter().any(|f| f == code) {
                self.err(
                    cv.span(),
                    format!("unknown currency `{code}`"),
                    "JPY, USD, EUR, AUD, GBP or one declared under [currencies]",
                );
            }
            c
        });
        let start = req(self, "start").and_then(|(_, v)| self.date(v, "`start`"));
        let end = req(self, "end").and_then(|(_, v)| self.date(v, "`end`"));
        let start_month = match field(t, "fiscal_year_start") {
            None => Some(1u8),
            Some((_, fv)) => {
                let s = self.string(fv, "`fiscal_year_start`", "\"MM-01\"")?;
                let b = s.as_bytes();
                let m = if b.len() == 5 && &s[2..] == "-01" && b[..2].iter().all(u8::is_ascii_digit) {
                    s[..2].parse::<u8>().ok().filter(|m| (1..=12).contains(m))
                } else {
                    None
                };
                if m.is_none() {
                    self.err(
                        fv.span(),
                        format!("`fiscal_year_start` `{s}` is not the first day of a month"),
                        "\"MM-01\", e.g. \"04-01\"",
                    );
                }
                m
            }
        };
        let label = match field(t, "fiscal_year_label") {
            None => Some(FyLabel::Start),
            Some((_, fv)) => match self.string(fv, "`fiscal_year_label`", "\"start\" or \"end\"") {
                Some("start") => Some(FyLabel::Start),
                Some("end") => Some(FyLabel::End),
                Some(other) => {
                    self.err(
                        fv.span(),
                        format!("`fiscal_year_label` `{other}` is not known"),
                        "\"start\" or \"end\"",
                    );
                    None
                }
                None => None,
            },
        };
        let (start, end, start_month, label) = (start?, end?, start_month?, label?);
        if end < start {
            let span = field(t, "end").map(|f| f.1.span()).unwrap_or(0..0);
            self.err(
                span,
                format!("the term ends ({end}) before it starts ({start})"),
                "an end date on or after the start",
            );
            return None;
        }
        let calendar = FiscalCalendar { start_month, label };
        let first_fy = calendar.fy_of(start);
        let last_fy = calendar.fy_of(end);
        let fy_count = (last_fy - first_fy + 1) as usize;
        if last_fy - first_fy + 1 > MAX_TERM_YEARS {
            let span = field(t, "end").map(|f| f.1.span()).unwrap_or(0..0);
            self.err(
                span,
                format!("the term spans {fy_count} fiscal years"),
                "a term of at most 100 fiscal years",
            );
            return None;
        }
        let id = id?;
        Some(Head {
            title: title.unwrap_or_else(|| id.clone()),
            id,
            currency: currency?,
            start,
            end,
            calendar,
            first_fy,
            fy_count,
        })
    }

    fn parties(&mut self, v: &V) -> Vec<Party> {
        let mut out = Vec::new();
        let Some(t) = self.table(v, "[parties]") else {
            return out;
        };
        if t.len() > MAX_PARTIES {
            self.err(
                v.span(),
                format!("{} parties declared; the limit is {MAX_PARTIES}", t.len()),
                format!("at most {MAX_PARTIES} [parties.ID] tables"),
            );
            return out;
        }
        for (id, span, pv) in entries(t) {
            let ok = self.id(id, span, "party");
            let Some(pt) = self.table(pv, &format!("[parties.{id}]")) else {
                continue;
            };
            self.unknown_fields(pt, &["name"], &format!("[parties.{id}]"));
            let name = field(pt, "name")
                .and_then(|(_, nv)| self.string(nv, "`name`", "a string").map(str::to_string))
                .unwrap_or_else(|| id.to_string());
            if ok {
                out.push(Party {
                    id: id.to_string(),
                    name,
                });
            }
        }
        if out.is_empty() && t.is_empty() {
            self.err(v.span(), "no parties declared", "at least one [parties.ID] table");
        }
        out
    }

    fn party_table(
        &mut self,
        v: &V,
        what: &str,
        parties: &[Party],
        mut one: impl FnMut(&mut Cx, &V) -> Option<BigRational>,
    ) -> Option<Vec<BigRational>> {
        let t = self.table(v, what)?;
        let mut vals = vec![BigRational::zero(); parties.len()];
        let mut ok = true;
        for (p, span, pv) in entries(t) {
            match parties.iter().position(|x| x.id == p) {
                Some(i) => match one(self, pv) {
                    Some(x) => vals[i] = x,
                    None => ok = false,
                },
                None => {
                    ok = false;
                    self.err(span, format!("unknown party `{p}` in {what}"), party_list(parties));
                }
            }
        }
        ok.then_some(vals)
    }

    fn keys(&mut self, v: &V, parties: &[Party]) -> Vec<Key> {
        let mut out = Vec::new();
        let Some(t) = self.table(v, "[keys]") else { return out };
        if t.len() > MAX_KEYS {
            self.err(
                v.span(),
                format!("{} keys declared; the limit is {MAX_KEYS}", t.len()),
                format!("at most {MAX_KEYS} [keys.NAME] tables"),
            );
            return out;
        }
        for (id, span, kv) in entries(t) {
            let id_ok = self.id(id, span.clone(), "key");
            let what = format!("[keys.{id}]");
            let Some(kt) = self.table(kv, &what) else { continue };
            self.unknown_fields(kt, &["weights", "max", "min"], &what);
            let weights = match field(kt, "weights") {
                None => {
                    self.err(
                        span.clone(),
                        format!("{what} has no `weights`"),
                        "weights = { PARTY = \"number\", ... }",
                    );
                    None
                }
                Some((_, wv)) => {
                    let is_sched = matches!(wv.get_ref(), DeValue::Table(t) if looks_like_schedule(t));
                    if is_sched {
                        self.schedule(wv, &format!("`weights` of key `{id}`"), true, |cx, yv| {
                            cx.party_table(yv, &format!("`weights` of key `{id}`"), parties, |cx, x| {
                                cx.quantity(x, "a weight")
                            })
                        })
                    } else {
                        let n = self.term.map(|t| t.count).unwrap_or(1);
                        self.party_table(wv, &format!("`weights` of key `{id}`"), parties, |cx, x| {
                            cx.quantity(x, "a weight")
                        })
                        .map(|w| ByFy { values: vec![w; n] })
                    }
                }
            };
            let bound = |cx: &mut Cx, name: &str, default: BigRational| -> Option<Vec<BigRational>> {
                match field(kt, name) {
                    None => Some(vec![default; parties.len()]),
                    Some((_, bv)) => {
                        let what = format!("`{name}` of key `{id}`");
                        let t = cx.table(bv, &what)?;
                        let mut vals = vec![default; parties.len()];
                        let mut ok = true;
                        for (p, pspan, pv) in entries(t) {
                            match parties.iter().position(|x| x.id == p) {
                                Some(i) => match pv.get_ref() {
                                    DeValue::Table(_) => {
                                        cx.err(
                                            pv.span(),
                                            format!("{what} cannot be a schedule"),
                                            "a plain percentage such as \"16.35%\"",
                                        );
                                        ok = false;
                                    }
                                    _ => match cx.percent(pv, &format!("{what} for {p}")) {
                                        Some(x) => vals[i] = x,
                                        None => ok = false,
                                    },
                                },
                                None => {
                                    ok = false;
                                    cx.err(pspan, format!("unknown party `{p}` in {what}"), party_list(parties));
                                }
                            }
                        }
                        ok.then_some(vals)
                    }
                }
            };
            let max = bound(self, "max", BigRational::one());
            let min = bound(self, "min", BigRational::zero());
            let (Some(weights), Some(max), Some(min)) = (weights, max, min) else {
                continue;
            };
            let mut shares = Vec::with_capacity(weights.values.len());
            let varies = weights.values.windows(2).any(|w| w[0] != w[1]);
            let mut failed = false;
            for (i, w) in weights.values.iter().enumerate() {
                match keys::solve(w, &min, &max) {
                    Ok(s) => shares.push(s),
                    Err(e) => {
                        let year = match self.term {
                            Some(t) if varies => format!(" in {}", FiscalYear(t.first_fy + i as i32)),
                            _ => String::new(),
                        };
                        let msg = match e {
                            KeyError::MinAboveMax { party } => {
                                format!("key `{id}`: the min of {} is above its max", parties[party].id)
                            }
                            KeyError::MinsTooHigh => format!("key `{id}`: the mins add up to more than 100%{year}"),
                            KeyError::MaxesTooLow => format!(
                                "key `{id}`: infeasible bounds{year}: the parties with weight cannot reach 100% within their max (plus the min of parties without weight)"
                            ),
                        };
                        self.err(
                            span.clone(),
                            msg,
                            "bounds with Σ min ≤ 100% ≤ Σ max of weighted parties + Σ min of unweighted ones",
                        );
                        failed = true;
                        break;
                    }
                }
            }
            if !failed && id_ok {
                out.push(Key {
                    id: id.to_string(),
                    shares: ByFy { values: shares },
                });
            } else {
                self.failed_keys.push(id.to_string());
            }
        }
        out
    }

    /// The categories' counts within the limits (each breach one error): no
    /// layer is read when they are not, so memory stays bounded.
    fn within_limits(&mut self, t: &DeTable, v: &V, cx: &Ctx) -> bool {
        if t.len() > MAX_CATEGORIES {
            self.err(
                v.span(),
                format!("{} categories declared; the limit is {MAX_CATEGORIES}", t.len()),
                format!("at most {MAX_CATEGORIES} [categories.ID] tables"),
            );
            return false;
        }
        let mut ok = true;
        let mut total = 0usize;
        for (id, _, cv) in entries(t) {
            let n = match cv.get_ref() {
                DeValue::Table(ct) => match field(ct, "layers").map(|(_, lv)| lv.get_ref()) {
                    Some(DeValue::Array(a)) => a.len(),
                    _ => 0,
                },
                _ => 0,
            };
            if n > MAX_LAYERS {
                self.err(
                    cv.span(),
                    format!("category `{id}` has {n} layers; the limit is {MAX_LAYERS}"),
                    format!("at most {MAX_LAYERS} layers in a category"),
                );
                ok = false;
            }
            total += n;
        }
        let years = self.term.map_or(1, |t| t.count);
        let cells = total.saturating_mul(years).saturating_mul(cx.parties.len().max(1));
        if ok && cells > MAX_SHARE_CELLS {
            self.err(
                v.span(),
                format!(
                    "{total} layers × {years} fiscal years × {} parties is {cells} shares to resolve; the limit is {MAX_SHARE_CELLS}",
                    cx.parties.len()
                ),
                "fewer layers, parties or fiscal years",
            );
            ok = false;
        }
        ok
    }

    fn categories(&mut self, v: &V, cx: &Ctx) -> Vec<Category> {
        let mut out = Vec::new();
        let Some(t) = self.table(v, "[categories]") else {
            return out;
        };
        if t.is_empty() {
            self.err(v.span(), "no categories declared", "at least one [categories.ID] table");
        }
        if !self.within_limits(t, v, cx) {
            return out;
        }
        for (id, span, cv) in entries(t) {
            let id_ok = self.id(id, span.clone(), "category");
            let what = format!("[categories.{id}]");
            let Some(ct) = self.table(cv, &what) else { continue };
            self.unknown_fields(ct, &["name", "unit", "layers"], &what);
            let name = field(ct, "name")
                .and_then(|(_, nv)| self.string(nv, "`name`", "a string").map(str::to_string))
                .unwrap_or_else(|| id.to_string());
            let unit = match field(ct, "unit") {
                None => None,
                Some((_, uv)) => match self.string(uv, "`unit`", "a unit name such as \"worker\"") {
                    Some(u) if !u.trim().is_empty() => Some(u.to_string()),
                    Some(_) => {
                        self.err(uv.span(), "`unit` is empty", "a unit name such as \"worker\"");
                        None
                    }
                    None => None,
                },
            };
            let layers_v = match field(ct, "layers") {
                Some((_, lv)) => lv,
                None => {
                    self.err(
                        span.clone(),
                        format!("{what} has no layers"),
                        format!("at least one [[categories.{id}.layers]] table"),
                    );
                    continue;
                }
            };
            let arr = match layers_v.get_ref() {
                DeValue::Array(a) => a,
                other => {
                    self.err(
                        layers_v.span(),
                        format!("`layers` must be an array of tables, found {}", kind_name(other)),
                        format!("[[categories.{id}.layers]] tables"),
                    );
                    continue;
                }
            };
            if arr.is_empty() {
                self.err(layers_v.span(), format!("{what} has no layers"), "at least one layer");
            }
            let mut layers = Vec::new();
            let mut ok = true;
            // layer ids (given or by position), each unique within the category
            let mut seen: Vec<(String, usize)> = Vec::new();
            for (i, lv) in arr.iter().enumerate() {
                let what = format!("layer {} of category `{id}`", i + 1);
                let lid = self.layer_id(lv, i, &what);
                if let Some((lid, lspan)) = &lid {
                    if let Some((_, first)) = seen.iter().find(|(s, _)| s == lid) {
                        self.err(
                            lspan.clone(),
                            format!(
                                "layer id `{lid}` of {what} is already the id of layer {} (a layer's id is its `id`, or its 1-based position)",
                                first + 1
                            ),
                            "an `id` unique within the category",
                        );
                        ok = false;
                    } else {
                        seen.push((lid.clone(), i));
                    }
                }
                match self.layer(lv, &what, unit.is_some(), cx) {
                    Some(mut l) => {
                        l.id = lid.map(|(s, _)| s).unwrap_or_default();
                        layers.push(l)
                    }
                    None => ok = false,
                }
            }
            if ok && id_ok && !arr.is_empty() {
                out.push(Category {
                    id: id.to_string(),
                    name,
                    unit,
                    layers,
                });
            }
        }
        out
    }

    /// A layer's id and the span to point at: its `id` (a non-empty
    /// string), or its 1-based position (pointing at the layer). `None` when
    /// the layer is not a table or its `id` is bad (reported here).
    fn layer_id(&mut self, v: &V, i: usize, what: &str) -> Option<(String, Range<usize>)> {
        let DeValue::Table(t) = v.get_ref() else {
            return None;
        };
        match field(t, "id") {
            None => Some(((i + 1).to_string(), v.span().start..v.span().start)),
            Some((_, iv)) => {
                let s = self.string(iv, &format!("`id` of {what}"), "a layer id such as \"envelope\"")?;
                if s.trim().is_empty() {
                    self.err(
                        iv.span(),
                        format!("`id` of {what} is empty"),
                        "a layer id such as \"envelope\"",
                    );
                    return None;
                }
                Some((s.to_string(), iv.span()))
            }
        }
    }

    fn layer(&mut self, v: &V, what: &str, has_unit: bool, cx: &Ctx) -> Option<Layer> {
        let t = self.table(v, what)?;
        self.unknown_fields(
            t,
            &["id", "split", "cap", "cap_units", "portion", "period", "cap_policy"],
            what,
        );
        let period = match field(t, "period") {
            None => Some(PeriodKind::FiscalYear),
            Some((_, pv)) => match self.string(pv, "`period`", "month, quarter, fiscal_year or term") {
                Some(s) => {
                    let p = PeriodKind::parse(s);
                    if p.is_none() {
                        self.err(
                            pv.span(),
                            format!("unknown period `{s}`"),
                            "\"month\", \"quarter\", \"fiscal_year\" or \"term\"",
                        );
                    }
                    p
                }
                None => None,
            },
        };
        let policy = match field(t, "cap_policy") {
            None => Some(CapPolicy::Running),
            Some((_, pv)) => match self.string(pv, "`cap_policy`", "running or pro_rata") {
                Some("running") => Some(CapPolicy::Running),
                Some("pro_rata") => Some(CapPolicy::ProRata),
                Some(s) => {
                    self.err(
                        pv.span(),
                        format!("unknown cap_policy `{s}`"),
                        "\"running\" or \"pro_rata\"",
                    );
                    None
                }
                None => None,
            },
        };
        let split = match field(t, "split") {
            Some((_, sv)) => self.split(sv, what, cx),
            None => {
                self.err(
                    v.span().start..v.span().start,
                    format!("{what} has no `split`"),
                    "split = { PARTY = \"100%\" } or split = { key = \"NAME\" }",
                );
                None
            }
        };
        let is_term = period == Some(PeriodKind::Term);
        let cap_f = field(t, "cap");
        let units_f = field(t, "cap_units");
        let mut cap = None;
        let mut cap_ok = true;
        if let (Some((s1, _)), Some((s2, _))) = (&cap_f, &units_f) {
            self.err(
                s1.start..s2.end.max(s1.end),
                format!("{what} has both `cap` and `cap_units`"),
                "at most one of `cap` and `cap_units`",
            );
            cap_ok = false;
        }
        if let Some((_, cv)) = cap_f {
            let ccy = cx.currency;
            match self.schedule(cv, "`cap`", !is_term, |c, x| c.money(x, "cap", &ccy)) {
                Some(s) => cap = Some(Cap::Money(s)),
                None => cap_ok = false,
            }
        }
        if let Some((kspan, uv)) = units_f.clone() {
            if !has_unit {
                self.err(
                    kspan,
                    format!("{what} has `cap_units` but its category declares no `unit`"),
                    "unit = \"...\" on the category",
                );
                cap_ok = false;
            }
            match self.schedule(uv, "`cap_units`", !is_term, |c, x| {
                c.quantity(x, "cap_units").map(|q| Q::from_big(&q))
            }) {
                Some(s) => cap = Some(Cap::Units(s)),
                None => cap_ok = false,
            }
        }
        let portion = match field(t, "portion") {
            None => Some(None),
            Some((kspan, pv)) => {
                if units_f.is_some() {
                    self.err(
                        kspan,
                        format!("{what} has `portion` with `cap_units`"),
                        "`portion` only on layers without `cap_units`",
                    );
                    None
                } else {
                    self.schedule(pv, "`portion`", true, |c, x| {
                        c.percent(x, "portion").map(|p| Q::from_big(&p))
                    })
                    .map(Some)
                }
            }
        };
        if cap_f.is_none() && units_f.is_none() {
            for name in ["period", "cap_policy"] {
                if let Some((kspan, _)) = field(t, name) {
                    self.warn(kspan, format!("`{name}` has no effect on {what}: it has no cap"));
                }
            }
        }
        let (split, source) = split?;
        Some(Layer {
            id: String::new(),
            split,
            split_source: source,
            cap: if cap_ok { cap } else { return None },
            portion: portion?,
            period: period?,
            policy: policy?,
        })
    }

    fn split(&mut self, v: &V, what: &str, cx: &Ctx) -> Option<(ByFy<Shares>, SplitSource)> {
        let t = match v.get_ref() {
            DeValue::Table(t) => t,
            other => {
                self.err(
                    v.span(),
                    format!("`split` of {what} must be a table, found {}", kind_name(other)),
                    "split = { PARTY = \"100%\" } or split = { key = \"NAME\" }",
                );
                return None;
            }
        };
        if let Some((kspan, kv)) = field(t, "key") {
            if t.len() > 1 {
                self.err(
                    v.span(),
                    format!("`split` of {what} mixes `key` with party shares"),
                    "either split = { key = \"NAME\" } or party shares",
                );
                return None;
            }
            let name = self.string(kv, "`key`", "the name of a [keys.NAME] table")?;
            let Some(k) = cx.keys.iter().find(|k| k.id == name) else {
                if self.failed_keys.iter().any(|k| k == name) {
                    return None; // the key itself is reported already
                }
                let known: Vec<&str> = cx.keys.iter().map(|k| k.id.as_str()).collect();
                self.err(
                    kv.span(),
                    format!("unknown key `{name}`"),
                    if known.is_empty() {
                        "a key declared as [keys.NAME]".to_string()
                    } else {
                        format!("one of: {}", known.join(", "))
                    },
                );
                let _ = kspan;
                return None;
            };
            let values = k.shares.values.iter().map(|s| Shares::new(s.clone())).collect();
            return Some((ByFy { values }, SplitSource::Key(k.id.clone())));
        }
        // where to point for each fiscal year: the year's table in a schedule of
        // splits, else the whole split
        let mut year_spans: Option<Vec<Range<usize>>> = None;
        let per_fy: ByFy<Vec<BigRational>> = if looks_like_schedule(t) {
            let mut scratch = Cx {
                diags: Vec::new(),
                term: self.term,
                failed_keys: Vec::new(),
                failed_currencies: Vec::new(),
            };
            year_spans = scratch.schedule(v, "", true, |_, yv| Some(yv.span())).map(|b| b.values);
            self.schedule(v, &format!("`split` of {what}"), true, |c, yv| {
                c.split_table(yv, what, cx).map(|b| b.values[0].clone())
            })?
        } else {
            self.split_table(v, what, cx)?
        };
        // every fiscal year must add up to exactly 100%
        let one = BigRational::one();
        let mut bad: Vec<(usize, BigRational)> = Vec::new();
        for (i, s) in per_fy.values.iter().enumerate() {
            let sum = s.iter().fold(BigRational::zero(), |a, b| a.add(b));
            if sum != one {
                bad.push((i, sum));
            }
        }
        if !bad.is_empty() {
            let all_same = per_fy.values.windows(2).all(|w| w[0] == w[1]);
            let first_fy = self.term.map(|t| t.first_fy).unwrap_or(0);
            // one diagnostic per place to change
            let mut by_span: Vec<(Range<usize>, Vec<String>)> = Vec::new();
            for (i, sum) in &bad {
                let span = year_spans
                    .as_ref()
                    .and_then(|y| y.get(*i).cloned())
                    .unwrap_or_else(|| v.span());
                let text = if all_same || self.term.is_none() {
                    format!("add up to {}", fmt_percent(sum))
                } else {
                    format!("add up to {} in {}", fmt_percent(sum), FiscalYear(first_fy + *i as i32))
                };
                match by_span.iter_mut().find(|(s, _)| *s == span) {
                    Some((_, v)) => {
                        if !v.contains(&text) {
                            v.push(text)
                        }
                    }
                    None => by_span.push((span, vec![text])),
                }
            }
            for (span, texts) in by_span {
                self.err(
                    span,
                    format!("the shares of {what} {}, not 100%", texts.join(", ")),
                    "party shares that add up to exactly 100%",
                );
            }
            return None;
        }
        let values = per_fy.values.into_iter().map(Shares::new).collect();
        Some((ByFy { values }, SplitSource::Fixed))
    }

    /// `{ PARTY = percent-or-schedule, ... }` → shares per fiscal year.
    fn split_table(&mut self, v: &V, what: &str, cx: &Ctx) -> Option<ByFy<Vec<BigRational>>> {
        let t = self.table(v, &format!("`split` of {what}"))?;
        let n = self.term.map(|t| t.count).unwrap_or(1);
        let mut per_fy = vec![vec![BigRational::zero(); cx.parties.len()]; n];
        let mut ok = true;
        for (p, span, pv) in entries(t) {
            let Some(pi) = cx.parties.iter().position(|x| x.id == p) else {
                self.err(
                    span,
                    format!("unknown party `{p}` in the split of {what}"),
                    party_list(cx.parties),
                );
                ok = false;
                continue;
            };
            match self.schedule(pv, &format!("the share of {p}"), true, |c, x| {
                c.percent(x, &format!("the share of {p}"))
            }) {
                Some(s) => {
                    for (i, x) in s.values.into_iter().enumerate().take(n) {
                        per_fy[i][pi] = x;
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(ByFy { values: per_fy })
    }
}

/// The exact decimal text a TOML float's literal stands for (`1.5e9` →
/// `1500000000`), to suggest in place of it; `None` for signs, inf and nan.
fn float_as_decimal(lit: &str) -> Option<String> {
    let lit = lit.replace('_', "");
    let lit = lit.strip_prefix('+').unwrap_or(&lit);
    let (mant, exp) = match lit.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (lit, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if exp.unsigned_abs() > 40 {
        return None;
    }
    let digits = format!("{int}{frac}");
    let point = int.len() as i32 + exp; // position of the point within `digits`
    let s = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    let t = s.trim_start_matches('0');
    Some(if t.is_empty() || t.starts_with('.') {
        format!("0{t}")
    } else {
        t.to_string()
    })
}

fn party_list(parties: &[Party]) -> String {
    if parties.is_empty() {
        "a party declared as [parties.ID]".to_string()
    } else {
        format!(
            "one of the declared parties: {}",
            parties.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
        )
    }
}

struct Head {
    id: String,
    title: String,
    currency: Currency,
    start: Date,
    end: Date,
    calendar: FiscalCalendar,
    first_fy: i32,
    fy_count: usize,
}

#[cfg(test)]
mod tests {
    use super::{float_as_decimal, load, open_before};

    fn head(parties: usize, years: i32) -> String {
        let mut t = format!(
            "[agreement]\nid = \"x\"\ncurrency = \"USD\"\nstart = \"2000-01-01\"\nend = \"{}-12-31\"\n[parties]\n",
            1999 + years
        );
        for i in 0..parties {
            t.push_str(&format!("P{i} = {{}}\n"));
        }
        t
    }

    /// Issue 9: a 3 MB agreement used all the machine's memory. Each limit
    /// gives one error, and nothing past it is resolved.
    #[test]
    fn limits_give_one_clear_error() {
        let one = |text: &str, says: &str| {
            let l = load(text);
            assert!(l.agreement.is_none());
            // the limit's error, and at most what its absence implies (no parties, no categories)
            let errors: Vec<_> = l.diagnostics.iter().filter(|d| d.is_error()).collect();
            assert!(errors.len() <= 2, "{says}: {:?}", l.diagnostics);
            assert_eq!(
                errors.iter().filter(|d| d.message.contains(says)).count(),
                1,
                "{says}: {errors:?}"
            );
        };
        one(
            &" ".repeat(super::MAX_AGREEMENT_BYTES + 1),
            "the limit is 1048576 bytes",
        );
        one(
            &head(super::MAX_PARTIES + 1, 1),
            "1001 parties declared; the limit is 1000",
        );
        let mut t = head(2, 1);
        t.push_str("[categories.c]\n");
        for _ in 0..=super::MAX_LAYERS {
            t.push_str("[[categories.c.layers]]\nsplit = { P0 = \"100%\" }\n");
        }
        one(&t, "category `c` has 101 layers; the limit is 100");
        // 1,000 parties over 100 years: 21 layers are over two million shares
        let mut t = head(1000, 100);
        for c in 0..21 {
            t.push_str(&format!(
                "[categories.c{c}]\n[[categories.c{c}.layers]]\nsplit = {{ P0 = \"100%\" }}\n"
            ));
        }
        one(&t, "shares to resolve; the limit is 2000000");
        // past the first hundred, problems are counted, not listed
        let mut t = head(2, 1);
        t.push_str("[keys.k]\nweights = { ");
        t.push_str(&(0..250).map(|i| format!("Q{i} = \"1\"")).collect::<Vec<_>>().join(", "));
        t.push_str(" }\n");
        let l = load(&t);
        assert_eq!(l.diagnostics.len(), super::MAX_DIAGNOSTICS);
        assert!(l.omitted > 150, "{}", l.omitted);
    }

    /// Issue 9: one missing `}` gave 29 cascading errors, none at the line
    /// where the table opened.
    #[test]
    fn a_syntax_error_is_one_error_naming_what_is_left_open() {
        let cases = [
            (
                "[a]\nx = { A = \"1\" \ny = 2\n[b]\nz = { B = 1 }\n",
                "inline table opened at line 2, column 5",
            ),
            ("[a]\nid = \"x\ncur = \"JPY\"\n", "string opened at line 2, column 6"),
            ("[a]\nl = [1, 2,\n3\n[b]\n", "array opened at line 2, column 5"),
        ];
        for (text, opened) in cases {
            let l = load(text);
            assert!(l.agreement.is_none());
            assert_eq!(l.diagnostics.len(), 1, "{text:?}: {:?}", l.diagnostics);
            assert!(
                l.diagnostics[0].message.contains(opened),
                "{text:?}: {}",
                l.diagnostics[0].message
            );
        }
        // nothing open: strings, comments and headers are not mistaken for openers
        let text = "# a [comment] {\n[t]\ns = \"{[\"\nm = '''\n{ ['''\nk = { a = [1, 2] }\n";
        assert_eq!(open_before(text, text.len()), None);
        // nor is a syntax error with nothing open
        let l = load("[a]\nx = = 1\n");
        assert_eq!(l.diagnostics.len(), 1);
        assert!(
            !l.diagnostics[0].message.contains("opened at"),
            "{}",
            l.diagnostics[0].message
        );
    }

    #[test]
    fn float_suggestions() {
        assert_eq!(float_as_decimal("1.5e9").as_deref(), Some("1500000000"));
        assert_eq!(float_as_decimal("23400000000.0").as_deref(), Some("23400000000"));
        assert_eq!(float_as_decimal("0.61").as_deref(), Some("0.61"));
        assert_eq!(float_as_decimal("6.1E-1").as_deref(), Some("0.61"));
        assert_eq!(float_as_decimal("1_000.5").as_deref(), Some("1000.5"));
        assert_eq!(float_as_decimal("-1.0"), None);
        assert_eq!(float_as_decimal("inf"), None);
        assert_eq!(float_as_decimal("nan"), None);
    }
}
