//! # costshare-app
//!
//! The application layer between the libraries (`costshare-core`,
//! `costshare-store`) and the programs (the `costshare` binary, the coming
//! server). Every command is one call here with typed inputs, returning a
//! typed result that carries its provenance (agreement hashes, journal head,
//! as-of date, provisional counts), or a typed [`error::AppError`].
//!
//! Every path choice lives here and nowhere else: streaming or general for
//! file reports ([`query::report`]), derived state or replay for a ledger (and
//! the derived state written back after a replay), late-line or full
//! `record` ([`ledger::record`]), and merging results across agreement
//! versions ([`run::Run::report_rows`]). [`render`] turns results into table,
//! CSV or JSON text; the binary only parses arguments, calls, and prints.
//!
//! - [`input`]: sources, the agreement loader, the as-of date, the
//!   [`input::Observer`] that hears warnings and progress, the [`input::Session`].
//! - [`run`]: a run (lines allocated under their agreement versions) and
//!   [`run::Provenance`].
//! - [`stream`]: the streaming driver over any `Read`, on N threads.
//! - [`query`]: report, allocate, explain.
//! - [`ledger`]: init, record, void, amend, close, adjustments, history, verify.
//! - [`demo`] (feature `demo`, on by default): the built-in example.
//! - [`render`]: table, CSV and JSON for every result.
//! - [`export`]: the allocation for other tools (Ledger, Beancount, tidy CSV,
//!   JSON, xlsx).
//! - [`compare`]: the same costs under other agreements; [`currency`]: the
//!   reporting currency of `report` and `compare`.
//! - [`chart`]: `--chart FILE.svg` (the drawing is [`render::chart`]).

pub mod ceilings;
pub mod chart;
pub mod compare;
pub mod currency;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod export;
pub mod filter;
pub mod forecast;
pub mod input;
pub mod ledger;
pub mod query;
pub mod render;
pub mod run;
pub mod settle;
pub mod stream;
pub mod tokens;
pub mod words;

pub use error::{AppError, UsageError};
pub use input::{Observer, Quiet, ReportPath, Session, Source};
pub use render::Format;
