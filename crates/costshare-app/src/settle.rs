//! `settle` and `pay`: who paid what and who owes whom. The arithmetic is
//! the core's (`costshare_core::settle`); this module gathers the lines
//! (files, or a ledger: its derived state, or a replay), the payments (a
//! `--payments` file, the journal's `payment` entries) and the period.

use crate::error::{AppError, BadFile, FileKind};
use crate::input::{Observer, Source, read};
use crate::run::{
    FileInputs, JournalInfo, Provenance, Run, party_name, replay_forced, run_derived, run_state, write_back,
};
use costshare_core::Agreement;
use costshare_core::calendar::Date;
use costshare_core::costs::{Rates, RowError};
use costshare_core::settle::{self, Payment, SettleRow, Transfer, Who};
use costshare_store::PayOutcome;
use costshare_store::journal::PaymentBody;
use costshare_store::ledger::{Input, Ledger, now_utc};
use costshare_store::pay::{payment_body_in, recorded_payment_in};
use costshare_store::state;
use std::collections::HashMap;
use std::path::Path;

/// The settlement: one row per party (agreement order), `UNALLOCATED`, and
/// `UNPAID` when some line has no `paid_by`.
pub struct SettleResult {
    pub agreement: Agreement,
    /// The date filter as the user gave it (`FY2023`, or `FROM..TO` with an
    /// open end left empty); `None` for every date.
    pub period: Option<String>,
    pub rows: Vec<SettleRow>,
    /// The transfers that settle every balance (rows indices).
    pub transfers: Vec<Transfer>,
    /// Payments counted (after the period filter).
    pub payments: usize,
    /// The currency of every amount: the agreement's, or the reporting
    /// currency of `--currency`.
    pub currency: costshare_core::money::Currency,
    /// With `--currency`: the rate policy's name.
    pub policy: Option<&'static str>,
    pub provenance: Provenance,
}

impl SettleResult {
    /// The name of row `i`: a party id, `UNALLOCATED` or `UNPAID`.
    pub fn name(&self, i: usize) -> &str {
        match self.rows.get(i).map(|r| r.who) {
            Some(Who::Party(p)) => party_name(&self.agreement, p),
            Some(Who::Unallocated) => "UNALLOCATED",
            Some(Who::Unpaid) | None => "UNPAID",
        }
    }
}

fn payments_file(ag: &Agreement, rates: &Rates, path: &Path) -> Result<Vec<Payment>, AppError> {
    let bytes = read(path, FileKind::Payments)?;
    settle::parse_payments(ag, &bytes, rates).map_err(|errors| bad(path, errors))
}

fn bad(path: &Path, errors: Vec<RowError>) -> AppError {
    AppError::BadRows(vec![BadFile {
        path: path.display().to_string(),
        kind: FileKind::Payments,
        errors,
    }])
}

/// A ledger's payments (its `payment` entries, read back through the one
/// rule) and those of a `--payments` file not recorded yet; a file's id
/// recorded with other values is an error naming the entry.
fn ledger_payments(
    versions: &[state::Version],
    rates: &Rates,
    recorded: &[(u64, PaymentBody)],
    run: &Run,
    file: Option<&Path>,
) -> Result<Vec<Payment>, AppError> {
    let mut pays = Vec::with_capacity(recorded.len());
    for (seq, b) in recorded {
        let p = recorded_payment_in(versions, rates, *seq, b)
            .map_err(|message| AppError::from(costshare_store::StoreError::Corrupt { seq: *seq, message }))?;
        pays.push(p);
    }
    if let Some(path) = file {
        let ids: HashMap<&str, usize> = recorded
            .iter()
            .enumerate()
            .map(|(i, (_, b))| (b.id.as_str(), i))
            .collect();
        let extra = payments_file(&run.main().la.agreement, rates, path)?;
        let mut errors = Vec::new();
        for p in extra {
            match ids.get(p.id.as_str()) {
                Some(&i) if recorded[i].1 == payment_body_in(versions, &p) => {}
                Some(&i) => errors.push(RowError {
                    line: p.row,
                    id: Some(p.id.clone()),
                    message: format!(
                        "payment id already recorded with different values (journal entry {})",
                        recorded[i].0
                    ),
                }),
                None => pays.push(p),
            }
        }
        if !errors.is_empty() {
            return Err(bad(path, errors));
        }
    }
    Ok(pays)
}

/// `settle`: obligations (the allocation over the whole history, so caps
/// run; then restricted to lines dated in `period`), bills paid, transfers
/// (dated in `period`), balances, and the transfers that settle them.
///
/// On a ledger the payments are the journal's `payment` entries plus those
/// of `payments` if given (not recorded: `pay` records them); an id in both
/// must carry the same values and counts once.
pub fn settle(
    source: &Source,
    payments: Option<&Path>,
    filter: &crate::filter::DateFilter,
    as_of: Date,
    currency: Option<&crate::currency::CurrencyRequest>,
    observer: &mut dyn Observer,
) -> Result<SettleResult, AppError> {
    let (run, pays, rates) = match source {
        Source::Ledger(target) => {
            // the lines and payments from a fresh derived state (no replay),
            // else from a replay, which then writes the derived state
            let mut l = Ledger::open(target)?;
            let derived = if replay_forced() { None } else { l.derived_lines()? };
            match derived {
                Some(mut d) => {
                    let recorded = std::mem::take(&mut d.payments);
                    let versions = d.versions.clone();
                    let rates = d.rates.clone();
                    let run = run_derived(d, as_of);
                    let pays = ledger_payments(&versions, &rates, &recorded, &run, payments)?;
                    (run, pays, rates)
                }
                None => {
                    if !replay_forced()
                        && let Some(key) = l.take_damaged()
                    {
                        observer.derived_damaged(target, &key);
                    }
                    let st = l.state()?;
                    let run = run_state(&st, as_of)?;
                    if !replay_forced() {
                        write_back(&mut l, &st, &run);
                    }
                    let rates = st.rates();
                    let pays = ledger_payments(&st.versions, &rates, &st.payments, &run, payments)?;
                    (run, pays, rates)
                }
            }
        }
        Source::Files {
            agreement,
            costs,
            rates,
        } => {
            let f = FileInputs::open(agreement, costs, rates.as_deref(), as_of, observer)?;
            let rates = f.rates.clone();
            let run = f.run()?;
            let pays = match payments {
                Some(path) => payments_file(&run.main().la.agreement, &rates, path)?,
                None => Vec::new(),
            };
            (run, pays, rates)
        }
    };
    let conv = match currency {
        Some(req) => Some(
            costshare_core::convert::Converter::new(&run.main().la.agreement, &rates, &req.code, req.policy.clone())
                .map_err(AppError::Convert)?,
        ),
        None => None,
    };
    let range = filter.resolve(&run.main().la.agreement)?;
    let label = match (&filter.period, range.is_all()) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => Some(format!(
            "{}..{}",
            range.from.map(|d| d.to_string()).unwrap_or_default(),
            range.to.map(|d| d.to_string()).unwrap_or_default()
        )),
    };
    compute(run, pays, &range, label, conv.as_ref())
}

/// With `conv` (`--currency`), each line's parts are converted (rounded half
/// to even, the rule of `report --currency`) and the line counts as paid for
/// the sum of its converted parts, so balances still sum to zero; a
/// payment converts at its own date under the same policy.
fn compute(
    run: Run,
    pays: Vec<Payment>,
    range: &costshare_core::calendar::DateRange,
    period: Option<String>,
    conv: Option<&costshare_core::convert::Converter>,
) -> Result<SettleResult, AppError> {
    let agreement = run.main().la.agreement.clone();
    let in_period = |d: Date| range.contains(d);
    let n = agreement.parties.len();
    let mut book = settle::Ledger::new(n);
    for part in &run.parts {
        let w = part.alloc.width();
        for (i, line) in part.costs.lines.iter().enumerate() {
            if in_period(line.date)
                && let Some(row) = part.alloc.amounts.get(i * w..(i + 1) * w)
            {
                match conv {
                    None => book.line(row, line.paid_by),
                    Some(c) => {
                        let (parts, _) = c.convert_parts(line.date, row).map_err(AppError::Convert)?;
                        book.line(&parts, line.paid_by);
                    }
                }
            }
        }
    }
    let mut counted = 0;
    for p in pays.iter().filter(|p| in_period(p.date)) {
        let amount = match conv {
            None => p.amount,
            Some(c) => c.convert_parts(p.date, &[p.amount]).map_err(AppError::Convert)?.0[0],
        };
        book.transfer(p.from, p.to, amount);
        counted += 1;
    }
    let rows = book.rows();
    let balances: Vec<i128> = rows.iter().map(SettleRow::balance).collect();
    Ok(SettleResult {
        transfers: settle::transfers(&balances),
        currency: conv.map_or(agreement.currency, |c| c.to),
        policy: conv.map(|c| c.policy.name()),
        agreement,
        period,
        rows,
        payments: counted,
        provenance: run.provenance(),
    })
}

/// What `pay` did.
pub struct PayResult {
    pub file: String,
    pub outcome: PayOutcome,
    pub journal: JournalInfo,
}

/// `pay`: record a payments file into a ledger, idempotent and atomic.
pub fn pay(target: &str, payments: &Path) -> Result<PayResult, AppError> {
    let bytes = read(payments, FileKind::Payments)?;
    let name = payments.display().to_string();
    pay_input(target, &crate::input::cli_user(), &name, &bytes)
}

/// `pay` of a payments CSV given as bytes, written as by `who`.
pub fn pay_input(target: &str, who: &str, name: &str, bytes: &[u8]) -> Result<PayResult, AppError> {
    let (name, bytes) = (name.to_string(), bytes);
    let mut l = Ledger::open(target)?;
    l.set_author(who);
    let outcome = l.pay(Input { name: &name, bytes }, &now_utc())?;
    let (entries, head) = l.last_head()?;
    Ok(PayResult {
        file: name,
        outcome,
        journal: JournalInfo { entries, head },
    })
}
