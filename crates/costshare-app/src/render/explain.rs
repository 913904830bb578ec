//! An explanation in words a budget analyst reads (table form), and its JSON.

use costshare_core::agreement::{Agreement, Cap, CapPolicy, SplitSource};
use costshare_core::alloc::Carried;
use costshare_core::costs::shown_text;
use costshare_core::explain::Explanation;
use costshare_core::money::format_grouped;
use costshare_core::money::format_minor;
use costshare_core::num::{BigRational, Q, fmt_percent, fmt_ratio};
use costshare_core::reference::{CapTrace, LayerTrace};
use serde_json::{Value, json};

fn money(ag: &Agreement, v: i64) -> String {
    format!(
        "{} {}",
        format_grouped(v as i128, ag.currency.decimals()),
        ag.currency.code()
    )
}

/// A quantity for people: exact decimal when it terminates, else a fraction
/// with an approximation.
pub fn quantity(q: &BigRational) -> String {
    let exact = fmt_ratio(q, 6);
    if exact.contains('/') {
        let approx = fmt_ratio(
            &BigRational::new(q.mul(&BigRational::from_int(1000)).floor(), 1000.into()),
            3,
        );
        format!("{exact} (≈{})", group_int_part(&approx))
    } else {
        group_int_part(&exact)
    }
}

/// Thousands separators in the integer part of decimal text.
fn group_int_part(s: &str) -> String {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

fn fraction(f: &BigRational) -> String {
    let pct = fmt_percent(f);
    let exact = fmt_ratio(f, 12);
    if exact.contains('/') {
        format!("{exact} ({pct})")
    } else {
        pct
    }
}

/// Describe a layer's rule in one phrase: "JP 100%, cap 23,178 worker per month, pro rata".
pub fn layer_rule(ag: &Agreement, ci: usize, li: usize, fy_index: usize) -> String {
    let cat = &ag.categories[ci];
    let l = &cat.layers[li];
    let shares = &l.split.get(fy_index).shares;
    let mut s: Vec<String> = Vec::new();
    let parts: Vec<String> = ag
        .parties
        .iter()
        .zip(shares)
        .filter(|(_, sh)| !sh.is_zero())
        .map(|(p, sh)| format!("{} {}", p.id, fmt_percent(sh)))
        .collect();
    let src = match &l.split_source {
        SplitSource::Fixed => parts.join(" / "),
        SplitSource::Key(k) => format!("key `{k}`: {}", parts.join(" / ")),
    };
    s.push(src);
    if let Some(p) = &l.portion {
        s.push(format!(
            "offered {} of what is left",
            fmt_percent(&p.get(fy_index).to_big())
        ));
    }
    let per = match l.period {
        costshare_core::calendar::PeriodKind::Month => "per month",
        costshare_core::calendar::PeriodKind::Quarter => "per quarter",
        costshare_core::calendar::PeriodKind::FiscalYear => "per fiscal year",
        costshare_core::calendar::PeriodKind::Term => "over the term",
    };
    match &l.cap {
        None => s.push("no cap".into()),
        Some(Cap::Money(m)) => s.push(format!("cap {} {per}", money(ag, *m.get(fy_index)))),
        Some(Cap::Units(u)) => s.push(format!(
            "cap {} {} {per}",
            quantity(&u.get(fy_index).to_big()),
            cat.unit.as_deref().unwrap_or("units")
        )),
    }
    if l.cap.is_some() {
        s.push(match l.policy {
            CapPolicy::Running => "first come, first served".into(),
            CapPolicy::ProRata => "shared pro rata".into(),
        });
    }
    s.join(", ")
}

/// Where an explained line's `row` number points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOrigin {
    /// The physical line of the costs file (header = 1).
    File,
    /// The ledger's journal entry that recorded the line.
    Journal,
}

/// Render the explanation as text.
pub fn render_text(ag: &Agreement, ex: &Explanation, origin: RowOrigin) -> String {
    let l = &ex.line;
    let ci = l.category;
    let cat = &ag.categories[ci];
    let fy_i = ag.fy_index(l.date);
    let unit = cat.unit.as_deref().unwrap_or("units");
    let mut o = String::new();
    o.push_str(&format!(
        "Line {} — {} ({}), {}, {}\n",
        l.id,
        cat.id,
        cat.name,
        l.date,
        ag.fy_label(fy_i)
    ));
    if !l.site.is_empty() || !l.description.is_empty() {
        o.push_str(&format!(
            "  site: {}   description: {}\n",
            if l.site.is_empty() {
                "-".into()
            } else {
                shown_text(&l.site)
            },
            if l.description.is_empty() {
                "-".into()
            } else {
                shown_text(&l.description)
            }
        ));
    }
    let row_label = match origin {
        RowOrigin::File => "file row",
        RowOrigin::Journal => "journal entry",
    };
    o.push_str(&format!("  {row_label}: {}\n", l.row));
    match &l.rate {
        Some((rd, rate)) => {
            let cur = ag.currency(&l.currency);
            let src = cur
                .map(|c| format_grouped(l.source_amount as i128, c.decimals()))
                .unwrap_or_default();
            o.push_str(&format!(
                "  amount: {src} {} × {} {}/{} (rate dated {rd}) = {}, rounded half to even\n",
                l.currency,
                fmt_ratio(rate, 18),
                ag.currency.code(),
                l.currency,
                money(ag, l.amount)
            ));
        }
        None => o.push_str(&format!("  amount: {}\n", money(ag, l.amount))),
    }
    if let Some(q) = &l.quantity {
        o.push_str(&format!("  quantity: {} {unit}\n", quantity(&q.to_big())));
    }
    o.push('\n');
    let n = ex.layers.len();
    for t in &ex.layers {
        let period = t
            .period
            .map(|p| format!(" — period {}", p.label(&ag.calendar)))
            .unwrap_or_default();
        o.push_str(&format!(
            "Layer {} of {n}: {}{period}\n",
            t.layer + 1,
            layer_rule(ag, ci, t.layer, fy_i)
        ));
        if t.remaining_before == 0 {
            o.push_str("  nothing left to allocate: the line takes no part in this layer\n\n");
            continue;
        }
        o.push_str(&format!(
            "  left before this layer: {}\n",
            money(ag, t.remaining_before)
        ));
        if let Some(p) = &t.portion {
            o.push_str(&format!(
                "  offered: {} × {} = {} (half to even)\n",
                money(ag, t.remaining_before),
                fmt_percent(p),
                money(ag, t.offered)
            ));
            if t.offered == 0 {
                o.push_str("  offered nothing: the line takes no part in this layer\n\n");
                continue;
            }
        }
        let cap_unit = match ci_layer_cap(ag, ci, t.layer) {
            Some(Cap::Units(_)) => Some(unit),
            _ => None,
        };
        // what the cap had left when this version's lines started (carried use)
        let carried_left = t.carried.as_ref().and_then(|k| {
            let (full, left) = match &t.cap {
                Some(CapTrace::RunningMoney { cap, .. }) | Some(CapTrace::ProRataMoney { cap, .. }) => {
                    (money(ag, *cap), money(ag, k.money_left(*cap)))
                }
                Some(CapTrace::RunningUnits { cap, .. }) | Some(CapTrace::ProRataUnits { cap, .. }) => {
                    let c = Q::from_big(cap);
                    (
                        format!("{} {unit}", quantity(cap)),
                        format!("{} {unit}", quantity(&k.units_left(&c).to_big())),
                    )
                }
                None => return None,
            };
            o.push_str(&format!(
                "  carried over: {} of this period's cap {} already used under {}; {left} of the {full} cap left for this version's lines\n",
                carried_amount(ag, k.money, &k.units, cap_unit),
                if k.from.len() == 1 { "was" } else { "were" },
                carried_sources(ag, k, cap_unit),
            ));
            Some(left)
        });
        match &t.cap {
            None => {}
            Some(CapTrace::RunningMoney {
                cap,
                left_before,
                left_after,
            }) => {
                o.push_str(&format!(
                    "  cap {} for the period: {} unused before this line, {} after\n",
                    money(ag, *cap),
                    money(ag, *left_before),
                    money(ag, *left_after)
                ));
            }
            Some(CapTrace::RunningUnits {
                cap,
                left_before,
                left_after,
                quantity: q,
                units_taken,
            }) => {
                o.push_str(&format!(
                    "  cap {} {unit} for the period: {} unused before this line, {} after\n",
                    quantity(cap),
                    quantity(left_before),
                    quantity(left_after)
                ));
                if units_taken == q {
                    o.push_str(&format!(
                        "  all {} {unit} of the line fit under the cap: the whole amount is taken\n",
                        quantity(q)
                    ));
                } else {
                    o.push_str(&format!(
                        "  only {} of the line's {} {unit} fit: it takes {} × {}/{} = {}, rounded half to even\n",
                        quantity(units_taken),
                        quantity(q),
                        money(ag, t.remaining_before),
                        quantity(units_taken),
                        quantity(q),
                        money(ag, t.take)
                    ));
                }
            }
            Some(CapTrace::ProRataMoney {
                cap,
                group_total,
                group_lines,
                fraction: f,
                leftover_unit,
                provisional,
            }) => {
                let against = match &carried_left {
                    Some(left) => format!("the {left} left of a cap of {}", money(ag, *cap)),
                    None => format!("a cap of {}", money(ag, *cap)),
                };
                o.push_str(&format!(
                    "  the period's {group_lines} line(s) offer {} against {against}: every line keeps {}\n",
                    money(ag, *group_total),
                    fraction(f)
                ));
                pro_rata_detail(&mut o, ag, t, f, *leftover_unit, *provisional);
            }
            Some(CapTrace::ProRataUnits {
                cap,
                group_quantity,
                group_lines,
                fraction: f,
                quantity: q,
                leftover_unit,
                provisional,
            }) => {
                let against = match &carried_left {
                    Some(left) => format!("the {left} left of a cap of {} {unit}", quantity(cap)),
                    None => format!("a cap of {} {unit}", quantity(cap)),
                };
                o.push_str(&format!(
                    "  the period's {group_lines} line(s) hold {} {unit} against {against}: every line keeps {}\n",
                    quantity(group_quantity),
                    fraction(f)
                ));
                let moved = q.mul(&BigRational::one().sub(f));
                pro_rata_detail(&mut o, ag, t, f, *leftover_unit, *provisional);
                if !moved.is_zero() {
                    o.push_str(&format!(
                        "  {} of this line's {} {unit} move on to the next layer\n",
                        quantity(&moved),
                        quantity(q)
                    ));
                }
            }
        }
        o.push_str(&format!("  taken by this layer: {}\n", money(ag, t.take)));
        if t.take > 0 {
            let mut parts = Vec::new();
            for (j, p) in ag.parties.iter().enumerate() {
                if t.parts[j] != 0 || !t.exact_parts[j].is_zero() {
                    let exact = minor_exact(ag, &t.exact_parts[j]);
                    let mut s = format!("{} {}", p.id, money(ag, t.parts[j]));
                    if t.rounding_units.contains(&j) {
                        s.push_str(&format!(" (exact {exact}; +1 rounding unit, largest remainder)"));
                    } else if exact.contains('.') || exact.contains('/') {
                        s.push_str(&format!(" (exact {exact}, rounded down)"));
                    }
                    parts.push(s);
                }
            }
            o.push_str(&format!("  split: {}\n", parts.join("; ")));
            if !t.rounding_units.is_empty() {
                let n = t.rounding_units.len();
                o.push_str(&format!(
                    "  rounding: every share was rounded down to the minor unit; the {n} unit{} left went one each to the largest remainders (ties to the party declared first)\n",
                    if n == 1 { "" } else { "s" }
                ));
            }
        }
        o.push_str(&format!(
            "  left after this layer: {}\n\n",
            money(ag, t.remaining_before - t.take)
        ));
    }
    let un = ex.parts[ag.parties.len()];
    if un != 0 {
        o.push_str(&format!(
            "Overrun: {} is left after the last layer and is reported as UNALLOCATED\n\n",
            money(ag, un)
        ));
    }
    o.push_str("Result:\n");
    for (j, p) in ag.parties.iter().enumerate() {
        if ex.parts[j] != 0 {
            o.push_str(&format!("  {:<12} {:>24}\n", p.id, money(ag, ex.parts[j])));
        }
    }
    if un != 0 {
        o.push_str(&format!("  {:<12} {:>24}\n", "UNALLOCATED", money(ag, un)));
    }
    o.push_str(&format!("  {:<12} {:>24}\n", "total", money(ag, l.amount)));
    if ex.provisional {
        o.push_str(
            "\nProvisional: a pro-rata period of this line has not ended yet; its share may change as lines arrive.\n",
        );
    }
    o
}

fn ci_layer_cap(ag: &Agreement, ci: usize, li: usize) -> Option<&Cap> {
    ag.categories[ci].layers[li].cap.as_ref()
}

/// Carried use in the cap's measure: money, or units (`unit` names them).
fn carried_amount(ag: &Agreement, m: i64, units: &Q, unit: Option<&str>) -> String {
    match unit {
        Some(u) => format!("{} {u}", quantity(&units.to_big())),
        None => money(ag, m),
    }
}

/// "agreement version 1", or "agreement versions 1 (…) and 2 (…)".
fn carried_sources(ag: &Agreement, k: &Carried, unit: Option<&str>) -> String {
    if let [one] = k.from.as_slice() {
        return format!("agreement version {}", one.version);
    }
    let each: Vec<String> = k
        .from
        .iter()
        .map(|s| format!("{} ({})", s.version, carried_amount(ag, s.money, &s.units, unit)))
        .collect();
    let (last, rest) = each.split_last().expect("at least one source");
    format!("agreement versions {} and {last}", rest.join(", "))
}

/// An exact amount given in minor units, shown in the currency's units:
/// `0.6666`, or `72,727.2727…` when it does not terminate within four digits
/// past the minor unit.
fn minor_exact(ag: &Agreement, x: &BigRational) -> String {
    let dec = ag.currency.decimals();
    let x = x.div(&BigRational::from_int(costshare_core::num::pow10(dec)));
    let digits = dec as usize + 4;
    let exact = fmt_ratio(&x, digits);
    if !exact.contains('/') {
        return group_int_part(&exact);
    }
    let scale = costshare_core::num::pow10(dec + 4);
    let t = BigRational::new(x.mul(&BigRational::from_int(scale.clone())).floor(), scale);
    format!("{}…", group_int_part(&fmt_ratio(&t, digits)))
}

fn pro_rata_detail(o: &mut String, ag: &Agreement, t: &LayerTrace, f: &BigRational, leftover: bool, provisional: bool) {
    let exact = BigRational::from_int(t.offered).mul(f);
    let floor = exact.floor();
    let rest = exact.sub(&BigRational::from_int(floor.clone()));
    let floor_i: i64 = num_traits::ToPrimitive::to_i64(&floor).unwrap_or(0);
    let exact_text = if rest.is_zero() {
        "exactly".to_string()
    } else {
        format!("and {} of a minor unit", fmt_ratio(&rest, 6))
    };
    o.push_str(&format!(
        "  this line: {} × {} = {} {exact_text}\n",
        money(ag, t.offered),
        fraction(f),
        money(ag, floor_i),
    ));
    if !rest.is_zero() {
        o.push_str(&format!(
            "  rounded down to {}{}\n",
            money(ag, floor_i),
            if leftover {
                ", plus 1 leftover unit: the period's leftover units go to the largest remainders"
            } else {
                "; the period's leftover units went to lines with larger remainders"
            }
        ));
    }
    if provisional {
        o.push_str("  provisional: the period has not ended by the as-of date\n");
    }
}

/// The explanation as JSON (without the agreement and journal, which the caller adds).
pub fn json(a: &Agreement, ex: &Explanation) -> Value {
    let dec = a.currency.decimals();
    let m = |v: i64| json!(format_minor(v as i128, dec));
    let l = &ex.line;
    let fy = a.fy_index(l.date);
    let layers: Vec<Value> = ex
        .layers
        .iter()
        .map(|t| {
            let cap = match &t.cap {
                None => Value::Null,
                Some(CapTrace::RunningMoney { cap, left_before, left_after }) => {
                    json!({"kind": "money", "policy": "running", "cap": m(*cap), "left_before": m(*left_before), "left_after": m(*left_after)})
                }
                Some(CapTrace::RunningUnits { cap, left_before, left_after, quantity, units_taken }) => json!({
                    "kind": "units", "policy": "running", "cap": fmt_ratio(cap, 18), "left_before": fmt_ratio(left_before, 18),
                    "left_after": fmt_ratio(left_after, 18), "quantity": fmt_ratio(quantity, 18), "units_taken": fmt_ratio(units_taken, 18)
                }),
                Some(CapTrace::ProRataMoney { cap, group_total, group_lines, fraction, leftover_unit, provisional }) => json!({
                    "kind": "money", "policy": "pro_rata", "cap": m(*cap), "group_total": m(*group_total), "group_lines": group_lines,
                    "fraction": fmt_ratio(fraction, 18), "leftover_unit": leftover_unit, "provisional": provisional
                }),
                Some(CapTrace::ProRataUnits { cap, group_quantity, group_lines, fraction, quantity, leftover_unit, provisional }) => json!({
                    "kind": "units", "policy": "pro_rata", "cap": fmt_ratio(cap, 18), "group_quantity": fmt_ratio(group_quantity, 18),
                    "group_lines": group_lines, "fraction": fmt_ratio(fraction, 18), "quantity": fmt_ratio(quantity, 18),
                    "leftover_unit": leftover_unit, "provisional": provisional
                }),
            };
            let counts_units = matches!(ci_layer_cap(a, l.category, t.layer), Some(Cap::Units(_)));
            let carried = t.carried.as_ref().map(|k| {
                let amount = |money: i64, units: &Q| {
                    if counts_units { json!(fmt_ratio(&units.to_big(), 18)) } else { m(money) }
                };
                json!({
                    "used": amount(k.money, &k.units),
                    "from": k.from.iter().map(|s| json!({"version": s.version, "used": amount(s.money, &s.units)})).collect::<Vec<_>>(),
                })
            });
            let split: serde_json::Map<String, Value> = a
                .parties
                .iter()
                .enumerate()
                .filter(|(j, _)| t.parts[*j] != 0)
                .map(|(j, p)| (p.id.clone(), m(t.parts[j])))
                .collect();
            let mut layer = json!({
                "layer": t.layer + 1,
                "rule": layer_rule(a, l.category, t.layer, fy),
                "period": t.period.map(|p| p.label(&a.calendar)),
                "remaining_before": m(t.remaining_before),
                "portion": t.portion.as_ref().map(|p| fmt_ratio(p, 20)),
                "offered": m(t.offered),
                "cap": cap,
                "take": m(t.take),
                "split": split,
                "rounding_units": t.rounding_units.iter().map(|&j| a.parties[j].id.clone()).collect::<Vec<_>>(),
                "remaining_after": m(t.remaining_before - t.take),
                "took_part": !t.skipped,
            });
            // only when a cap's use was carried over from an earlier version
            if let (Some(c), Some(obj)) = (carried, layer.as_object_mut()) {
                obj.insert("carried".into(), c);
            }
            layer
        })
        .collect();
    let result: serde_json::Map<String, Value> = ex
        .parts
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0)
        .map(|(p, v)| (crate::run::party_name(a, p).to_string(), m(*v)))
        .collect();
    json!({
        "id": l.id,
        "date": l.date.to_string(),
        "fiscal_year": a.fy_label(fy),
        "category": a.categories[l.category].id,
        "site": l.site,
        "description": l.description,
        "row": l.row,
        "amount": m(l.amount),
        "source": {"amount": a.currency(&l.currency).map(|c| format_minor(l.source_amount as i128, c.decimals())), "currency": l.currency,
                   "rate": l.rate.as_ref().map(|(d, r)| json!({"date": d.to_string(), "rate": fmt_ratio(r, 18)}))},
        "quantity": l.quantity.as_ref().map(|q| fmt_ratio(&q.to_big(), 18)),
        "layers": layers,
        "result": result,
        "provisional": ex.provisional,
    })
}
