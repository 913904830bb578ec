//! A bulk `record`'s lines, packed: what the journal body, the allocator and
//! the derived state's buckets read of a cost line (see `ledger::NewLines`),
//! in columns and one text arena, about 100 bytes a line where a
//! [`CostLine`] takes about 430 (its rate, which none of them reads, is not
//! kept). A line's values are exactly the cost line's it was accepted as
//! ([`Packed::push`] takes `costs::accept`'s verdict, [`Packed::push_line`]
//! a cost line); [`LineView`] is what every reader sees of either form.

use costshare_core::alloc::Lines;
use costshare_core::calendar::Date;
use costshare_core::costs::{Accepted, CostLine, RowRef};
use costshare_core::num::Q;

/// One line's fields, borrowed from a [`CostLine`] or a [`Packed`] line.
pub struct LineView<'a> {
    pub id: &'a str,
    pub date: Date,
    pub category: usize,
    /// Minor units of the agreement currency.
    pub amount: i64,
    /// The amount as written, in `currency`'s minor units.
    pub source_amount: i64,
    pub currency: &'a str,
    pub quantity: Option<&'a Q>,
    pub site: &'a str,
    pub description: &'a str,
    /// The physical line of its row, or its journal entry.
    pub row: u64,
    pub replaces: Option<&'a str>,
    pub paid_by: Option<usize>,
}

/// Lines a reader sees as [`LineView`]s and the allocator as [`Lines`].
pub trait LineSource: Lines + Sync {
    fn view(&self, i: usize) -> LineView<'_>;
    /// `view(i).id`, for loops that read only that.
    fn id_of(&self, i: usize) -> &str {
        self.view(i).id
    }
    /// `view(i).site`.
    fn site_of(&self, i: usize) -> &str {
        self.view(i).site
    }
    /// `view(i).row`.
    fn row_of(&self, i: usize) -> u64 {
        self.view(i).row
    }
    /// `view(i).replaces`.
    fn replaces_of(&self, i: usize) -> Option<&str> {
        self.view(i).replaces
    }
    /// A hint that line `i` is read soon: its fixed columns are fetched
    /// into the cache (nothing for sources that keep no columns).
    fn prefetch_columns(&self, _i: usize) {}
    /// A hint that line `i` is read soon: its text is fetched into the
    /// cache; its columns are read for where (fetch them first).
    fn prefetch_text(&self, _i: usize) {}
}

/// Ask the processor to bring the cache line at `p` in (a hint: it reads
/// nothing and cannot fault; nothing off x86-64).
#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads no memory the program sees and does not fault
    // on any address
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl LineSource for [CostLine] {
    fn view(&self, i: usize) -> LineView<'_> {
        view_of(&self[i])
    }
}

/// A cost line's fields.
pub fn view_of(l: &CostLine) -> LineView<'_> {
    {
        LineView {
            id: &l.id,
            date: l.date,
            category: l.category,
            amount: l.amount,
            source_amount: l.source_amount,
            currency: &l.currency,
            quantity: l.quantity.as_ref(),
            site: &l.site,
            description: &l.description,
            row: l.row as u64,
            replaces: l.replaces.as_deref(),
            paid_by: l.paid_by,
        }
    }
}

/// No quantity.
const NO_Q: u32 = u32::MAX;
/// No payer.
const NO_PAYER: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Col {
    date: Date,
    amount: i64,
    source_amount: i64,
    row: u64,
    /// Where its text starts in `text`: id, currency, site, then description
    /// (to the next line's start).
    at: u64,
    /// Lengths of id, currency and site.
    lens: [u32; 3],
    category: u32,
    /// Index into `qty`, or `NO_Q`.
    q: u32,
    paid_by: u32,
    /// Its `replaces` (index into `replaces`), or `u32::MAX`: rare.
    replaces: u32,
}

/// Lines packed (see the module).
#[derive(Default)]
pub struct Packed {
    cols: Vec<Col>,
    text: String,
    qty: Vec<Q>,
    replaces: Vec<String>,
}

impl Packed {
    /// Room for `n` lines.
    pub fn with_capacity(n: usize) -> Packed {
        Packed {
            cols: Vec::with_capacity(n),
            text: String::with_capacity(n * 48),
            qty: Vec::new(),
            replaces: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.cols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    #[allow(clippy::too_many_arguments)]
    fn push_fields(
        &mut self,
        id: &str,
        date: Date,
        category: usize,
        amount: i64,
        source_amount: i64,
        currency: &str,
        quantity: Option<Q>,
        site: &str,
        description: &str,
        row: u64,
        replaces: Option<&str>,
        paid_by: Option<usize>,
    ) {
        let at = self.text.len() as u64;
        for s in [id, currency, site, description] {
            self.text.push_str(s);
        }
        let q = match quantity {
            Some(q) => {
                self.qty.push(q);
                (self.qty.len() - 1) as u32
            }
            None => NO_Q,
        };
        let replaces = match replaces {
            Some(r) => {
                self.replaces.push(r.to_string());
                (self.replaces.len() - 1) as u32
            }
            None => u32::MAX,
        };
        self.cols.push(Col {
            date,
            amount,
            source_amount,
            row,
            at,
            lens: [id.len() as u32, currency.len() as u32, site.len() as u32],
            category: category as u32,
            q,
            paid_by: paid_by.map_or(NO_PAYER, |p| p as u32),
            replaces,
        });
    }

    /// A row `costs::accept` accepted as `a`: the cost line
    /// `Accepted::into_line` would make of it (its `row` the row's line),
    /// without its rate.
    pub fn push(&mut self, a: Accepted<'_>, raw: &RowRef<'_>) {
        let replaces = (!raw.replaces.is_empty()).then_some(raw.replaces);
        self.push_fields(
            raw.id,
            a.date,
            a.category,
            a.amount,
            a.source_amount,
            a.currency.code(),
            a.quantity,
            raw.site,
            raw.description,
            raw.line as u64,
            replaces,
            a.paid_by,
        );
    }

    /// A line as it is (a cost line's rate aside).
    pub fn push_view(&mut self, l: &LineView<'_>) {
        self.push_fields(
            l.id,
            l.date,
            l.category,
            l.amount,
            l.source_amount,
            l.currency,
            l.quantity.cloned(),
            l.site,
            l.description,
            l.row,
            l.replaces,
            l.paid_by,
        );
    }

    /// `other`'s lines after these.
    pub fn extend(&mut self, other: Packed) {
        let (text, q, r) = (
            self.text.len() as u64,
            self.qty.len() as u32,
            self.replaces.len() as u32,
        );
        self.text.push_str(&other.text);
        self.qty.extend(other.qty);
        self.replaces.extend(other.replaces);
        self.cols.reserve_exact(other.cols.len());
        self.cols.extend(other.cols.into_iter().map(|mut c| {
            c.at += text;
            if c.q != NO_Q {
                c.q += q;
            }
            if c.replaces != u32::MAX {
                c.replaces += r;
            }
            c
        }));
    }

    /// Keep the lines `keep` says (by index), in order, each given its new
    /// `row` and no `replaces`; the text moves down in place.
    pub fn retain_as(&mut self, mut keep: impl FnMut(usize) -> Option<u64>) {
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        let len = bytes.len();
        let mut to = 0usize; // next kept line
        let mut text_to = 0usize;
        for i in 0..self.cols.len() {
            // `cols[i + 1]` is not overwritten yet: `to` <= `i`
            let a = self.cols[i].at as usize;
            let b = self.cols.get(i + 1).map_or(len, |n| n.at as usize).max(a);
            let Some(row) = keep(i) else { continue };
            // whole strings move down: the text stays valid UTF-8
            bytes.copy_within(a..b, text_to);
            self.cols[to] = Col {
                at: text_to as u64,
                row,
                replaces: u32::MAX,
                ..self.cols[i]
            };
            text_to += b - a;
            to += 1;
        }
        self.cols.truncate(to);
        self.cols.shrink_to_fit();
        bytes.truncate(text_to);
        bytes.shrink_to_fit();
        // every kept line's text moved whole, so this is UTF-8
        self.text = String::from_utf8(bytes).unwrap_or_default();
        self.replaces = Vec::new();
    }

    /// The byte range of line `i`'s text.
    fn span(&self, i: usize) -> (usize, usize) {
        let a = self.cols[i].at as usize;
        let b = self.cols.get(i + 1).map_or(self.text.len(), |n| n.at as usize);
        (a, b.max(a))
    }

    /// Line `i`'s row (its physical line, or its entry once given).
    pub fn row(&self, i: usize) -> u64 {
        self.cols[i].row
    }
}

impl Lines for Packed {
    fn count(&self) -> usize {
        self.cols.len()
    }
    fn date(&self, i: usize) -> Date {
        self.cols[i].date
    }
    fn category(&self, i: usize) -> usize {
        self.cols[i].category as usize
    }
    fn amount(&self, i: usize) -> i64 {
        self.cols[i].amount
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.qty.get(self.cols[i].q as usize)
    }
    fn id(&self, i: usize) -> &[u8] {
        let a = self.cols[i].at as usize;
        &self.text.as_bytes()[a..a + self.cols[i].lens[0] as usize]
    }
}

impl LineSource for Packed {
    fn id_of(&self, i: usize) -> &str {
        let c = &self.cols[i];
        let a = c.at as usize;
        self.text.get(a..a + c.lens[0] as usize).unwrap_or_default()
    }
    fn site_of(&self, i: usize) -> &str {
        let c = &self.cols[i];
        let a = c.at as usize + c.lens[0] as usize + c.lens[1] as usize;
        self.text.get(a..a + c.lens[2] as usize).unwrap_or_default()
    }
    fn row_of(&self, i: usize) -> u64 {
        self.cols[i].row
    }
    fn replaces_of(&self, i: usize) -> Option<&str> {
        self.replaces.get(self.cols[i].replaces as usize).map(String::as_str)
    }
    fn prefetch_columns(&self, i: usize) {
        if let Some(c) = self.cols.get(i) {
            prefetch(c);
        }
    }
    fn prefetch_text(&self, i: usize) {
        if let Some(b) = self.cols.get(i).and_then(|c| self.text.as_bytes().get(c.at as usize)) {
            prefetch(b);
        }
    }

    fn view(&self, i: usize) -> LineView<'_> {
        let c = &self.cols[i];
        let (a, end) = self.span(i);
        let [n_id, n_ccy, n_site] = c.lens.map(|n| n as usize);
        let text = &self.text[a..end];
        let (id, rest) = text.split_at(n_id.min(text.len()));
        let (currency, rest) = rest.split_at(n_ccy.min(rest.len()));
        let (site, description) = rest.split_at(n_site.min(rest.len()));
        LineView {
            id,
            date: c.date,
            category: c.category as usize,
            amount: c.amount,
            source_amount: c.source_amount,
            currency,
            quantity: self.qty.get(c.q as usize),
            site,
            description,
            row: c.row,
            replaces: self.replaces.get(c.replaces as usize).map(String::as_str),
            paid_by: (c.paid_by != NO_PAYER).then_some(c.paid_by as usize),
        }
    }
}
