//! SVG charts, written by hand: plain SVG 1.1 that any browser opens, no
//! script, no external font, a fixed colour-blind-safe palette (Okabe–Ito)
//! and an accessible `<title>`/`<desc>`. Each chart is a pure function of a
//! plain input type, and the same input gives the same bytes.
//!
//! Money comes in as `i128` minor units. Floats are used only for pixel
//! coordinates (printed with one fixed decimal); every printed amount is
//! formatted from the exact integer by `costshare_core::money`. Every shape
//! that stands for an amount carries the exact figure in its `<title>` (a
//! tooltip) and in `data-amount`, so a test can read the figures back.
//!
//! - [`stacked_bars`]: one bar per fiscal year stacked by party (for `report`).
//! - [`delta_bars`]: the delta per party, one bar per compared agreement
//!   (for `compare`).
//! - [`ceiling_use`]: each capped layer's cumulative use against its cap over
//!   time, one panel per ceiling stacked vertically (for `ceilings`).
//!
//! [`report_bars`] builds the [`StackedBars`] of a `report` by party and
//! fiscal year.

use crate::query::ReportResult;
use crate::run::Provenance;
use costshare_core::calendar::{Date, FiscalYear};
use costshare_core::money::format_grouped;
use costshare_core::num::rhe_u128;
use costshare_core::report::Dim;
use std::fmt::Write;

/// One series of a stacked bar chart: a name and a value per category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// A short key for machines (`data-series`), e.g. the party id.
    pub key: String,
    /// The legend's name.
    pub name: String,
    /// One value per category (x label), minor units; missing ones count as 0.
    pub values: Vec<i128>,
    /// Drawn grey and hatched (UNALLOCATED), and stacked last by the caller.
    pub muted: bool,
}

/// Stacked bars: x = categories (fiscal years), each bar stacked by series (parties).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackedBars {
    pub title: String,
    /// A short line under the title (as-of date, provenance).
    pub note: String,
    /// The currency code, shown on the y axis.
    pub unit_label: String,
    pub currency_decimals: u32,
    /// The x labels.
    pub categories: Vec<String>,
    pub series: Vec<Series>,
}

/// Deltas per party: one group of bars per party, one bar per compared agreement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaBars {
    pub title: String,
    pub note: String,
    pub unit_label: String,
    pub currency_decimals: u32,
    /// The row labels (parties, UNALLOCATED last if shown).
    pub parties: Vec<String>,
    /// Per compared agreement: its name (for the legend) and the delta per
    /// party (amount − amount under it), minor units.
    pub against: Vec<(String, Vec<i128>)>,
}

/// One cap period of a ceiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapPeriod {
    /// `FY2023`, `2023-06`, `FY2023-Q2`, `term`.
    pub label: String,
    /// First and last day of the period.
    pub start: Date,
    pub end: Date,
    /// The cap, in the ceiling's unit (minor units for money).
    pub cap: i128,
    /// Cumulative use after each date with use, in date order.
    pub steps: Vec<(Date, i128)>,
    /// The date use reached the cap, if it did.
    pub bound_on: Option<Date>,
    /// For a period still open: the as-of date, where the use line stops
    /// (`None`: the period has ended and the line runs to its last day).
    pub known_until: Option<Date>,
    /// For a period still open: the date its run rate reaches the cap,
    /// drawn as a dotted projection and a hollow marker (`None`: it will not).
    pub forecast_bound_on: Option<Date>,
}

/// One capped layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceiling {
    /// e.g. `labor · layer 1`.
    pub label: String,
    /// A currency code or a unit (`workers`).
    pub unit_label: String,
    /// Decimals of the amounts (the currency's; 0 for head counts).
    pub decimals: u32,
    /// In date order.
    pub periods: Vec<CapPeriod>,
}

/// Ceilings' use over time, one panel per ceiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeilingUse {
    pub title: String,
    pub note: String,
    pub ceilings: Vec<Ceiling>,
}

/// Okabe–Ito colours, ordered for contrast on white (yellow last).
const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
];
const GREY: &str = "#6E6E6E";
const INK: &str = "#222222";
const GRID: &str = "#DDDDDD";
const FONT: &str = "font-family=\"sans-serif\"";
const WIDTH: f64 = 900.0;

/// Text for XML: the five special characters escaped, and characters XML 1.0
/// cannot carry (control characters) replaced by U+FFFD.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A pixel coordinate with one fixed decimal (no `-0.0`).
fn px(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 { "0.0".into() } else { format!("{r:.1}") }
}

/// At most `max` characters, an ellipsis marking a cut (display only; the
/// full text stays in the `<title>`).
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Estimated width of text in pixels at `size` (sans-serif averages about
/// 0.6 em per character); for layout only.
fn text_w(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

fn pow10(k: u32) -> i128 {
    10i128.saturating_pow(k)
}

/// A "nice" step (1, 2 or 5 × 10^k minor units) that splits `span` into at
/// most about five intervals, with its exponent k.
fn nice_step(span: i128) -> (i128, u32) {
    let raw = (span.max(1) + 4) / 5; // ceiling of span / 5
    let mut k = 0u32;
    while k < 37 && pow10(k + 1) <= raw {
        k += 1;
    }
    let p = pow10(k);
    for m in [1, 2, 5] {
        if m * p >= raw {
            return (m * p, k);
        }
    }
    if k < 37 { (pow10(k + 1), k + 1) } else { (p, k) }
}

/// An axis from `lo` to `hi` (0 always inside) on nice ticks.
struct Axis {
    lo: i128,
    hi: i128,
    step: i128,
    /// Exponent of the step (step = 1, 2 or 5 × 10^k).
    k: u32,
    /// The suffix and its power of ten in minor units.
    unit: (&'static str, u32),
}

impl Axis {
    fn new(min: i128, max: i128, decimals: u32) -> Axis {
        let (min, max) = (min.min(0), max.max(0));
        let (step, k) = nice_step(max.saturating_sub(min));
        // floor and ceiling to whole steps
        let hi = if max % step == 0 { max } else { (max / step + 1) * step };
        let lo = if min % step == 0 { min } else { (min / step - 1) * step };
        let hi = if hi == lo { lo + step } else { hi };
        let big = hi.unsigned_abs().max(lo.unsigned_abs());
        Axis {
            lo,
            hi,
            step,
            k,
            unit: unit_for(big, decimals),
        }
    }
    fn ticks(&self) -> Vec<i128> {
        let mut v = Vec::new();
        let mut t = self.lo;
        while t <= self.hi && v.len() < 50 {
            v.push(t);
            t += self.step;
        }
        v
    }
    /// Where `v` falls between `a` (at lo) and `b` (at hi), in pixels.
    fn at(&self, v: i128, a: f64, b: f64) -> f64 {
        let span = (self.hi - self.lo) as f64;
        a + (b - a) * ((v - self.lo) as f64 / span)
    }
    /// A tick label: exact (the step is a multiple of the shown precision).
    fn label(&self, v: i128, decimals: u32) -> String {
        let (suffix, e) = self.unit;
        if e == 0 {
            return format_grouped(v, decimals);
        }
        if v == 0 {
            return "0".into();
        }
        let shown = e.saturating_sub(self.k);
        // exact: v is a multiple of 10^k and e - shown <= k
        format_grouped(v / pow10(e - shown), shown) + suffix
    }
}

/// The suffix for amounts up to `big` minor units: `bn`, `m` or none.
fn unit_for(big: u128, decimals: u32) -> (&'static str, u32) {
    if big >= 10u128.saturating_pow(decimals + 9) {
        (" bn", decimals + 9)
    } else if big >= 10u128.saturating_pow(decimals + 6) {
        (" m", decimals + 6)
    } else {
        ("", 0)
    }
}

/// An amount in few characters: `12.3 bn`, `4.55 m` (three significant
/// digits or more, rounded half to even), smaller amounts exactly with thousands separators; `signed`
/// puts `+` before a positive amount.
pub fn compact(v: i128, decimals: u32, signed: bool) -> String {
    let (suffix, e) = unit_for(v.unsigned_abs(), decimals);
    let body = if e == 0 {
        format_grouped(v.abs(), decimals)
    } else {
        // display only: three significant digits or more (two decimals
        // below 10 of the unit, else one), rounded half to even
        let d = if v.unsigned_abs() < 10u128.pow(e + 1) { 2 } else { 1 };
        let n = rhe_u128(v.unsigned_abs(), 10u128.pow(e - d)) as i128;
        format_grouped(n, d) + suffix
    };
    // the minus sign of `format_grouped`, so axis and labels agree
    let sign = if v < 0 {
        "-"
    } else if signed && v > 0 {
        "+"
    } else {
        ""
    };
    format!("{sign}{body}")
}

/// The exact amount with separators (tooltips).
fn exact(v: i128, decimals: u32) -> String {
    format_grouped(v, decimals)
}

fn open(out: &mut String, h: f64, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"chart-title chart-desc\" {FONT} font-size=\"12\">\n<title id=\"chart-title\">{t}</title>\n<desc id=\"chart-desc\">{d}</desc>\n<rect width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n",
        w = px(WIDTH),
        h = px(h),
        t = esc(title),
        d = esc(desc)
    );
}

fn heading(out: &mut String, title: &str, note: &str) {
    let _ = writeln!(
        out,
        "<text x=\"20.0\" y=\"28.0\" font-size=\"17\" font-weight=\"bold\" fill=\"{INK}\">{}</text>",
        esc(&clip(title, 80))
    );
    if !note.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"20.0\" y=\"47.0\" font-size=\"11\" fill=\"{GREY}\">{}</text>",
            esc(&clip(note, 140))
        );
    }
}

fn no_data(out: &mut String, y: f64) {
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"16\" text-anchor=\"middle\" fill=\"{GREY}\">no data</text>",
        px(WIDTH / 2.0),
        px(y)
    );
}

fn hatch_def(out: &mut String) {
    out.push_str(
        "<defs><pattern id=\"hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#D9D9D9\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#8C8C8C\" stroke-width=\"2\"/></pattern></defs>\n",
    );
}

/// The legend's entries laid out in rows across `width` from `x0`: the
/// height it takes, and the elements.
fn legend(entries: &[(String, String)], x0: f64, y0: f64, width: f64) -> (f64, String) {
    let mut out = String::new();
    let (mut x, mut y) = (x0, y0);
    for (name, fill) in entries {
        let shown = clip(name, 40);
        let w = 18.0 + text_w(&shown, 12.0) + 18.0;
        if x > x0 && x + w > x0 + width {
            x = x0;
            y += 20.0;
        }
        let _ = writeln!(
            out,
            "<g><rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{fill}\" stroke=\"{GREY}\" stroke-width=\"0.5\"/><text x=\"{}\" y=\"{}\" fill=\"{INK}\">{}</text></g>",
            px(x),
            px(y),
            px(x + 17.0),
            px(y + 10.5),
            esc(&shown)
        );
        x += w;
    }
    let h = if entries.is_empty() { 0.0 } else { y - y0 + 20.0 };
    (h, out)
}

fn legend_height(entries: &[(String, String)], width: f64) -> f64 {
    legend(entries, 0.0, 0.0, width).0
}

/// Series `i`'s fill: the palette's colours, then (past seven series) the
/// same colours under white stripes, dots and bars, so no two series of up
/// to 28 look alike.
fn fill_of(i: usize, muted: bool) -> String {
    if muted {
        "url(#hatch)".into()
    } else if i < PALETTE.len() {
        PALETTE[i].into()
    } else {
        format!("url(#s{i})")
    }
}

/// The patterns of series 7 to `n - 1` (see [`fill_of`]).
fn series_defs(out: &mut String, n: usize) {
    if n <= PALETTE.len() {
        return;
    }
    out.push_str("<defs>");
    for i in PALETTE.len()..n {
        let c = PALETTE[i % PALETTE.len()];
        let mark = match (i / PALETTE.len()) % 3 {
            1 => "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#FFFFFF\" stroke-width=\"1.5\"/>",
            2 => "<circle cx=\"3\" cy=\"3\" r=\"1.3\" fill=\"#FFFFFF\"/>",
            _ => "<line x1=\"0\" y1=\"3\" x2=\"6\" y2=\"3\" stroke=\"#FFFFFF\" stroke-width=\"1.5\"/>",
        };
        let rot = if (i / PALETTE.len()) % 3 == 1 {
            " patternTransform=\"rotate(45)\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<pattern id=\"s{i}\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\"{rot}><rect width=\"6\" height=\"6\" fill=\"{c}\"/>{mark}</pattern>"
        );
    }
    out.push_str("</defs>\n");
}

/// Horizontal grid lines and the y axis labels of `axis` over a plot from
/// `top` to `bottom`, `left` to `right`.
fn y_grid(out: &mut String, axis: &Axis, decimals: u32, left: f64, right: f64, top: f64, bottom: f64) {
    for t in axis.ticks() {
        let y = axis.at(t, bottom, top);
        let stroke = if t == 0 { GREY } else { GRID };
        let _ = writeln!(
            out,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{stroke}\" stroke-width=\"1\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            px(left),
            px(right),
            px(left - 6.0),
            px(y + 4.0),
            esc(&axis.label(t, decimals)),
            y = px(y)
        );
    }
}

/// Stacked bars per category (fiscal year) by series (party).
pub fn stacked_bars(c: &StackedBars) -> String {
    let dec = c.currency_decimals;
    let n = c.categories.len();
    let value = |s: &Series, i: usize| s.values.get(i).copied().unwrap_or(0);
    let entries: Vec<(String, String)> = c
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), fill_of(i, s.muted)))
        .collect();
    let (left, right, top) = (100.0, WIDTH - 30.0, 90.0);
    let plot_h = 340.0;
    let bottom = top + plot_h;
    let leg_y = bottom + 40.0;
    let leg_h = legend_height(&entries, right - left);
    let height = leg_y + leg_h + 10.0;
    let mut out = String::new();
    let has_data = n > 0 && c.series.iter().any(|s| (0..n).any(|i| value(s, i) != 0));
    let mut desc = format!(
        "Stacked bars in {}: {} bars ({}), each stacked by {}.",
        c.unit_label,
        n,
        c.categories.join(", "),
        c.series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    if !has_data {
        desc = "No data.".into();
    }
    open(&mut out, height, &c.title, &desc);
    hatch_def(&mut out);
    series_defs(&mut out, c.series.len());
    heading(&mut out, &c.title, &c.note);
    if !has_data {
        no_data(&mut out, top + plot_h / 2.0);
        out.push_str("</svg>\n");
        return out;
    }
    // positive amounts stack up from 0, negative ones down
    let mut max = 0i128;
    let mut min = 0i128;
    for i in 0..n {
        let pos: i128 = c.series.iter().map(|s| value(s, i).max(0)).sum();
        let neg: i128 = c.series.iter().map(|s| value(s, i).min(0)).sum();
        max = max.max(pos);
        min = min.min(neg);
    }
    let axis = Axis::new(min, max, dec);
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"{GREY}\">{}</text>",
        px(left - 6.0),
        px(top - 14.0),
        esc(&format!("{}{}", c.unit_label, axis.unit.0))
    );
    y_grid(&mut out, &axis, dec, left, right, top, bottom);
    let slot = (right - left) / n as f64;
    let bar_w = (slot * 0.6).min(90.0);
    for (i, cat) in c.categories.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        let x = cx - bar_w / 2.0;
        let _ = writeln!(out, "<g aria-label=\"{}\">", esc(cat));
        let (mut up, mut down) = (0i128, 0i128);
        for (k, s) in c.series.iter().enumerate() {
            let v = value(s, i);
            if v == 0 {
                continue;
            }
            let (a, b) = if v > 0 {
                up += v;
                (up - v, up)
            } else {
                down += v;
                (down - v, down)
            };
            let (ya, yb) = (axis.at(a, bottom, top), axis.at(b, bottom, top));
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#FFFFFF\" stroke-width=\"0.5\" data-series=\"{}\" data-category=\"{}\" data-amount=\"{}\"><title>{}</title></rect>",
                px(x),
                px(ya.min(yb)),
                px(bar_w),
                px((ya - yb).abs()),
                fill_of(k, s.muted),
                esc(&s.key),
                esc(cat),
                costshare_core::money::format_minor(v, dec),
                esc(&format!("{} · {}: {} {}", s.name, cat, exact(v, dec), c.unit_label))
            );
        }
        let total = up + down;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{INK}\" data-total=\"{}\">{}<title>{}</title></text>",
            px(cx),
            px(axis.at(up, bottom, top) - 5.0),
            costshare_core::money::format_minor(total, dec),
            esc(&compact(total, dec, false)),
            esc(&format!("{} total: {} {}", cat, exact(total, dec), c.unit_label))
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>\n</g>",
            px(cx),
            px(bottom + 18.0),
            esc(&clip(cat, ((slot / 7.2) as usize).max(3)))
        );
    }
    let (_, leg) = legend(&entries, left, leg_y, right - left);
    out.push_str(&leg);
    out.push_str("</svg>\n");
    out
}

/// The delta per party: horizontal bars around zero, one per compared agreement.
pub fn delta_bars(c: &DeltaBars) -> String {
    let dec = c.currency_decimals;
    let value = |a: &(String, Vec<i128>), p: usize| a.1.get(p).copied().unwrap_or(0);
    let groups = c.against.len();
    let has_data = !c.parties.is_empty() && groups > 0;
    let label_w = c
        .parties
        .iter()
        .map(|p| text_w(&clip(p, 28), 12.0))
        .fold(60.0, f64::max)
        .min(200.0);
    let entries: Vec<(String, String)> = if groups > 1 {
        c.against
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("vs {}", a.0), fill_of(i, false)))
            .collect()
    } else {
        Vec::new()
    };
    let (left, right, top) = (20.0 + label_w + 12.0, WIDTH - 20.0, 90.0);
    let bar_h = 18.0;
    let group_h = bar_h * groups as f64 + 14.0;
    let plot_h = if has_data {
        group_h * c.parties.len() as f64
    } else {
        200.0
    };
    let bottom = top + plot_h;
    let leg_y = bottom + 36.0;
    let leg_h = legend_height(&entries, right - left);
    let height = leg_y + leg_h + 10.0;
    let mut out = String::new();
    let desc = if has_data {
        format!(
            "Delta in {} per party ({} rows, {} comparison{}).",
            c.unit_label,
            c.parties.len(),
            groups,
            if groups == 1 { "" } else { "s" }
        )
    } else {
        "No data.".into()
    };
    open(&mut out, height, &c.title, &desc);
    series_defs(&mut out, groups);
    heading(&mut out, &c.title, &c.note);
    if !has_data {
        no_data(&mut out, top + plot_h / 2.0);
        out.push_str("</svg>\n");
        return out;
    }
    let mut min = 0i128;
    let mut max = 0i128;
    for a in &c.against {
        for p in 0..c.parties.len() {
            min = min.min(value(a, p));
            max = max.max(value(a, p));
        }
    }
    let axis = Axis::new(min, max, dec);
    // room for the value labels beyond the bars' ends
    let pad = 80.0;
    let (pl, pr) = (left + pad, right - pad);
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{GREY}\">{}</text>",
        px(axis.at(0, pl, pr)),
        px(top - 22.0),
        esc(&format!("delta, {}{}", c.unit_label, axis.unit.0))
    );
    for t in axis.ticks() {
        let x = axis.at(t, pl, pr);
        let stroke = if t == 0 { GREY } else { GRID };
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{stroke}\" stroke-width=\"1\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
            px(top - 4.0),
            px(bottom),
            px(bottom + 18.0),
            esc(&axis.label(t, dec)),
            x = px(x)
        );
    }
    let x0 = axis.at(0, pl, pr);
    for (p, party) in c.parties.iter().enumerate() {
        let gy = top + group_h * p as f64 + 7.0;
        let _ = writeln!(out, "<g aria-label=\"{}\">", esc(party));
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{INK}\">{}<title>{}</title></text>",
            px(left - 8.0),
            px(gy + bar_h * groups as f64 / 2.0 + 4.0),
            esc(&clip(party, 28)),
            esc(party)
        );
        for (g, a) in c.against.iter().enumerate() {
            let v = value(a, p);
            let y = gy + bar_h * g as f64;
            let x1 = axis.at(v, pl, pr);
            let (x, w) = (x0.min(x1), (x1 - x0).abs());
            let label = compact(v, dec, true);
            let (lx, anchor) = if v < 0 {
                (x - 5.0, "end")
            } else {
                (x + w + 5.0, "start")
            };
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" data-party=\"{}\" data-against=\"{}\" data-amount=\"{}\"><title>{}</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"{INK}\">{}</text>",
                px(x),
                px(y + 2.0),
                px(w.max(if v == 0 { 0.0 } else { 1.0 })),
                px(bar_h - 4.0),
                fill_of(g, false),
                esc(party),
                esc(&a.0),
                costshare_core::money::format_minor(v, dec),
                esc(&format!(
                    "{party} vs {}: {}{} {}",
                    a.0,
                    if v > 0 { "+" } else { "" },
                    exact(v, dec),
                    c.unit_label
                )),
                px(lx),
                px(y + bar_h / 2.0 + 4.0),
                esc(&label)
            );
        }
        out.push_str("</g>\n");
    }
    let (_, leg) = legend(&entries, left, leg_y, right - left);
    out.push_str(&leg);
    out.push_str("</svg>\n");
    out
}

/// Each ceiling's cumulative use over time against its cap: a panel per
/// ceiling, a step line per cap period, the cap as a dashed line, the day use
/// reached the cap marked.
pub fn ceiling_use(c: &CeilingUse) -> String {
    let panels: Vec<&Ceiling> = c.ceilings.iter().filter(|x| !x.periods.is_empty()).collect();
    let (left, right, top) = (100.0, WIDTH - 30.0, 70.0);
    let panel_h = 200.0;
    let height = if panels.is_empty() {
        300.0
    } else {
        top + panel_h * panels.len() as f64 + 10.0
    };
    let mut out = String::new();
    let desc = if panels.is_empty() {
        "No data.".into()
    } else {
        format!("Cumulative use against the cap of {} ceiling(s).", panels.len())
    };
    open(&mut out, height, &c.title, &desc);
    heading(&mut out, &c.title, &c.note);
    if panels.is_empty() {
        no_data(&mut out, 170.0);
        out.push_str("</svg>\n");
        return out;
    }
    let line = PALETTE[0];
    let cap_c = PALETTE[5];
    for (n, ceil) in panels.iter().enumerate() {
        let dec = ceil.decimals;
        let ptop = top + panel_h * n as f64 + 36.0;
        let pbottom = ptop + panel_h - 80.0;
        let first = ceil.periods.iter().map(|p| p.start.to_days()).min().unwrap_or(0);
        // the x axis runs to the day after the last period
        let last = ceil
            .periods
            .iter()
            .map(|p| p.end.to_days() + 1)
            .max()
            .unwrap_or(first + 1);
        let last = last.max(first + 1);
        let xd = |d: i64| left + (right - left) * ((d - first) as f64 / (last - first) as f64);
        let max = ceil
            .periods
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.1).chain([p.cap]))
            .max()
            .unwrap_or(0);
        let min = ceil
            .periods
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.1))
            .min()
            .unwrap_or(0);
        let axis = Axis::new(min, max, dec);
        let bound: Vec<&CapPeriod> = ceil.periods.iter().filter(|p| p.bound_on.is_some()).collect();
        let summary = match bound.first().and_then(|p| p.bound_on) {
            Some(d) => format!(
                "bound in {} of {} period{}, first on {d}",
                bound.len(),
                ceil.periods.len(),
                if ceil.periods.len() == 1 { "" } else { "s" }
            ),
            None => format!(
                "not bound in {} period{}",
                ceil.periods.len(),
                if ceil.periods.len() == 1 { "" } else { "s" }
            ),
        };
        let _ = writeln!(out, "<g aria-label=\"{}\">", esc(&ceil.label));
        let _ = writeln!(
            out,
            "<text x=\"20.0\" y=\"{}\" font-size=\"13\" font-weight=\"bold\" fill=\"{INK}\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"{GREY}\">{}</text>",
            px(ptop - 14.0),
            esc(&clip(
                &format!("{} ({}{})", ceil.label, ceil.unit_label, axis.unit.0),
                70
            )),
            px(right),
            px(ptop - 14.0),
            esc(&summary)
        );
        y_grid(&mut out, &axis, dec, left, right, ptop, pbottom);
        // x labels: at most about eight period starts
        let every = ceil.periods.len().div_ceil(8).max(1);
        for (i, p) in ceil.periods.iter().enumerate() {
            let x = xd(p.start.to_days());
            let _ = writeln!(
                out,
                "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{GRID}\" stroke-width=\"1\"/>",
                px(ptop),
                px(pbottom + 4.0),
                x = px(x)
            );
            if i % every == 0 {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" fill=\"{INK}\" font-size=\"11\">{}</text>",
                    px(x + 2.0),
                    px(pbottom + 16.0),
                    esc(&clip(&p.label, 14))
                );
            }
        }
        let y0 = axis.at(0, pbottom, ptop);
        for p in &ceil.periods {
            let (xs, xe) = (xd(p.start.to_days()), xd(p.end.to_days() + 1));
            let yc = axis.at(p.cap, pbottom, ptop);
            let _ = writeln!(
                out,
                "<line x1=\"{}\" y1=\"{yc}\" x2=\"{}\" y2=\"{yc}\" stroke=\"{cap_c}\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\" data-period=\"{}\" data-cap=\"{}\"><title>{}</title></line>",
                px(xs),
                px(xe),
                esc(&p.label),
                costshare_core::money::format_minor(p.cap, dec),
                esc(&format!(
                    "{} cap {}: {} {}",
                    ceil.label,
                    p.label,
                    exact(p.cap, dec),
                    ceil.unit_label
                )),
                yc = px(yc)
            );
            let mut d = format!("M{} {}", px(xs), px(y0));
            let mut y = y0;
            let mut used = 0i128;
            for (date, cum) in &p.steps {
                let x = xd(date.to_days());
                y = axis.at(*cum, pbottom, ptop);
                used = *cum;
                let _ = write!(d, " H{} V{}", px(x), px(y));
            }
            // an open period's line stops at the end of its as-of day
            let xk = p
                .known_until
                .map_or(xe, |k| xd(k.to_days() + 1).clamp(xs, xe))
                .max(xd(p.steps.last().map_or(0, |s| s.0.to_days())).min(xe));
            let _ = write!(d, " H{}", px(xk));
            let _ = writeln!(
                out,
                "<path d=\"{d}\" fill=\"none\" stroke=\"{line}\" stroke-width=\"2\" data-period=\"{}\" data-used=\"{}\"><title>{}</title></path>",
                esc(&p.label),
                costshare_core::money::format_minor(used, dec),
                esc(&format!(
                    "{} {}: used {} of {} {}",
                    ceil.label,
                    p.label,
                    exact(used, dec),
                    exact(p.cap, dec),
                    ceil.unit_label
                ))
            );
            if let (Some(f), None) = (p.forecast_bound_on, p.bound_on) {
                let xf = xd(f.to_days()).clamp(left, right);
                let _ = writeln!(
                    out,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{line}\" stroke-width=\"1.5\" stroke-dasharray=\"2 3\"/><circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"#FFFFFF\" stroke=\"{INK}\" stroke-width=\"1.5\" data-forecast-bound-on=\"{f}\"><title>{}</title></circle>",
                    px(xk),
                    px(y),
                    px(xf),
                    px(yc),
                    px(xf),
                    px(yc),
                    esc(&format!(
                        "{} {}: at its run rate, the cap is reached on {f}",
                        ceil.label, p.label
                    ))
                );
            }
            if let Some(b) = p.bound_on {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{INK}\" data-bound-on=\"{b}\"><title>{}</title></circle>",
                    px(xd(b.to_days())),
                    px(yc),
                    esc(&format!("{} {}: cap reached on {b}", ceil.label, p.label))
                );
            }
        }
        if let Some((p, b)) = bound.first().and_then(|p| p.bound_on.map(|b| (p, b))) {
            let x = xd(b.to_days());
            let y = axis.at(p.cap, pbottom, ptop);
            let anchor = if x > (left + right) / 2.0 { "end" } else { "start" };
            let dx = if anchor == "end" { -7.0 } else { 7.0 };
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"{INK}\">bound {b}</text>",
                px(x + dx),
                px(y - 7.0)
            );
        }
        out.push_str("</g>\n");
    }
    // one legend for every panel, under the note, on the right
    if panels.iter().any(|c| {
        c.periods
            .iter()
            .any(|p| p.forecast_bound_on.is_some() && p.bound_on.is_none())
    }) {
        let _ = writeln!(
            out,
            "<g><circle cx=\"{}\" cy=\"64.0\" r=\"4\" fill=\"#FFFFFF\" stroke=\"{INK}\" stroke-width=\"1.5\"/><text x=\"{}\" y=\"68.0\" fill=\"{INK}\">forecast</text></g>",
            px(right - 410.0),
            px(right - 402.0)
        );
    }
    let _ = writeln!(
        out,
        "<g><line x1=\"{}\" y1=\"64.0\" x2=\"{}\" y2=\"64.0\" stroke=\"{line}\" stroke-width=\"2\"/><text x=\"{}\" y=\"68.0\" fill=\"{INK}\">cumulative use</text><line x1=\"{}\" y1=\"64.0\" x2=\"{}\" y2=\"64.0\" stroke=\"{cap_c}\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/><text x=\"{}\" y=\"68.0\" fill=\"{INK}\">cap</text><circle cx=\"{}\" cy=\"64.0\" r=\"4\" fill=\"{INK}\"/><text x=\"{}\" y=\"68.0\" fill=\"{INK}\">cap reached</text></g>",
        px(right - 320.0),
        px(right - 300.0),
        px(right - 295.0),
        px(right - 180.0),
        px(right - 160.0),
        px(right - 155.0),
        px(right - 110.0),
        px(right - 102.0)
    );
    out.push_str("</svg>\n");
    out
}

/// The short provenance note: as-of date, agreement and short hash, journal
/// head, provisional lines.
pub fn provenance_note(p: &Provenance) -> String {
    let mut s = format!("as of {}", p.as_of);
    if let Some(a) = p.agreements.last() {
        let _ = write!(s, " · agreement {} {}", a.id, a.sha256.get(..12).unwrap_or(&a.sha256));
    }
    if p.agreements.len() > 1 {
        let _ = write!(s, " ({} versions)", p.agreements.len());
    }
    if let Some(j) = &p.journal {
        let _ = write!(
            s,
            " · journal {} entries, head {}",
            j.entries,
            j.head.get(..12).unwrap_or(&j.head)
        );
    }
    let _ = write!(s, " · {} lines", p.lines);
    if p.provisional > 0 {
        let _ = write!(s, ", {} provisional", p.provisional);
    }
    s
}

/// The stacked bars of a report by party and fiscal year (its `dims` must be
/// `party, fiscal_year` in either order; other rows are ignored): the term's
/// fiscal years (and any other year a row names) in order, the parties in
/// the agreement's order, UNALLOCATED last and only when it holds something.
pub fn report_bars(r: &ReportResult) -> StackedBars {
    let a = &r.agreement;
    let pi = r.dims.iter().position(|d| *d == Dim::Party);
    let fi = r.dims.iter().position(|d| *d == Dim::FiscalYear);
    let mut years: Vec<i32> = (0..a.fy_count as i32).map(|k| a.first_fy + k).collect();
    if let Some(fi) = fi {
        for row in &r.rows {
            if let Some(fy) = row.values.get(fi).and_then(|v| FiscalYear::parse(v))
                && !years.contains(&fy.0)
            {
                years.push(fy.0);
            }
        }
    }
    years.sort_unstable();
    let mut names: Vec<String> = a.parties.iter().map(|p| p.id.clone()).collect();
    let mut series: Vec<Series> = a
        .parties
        .iter()
        .map(|p| Series {
            key: p.id.clone(),
            name: if p.name.is_empty() || p.name == p.id {
                p.id.clone()
            } else {
                format!("{} ({})", p.name, p.id)
            },
            values: vec![0; years.len()],
            muted: false,
        })
        .collect();
    names.push(crate::run::party_name(a, a.parties.len()).to_string());
    series.push(Series {
        key: names[names.len() - 1].clone(),
        name: names[names.len() - 1].clone(),
        values: vec![0; years.len()],
        muted: true,
    });
    if let (Some(pi), Some(fi)) = (pi, fi) {
        for row in &r.rows {
            let (Some(p), Some(y)) = (row.values.get(pi), row.values.get(fi)) else {
                continue;
            };
            let Some(s) = names.iter().position(|n| n == p) else {
                continue;
            };
            let Some(y) = FiscalYear::parse(y).and_then(|fy| years.iter().position(|&v| v == fy.0)) else {
                continue;
            };
            series[s].values[y] += row.amount as i128;
        }
    }
    if series.last().is_some_and(|s| s.values.iter().all(|&v| v == 0)) {
        series.pop();
    }
    StackedBars {
        title: a.title.clone(),
        note: provenance_note(&r.provenance),
        unit_label: a.currency.code().to_string(),
        currency_decimals: a.currency.decimals(),
        categories: years.into_iter().map(|y| FiscalYear(y).to_string()).collect(),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(1), (1, 0));
        assert_eq!(nice_step(10), (2, 0));
        assert_eq!(nice_step(23), (5, 0));
        assert_eq!(nice_step(1_000), (200, 2));
        assert_eq!(nice_step(1_055_100_000_000), (500_000_000_000, 11));
        let a = Axis::new(-30, 1_000, 0);
        assert_eq!((a.lo, a.hi, a.step), (-500, 1_000, 500));
    }

    #[test]
    fn tick_labels_are_exact() {
        // 1,055.1 bn yen: ticks every 500 bn
        let a = Axis::new(0, 1_055_100_000_000, 0);
        let labels: Vec<String> = a.ticks().iter().map(|&t| a.label(t, 0)).collect();
        assert_eq!(labels, ["0", "500 bn", "1,000 bn", "1,500 bn"]);
        // 2.5 m dollars in cents: 500,000.00 steps shown as 0.5 m
        let a = Axis::new(0, 250_000_000, 2);
        assert_eq!(a.label(a.step, 2), "0.5 m");
        // 250,000 dollars: no suffix, every cent shown
        let a = Axis::new(0, 25_000_000, 2);
        assert_eq!(a.label(a.step, 2), "50,000.00");
        let a = Axis::new(0, 999, 2);
        assert_eq!(a.label(a.step, 2), "2.00");
    }

    #[test]
    fn compact_amounts() {
        assert_eq!(compact(1_126_250_000_000, 0, true), "+1,126.2 bn");
        assert_eq!(compact(-1_126_350_000_000, 0, true), "-1,126.4 bn");
        assert_eq!(compact(4_550_000, 0, false), "4.55 m");
        assert_eq!(compact(4_545_000, 0, false), "4.54 m");
        assert_eq!(compact(455_500_000, 2, false), "4.56 m");
        assert_eq!(compact(123_456, 2, true), "+1,234.56");
        assert_eq!(compact(0, 2, true), "0.00");
    }

    #[test]
    fn escaping() {
        assert_eq!(esc("<a & 'b\">\u{1}"), "&lt;a &amp; &apos;b&quot;&gt;\u{FFFD}");
    }

    #[test]
    fn pixels_have_one_decimal() {
        assert_eq!(px(-0.01), "0.0");
        assert_eq!(px(12.345), "12.3");
        assert_eq!(px(3.0), "3.0");
    }
}
