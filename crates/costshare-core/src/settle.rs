//! Payments and settlement: who paid what, who owes whom.
//!
//! A party's *obligation* is what the agreement allocates to it; what it
//! *paid* is the bills it paid (`paid_by` on a cost line) plus the transfers
//! it sent less the transfers it received; its *balance* is paid − obligation
//! (a party that owes has a negative balance). Two more rows keep the books
//! closed: `UNALLOCATED` (obligation = the overrun no party bears, paid 0) and
//! `UNPAID` (obligation 0, paid = the lines nobody has paid yet, i.e. what is
//! still owed to suppliers; present only when such lines exist). Every cost
//! is then obligated once and paid once, transfers cancel, and the balances
//! sum to zero exactly. No I/O; integer arithmetic only.

use crate::agreement::Agreement;
use crate::calendar::Date;
use crate::costs::{self, ConvertError, Rates, RowError};
use crate::money::Currency;
use crate::num;
use std::collections::HashMap;
use std::fmt;

/// The payments columns the program reads, `id,date,from,to,amount` required.
pub const PAYMENT_COLUMNS: [&str; 7] = ["id", "date", "from", "to", "amount", "currency", "description"];

/// One payments row as text, trimmed, empty where missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PaymentRef<'a> {
    pub line: usize,
    pub id: &'a str,
    pub date: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub amount: &'a str,
    pub currency: &'a str,
    pub description: &'a str,
}

/// A transfer from one party to another, in the agreement's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub date: Date,
    /// Index into `Agreement::parties`.
    pub from: usize,
    pub to: usize,
    /// Minor units of the agreement currency (converted half to even).
    pub amount: i64,
    /// The amount as written, in `currency`'s minor units.
    pub source_amount: i64,
    pub currency: Currency,
    pub description: String,
    /// Physical line of the row (header = 1), or the journal entry.
    pub row: usize,
}

/// Why a payments row is refused. `Display` is the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentProblem {
    IdEmpty,
    DateEmpty,
    DateInvalid(String),
    /// `from` or `to` (the column) is empty.
    PartyEmpty(&'static str),
    /// `from` or `to` (the column) names no party: the text, the parties.
    PartyUnknown {
        column: &'static str,
        party: String,
        known: Vec<String>,
    },
    SameParty(String),
    CurrencyUnknown(String),
    AmountEmpty,
    AmountNotPositive(String),
    AmountInvalid {
        text: String,
        error: num::DecimalError,
        currency: Currency,
    },
    Conversion(ConvertError),
    FieldTooLong {
        column: &'static str,
        len: usize,
        limit: usize,
    },
}

impl fmt::Display for PaymentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentProblem::IdEmpty => f.write_str("id is empty"),
            PaymentProblem::DateEmpty => f.write_str("date is empty"),
            PaymentProblem::DateInvalid(t) => write!(f, "date `{t}` is not a valid YYYY-MM-DD date"),
            PaymentProblem::PartyEmpty(c) => write!(f, "{c} is empty"),
            PaymentProblem::PartyUnknown { column, party, known } => write!(
                f,
                "{column} `{party}` is not a party of the agreement (the agreement has {})",
                known.join(", ")
            ),
            PaymentProblem::SameParty(p) => write!(f, "from and to are both `{p}`"),
            PaymentProblem::CurrencyUnknown(c) => write!(
                f,
                "unknown currency `{c}` (declare it under [currencies] in the agreement)"
            ),
            PaymentProblem::AmountEmpty => f.write_str("amount is empty"),
            PaymentProblem::AmountNotPositive(t) => write!(f, "amount `{t}` is not positive"),
            PaymentProblem::AmountInvalid { text, error, currency } => write!(
                f,
                "amount `{text}` is {error} ({} has {} decimals)",
                currency.code(),
                currency.decimals()
            ),
            PaymentProblem::Conversion(e) => write!(f, "{e}"),
            PaymentProblem::FieldTooLong { column, len, limit } => {
                write!(f, "{column} is {len} bytes long; the limit is {limit} bytes")
            }
        }
    }
}

fn join(p: &[PaymentProblem]) -> String {
    p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
}

/// The one rule for a payments row: check it against the agreement and
/// rates, convert it to the agreement currency, or name every problem.
pub fn accept_payment(ag: &Agreement, rates: &Rates, raw: &PaymentRef<'_>) -> Result<Payment, Vec<PaymentProblem>> {
    let limits: [(&'static str, &str, usize); 7] = [
        ("id", raw.id, costs::MAX_ID_BYTES),
        ("from", raw.from, costs::MAX_ID_BYTES),
        ("to", raw.to, costs::MAX_ID_BYTES),
        ("date", raw.date, costs::MAX_FIELD_BYTES),
        ("amount", raw.amount, costs::MAX_FIELD_BYTES),
        ("currency", raw.currency, costs::MAX_FIELD_BYTES),
        ("description", raw.description, costs::MAX_FIELD_BYTES),
    ];
    if let Some((column, text, limit)) = limits.into_iter().find(|(_, t, l)| t.len() > *l) {
        return Err(vec![PaymentProblem::FieldTooLong {
            column,
            len: text.len(),
            limit,
        }]);
    }
    let mut bad = Vec::new();
    if raw.id.is_empty() {
        bad.push(PaymentProblem::IdEmpty);
    }
    let date = Date::parse(raw.date);
    if date.is_none() {
        bad.push(if raw.date.is_empty() {
            PaymentProblem::DateEmpty
        } else {
            PaymentProblem::DateInvalid(raw.date.to_string())
        });
    }
    let mut party = |column: &'static str, text: &str| {
        if text.is_empty() {
            bad.push(PaymentProblem::PartyEmpty(column));
            return None;
        }
        let p = ag.parties.iter().position(|p| p.id == text);
        if p.is_none() {
            bad.push(PaymentProblem::PartyUnknown {
                column,
                party: text.to_string(),
                known: ag.parties.iter().map(|p| p.id.clone()).collect(),
            });
        }
        p
    };
    let from = party("from", raw.from);
    let to = party("to", raw.to);
    if from.is_some() && from == to {
        bad.push(PaymentProblem::SameParty(raw.from.to_string()));
    }
    let own = raw.currency.is_empty() || ag.currency.has_code(raw.currency);
    let ccy = if own {
        Some(ag.currency)
    } else {
        let c = ag.currency(raw.currency);
        if c.is_none() {
            bad.push(PaymentProblem::CurrencyUnknown(raw.currency.to_string()));
        }
        c
    };
    let source_amount = ccy.and_then(|c| match num::parse_minor_units(raw.amount, c.decimals()) {
        Ok(0) | Err(num::DecimalError::Negative) => {
            bad.push(PaymentProblem::AmountNotPositive(raw.amount.to_string()));
            None
        }
        Ok(a) => Some(a),
        Err(num::DecimalError::Empty) => {
            bad.push(PaymentProblem::AmountEmpty);
            None
        }
        Err(error) => {
            bad.push(PaymentProblem::AmountInvalid {
                text: raw.amount.to_string(),
                error,
                currency: c,
            });
            None
        }
    });
    // converted as a cost line is: the latest rate on or before the date,
    // half to even (`costs::convert`)
    let amount = match (ccy, source_amount, date) {
        (Some(_), Some(a), _) if own => Some(a),
        (Some(c), Some(a), Some(d)) => match costs::convert(ag, rates, &c, a, d) {
            Ok((v, _)) => Some(v),
            Err(e) => {
                bad.push(PaymentProblem::Conversion(e));
                None
            }
        },
        _ => None,
    };
    match (date, from, to, amount, source_amount, ccy) {
        (Some(date), Some(from), Some(to), Some(amount), Some(source_amount), Some(currency)) if bad.is_empty() => {
            Ok(Payment {
                id: raw.id.to_string(),
                date,
                from,
                to,
                amount,
                source_amount,
                currency,
                description: raw.description.to_string(),
                row: raw.line,
            })
        }
        _ => Err(bad),
    }
}

/// Call `f` with each row of a payments CSV; returns the CSV layer's problems.
pub fn for_each_payment_row(bytes: &[u8], mut f: impl FnMut(PaymentRef<'_>)) -> Vec<RowError> {
    costs::for_each_record(bytes, &PAYMENT_COLUMNS[..5], &PAYMENT_COLUMNS, |line, r| {
        let g = |i: usize| r.get(i).copied().unwrap_or("");
        f(PaymentRef {
            line,
            id: g(0),
            date: g(1),
            from: g(2),
            to: g(3),
            amount: g(4),
            currency: g(5),
            description: g(6),
        })
    })
}

/// Whether two payments record the same values (the row aside).
pub fn same_payment(a: &Payment, b: &Payment) -> bool {
    a.date == b.date
        && a.from == b.from
        && a.to == b.to
        && a.source_amount == b.source_amount
        && a.currency == b.currency
        && a.description == b.description
}

/// Parse a payments CSV: every bad row named (line and id); the same id
/// twice with the same values is one payment, with other values an error.
pub fn parse_payments(ag: &Agreement, bytes: &[u8], rates: &Rates) -> Result<Vec<Payment>, Vec<RowError>> {
    let mut out: Vec<Payment> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut errors = Vec::new();
    let csv_errors = for_each_payment_row(bytes, |raw| {
        let id = (!raw.id.is_empty() && raw.id.len() <= costs::MAX_ID_BYTES).then(|| raw.id.to_string());
        match accept_payment(ag, rates, &raw) {
            Err(p) => errors.push(RowError {
                line: raw.line,
                id,
                message: join(&p),
            }),
            Ok(p) => match by_id.get(&p.id) {
                Some(&i) if same_payment(&out[i], &p) => {}
                Some(&i) => errors.push(RowError {
                    line: raw.line,
                    id,
                    message: format!("id repeated with different values (first on line {})", out[i].row),
                }),
                None => {
                    by_id.insert(p.id.clone(), out.len());
                    out.push(p);
                }
            },
        }
    });
    errors.extend(csv_errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// A row of the settlement: a party, `UNALLOCATED` or `UNPAID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Party(usize),
    Unallocated,
    Unpaid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleRow {
    pub who: Who,
    /// Minor units of the agreement currency.
    pub obligation: i128,
    pub paid: i128,
}

impl SettleRow {
    /// paid − obligation: negative when it owes.
    pub fn balance(&self) -> i128 {
        self.paid - self.obligation
    }
}

/// Obligations and payments per party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// One per party, then UNALLOCATED.
    obligation: Vec<i128>,
    /// One per party.
    paid: Vec<i128>,
    unpaid: i128,
    any_unpaid: bool,
}

impl Ledger {
    pub fn new(parties: usize) -> Ledger {
        Ledger {
            obligation: vec![0; parties + 1],
            paid: vec![0; parties],
            unpaid: 0,
            any_unpaid: false,
        }
    }

    /// A line's allocated amounts (`row[p]` for each party, then UNALLOCATED)
    /// and who paid the line's bill (`None`: nobody yet).
    pub fn line(&mut self, row: &[i64], paid_by: Option<usize>) {
        let mut total = 0i128;
        for (o, &a) in self.obligation.iter_mut().zip(row) {
            *o += a as i128;
            total += a as i128;
        }
        match paid_by {
            Some(p) if p < self.paid.len() => self.paid[p] += total,
            _ => {
                self.unpaid += total;
                self.any_unpaid = true;
            }
        }
    }

    /// A transfer of `amount` from `from` to `to`.
    pub fn transfer(&mut self, from: usize, to: usize, amount: i64) {
        if from < self.paid.len() && to < self.paid.len() {
            self.paid[from] += amount as i128;
            self.paid[to] -= amount as i128;
        }
    }

    /// The rows: parties in agreement order, `UNALLOCATED`, then `UNPAID`
    /// when some line has no `paid_by`.
    pub fn rows(&self) -> Vec<SettleRow> {
        let n = self.paid.len();
        let mut rows: Vec<SettleRow> = (0..n)
            .map(|p| SettleRow {
                who: Who::Party(p),
                obligation: self.obligation[p],
                paid: self.paid[p],
            })
            .collect();
        rows.push(SettleRow {
            who: Who::Unallocated,
            obligation: self.obligation[n],
            paid: 0,
        });
        if self.any_unpaid {
            rows.push(SettleRow {
                who: Who::Unpaid,
                obligation: 0,
                paid: self.unpaid,
            });
        }
        rows
    }
}

/// One transfer that settles: `from` pays `to` (indices into the rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: usize,
    pub to: usize,
    pub amount: i128,
}

/// Transfers that bring every balance to zero exactly (`balances` must sum
/// to zero). First each debtor whose debt equals a creditor's credit pays
/// that creditor (one transfer settles both; pairs in row order); then the
/// largest debtor pays the largest creditor (ties to the earlier row) until
/// all are settled. Each transfer settles at least one row and the last one
/// settles two, so there are at most (non-zero rows − 1) transfers, fewer
/// when equal pairs exist. Not always the minimum (which is NP-hard).
/// Transfers come in the order made.
pub fn transfers(balances: &[i128]) -> Vec<Transfer> {
    let mut b = balances.to_vec();
    let mut out = Vec::new();
    // exact pairs
    for d in 0..b.len() {
        if b[d] >= 0 {
            continue;
        }
        if let Some(c) = (0..b.len()).find(|&c| b[c] > 0 && b[c] == -b[d]) {
            out.push(Transfer {
                from: d,
                to: c,
                amount: b[c],
            });
            b[c] = 0;
            b[d] = 0;
        }
    }
    loop {
        // the largest debtor and creditor, ties to the earlier row
        let d = (0..b.len()).filter(|&i| b[i] < 0).min_by_key(|&i| (b[i], i));
        let c = (0..b.len()).filter(|&i| b[i] > 0).min_by_key(|&i| (-b[i], i));
        let (Some(d), Some(c)) = (d, c) else { break };
        let amount = b[c].min(-b[d]);
        out.push(Transfer { from: d, to: c, amount });
        b[c] -= amount;
        b[d] += amount;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), seeded.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn balances_sum_to_zero_and_transfers_settle_exactly() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let parties = 1 + rng.below(6) as usize;
            let mut l = Ledger::new(parties);
            for _ in 0..rng.below(12) {
                let row: Vec<i64> = (0..=parties)
                    .map(|_| {
                        if rng.below(3) == 0 {
                            0
                        } else {
                            rng.below(1_000_000_000) as i64
                        }
                    })
                    .collect();
                let payer = rng.below(parties as u64 + 1) as usize;
                l.line(&row, (payer < parties).then_some(payer));
            }
            for _ in 0..rng.below(5) {
                let from = rng.below(parties as u64) as usize;
                let to = rng.below(parties as u64) as usize;
                if from != to {
                    l.transfer(from, to, 1 + rng.below(1_000_000) as i64);
                }
            }
            let rows = l.rows();
            let bal: Vec<i128> = rows.iter().map(SettleRow::balance).collect();
            assert_eq!(bal.iter().sum::<i128>(), 0);
            let t = transfers(&bal);
            let nonzero = bal.iter().filter(|&&b| b != 0).count();
            assert!(
                t.len() <= nonzero.saturating_sub(1),
                "{} transfers for {nonzero}",
                t.len()
            );
            let mut after = bal.clone();
            for x in &t {
                assert!(x.amount > 0 && bal[x.from] < 0 && bal[x.to] > 0);
                after[x.from] += x.amount;
                after[x.to] -= x.amount;
            }
            assert!(after.iter().all(|&b| b == 0), "{bal:?} -> {after:?}");
        }
    }

    #[test]
    fn equal_pairs_settle_in_one_transfer_each() {
        // three equal pairs: three transfers (the bound allows five)
        let t = transfers(&[-5, 7, -4, 5, -7, 4]);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t,
            vec![
                Transfer {
                    from: 0,
                    to: 3,
                    amount: 5
                },
                Transfer {
                    from: 2,
                    to: 5,
                    amount: 4
                },
                Transfer {
                    from: 4,
                    to: 1,
                    amount: 7
                },
            ]
        );
    }

    #[test]
    fn unpaid_lines_and_the_overrun_have_rows() {
        let mut l = Ledger::new(2);
        l.line(&[60, 30, 10], Some(0)); // A paid 100: owes 60
        l.line(&[5, 5, 0], None); // nobody paid yet
        l.transfer(1, 0, 20);
        let rows = l.rows();
        let got: Vec<(Who, i128, i128)> = rows.iter().map(|r| (r.who, r.obligation, r.paid)).collect();
        assert_eq!(
            got,
            vec![
                (Who::Party(0), 65, 80),
                (Who::Party(1), 35, 20),
                (Who::Unallocated, 10, 0),
                (Who::Unpaid, 0, 10),
            ]
        );
    }
}
