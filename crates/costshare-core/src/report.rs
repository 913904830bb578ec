//! Reports: allocation totals grouped by dimensions (SPEC section 7).

use crate::agreement::Agreement;
use crate::alloc::Allocation;
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

/// Group the allocation by `dims`, skipping zero groups, sorted by the dims in
/// the order given: parties in agreement order (UNALLOCATED last), fiscal
/// years and months ascending, categories and sites in byte order.
pub fn report(ag: &Agreement, lines: &[CostLine], alloc: &Allocation, dims: &[Dim]) -> Result<Vec<Row>, TotalTooLarge> {
    let cat_rank = category_ranks(ag);
    let want_site = dims.contains(&Dim::Site);
    let mut site_ids: HashMap<&str, i64, crate::fxhash::BuildFx> = HashMap::default();
    let mut sites: Vec<&str> = Vec::new();
    let mut line_site: Vec<i64> = Vec::new();
    if want_site {
        line_site.reserve(lines.len());
        for l in lines {
            let next = sites.len() as i64;
            let id = *site_ids.entry(l.site.as_str()).or_insert_with(|| {
                sites.push(l.site.as_str());
                next
            });
            line_site.push(id);
        }
    }
    let by_party = dims.contains(&Dim::Party);
    let w = alloc.width();
    let mut groups: HashMap<[i64; 5], i128, crate::fxhash::BuildFx> = HashMap::default();
    let key_of = |li: usize, party: i64| -> [i64; 5] {
        let l = &lines[li];
        let mut k = [0i64; 5];
        for (n, d) in dims.iter().enumerate() {
            k[n] = match d {
                Dim::Party => party,
                Dim::FiscalYear => ag.calendar.fy_of(l.date) as i64,
                Dim::Category => cat_rank[l.category],
                Dim::Site => line_site[li],
                Dim::Month => l.date.month_index() as i64,
            };
        }
        k
    };
    for li in 0..lines.len() {
        let row = &alloc.amounts[li * w..(li + 1) * w];
        if by_party {
            for (p, &amt) in row.iter().enumerate() {
                if amt != 0 {
                    *groups.entry(key_of(li, p as i64)).or_insert(0) += amt as i128;
                }
            }
        } else {
            let total: i128 = row.iter().map(|&a| a as i128).sum();
            if total != 0 {
                *groups.entry(key_of(li, 0)).or_insert(0) += total;
            }
        }
    }
    rows_from_groups(ag, dims, &cat_rank, &sites, groups)
}

/// Rank of each category (in agreement order) by byte order of its id, so
/// report keys are small integers that sort like the ids.
pub fn category_ranks(ag: &Agreement) -> Vec<i64> {
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
pub fn rows_from_groups<S: std::hash::BuildHasher>(
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
