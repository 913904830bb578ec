//! Amendments (SPEC section 8): layer ids in the agreement file, and use
//! carried from one agreement version into the next on a small agreement.

use costshare_core::alloc::{self, Carry, Earlier};
use costshare_core::calendar::{Date, Period};
use costshare_core::costs::{CostLine, Rates, parse_costs};
use costshare_core::num::Q;
use costshare_core::{Agreement, load, reference};

fn agreement(envelope: &str, yearly: &str, term_end: &str, extra: &str) -> Agreement {
    let text = format!(
        r#"
[agreement]
id = "small"
currency = "JPY"
start = "2022-01-01"
end = "{term_end}"

[parties.A]
[parties.B]

[categories.works]
unit = "worker"
  [[categories.works.layers]]
  id = "envelope"
  split = {{ A = "100%" }}
  cap = "{envelope}"
  period = "term"
  [[categories.works.layers]]
  split = {{ A = "50%", B = "50%" }}
  cap = "{yearly}"
  [[categories.works.layers]]
  split = {{ B = "100%" }}
  cap_units = "10"
  period = "term"
  cap_policy = "pro_rata"
{extra}
"#
    );
    let l = load::load(&text);
    l.agreement
        .unwrap_or_else(|| panic!("{:?}", l.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()))
}

fn lines(ag: &Agreement, rows: &str) -> Vec<CostLine> {
    let csv = format!("id,date,category,amount,quantity\n{rows}");
    parse_costs(ag, csv.as_bytes(), &Rates::empty()).unwrap().lines
}

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

#[test]
fn layer_ids_default_to_positions() {
    let ag = agreement("100", "100", "2024-12-31", "");
    let ids: Vec<&str> = ag.categories[0].layers.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["envelope", "2", "3"]);
    assert_eq!(ag.layer_index("works", "envelope"), Some((0, 0)));
    assert_eq!(ag.layer_index("works", "3"), Some((0, 2)));
    assert_eq!(ag.layer_index("works", "1"), None);
}

#[test]
fn duplicate_and_bad_layer_ids_are_diagnosed() {
    let text = r#"
[agreement]
id = "x"
currency = "JPY"
start = "2022-01-01"
end = "2022-12-31"
[parties.A]
[categories.c]
  [[categories.c.layers]]
  id = "2"
  split = { A = "100%" }
  cap = "5"
  [[categories.c.layers]]
  split = { A = "100%" }
  [[categories.c.layers]]
  id = "env"
  split = { A = "100%" }
  [[categories.c.layers]]
  id = "env"
  split = { A = "100%" }
  [[categories.c.layers]]
  id = 7
  split = { A = "100%" }
  [[categories.c.layers]]
  id = ""
  split = { A = "100%" }
  [[categories.c.layers]]
  ids = "typo"
  split = { A = "100%" }
"#;
    let l = load::load(text);
    assert!(l.agreement.is_none());
    let msgs: Vec<&str> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    let has = |s: &str| msgs.iter().any(|m| m.contains(s));
    assert!(
        has("layer id `2` of layer 2 of category `c` is already the id of layer 1"),
        "{msgs:?}"
    );
    assert!(
        has("layer id `env` of layer 4 of category `c` is already the id of layer 3"),
        "{msgs:?}"
    );
    assert!(
        has("`id` of layer 5 of category `c` must be a string, found an integer"),
        "{msgs:?}"
    );
    assert!(has("`id` of layer 6 of category `c` is empty"), "{msgs:?}");
    assert!(has("unknown field `ids` in layer 7 of category `c`"), "{msgs:?}");
    assert_eq!(msgs.len(), 5, "{msgs:?}");
}

/// Version 1 runs 2022–2023; version 2 from 2024-01-01 moves the term's end
/// and lowers the envelope below what version 1 used.
#[test]
fn a_term_envelope_continues_across_versions() {
    let v1 = agreement("100", "1000", "2024-12-31", "");
    let l1 = lines(&v1, "a,2022-03-01,works,70,4\nb,2023-03-01,works,50,4\n");
    let a1 = alloc::allocate(&v1, &l1, d("2025-06-30"));
    // the envelope: 70 then 30 of 50; the yearly layer takes the rest (20)
    assert_eq!(a1.row(0), &[70, 0, 0]);
    assert_eq!(a1.row(1), &[30 + 10, 10, 0]);

    let v2 = agreement("90", "1000", "2025-12-31", "");
    let eff = d("2024-01-01");
    let carry = alloc::carry_into(
        &v2,
        eff,
        &[Earlier {
            version: 1,
            agreement: &v1,
            usage: &a1.usage,
        }],
    );
    // the envelope and the term's unit cap carry; the yearly layer does not
    let e: Vec<(usize, Period, i64)> = carry.entries().iter().map(|c| (c.layer, c.period, c.money)).collect();
    assert_eq!(e, [(0, Period::Term, 100)]);
    assert_eq!(carry.entries()[0].from.len(), 1);
    assert_eq!(carry.entries()[0].from[0].version, 1);

    let l2 = lines(&v2, "c,2024-02-01,works,40,2\n");
    let a2 = alloc::allocate_carried(&v2, l2.as_slice(), d("2025-06-30"), &carry);
    // 100 used of a 90 envelope: nothing left, the yearly layer takes it all
    assert_eq!(a2.row(0), &[20, 20, 0]);
    let (slow, traces) = reference::allocate_carried(&v2, &l2, d("2025-06-30"), &carry);
    assert_eq!(slow.amounts, a2.amounts);
    assert_eq!(traces[0][0].carried.as_ref().map(|c| c.money), Some(100));
    assert!(traces[0][1].carried.is_none());
    // without the carry the envelope would start from zero
    let fresh = alloc::allocate(&v2, &l2, d("2025-06-30"));
    assert_eq!(fresh.row(0), &[40, 0, 0]);
}

#[test]
fn carried_units_shrink_a_pro_rata_unit_cap() {
    // envelope 0 and yearly 0: everything reaches the pro-rata unit layer
    let v1 = agreement("0", "0", "2023-12-31", "");
    let l1 = lines(&v1, "a,2022-03-01,works,100,6\n");
    let a1 = alloc::allocate(&v1, &l1, d("2025-06-30"));
    assert_eq!(a1.row(0), &[0, 100, 0]);
    let v2 = agreement("0", "0", "2023-12-31", "");
    let eff = d("2023-01-01");
    let carry = alloc::carry_into(
        &v2,
        eff,
        &[Earlier {
            version: 1,
            agreement: &v1,
            usage: &a1.usage,
        }],
    );
    assert_eq!(carry.entries().len(), 1);
    assert_eq!(carry.entries()[0].units, Q::parse_decimal("6", 0).unwrap());
    // 10 − 6 = 4 units left for 8 workers: half of 90
    let l2 = lines(&v2, "b,2023-02-01,works,90,8\n");
    let a2 = alloc::allocate_carried(&v2, l2.as_slice(), d("2025-06-30"), &carry);
    assert_eq!(a2.row(0), &[0, 45, 45]);
    let (slow, _) = reference::allocate_carried(&v2, &l2, d("2025-06-30"), &carry);
    assert_eq!(slow.amounts, a2.amounts);
}

#[test]
fn a_layer_without_counterpart_starts_fresh() {
    let v1 = agreement("100", "1000", "2024-12-31", "");
    let l1 = lines(&v1, "a,2022-03-01,works,70,4\n");
    let a1 = alloc::allocate(&v1, &l1, d("2025-06-30"));
    // version 2 renames the envelope: no counterpart
    let v2 = agreement("100", "1000", "2024-12-31", "");
    let text_v2 = load::load(
        r#"
[agreement]
id = "small"
currency = "JPY"
start = "2022-01-01"
end = "2024-12-31"
[parties.A]
[parties.B]
[categories.works]
unit = "worker"
  [[categories.works.layers]]
  id = "new-envelope"
  split = { A = "100%" }
  cap = "100"
  period = "term"
"#,
    )
    .agreement
    .unwrap();
    let earlier = [Earlier {
        version: 1,
        agreement: &v1,
        usage: &a1.usage,
    }];
    assert!(alloc::carry_into(&text_v2, d("2024-01-01"), &earlier).is_empty());
    // the same ids: the envelope carries; a version in force from the term's start carries nothing
    assert!(!alloc::carry_into(&v2, d("2024-01-01"), &earlier).is_empty());
    let late_start = agreement("100", "1000", "2024-12-31", "");
    assert!(alloc::carry_into(&late_start, d("2022-01-01"), &earlier).is_empty());
    assert_eq!(Carry::NONE, Carry::default());
}
