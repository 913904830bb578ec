//! The PostgreSQL backend, for a team server.
//!
//! Writers serialize on `LOCK TABLE journal IN EXCLUSIVE MODE` inside their
//! transaction; readers are never blocked. A trigger refuses UPDATE, DELETE
//! and TRUNCATE on the journal.

use crate::backend::{Backend, Row, StoreError, StoredRef, StoredVisitor, TOKENS_SCHEMA, TokenRow, entry_number};
use crate::journal::Stored;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, NoTls};

pub struct Pg {
    client: Client,
    url: String,
    /// The derived state's table is known to exist.
    cache_table: bool,
    /// [`CACHE_SCHEMA`] has run in this connection.
    cache_written: bool,
    /// The journal's column types were checked ([`Pg::check_columns`]).
    columns_checked: bool,
}

/// `postgres::Error` displays only its kind ("db error"); the reason is its source.
fn msg(e: &postgres::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), |s| format!("{e}: {s}"))
}

fn db(e: postgres::Error) -> StoreError {
    StoreError::Db(msg(&e))
}

/// Column `i` (`name`, of SQL type `expected`) of journal entry `seq`; a
/// column of another type is [`StoreError::ColumnType`].
fn column<'a, T: postgres::types::FromSql<'a>>(
    r: &'a postgres::Row,
    i: usize,
    (name, expected): (&'static str, &'static str),
    seq: u64,
    location: &str,
) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| {
        // a NULL in a column of the right type is named as NULL, not as that type
        let null = std::error::Error::source(&e).is_some_and(|s| s.is::<postgres::types::WasNull>());
        StoreError::ColumnType {
            location: location.to_string(),
            seq,
            column: name,
            expected,
            found: if null {
                "NULL".to_string()
            } else {
                r.columns()[i].type_().name().to_uppercase()
            },
        }
    })
}

/// Column 0, `seq`, of a journal row (a column of another type than
/// BIGINT, or a number below 1, is [`StoreError::Damaged`]).
fn seq_of(r: &postgres::Row, location: &str) -> Result<u64, StoreError> {
    let seq: i64 = r.try_get(0).map_err(|_| StoreError::Damaged {
        location: location.to_string(),
        what: format!(
            "the journal's `seq` column is stored as {}, not BIGINT",
            r.columns()[0].type_().name().to_uppercase()
        ),
    })?;
    entry_number(seq, location)
}

/// A journal row selected as `seq, body, prev_hash, hash`, as stored.
fn stored_of(r: &postgres::Row, location: &str) -> Result<Stored, StoreError> {
    let seq = seq_of(r, location)?;
    Ok(Stored {
        seq,
        body: column(r, 1, BODY, seq, location)?,
        prev_hash: column(r, 2, PREV_HASH, seq, location)?,
        hash: column(r, 3, HASH, seq, location)?,
    })
}

const BODY: (&str, &str) = ("body", "BYTEA");
const BODY_TYPE: (&str, Type, &str) = ("body", Type::BYTEA, "BYTEA");
const PREV_HASH: (&str, &str) = ("prev_hash", "TEXT");
const HASH: (&str, &str) = ("hash", "TEXT");

/// No parameters, for `query_raw`.
const NO_PARAMS: [&(dyn postgres::types::ToSql + Sync); 0] = [];

pub const SCHEMA: &str = "
CREATE TABLE journal (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    body BYTEA NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE FUNCTION costshare_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the costshare journal is append-only'; END $$;
CREATE TRIGGER journal_no_update BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION costshare_journal_append_only();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION costshare_journal_append_only();
";

/// The derived state's table, made by the first write of a blob. Its
/// values are compressed with lz4, or stored uncompressed where the server
/// has no lz4, never with PostgreSQL's default pglz: pglz compressed the
/// 116 MB of a million-line state in 2.3 s of the bulk `record`'s server
/// time (lz4: 0.2 s) and a late line's 0.8 MB of blobs in about 10 ms, and
/// reading was no faster for it. A table made by an earlier version is
/// changed here (for the values written from then on), once.
const CACHE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cache (k text PRIMARY KEY, v bytea NOT NULL);
DO $$ BEGIN
    IF (SELECT attcompression <> 'l' AND attstorage <> 'e' FROM pg_attribute
        WHERE attrelid = 'cache'::regclass AND attname = 'v') THEN
        BEGIN
            ALTER TABLE cache ALTER COLUMN v SET COMPRESSION lz4;
        EXCEPTION WHEN OTHERS THEN
            ALTER TABLE cache ALTER COLUMN v SET STORAGE EXTERNAL;
        END;
    END IF;
END $$;
";

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Pg {
    /// Connect; a URL without a password takes `PGPASSWORD` (as psql
    /// does), so the password need not be on a command line where the
    /// process list shows it.
    fn connect(url: &str) -> Result<Client, StoreError> {
        let fail = |e: postgres::Error| StoreError::Db(format!("cannot connect to {}: {}", redact(url), msg(&e)));
        let mut cfg: postgres::Config = url.parse().map_err(fail)?;
        if cfg.get_password().is_none()
            && let Ok(pw) = std::env::var("PGPASSWORD")
        {
            cfg.password(pw);
        }
        cfg.connect(NoTls).map_err(fail)
    }

    fn has_journal(client: &mut Client) -> Result<bool, StoreError> {
        let row = client
            .query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'journal'", &[])
            .map_err(db)?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    /// Create the schema inside a transaction left open: the caller appends
    /// the first entries and commits, so an interrupted init leaves nothing.
    pub fn create(url: &str) -> Result<Pg, StoreError> {
        let mut client = Pg::connect(url)?;
        client.batch_execute("BEGIN").map_err(db)?;
        // concurrent creators queue here on an advisory lock ("costshar" as an i64), which
        // any user may take (a LOCK on a catalog table needs rights most users lack)
        let setup = (|| {
            client
                .batch_execute("SELECT pg_advisory_xact_lock(7165072476159369586)")
                .map_err(db)?;
            if Pg::has_journal(&mut client)? {
                return Err(StoreError::Exists(redact(url)));
            }
            client.batch_execute(SCHEMA).map_err(db)
        })();
        if let Err(e) = setup {
            let _ = client.batch_execute("ROLLBACK");
            return Err(e);
        }
        Ok(Pg {
            client,
            url: url.to_string(),
            cache_table: false,
            cache_written: false,
            columns_checked: false,
        })
    }

    pub fn open(url: &str) -> Result<Pg, StoreError> {
        let mut client = Pg::connect(url)?;
        if !Pg::has_journal(&mut client)? {
            return Err(StoreError::NotFound(redact(url)));
        }
        Ok(Pg {
            client,
            url: url.to_string(),
            cache_table: false,
            cache_written: false,
            columns_checked: false,
        })
    }
}

impl Backend for Pg {
    fn location(&self) -> String {
        redact(&self.url)
    }

    fn read_all(&mut self) -> Result<Vec<Stored>, StoreError> {
        let rows = self
            .client
            .query("SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq", &[])
            .map_err(db)?;
        let at = redact(&self.url);
        rows.iter().map(|r| stored_of(r, &at)).collect()
    }

    fn for_each_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        // COPY's binary rows carry no types: the statement's columns are
        // checked first (a prepare, no rows), and a journal whose columns
        // are not the schema's is read row by row, which names the entry
        let st = self.client.prepare(STORED).map_err(db)?;
        let schema = [Type::INT8, Type::BYTEA, Type::TEXT, Type::TEXT];
        if st.columns().iter().map(|c| c.type_()).eq(schema.iter()) {
            return self.copy_stored(f);
        }
        self.rows_stored(f)
    }

    fn begin_write(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute("BEGIN; LOCK TABLE journal IN EXCLUSIVE MODE")
            .map_err(db)
    }

    fn insert(&mut self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        // COPY in binary format: one round trip for the whole batch, the
        // bytes as they are (the text format's hex doubled every body and
        // made the server parse it back)
        use std::io::Write;
        self.check_columns()?;
        let mut w = self
            .client
            .copy_in("COPY journal (seq, kind, at, body, prev_hash, hash) FROM STDIN (FORMAT binary)")
            .map_err(db)?;
        let io = |e: std::io::Error| StoreError::Db(format!("writing the journal: {e}"));
        let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 1024);
        // signature, flags, header extension length
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&[0u8; 8]);
        for r in rows {
            buf.extend_from_slice(&6i16.to_be_bytes());
            let seq = i64::try_from(r.seq).map_err(|_| StoreError::Db(format!("entry {} is past BIGINT", r.seq)))?;
            copy_field(&mut buf, &seq.to_be_bytes())?;
            copy_field(&mut buf, r.kind.as_bytes())?;
            copy_field(&mut buf, r.at.as_bytes())?;
            copy_field(&mut buf, r.body)?;
            copy_field(&mut buf, r.prev_hash.as_bytes())?;
            copy_field(&mut buf, r.hash.as_bytes())?;
            if buf.len() >= COPY_CHUNK {
                w.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        w.write_all(&buf).map_err(io)?;
        w.finish().map_err(db)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.client.batch_execute("COMMIT").map_err(|e| {
            // a connection lost during COMMIT leaves the outcome unknown: the
            // server may have committed before the connection went
            if e.is_closed() || self.client.is_closed() {
                StoreError::CommitUnknown(e.to_string())
            } else {
                db(e)
            }
        })
    }

    fn head(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        let rows = self
            .client
            .query("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1", &[])
            .map_err(db)?;
        let at = redact(&self.url);
        rows.first()
            .map(|r| {
                let seq = seq_of(r, &at)?;
                Ok((seq, column(r, 1, HASH, seq, &at)?))
            })
            .transpose()
    }

    fn head_stored(&mut self) -> Result<Option<Stored>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .map_err(db)?;
        let at = redact(&self.url);
        rows.first().map(|r| stored_of(r, &at)).transpose()
    }

    fn entry_linked(&mut self, seq: u64) -> Result<Vec<Stored>, StoreError> {
        let from = i64::try_from(seq).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(
                "SELECT seq, body, prev_hash, hash FROM journal WHERE seq >= $1 ORDER BY seq LIMIT 2",
                &[&from],
            )
            .map_err(db)?;
        let at = redact(&self.url);
        rows.iter().map(|r| stored_of(r, &at)).collect()
    }

    fn cache_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.cache_table {
            let row = self
                .client
                .query_one(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'cache'",
                    &[],
                )
                .map_err(db)?;
            if row.get::<_, i64>(0) == 0 {
                return Ok(None);
            }
            self.cache_table = true;
        }
        let rows = self
            .client
            .query("SELECT v FROM cache WHERE k = $1", &[&key])
            .map_err(db)?;
        // a value of another type is a damaged blob
        rows.first()
            .map(|r| r.try_get(0).map_err(|_| StoreError::Cache(key.to_string())))
            .transpose()
    }

    fn cache_get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.len() <= 1 || !self.cache_table {
            return keys.iter().map(|k| self.cache_get(k)).collect();
        }
        // one round trip for all of them
        let rows = self
            .client
            .query("SELECT k, v FROM cache WHERE k = ANY($1)", &[&keys])
            .map_err(db)?;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let at: std::collections::HashMap<&str, usize> =
            keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        for r in &rows {
            let k: &str = r.try_get(0).map_err(db)?;
            if let Some(&i) = at.get(k) {
                // a value of another type is a damaged blob
                out[i] = Some(r.try_get(1).map_err(|_| StoreError::Cache(k.to_string()))?);
            }
        }
        Ok(out)
    }

    fn cache_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if !self.cache_written {
            self.client.batch_execute(CACHE_SCHEMA).map_err(db)?;
            self.cache_table = true;
            self.cache_written = true;
        }
        self.client
            .execute(
                "INSERT INTO cache (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                &[&key, &value],
            )
            .map_err(db)?;
        Ok(())
    }

    fn begin_read(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .map_err(db)
    }

    fn end_read(&mut self) {
        let _ = self.client.batch_execute("COMMIT");
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
        // the cache table may have been made in the transaction undone
        self.cache_table = false;
        self.cache_written = false;
    }

    fn tokens_read(&mut self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = match self.client.query(
            "SELECT name, role, party, hash, created_at, revoked_at FROM tokens ORDER BY created_at, name",
            &[],
        ) {
            Ok(rows) => rows,
            // no tokens table yet (42P01 undefined_table): no tokens
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        rows.iter()
            .map(|r| {
                Ok(TokenRow {
                    name: r.try_get(0).map_err(db)?,
                    role: r.try_get(1).map_err(db)?,
                    party: r.try_get(2).map_err(db)?,
                    hash: r.try_get(3).map_err(db)?,
                    created_at: r.try_get(4).map_err(db)?,
                    revoked_at: r.try_get(5).map_err(db)?,
                })
            })
            .collect()
    }

    fn token_insert(&mut self, t: &TokenRow) -> Result<bool, StoreError> {
        self.client.batch_execute(TOKENS_SCHEMA).map_err(db)?;
        let n = self
            .client
            .execute(
                "INSERT INTO tokens (name, role, party, hash, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&t.name, &t.role, &t.party, &t.hash, &t.created_at],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn token_revoke(&mut self, name: &str, at: &str) -> Result<bool, StoreError> {
        self.client.batch_execute(TOKENS_SCHEMA).map_err(db)?;
        let n = self
            .client
            .execute(
                "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &at],
            )
            .map_err(db)?;
        Ok(n == 1)
    }
}

/// The journal as stored, in `seq` order: [`Backend::for_each_stored`]'s
/// statement.
const STORED: &str = "SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq";

impl Pg {
    /// The journal's columns are the schema's types, checked once per
    /// connection before the first write: binary COPY writes each value in
    /// its type's binary form, and a column changed behind the program's
    /// back would otherwise fail as "incorrect binary data format" (or be
    /// truncated, for `name`), naming no column.
    fn check_columns(&mut self) -> Result<(), StoreError> {
        if self.columns_checked {
            return Ok(());
        }
        let st = self
            .client
            .prepare("SELECT seq, kind, at, body, prev_hash, hash FROM journal")
            .map_err(db)?;
        let want = [
            ("seq", Type::INT8, "BIGINT"),
            ("kind", Type::TEXT, "TEXT"),
            ("at", Type::TEXT, "TEXT"),
            BODY_TYPE,
            ("prev_hash", Type::TEXT, "TEXT"),
            ("hash", Type::TEXT, "TEXT"),
        ];
        for (c, (name, t, expected)) in st.columns().iter().zip(want) {
            if *c.type_() != t {
                return Err(StoreError::Damaged {
                    location: redact(&self.url),
                    what: format!(
                        "the journal's `{name}` column is stored as {}, not {expected}",
                        c.type_().name().to_uppercase()
                    ),
                });
            }
        }
        self.columns_checked = true;
        Ok(())
    }

    /// [`Backend::for_each_stored`] by `COPY (STORED) TO STDOUT` in binary
    /// format: one statement (one snapshot) streamed as bytes, which is
    /// about half the client's work of the extended protocol's typed rows
    /// (a `Row` allocated and parsed per entry) at a million entries —
    /// what `verify` spends. Hand-parsed here: the format is four fixed
    /// fields per row (PostgreSQL's "Binary Format" of COPY), and no crate
    /// of the `postgres` family reads it into borrowed slices.
    fn copy_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        use std::io::Read;
        let at = redact(&self.url);
        let sql = format!("COPY ({STORED}) TO STDOUT (FORMAT binary)");
        let mut r = std::io::BufReader::with_capacity(1 << 16, self.client.copy_out(sql.as_str()).map_err(db)?);
        let io = |e: std::io::Error| StoreError::Db(format!("reading the journal: {e}"));
        let bad = |what: &str| StoreError::Db(format!("reading the journal: COPY's binary stream {what}"));
        // header: signature, flags, extension length, extension
        let mut head = [0u8; 19];
        r.read_exact(&mut head).map_err(io)?;
        if &head[..11] != b"PGCOPY\n\xff\r\n\0" {
            return Err(bad("has no signature"));
        }
        let ext = u32::from_be_bytes([head[15], head[16], head[17], head[18]]);
        std::io::copy(&mut (&mut r).take(u64::from(ext)), &mut std::io::sink()).map_err(io)?;
        let mut row: Vec<u8> = Vec::with_capacity(512);
        loop {
            let mut n = [0u8; 2];
            r.read_exact(&mut n).map_err(io)?;
            match i16::from_be_bytes(n) {
                -1 => break,
                4 => {}
                _ => return Err(bad("has a row of another width")),
            }
            // the four fields' bytes one after another in `row`, their ends in `end`
            row.clear();
            let mut end = [0usize; 4];
            let mut null = None;
            for (i, e) in end.iter_mut().enumerate() {
                let mut len = [0u8; 4];
                r.read_exact(&mut len).map_err(io)?;
                match i32::from_be_bytes(len) {
                    -1 => null = null.or(Some(i)),
                    len => {
                        let len = usize::try_from(len).map_err(|_| bad("has a negative length"))?;
                        let from = row.len();
                        row.resize(from + len, 0);
                        r.read_exact(&mut row[from..]).map_err(io)?;
                    }
                }
                *e = row.len();
            }
            let seq_bytes: [u8; 8] = row[..end[0]].try_into().map_err(|_| bad("has a seq of another size"))?;
            let seq = entry_number(i64::from_be_bytes(seq_bytes), &at)?;
            if let Some(i) = null {
                let (column, expected) = [("seq", "BIGINT"), BODY, PREV_HASH, HASH][i];
                return Err(StoreError::ColumnType {
                    location: at,
                    seq,
                    column,
                    expected,
                    found: "NULL".to_string(),
                });
            }
            let text = |i: usize, (column, expected): (&'static str, &'static str)| {
                std::str::from_utf8(&row[end[i - 1]..end[i]]).map_err(|_| StoreError::ColumnType {
                    location: at.clone(),
                    seq,
                    column,
                    expected,
                    found: "TEXT that is not UTF-8".to_string(),
                })
            };
            f(StoredRef {
                seq,
                body: &row[end[0]..end[1]],
                prev_hash: text(2, PREV_HASH)?,
                hash: text(3, HASH)?,
            })?;
        }
        Ok(())
    }

    /// [`Backend::for_each_stored`] row by row (typed rows): a column of
    /// another type than the schema's is named with its entry.
    fn rows_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        let at = redact(&self.url);
        // one statement (one snapshot), its rows as they arrive
        let mut rows = self.client.query_raw(STORED, NO_PARAMS).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let seq = seq_of(&r, &at)?;
            f(StoredRef {
                seq,
                body: column(&r, 1, BODY, seq, &at)?,
                prev_hash: column(&r, 2, PREV_HASH, seq, &at)?,
                hash: column(&r, 3, HASH, seq, &at)?,
            })?;
        }
        Ok(())
    }
}

/// The bytes [`Pg::insert`] hands to COPY at a time.
const COPY_CHUNK: usize = 1 << 16;

/// One field of a row in COPY's binary format: its length, then its bytes.
fn copy_field(buf: &mut Vec<u8>, v: &[u8]) -> Result<(), StoreError> {
    let len = i32::try_from(v.len())
        .map_err(|_| StoreError::Db(format!("a journal value of {} bytes is past COPY's limit", v.len())))?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(v);
    Ok(())
}
