//! The agreement model: parties, currencies, keys, categories and layers, with
//! every schedule resolved per fiscal year of the term.
//!
//! Built only by [`crate::load`], which guarantees the invariants documented on
//! each type (splits add to exactly 100% in every fiscal year, caps are present
//! for every fiscal year, ids are valid and unique).

use crate::calendar::{Date, FiscalCalendar, PeriodKind};
use crate::money::Currency;
use crate::num::{BigRational, Q};
use num_traits::ToPrimitive;

#[derive(Clone, Debug)]
pub struct Party {
    pub id: String,
    pub name: String,
}

/// A value per fiscal year of the term (index 0 = the term's first fiscal year).
#[derive(Clone, Debug, PartialEq)]
pub struct ByFy<T> {
    pub values: Vec<T>,
}

impl<T> ByFy<T> {
    pub fn get(&self, fy_index: usize) -> &T {
        &self.values[fy_index.min(self.values.len() - 1)]
    }
}

/// Exact party shares adding to 100%, in party order, with a precomputed
/// common-denominator form for the hot path when it fits in `u128`.
#[derive(Clone, Debug, PartialEq)]
pub struct Shares {
    pub shares: Vec<BigRational>,
    /// `(numerators, denominator)` with `Σ numerators = denominator`.
    pub fast: Option<(Vec<u128>, u128)>,
    /// The party holding 100%, when one does.
    pub whole: Option<usize>,
}

impl Shares {
    pub fn new(shares: Vec<BigRational>) -> Shares {
        let fast = common_denominator(&shares);
        let one = BigRational::one();
        let whole = shares.iter().position(|s| *s == one);
        Shares { shares, fast, whole }
    }
}

fn common_denominator(shares: &[BigRational]) -> Option<(Vec<u128>, u128)> {
    let mut lcm: u128 = 1;
    for s in shares {
        let d = s.denom().to_u128()?;
        let g = num_integer::gcd(lcm, d);
        lcm = (lcm / g).checked_mul(d)?;
    }
    // keep amount (< 2^63) × numerator within u128
    if lcm > (1u128 << 64) {
        return None;
    }
    let mut nums = Vec::with_capacity(shares.len());
    for s in shares {
        let n = s.numer().to_u128()?;
        let d = s.denom().to_u128()?;
        nums.push(n * (lcm / d));
    }
    Some((nums, lcm))
}

/// Where a layer's shares come from (for explanations).
#[derive(Clone, Debug, PartialEq)]
pub enum SplitSource {
    Fixed,
    Key(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapPolicy {
    Running,
    ProRata,
}

impl CapPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CapPolicy::Running => "running",
            CapPolicy::ProRata => "pro_rata",
        }
    }
}

/// A layer's capacity per period.
#[derive(Clone, Debug, PartialEq)]
pub enum Cap {
    /// Minor units of the agreement currency, per fiscal year of the period.
    Money(ByFy<i64>),
    /// A quantity, per fiscal year of the period.
    Units(ByFy<Q>),
}

#[derive(Clone, Debug)]
pub struct Layer {
    /// The layer's id within its category (`id` in the file; by default its
    /// 1-based position): an amendment's layer continues the earlier
    /// version's layer with the same category and id (SPEC section 8).
    pub id: String,
    /// Shares per fiscal year of the line's date.
    pub split: ByFy<Shares>,
    pub split_source: SplitSource,
    pub cap: Option<Cap>,
    /// Fraction of each line's remaining amount offered to this layer, per
    /// fiscal year of the line's date.
    pub portion: Option<ByFy<Q>>,
    pub period: PeriodKind,
    pub policy: CapPolicy,
}

#[derive(Clone, Debug)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub unit: Option<String>,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    /// Effective shares per fiscal year (in party order).
    pub shares: ByFy<Vec<BigRational>>,
}

#[derive(Clone, Debug)]
pub struct Agreement {
    pub id: String,
    pub title: String,
    pub currency: Currency,
    pub start: Date,
    pub end: Date,
    pub calendar: FiscalCalendar,
    pub parties: Vec<Party>,
    /// Currencies declared in `[currencies]` (the built-ins are implicit).
    pub declared_currencies: Vec<Currency>,
    pub keys: Vec<Key>,
    pub categories: Vec<Category>,
    /// Label number of the term's first fiscal year.
    pub first_fy: i32,
    /// Number of fiscal years the term touches.
    pub fy_count: usize,
    /// Seals the struct: only this crate builds an `Agreement` (the loader,
    /// and [`Agreement::with_only_category`]), so the invariants `load`
    /// checks hold for every value.
    pub(crate) _sealed: Sealed,
}

/// A field only this crate can fill (see [`Agreement`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealed(());

impl Agreement {
    /// The same agreement with only category `c`, as category 0 (the
    /// allocator indexes layers by a line's category): for allocating the
    /// lines of one category on their own.
    pub fn with_only_category(&self, c: usize) -> Agreement {
        Agreement {
            categories: self.categories.get(c).cloned().into_iter().collect(),
            ..self.clone()
        }
    }

    /// The same agreement written in another currency: for presenting
    /// figures already converted (`ceilings --currency`), never for
    /// allocating (its caps are still in the original currency's units).
    pub fn with_currency(&self, currency: Currency) -> Agreement {
        Agreement {
            currency,
            ..self.clone()
        }
    }

    pub fn currency(&self, code: &str) -> Option<Currency> {
        Currency::builtin(code).or_else(|| self.declared_currencies.iter().find(|c| c.code() == code).cloned())
    }

    /// The index of layer `layer_id` in category `category_id`.
    pub fn layer_index(&self, category_id: &str, layer_id: &str) -> Option<(usize, usize)> {
        let c = self.category_index(category_id)?;
        let l = self.categories[c].layers.iter().position(|l| l.id == layer_id)?;
        Some((c, l))
    }

    pub fn category_index(&self, id: &str) -> Option<usize> {
        self.categories.iter().position(|c| c.id == id)
    }

    pub fn party_index(&self, id: &str) -> Option<usize> {
        self.parties.iter().position(|p| p.id == id)
    }

    /// Fiscal-year index (0-based within the term) of a date inside the term.
    pub fn fy_index(&self, d: Date) -> usize {
        (self.calendar.fy_of(d) - self.first_fy).clamp(0, self.fy_count as i32 - 1) as usize
    }

    pub fn in_term(&self, d: Date) -> bool {
        d >= self.start && d <= self.end
    }

    pub fn fy_label(&self, fy_index: usize) -> String {
        crate::calendar::FiscalYear(self.first_fy + fy_index as i32).to_string()
    }
}
