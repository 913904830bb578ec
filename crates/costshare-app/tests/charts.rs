//! Golden tests of the SVG charts on fixed inputs, and the properties every
//! chart keeps: well-formed XML, user text escaped, exact figures readable
//! back from `data-amount`, "no data" instead of a panic, same bytes for the
//! same input. Each golden file was looked at as a PNG. To regenerate after a
//! deliberate change, run with `UPDATE_GOLDEN=1` and review the diff (and the
//! picture) before committing it. The compare and ceilings examples of the
//! README (`docs/chart-compare.svg`, `docs/chart-ceilings.svg`) are goldens too.

use costshare_app::render::chart::{
    CapPeriod, Ceiling, CeilingUse, DeltaBars, Series, StackedBars, ceiling_use, delta_bars, stacked_bars,
};
use costshare_core::calendar::Date;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden(rel: &str, actual: &str) {
    let path = root().join(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
    if want != actual {
        let diff: Vec<String> = want
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(3)
            .map(|(i, (a, b))| format!("line {}:\n  want: {a}\n  got:  {b}", i + 1))
            .collect();
        panic!(
            "{rel} differs ({} vs {} lines)\n{}",
            want.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Parse as XML (panics with the parser's words if it is not well-formed)
/// and check the root is an accessible SVG.
fn parse(svg: &str) -> roxmltree::Document<'_> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
    assert_eq!(root.attribute("role"), Some("img"));
    assert!(root.children().any(|n| n.has_tag_name("title")), "no <title>");
    assert!(
        !doc.descendants()
            .any(|n| n.has_tag_name("script") || n.attribute("onload").is_some()),
        "script in the chart"
    );
    doc
}

/// Every `data-amount` as (the element's `data-` key attribute, amount text).
fn amounts<'a>(doc: &'a roxmltree::Document<'a>, key: &str) -> Vec<(String, String)> {
    doc.descendants()
        .filter_map(|n| Some((n.attribute(key)?.to_string(), n.attribute("data-amount")?.to_string())))
        .collect()
}

fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text().map(str::to_string))
        .collect()
}

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

/// The demo's five years as `report --by party,fiscal_year` gives them (JPY).
fn report_like() -> StackedBars {
    StackedBars {
        title: "U.S.-Japan Special Measures Agreement (host-nation support), JFY2022-2026".into(),
        note: "as of 2026-11-27 · agreement us-japan-sma-2022 81c8aefa0b19 · 1460 lines".into(),
        unit_label: "JPY".into(),
        currency_decimals: 0,
        categories: ["FY2022", "FY2023", "FY2024", "FY2025", "FY2026"]
            .map(String::from)
            .to_vec(),
        series: vec![
            Series {
                key: "JP".into(),
                name: "Government of Japan (JP)".into(),
                values: vec![232941052653, 234875313176, 227399140061, 224012731476, 206977034435],
                muted: false,
            },
            Series {
                key: "US".into(),
                name: "United States (US)".into(),
                values: vec![32188584270, 34872262856, 42952239932, 51381084270, 70712227727],
                muted: false,
            },
            Series {
                key: "UNALLOCATED".into(),
                name: "UNALLOCATED".into(),
                values: vec![0, 0, 1500000000, 0, 9800000000],
                muted: true,
            },
        ],
    }
}

/// The demo's costs under the 2022 rules against the 2016 rules and the
/// four-fold demand (delta = 2022 − the other), as `report --by party` on
/// each agreement gives them.
fn compare_like() -> DeltaBars {
    DeltaBars {
        title: "2022 rules against the 2016 rules and the four-fold demand, on the demo's costs".into(),
        note: "delta = amount under us-japan-sma-2022 − amount under the other agreement · as of 2026-11-27".into(),
        unit_label: "JPY".into(),
        currency_decimals: 0,
        parties: vec!["JP".into(), "US".into()],
        against: vec![
            ("us-japan-sma-2016".into(), vec![-31986713158, 31986713158]),
            ("us-japan-fourfold-proposal".into(), vec![-232106399055, 232106399055]),
        ],
    }
}

/// Cumulative use by the last day of each month, `monthly[k]` added in month k.
fn steps(first: Date, monthly: &[i128]) -> Vec<(Date, i128)> {
    let mut out = Vec::new();
    let mut cum = 0;
    let mi = first.month_index();
    for (k, v) in monthly.iter().enumerate() {
        cum += v;
        out.push((Date::last_of_month_index(mi + k as i32), cum));
    }
    out
}

/// Representative ceilings: a money cap per fiscal year, a term envelope and
/// a head-count cap per month.
fn ceilings_like() -> CeilingUse {
    let fy = |y: i32| (d(&format!("{y}-04-01")), d(&format!("{}-03-31", y + 1)));
    let mut utilities = Vec::new();
    for (y, cap, monthly) in [
        (2022, 23_400_000_000i128, 2_300_000_000i128),
        (2023, 23_400_000_000, 1_900_000_000),
        (2024, 15_100_000_000, 1_700_000_000),
    ] {
        let (start, end) = fy(y);
        let mut st = steps(start, &[monthly; 12]);
        let bound_on = st.iter().find(|s| s.1 >= cap).map(|s| s.0);
        for s in &mut st {
            s.1 = s.1.min(cap);
        }
        utilities.push(CapPeriod {
            label: format!("FY{y}"),
            start,
            end,
            cap,
            steps: st,
            bound_on,
            known_until: None,
            forecast_bound_on: None,
        });
    }
    // FY2025 is open at the as-of date: seven months known, the run rate
    // reaches the cap in January
    let (start, end) = fy(2025);
    utilities.push(CapPeriod {
        label: "FY2025".into(),
        start,
        end,
        cap: 13_300_000_000,
        steps: steps(start, &[1_500_000_000; 7]),
        bound_on: None,
        known_until: Some(d("2025-11-27")),
        forecast_bound_on: Some(d("2026-01-26")),
    });
    let facilities = vec![CapPeriod {
        label: "term".into(),
        start: d("2022-04-01"),
        end: d("2027-03-31"),
        cap: 164_100_000_000,
        steps: vec![
            (d("2022-09-30"), 21_000_000_000),
            (d("2023-03-31"), 48_500_000_000),
            (d("2023-09-30"), 80_000_000_000),
            (d("2024-03-31"), 112_250_000_000),
            (d("2024-09-30"), 140_000_000_000),
            (d("2025-03-31"), 164_100_000_000),
        ],
        bound_on: Some(d("2025-03-31")),
        known_until: Some(d("2025-11-27")),
        forecast_bound_on: None,
    }];
    let labor = (0..12)
        .map(|k| {
            let mi = d("2022-04-01").month_index() + k;
            let (start, end) = (Date::first_of_month_index(mi), Date::last_of_month_index(mi));
            let need = [
                23_000, 23_500, 22_900, 23_400, 23_178, 23_600, 23_050, 23_300, 22_800, 23_900, 23_178, 23_250,
            ][k as usize];
            let used = need.min(23_178);
            CapPeriod {
                label: start.to_string()[..7].to_string(),
                start,
                end,
                cap: 23_178,
                steps: vec![(d(&format!("{}-10", &start.to_string()[..7])), used)],
                bound_on: (need >= 23_178).then(|| d(&format!("{}-10", &start.to_string()[..7]))),
                known_until: None,
                forecast_bound_on: None,
            }
        })
        .collect();
    CeilingUse {
        title: "Ceiling use (representative data)".into(),
        note: "as of 2025-11-27 · cumulative use of each capped layer against its cap".into(),
        ceilings: vec![
            Ceiling {
                label: "utilities · layer 1".into(),
                unit_label: "JPY".into(),
                decimals: 0,
                periods: utilities,
            },
            Ceiling {
                label: "facilities · layer 1".into(),
                unit_label: "JPY".into(),
                decimals: 0,
                periods: facilities,
            },
            Ceiling {
                label: "labor · layer 1, FY2022".into(),
                unit_label: "workers".into(),
                decimals: 0,
                periods: labor,
            },
        ],
    }
}

#[test]
fn stacked_bars_golden() {
    let c = report_like();
    let svg = stacked_bars(&c);
    golden("tests/golden/charts/stacked-bars.svg", &svg);
    let doc = parse(&svg);
    // every non-zero value is a bar carrying its exact amount
    let got = amounts(&doc, "data-series");
    let want: Vec<(String, String)> = (0..c.categories.len())
        .flat_map(|i| c.series.iter().map(move |s| (s, i)))
        .filter(|(s, i)| s.values[*i] != 0)
        .map(|(s, i)| (s.key.clone(), s.values[i].to_string()))
        .collect();
    assert_eq!(got, want);
    // the bar totals add the stacks exactly
    let totals: Vec<String> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-total"))
        .map(String::from)
        .collect();
    let want: Vec<String> = (0..5)
        .map(|i| c.series.iter().map(|s| s.values[i]).sum::<i128>().to_string())
        .collect();
    assert_eq!(totals, want);
    // UNALLOCATED is hatched, the parties are not
    for n in doc.descendants().filter(|n| n.attribute("data-series").is_some()) {
        let hatched = n.attribute("fill") == Some("url(#hatch)");
        assert_eq!(hatched, n.attribute("data-series") == Some("UNALLOCATED"));
    }
    assert_eq!(stacked_bars(&c), svg, "same input, same bytes");
}

#[test]
fn delta_bars_golden() {
    let c = compare_like();
    let svg = delta_bars(&c);
    golden("docs/chart-compare.svg", &svg);
    let doc = parse(&svg);
    let got = amounts(&doc, "data-party");
    assert_eq!(
        got,
        [
            ("JP", "-31986713158"),
            ("JP", "-232106399055"),
            ("US", "31986713158"),
            ("US", "232106399055")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let t = texts(&doc);
    // signed labels: a minus sign for a negative delta, + for a positive one
    assert!(
        t.iter().any(|s| s == "-32.0 bn") && t.iter().any(|s| s == "+232.1 bn"),
        "{t:?}"
    );
    // a negative bar lies left of zero, a positive one right of it
    let bars: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("data-party").is_some())
        .collect();
    let x = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
    let zero = x(&bars[0], "x") + x(&bars[0], "width");
    assert!((x(&bars[2], "x") - zero).abs() < 0.11, "bars do not meet at zero");
    // one legend entry per compared agreement
    assert!(t.iter().any(|s| s == "vs us-japan-sma-2016") && t.iter().any(|s| s == "vs us-japan-fourfold-proposal"));
}

#[test]
fn delta_bars_one_against_has_no_legend() {
    let mut c = compare_like();
    c.against.truncate(1);
    let svg = delta_bars(&c);
    golden("tests/golden/charts/delta-one.svg", &svg);
    let doc = parse(&svg);
    assert!(!texts(&doc).iter().any(|s| s.starts_with("vs ")));
    assert_eq!(amounts(&doc, "data-party").len(), 2);
}

#[test]
fn ceiling_use_golden() {
    let c = ceilings_like();
    let svg = ceiling_use(&c);
    golden("docs/chart-ceilings.svg", &svg);
    let doc = parse(&svg);
    // one cap line and one step line per period, one marker per bound period
    let periods: usize = c.ceilings.iter().map(|x| x.periods.len()).sum();
    assert_eq!(
        doc.descendants().filter(|n| n.attribute("data-cap").is_some()).count(),
        periods
    );
    assert_eq!(
        doc.descendants().filter(|n| n.attribute("data-used").is_some()).count(),
        periods
    );
    let bound: Vec<String> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-bound-on"))
        .map(String::from)
        .collect();
    let want: Vec<String> = c
        .ceilings
        .iter()
        .flat_map(|x| x.periods.iter().filter_map(|p| p.bound_on.map(|b| b.to_string())))
        .collect();
    assert_eq!(bound, want);
    assert!(bound.contains(&"2025-03-31".to_string()));
    // the open period's forecast is marked, and its use line stops at the as-of date
    let forecast: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-forecast-bound-on"))
        .collect();
    assert_eq!(forecast, ["2026-01-26"]);
    // the last use of each period is its final cumulative figure
    let used: Vec<&str> = doc.descendants().filter_map(|n| n.attribute("data-used")).collect();
    assert_eq!(used[3], "10500000000");
    assert_eq!(used[4], "164100000000");
}

#[test]
fn hostile_names_are_text() {
    let mut c = report_like();
    c.title = "<script>alert('x')</script> & \"co\"".into();
    c.note = "]]> <!-- \u{1}".into();
    c.series[0].name = "<b>Japan</b> & sons".into();
    c.series[0].key = "J&P".into();
    c.categories[0] = "FY<2022>".into();
    let svg = stacked_bars(&c);
    let doc = parse(&svg);
    let t = texts(&doc);
    assert!(t.contains(&c.title), "title not shown as text: {t:?}");
    assert!(t.contains(&"<b>Japan</b> & sons".to_string()));
    assert!(!doc.descendants().any(|n| n.has_tag_name("b")));
    assert_eq!(amounts(&doc, "data-series")[0].0, "J&P");

    let mut d = compare_like();
    d.parties[0] = "<script>x</script>".into();
    d.against[0].0 = "a&b".into();
    let doc_text = delta_bars(&d);
    let doc = parse(&doc_text);
    assert!(texts(&doc).contains(&"vs a&b".to_string()));

    let mut e = ceilings_like();
    e.ceilings[0].label = "<script>".into();
    e.ceilings[0].periods[0].label = "&".into();
    let s = ceiling_use(&e);
    parse(&s);
}

#[test]
fn single_party() {
    let mut c = report_like();
    c.series.truncate(1);
    let svg = stacked_bars(&c);
    golden("tests/golden/charts/single-party.svg", &svg);
    let doc = parse(&svg);
    assert_eq!(amounts(&doc, "data-series").len(), 5);

    let mut d = compare_like();
    d.parties.truncate(1);
    for a in &mut d.against {
        a.1.truncate(1);
    }
    let doc_text = delta_bars(&d);
    let doc = parse(&doc_text);
    assert_eq!(amounts(&doc, "data-party").len(), 2);
}

#[test]
fn empty_data_says_so() {
    let mut c = report_like();
    c.series.clear();
    let svg = stacked_bars(&c);
    golden("tests/golden/charts/empty.svg", &svg);
    assert!(texts(&parse(&svg)).contains(&"no data".to_string()));
    c.categories.clear();
    assert!(texts(&parse(&stacked_bars(&c))).contains(&"no data".to_string()));
    let mut z = report_like();
    for s in &mut z.series {
        s.values = vec![0; 5];
    }
    assert!(texts(&parse(&stacked_bars(&z))).contains(&"no data".to_string()));
    // values shorter than the categories count as zero, never an index panic
    let mut short = report_like();
    short.series[0].values.truncate(2);
    parse(&stacked_bars(&short));

    let mut d = compare_like();
    d.against.clear();
    assert!(texts(&parse(&delta_bars(&d))).contains(&"no data".to_string()));
    let mut d = compare_like();
    d.parties.clear();
    assert!(texts(&parse(&delta_bars(&d))).contains(&"no data".to_string()));
    // all deltas zero: bars of no width, still a chart
    let mut d = compare_like();
    for a in &mut d.against {
        a.1 = vec![0, 0];
    }
    parse(&delta_bars(&d));

    let mut e = ceilings_like();
    e.ceilings.clear();
    assert!(texts(&parse(&ceiling_use(&e))).contains(&"no data".to_string()));
    // a ceiling with no use at all, and a zero cap
    let e = CeilingUse {
        title: "t".into(),
        note: String::new(),
        ceilings: vec![Ceiling {
            label: "x".into(),
            unit_label: "USD".into(),
            decimals: 2,
            periods: vec![CapPeriod {
                label: "term".into(),
                start: d_("2024-01-01"),
                end: d_("2024-01-01"),
                cap: 0,
                steps: Vec::new(),
                bound_on: None,
                known_until: None,
                forecast_bound_on: Some(d_("2024-01-01")),
            }],
        }],
    };
    parse(&ceiling_use(&e));
}

fn d_(s: &str) -> Date {
    d(s)
}

#[test]
fn negative_and_extreme_amounts() {
    // negative stacks go below zero; the axis keeps 0 inside
    let mut c = report_like();
    c.series[1].values[0] = -5_000_000_000;
    let svg = stacked_bars(&c);
    let doc = parse(&svg);
    assert!(amounts(&doc, "data-series").iter().any(|(_, a)| a == "-5000000000"));
    // sums near the i64 limit of minor units draw without overflow
    let mut big = report_like();
    for s in &mut big.series {
        s.values = vec![i64::MAX as i128; 5];
    }
    parse(&stacked_bars(&big));
    let mut d = compare_like();
    d.against[0].1 = vec![i64::MIN as i128, i64::MAX as i128];
    parse(&delta_bars(&d));
}

#[test]
fn many_parties_have_distinct_fills() {
    let mut c = report_like();
    c.series = (0..20)
        .map(|i| Series {
            key: format!("P{i}"),
            name: format!("Party {i}"),
            values: vec![1_000_000_000 + i as i128; 5],
            muted: false,
        })
        .collect();
    let svg = stacked_bars(&c);
    let doc = parse(&svg);
    let mut fills: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("data-category") == Some("FY2022"))
        .filter_map(|n| n.attribute("fill"))
        .collect();
    assert_eq!(fills.len(), 20);
    fills.sort_unstable();
    fills.dedup();
    assert_eq!(fills.len(), 20, "two parties share a fill");
    // every pattern a fill names is defined
    for f in fills.iter().filter_map(|f| f.strip_prefix("url(#")?.strip_suffix(')')) {
        assert!(
            doc.descendants().any(|n| n.attribute("id") == Some(f)),
            "no pattern {f}"
        );
    }
}
