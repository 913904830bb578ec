//! The storage interface both databases implement, and the errors of the store.

use crate::journal::Stored;
use std::fmt;

/// What went wrong in the store.
#[derive(Debug)]
pub enum StoreError {
    /// `init` on a ledger that exists.
    Exists(String),
    /// No ledger at that place.
    NotFound(String),
    /// The database refused or failed.
    Db(String),
    /// The connection was lost during COMMIT: the write may or may not have
    /// been made (the driver's words). Writes are idempotent, so running the
    /// same command again settles it.
    CommitUnknown(String),
    /// Stored data does not read back (a damaged or edited journal).
    Corrupt { seq: u64, message: String },
    /// A blob of the derived state is missing or does not decode (it is a
    /// cache: the journal is intact, and `verify` rebuilds it).
    Cache(String),
    /// A journal column of entry `seq` holds a value of another type than
    /// the schema's (`found`, as the database names it): the ledger was
    /// changed behind the program's back.
    ColumnType {
        location: String,
        seq: u64,
        column: &'static str,
        expected: &'static str,
        found: String,
    },
    /// The ledger was changed behind the program's back in a way that is
    /// not one entry's column: `what` says how (the `seq` column's type, a
    /// row numbered below 1, entries removed from the end).
    Damaged { location: String, what: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Exists(w) => write!(f, "a ledger already exists at {w}; refusing to overwrite it"),
            StoreError::NotFound(w) => write!(f, "no costshare ledger at {w} (create one with `costshare init`)"),
            StoreError::Db(m) => write!(f, "database error: {m}"),
            StoreError::CommitUnknown(m) => write!(
                f,
                "the connection to the database was lost while committing ({m}), so the write may or may not have been made; run the same command again: it is idempotent, and completes the write or says it is already there"
            ),
            StoreError::Corrupt { seq, message } => write!(f, "journal entry {seq} is damaged: {message}"),
            StoreError::ColumnType {
                location,
                seq,
                column,
                expected,
                found,
            } => write!(
                f,
                "the ledger {location} is damaged: journal entry {seq} has its `{column}` stored as {found}, not {expected} (it was changed outside costshare); run `costshare verify {location}` to check the whole journal"
            ),
            StoreError::Damaged { location, what } => write!(
                f,
                "the ledger {location} is damaged: {what} (it was changed outside costshare); run `costshare verify {location}` to check the whole journal"
            ),
            StoreError::Cache(key) => write!(
                f,
                "the derived state (`{key}`) is damaged; `costshare verify` rebuilds it from the journal"
            ),
        }
    }
}

/// A journal row's `seq` as an entry number: entries are numbered from 1,
/// so a row numbered below that was put there outside costshare
/// ([`StoreError::Damaged`], naming the number as stored).
pub fn entry_number(seq: i64, location: &str) -> Result<u64, StoreError> {
    u64::try_from(seq)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| StoreError::Damaged {
            location: location.to_string(),
            what: format!("the journal holds a row numbered {seq} (entries are numbered from 1)"),
        })
}

impl std::error::Error for StoreError {}

/// A journal row as inserted: the stored entry (seq, bytes, both hashes)
/// plus the columns kept for people querying the table by hand.
pub struct Row<'a> {
    pub seq: u64,
    pub kind: &'a str,
    pub at: &'a str,
    pub body: &'a [u8],
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// A journal row as stored, borrowed from the database's row for the time
/// of one call (see [`Backend::for_each_stored`]).
#[derive(Clone, Copy, Debug)]
pub struct StoredRef<'a> {
    pub seq: u64,
    pub body: &'a [u8],
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// Receives each journal row as stored.
pub type StoredVisitor<'a> = dyn FnMut(StoredRef<'_>) -> Result<(), StoreError> + 'a;

/// One ledger database. The journal is the only source of truth; it is
/// append-only (the database refuses UPDATE and DELETE on it).
pub trait Backend: Send {
    /// Where the ledger is, for messages.
    fn location(&self) -> String;
    /// Every entry in `seq` order.
    fn read_all(&mut self) -> Result<Vec<Stored>, StoreError>;
    /// Call `f` with each row as stored (seq, bytes and both hashes) in
    /// `seq` order, in one statement, without keeping them: what `verify`
    /// checks the chain with. A column of another type than the schema's is
    /// [`StoreError::ColumnType`] in its place: the rows before it have been
    /// visited. An error from `f` stops the reading and is returned.
    fn for_each_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError>;
    /// Start a transaction holding the ledger's write lock: writers queue here.
    fn begin_write(&mut self) -> Result<(), StoreError>;
    /// Append rows inside the transaction.
    fn insert(&mut self, rows: &[Row<'_>]) -> Result<(), StoreError>;
    fn commit(&mut self) -> Result<(), StoreError>;
    fn rollback(&mut self);
    /// The last entry's seq and hash; `None` for an empty journal.
    fn head(&mut self) -> Result<Option<(u64, String)>, StoreError>;
    /// The last entry as stored (seq, bytes and both hashes); `None` for
    /// an empty journal.
    fn head_stored(&mut self) -> Result<Option<Stored>, StoreError>;
    /// Entry `seq` as stored and the entry after it, if any: the rows
    /// numbered `seq` and up, at most two, in `seq` order (a missing `seq`
    /// shows as a first row of another number, or none).
    fn entry_linked(&mut self, seq: u64) -> Result<Vec<Stored>, StoreError>;
    /// A blob of the derived state (see `derived`): a cache beside the
    /// journal, rewritten at will, never part of its truth.
    fn cache_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Several blobs, in the order of `keys` (a late line or `explain` reads
    /// a month, a year or a term of buckets): a backend over a network reads
    /// them in one round trip.
    fn cache_get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.cache_get(k)).collect()
    }
    /// The blob `key` and, when there is one, the last entry as stored
    /// ([`Backend::head_stored`]), read together: a backend over a network
    /// reads them in one round trip (the derived state's meta and the head
    /// it must name, what every command from the derived state reads
    /// first). The head's own failure is handed back beside the blob, so
    /// the caller judges the blob first, as when it read one after the
    /// other.
    #[allow(clippy::type_complexity)]
    fn cache_get_and_head(
        &mut self,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, Result<Option<Stored>, StoreError>), StoreError> {
        let v = self.cache_get(key)?;
        let head = if v.is_some() { self.head_stored() } else { Ok(None) };
        Ok((v, head))
    }
    /// Write a blob of the derived state, inside a write transaction.
    fn cache_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Write several blobs, as [`Backend::cache_put`] of each in turn (a key
    /// given twice keeps its last value): a backend over a network writes
    /// them in one round trip.
    fn cache_put_many(&mut self, blobs: &[(&str, &[u8])]) -> Result<(), StoreError> {
        blobs.iter().try_for_each(|(k, v)| self.cache_put(k, v))
    }
    /// Start and end a read transaction: the reads between see one snapshot.
    fn begin_read(&mut self) -> Result<(), StoreError>;
    fn end_read(&mut self);
    /// The server's access tokens (see [`crate::tokens`]), revoked ones
    /// included, in creation order. Kept beside the journal, not in it:
    /// they are access control, not part of the ledger's truth.
    fn tokens_read(&mut self) -> Result<Vec<TokenRow>, StoreError>;
    /// Add a token; `false` if one with that name exists (revoked or not).
    fn token_insert(&mut self, t: &TokenRow) -> Result<bool, StoreError>;
    /// Revoke the token named `name` at `at`; `false` if there is no such
    /// token or it was already revoked.
    fn token_revoke(&mut self, name: &str, at: &str) -> Result<bool, StoreError>;
}

/// One access token as stored: never the token itself, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub name: String,
    /// `viewer`, `recorder` or `admin`.
    pub role: String,
    /// The party the token is scoped to, if any.
    pub party: Option<String>,
    /// Lowercase hex SHA-256 of the token.
    pub hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// The tokens table, the same on both databases.
pub const TOKENS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, party TEXT, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)";

/// Open an existing ledger: a `postgres://` URL or a SQLite file path.
pub fn open(target: &str) -> Result<Box<dyn Backend>, StoreError> {
    if is_postgres(target) {
        return open_postgres(target, false);
    }
    Ok(Box::new(crate::sqlite::Sqlite::open(target)?))
}

/// Create a new, empty ledger: the schema, in a write transaction left open
/// for the first entries (see `Ledger::init`); refuses an existing ledger.
pub fn create(target: &str) -> Result<Box<dyn Backend>, StoreError> {
    if is_postgres(target) {
        return open_postgres(target, true);
    }
    Ok(Box::new(crate::sqlite::Sqlite::create(target)?))
}

pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

#[cfg(feature = "postgres")]
fn open_postgres(target: &str, create: bool) -> Result<Box<dyn Backend>, StoreError> {
    let pg = if create {
        crate::pg::Pg::create(target)?
    } else {
        crate::pg::Pg::open(target)?
    };
    Ok(Box::new(pg))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_target: &str, _create: bool) -> Result<Box<dyn Backend>, StoreError> {
    Err(StoreError::Db(
        "this build has no PostgreSQL support (build with the `postgres` feature)".into(),
    ))
}
