//! # costshare-store
//!
//! The ledger: an append-only, hash-chained journal of everything recorded
//! (agreement versions, rates, cost lines, voids, closed statements), in one
//! SQLite file or a PostgreSQL database, behind one [`backend::Backend`]
//! interface. The journal is the only source of truth; [`state::State`] is
//! derived by replaying it.
//!
//! - [`journal`]: entries, canonical bytes, the hash chain.
//! - [`backend`], [`sqlite`], [`pg`]: the databases.
//! - [`state`]: replay, allocation under the version in force at each date.
//! - [`derived`]: the derived state kept beside the journal (a cache), so a
//!   report or a late line does not replay it.
//! - [`ledger`]: init, record, void, amend, close, verify, adjustments.

pub mod backend;
pub mod derived;
pub mod journal;
pub mod ledger;
pub mod packed;
pub mod pay;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod sqlite;
pub mod state;

pub use backend::{StoreError, TokenRow};
pub use ledger::{
    Closed, DerivedLines, DerivedStatus, EarlyClose, Input, Ledger, LedgerError, RecordOutcome, Refusal, SmallRecord,
    Verified, VerifyOptions,
};
pub use pay::PayOutcome;
pub use state::State;
