//! What-if: an agreement edited in memory, every line re-allocated under it
//! on the fly, nothing saved.
//!
//! `POST /api/v1/whatif` takes `{"agreement_toml": "..."}` (a whole
//! agreement), or `{"edits": [...]}` applied to the agreement in force (the
//! ledger's latest version), or both (the edits applied to the text given).
//! An edit names a layer by category id and 1-based position in
//! `[[categories.X.layers]]` and sets one of `cap`, `cap_units`, `portion`
//! or `share` (with `party`), for the whole term or, with `fiscal_year`, for
//! one year. The text is edited with `toml_edit`, so comments and layout
//! stay; the result is checked by the same loader as every agreement
//! (errors: 422 with its diagnostics), then every line of the ledger is
//! allocated under it from the run kept in memory for the journal head
//! ([`crate::api::Shared::run_at`]) with the core's
//! [`costshare_core::compare::allocate_under`], the function `compare`
//! uses. No journal replay, no write.
//!
//! On a ledger with several agreement versions (after `amend`), the
//! what-if agreement takes every line of every version (caps running over
//! all of them), while `current` is each line under its own version; a
//! warning says so.

use crate::api::{Shared, Who, json_answer, json_body};
use crate::auth;
use crate::cache::Answer;
use crate::error::ApiError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use costshare_app::ceilings::CeilingsResult;
use costshare_app::input::load_agreement_bytes;
use costshare_app::run::Run;
use costshare_app::{AppError, Format, render};
use costshare_core::Agreement;
use costshare_core::alloc::Lines;
use costshare_core::calendar::{Date, FiscalYear};
use costshare_core::compare::{Group, ReallocError, Reallocation, Reason, allocate_under};
use costshare_core::costs::CostLine;
use costshare_core::report::{self, Dim, Row};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use toml_edit::{DocumentMut, InlineTable, Item, TableLike, Value as TValue};

/// What the what-if agreement is called in messages and diagnostics.
pub const NAME: &str = "what-if.toml";

/// The what-if routes (under `/api/v1`).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/whatif", post(whatif))
}

/// Which figure of a layer an edit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Cap,
    CapUnits,
    Portion,
    Share,
}

impl Field {
    fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "cap" => Field::Cap,
            "cap_units" => Field::CapUnits,
            "portion" => Field::Portion,
            "share" => Field::Share,
            _ => return None,
        })
    }
    fn key(self) -> &'static str {
        match self {
            Field::Cap => "cap",
            Field::CapUnits => "cap_units",
            Field::Portion => "portion",
            Field::Share => "share",
        }
    }
}

/// One edit of the agreement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub category: String,
    /// 1-based position in `[[categories.X.layers]]`.
    pub layer: usize,
    pub field: Field,
    /// For `share`: whose share.
    pub party: Option<String>,
    /// Only this fiscal year (a label such as `FY2023`).
    pub fiscal_year: Option<String>,
    /// The new value as the agreement writes it: `"15100000000"`, `"61%"`.
    pub value: String,
}

/// The edits of a request body.
pub fn parse_edits(v: &Value) -> Result<Vec<Edit>, ApiError> {
    let list = v
        .as_array()
        .ok_or_else(|| ApiError::bad_request("`edits` must be a list of edits"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let o = e
            .as_object()
            .ok_or_else(|| ApiError::bad_request(format!("edits[{i}] must be an object")))?;
        for k in o.keys() {
            if !["category", "layer", "field", "party", "fiscal_year", "value"].contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "edits[{i}]: unknown field `{k}` (fields: category, layer, field, party, fiscal_year, value)"
                )));
            }
        }
        let s = |k: &str| -> Result<Option<String>, ApiError> {
            crate::api::field(o, k)
                .map(|x| x.map(str::to_string))
                .map_err(|e| ApiError::bad_request(format!("edits[{i}]: {}", e.message)))
        };
        let need = |k: &str| -> Result<String, ApiError> {
            s(k)?.ok_or_else(|| ApiError::bad_request(format!("edits[{i}]: `{k}` is required")))
        };
        let layer = match o.get("layer") {
            Some(Value::Number(n)) => n.as_u64().filter(|&n| n >= 1).map(|n| n as usize),
            Some(Value::String(t)) => t.parse::<usize>().ok().filter(|&n| n >= 1),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "edits[{i}]: `layer` is required: the layer's 1-based position in its category"
            ))
        })?;
        let field_text = need("field")?;
        let field = Field::parse(&field_text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "edits[{i}]: `field={field_text}`: use cap, cap_units, portion or share"
            ))
        })?;
        let party = s("party")?;
        if field == Field::Share && party.is_none() {
            return Err(ApiError::bad_request(format!(
                "edits[{i}]: a `share` edit needs `party`"
            )));
        }
        if field != Field::Share && party.is_some() {
            return Err(ApiError::bad_request(format!(
                "edits[{i}]: `party` goes with a `share` edit only"
            )));
        }
        let value = need("value")?;
        if value.len() > 64 || value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "edits[{i}]: `value`: at most 64 characters, no control characters"
            )));
        }
        out.push(Edit {
            category: need("category")?,
            layer,
            field,
            party,
            fiscal_year: s("fiscal_year")?,
            value,
        });
    }
    Ok(out)
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "edit", message)
}

/// The fiscal-year labels of an agreement's term, in order.
pub fn fiscal_years(a: &Agreement) -> Vec<String> {
    (0..a.fy_count)
        .map(|k| FiscalYear(a.first_fy + k as i32).to_string())
        .collect()
}

/// Apply `edits` to the agreement text `toml` (whose term has the fiscal
/// years `fys`), keeping its comments and layout. Problems of the edits
/// themselves (no such category or layer, a fiscal year outside the term)
/// are 422; whether the result is a valid agreement is the loader's to say.
pub fn apply_edits(toml: &str, edits: &[Edit], fys: &[String]) -> Result<String, ApiError> {
    let mut doc: DocumentMut = toml
        .parse()
        .map_err(|e| unprocessable(format!("the agreement is not TOML: {e}")))?;
    for e in edits {
        if let Some(fy) = &e.fiscal_year
            && !fys.contains(fy)
        {
            return Err(unprocessable(format!(
                "fiscal year `{fy}` is not in the agreement's term ({})",
                fys.join(", ")
            )));
        }
        let layer = layer_mut(&mut doc, &e.category, e.layer)?;
        let what = format!("layer {} of `{}`", e.layer, e.category);
        match e.field {
            Field::Share => {
                let party = e.party.as_deref().unwrap_or_default();
                edit_share(layer, party, e.fiscal_year.as_deref(), &e.value, fys, &what)?
            }
            f => edit_figure(layer, f.key(), e.fiscal_year.as_deref(), &e.value, fys, &what, None)?,
        }
    }
    Ok(doc.to_string())
}

/// The layer table of `[[categories.CAT.layers]]` number `n` (1-based).
fn layer_mut<'a>(doc: &'a mut DocumentMut, cat: &str, n: usize) -> Result<&'a mut dyn TableLike, ApiError> {
    let c = doc
        .get_mut("categories")
        .and_then(Item::as_table_like_mut)
        .and_then(|t| t.get_mut(cat))
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| unprocessable(format!("the agreement has no category `{cat}`")))?;
    let none = |count: usize| unprocessable(format!("category `{cat}` has {count} layer(s), not a layer {n}"));
    let Some(k) = n.checked_sub(1) else {
        return Err(unprocessable("layers are numbered from 1".to_string()));
    };
    match c.get_mut("layers") {
        Some(Item::ArrayOfTables(a)) => {
            let count = a.len();
            a.get_mut(k).map(|t| t as &mut dyn TableLike).ok_or_else(|| none(count))
        }
        Some(Item::Value(TValue::Array(a))) => {
            let count = a.len();
            a.get_mut(k)
                .and_then(TValue::as_inline_table_mut)
                .map(|t| t as &mut dyn TableLike)
                .ok_or_else(|| none(count))
        }
        _ => Err(none(0)),
    }
}

/// Set `key` of a table to the string `v`, keeping the old value's decor
/// (spacing, trailing comment).
fn set_str(t: &mut dyn TableLike, key: &str, v: &str) {
    set_value(t, key, TValue::from(v));
}

fn set_value(t: &mut dyn TableLike, key: &str, mut v: TValue) {
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            *v.decor_mut() = old.decor().clone();
            *old = v;
        }
        _ => {
            // a new key is indented as the table's first key is
            let indent: Option<String> = t.iter().next().and_then(|(k, _)| {
                let prefix = t.key(k)?.leaf_decor().prefix()?.as_str()?;
                let last = prefix.rsplit('\n').next().unwrap_or(prefix);
                last.chars().all(|c| c == ' ' || c == '\t').then(|| last.to_string())
            });
            t.insert(key, Item::Value(v));
            if let (Some(indent), Some(mut k)) = (indent, t.key_mut(key)) {
                k.leaf_decor_mut().set_prefix(indent);
            }
        }
    }
}

/// A schedule table (keys are fiscal-year labels or `default`).
fn is_schedule(t: &dyn TableLike) -> bool {
    !t.is_empty() && t.iter().all(|(k, _)| k == "default" || FiscalYear::is_label_like(k))
}

/// Set a figure that may be a plain value or a schedule by fiscal year:
/// without a fiscal year, the whole term's value; with one, that year's
/// entry of the schedule (a plain value becomes a schedule with every year
/// of the term at the old value but that one). `absent` is the old value
/// when the key is missing (`None`: a missing key cannot be set for one
/// year only).
fn edit_figure(
    t: &mut dyn TableLike,
    key: &str,
    fy: Option<&str>,
    v: &str,
    fys: &[String],
    what: &str,
    absent: Option<&str>,
) -> Result<(), ApiError> {
    let Some(fy) = fy else {
        set_str(t, key, v);
        return Ok(());
    };
    if let Some(sched) = t.get_mut(key).and_then(Item::as_table_like_mut) {
        set_str(sched, fy, v);
        return Ok(());
    }
    let old: TValue = match t.get(key) {
        Some(Item::Value(old)) => {
            let mut o = old.clone();
            o.decor_mut().clear();
            o
        }
        None => match absent {
            Some(a) => TValue::from(a),
            None => {
                return Err(unprocessable(format!(
                    "{what} has no `{key}`: set it for the whole term first (no fiscal_year)"
                )));
            }
        },
        Some(_) => {
            return Err(unprocessable(format!(
                "`{key}` of {what} is neither a value nor a schedule"
            )));
        }
    };
    let mut sched = InlineTable::new();
    for y in fys {
        let val = if y == fy { TValue::from(v) } else { old.clone() };
        sched.insert(y, val);
    }
    sched.fmt();
    set_value(t, key, TValue::InlineTable(sched));
    Ok(())
}

/// Set a party's share in a layer's `split` (a table of parties, or a
/// schedule of such tables by fiscal year).
fn edit_share(
    layer: &mut dyn TableLike,
    party: &str,
    fy: Option<&str>,
    v: &str,
    fys: &[String],
    what: &str,
) -> Result<(), ApiError> {
    let split = layer
        .get_mut("split")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| unprocessable(format!("{what} has no `split` table")))?;
    if split.contains_key("key") {
        return Err(unprocessable(format!(
            "the split of {what} is computed from a key: edit the key's weights in the agreement text"
        )));
    }
    if !is_schedule(split) {
        return edit_figure(split, party, fy, v, fys, what, Some("0%"));
    }
    // a schedule of splits: one year's table, or every year's
    let years: Vec<String> = match fy {
        Some(fy) => {
            if !split.contains_key(fy) {
                let Some(default) = split.get("default").cloned() else {
                    return Err(unprocessable(format!(
                        "the split of {what} has no entry for {fy} and no `default`"
                    )));
                };
                split.insert(fy, default);
            }
            vec![fy.to_string()]
        }
        None => split.iter().map(|(k, _)| k.to_string()).collect(),
    };
    for y in years {
        if let Some(t) = split.get_mut(&y).and_then(Item::as_table_like_mut) {
            set_str(t, party, v);
        }
    }
    Ok(())
}

/// What a request asks: a whole agreement, edits, or both.
struct Request {
    toml: Option<String>,
    edits: Vec<Edit>,
}

fn parse_request(o: &Map<String, Value>) -> Result<Request, ApiError> {
    for k in o.keys() {
        if !["agreement_toml", "edits"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown field `{k}` (fields: agreement_toml, edits)"
            )));
        }
    }
    let toml = crate::api::field(o, "agreement_toml")?.map(str::to_string);
    let edits = match o.get("edits") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_edits(v)?,
    };
    if toml.is_none() && edits.is_empty() {
        return Err(ApiError::bad_request(
            "give `agreement_toml` (a whole agreement) or `edits` (changes to the agreement in force)",
        ));
    }
    Ok(Request { toml, edits })
}

async fn whatif(
    State(s): State<Arc<Shared>>,
    axum::Extension(who): axum::Extension<Who>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let out = async {
        auth::unscoped(&who.principal, "a what-if")?;
        let o = json_body(&headers, &body)?;
        let req = parse_request(&o)?;
        let as_of = costshare_app::input::as_of(q.iter().rev().find(|(k, _)| k == "as_of").map(|(_, v)| v.as_str()))
            .map_err(AppError::from)?;
        crate::api::blocking(move || compute(&s, &who, req, as_of, started)).await
    }
    .await;
    match out {
        Ok(a) => {
            let mut r = (StatusCode::OK, a.body.as_ref().clone()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
            r
        }
        Err(e) => e.into_response(),
    }
}

/// The run of every line at `as_of` (kept per journal head, as
/// [`Shared::run_at`] keeps it) and, when `need_base`, the text of the
/// agreement in force (the ledger's latest version), kept per head too. On
/// a cold cache both come from one read of the ledger's state.
fn run_and_base(s: &Shared, who: &Who, as_of: Date, need_base: bool) -> Result<(Arc<Run>, Option<String>), ApiError> {
    const KEY: &str = "\u{0}whatif-base";
    let run_key = as_of.to_string();
    let cached = s
        .cache
        .get(&who.head, KEY)
        .map(|a| String::from_utf8_lossy(&a.body).into_owned());
    if !need_base || cached.is_some() {
        return Ok((s.run_at(&who.head, as_of)?, cached));
    }
    let (_, st) = costshare_app::run::open_state(&s.cfg.ledger)?;
    let text = st.latest().content.clone();
    let fresh = st.head == who.head;
    if fresh {
        s.cache.put(
            &who.head,
            KEY.to_string(),
            Answer {
                content_type: "application/toml; charset=utf-8",
                body: Arc::new(text.clone().into_bytes()),
                download: None,
            },
        );
    }
    let run = match s.cache.run(&who.head, &run_key) {
        Some(r) => r,
        None => {
            let r = Arc::new(costshare_app::run::run_state(&st, as_of)?);
            if fresh {
                s.cache.put_run(&who.head, &run_key, r.clone());
            }
            r
        }
    };
    Ok((run, Some(text)))
}

/// The run's rows by party and fiscal year (what `report` gives), kept per
/// journal head and as-of date: on a million lines they take a tenth of a
/// second, and every keystroke of a what-if needs them.
fn current_rows(s: &Shared, who: &Who, run: &Run, dims: &[Dim]) -> Result<Vec<Row>, ApiError> {
    let key = format!("\u{0}whatif-current\u{1}{}", run.as_of);
    let decode = |a: &Answer| -> Option<Vec<Row>> {
        let v: Value = serde_json::from_slice(&a.body).ok()?;
        v.as_array()?
            .iter()
            .map(|r| {
                Some(Row {
                    values: r[0]
                        .as_array()?
                        .iter()
                        .map(|x| x.as_str().map(str::to_string))
                        .collect::<Option<_>>()?,
                    amount: r[1].as_i64()?,
                })
            })
            .collect()
    };
    if let Some(rows) = s.cache.get(&who.head, &key).as_ref().and_then(decode) {
        return Ok(rows);
    }
    let rows = run.report_rows(dims)?;
    if run.journal.as_ref().is_some_and(|j| j.head == who.head) {
        let v: Vec<Value> = rows.iter().map(|r| json!([r.values, r.amount])).collect();
        s.cache.put(
            &who.head,
            key,
            Answer {
                content_type: "application/json",
                body: Arc::new(serde_json::to_vec(&v).unwrap_or_default()),
                download: None,
            },
        );
    }
    Ok(rows)
}

/// Every line of `run` allocated under `wa`: [`allocate_under`], the
/// function `compare` uses, or, when only some categories' layers differ
/// from the agreement in force (see [`only_changed`]), those categories'
/// lines alone, the same figures at a fraction of the work.
pub fn reallocate(wa: &Agreement, run: &Run, as_of: Date) -> Result<Reallocation, ApiError> {
    if let Some(r) = only_changed(wa, run, as_of) {
        return Ok(r);
    }
    let groups: Vec<Group<'_>> = run
        .parts
        .iter()
        .map(|p| Group {
            agreement: &p.la.agreement,
            lines: &p.costs.lines,
        })
        .collect();
    allocate_under(wa, &groups, as_of).map_err(|e| {
        let path = NAME.to_string();
        ApiError::from(match e {
            ReallocError::Currency { base, other } => AppError::AgainstCurrency { path, base, other },
            ReallocError::Parties { base, other } => AppError::AgainstParties { path, base, other },
        })
    })
}

/// Some lines of a slice, by index, as the allocator reads lines.
struct Subset<'a> {
    lines: &'a [CostLine],
    idx: &'a [u32],
}

impl Lines for Subset<'_> {
    fn count(&self) -> usize {
        self.idx.len()
    }
    fn date(&self, i: usize) -> Date {
        self.lines[self.idx[i] as usize].date
    }
    fn category(&self, i: usize) -> usize {
        self.lines[self.idx[i] as usize].category
    }
    fn amount(&self, i: usize) -> i64 {
        self.lines[self.idx[i] as usize].amount
    }
    fn quantity(&self, i: usize) -> Option<&costshare_core::num::Q> {
        self.lines[self.idx[i] as usize].quantity.as_ref()
    }
    fn id(&self, i: usize) -> &[u8] {
        self.lines[self.idx[i] as usize].id.as_bytes()
    }
}

/// The allocator takes each category on its own (what
/// `alloc::allocate_lines_par` relies on): a category whose layers are the
/// same under `wa` as under the agreement in force allocates its lines as
/// it does now. So when the run is one agreement version with nothing
/// carried in, and `wa` keeps its term, calendar, currency, parties and
/// categories (ids, order, whether they count units), only the lines of
/// categories whose layers differ are allocated again, and the rest keep
/// the run's figures. `None` when that does not hold (then every line is
/// allocated under `wa`). Layers are compared by their full `Debug` form:
/// equal forms are equal layers; unequal forms of equal layers only cost a
/// needless re-allocation.
fn only_changed(wa: &Agreement, run: &Run, as_of: Date) -> Option<Reallocation> {
    let [part] = run.parts.as_slice() else {
        return None;
    };
    let main = &part.la.agreement;
    let same_frame = part.carry.is_empty()
        && main.start == wa.start
        && main.end == wa.end
        && main.calendar == wa.calendar
        && main.first_fy == wa.first_fy
        && main.fy_count == wa.fy_count
        && main.currency.same_code(&wa.currency)
        && main.currency.decimals() == wa.currency.decimals()
        && main.parties.len() == wa.parties.len()
        && main.parties.iter().zip(&wa.parties).all(|(a, b)| a.id == b.id)
        && main.categories.len() == wa.categories.len()
        && main
            .categories
            .iter()
            .zip(&wa.categories)
            .all(|(a, b)| a.id == b.id && a.unit.is_some() == b.unit.is_some());
    if !same_frame {
        return None;
    }
    let changed: Vec<bool> = main
        .categories
        .iter()
        .zip(&wa.categories)
        .map(|(a, b)| format!("{:?}", a.layers) != format!("{:?}", b.layers))
        .collect();
    let lines = &part.costs.lines;
    let idx: Vec<u32> = (0..lines.len())
        .filter(|&i| changed.get(lines[i].category).copied().unwrap_or(true))
        .map(|i| i as u32)
        .collect();
    let sub = costshare_core::alloc::allocate_lines(wa, &Subset { lines, idx: &idx }, as_of);
    let mut a = part.alloc.clone();
    let w = a.width();
    for (k, &i) in idx.iter().enumerate() {
        let i = i as usize;
        a.amounts[i * w..(i + 1) * w].copy_from_slice(sub.row(k));
        a.provisional[i] = sub.provisional[k];
        a.open_until[i] = sub.open_until[k];
    }
    let mut usage = std::mem::take(&mut a.usage);
    usage.retain(|u| !changed.get(u.category).copied().unwrap_or(true));
    usage.extend(sub.usage);
    // one category's periods in order, categories in agreement order
    usage.sort_by_key(|u| u.category);
    Some(Reallocation {
        parts: vec![a],
        unallocated: Vec::new(),
        usage,
    })
}

fn too_large(e: report::TotalTooLarge) -> ApiError {
    AppError::TotalTooLarge { group: e.group }.into()
}

fn compute(s: &Shared, who: &Who, req: Request, as_of: Date, started: Instant) -> Result<Answer, ApiError> {
    let (run, in_force) = run_and_base(s, who, as_of, req.toml.is_none())?;
    let main = &run.main().la.agreement;
    let base = match req.toml.or(in_force) {
        Some(t) => t,
        None => return Err(ApiError::internal("the agreement in force was not read")),
    };
    let text = if req.edits.is_empty() {
        base
    } else {
        apply_edits(&base, &req.edits, &fiscal_years(main))?
    };
    let la = load_agreement_bytes(NAME, text.as_bytes())?;
    let wa = &la.agreement;
    let re = reallocate(wa, &run, as_of)?;
    // every party's totals per fiscal year, now and under the what-if
    let dims = [Dim::Party, Dim::FiscalYear];
    let current = current_rows(s, who, &run, &dims)?;
    let mut per = Vec::with_capacity(run.parts.len());
    for (p, a) in run.parts.iter().zip(&re.parts) {
        per.push(report::report(&p.la.agreement, &p.costs.lines, a, &dims).map_err(too_large)?);
    }
    let under = report::merge(main, &dims, per).map_err(too_large)?;
    let marks = |rows: &[Row]| -> Vec<Row> {
        rows.iter()
            .map(|r| Row {
                values: r.values.clone(),
                amount: 1,
            })
            .collect()
    };
    let order = report::merge(main, &dims, vec![marks(&under), marks(&current)]).map_err(too_large)?;
    let now: HashMap<&[String], i64> = current.iter().map(|r| (r.values.as_slice(), r.amount)).collect();
    let then: HashMap<&[String], i64> = under.iter().map(|r| (r.values.as_slice(), r.amount)).collect();
    let ccy = &main.currency;
    let totals: Vec<Value> = order
        .iter()
        .map(|o| {
            let k = o.values.as_slice();
            let a = then.get(k).copied().unwrap_or(0) as i128;
            let c = now.get(k).copied().unwrap_or(0) as i128;
            json!({
                "party": o.values.first(),
                "fiscal_year": o.values.get(1),
                "amount": ccy.format(a),
                "current": ccy.format(c),
                "delta": ccy.format(a - c),
            })
        })
        .collect();
    // the ceilings under the what-if, rendered as `/api/v1/ceilings` renders them
    let cr = CeilingsResult {
        agreement: wa.clone(),
        policy: None,
        rows: costshare_core::ceilings::ceilings(
            &[costshare_core::ceilings::Version {
                agreement: wa,
                usage: &re.usage,
            }],
            as_of,
        ),
        provenance: run.provenance(),
    };
    let rendered: Value = serde_json::from_str(&render::ceilings::ceilings(&cr, Format::Json))
        .map_err(|e| ApiError::internal(format!("ceilings JSON: {e}")))?;
    let ceilings = rendered.get("ceilings").cloned().unwrap_or(Value::Array(Vec::new()));
    let mut warnings: Vec<String> = la.warnings.iter().map(|d| d.message.clone()).collect();
    if run.parts.len() > 1 {
        warnings.push(format!(
            "the ledger has {} agreement versions; the what-if allocates every line, of every version, under one agreement (current: each line under its own version)",
            run.parts.len()
        ));
    }
    for u in &re.unallocated {
        let why = match u.reason {
            Reason::NoCategory => "the what-if agreement has no such category",
            Reason::OutsideTerm => "they are dated outside the what-if agreement's term",
            Reason::NoQuantity => "the what-if category counts units and they have no quantity",
        };
        warnings.push(format!(
            "{} line(s) of `{}` ({} {}) are UNALLOCATED: {why}",
            u.lines,
            u.category,
            ccy.format(u.amount),
            ccy.code()
        ));
    }
    let elapsed_ms = (started.elapsed().as_micros() as f64 / 100.0).round() / 10.0;
    Ok(json_answer(&json!({
        "agreement_toml": text,
        "elapsed_ms": elapsed_ms,
        "as_of": as_of.to_string(),
        "journal": {"entries": who.entries, "head": who.head},
        "currency": ccy.code(),
        "parties": wa.parties.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        "totals": totals,
        "ceilings": ceilings,
        "warnings": warnings,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"# the agreement
[agreement]
id = "t"
[categories.utilities]
name = "Utilities"   # kept
  [[categories.utilities.layers]]
  split = { JP = "100%" }
  cap = { FY2022 = "10", FY2023 = "20" }  # schedule
  [[categories.utilities.layers]]
  split = { US = "100%" }
  cap = "5" # plain
"#;

    fn fys() -> Vec<String> {
        vec!["FY2022".into(), "FY2023".into()]
    }

    fn edit(layer: usize, field: Field, party: Option<&str>, fy: Option<&str>, v: &str) -> Edit {
        Edit {
            category: "utilities".into(),
            layer,
            field,
            party: party.map(str::to_string),
            fiscal_year: fy.map(str::to_string),
            value: v.into(),
        }
    }

    #[test]
    fn a_schedule_entry_is_set_and_comments_stay() {
        let out = apply_edits(A, &[edit(1, Field::Cap, None, Some("FY2023"), "15")], &fys()).unwrap();
        assert!(
            out.contains(r#"cap = { FY2022 = "10", FY2023 = "15" }  # schedule"#),
            "{out}"
        );
        assert!(out.starts_with("# the agreement\n"));
        assert!(out.contains("# kept"));
    }

    #[test]
    fn a_plain_cap_for_one_year_becomes_a_schedule() {
        let out = apply_edits(A, &[edit(2, Field::Cap, None, Some("FY2022"), "7")], &fys()).unwrap();
        assert!(out.contains(r#"cap = { FY2022 = "7", FY2023 = "5" } # plain"#), "{out}");
    }

    #[test]
    fn a_share_is_set_and_a_new_party_added() {
        let out = apply_edits(A, &[edit(1, Field::Share, Some("JP"), None, "60%")], &fys()).unwrap();
        assert!(out.contains(r#"split = { JP = "60%" }"#), "{out}");
        let out = apply_edits(&out, &[edit(1, Field::Share, Some("US"), None, "40%")], &fys()).unwrap();
        assert!(out.contains(r#"JP = "60%""#) && out.contains(r#"US = "40%""#), "{out}");
    }

    #[test]
    fn a_new_key_is_indented_like_its_table() {
        let out = apply_edits(A, &[edit(2, Field::Portion, None, None, "61%")], &fys()).unwrap();
        assert!(out.contains("  cap = \"5\" # plain\n  portion = \"61%\"\n"), "{out}");
    }

    #[test]
    fn a_missing_layer_or_year_is_unprocessable() {
        let e = apply_edits(A, &[edit(3, Field::Cap, None, None, "1")], &fys()).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.message.contains("2 layer(s)"), "{}", e.message);
        let e = apply_edits(A, &[edit(1, Field::Cap, None, Some("FY2030"), "1")], &fys()).unwrap_err();
        assert!(e.message.contains("FY2030"), "{}", e.message);
        let e = apply_edits(A, &[edit(0, Field::Cap, None, None, "1")], &fys()).unwrap_err();
        assert!(e.message.contains("from 1"), "{}", e.message);
        let e = apply_edits(A, &[edit(1, Field::Portion, None, Some("FY2022"), "50%")], &fys()).unwrap_err();
        assert!(e.message.contains("no `portion`"), "{}", e.message);
    }

    /// The fast path (only the changed categories' lines) gives exactly what
    /// allocating every line under the what-if agreement gives.
    #[test]
    fn reallocating_changed_categories_only_is_the_same_as_all_lines() {
        let data = costshare_demo::generate(7);
        let dir = std::env::temp_dir().join(format!("costshare-whatif-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ag, costs, rates) = (dir.join("a.toml"), dir.join("c.csv"), dir.join("r.csv"));
        std::fs::write(&ag, costshare_demo::agreements::SMA_2022).unwrap();
        std::fs::write(&costs, &data.costs_csv).unwrap();
        std::fs::write(&rates, &data.rates_csv).unwrap();
        let source = costshare_app::input::Source::Files {
            agreement: ag,
            costs,
            rates: Some(rates),
        };
        let as_of = Date::parse("2024-09-15").unwrap();
        let run = costshare_app::run::run(&source, as_of, &mut costshare_app::input::Quiet).unwrap();
        let fys = fiscal_years(&run.main().la.agreement);
        let cases = [
            vec![edit(1, Field::Cap, None, Some("FY2023"), "15100000000")],
            vec![
                Edit {
                    category: "labor".into(),
                    ..edit(1, Field::CapUnits, None, Some("FY2024"), "20000")
                },
                Edit {
                    category: "facilities".into(),
                    ..edit(1, Field::Portion, None, None, "50%")
                },
            ],
            vec![
                edit(1, Field::Share, Some("JP"), None, "70%"),
                edit(1, Field::Share, Some("US"), None, "30%"),
            ],
        ];
        for edits in cases {
            let text = apply_edits(costshare_demo::agreements::SMA_2022, &edits, &fys).unwrap();
            let wa = load_agreement_bytes(NAME, text.as_bytes()).unwrap().agreement;
            let fast = only_changed(&wa, &run, as_of).expect("the fast path applies");
            let groups = [Group {
                agreement: &run.main().la.agreement,
                lines: &run.main().costs.lines,
            }];
            let all = allocate_under(&wa, &groups, as_of).unwrap();
            assert_eq!(fast.parts[0].amounts, all.parts[0].amounts, "{edits:?}");
            assert_eq!(fast.parts[0].provisional, all.parts[0].provisional);
            assert_eq!(fast.parts[0].open_until, all.parts[0].open_until);
            assert_eq!(fast.parts[0].order, all.parts[0].order);
            assert_eq!(fast.usage, all.usage, "{edits:?}");
            assert_ne!(
                fast.parts[0].amounts,
                run.main().alloc.amounts,
                "the edit changes something"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn edits_are_checked() {
        let bad = json!([{"category": "x", "layer": 0, "field": "cap", "value": "1"}]);
        assert!(parse_edits(&bad).is_err());
        let bad = json!([{"category": "x", "layer": 1, "field": "share", "value": "1%"}]);
        assert!(parse_edits(&bad).unwrap_err().message.contains("party"));
        let ok = json!([{"category": "x", "layer": 2, "field": "cap_units", "value": "100", "fiscal_year": "FY2022"}]);
        assert_eq!(parse_edits(&ok).unwrap()[0].layer, 2);
    }
}
