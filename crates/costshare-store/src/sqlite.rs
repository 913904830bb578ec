//! The SQLite backend: one file, nothing to install.
//!
//! WAL mode with `synchronous = FULL`: a committed `record` survives a crash
//! of the process or the machine, and an uncommitted one leaves no trace.
//! Writers take the write lock with `BEGIN IMMEDIATE` and wait up to a minute
//! for each other.

use crate::backend::{Backend, Row, StoreError, StoredRef, StoredVisitor, TOKENS_SCHEMA, TokenRow, entry_number};
use crate::journal::Stored;
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;

pub struct Sqlite {
    conn: Connection,
    path: String,
    /// The derived state's table is known to exist.
    cache_table: bool,
    /// Rows inserted in the write transaction open now.
    rows_in_write: usize,
    /// Started once a write inserts [`WRITEBACK_ROWS`] rows, ended with it.
    writeback: Option<Writeback>,
}

/// A write transaction that inserts this many rows starts its pages on
/// their way to the disk while it runs ([`Writeback`]); a late line's few
/// do not.
const WRITEBACK_ROWS: usize = 8_192;

/// The WAL pages a large write has put in the operating system's cache,
/// started on their way to the disk while the write goes on, by a thread
/// that asks for it every 50 ms (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on
/// the ledger's `-wal` file; Linux only, elsewhere nothing). The commit's
/// sync is SQLite's, unchanged: this only gives the disk the bytes sooner, as
/// PostgreSQL's `checkpoint_flush_after` and RocksDB's `bytes_per_sync` do.
/// Without it the kernel kept a million-line `record`'s 400 MB of WAL in
/// memory until the commit synced it (about 0.27 s of waiting); with it the
/// sync waited under 10 ms. Ends (and is joined) when dropped.
///
/// Never the ledger file itself: closing any descriptor of a file drops
/// every POSIX lock the process holds on it, SQLite's connections' included
/// (SQLite's "How To Corrupt An SQLite Database File", 2.2), after which
/// another process may checkpoint and delete the WAL under them. SQLite
/// takes no lock on the `-wal` file (its locks are on the ledger and the
/// `-shm` file: `/proc/locks` during a bulk `record`), so a descriptor of
/// the WAL opened and closed here releases nothing of SQLite's.
struct Writeback {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    fn start(path: &str) -> Option<Writeback> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        // the WAL only: see above
        let wal = format!("{path}-wal");
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                let mut open: Option<std::fs::File> = None;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(std::time::Duration::from_millis(50))
                {
                    if open.is_none() {
                        open = std::fs::File::open(&wal).ok();
                    }
                    if let Some(f) = &open {
                        start_writing(f);
                    }
                }
            })
            .ok()?;
        Some(Writeback {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ask the kernel to start writing `f`'s dirty pages, not waiting for them
/// (a hint: an error changes nothing).
#[cfg(target_os = "linux")]
fn start_writing(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: `f` is an open file for the length of the call, and
    // sync_file_range reads no memory of ours (offset 0, length 0: the
    // whole file; SYNC_FILE_RANGE_WRITE starts writes and does not wait)
    let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writing(_: &std::fs::File) {}

/// The derived state's blobs (see `derived`): a cache, rewritten at will.
pub const CACHE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cache (k TEXT PRIMARY KEY, v BLOB NOT NULL);";

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A file that is not a SQLite database is no ledger; any other failure
/// (an I/O error, a full disk) is said as it is.
fn not_a_database(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotFound(format!("{path} (not a SQLite database)")),
        // the file exists (`open` checked): what SQLite could not open is the
        // file for writing or, in WAL mode, the -wal and -shm files beside it
        // (a fresh user's read-only directory gave only "unable to open
        // database file")
        Some(rusqlite::ErrorCode::CannotOpen) => StoreError::Db(format!(
            "{path}: {e}: a ledger is opened for writing, with the -wal and -shm files SQLite keeps beside it; check that the file and its directory are writable"
        )),
        _ => db(e),
    }
}

/// Column `i` (`name`, of SQL type `expected`) of journal entry `seq`; a
/// value of another type is [`StoreError::ColumnType`].
fn column<T: rusqlite::types::FromSql>(
    r: &rusqlite::Row<'_>,
    i: usize,
    (name, expected): (&'static str, &'static str),
    seq: u64,
    location: &str,
) -> Result<T, StoreError> {
    r.get(i).map_err(|e| match e {
        rusqlite::Error::InvalidColumnType(_, _, ty) | rusqlite::Error::FromSqlConversionFailure(_, ty, _) => {
            StoreError::ColumnType {
                location: location.to_string(),
                seq,
                column: name,
                expected,
                found: sql_type(ty),
            }
        }
        e => db(e),
    })
}

/// Column `i` (`name`, of SQL type `expected`) of journal entry `seq` as
/// text, borrowed from the row (as [`column`] reads it, without a copy).
fn text_ref<'r>(
    r: &'r rusqlite::Row<'_>,
    i: usize,
    (name, expected): (&'static str, &'static str),
    seq: u64,
    location: &str,
) -> Result<&'r str, StoreError> {
    let v = r.get_ref(i).map_err(db)?;
    v.as_str().map_err(|_| StoreError::ColumnType {
        location: location.to_string(),
        seq,
        column: name,
        expected,
        found: sql_type(v.data_type()),
    })
}

/// Column `i` (`name`, of SQL type `expected`) of journal entry `seq` as
/// bytes, borrowed from the row (as [`column`] reads it, without a copy).
fn blob_ref<'r>(
    r: &'r rusqlite::Row<'_>,
    i: usize,
    (name, expected): (&'static str, &'static str),
    seq: u64,
    location: &str,
) -> Result<&'r [u8], StoreError> {
    let v = r.get_ref(i).map_err(db)?;
    v.as_blob().map_err(|_| StoreError::ColumnType {
        location: location.to_string(),
        seq,
        column: name,
        expected,
        found: sql_type(v.data_type()),
    })
}

fn sql_type(t: rusqlite::types::Type) -> String {
    use rusqlite::types::Type;
    match t {
        Type::Null => "NULL",
        Type::Integer => "INTEGER",
        Type::Real => "REAL",
        Type::Text => "TEXT",
        Type::Blob => "BLOB",
    }
    .to_string()
}

/// Column 0, `seq`, of a journal row (a value that is not an integer, or
/// a number below 1, is [`StoreError::Damaged`]).
fn seq_of(r: &rusqlite::Row<'_>, location: &str) -> Result<u64, StoreError> {
    let seq: i64 = r.get(0).map_err(|_| StoreError::Damaged {
        location: location.to_string(),
        what: "the journal holds a row whose `seq` is not an integer".to_string(),
    })?;
    entry_number(seq, location)
}

/// A journal row selected as `seq, body, prev_hash, hash`, as stored.
fn stored_of(r: &rusqlite::Row<'_>, location: &str) -> Result<Stored, StoreError> {
    let seq = seq_of(r, location)?;
    Ok(Stored {
        seq,
        body: column(r, 1, BODY, seq, location)?,
        prev_hash: column(r, 2, PREV_HASH, seq, location)?,
        hash: column(r, 3, HASH, seq, location)?,
    })
}

const BODY: (&str, &str) = ("body", "BLOB");
const PREV_HASH: (&str, &str) = ("prev_hash", "TEXT");
const HASH: (&str, &str) = ("hash", "TEXT");

pub const SCHEMA: &str = "
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    body BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the costshare journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the costshare journal is append-only'); END;
";

impl Sqlite {
    fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(())
    }

    /// Create the schema inside a transaction left open: the caller appends
    /// the first entries and commits, so an interrupted init leaves no ledger
    /// (at most an empty file, which a later init may use).
    pub fn create(path: &str) -> Result<Sqlite, StoreError> {
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() > 0
        {
            // an existing non-empty file: a ledger, or something else; never overwrite
            let empty_db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)))
                .map(|n| n == 0)
                .unwrap_or(false);
            if !empty_db {
                return Err(StoreError::Exists(path.to_string()));
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        // pages of 16 KB, where SQLite's default is 4: a million-line
        // `record` wrote its 470 MB as 115,000 frames to the WAL and again to
        // the file, a system call each way per page; with 16 KB it was about
        // 8% faster, and a late line no slower (BENCHMARKS.md, stop 20). It
        // takes effect only on a new file (a ledger keeps the size it has)
        conn.pragma_update(None, "page_size", 16384).map_err(db)?;
        Sqlite::configure(&conn).map_err(db)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
        let has: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if has > 0 {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Exists(path.to_string()));
        }
        if let Err(e) = conn.execute_batch(SCHEMA) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(db(e));
        }
        Ok(Sqlite {
            conn,
            path: path.to_string(),
            cache_table: false,
            rows_in_write: 0,
            writeback: None,
        })
    }

    pub fn open(path: &str) -> Result<Sqlite, StoreError> {
        if !Path::new(path).is_file() {
            return Err(StoreError::NotFound(path.to_string()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(not_a_database(path))?;
        Sqlite::configure(&conn).map_err(not_a_database(path))?;
        let has: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'",
                [],
                |r| r.get(0),
            )
            .map_err(not_a_database(path))?;
        if has == 0 {
            return Err(StoreError::NotFound(path.to_string()));
        }
        Ok(Sqlite {
            conn,
            path: path.to_string(),
            cache_table: false,
            rows_in_write: 0,
            writeback: None,
        })
    }
}

impl Backend for Sqlite {
    fn location(&self) -> String {
        self.path.clone()
    }

    fn read_all(&mut self) -> Result<Vec<Stored>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq")
            .map_err(db)?;
        let mut rows = st.query([]).map_err(db)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db)? {
            out.push(stored_of(r, &self.path)?);
        }
        Ok(out)
    }

    fn for_each_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        // one statement: it reads one snapshot of the WAL, whatever commits meanwhile
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq")
            .map_err(db)?;
        let mut rows = st.query([]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let seq = seq_of(r, &self.path)?;
            f(StoredRef {
                seq,
                body: blob_ref(r, 1, BODY, seq, &self.path)?,
                prev_hash: text_ref(r, 2, PREV_HASH, seq, &self.path)?,
                hash: text_ref(r, 3, HASH, seq, &self.path)?,
            })?;
        }
        Ok(())
    }

    fn begin_write(&mut self) -> Result<(), StoreError> {
        self.rows_in_write = 0;
        self.writeback = None;
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db)
    }

    fn insert(&mut self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        self.rows_in_write += rows.len();
        if self.rows_in_write >= WRITEBACK_ROWS && self.writeback.is_none() {
            self.writeback = Writeback::start(&self.path);
        }
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO journal (seq, kind, at, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(db)?;
        for r in rows {
            st.execute(params![r.seq as i64, r.kind, r.at, r.body, r.prev_hash, r.hash])
                .map_err(db)?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let done = self.conn.execute_batch("COMMIT").map_err(db);
        self.writeback = None;
        done
    }

    fn head(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1")
            .map_err(db)?;
        let mut rows = st.query([]).map_err(db)?;
        match rows.next().map_err(db)? {
            Some(r) => {
                let seq = seq_of(r, &self.path)?;
                Ok(Some((seq, column(r, 1, HASH, seq, &self.path)?)))
            }
            None => Ok(None),
        }
    }

    fn head_stored(&mut self) -> Result<Option<Stored>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq DESC LIMIT 1")
            .map_err(db)?;
        let mut rows = st.query([]).map_err(db)?;
        match rows.next().map_err(db)? {
            Some(r) => Ok(Some(stored_of(r, &self.path)?)),
            None => Ok(None),
        }
    }

    fn entry_linked(&mut self, seq: u64) -> Result<Vec<Stored>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, body, prev_hash, hash FROM journal WHERE seq >= ?1 ORDER BY seq LIMIT 2")
            .map_err(db)?;
        let mut rows = st.query([seq as i64]).map_err(db)?;
        let mut out = Vec::with_capacity(2);
        while let Some(r) = rows.next().map_err(db)? {
            out.push(stored_of(r, &self.path)?);
        }
        Ok(out)
    }

    fn cache_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // a ledger made before the derived state has no cache table: nothing cached
        let mut st = match self.conn.prepare_cached("SELECT v FROM cache WHERE k = ?1") {
            Ok(st) => st,
            Err(_) => return Ok(None),
        };
        let mut rows = st.query([key]).map_err(db)?;
        match rows.next().map_err(db)? {
            // a value of another type is a damaged blob
            Some(r) => Ok(Some(r.get(0).map_err(|_| StoreError::Cache(key.to_string()))?)),
            None => Ok(None),
        }
    }

    fn cache_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if !self.cache_table {
            self.conn.execute_batch(CACHE_SCHEMA).map_err(db)?;
            self.cache_table = true;
        }
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO cache (k, v) VALUES (?1, ?2)")
            .map_err(db)?
            .execute(params![key, value])
            .map_err(db)?;
        Ok(())
    }

    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN").map_err(db)
    }

    fn end_read(&mut self) {
        let _ = self.conn.execute_batch("COMMIT");
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
        self.writeback = None;
    }

    fn tokens_read(&mut self) -> Result<Vec<TokenRow>, StoreError> {
        // a ledger without the table has no tokens (reading creates nothing)
        let mut st = match self
            .conn
            .prepare_cached("SELECT name, role, party, hash, created_at, revoked_at FROM tokens ORDER BY rowid")
        {
            Ok(st) => st,
            Err(_) => return Ok(Vec::new()),
        };
        let rows = st
            .query_map([], |r| {
                Ok(TokenRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    party: r.get(2)?,
                    hash: r.get(3)?,
                    created_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn token_insert(&mut self, t: &TokenRow) -> Result<bool, StoreError> {
        self.conn.execute_batch(TOKENS_SCHEMA).map_err(db)?;
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO tokens (name, role, party, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.name, t.role, t.party, t.hash, t.created_at],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn token_revoke(&mut self, name: &str, at: &str) -> Result<bool, StoreError> {
        self.conn.execute_batch(TOKENS_SCHEMA).map_err(db)?;
        let n = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, at],
            )
            .map_err(db)?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writeback thread runs against files that come and go (the WAL
    /// is made after it starts) and ends when dropped, promptly.
    #[test]
    fn a_writeback_ends_when_dropped() {
        let dir = std::env::temp_dir().join(format!("costshare-writeback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.db").display().to_string();
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let w = Writeback::start(&path);
        assert_eq!(w.is_some(), cfg!(target_os = "linux"));
        std::thread::sleep(std::time::Duration::from_millis(120));
        std::fs::write(format!("{path}-wal"), vec![1u8; 1 << 20]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(120));
        let t = std::time::Instant::now();
        drop(w);
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
