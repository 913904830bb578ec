//! The `report` result in every format: provisional rows marked (`*` in a
//! table, `"provisional"` in JSON), the table's share within the row's first
//! dimension's group, categories in the agreement's order in tables, and
//! `--pivot party` (parties as columns). The unpivoted CSV is [`super::rows`]'s,
//! byte for byte (SPEC section 7).

use super::text::{Align, Table, csv_record};
use super::{Format, footer, percent_of, pretty, provenance_json, rows};
use crate::query::ReportResult;
use costshare_core::agreement::Agreement;
use costshare_core::calendar::FiscalYear;
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::report::{Dim, Row};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::HashMap;

const UNALLOCATED: &str = "UNALLOCATED";

/// A report in `format`.
pub fn report(r: &ReportResult, format: Format) -> String {
    if r.pivot && r.dims.contains(&Dim::Party) {
        return pivot(r, format);
    }
    match format {
        Format::Csv => rows(&r.agreement, &r.provenance, &r.rows, &r.dims, Format::Csv),
        Format::Json => json_rows(r),
        Format::Table => table(r),
    }
}

fn is_provisional(r: &ReportResult, i: usize) -> bool {
    r.provisional_rows.get(i).copied().unwrap_or(false)
}

/// Compare two values of dimension `d` in the order tables show them:
/// parties and categories in the agreement's order (UNALLOCATED last),
/// fiscal years by number, sites and months in text order.
fn cmp_value(ag: &Agreement, d: Dim, x: &str, y: &str) -> Ordering {
    let by_index = |ix: Option<usize>, iy: Option<usize>| {
        ix.unwrap_or(usize::MAX)
            .cmp(&iy.unwrap_or(usize::MAX))
            .then_with(|| x.as_bytes().cmp(y.as_bytes()))
    };
    match d {
        Dim::Party => by_index(
            ag.parties.iter().position(|p| p.id == x),
            ag.parties.iter().position(|p| p.id == y),
        ),
        Dim::Category => by_index(
            ag.categories.iter().position(|c| c.id == x),
            ag.categories.iter().position(|c| c.id == y),
        ),
        Dim::FiscalYear => match (FiscalYear::parse(x), FiscalYear::parse(y)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => x.as_bytes().cmp(y.as_bytes()),
        },
        Dim::Site | Dim::Month => x.as_bytes().cmp(y.as_bytes()),
    }
}

/// Indices of `values` in table order (a stable sort by every dimension).
fn table_order(ag: &Agreement, dims: &[Dim], values: &[&[String]]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        for (n, d) in dims.iter().enumerate() {
            let o = cmp_value(ag, *d, &values[a][n], &values[b][n]);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    order
}

/// The header of the share column: the share of the whole with one
/// dimension, else of the row's first dimension's group.
fn share_header(dims: &[Dim]) -> String {
    match dims {
        [] | [_] => "share".into(),
        [Dim::FiscalYear, ..] => "share of FY".into(),
        [d, ..] => format!("share of {}", d.name()),
    }
}

/// ` dated from X to Y` when a date filter is set.
fn dated(r: &ReportResult) -> String {
    let mut s = String::new();
    if let Some(f) = r.range.from {
        s.push_str(&format!(" from {f}"));
    }
    if let Some(t) = r.range.to {
        s.push_str(&format!(" to {t}"));
    }
    if s.is_empty() { s } else { format!(" dated{s}") }
}

/// The dates of a filter, for JSON (`null` for an open end).
fn range_json(v: &mut Value, r: &ReportResult) {
    if !r.range.is_all() {
        v["from"] = json!(r.range.from.map(|d| d.to_string()));
        v["to"] = json!(r.range.to.map(|d| d.to_string()));
    }
}

fn title(r: &ReportResult, dims: &[Dim]) -> String {
    let a = &r.agreement;
    format!(
        "{} — {} lines{}, in {}, by {}, as of {}\n\n",
        a.title,
        r.provenance.lines,
        dated(r),
        a.currency.code(),
        dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
        r.provenance.as_of
    )
}

fn tail(r: &ReportResult, any_provisional: bool) -> String {
    let mut out = String::new();
    if any_provisional {
        out.push_str("* provisional: counts a line in a pro-rata period not ended by the as-of date\n");
    }
    out.push_str(&footer(&r.provenance));
    out
}

/// The first cell of a row, `*` added when the row is provisional.
fn mark(mut cell: String, provisional: bool) -> String {
    if provisional {
        cell.push_str(" *");
    }
    cell
}

fn table(r: &ReportResult) -> String {
    let (a, dims) = (&r.agreement, &r.dims);
    let dec = a.currency.decimals();
    let total: i128 = r.rows.iter().map(|x| x.amount as i128).sum();
    // the share's whole: the row's first dimension's group (the total with one dimension)
    let mut group: HashMap<&str, i128> = HashMap::new();
    for row in &r.rows {
        *group.entry(row.values[0].as_str()).or_insert(0) += row.amount as i128;
    }
    let share = share_header(dims);
    let mut hdr: Vec<&str> = dims.iter().map(|d| d.name()).collect();
    hdr.push("amount");
    hdr.push(&share);
    let mut align = vec![Align::Left; dims.len()];
    align.push(Align::Right);
    align.push(Align::Right);
    let mut t = Table::new(&hdr, &align);
    let values: Vec<&[String]> = r.rows.iter().map(|x| x.values.as_slice()).collect();
    let site = dims.iter().position(|d| *d == Dim::Site);
    let mut any = false;
    for i in table_order(a, dims, &values) {
        let row = &r.rows[i];
        let mut cells = row.values.clone();
        if let Some(s) = site
            && cells[s].is_empty()
        {
            cells[s] = "(no site)".into();
        }
        let p = is_provisional(r, i);
        any |= p;
        cells[0] = mark(std::mem::take(&mut cells[0]), p);
        cells.push(format_grouped(row.amount as i128, dec));
        let whole = if dims.len() > 1 {
            group.get(row.values[0].as_str()).copied().unwrap_or(0)
        } else {
            total
        };
        cells.push(percent_of(row.amount as i128, whole));
        t.push(cells);
    }
    t.rule();
    let mut cells = vec![String::new(); dims.len()];
    cells[0] = "total".into();
    cells.push(format_grouped(total, dec));
    cells.push(if total == 0 || dims.len() > 1 {
        String::new()
    } else {
        "100.0%".into()
    });
    t.push(cells);
    let mut out = title(r, dims);
    out.push_str(&t.render());
    out.push('\n');
    out.push_str(&tail(r, any));
    out
}

fn json_rows(r: &ReportResult) -> String {
    let (a, p, dims) = (&r.agreement, &r.provenance, &r.dims);
    let dec = a.currency.decimals();
    let total: i128 = r.rows.iter().map(|x| x.amount as i128).sum();
    let items: Vec<Value> = r
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut m = serde_json::Map::new();
            for (d, v) in dims.iter().zip(&row.values) {
                m.insert(d.name().to_string(), json!(v));
            }
            m.insert("amount".into(), json!(format_minor(row.amount as i128, dec)));
            m.insert("provisional".into(), json!(is_provisional(r, i)));
            Value::Object(m)
        })
        .collect();
    let mut v = provenance_json(p);
    v["currency"] = json!(a.currency.code());
    v["as_of"] = json!(p.as_of.to_string());
    v["by"] = json!(dims.iter().map(|d| d.name()).collect::<Vec<_>>());
    v["rows"] = json!(items);
    v["total"] = json!(format_minor(total, dec));
    v["provisional_lines"] = json!(p.provisional);
    range_json(&mut v, r);
    pretty(&v)
}

/// Report rows with the parties as columns.
pub struct Pivoted {
    /// The dimensions other than the party, in order.
    pub dims: Vec<Dim>,
    /// Column names: every party of the agreement, then UNALLOCATED when
    /// some row has it.
    pub columns: Vec<String>,
    pub rows: Vec<PivotRow>,
}

/// One pivoted row: the other dimensions' values, one amount per column.
pub struct PivotRow {
    pub values: Vec<String>,
    pub amounts: Vec<i64>,
    /// The sum of `amounts` (exact: the rows' amounts summed in `i128`).
    pub total: i128,
    pub provisional: bool,
}

/// Pivot report rows by party: rows with equal other values merge into one,
/// in the order they first appear (the party is the last dimension, so the
/// rows keep the report's order).
pub fn pivot_rows(ag: &Agreement, dims: &[Dim], rows: &[Row], provisional: &[bool]) -> Pivoted {
    let pp = dims.iter().position(|d| *d == Dim::Party);
    let rest: Vec<Dim> = dims.iter().copied().filter(|d| *d != Dim::Party).collect();
    let mut columns: Vec<String> = ag.parties.iter().map(|p| p.id.clone()).collect();
    let has_unallocated = pp.is_some_and(|pp| rows.iter().any(|r| r.values[pp] == UNALLOCATED));
    if has_unallocated {
        columns.push(UNALLOCATED.into());
    }
    let mut out: Vec<PivotRow> = Vec::new();
    let mut at: HashMap<Vec<String>, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let values: Vec<String> = row
            .values
            .iter()
            .enumerate()
            .filter(|(n, _)| Some(*n) != pp)
            .map(|(_, v)| v.clone())
            .collect();
        let col = match pp {
            Some(pp) => columns.iter().position(|c| *c == row.values[pp]),
            None => None,
        };
        let k = *at.entry(values.clone()).or_insert_with(|| {
            out.push(PivotRow {
                values,
                amounts: vec![0; columns.len()],
                total: 0,
                provisional: false,
            });
            out.len() - 1
        });
        let pr = &mut out[k];
        if let Some(c) = col {
            // one report row per (other values, party): never summed twice
            pr.amounts[c] = row.amount;
        }
        pr.total += row.amount as i128;
        pr.provisional |= provisional.get(i).copied().unwrap_or(false);
    }
    Pivoted {
        dims: rest,
        columns,
        rows: out,
    }
}

fn pivot(r: &ReportResult, format: Format) -> String {
    let a = &r.agreement;
    let dec = a.currency.decimals();
    let pv = pivot_rows(a, &r.dims, &r.rows, &r.provisional_rows);
    let mut col_totals = vec![0i128; pv.columns.len()];
    for row in &pv.rows {
        for (t, v) in col_totals.iter_mut().zip(&row.amounts) {
            *t += *v as i128;
        }
    }
    let total: i128 = col_totals.iter().sum();
    match format {
        Format::Csv => {
            let mut out = String::new();
            let mut hdr: Vec<&str> = pv.dims.iter().map(|d| d.name()).collect();
            hdr.extend(pv.columns.iter().map(String::as_str));
            hdr.push("total");
            csv_record(&mut out, &hdr);
            for row in &pv.rows {
                let mut f: Vec<String> = row.values.clone();
                f.extend(row.amounts.iter().map(|v| format_minor(*v as i128, dec)));
                f.push(format_minor(row.total, dec));
                csv_record(&mut out, &f);
            }
            out
        }
        Format::Json => {
            let amounts = |xs: &mut dyn Iterator<Item = i128>| -> Value {
                Value::Object(
                    pv.columns
                        .iter()
                        .zip(xs)
                        .map(|(c, v)| (c.clone(), json!(format_minor(v, dec))))
                        .collect(),
                )
            };
            let items: Vec<Value> = pv
                .rows
                .iter()
                .map(|row| {
                    let mut m = serde_json::Map::new();
                    for (d, v) in pv.dims.iter().zip(&row.values) {
                        m.insert(d.name().to_string(), json!(v));
                    }
                    m.insert("amounts".into(), amounts(&mut row.amounts.iter().map(|v| *v as i128)));
                    m.insert("total".into(), json!(format_minor(row.total, dec)));
                    m.insert("provisional".into(), json!(row.provisional));
                    Value::Object(m)
                })
                .collect();
            let mut v = provenance_json(&r.provenance);
            v["currency"] = json!(a.currency.code());
            v["as_of"] = json!(r.provenance.as_of.to_string());
            v["by"] = json!(pv.dims.iter().map(|d| d.name()).collect::<Vec<_>>());
            v["pivot"] = json!("party");
            v["columns"] = json!(pv.columns);
            v["rows"] = json!(items);
            v["totals"] = amounts(&mut col_totals.iter().copied());
            v["total"] = json!(format_minor(total, dec));
            v["provisional_lines"] = json!(r.provenance.provisional);
            range_json(&mut v, r);
            pretty(&v)
        }
        Format::Table => {
            // with no other dimension, one row of all lines
            let label = pv.dims.is_empty();
            let mut hdr: Vec<&str> = if label {
                vec![""]
            } else {
                pv.dims.iter().map(|d| d.name()).collect()
            };
            let lead = hdr.len();
            hdr.extend(pv.columns.iter().map(String::as_str));
            hdr.push("total");
            let mut align = vec![Align::Left; lead];
            align.extend(std::iter::repeat_n(Align::Right, pv.columns.len() + 1));
            let mut t = Table::new(&hdr, &align);
            let values: Vec<&[String]> = pv.rows.iter().map(|x| x.values.as_slice()).collect();
            let site = pv.dims.iter().position(|d| *d == Dim::Site);
            let mut any = false;
            for i in table_order(a, &pv.dims, &values) {
                let row = &pv.rows[i];
                let mut cells = if label {
                    vec!["all lines".to_string()]
                } else {
                    row.values.clone()
                };
                if let Some(s) = site
                    && cells[s].is_empty()
                {
                    cells[s] = "(no site)".into();
                }
                any |= row.provisional;
                cells[0] = mark(std::mem::take(&mut cells[0]), row.provisional);
                cells.extend(row.amounts.iter().map(|v| format_grouped(*v as i128, dec)));
                cells.push(format_grouped(row.total, dec));
                t.push(cells);
            }
            t.rule();
            let mut cells = vec![String::new(); lead];
            cells[0] = "total".into();
            cells.extend(col_totals.iter().map(|v| format_grouped(*v, dec)));
            cells.push(format_grouped(total, dec));
            t.push(cells);
            let mut out = title(r, &r.dims).replacen(", as of", " (as columns), as of", 1);
            out.push_str(&t.render());
            out.push('\n');
            out.push_str(&tail(r, any));
            out
        }
    }
}
