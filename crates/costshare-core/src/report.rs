//! Reports: allocation totals grouped by dimensions (SPEC section 7).

use crate::agreement::Agreement;
use crate::alloc::Allocation;
use crate::calendar::Date;
use crate::costs::CostLine;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Party,
    FiscalYear,
    Category,
    Site,
    Month,
}

impl Dim {
    pub const ALL: [Dim; 5] = [Dim::Party, Dim::FiscalYear, Dim::Category, Dim::Site, Dim::Month];

    pub fn parse(s: &str) -> Option<Dim> {
        match s {
            "party" => Some(Dim::Party),
            "fiscal_year" => Some(Dim::FiscalYear),
            "category" => Some(Dim::Category),
            "site" => Some(Dim::Site),
            "month" => Some(Dim::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dim::Party => "party",
            Dim::FiscalYear => "fiscal_year",
            Dim::Category => "category",
            Dim::Site => "site",
            Dim::Month => "month",
        }
    }
}

/// Why a `--by` list was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimsError {
    Empty,
    Unknown(String),
    Repeated(String),
}

impl std::fmt::Display for DimsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DimsError::Empty => write!(
                f,
                "no dimensions given; use a comma list of party, fiscal_year, category, site, month"
            ),
            DimsError::Unknown(d) => write!(
                f,
                "unknown dimension `{d}`; use party, fiscal_year, category, site or month"
            ),
            DimsError::Repeated(d) => write!(f, "dimension `{d}` is given twice"),
        }
    }
}

/// Parse `party,fiscal_year` into dimensions: distinct, known names.
pub fn parse_dims(s: &str) -> Result<Vec<Dim>, DimsError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        let d = Dim::parse(p).ok_or_else(|| {
            if p.is_empty() {
                DimsError::Empty
            } else {
                DimsError::Unknown(p.to_string())
            }
        })?;
        if out.contains(&d) {
            return Err(DimsError::Repeated(p.to_string()));
        }
        out.push(d);
    }
    if out.is_empty() {
        return Err(DimsError::Empty);
    }
    Ok(out)
}

/// One report row: the dimension values and the amount in minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub values: Vec<String>,
    pub amount: i64,
}

/// A total went past the signed 64-bit limit of minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotalTooLarge {
    pub group: Vec<String>,
}

/// The one rule that puts an allocated amount into a report group. A key
/// holds, in `dims` order: the party index (UNALLOCATED = the number of
/// parties), the fiscal-year label number, the category's byte-order rank,
/// the site's number as the caller interned it, or the month index. Every
/// path that groups (the general report, the streaming report, the ledger's
/// derived state, statements) builds its keys here and turns them into rows
/// with [`KeyRule::rows`].
pub struct KeyRule<'a> {
    ag: &'a Agreement,
    dims: Vec<Dim>,
    /// The dimensions other than the party, in order.
    rest: Vec<Dim>,
    cat_rank: Vec<i64>,
    party_pos: Option<usize>,
}

impl<'a> KeyRule<'a> {
    pub fn new(ag: &'a Agreement, dims: &[Dim]) -> KeyRule<'a> {
        KeyRule {
            ag,
            dims: dims.to_vec(),
            rest: dims.iter().copied().filter(|d| *d != Dim::Party).collect(),
            cat_rank: category_ranks(ag),
            party_pos: dims.iter().position(|d| *d == Dim::Party),
        }
    }

    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    /// Whether the report is by party (else a line's parts are summed).
    pub fn by_party(&self) -> bool {
        self.party_pos.is_some()
    }

    /// Where the party goes in a key, if the report is by party.
    pub fn party_pos(&self) -> Option<usize> {
        self.party_pos
    }

    /// The value of dimension `d` for an amount of `party` on a line.
    #[inline]
    pub fn value(&self, d: Dim, party: usize, date: Date, category: usize, site: i64) -> i64 {
        match d {
            Dim::Party => party as i64,
            Dim::FiscalYear => self.ag.calendar.fy_of(date) as i64,
            Dim::Category => self.cat_rank[category],
            Dim::Site => site,
            Dim::Month => date.month_index() as i64,
        }
    }

    /// The whole key of an amount of `party` on a line.
    #[inline]
    pub fn key(&self, party: usize, date: Date, category: usize, site: i64) -> [i64; 5] {
        let mut k = [0i64; 5];
        for (n, d) in self.dims.iter().enumerate() {
            k[n] = self.value(*d, party, date, category, site);
        }
        k
    }

    /// The key without the party (the other dimensions in order), for paths
    /// that keep one sum per party under each key; [`KeyRule::with_party`]
    /// completes it.
    #[inline]
    pub fn key_without_party(&self, date: Date, category: usize, site: i64) -> [i64; 4] {
        let mut k = [0i64; 4];
        for (slot, d) in k.iter_mut().zip(&self.rest) {
            *slot = self.value(*d, 0, date, category, site);
        }
        k
    }

    /// A key from [`KeyRule::key_without_party`] and a party.
    #[inline]
    pub fn with_party(&self, key: &[i64; 4], party: usize) -> [i64; 5] {
        let mut k = [0i64; 5];
        match self.party_pos {
            Some(pp) => {
                k[..pp].copy_from_slice(&key[..pp]);
                k[pp] = party as i64;
                k[pp + 1..].copy_from_slice(&key[pp..]);
            }
            None => k[..4].copy_from_slice(key),
        }
        k
    }

    /// Add one line's parts (one amount per party, then UNALLOCATED) to the
    /// groups: each non-zero part to its party's group, or, when the report
    /// is not by party, the line's total to one group.
    #[inline]
    pub fn add_parts<T: Copy + Into<i128>, S: std::hash::BuildHasher>(
        &self,
        groups: &mut HashMap<[i64; 5], i128, S>,
        key: &[i64; 4],
        parts: &[T],
    ) {
        if self.by_party() {
            for (p, &v) in parts.iter().enumerate() {
                let v: i128 = v.into();
                if v != 0 {
                    *groups.entry(self.with_party(key, p)).or_insert(0) += v;
                }
            }
        } else {
            let v: i128 = parts.iter().map(|&v| v.into()).sum();
            if v != 0 {
                *groups.entry(self.with_party(key, 0)).or_insert(0) += v;
            }
        }
    }

    /// Sorted, named rows from group totals; `sites` names the site numbers.
    pub fn rows<S: std::hash::BuildHasher>(
        &self,
        sites: &[&str],
        groups: HashMap<[i64; 5], i128, S>,
    ) -> Result<Vec<Row>, TotalTooLarge> {
        rows_from_groups(self.ag, &self.dims, &self.cat_rank, sites, groups)
    }
}

/// Site names numbered in the order first seen.
#[derive(Default)]
pub struct Sites<'s> {
    ids: HashMap<&'s str, i64, crate::fxhash::BuildFx>,
    names: Vec<&'s str>,
}

impl<'s> Sites<'s> {
    /// The number of `site`.
    #[inline]
    pub fn number(&mut self, site: &'s str) -> i64 {
        let next = self.names.len() as i64;
        *self.ids.entry(site).or_insert_with(|| {
            self.names.push(site);
            next
        })
    }

    /// The names, by number.
    pub fn names(&self) -> &[&'s str] {
        &self.names
    }
}

/// Group the allocation by `dims`, skipping zero groups, sorted by the dims in
/// the order given: parties in agreement order (UNALLOCATED last), fiscal
/// years and months ascending, categories and sites in byte order.
pub fn report(ag: &Agreement, lines: &[CostLine], alloc: &Allocation, dims: &[Dim]) -> Result<Vec<Row>, TotalTooLarge> {
    report_where(ag, lines, alloc, dims, |_| true)
}

/// [`report`] over the lines `keep` (by index) accepts: the same grouping,
/// for a subset (the provisional lines, say) without copying it.
pub fn report_where(
    ag: &Agreement,
    lines: &[CostLine],
    alloc: &Allocation,
    dims: &[Dim],
    keep: impl Fn(usize) -> bool,
) -> Result<Vec<Row>, TotalTooLarge> {
    let rule = KeyRule::new(ag, dims);
    let want_site = dims.contains(&Dim::Site);
    let mut sites = Sites::default();
    let w = alloc.width();
    let mut groups: HashMap<[i64; 5], i128, crate::fxhash::BuildFx> = HashMap::default();
    for (li, l) in lines.iter().enumerate() {
        if !keep(li) {
            continue;
        }
        let site = if want_site { sites.number(l.site.as_str()) } else { 0 };
        let key = rule.key_without_party(l.date, l.category, site);
        rule.add_parts(&mut groups, &key, &alloc.amounts[li * w..(li + 1) * w]);
    }
    rule.rows(sites.names(), groups)
}

/// Rank of each category (in agreement order) by byte order of its id, so
/// report keys are small integers that sort like the ids.
fn category_ranks(ag: &Agreement) -> Vec<i64> {
    let mut cat_rank = vec![0i64; ag.categories.len()];
    let mut ids: Vec<(usize, &str)> = ag
        .categories
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.id.as_str()))
        .collect();
    ids.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
    for (rank, (i, _)) in ids.into_iter().enumerate() {
        cat_rank[i] = rank as i64;
    }
    cat_rank
}

/// Turn group totals into sorted, named report rows. A key holds, in `dims`
/// order: the party index, the fiscal-year label, the category rank, an index
/// into `sites`, or the month index.
fn rows_from_groups<S: std::hash::BuildHasher>(
    ag: &Agreement,
    dims: &[Dim],
    cat_rank: &[i64],
    sites: &[&str],
    groups: HashMap<[i64; 5], i128, S>,
) -> Result<Vec<Row>, TotalTooLarge> {
    // site ranks by byte order
    let mut site_rank = vec![0i64; sites.len()];
    {
        let mut order: Vec<usize> = (0..sites.len()).collect();
        order.sort_by(|&a, &b| sites[a].as_bytes().cmp(sites[b].as_bytes()));
        for (rank, i) in order.into_iter().enumerate() {
            site_rank[i] = rank as i64;
        }
    }
    let mut rows: Vec<([i64; 5], [i64; 5], i128)> = groups
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| {
            let mut sort = k;
            for (n, d) in dims.iter().enumerate() {
                if *d == Dim::Site {
                    sort[n] = site_rank[k[n] as usize];
                }
            }
            (sort, k, v)
        })
        .collect();
    rows.sort_unstable_by_key(|r| r.0);
    let cat_by_rank: Vec<&str> = {
        let mut v = vec![""; ag.categories.len()];
        for (i, c) in ag.categories.iter().enumerate() {
            v[cat_rank[i] as usize] = c.id.as_str();
        }
        v
    };
    let mut out = Vec::with_capacity(rows.len());
    for (_, k, v) in rows {
        let values: Vec<String> = dims
            .iter()
            .enumerate()
            .map(|(n, d)| match d {
                Dim::Party => {
                    let p = k[n] as usize;
                    if p < ag.parties.len() {
                        ag.parties[p].id.clone()
                    } else {
                        "UNALLOCATED".to_string()
                    }
                }
                Dim::FiscalYear => crate::calendar::FiscalYear(k[n] as i32).to_string(),
                Dim::Category => cat_by_rank[k[n] as usize].to_string(),
                Dim::Site => sites[k[n] as usize].to_string(),
                Dim::Month => {
                    let d = crate::calendar::Date::first_of_month_index(k[n] as i32);
                    format!("{:04}-{:02}", d.year, d.month)
                }
            })
            .collect();
        let amount = i64::try_from(v).map_err(|_| TotalTooLarge { group: values.clone() })?;
        out.push(Row { values, amount });
    }
    Ok(out)
}

/// Merge the rows of several parts (a ledger's agreement versions, which keep
/// the same parties): equal keys summed, zero rows dropped, sorted by the same
/// rule as [`report`] (parties in `ag`'s order, UNALLOCATED last; the other
/// dimensions in text order, which is their order too). One part is returned
/// as it is.
pub fn merge(ag: &Agreement, dims: &[Dim], mut parts: Vec<Vec<Row>>) -> Result<Vec<Row>, TotalTooLarge> {
    if parts.len() <= 1 {
        return Ok(parts.pop().unwrap_or_default());
    }
    let mut sums: HashMap<Vec<String>, i128> = HashMap::new();
    for rows in parts {
        for row in rows {
            *sums.entry(row.values).or_default() += row.amount as i128;
        }
    }
    let prank = |p: &str| ag.parties.iter().position(|x| x.id == p).unwrap_or(usize::MAX);
    let mut rows: Vec<(Vec<String>, i128)> = sums.into_iter().filter(|(_, v)| *v != 0).collect();
    rows.sort_by(|x, y| {
        for (n, d) in dims.iter().enumerate() {
            let o = match d {
                Dim::Party => prank(&x.0[n]).cmp(&prank(&y.0[n])),
                _ => x.0[n].as_bytes().cmp(y.0[n].as_bytes()),
            };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    rows.into_iter()
        .map(|(values, v)| match i64::try_from(v) {
            Ok(amount) => Ok(Row { values, amount }),
            Err(_) => Err(TotalTooLarge { group: values }),
        })
        .collect()
}

/// Which of `rows` count a provisional line: `provisional` is the report of
/// the provisional lines alone, grouped by the same dimensions (parts are
/// never negative, so a row counts a provisional line exactly when the
/// provisional report has a row with its values).
pub fn provisional_flags(rows: &[Row], provisional: &[Row]) -> Vec<bool> {
    if provisional.is_empty() {
        return vec![false; rows.len()];
    }
    let set: std::collections::HashSet<&[String]> = provisional.iter().map(|r| r.values.as_slice()).collect();
    rows.iter().map(|r| set.contains(r.values.as_slice())).collect()
}
