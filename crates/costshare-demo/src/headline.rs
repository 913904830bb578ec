//! The sourced headline figures of the 2022 U.S.–Japan agreement, which the
//! demo's closing note reconciles Japan's generated five-year total to
//! (`/work/shared/data/agreements.md`, section 1, and the comments of
//! `agreements/us-japan-sma-2022.toml`). These are the only typed-in figures
//! of the note; everything else is computed from the allocation.

/// The party whose total the headline states.
pub const PARTY: &str = "JP";

/// Japan's five-year total as reported (Jiji/nippon.com 21 Dec 2021; NHK;
/// Nikkei), in yen.
pub const TOTAL_YEN: i64 = 1_055_100_000_000;

/// What the headline counts of one category.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// This many yen (a sourced figure).
    Yen(i64),
    /// Not published: the headline less every other category's figure.
    Rest,
}

/// One category's place in the headline: what it counts, and why that
/// differs from the generated history when it does.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    pub category: &'static str,
    pub counted: Counted,
    pub why: &'static str,
}

/// The headline, category by category, in the agreement's order.
pub const PARTS: [Part; 6] = [
    Part {
        category: "labor",
        counted: Counted::Rest,
        why: "not published: the headline less the figures below",
    },
    Part {
        category: "welfare",
        counted: Counted::Yen(0),
        why: "outside the headline: under the SOFA, not the SMA",
    },
    Part {
        // 23.4 + 23.4 + 15.1 + 13.3 + 13.3 (MOFA press4e_003074)
        category: "utilities",
        counted: Counted::Yen(88_500_000_000),
        why: "the fixed yearly amounts",
    },
    Part {
        // about 1.0 billion a year in the host-nation-support line (MOFA press4_009326; MOD)
        category: "training_relocation",
        counted: Counted::Yen(5_000_000_000),
        why: "the headline counts about ¥1.0 bn of ¥11.4 bn a year",
    },
    Part {
        // Sankei 21 Dec 2021; Kyodo
        category: "facilities",
        counted: Counted::Yen(164_100_000_000),
        why: "the FIP envelope",
    },
    Part {
        // MOFA press4_009326
        category: "training_equipment",
        counted: Counted::Yen(20_000_000_000),
        why: "the five-year envelope",
    },
];
