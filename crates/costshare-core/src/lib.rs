//! # costshare-core
//!
//! Exact cost-sharing allocation. The crate does no I/O: callers hand it text
//! and bytes and get typed values and errors back.
//!
//! - [`num`]: decimal text, exact rationals ([`num::Q`] on the hot path) and the
//!   two roundings of the contract (half to even; floor plus largest remainder).
//! - [`money`]: currencies and minor units.
//! - [`calendar`]: dates, fiscal years (`start` and `end` labels), periods.
//! - [`agreement`] and [`load`]: the agreement model and its TOML loader, which
//!   reports every problem with a span ([`diag`]).
//! - [`keys`]: shares from weights with floors and ceilings.
//! - [`costs`]: cost lines and exchange rates from CSV bytes.
//! - [`alloc`]: the fast allocator; [`reference`]: the literal oracle.
//! - [`stream`]: the streaming report: one pass, uncapped lines totalled as they go by, capped ones kept
//!   as compact columns and allocated at the end.
//! - [`report`]: totals by dimension; [`explain`]: one line, layer by layer.
//! - [`compare`]: parsed lines allocated under another agreement; [`convert`]: the reporting currency.

pub mod agreement;
pub mod alloc;
pub mod calendar;
pub mod ceilings;
pub mod compare;
pub mod convert;
pub mod costs;
pub mod diag;
pub mod explain;
pub mod forecast;
pub mod fxhash;
pub mod keys;
pub mod load;
pub mod money;
pub mod num;
pub mod reference;
pub mod report;
pub mod settle;
pub mod stream;

pub use agreement::Agreement;
pub use alloc::{Allocation, allocate};
pub use calendar::Date;
pub use costs::{CostLine, Costs, Rates, RowError, parse_costs, parse_rates};
pub use load::{Loaded, load};
