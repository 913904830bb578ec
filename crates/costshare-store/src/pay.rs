//! `pay`: record transfers between parties, idempotent and atomic like
//! `record` (one transaction; any bad row and nothing is written).

use crate::journal::{Body, PaymentBody};
use crate::ledger::{Input, Ledger, LedgerError};
use crate::state::{self, State};
use costshare_core::calendar::Date;
use costshare_core::costs::RowError;
use costshare_core::money::format_minor;
use costshare_core::settle::{self, Payment};
use std::collections::HashMap;

/// What `pay` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayOutcome {
    pub recorded: u64,
    /// Rows already recorded with the same values (or repeated in the file).
    pub already: u64,
}

/// The recorded form of a payment (amount normalized to its currency's decimals).
pub fn payment_body(st: &State, p: &Payment) -> PaymentBody {
    payment_body_in(&st.versions, p)
}

/// [`payment_body`] under these agreement versions.
pub fn payment_body_in(versions: &[state::Version], p: &Payment) -> PaymentBody {
    let ag = &versions[state::version_in_force(versions, Some(p.date))].agreement;
    PaymentBody {
        id: p.id.clone(),
        date: p.date.to_string(),
        from: ag.parties[p.from].id.clone(),
        to: ag.parties[p.to].id.clone(),
        amount: format_minor(p.source_amount as i128, p.currency.decimals()),
        currency: p.currency.code().to_string(),
        description: p.description.clone(),
    }
}

/// A recorded payment read back through the one rule (its journal entry as
/// its row), in the agreement version in force at its date.
pub fn recorded_payment(st: &State, seq: u64, b: &PaymentBody) -> Result<Payment, String> {
    recorded_payment_in(&st.versions, &st.rates(), seq, b)
}

/// [`recorded_payment`] under these agreement versions and rates (the
/// replay's, or the derived state's).
pub fn recorded_payment_in(
    versions: &[state::Version],
    rates: &costshare_core::costs::Rates,
    seq: u64,
    b: &PaymentBody,
) -> Result<Payment, String> {
    let ag = &versions[state::version_in_force(versions, Date::parse(&b.date))].agreement;
    let raw = settle::PaymentRef {
        line: seq as usize,
        id: &b.id,
        date: &b.date,
        from: &b.from,
        to: &b.to,
        amount: &b.amount,
        currency: &b.currency,
        description: &b.description,
    };
    settle::accept_payment(ag, rates, &raw).map_err(|p| p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
}

/// Decide what a payments file adds: the new entries, or every bad row.
pub fn plan_pay(st: &State, file: &str, bytes: &[u8]) -> Result<(Vec<Body>, PayOutcome), LedgerError> {
    let rates = st.rates();
    let mut errors: Vec<RowError> = Vec::new();
    let mut bodies: Vec<Body> = Vec::new();
    let mut in_file: HashMap<String, (usize, PaymentBody)> = HashMap::new();
    let mut out = PayOutcome::default();
    let csv_errors = settle::for_each_payment_row(bytes, |raw| {
        let d = Date::parse(raw.date);
        let ag = &st.versions[st.version_at(d)].agreement;
        let id =
            (!raw.id.is_empty() && raw.id.len() <= costshare_core::costs::MAX_ID_BYTES).then(|| raw.id.to_string());
        let p = match settle::accept_payment(ag, &rates, &raw) {
            Ok(p) => p,
            Err(problems) => {
                errors.push(RowError {
                    line: raw.line,
                    id,
                    message: problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "),
                });
                return;
            }
        };
        let body = payment_body(st, &p);
        if let Some(&i) = st.payment_ids.get(&body.id) {
            let (seq, rec) = &st.payments[i];
            if *rec == body {
                out.already += 1;
            } else {
                errors.push(RowError {
                    line: raw.line,
                    id,
                    message: format!("payment id already recorded with different values (journal entry {seq})"),
                });
            }
            return;
        }
        match in_file.get(&body.id) {
            Some((_, b)) if *b == body => out.already += 1,
            Some((first, _)) => errors.push(RowError {
                line: raw.line,
                id,
                message: format!("id repeated with different values (first on line {first})"),
            }),
            None => {
                in_file.insert(body.id.clone(), (raw.line, body.clone()));
                bodies.push(Body::Payment(body));
                out.recorded += 1;
            }
        }
    });
    errors.extend(csv_errors);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(LedgerError::Rows {
            file: file.to_string(),
            errors,
        });
    }
    Ok((bodies, out))
}

impl Ledger {
    /// Record a payments file: every row valid or nothing written; rows
    /// recorded before with the same values are skipped.
    pub fn pay(&mut self, payments: Input<'_>, now: &str) -> Result<PayOutcome, LedgerError> {
        let file = payments.name.to_string();
        self.transact(now, |st| plan_pay(st, &file, payments.bytes))
    }
}
