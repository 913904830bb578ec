//! The PostgreSQL backend, for a team server.
//!
//! Writers serialize on `LOCK TABLE journal IN EXCLUSIVE MODE` inside their
//! transaction; readers are never blocked. A trigger refuses UPDATE, DELETE
//! and TRUNCATE on the journal.

use crate::backend::{Backend, Row, StoreError, StoredRef, StoredVisitor, TOKENS_SCHEMA, TokenRow, entry_number};
use crate::journal::Stored;
use futures_util::future::join;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Socket};

/// One connection and its client, driven on the calling thread by a
/// current-thread runtime, as the `postgres` crate drives them — written out
/// here so that a whole `COPY … TO STDOUT` is read inside one `block_on`
/// ([`Pg::copy_stored`]): the `postgres` crate's reader enters the runtime
/// once per row (a `CopyData` message), which at a million rows was about a
/// third of `verify`'s reading thread.
struct Conn {
    /// Declared first, so dropped first: with its last client gone the
    /// connection sends the server a Terminate message (see [`Driver`]).
    client: Client,
    /// A `BEGIN …` not yet sent: it goes out with the next statement, in
    /// the same round trip (the server runs them in order, so the next
    /// statement is in the transaction and after its lock).
    begin: Option<&'static str>,
    driver: Driver,
}

/// The runtime and the connection a [`Conn`] polls.
struct Driver {
    rt: tokio::runtime::Runtime,
    connection: tokio_postgres::Connection<Socket, NoTlsStream>,
}

impl Conn {
    /// Run the future `f` makes of the client to completion, polling the
    /// connection beside it (what `postgres::Client` does for each call): a
    /// connection error is the call's error; notices are dropped (the
    /// `postgres` crate logged them through `log`, which this program never
    /// set up).
    fn run<'a, T, E, F>(&'a mut self, f: impl FnOnce(&'a Client) -> F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: From<tokio_postgres::Error>,
    {
        let Conn {
            client,
            begin,
            driver: Driver { rt, connection },
        } = self;
        let client: &'a Client = client;
        let begin = begin.take();
        let mut fut = pin!(async move {
            match begin {
                // both sent before either answer is read; a `BEGIN` that
                // failed is the error (the statement after it failed too, or
                // ran outside the transaction)
                Some(sql) => {
                    let (begun, out) = join(client.batch_execute(sql), f(client)).await;
                    begun.map_err(E::from)?;
                    out
                }
                None => f(client).await,
            }
        });
        rt.block_on(std::future::poll_fn(|cx| {
            loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(E::from(e))),
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            fut.as_mut().poll(cx)
        }))
    }
}

impl Drop for Driver {
    /// Close as `postgres::Client` does: the [`Conn`]'s client is dropped
    /// before this (field order), so the connection sends a Terminate
    /// message; it is polled until the server has closed it.
    fn drop(&mut self) {
        let connection = &mut self.connection;
        let _: Result<(), tokio_postgres::Error> = self.rt.block_on(std::future::poll_fn(|cx| {
            loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(Ok(())),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }));
    }
}

/// The driver's errors, where a call has nothing to add.
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        db(e)
    }
}

pub struct Pg {
    conn: Conn,
    url: String,
    /// The derived state's table is known to exist.
    cache_table: bool,
    /// The derived state's table is as [`CACHE_SCHEMA`] makes it: that ran
    /// in this connection, or [`TABLES`] found it so when the ledger was
    /// opened (then it need not run again: it was 1.3 ms of the server's
    /// time and a round trip of every late line).
    cache_written: bool,
    /// The journal's column types were checked ([`Pg::check_columns`]).
    columns_checked: bool,
    /// A transaction is open (read or write): what it reads stays as read
    /// until it ends, but for its own writes.
    in_tx: bool,
    /// Blobs read by [`Backend::cache_get`] in the open transaction, kept
    /// for a second read of the same key (a late line reads the new line's
    /// id shard to look the id up, then again to add it).
    memo: HashMap<String, Vec<u8>>,
}

/// Blobs up to this size are kept in [`Pg::memo`] (an id shard is about
/// 30 KB; the meta and the buckets are read once).
const MEMO_MAX: usize = 1 << 16;

/// The ledger's tables in the current schema, as
/// `information_schema.tables` lists them (the kinds of relation it shows,
/// owned by the user or with a privilege on them), each with whether it is
/// the `cache` table as [`CACHE_SCHEMA`] leaves it (values compressed with
/// lz4 or stored uncompressed). Read from the catalog directly: the view,
/// planned cold on a new connection, was 2-5 ms of the server's time, and
/// there were two of them (journal, cache) per command.
const TABLES: &str = "SELECT c.relname::text, c.relname = 'cache' AND EXISTS (
        SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'v'
        AND (a.attcompression = 'l' OR a.attstorage = 'e'))
    FROM pg_class c
    WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = current_schema())
    AND c.relname IN ('journal', 'cache') AND c.relkind IN ('r', 'v', 'f', 'p')
    AND (pg_has_role(c.relowner, 'USAGE')
        OR has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
        OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))";

/// What [`TABLES`] found.
#[derive(Default)]
struct Tables {
    journal: bool,
    cache: bool,
    cache_settled: bool,
}

/// `tokio_postgres::Error` displays only its kind ("db error"); the reason is its source.
fn msg(e: &tokio_postgres::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), |s| format!("{e}: {s}"))
}

fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Db(msg(&e))
}

/// Column `i` (`name`, of SQL type `expected`) of journal entry `seq`; a
/// column of another type is [`StoreError::ColumnType`].
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    r: &'a tokio_postgres::Row,
    i: usize,
    (name, expected): (&'static str, &'static str),
    seq: u64,
    location: &str,
) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| {
        // a NULL in a column of the right type is named as NULL, not as that type
        let null = std::error::Error::source(&e).is_some_and(|s| s.is::<tokio_postgres::types::WasNull>());
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
fn seq_of(r: &tokio_postgres::Row, location: &str) -> Result<u64, StoreError> {
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
fn stored_of(r: &tokio_postgres::Row, location: &str) -> Result<Stored, StoreError> {
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
const NO_PARAMS: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];

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
    fn connect(url: &str) -> Result<Conn, StoreError> {
        let fail = |e: tokio_postgres::Error| StoreError::Db(format!("cannot connect to {}: {}", redact(url), msg(&e)));
        let mut cfg: tokio_postgres::Config = url.parse().map_err(fail)?;
        if cfg.get_password().is_none()
            && let Ok(pw) = std::env::var("PGPASSWORD")
        {
            cfg.password(pw);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(format!("cannot connect to {}: {e}", redact(url))))?;
        let (client, connection) = rt.block_on(cfg.connect(NoTls)).map_err(fail)?;
        Ok(Conn {
            client,
            begin: None,
            driver: Driver { rt, connection },
        })
    }

    fn tables(conn: &mut Conn) -> Result<Tables, StoreError> {
        let rows = conn.run(|c| c.query_typed(TABLES, &[]))?;
        let mut t = Tables::default();
        for r in &rows {
            let name: &str = r.try_get(0)?;
            match name {
                "journal" => t.journal = true,
                _ => {
                    t.cache = true;
                    t.cache_settled = r.try_get(1)?;
                }
            }
        }
        Ok(t)
    }

    /// Create the schema inside a transaction left open: the caller appends
    /// the first entries and commits, so an interrupted init leaves nothing.
    pub fn create(url: &str) -> Result<Pg, StoreError> {
        let mut conn = Pg::connect(url)?;
        conn.run(|c| c.batch_execute("BEGIN"))?;
        // concurrent creators queue here on an advisory lock ("costshar" as an i64), which
        // any user may take (a LOCK on a catalog table needs rights most users lack)
        let setup = (|| {
            conn.run(|c| c.batch_execute("SELECT pg_advisory_xact_lock(7165072476159369586)"))?;
            if Pg::tables(&mut conn)?.journal {
                return Err(StoreError::Exists(redact(url)));
            }
            Ok(conn.run(|c| c.batch_execute(SCHEMA))?)
        })();
        if let Err(e) = setup {
            let _: Result<(), tokio_postgres::Error> = conn.run(|c| c.batch_execute("ROLLBACK"));
            return Err(e);
        }
        Ok(Pg {
            conn,
            url: url.to_string(),
            cache_table: false,
            cache_written: false,
            columns_checked: false,
            in_tx: true,
            memo: HashMap::new(),
        })
    }

    pub fn open(url: &str) -> Result<Pg, StoreError> {
        let mut conn = Pg::connect(url)?;
        let t = Pg::tables(&mut conn)?;
        if !t.journal {
            return Err(StoreError::NotFound(redact(url)));
        }
        Ok(Pg {
            conn,
            url: url.to_string(),
            cache_table: t.cache,
            cache_written: t.cache && t.cache_settled,
            columns_checked: false,
            in_tx: false,
            memo: HashMap::new(),
        })
    }

    /// A statement that returns nothing, its error as it is.
    fn batch(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.conn.run(|c| c.batch_execute(sql))
    }

    /// A transaction starts or ends: nothing read is kept past it.
    fn tx(&mut self, open: bool) {
        self.in_tx = open;
        self.memo.clear();
    }

    /// [`CACHE_SCHEMA`], once per connection (see [`Pg::cache_written`]).
    fn cache_schema(&mut self) -> Result<(), StoreError> {
        if !self.cache_written {
            self.batch(CACHE_SCHEMA)?;
            self.cache_table = true;
            self.cache_written = true;
        }
        Ok(())
    }

    /// The journal rows of a small batch by one `INSERT` of arrays, the
    /// column check of the connection's first write ([`Pg::check_columns`])
    /// sent with it: one round trip, where `COPY` took three and the check
    /// one more. A check that fails is the error (the caller rolls the
    /// transaction back, the rows with it), as it was before the `COPY`.
    fn insert_small(&mut self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        let seqs = rows
            .iter()
            .map(|r| i64::try_from(r.seq).map_err(|_| StoreError::Db(format!("entry {} is past BIGINT", r.seq))))
            .collect::<Result<Vec<i64>, _>>()?;
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
        let ats: Vec<&str> = rows.iter().map(|r| r.at).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body).collect();
        let prevs: Vec<&str> = rows.iter().map(|r| r.prev_hash).collect();
        let hashes: Vec<&str> = rows.iter().map(|r| r.hash).collect();
        let check = !self.columns_checked;
        let (columns, inserted) = self.conn.run(|c| async move {
            let columns = async {
                match check {
                    true => c.prepare(COLUMNS).await.map(Some),
                    false => Ok(None),
                }
            };
            let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 6] = [
                (&seqs, Type::INT8_ARRAY),
                (&kinds, Type::TEXT_ARRAY),
                (&ats, Type::TEXT_ARRAY),
                (&bodies, Type::BYTEA_ARRAY),
                (&prevs, Type::TEXT_ARRAY),
                (&hashes, Type::TEXT_ARRAY),
            ];
            let insert = c.query_typed(
                "INSERT INTO journal (seq, kind, at, body, prev_hash, hash) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[])",
                &params,
            );
            Ok::<_, tokio_postgres::Error>(join(columns, insert).await)
        })?;
        if let Some(st) = columns? {
            self.check_statement(&st)?;
        }
        inserted?;
        Ok(())
    }
}

impl Backend for Pg {
    fn location(&self) -> String {
        redact(&self.url)
    }

    fn read_all(&mut self) -> Result<Vec<Stored>, StoreError> {
        let rows = self
            .conn
            .run(|c| c.query_typed("SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq", &[]))?;
        let at = redact(&self.url);
        rows.iter().map(|r| stored_of(r, &at)).collect()
    }

    fn for_each_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        // COPY's binary rows carry no types: the statement's columns are
        // checked first (a prepare, no rows), and a journal whose columns
        // are not the schema's is read row by row, which names the entry.
        // In a transaction, JIT compilation is turned off for the rest of it,
        // sent with the prepare (no round trip of its own): the scan costs
        // more than `jit_above_cost` and was compiled on every run, 60 of
        // the 345 ms the server took to send a million entries, for a plain
        // scan. `SET LOCAL` ends with the transaction, so a pooler's other
        // clients never see it (a startup option would be refused by
        // PgBouncer as an untracked parameter).
        let in_tx = self.in_tx;
        let st = self.conn.run(|c| async move {
            match in_tx {
                true => {
                    let (set, st) = join(c.batch_execute("SET LOCAL jit = off"), c.prepare(STORED)).await;
                    set?;
                    st
                }
                false => c.prepare(STORED).await,
            }
        })?;
        let schema = [Type::INT8, Type::BYTEA, Type::TEXT, Type::TEXT];
        if st.columns().iter().map(|c| c.type_()).eq(schema.iter()) {
            return self.copy_stored(f);
        }
        self.rows_stored(f)
    }

    fn begin_write(&mut self) -> Result<(), StoreError> {
        // sent with the next statement (see `Conn::begin`): writers queue there
        self.tx(true);
        self.conn.begin = Some("BEGIN; LOCK TABLE journal IN EXCLUSIVE MODE");
        Ok(())
    }

    fn insert(&mut self, rows: &[Row<'_>]) -> Result<(), StoreError> {
        // COPY in binary format: one round trip for the whole batch, the
        // bytes as they are (the text format's hex doubled every body and
        // made the server parse it back); a few rows (a late line) by one
        // INSERT, which is one round trip where COPY is three
        if rows.len() <= SMALL_INSERT && rows.iter().all(|r| r.body.len() <= SMALL_BODY) {
            return self.insert_small(rows);
        }
        self.check_columns()?;
        let io = |e: tokio_postgres::Error| StoreError::Db(format!("writing the journal: {e}"));
        self.conn.run(|c| async move {
            let sink = c
                .copy_in::<_, std::io::Cursor<Vec<u8>>>(
                    "COPY journal (seq, kind, at, body, prev_hash, hash) FROM STDIN (FORMAT binary)",
                )
                .await
                .map_err(db)?;
            let mut sink = pin!(sink);
            let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 1024);
            // signature, flags, header extension length
            buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
            buf.extend_from_slice(&[0u8; 8]);
            for r in rows {
                buf.extend_from_slice(&6i16.to_be_bytes());
                let seq =
                    i64::try_from(r.seq).map_err(|_| StoreError::Db(format!("entry {} is past BIGINT", r.seq)))?;
                copy_field(&mut buf, &seq.to_be_bytes())?;
                copy_field(&mut buf, r.kind.as_bytes())?;
                copy_field(&mut buf, r.at.as_bytes())?;
                copy_field(&mut buf, r.body)?;
                copy_field(&mut buf, r.prev_hash.as_bytes())?;
                copy_field(&mut buf, r.hash.as_bytes())?;
                if buf.len() >= COPY_CHUNK {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(COPY_CHUNK + 1024));
                    sink.send(std::io::Cursor::new(full)).await.map_err(io)?;
                }
            }
            buf.extend_from_slice(&(-1i16).to_be_bytes());
            sink.send(std::io::Cursor::new(buf)).await.map_err(io)?;
            sink.as_mut().finish().await.map_err(db)?;
            Ok(())
        })
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.tx(false);
        if self.conn.begin.take().is_some() {
            // nothing was sent in the transaction: there is nothing to commit
            return Ok(());
        }
        self.batch("COMMIT").map_err(|e| {
            // a connection lost during COMMIT leaves the outcome unknown: the
            // server may have committed before the connection went
            if e.is_closed() || self.conn.client.is_closed() {
                StoreError::CommitUnknown(e.to_string())
            } else {
                db(e)
            }
        })
    }

    fn head(&mut self) -> Result<Option<(u64, String)>, StoreError> {
        let rows = self
            .conn
            .run(|c| c.query_typed("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1", &[]))?;
        let at = redact(&self.url);
        rows.first()
            .map(|r| {
                let seq = seq_of(r, &at)?;
                Ok((seq, column(r, 1, HASH, seq, &at)?))
            })
            .transpose()
    }

    fn head_stored(&mut self) -> Result<Option<Stored>, StoreError> {
        let rows = self.conn.run(|c| c.query_typed(HEAD_STORED, &[]))?;
        let at = redact(&self.url);
        rows.first().map(|r| stored_of(r, &at)).transpose()
    }

    fn entry_linked(&mut self, seq: u64) -> Result<Vec<Stored>, StoreError> {
        let from = i64::try_from(seq).unwrap_or(i64::MAX);
        let rows = self.conn.run(|c| async move {
            c.query_typed(
                "SELECT seq, body, prev_hash, hash FROM journal WHERE seq >= $1 ORDER BY seq LIMIT 2",
                &[(&from, Type::INT8)],
            )
            .await
        })?;
        let at = redact(&self.url);
        rows.iter().map(|r| stored_of(r, &at)).collect()
    }

    fn cache_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.cache_table {
            let t = Pg::tables(&mut self.conn)?;
            if !t.cache {
                return Ok(None);
            }
            self.cache_table = true;
        }
        if let Some(v) = self.memo.get(key) {
            return Ok(Some(v.clone()));
        }
        let rows = self
            .conn
            .run(|c| async move { c.query_typed(CACHE_GET, &[(&key, Type::TEXT)]).await })?;
        // a value of another type is a damaged blob
        let v: Option<Vec<u8>> = rows
            .first()
            .map(|r| r.try_get(0).map_err(|_| StoreError::Cache(key.to_string())))
            .transpose()?;
        if self.in_tx
            && let Some(v) = v.as_ref().filter(|v| v.len() <= MEMO_MAX)
        {
            self.memo.insert(key.to_string(), v.clone());
        }
        Ok(v)
    }

    fn cache_get_and_head(
        &mut self,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, Result<Option<Stored>, StoreError>), StoreError> {
        if !self.cache_table || self.memo.contains_key(key) {
            let v = self.cache_get(key)?;
            let head = if v.is_some() { self.head_stored() } else { Ok(None) };
            return Ok((v, head));
        }
        // both statements sent before either answer is read: one round trip
        let (v, head) = self.conn.run(|c| async move {
            Ok::<_, tokio_postgres::Error>(
                join(
                    c.query_typed(CACHE_GET, &[(&key, Type::TEXT)]),
                    c.query_typed(HEAD_STORED, &[]),
                )
                .await,
            )
        })?;
        // a value of another type is a damaged blob
        let v: Option<Vec<u8>> = v?
            .first()
            .map(|r| r.try_get(0).map_err(|_| StoreError::Cache(key.to_string())))
            .transpose()?;
        let at = redact(&self.url);
        let head = head
            .map_err(db)
            .and_then(|rows| rows.first().map(|r| stored_of(r, &at)).transpose());
        Ok((v, head))
    }

    fn cache_get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.len() <= 1 || !self.cache_table {
            return keys.iter().map(|k| self.cache_get(k)).collect();
        }
        // one round trip for all of them
        let rows = self.conn.run(|c| async move {
            c.query_typed("SELECT k, v FROM cache WHERE k = ANY($1)", &[(&keys, Type::TEXT_ARRAY)])
                .await
        })?;
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
        self.cache_put_many(&[(key, value)])
    }

    fn cache_put_many(&mut self, blobs: &[(&str, &[u8])]) -> Result<(), StoreError> {
        if blobs.is_empty() {
            return Ok(());
        }
        self.cache_schema()?;
        // one statement for all of them; a key given twice keeps its last
        // value, as puts one after another would (one statement's ON
        // CONFLICT may not update a row twice)
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(blobs.len());
        for (i, (k, _)) in blobs.iter().enumerate() {
            last.insert(k, i);
            self.memo.remove(*k);
        }
        let (keys, values): (Vec<&str>, Vec<&[u8]>) = blobs
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| last.get(k) == Some(i))
            .map(|(_, &(k, v))| (k, v))
            .unzip();
        self.conn.run(|c| async move {
            c.query_typed(
                "INSERT INTO cache (k, v) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                &[(&keys, Type::TEXT_ARRAY), (&values, Type::BYTEA_ARRAY)],
            )
            .await
        })?;
        Ok(())
    }

    fn begin_read(&mut self) -> Result<(), StoreError> {
        // sent with the next statement (see `Conn::begin`)
        self.tx(true);
        self.conn.begin = Some("BEGIN ISOLATION LEVEL REPEATABLE READ");
        Ok(())
    }

    fn end_read(&mut self) {
        self.tx(false);
        if self.conn.begin.take().is_none() {
            let _ = self.batch("COMMIT");
        }
    }

    fn rollback(&mut self) {
        self.tx(false);
        if self.conn.begin.take().is_none() {
            let _ = self.batch("ROLLBACK");
        }
        // the cache table may have been made in the transaction undone
        self.cache_table = false;
        self.cache_written = false;
    }

    fn tokens_read(&mut self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = match self.conn.run(|c| {
            c.query_typed(
                "SELECT name, role, party, hash, created_at, revoked_at FROM tokens ORDER BY created_at, name",
                &[],
            )
        }) {
            Ok(rows) => rows,
            // no tokens table yet (42P01 undefined_table): no tokens
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => return Ok(Vec::new()),
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
        self.batch(TOKENS_SCHEMA)?;
        let n = self.conn.run(|c| async move {
            c.execute(
                "INSERT INTO tokens (name, role, party, hash, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&t.name, &t.role, &t.party, &t.hash, &t.created_at],
            )
            .await
        })?;
        Ok(n == 1)
    }

    fn token_revoke(&mut self, name: &str, at: &str) -> Result<bool, StoreError> {
        self.batch(TOKENS_SCHEMA)?;
        let n = self.conn.run(|c| async move {
            c.execute(
                "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &at],
            )
            .await
        })?;
        Ok(n == 1)
    }
}

/// The journal as stored, in `seq` order: [`Backend::for_each_stored`]'s
/// statement.
const STORED: &str = "SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq";

/// The last entry as stored.
const HEAD_STORED: &str = "SELECT seq, body, prev_hash, hash FROM journal ORDER BY seq DESC LIMIT 1";

/// One blob of the derived state.
const CACHE_GET: &str = "SELECT v FROM cache WHERE k = $1";

/// The journal's columns, whose types [`Pg::check_columns`] checks.
const COLUMNS: &str = "SELECT seq, kind, at, body, prev_hash, hash FROM journal";

/// Batches of up to this many rows, none of them over [`SMALL_BODY`]
/// bytes, are written by [`Pg::insert_small`]; larger ones by `COPY`.
const SMALL_INSERT: usize = 64;
const SMALL_BODY: usize = 1 << 20;

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
        let st = self.conn.run(|c| c.prepare(COLUMNS))?;
        self.check_statement(&st)
    }

    /// [`Pg::check_columns`] of the statement [`COLUMNS`] prepared.
    fn check_statement(&mut self, st: &tokio_postgres::Statement) -> Result<(), StoreError> {
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
    /// what `verify` spends. The whole stream is read inside one call of
    /// the runtime ([`Conn::run`]), each `CopyData` message parsed where it
    /// lies ([`CopyRows`]). Hand-parsed here: the format is four fixed
    /// fields per row (PostgreSQL's "Binary Format" of COPY), and no crate
    /// of the `postgres` family reads it into borrowed slices.
    fn copy_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        let at = redact(&self.url);
        let sql = format!("COPY ({STORED}) TO STDOUT (FORMAT binary)");
        self.conn.run(|c| async move {
            let stream = c.copy_out(sql.as_str()).await.map_err(db)?;
            let mut stream = pin!(stream);
            let mut rows = CopyRows::new(at);
            while let Some(msg) = stream.next().await {
                let msg = msg.map_err(|e| StoreError::Db(format!("reading the journal: {e}")))?;
                if rows.feed(&msg, f)? {
                    // the trailer: the server ends the stream here
                    return Ok(());
                }
            }
            // the stream ended before its trailer (what `read_exact` said of it)
            Err(StoreError::Db(
                "reading the journal: failed to fill whole buffer".to_string(),
            ))
        })
    }

    /// [`Backend::for_each_stored`] row by row (typed rows): a column of
    /// another type than the schema's is named with its entry.
    fn rows_stored(&mut self, f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        let at = redact(&self.url);
        // one statement (one snapshot), its rows as they arrive
        self.conn.run(|c| async move {
            let rows = c.query_raw(STORED, NO_PARAMS).await.map_err(db)?;
            let mut rows = pin!(rows);
            while let Some(r) = rows.next().await {
                let r = r.map_err(db)?;
                let seq = seq_of(&r, &at)?;
                f(StoredRef {
                    seq,
                    body: column(&r, 1, BODY, seq, &at)?,
                    prev_hash: column(&r, 2, PREV_HASH, seq, &at)?,
                    hash: column(&r, 3, HASH, seq, &at)?,
                })?;
            }
            Ok(())
        })
    }
}

/// The rows of `COPY (STORED) TO STDOUT (FORMAT binary)` as its messages
/// arrive: the server sends the header, each row and the trailer in
/// messages of their own, so a row is parsed where it lies; bytes of a row
/// split over messages (which the format allows) are gathered in `carry`.
struct CopyRows {
    at: String,
    /// The header has been read.
    started: bool,
    /// Bytes of a row (or of the header) not yet complete.
    carry: Vec<u8>,
}

/// COPY's binary signature.
const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl CopyRows {
    fn new(at: String) -> CopyRows {
        CopyRows {
            at,
            started: false,
            carry: Vec::new(),
        }
    }

    /// Take one message's bytes, calling `f` with each row completed;
    /// `true` once the trailer is read.
    fn feed(&mut self, msg: &[u8], f: &mut StoredVisitor<'_>) -> Result<bool, StoreError> {
        if self.carry.is_empty() {
            let (used, end) = self.parse(msg, f)?;
            self.carry.extend_from_slice(&msg[used..]);
            return Ok(end);
        }
        let mut carry = std::mem::take(&mut self.carry);
        carry.extend_from_slice(msg);
        let (used, end) = self.parse(&carry, f)?;
        carry.drain(..used);
        self.carry = carry;
        Ok(end)
    }

    /// Parse the complete parts of `b`: how many bytes were used, and
    /// whether the trailer was among them.
    fn parse(&mut self, b: &[u8], f: &mut StoredVisitor<'_>) -> Result<(usize, bool), StoreError> {
        let bad = |what: &str| StoreError::Db(format!("reading the journal: COPY's binary stream {what}"));
        let mut at = 0;
        if !self.started {
            // header: signature, flags, extension length, extension
            let Some(head) = b.get(..19) else {
                return Ok((0, false));
            };
            if &head[..11] != COPY_SIGNATURE {
                return Err(bad("has no signature"));
            }
            let ext = u32::from_be_bytes([head[15], head[16], head[17], head[18]]) as usize;
            if b.len() < 19 + ext {
                return Ok((0, false));
            }
            at = 19 + ext;
            self.started = true;
        }
        loop {
            let row_start = at;
            let Some(n) = b.get(at..at + 2) else {
                return Ok((row_start, false));
            };
            at += 2;
            match i16::from_be_bytes([n[0], n[1]]) {
                -1 => return Ok((at, true)),
                4 => {}
                _ => return Err(bad("has a row of another width")),
            }
            // the four fields: where each lies in `b` (`None`: NULL)
            let mut field: [Option<(usize, usize)>; 4] = [None; 4];
            for slot in &mut field {
                let Some(len) = b.get(at..at + 4) else {
                    return Ok((row_start, false));
                };
                at += 4;
                match i32::from_be_bytes([len[0], len[1], len[2], len[3]]) {
                    -1 => *slot = None,
                    len => {
                        let len = usize::try_from(len).map_err(|_| bad("has a negative length"))?;
                        if b.len() < at + len {
                            return Ok((row_start, false));
                        }
                        *slot = Some((at, at + len));
                        at += len;
                    }
                }
            }
            self.row(b, field, f)?;
        }
    }

    /// One complete row, its fields where `field` says in `b`.
    fn row(&self, b: &[u8], field: [Option<(usize, usize)>; 4], f: &mut StoredVisitor<'_>) -> Result<(), StoreError> {
        let bad = |what: &str| StoreError::Db(format!("reading the journal: COPY's binary stream {what}"));
        let bytes = |i: usize| field[i].map_or(&b[..0], |(s, e)| &b[s..e]);
        let seq_bytes: [u8; 8] = bytes(0).try_into().map_err(|_| bad("has a seq of another size"))?;
        let seq = entry_number(i64::from_be_bytes(seq_bytes), &self.at)?;
        if let Some(i) = field.iter().position(Option::is_none) {
            let (column, expected) = [("seq", "BIGINT"), BODY, PREV_HASH, HASH][i];
            return Err(StoreError::ColumnType {
                location: self.at.clone(),
                seq,
                column,
                expected,
                found: "NULL".to_string(),
            });
        }
        let text = |i: usize, (column, expected): (&'static str, &'static str)| {
            std::str::from_utf8(bytes(i)).map_err(|_| StoreError::ColumnType {
                location: self.at.clone(),
                seq,
                column,
                expected,
                found: "TEXT that is not UTF-8".to_string(),
            })
        };
        f(StoredRef {
            seq,
            body: bytes(1),
            prev_hash: text(2, PREV_HASH)?,
            hash: text(3, HASH)?,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// COPY's binary stream of `rows` (seq, body, prev_hash, hash; `None`: NULL).
    fn stream(rows: &[(i64, Option<&[u8]>, &str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(COPY_SIGNATURE);
        b.extend_from_slice(&0u32.to_be_bytes());
        // a header extension of 3 bytes, which a reader skips
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(b"xyz");
        for &(seq, body, prev, hash) in rows {
            b.extend_from_slice(&4i16.to_be_bytes());
            copy_field(&mut b, &seq.to_be_bytes()).unwrap();
            match body {
                Some(body) => copy_field(&mut b, body).unwrap(),
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            copy_field(&mut b, prev.as_bytes()).unwrap();
            copy_field(&mut b, hash.as_bytes()).unwrap();
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    /// A row as visited: seq, body, previous hash, hash.
    type Seen = (u64, Vec<u8>, String, String);

    /// Feed `b` in messages of `n` bytes: the rows seen, whether the trailer
    /// was reached, and the error, if any.
    fn feed(b: &[u8], n: usize) -> (Vec<Seen>, bool, Option<String>) {
        let mut rows = CopyRows::new("L".to_string());
        let mut seen = Vec::new();
        let mut f = |s: StoredRef<'_>| {
            seen.push((s.seq, s.body.to_vec(), s.prev_hash.to_string(), s.hash.to_string()));
            Ok(())
        };
        for msg in b.chunks(n) {
            match rows.feed(msg, &mut f) {
                Ok(true) => return (seen, true, None),
                Ok(false) => {}
                Err(e) => return (seen, false, Some(e.to_string())),
            }
        }
        (seen, false, None)
    }

    #[test]
    fn copy_rows_read_the_same_however_the_stream_is_cut() {
        let b = stream(&[
            (1, Some(b"one"), "g", "h1"),
            (2, Some(b""), "h1", "h2"),
            (3, Some(b"three"), "h2", "h3"),
        ]);
        let whole = feed(&b, b.len());
        assert!(whole.1 && whole.2.is_none());
        assert_eq!(
            whole.0.iter().map(|r| (r.0, r.1.as_slice())).collect::<Vec<_>>(),
            [(1, &b"one"[..]), (2, &b""[..]), (3, &b"three"[..])]
        );
        assert_eq!(whole.0[2].2, "h2");
        assert_eq!(whole.0[2].3, "h3");
        // every cut: a row, the header or a length split over messages
        for n in 1..b.len() {
            assert_eq!(feed(&b, n), whole, "messages of {n} bytes");
        }
        // a stream cut short never reaches its trailer
        let short = feed(&b[..b.len() - 1], 7);
        assert!(!short.1 && short.2.is_none() && short.0.len() == 3);
    }

    #[test]
    fn copy_rows_name_a_null_and_a_bad_stream() {
        let b = stream(&[(1, Some(b"one"), "g", "h1"), (2, None, "h1", "h2")]);
        for n in [1, 5, b.len()] {
            let (seen, end, err) = feed(&b, n);
            assert_eq!((seen.len(), end), (1, false));
            let err = err.unwrap();
            assert!(
                err.contains("journal entry 2") && err.contains("`body` stored as NULL"),
                "{err}"
            );
        }
        let mut bad = stream(&[]);
        bad[0] = b'Q';
        assert!(feed(&bad, 4).2.unwrap().contains("has no signature"));
        // a row numbered 0 is damage naming that number
        let zero = stream(&[(0, Some(b"x"), "g", "h")]);
        assert!(feed(&zero, 3).2.unwrap().contains("numbered 0"));
    }
}
