//! The SQLite backend: one file, nothing to install.
//!
//! WAL mode with `synchronous = FULL`: a committed `record` survives a crash
//! of the process or the machine, and an uncommitted one leaves no trace.
//! Writers take the write lock with `BEGIN IMMEDIATE` and wait up to a minute
//! for each other.

use crate::backend::{Backend, Row, StoreError};
use crate::journal::Stored;
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;

pub struct Sqlite {
    conn: Connection,
    path: String,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

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
    fn configure(conn: &Connection) -> Result<(), StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(60)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        Ok(())
    }

    pub fn create(path: &str) -> Result<Sqlite, StoreError> {
        if Path::new(path).exists() {
            return Err(StoreError::Exists(path.to_string()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        Sqlite::configure(&conn)?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
            .map_err(db)?;
        Ok(Sqlite {
            conn,
            path: path.to_string(),
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
        .map_err(db)?;
        Sqlite::configure(&conn).map_err(|_| StoreError::NotFound(format!("{path} (not a SQLite database)")))?;
        let has: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'journal'",
                [],
                |r| r.get(0),
            )
            .map_err(|_| StoreError::NotFound(format!("{path} (not a SQLite database)")))?;
        if has == 0 {
            return Err(StoreError::NotFound(path.to_string()));
        }
        Ok(Sqlite {
            conn,
            path: path.to_string(),
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
        let rows = st
            .query_map([], |r| {
                Ok(Stored {
                    seq: r.get::<_, i64>(0)? as u64,
                    body: r.get(1)?,
                    prev_hash: r.get(2)?,
                    hash: r.get(3)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    fn begin_write(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db)
    }

    fn insert(&mut self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO journal (seq, kind, at, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(db)?;
        for r in rows {
            st.execute(params![
                r.stored.seq as i64,
                r.kind,
                r.at,
                r.stored.body,
                r.stored.prev_hash,
                r.stored.hash
            ])
            .map_err(db)?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(db)
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}
