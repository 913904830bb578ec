//! Already-parsed lines allocated under another agreement (the `compare`
//! command): categories are mapped by id, parties by id, and the allocation
//! itself is [`crate::alloc::allocate_lines`], so no layer rule lives here.
//!
//! A line the other agreement cannot allocate — its category is missing
//! there, its date is outside that agreement's term, or that category counts
//! units and the line has no quantity — is all `UNALLOCATED` under it, and
//! said so in [`Reallocation::unallocated`].

use crate::agreement::Agreement;
use crate::alloc::{self, Allocation, Lines};
use crate::calendar::Date;
use crate::costs::CostLine;
use crate::num::Q;

/// Lines that were parsed and allocated under `agreement` (one agreement
/// version of a ledger, or the agreement of a files run).
#[derive(Clone, Copy)]
pub struct Group<'a> {
    pub agreement: &'a Agreement,
    pub lines: &'a [CostLine],
}

/// Why the other agreement cannot take these lines at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReallocError {
    /// Its currency differs from the lines' agreement (no conversion here).
    Currency { base: String, other: String },
    /// Its parties (by id, in any order) differ from the lines' agreement.
    Parties { base: Vec<String>, other: Vec<String> },
}

/// Why a line is all UNALLOCATED under the other agreement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The other agreement has no category with the line's category id.
    NoCategory,
    /// The line's date is outside the other agreement's term.
    OutsideTerm,
    /// The other agreement's category counts units; the line has no quantity.
    NoQuantity,
}

/// Lines left UNALLOCATED for one reason and category.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unallocated {
    pub reason: Reason,
    /// The category id (of the lines' agreement).
    pub category: String,
    pub lines: usize,
    /// Their total, minor units.
    pub amount: i128,
}

/// The lines' allocation under the other agreement, one [`Allocation`] per
/// input group, each indexed like that group's lines and with that group's
/// agreement's party order (then UNALLOCATED), so it can be grouped by
/// [`crate::report::report`] exactly as the group's own allocation is.
pub struct Reallocation {
    pub parts: Vec<Allocation>,
    /// Sorted by reason, then category id.
    pub unallocated: Vec<Unallocated>,
    /// The use of `other`'s caps by all the lines together (indexed by
    /// `other`'s categories and layers): what its ceilings would be.
    pub usage: Vec<alloc::CapUse>,
}

/// The lines the other agreement takes: each with its category's index there.
struct Mapped<'a> {
    lines: Vec<(&'a CostLine, usize)>,
}

impl Lines for Mapped<'_> {
    fn count(&self) -> usize {
        self.lines.len()
    }
    fn date(&self, i: usize) -> Date {
        self.lines[i].0.date
    }
    fn category(&self, i: usize) -> usize {
        self.lines[i].1
    }
    fn amount(&self, i: usize) -> i64 {
        self.lines[i].0.amount
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.lines[i].0.quantity.as_ref()
    }
    fn id(&self, i: usize) -> &[u8] {
        self.lines[i].0.id.as_bytes()
    }
}

/// Check that `other` can take lines of `base`: the same currency, and the
/// same party ids. Returns, for each party of `other`, its index in `base`.
pub fn party_map(base: &Agreement, other: &Agreement) -> Result<Vec<usize>, ReallocError> {
    if !base.currency.same_code(&other.currency) {
        return Err(ReallocError::Currency {
            base: base.currency.code().to_string(),
            other: other.currency.code().to_string(),
        });
    }
    let ids = |a: &Agreement| a.parties.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    let mut map = Vec::with_capacity(other.parties.len());
    for p in &other.parties {
        match base.party_index(&p.id) {
            Some(i) => map.push(i),
            None => break,
        }
    }
    if map.len() != other.parties.len() || other.parties.len() != base.parties.len() {
        return Err(ReallocError::Parties {
            base: ids(base),
            other: ids(other),
        });
    }
    Ok(map)
}

/// Allocate every line of `groups` together under `other` (as one set of
/// lines, so caps span the groups), as of `as_of`. Each line keeps its
/// amount (already in the agreement currency) and quantity; its category is
/// looked up in `other` by id.
pub fn allocate_under(other: &Agreement, groups: &[Group<'_>], as_of: Date) -> Result<Reallocation, ReallocError> {
    let mut maps = Vec::with_capacity(groups.len());
    for g in groups {
        maps.push(party_map(g.agreement, other)?);
    }
    // per group: each category's index in `other`, or None
    let cat_maps: Vec<Vec<Option<usize>>> = groups
        .iter()
        .map(|g| {
            g.agreement
                .categories
                .iter()
                .map(|c| other.category_index(&c.id))
                .collect()
        })
        .collect();
    let mut mapped = Mapped { lines: Vec::new() };
    // where each mapped line came from: (group, line)
    let mut origin: Vec<(usize, usize)> = Vec::new();
    let mut left: std::collections::BTreeMap<(Reason, String), (usize, i128)> = Default::default();
    for (gi, g) in groups.iter().enumerate() {
        for (li, l) in g.lines.iter().enumerate() {
            let why = match cat_maps[gi].get(l.category).copied().flatten() {
                None => Some(Reason::NoCategory),
                Some(_) if !other.in_term(l.date) => Some(Reason::OutsideTerm),
                Some(c) if other.categories[c].unit.is_some() && l.quantity.is_none() => Some(Reason::NoQuantity),
                Some(c) => {
                    mapped.lines.push((l, c));
                    origin.push((gi, li));
                    None
                }
            };
            if let Some(reason) = why {
                let cat = g
                    .agreement
                    .categories
                    .get(l.category)
                    .map(|c| c.id.clone())
                    .unwrap_or_default();
                let e = left.entry((reason, cat)).or_default();
                e.0 += 1;
                e.1 += l.amount as i128;
            }
        }
    }
    let a = alloc::allocate_lines(other, &mapped, as_of);
    let ow = a.width();
    let mut parts: Vec<Allocation> = groups
        .iter()
        .map(|g| {
            let n = g.lines.len();
            let w = g.agreement.parties.len() + 1;
            let mut amounts = vec![0i64; n * w];
            // everything UNALLOCATED until the mapped lines are filled in
            for (li, l) in g.lines.iter().enumerate() {
                amounts[li * w + w - 1] = l.amount;
            }
            Allocation {
                parties: w - 1,
                order: alloc::line_order(g.lines),
                amounts,
                provisional: vec![false; n],
                open_until: vec![None; n],
                usage: Vec::new(),
            }
        })
        .collect();
    for (mi, &(gi, li)) in origin.iter().enumerate() {
        let part = &mut parts[gi];
        let w = part.width();
        let row = &mut part.amounts[li * w..(li + 1) * w];
        row.fill(0);
        for (op, &v) in a.amounts[mi * ow..(mi + 1) * ow].iter().enumerate() {
            // the other agreement's party `op` is the group's party maps[gi][op]; its last
            // column is UNALLOCATED in both
            let to = maps[gi].get(op).copied().unwrap_or(w - 1);
            row[to] += v;
        }
        part.provisional[li] = a.provisional[mi];
        part.open_until[li] = a.open_until[mi];
    }
    Ok(Reallocation {
        parts,
        usage: a.usage,
        unallocated: left
            .into_iter()
            .map(|((reason, category), (lines, amount))| Unallocated {
                reason,
                category,
                lines,
                amount,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::costs::{Rates, parse_costs};

    const A: &str = r#"
[agreement]
id = "a"
title = "A"
currency = "USD"
start = "2022-01-01"
end = "2022-12-31"
fiscal_year_start = "01-01"
[parties.P]
name = "P"
[parties.Q]
name = "Q"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "50%", Q = "50%" }
[categories.y]
name = "Y"
  [[categories.y.layers]]
  split = { P = "100%", Q = "0%" }
"#;

    const B: &str = r#"
[agreement]
id = "b"
title = "B"
currency = "USD"
start = "2022-01-01"
end = "2022-06-30"
fiscal_year_start = "01-01"
[parties.Q]
name = "Q"
[parties.P]
name = "P"
[categories.x]
name = "X"
  [[categories.x.layers]]
  split = { P = "25%", Q = "75%" }
"#;

    fn ag(t: &str) -> Agreement {
        let l = crate::load::load(t);
        l.agreement.unwrap_or_else(|| panic!("{:?}", l.diagnostics))
    }

    #[test]
    fn maps_parties_and_categories_by_id() {
        let (a, b) = (ag(A), ag(B));
        let costs = b"id,date,category,amount\n1,2022-02-01,x,100.00\n2,2022-03-01,y,10.00\n3,2022-08-01,x,4.00\n";
        let c = parse_costs(&a, costs, &Rates::empty()).unwrap();
        let d = Date::parse("2023-01-01").unwrap();
        let r = allocate_under(
            &b,
            &[Group {
                agreement: &a,
                lines: &c.lines,
            }],
            d,
        )
        .unwrap();
        // line 1: P 25%, Q 75% in A's party order (P, Q); line 2: no category y in B; line 3: outside B's term
        assert_eq!(r.parts[0].amounts, vec![2500, 7500, 0, 0, 0, 1000, 0, 0, 400]);
        assert_eq!(r.unallocated.len(), 2);
        assert_eq!(r.unallocated[0].reason, Reason::NoCategory);
        assert_eq!(r.unallocated[0].category, "y");
        assert_eq!(r.unallocated[1].reason, Reason::OutsideTerm);
        assert_eq!(r.unallocated[1].amount, 400);
    }

    #[test]
    fn refuses_other_parties_and_currency() {
        let a = ag(A);
        let c = ag(&B
            .replace("[parties.Q]", "[parties.R]")
            .replace("Q = \"75%\"", "R = \"75%\""));
        assert!(matches!(party_map(&a, &c), Err(ReallocError::Parties { .. })));
        let e = ag(&B.replace("currency = \"USD\"", "currency = \"EUR\""));
        assert!(matches!(party_map(&a, &e), Err(ReallocError::Currency { .. })));
    }
}
