//! The commands: read inputs, call the core, format the result.

use crate::output::{Align, Table, csv_record};
use crate::{CliError, Format, Inputs};
use costshare_core::agreement::Agreement;
use costshare_core::calendar::{Date, date_from_unix_seconds};
use costshare_core::costs::{Costs, Rates, RowError, parse_costs, parse_rates_partial};
use costshare_core::diag::{self, Severity};
use costshare_core::money::{format_grouped, format_minor};
use costshare_core::report::{self, Dim};
use costshare_core::{alloc, explain, load, stream};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The agreement and what was derived from its file.
pub struct LoadedAgreement {
    pub agreement: Agreement,
    pub sha256: String,
    pub warnings: String,
}

pub fn read(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::Input(format!(
            "costshare: error: cannot read {what} `{}`: {e}",
            path.display()
        ))
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Load and validate an agreement file; diagnostics rendered for the terminal.
pub fn load_agreement_text(name: &str, bytes: &[u8]) -> Result<LoadedAgreement, CliError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        CliError::Input(format!(
            "costshare: error: agreement `{name}` is not valid UTF-8 (byte {})",
            e.valid_up_to()
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let loaded = load::load(text);
    let mut rendered = String::new();
    let mut errors = 0;
    for d in &loaded.diagnostics {
        rendered.push_str(&diag::render(d, name, text));
        rendered.push('\n');
        if d.severity == Severity::Error {
            errors += 1;
        }
    }
    match loaded.agreement {
        Some(agreement) if errors == 0 => Ok(LoadedAgreement {
            agreement,
            sha256: sha256_hex(bytes),
            warnings: rendered,
        }),
        _ => {
            rendered.push_str(&format!(
                "costshare: error: {name}: {errors} problem{} found\n",
                if errors == 1 { "" } else { "s" }
            ));
            Err(CliError::Input(rendered))
        }
    }
}

pub fn load_agreement(path: &Path) -> Result<LoadedAgreement, CliError> {
    let bytes = read(path, "agreement")?;
    let la = load_agreement_text(&path.display().to_string(), &bytes)?;
    if !la.warnings.is_empty() {
        eprint!("{}", la.warnings);
    }
    Ok(la)
}

/// Every bad row as `FILE:LINE, id ID: message`, then a summary line.
fn row_errors_text(file: &Path, what: &str, errors: &[RowError]) -> String {
    let mut s = String::new();
    for e in errors {
        s.push_str(&format!("{}:{e}\n", file.display()).replacen(":line ", ":", 1));
    }
    s.push_str(&format!(
        "costshare: error: {} bad row{} in {what} `{}`; nothing was used\n",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        file.display()
    ));
    s
}

pub fn parse_as_of(s: Option<&str>) -> Result<Date, CliError> {
    match s {
        Some(t) => Date::parse(t).ok_or_else(|| CliError::Usage(format!("--as-of `{t}` is not a date (YYYY-MM-DD)"))),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Ok(date_from_unix_seconds(secs))
        }
    }
}

/// The lines allocated under one agreement (a ledger has one part per
/// agreement version; files have one part).
pub struct RunPart {
    pub la: LoadedAgreement,
    pub costs: Costs,
    pub alloc: alloc::Allocation,
}

/// The journal a run was read from.
pub struct JournalInfo {
    pub entries: u64,
    pub head: String,
}

/// Everything a command needs: agreement(s), lines, allocation.
pub struct Run {
    pub parts: Vec<RunPart>,
    pub as_of: Date,
    pub journal: Option<JournalInfo>,
}

impl Run {
    /// The part whose agreement names the parties and titles the output (the
    /// latest version; versions keep the same parties and currency).
    pub fn main(&self) -> &RunPart {
        &self.parts[self.parts.len() - 1]
    }
    pub fn line_count(&self) -> usize {
        self.parts.iter().map(|p| p.costs.lines.len()).sum()
    }
    pub fn provisional_count(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.alloc.provisional.iter().filter(|&&x| x).count())
            .sum()
    }
    /// What the rendered outputs say about the run besides its rows.
    pub fn meta(&self) -> Meta<'_> {
        Meta {
            agreements: self.parts.iter().map(|p| &p.la).collect(),
            journal: self.journal.as_ref(),
            as_of: self.as_of,
            lines: self.line_count(),
            provisional: self.provisional_count(),
        }
    }
}

/// The facts around a report: agreements (the last one names the parties),
/// journal, as-of date, counts.
pub struct Meta<'a> {
    pub agreements: Vec<&'a LoadedAgreement>,
    pub journal: Option<&'a JournalInfo>,
    pub as_of: Date,
    pub lines: usize,
    pub provisional: usize,
}

impl Meta<'_> {
    fn main(&self) -> &LoadedAgreement {
        self.agreements[self.agreements.len() - 1]
    }

    /// Agreement hashes and the journal head, for JSON.
    pub fn provenance(&self) -> Value {
        let m = self.main();
        let mut v = json!({"agreement": {"id": m.agreement.id, "sha256": m.sha256}});
        if self.agreements.len() > 1 {
            v["agreement_versions"] = json!(
                self.agreements
                    .iter()
                    .map(|la| json!({"id": la.agreement.id, "sha256": la.sha256}))
                    .collect::<Vec<_>>()
            );
        }
        if let Some(j) = self.journal {
            v["journal"] = json!({"entries": j.entries, "head": j.head});
        }
        v
    }
}

/// The file inputs of a command, the agreement and rates already read.
struct FileInputs<'a> {
    la: LoadedAgreement,
    rates: Rates,
    rates_path: Option<&'a Path>,
    rate_errors: Vec<RowError>,
    costs: &'a Path,
    as_of: Date,
}

enum Prepared<'a> {
    Ledger(Run),
    Files(Box<FileInputs<'a>>),
}

fn prepare(inputs: &Inputs) -> Result<Prepared<'_>, CliError> {
    let as_of = parse_as_of(inputs.as_of.as_deref())?;
    let (agreement, costs) = match (&inputs.ledger, &inputs.agreement, &inputs.costs) {
        (Some(l), None, None) if inputs.rates.is_none() => {
            return crate::ledger_cmds::run_ledger(l, as_of).map(Prepared::Ledger);
        }
        (Some(_), _, _) => {
            return Err(CliError::Usage(
                "--ledger reads the agreement, costs and rates recorded in the ledger; do not give --agreement, --costs or --rates with it".into(),
            ));
        }
        (None, Some(a), Some(c)) => (a, c),
        (None, _, _) => {
            return Err(CliError::Usage(
                "give --agreement FILE and --costs FILE, or --ledger LEDGER".into(),
            ));
        }
    };
    let la = load_agreement(agreement)?;
    let (rates, rate_errors) = match &inputs.rates {
        Some(p) => {
            let b = read(p, "rates file")?;
            parse_rates_partial(&b, la.agreement.currency.code())
        }
        None => (Rates::empty(), Vec::new()),
    };
    Ok(Prepared::Files(Box::new(FileInputs {
        la,
        rates,
        rates_path: inputs.rates.as_deref(),
        rate_errors,
        costs: costs.as_path(),
        as_of,
    })))
}

fn run(inputs: &Inputs) -> Result<Run, CliError> {
    match prepare(inputs)? {
        Prepared::Ledger(r) => Ok(r),
        Prepared::Files(f) => run_files(*f),
    }
}

/// The general path: every line parsed, kept and allocated.
fn run_files(f: FileInputs<'_>) -> Result<Run, CliError> {
    let bytes = read(f.costs, "costs file")?;
    // check the costs even when some rates are bad, so every bad row of both
    // files is named in one run
    let parsed = parse_costs(&f.la.agreement, &bytes, &f.rates);
    drop(bytes);
    let mut msg = String::new();
    if let (Some(p), false) = (f.rates_path, f.rate_errors.is_empty()) {
        msg.push_str(&row_errors_text(p, "rates file", &f.rate_errors));
    }
    let costs = match parsed {
        Ok(c) if msg.is_empty() => c,
        Ok(_) => return Err(CliError::Input(msg)),
        Err(e) => {
            msg.push_str(&row_errors_text(f.costs, "costs file", &e));
            return Err(CliError::Input(msg));
        }
    };
    Ok(run_with(f.la, costs, f.as_of))
}

/// The streaming path (`costshare_core::stream`): the costs file read in
/// blocks, each block's halves on two threads, no line kept. `Ok(Err(why))`
/// when the input needs the general path.
fn stream_report(f: &FileInputs<'_>, dims: &[Dim]) -> Result<Result<stream::StreamReport, stream::Fallback>, CliError> {
    use std::io::Read;
    const BLOCK: usize = 8 << 20;
    let cannot = |e: std::io::Error| {
        CliError::Input(format!(
            "costshare: error: cannot read costs file `{}`: {e}",
            f.costs.display()
        ))
    };
    let mut file = std::fs::File::open(f.costs).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        // a pipe or a device reads once: a fallback could not read it again
        return Ok(Err(stream::Fallback("not a regular file")));
    }
    let size = meta.len() as usize;
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK.min(size + 1) + 4096);
    // fill `buf` to about BLOCK bytes; true at the end of the file
    let fill = |file: &mut std::fs::File, buf: &mut Vec<u8>| -> Result<bool, CliError> {
        while buf.len() < BLOCK {
            let have = buf.len();
            buf.resize(have.max(BLOCK), 0);
            let n = file.read(&mut buf[have..]).map_err(cannot);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    buf.truncate(have);
                    return Err(e);
                }
            };
            buf.truncate(have + n);
            if n == 0 {
                return Ok(true);
            }
        }
        Ok(false)
    };
    let mut eof = fill(&mut file, &mut buf)?;
    let bom = if buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let Some(nl) = memchr_newline(&buf[bom..]) else {
        return Ok(Err(stream::Fallback("no header line in the first block")));
    };
    let header_end = bom + nl + 1;
    let plan = match stream::Plan::new(&f.la.agreement, &f.rates, f.as_of, dims, &buf[bom..header_end - 1]) {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    // per worker: half the lines, at 40 bytes a line; the tables grow past
    // the first 8 million ids if need be, rather than guess big for long lines
    let hint = (size / 80).min(8 << 20);
    let mut workers = vec![plan.worker(hint), plan.worker(hint)];
    let mut start = header_end;
    loop {
        let end = if eof {
            buf.len()
        } else {
            match buf[start..].iter().rposition(|&b| b == b'\n') {
                Some(i) => start + i + 1,
                // a line longer than a block: the general reader takes it
                None => return Ok(Err(stream::Fallback("a line longer than a block"))),
            }
        };
        let block = &buf[start..end];
        let ok = match (block.len() > 1 << 16, stream::split_point(block)) {
            (true, Some(cut)) => {
                let (a, b) = block.split_at(cut);
                let (w0, w1) = workers.split_at_mut(1);
                let plan = &plan;
                std::thread::scope(|s| {
                    let h = s.spawn(|| w1[0].feed(plan, b));
                    let r0 = w0[0].feed(plan, a);
                    let r1 = h.join().unwrap_or(Err(stream::Fallback("a worker panicked")));
                    r0.and(r1)
                })
            }
            _ => workers[0].feed(&plan, block),
        };
        if let Err(why) = ok {
            return Ok(Err(why));
        }
        if eof {
            break;
        }
        buf.drain(..end);
        start = 0;
        eof = fill(&mut file, &mut buf)?;
    }
    Ok(plan.finish(workers))
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

pub fn run_with(la: LoadedAgreement, costs: Costs, as_of: Date) -> Run {
    let alloc = alloc::allocate(&la.agreement, &costs.lines, as_of);
    Run {
        parts: vec![RunPart { la, costs, alloc }],
        as_of,
        journal: None,
    }
}

pub fn check(path: &Path) -> Result<String, CliError> {
    let la = load_agreement(path)?;
    let a = &la.agreement;
    let layers: usize = a.categories.iter().map(|c| c.layers.len()).sum();
    Ok(format!(
        "ok: {} `{}`: {} parties, {} categories, {} layers, {} keys; {} {} to {} (FY{}–FY{}){}\n",
        path.display(),
        a.id,
        a.parties.len(),
        a.categories.len(),
        layers,
        a.keys.len(),
        a.currency.code(),
        a.start,
        a.end,
        a.first_fy,
        a.first_fy + a.fy_count as i32 - 1,
        if la.warnings.is_empty() {
            String::new()
        } else {
            "; with warnings".to_string()
        }
    ))
}

fn footer(r: &Meta<'_>) -> String {
    let prov = r.provisional;
    let mut s = String::new();
    if prov > 0 {
        s.push_str(&format!(
            "provisional: {prov} line{} in pro-rata periods not ended by {} may still change\n",
            if prov == 1 { "" } else { "s" },
            r.as_of
        ));
    }
    for la in &r.agreements {
        s.push_str(&format!("agreement: {} sha256 {}\n", la.agreement.id, la.sha256));
    }
    if let Some(j) = r.journal {
        s.push_str(&format!("journal: {} entries, head {}\n", j.entries, j.head));
    }
    s
}

fn party_name(a: &Agreement, p: usize) -> &str {
    if p < a.parties.len() {
        &a.parties[p].id
    } else {
        "UNALLOCATED"
    }
}

pub fn allocate(inputs: &Inputs, format: Format) -> Result<String, CliError> {
    let r = run(inputs)?;
    Ok(render_allocation(&r, format))
}

pub fn render_allocation(r: &Run, format: Format) -> String {
    let a = &r.main().la.agreement;
    let dec = a.currency.decimals();
    let w = r.main().alloc.width();
    match format {
        Format::Csv => {
            let mut out = String::with_capacity(r.line_count() * 32 + 16);
            out.push_str("id,party,amount\n");
            let mut amt = String::new();
            for part in &r.parts {
                let pa = &part.la.agreement;
                for &i in &part.alloc.order {
                    let row = part.alloc.row(i as usize);
                    for (p, &v) in row.iter().enumerate() {
                        if v != 0 {
                            amt.clear();
                            costshare_core::money::write_minor(&mut amt, v as i128, dec);
                            csv_record(
                                &mut out,
                                &[
                                    part.costs.lines[i as usize].id.as_str(),
                                    party_name(pa, p),
                                    amt.as_str(),
                                ],
                            );
                        }
                    }
                }
            }
            out
        }
        Format::Json => {
            let mut items = Vec::with_capacity(r.line_count());
            for part in &r.parts {
                let pa = &part.la.agreement;
                for &i in &part.alloc.order {
                    let l = &part.costs.lines[i as usize];
                    let row = part.alloc.row(i as usize);
                    let mut parts = serde_json::Map::new();
                    for (p, &v) in row.iter().enumerate() {
                        if v != 0 {
                            parts.insert(party_name(pa, p).to_string(), json!(format_minor(v as i128, dec)));
                        }
                    }
                    items.push(json!({
                        "id": l.id,
                        "date": l.date.to_string(),
                        "category": pa.categories[l.category].id,
                        "site": l.site,
                        "amount": format_minor(l.amount as i128, dec),
                        "allocation": parts,
                        "provisional": part.alloc.provisional[i as usize],
                    }));
                }
            }
            let totals = party_totals(r);
            let mut v = r.meta().provenance();
            v["currency"] = json!(a.currency.code());
            v["as_of"] = json!(r.as_of.to_string());
            v["lines"] = json!(items);
            v["totals"] = Value::Object(
                totals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0)
                    .map(|(p, v)| (party_name(a, p).to_string(), Value::String(format_minor(*v, dec))))
                    .collect(),
            );
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Format::Table => {
            let mut headers: Vec<String> = vec!["id".into(), "date".into(), "category".into(), "amount".into()];
            let mut align = vec![Align::Left, Align::Left, Align::Left, Align::Right];
            let totals = party_totals(r);
            let show_unalloc = totals[w - 1] != 0;
            for p in 0..w {
                if p < a.parties.len() || show_unalloc {
                    headers.push(party_name(a, p).to_string());
                    align.push(Align::Right);
                }
            }
            let hdr: Vec<&str> = headers.iter().map(String::as_str).collect();
            let mut t = Table::new(&hdr, &align);
            let mut grand: i128 = 0;
            for part in &r.parts {
                for &i in &part.alloc.order {
                    let l = &part.costs.lines[i as usize];
                    let row = part.alloc.row(i as usize);
                    let mut cells = vec![
                        format!("{}{}", l.id, if part.alloc.provisional[i as usize] { " *" } else { "" }),
                        l.date.to_string(),
                        part.la.agreement.categories[l.category].id.clone(),
                        format_grouped(l.amount as i128, dec),
                    ];
                    grand += l.amount as i128;
                    for (p, &v) in row.iter().enumerate() {
                        if p < a.parties.len() || show_unalloc {
                            cells.push(format_grouped(v as i128, dec));
                        }
                    }
                    t.push(cells);
                }
            }
            t.rule();
            let mut cells = vec![
                format!("total ({} lines)", r.line_count()),
                String::new(),
                String::new(),
                format_grouped(grand, dec),
            ];
            for (p, v) in totals.iter().enumerate() {
                if p < a.parties.len() || show_unalloc {
                    cells.push(format_grouped(*v, dec));
                }
            }
            t.push(cells);
            let mut out = format!(
                "{} — allocation in {}, as of {}\n\n",
                a.title,
                a.currency.code(),
                r.as_of
            );
            out.push_str(&t.render());
            out.push('\n');
            if r.provisional_count() > 0 {
                out.push_str("* provisional: in a pro-rata period not yet ended\n");
            }
            out.push_str(&footer(&r.meta()));
            out
        }
    }
}

fn party_totals(r: &Run) -> Vec<i128> {
    let w = r.main().alloc.width();
    let mut t = vec![0i128; w];
    for part in &r.parts {
        for (k, v) in part.alloc.amounts.iter().enumerate() {
            t[k % w] += *v as i128;
        }
    }
    t
}

pub fn report(inputs: &Inputs, by: &str, format: Format) -> Result<String, CliError> {
    let dims = report::parse_dims(by).map_err(|e| CliError::Usage(format!("--by: {e}")))?;
    if let (Some(l), None, None, None) = (&inputs.ledger, &inputs.agreement, &inputs.costs, &inputs.rates) {
        let as_of = parse_as_of(inputs.as_of.as_deref())?;
        return crate::ledger_cmds::report(l, &dims, as_of, format);
    }
    let f = match prepare(inputs)? {
        Prepared::Ledger(r) => return render_report(&r, &dims, format),
        Prepared::Files(f) => f,
    };
    // COSTSHARE_REPORT_PATH=general forces the general path; =explain says
    // on stderr which path ran and why (for tests and benchmarks)
    let mode = std::env::var("COSTSHARE_REPORT_PATH").unwrap_or_default();
    let streamed = if mode == "general" {
        Err(stream::Fallback("COSTSHARE_REPORT_PATH=general"))
    } else if !f.rate_errors.is_empty() {
        Err(stream::Fallback("bad rates"))
    } else {
        stream_report(&f, &dims)?
    };
    if mode == "explain" {
        match &streamed {
            Ok(_) => eprintln!("costshare: report path: streaming"),
            Err(why) => eprintln!("costshare: report path: general ({})", why.0),
        }
    }
    if let Ok(sr) = streamed {
        let rows = sr.rows.map_err(|e| too_large(&e.group))?;
        let meta = Meta {
            agreements: vec![&f.la],
            journal: None,
            as_of: f.as_of,
            lines: sr.lines,
            provisional: sr.provisional,
        };
        return Ok(render_rows(&meta, &rows, &dims, format));
    }
    let r = run_files(*f)?;
    render_report(&r, &dims, format)
}

pub fn too_large(group: &[String]) -> CliError {
    CliError::Input(format!(
        "costshare: error: the total of group {} exceeds the limit of a signed 64-bit count of minor units",
        group.join(",")
    ))
}

/// Report rows over every part: one part as the core sorts it; several merged
/// and sorted by the same rules (parties in agreement order, UNALLOCATED last;
/// the other dimensions in text order, which is their order too).
pub fn report_rows(r: &Run, dims: &[Dim]) -> Result<Vec<report::Row>, CliError> {
    let mut per: Vec<Vec<report::Row>> = Vec::new();
    for part in &r.parts {
        per.push(
            report::report(&part.la.agreement, &part.costs.lines, &part.alloc, dims)
                .map_err(|e| too_large(&e.group))?,
        );
    }
    if per.len() == 1 {
        return Ok(per.pop().unwrap_or_default());
    }
    let a = &r.main().la.agreement;
    let mut sums: std::collections::HashMap<Vec<String>, i128> = std::collections::HashMap::new();
    for rows in per {
        for row in rows {
            *sums.entry(row.values).or_default() += row.amount as i128;
        }
    }
    let prank = |p: &str| a.parties.iter().position(|x| x.id == p).unwrap_or(usize::MAX);
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
            Ok(amount) => Ok(report::Row { values, amount }),
            Err(_) => Err(too_large(&values)),
        })
        .collect()
}

pub fn render_report(r: &Run, dims: &[Dim], format: Format) -> Result<String, CliError> {
    let rows = report_rows(r, dims)?;
    Ok(render_rows(&r.meta(), &rows, dims, format))
}

/// Report rows as CSV, JSON or a table.
pub fn render_rows(r: &Meta<'_>, rows: &[report::Row], dims: &[Dim], format: Format) -> String {
    let a = &r.main().agreement;
    let dec = a.currency.decimals();
    let total: i128 = rows.iter().map(|r| r.amount as i128).sum();
    match format {
        Format::Csv => {
            let mut out = String::new();
            let mut hdr: Vec<&str> = dims.iter().map(|d| d.name()).collect();
            hdr.push("amount");
            csv_record(&mut out, &hdr);
            for row in rows {
                let mut f: Vec<&str> = row.values.iter().map(String::as_str).collect();
                let amt = format_minor(row.amount as i128, dec);
                f.push(&amt);
                csv_record(&mut out, &f);
            }
            out
        }
        Format::Json => {
            let items: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let mut m = serde_json::Map::new();
                    for (d, v) in dims.iter().zip(&row.values) {
                        m.insert(d.name().to_string(), json!(v));
                    }
                    m.insert("amount".into(), json!(format_minor(row.amount as i128, dec)));
                    Value::Object(m)
                })
                .collect();
            let mut v = r.provenance();
            v["currency"] = json!(a.currency.code());
            v["as_of"] = json!(r.as_of.to_string());
            v["by"] = json!(dims.iter().map(|d| d.name()).collect::<Vec<_>>());
            v["rows"] = json!(items);
            v["total"] = json!(format_minor(total, dec));
            v["provisional_lines"] = json!(r.provisional);
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Format::Table => {
            let mut hdr: Vec<&str> = dims.iter().map(|d| d.name()).collect();
            hdr.push("amount");
            hdr.push("share");
            let mut align = vec![Align::Left; dims.len()];
            align.push(Align::Right);
            align.push(Align::Right);
            let mut t = Table::new(&hdr, &align);
            for row in rows {
                let mut cells = row.values.clone();
                if let Some(i) = dims.iter().position(|d| *d == Dim::Site)
                    && cells[i].is_empty()
                {
                    cells[i] = "(no site)".into();
                }
                cells.push(format_grouped(row.amount as i128, dec));
                cells.push(percent_of(row.amount as i128, total));
                t.push(cells);
            }
            t.rule();
            let mut cells = vec![String::new(); dims.len()];
            cells[0] = "total".into();
            cells.push(format_grouped(total, dec));
            cells.push(if total == 0 { String::new() } else { "100.0%".into() });
            t.push(cells);
            let mut out = format!(
                "{} — {} lines, in {}, by {}, as of {}\n\n",
                a.title,
                r.lines,
                a.currency.code(),
                dims.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
                r.as_of
            );
            out.push_str(&t.render());
            out.push('\n');
            out.push_str(&footer(r));
            out
        }
    }
}

/// `part / whole` as a percentage with one decimal, half to even (display only).
pub fn percent_of(part: i128, whole: i128) -> String {
    if whole == 0 {
        return String::new();
    }
    let n = part * 1000;
    let q = costshare_core::num::rhe_u128(n.unsigned_abs(), whole.unsigned_abs()) as i128;
    let q = if (n < 0) != (whole < 0) { -q } else { q };
    format!("{}{}.{}%", if q < 0 { "-" } else { "" }, q.abs() / 10, q.abs() % 10)
}

pub fn explain(inputs: &Inputs, id: &str, format: Format) -> Result<String, CliError> {
    if format == Format::Csv {
        return Err(CliError::Usage(
            "explain has no csv form; use --format table or --format json".into(),
        ));
    }
    let r = run(inputs)?;
    let found = r
        .parts
        .iter()
        .find_map(|p| p.costs.lines.iter().position(|l| l.id == id).map(|i| (p, i)));
    let Some((part, idx)) = found else {
        if let Some(l) = &inputs.ledger
            && let Some(m) = crate::ledger_cmds::voided_note(l, id)
        {
            return Err(CliError::Input(format!("costshare: error: {m}")));
        }
        let place = match (&inputs.ledger, &inputs.costs) {
            (Some(l), _) => format!("the ledger `{l}`"),
            (None, Some(c)) => format!("`{}`", c.display()),
            (None, None) => "the input".to_string(),
        };
        return Err(CliError::Input(format!(
            "costshare: error: no line with id `{id}` in {place}"
        )));
    };
    let a = &part.la.agreement;
    let ex = explain::explain(a, &part.costs.lines, idx, r.as_of);
    // the explanation comes from the literal oracle: it must agree with the engine
    if ex.final_parts() != part.alloc.row(idx) {
        return Err(CliError::Input(format!(
            "costshare: internal error: the explanation of `{id}` disagrees with the allocation; please report this"
        )));
    }
    match format {
        Format::Json => {
            let mut v = explain_json(a, &ex);
            if let Value::Object(m) = &mut v {
                m.insert("agreement".into(), json!({"id": a.id, "sha256": part.la.sha256}));
                if let Some(j) = &r.journal {
                    m.insert("journal".into(), json!({"entries": j.entries, "head": j.head}));
                    m.insert("journal_entry".into(), json!(ex.line.row));
                }
                m.insert("as_of".into(), json!(r.as_of.to_string()));
            }
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        _ => {
            let mut out = explain::render_text(a, &ex);
            if r.journal.is_some() {
                out = out.replacen("  file row: ", "  journal entry: ", 1);
            }
            out.push('\n');
            out.push_str(&format!("agreement: {} sha256 {}\n", a.id, part.la.sha256));
            if let Some(j) = &r.journal {
                out.push_str(&format!("journal: {} entries, head {}\n", j.entries, j.head));
            }
            Ok(out)
        }
    }
}

pub fn demo(write: Option<&Path>, seed: u64, as_of: Option<&str>, format: Format) -> Result<String, CliError> {
    crate::demo::run(write, seed, as_of, format)
}

fn explain_json(a: &Agreement, ex: &explain::Explanation) -> Value {
    use costshare_core::num::fmt_ratio;
    use costshare_core::reference::CapTrace;
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
            let split: serde_json::Map<String, Value> = a
                .parties
                .iter()
                .enumerate()
                .filter(|(j, _)| t.parts[*j] != 0)
                .map(|(j, p)| (p.id.clone(), m(t.parts[j])))
                .collect();
            json!({
                "layer": t.layer + 1,
                "rule": explain::layer_rule(a, l.category, t.layer, fy),
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
            })
        })
        .collect();
    let result: serde_json::Map<String, Value> = ex
        .parts
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0)
        .map(|(p, v)| (party_name(a, p).to_string(), m(*v)))
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
