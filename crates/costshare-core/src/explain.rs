//! One line's allocation, layer by layer: the trace a budget analyst reads
//! (the words are `costshare_app::render`'s).
//!
//! The story comes from the literal oracle ([`crate::reference`]) run over the
//! line's category only (other categories cannot affect it). Callers check
//! that its result equals the fast engine's for the same line.

use crate::agreement::Agreement;
use crate::alloc::Carry;
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

/// Explain line `idx` of `lines`, allocated under a version that continues
/// earlier ones with `carry` (see [`crate::alloc::carry_into`]).
pub fn explain_carried(ag: &Agreement, lines: &[CostLine], idx: usize, as_of: Date, carry: &Carry) -> Explanation {
    let cat = lines[idx].category;
    let subset: Vec<CostLine> = lines.iter().filter(|l| l.category == cat).cloned().collect();
    let pos = lines[..idx].iter().filter(|l| l.category == cat).count();
    let (alloc, traces) = reference::allocate_carried(ag, &subset, as_of, carry);
    Explanation {
        line: lines[idx].clone(),
        layers: traces[pos].clone(),
        parts: alloc.row(pos).to_vec(),
        provisional: alloc.provisional[pos],
    }
}
