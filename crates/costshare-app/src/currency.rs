//! The reporting currency (`--currency CODE --rate-policy …`) for `report`
//! and `compare`: every line's allocated parts converted by the core's one
//! rule ([`costshare_core::convert::Converter::convert_parts`]), then grouped
//! by the core's one grouping rule ([`costshare_core::report::report`]), so
//! converted rows add up to the converted total.
//!
//! The rates are `--rates` (files) or the rates recorded in the ledger.

use crate::error::{AppError, UsageError};
use crate::input::{Observer, Session, Source};
use crate::query::ReportResult;
use crate::run::{FileInputs, Run};
use costshare_core::Agreement;
use costshare_core::alloc::Allocation;
use costshare_core::calendar::Date;
use costshare_core::convert::{ConvertError, Converter, RatePolicy, RateUsed};
use costshare_core::costs::{CostLine, Rates};
use costshare_core::money::Currency;
use costshare_core::report::{self, Dim, KeyRule, Row, Sites};
use std::collections::{BTreeSet, HashMap};

/// What the user asked for: a currency code and a rate policy.
#[derive(Clone, Debug)]
pub struct CurrencyRequest {
    pub code: String,
    pub policy: RatePolicy,
}

impl CurrencyRequest {
    /// From `--currency` and `--rate-policy` (default `spot`): `None` when no
    /// currency is asked for; a policy without a currency is a usage error.
    pub fn from_options(code: Option<&str>, policy: Option<&str>) -> Result<Option<CurrencyRequest>, UsageError> {
        let policy = match policy {
            Some(p) => RatePolicy::parse(p).map_err(UsageError::RatePolicy)?,
            None => RatePolicy::Spot,
        };
        match code {
            Some(c) => Ok(Some(CurrencyRequest {
                code: c.to_string(),
                policy,
            })),
            None if policy != RatePolicy::Spot => Err(UsageError::PolicyWithoutCurrency),
            None => Ok(None),
        }
    }
}

/// One rate used, and which lines used it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateUse {
    pub rate: RateUsed,
    pub lines: usize,
    /// The first and last date of those lines.
    pub first: Date,
    pub last: Date,
}

/// How a result was converted into the reporting currency.
#[derive(Clone, Debug)]
pub struct Conversion {
    /// The agreement currency (converted from).
    pub from: Currency,
    /// The reporting currency.
    pub to: Currency,
    pub policy: RatePolicy,
    /// Every rate used, in order of basis (dates ascending).
    pub rates: Vec<RateUse>,
    /// Per result row (in row order): the indices into `rates` of the rates
    /// its lines used.
    pub row_rates: Vec<Vec<usize>>,
}

/// A run and the rates that came with it (`--rates`, or the ledger's).
pub fn run_with_rates(source: &Source, as_of: Date, observer: &mut dyn Observer) -> Result<(Run, Rates), AppError> {
    match source {
        Source::Ledger(l) => crate::run::run_ledger(l, as_of, observer),
        Source::Files {
            agreement,
            costs,
            rates,
        } => {
            let f = FileInputs::open(agreement, costs, rates.as_deref(), as_of, observer)?;
            let r = f.rates.clone();
            Ok((f.run()?, r))
        }
    }
}

/// Lines' conversion: the converter, and per part, per line, the index of
/// the rate it used in `rates`.
pub struct LineRates {
    pub conv: Converter,
    pub rates: Vec<RateUse>,
    pub per_part: Vec<Vec<usize>>,
}

fn convert_error(e: ConvertError) -> AppError {
    AppError::Convert(e)
}

impl LineRates {
    /// The rate of every line of every part of `r`.
    pub fn of(
        main: &Agreement,
        parts: &[&[CostLine]],
        rates: &Rates,
        req: &CurrencyRequest,
    ) -> Result<LineRates, AppError> {
        let conv = Converter::new(main, rates, &req.code, req.policy.clone()).map_err(convert_error)?;
        let mut index: HashMap<RateUsed, usize> = HashMap::new();
        let mut uses: Vec<RateUse> = Vec::new();
        let mut per_part = Vec::with_capacity(parts.len());
        for lines in parts {
            let mut v = Vec::with_capacity(lines.len());
            for l in lines.iter() {
                let used = conv.rate_for(l.date).map_err(convert_error)?;
                let k = *index.entry(used.clone()).or_insert_with(|| {
                    uses.push(RateUse {
                        rate: used,
                        lines: 0,
                        first: l.date,
                        last: l.date,
                    });
                    uses.len() - 1
                });
                let u = &mut uses[k];
                u.lines += 1;
                u.first = u.first.min(l.date);
                u.last = u.last.max(l.date);
                v.push(k);
            }
            per_part.push(v);
        }
        // rates in order of basis; renumber the lines' indices
        let mut order: Vec<usize> = (0..uses.len()).collect();
        order.sort_by(|&a, &b| uses[a].rate.cmp(&uses[b].rate));
        let mut new_of = vec![0; uses.len()];
        for (n, &o) in order.iter().enumerate() {
            new_of[o] = n;
        }
        for v in &mut per_part {
            for k in v.iter_mut() {
                *k = new_of[*k];
            }
        }
        let rates = order.into_iter().map(|o| uses[o].clone()).collect();
        Ok(LineRates { conv, rates, per_part })
    }

    /// `alloc` (of `lines`) with every line's parts converted.
    pub fn convert(&self, lines: &[CostLine], alloc: &Allocation) -> Result<Allocation, AppError> {
        let w = alloc.width();
        let mut out = alloc.clone();
        for (li, l) in lines.iter().enumerate() {
            let (parts, _) = self
                .conv
                .convert_parts(l.date, &alloc.amounts[li * w..(li + 1) * w])
                .map_err(convert_error)?;
            out.amounts[li * w..(li + 1) * w].copy_from_slice(&parts);
        }
        Ok(out)
    }

    /// For each row of `rows` (grouped by `dims` from the parts' converted
    /// allocations), the rates its lines used: a line's rate belongs to the
    /// rows its non-zero converted parts went to, found by the core's
    /// grouping rule.
    pub fn row_rates(
        &self,
        parts: &[(&Agreement, &[CostLine], Vec<&Allocation>)],
        dims: &[Dim],
        rows: &[Vec<String>],
    ) -> Result<Vec<Vec<usize>>, AppError> {
        let mut of_row: HashMap<Vec<String>, BTreeSet<usize>> = HashMap::new();
        for (pi, (ag, lines, allocs)) in parts.iter().enumerate() {
            let rule = KeyRule::new(ag, dims);
            let want_site = dims.contains(&Dim::Site);
            for r in 0..self.rates.len() {
                let mut sites = Sites::default();
                let mut groups: HashMap<[i64; 5], i128> = HashMap::new();
                for (li, l) in lines.iter().enumerate() {
                    if self.per_part[pi][li] != r {
                        continue;
                    }
                    let site = if want_site { sites.number(l.site.as_str()) } else { 0 };
                    let key = rule.key_without_party(l.date, l.category, site);
                    for a in allocs {
                        rule.add_parts(&mut groups, &key, a.row(li));
                    }
                }
                if groups.is_empty() {
                    continue;
                }
                let named = rule
                    .rows(sites.names(), groups)
                    .map_err(|e| AppError::TotalTooLarge { group: e.group })?;
                for row in named {
                    of_row.entry(row.values).or_default().insert(r);
                }
            }
        }
        Ok(rows
            .iter()
            .map(|v| of_row.get(v).map(|s| s.iter().copied().collect()).unwrap_or_default())
            .collect())
    }
}

/// A report in a reporting currency: the rows converted, and how.
pub struct ConvertedReport {
    /// Rows and provenance as `report` gives them, amounts in `conversion.to`.
    pub report: ReportResult,
    pub conversion: Conversion,
}

/// `report --currency CODE`: the general path (files) or a replay (ledger),
/// every line's parts converted, then grouped.
pub fn report(
    source: &Source,
    dims: &[Dim],
    as_of: Date,
    req: &CurrencyRequest,
    filter: &crate::filter::DateFilter,
    s: &mut Session<'_>,
) -> Result<ConvertedReport, AppError> {
    let (r, rates) = run_with_rates(source, as_of, s.observer)?;
    // allocated over the whole history, then restricted (the filter's rule)
    let range = filter.resolve(&r.main().la.agreement)?;
    let r = r.restrict(&range);
    let main = r.main().la.agreement.clone();
    let lines: Vec<&[CostLine]> = r.parts.iter().map(|p| p.costs.lines.as_slice()).collect();
    let lr = LineRates::of(&main, &lines, &rates, req)?;
    let mut per = Vec::with_capacity(r.parts.len());
    let mut converted = Vec::with_capacity(r.parts.len());
    for part in &r.parts {
        let a = lr.convert(&part.costs.lines, &part.alloc)?;
        per.push(
            report::report(&part.la.agreement, &part.costs.lines, &a, dims)
                .map_err(|e| AppError::TotalTooLarge { group: e.group })?,
        );
        converted.push(a);
    }
    let rows: Vec<Row> = report::merge(&main, dims, per).map_err(|e| AppError::TotalTooLarge { group: e.group })?;
    let parts: Vec<(&Agreement, &[CostLine], Vec<&Allocation>)> = r
        .parts
        .iter()
        .zip(&converted)
        .map(|(p, a)| (&p.la.agreement, p.costs.lines.as_slice(), vec![a]))
        .collect();
    let values: Vec<Vec<String>> = rows.iter().map(|r| r.values.clone()).collect();
    let row_rates = lr.row_rates(&parts, dims, &values)?;
    let conversion = Conversion {
        from: lr.conv.from,
        to: lr.conv.to,
        policy: lr.conv.policy.clone(),
        rates: lr.rates.clone(),
        row_rates,
    };
    Ok(ConvertedReport {
        report: ReportResult {
            agreement: main,
            dims: dims.to_vec(),
            rows,
            provenance: r.provenance(),
            path: crate::query::PathTaken::General("a reporting currency converts line by line"),
            // the converted table has its own renderer, without marks
            provisional_rows: Vec::new(),
            pivot: false,
            range,
        },
        conversion,
    })
}
