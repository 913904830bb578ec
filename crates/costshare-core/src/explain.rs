//! One line's allocation, layer by layer: the trace a budget analyst reads
//! (the words are `costshare_app::render`'s).
//!
//! The story comes from the literal oracle ([`crate::reference`]) run over the
//! line's category only (other categories cannot affect it). Callers check
//! that its result equals the fast engine's for the same line.

use crate::agreement::Agreement;
use crate::alloc::{Carry, Lines};
use crate::calendar::Date;
use crate::costs::CostLine;
use crate::reference::{self, LayerTrace};

/// The explanation of one line.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub line: CostLine,
    pub layers: Vec<LayerTrace>,
    /// Final amounts per party, then UNALLOCATED.
    pub parts: Vec<i64>,
    pub provisional: bool,
}

impl Explanation {
    pub fn final_parts(&self) -> &[i64] {
        &self.parts
    }
}

/// Explain line `idx` of `lines`.
pub fn explain(ag: &Agreement, lines: &[CostLine], idx: usize, as_of: Date) -> Explanation {
    explain_carried(ag, lines, idx, as_of, &Carry::NONE)
}

/// Explain line `idx` of `lines`, all of one category, in any form (`line`
/// is that line as a [`CostLine`]): what [`explain_carried`] says of it
/// among exactly these lines. With the lines of its category tied to its
/// date (`crate::alloc::tied_range`), that is what it says among all lines.
pub fn explain_lines<L: Lines + ?Sized>(
    ag: &Agreement,
    lines: &L,
    idx: usize,
    line: CostLine,
    as_of: Date,
    carry: &Carry,
) -> Explanation {
    let (layers, parts, provisional) = reference::trace_line(ag, lines, idx, as_of, carry);
    Explanation {
        line,
        layers,
        parts,
        provisional,
    }
}

/// Explain line `idx` of `lines`, allocated under a version that continues
/// earlier ones with `carry` (see [`crate::alloc::carry_into`]).
///
/// Only the line's own trace is made ([`reference::trace_line`]); lines of
/// other categories are left out (a caller that passes only the line's
/// category, e.g. the lines tied to its date, copies none).
pub fn explain_carried(ag: &Agreement, lines: &[CostLine], idx: usize, as_of: Date, carry: &Carry) -> Explanation {
    let cat = lines[idx].category;
    let (layers, parts, provisional) = if lines.iter().all(|l| l.category == cat) {
        reference::trace_line(ag, lines, idx, as_of, carry)
    } else {
        let subset: Vec<CostLine> = lines.iter().filter(|l| l.category == cat).cloned().collect();
        let pos = lines[..idx].iter().filter(|l| l.category == cat).count();
        reference::trace_line(ag, subset.as_slice(), pos, as_of, carry)
    };
    Explanation {
        line: lines[idx].clone(),
        layers,
        parts,
        provisional,
    }
}
