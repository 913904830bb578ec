//! The derived state: what a report and a late line need, kept beside the
//! journal so that neither replays it.
//!
//! It is a cache. The journal stays the only truth: the derived state names
//! the entry it reflects (seq and head hash), is used only while that is still
//! the journal's head, and is rebuilt from a full replay otherwise. It is
//! written in the same transaction as the entries it reflects, so a crash
//! leaves it either matching the journal or stale, never wrong.
//!
//! Blobs by key, in the backend's `cache` table:
//! - `meta`: the reflected head, the agreement and rate entries, the line
//!   count and total, report totals by (party, category, month, site), and
//!   how many lines stay provisional until each date, and every payment's id
//!   and entry (for `history --id`), and the seal digest of every other
//!   blob (what ties each bucket and shard to this meta);
//! - `b/CATEGORY/MONTH`: the active lines of one category and month (by
//!   month index), in (date, id) order — what re-allocating a period group
//!   needs, a group being a run of whole months;
//! - `i/SHARD`: every recorded id (voided ones too) with its entry, in 1024
//!   shards by hash, to tell a new id from a recorded one (a late line reads
//!   and rewrites one: about a thousand ids at a million lines).
//!
//! Every blob is sealed ([`seal`]): stored after a checksum (XXH3-128) over
//! a head, its key and its payload. The meta's head is the journal head it
//! reflects; buckets and id shards are sealed under no head and stored
//! compressed ([`seal_blob`]: the meta's checksums of them are what tie them
//! to its state; those written before were sealed under the head). A blob
//! whose seal does not check, or whose checksum is not the one the meta
//! records for its key, is never decoded: reading it is
//! [`StoreError::Cache`], and the callers replay the journal instead (and
//! say so). The meta names the head; its checksums name every other blob:
//! [`check_blobs`] checks that tie without decoding a blob (what `verify`
//! does by default).
//!
//! It exists only for a ledger with one agreement version (amendments make
//! every command replay the journal). A late line re-allocates the dates its
//! capped layers' periods tie it to: a month or a fiscal year for monthly and
//! yearly caps, the whole term for term caps.

use crate::backend::{Backend, StoreError};
use crate::journal::{self, Body, LineBody};
use crate::packed::{LineSource, LineView, view_of};
use crate::state::{self, State};
use costshare_core::agreement::Agreement;
use costshare_core::alloc;
use costshare_core::calendar::{Date, Period};
use costshare_core::costs::{CostLine, Rates};
use costshare_core::fxhash::Fx;
use costshare_core::num::{BigRational, Q};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

/// The layout of the blobs' payloads.
pub const FORMAT: u32 = 6;
/// The first bytes of every sealed blob.
const SEAL: &[u8; 4] = b"CSd6";
/// The first bytes of a bucket or shard whose payload is compressed
/// ([`seal_blob`]); the rest of the seal is [`SEAL`]'s.
const SEAL_LZ4: &[u8; 4] = b"CSz6";
/// The seals of earlier layouts: such a derived state is stale (rebuilt
/// silently), not damaged.
const OLD_SEALS: [&[u8; 4]; 3] = [b"CSd3", b"CSd4", b"CSd5"];
/// Id shards: 1024 keep each one about 30 KB at a million lines (256 made
/// a late line read and rewrite 113 KB of ids for its one).
const SHARDS: u64 = 1024;

/// A blob of the derived state and its key.
pub type Blob = (String, Vec<u8>);

/// (version index, party index — parties then UNALLOCATED —, category index
/// in that version, month index, site).
pub type TotalKey = (u16, u16, u16, i32, String);

/// Everything but the lines and ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// The journal entry this state reflects, and its hash.
    pub seq: u64,
    pub head: String,
    /// The agreement versions' entries, in order.
    pub versions: Vec<u64>,
    /// Rate entries.
    pub rate_seqs: Vec<u64>,
    /// Statement (`close`) entries.
    pub close_seqs: Vec<u64>,
    /// The SHA-256 of every recorded costs file (batch entries), sorted.
    pub files: Vec<String>,
    /// Active lines and their total (agreement currency).
    pub lines: u64,
    pub total: i128,
    /// Allocated amounts.
    pub totals: BTreeMap<TotalKey, i128>,
    /// Lines provisional until a date (`Allocation::open_until`), by the
    /// month index of the line's date and that date.
    pub open: BTreeMap<(i32, Date), u64>,
    /// Per version: the use of its caps carried from earlier versions.
    pub carries: Vec<alloc::Carry>,
    /// The allocated amounts of the lines that are provisional until a
    /// date, by that date: a report's per-row provisional flags at any
    /// as-of date come from these (the rows counting a line still open).
    pub open_totals: BTreeMap<OpenKey, i128>,
    /// Every payment (`pay`): its id and entry, in journal order (what
    /// `history --id` needs besides the id shards, which hold lines only).
    pub payments: Vec<(String, u64)>,
    /// Every other blob of the derived state (buckets and id shards) by
    /// key, with the seal digest it was written with: a blob is read only
    /// when its seal is the one the meta names, so a blob from another
    /// state (an older copy of the same ledger, another blob's bytes) is
    /// refused even though its own seal checks. Set by [`put_all`].
    pub blobs: BTreeMap<String, [u8; 16]>,
}

/// A [`TotalKey`] and the date its lines are provisional until.
pub type OpenKey = (u16, u16, u16, i32, String, Date);

impl Meta {
    /// Lines still provisional at `as_of`.
    pub fn provisional(&self, as_of: Date) -> u64 {
        self.open.iter().filter(|((_, d), _)| *d > as_of).map(|(_, n)| n).sum()
    }

    /// Lines dated within months `m0..=m1` still provisional at `as_of`, and
    /// the latest day they are provisional until.
    pub fn provisional_in(&self, m0: i32, m1: i32, as_of: Date) -> (u64, Option<Date>) {
        let mut n = 0;
        let mut until = None;
        for ((m, d), k) in &self.open {
            if *m >= m0 && *m <= m1 && *d > as_of {
                n += k;
                until = until.max(Some(*d));
            }
        }
        (n, until)
    }

    /// The agreement entry of the latest version.
    pub fn latest_version(&self) -> u64 {
        self.versions.last().copied().unwrap_or(0)
    }

    /// A costs file with these bytes (its SHA-256) was recorded before.
    pub fn has_file(&self, sha256: &str) -> bool {
        self.files.binary_search_by(|f| f.as_str().cmp(sha256)).is_ok()
    }
}

fn damaged(key: &str) -> StoreError {
    StoreError::Cache(key.to_string())
}

// --- sealing --------------------------------------------------------------

/// The checksum of a blob sealed with `magic`: XXH3-128 of (head, LF, key,
/// LF, payload), after `LZ4` and LF for a compressed seal ([`SEAL_LZ4`]), so
/// a blob whose first bytes are changed from one seal to the other fails its
/// seal (a `CSd6` seal's checksum is as it always was).
///
/// Not SHA-256: the seal guards the derived state against damage (a torn
/// or edited blob, one written under another head or key), not against an
/// attacker, who could recompute a SHA-256 as easily (the journal's hash
/// chain is what guards the truth, and the derived state is rebuilt from
/// it). A late line or `explain` checksums megabytes of buckets (a whole
/// term of one category for a term cap): SHA-256 cost milliseconds of the
/// 20 ms they may take, XXH3 a tenth of one. 128 bits keep accidental
/// collisions out of reach.
fn digest_as(magic: &[u8; 4], head: &str, key: &str, payload: &[u8]) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    if magic == SEAL_LZ4 {
        h.update(b"LZ4\n");
    }
    h.update(head.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    h.update(b"\n");
    h.update(payload);
    h.digest128().to_le_bytes()
}

/// A blob as stored: `CSd6`, the head's length (u32 LE) and bytes, the
/// [`digest_as`] of (head, LF, key, LF, payload), then the payload. (A bucket or
/// shard sealed compressed: [`seal_blob`].)
pub fn seal(head: &str, key: &str, payload: &[u8]) -> Vec<u8> {
    sealed(head, key, payload).0
}

/// A blob other than the meta as it is written ([`sealed`]), and its
/// checksum, for the meta to name. Sealed under no head: a bucket or shard
/// is read only as the blob the meta names by its checksum ([`named`]), and
/// the meta is sealed under the head, so the checksum is what ties the blob
/// to that state (a blob of another state with other bytes fails it; one
/// with the same bytes is the same data). Without the head, a bulk load's
/// buckets are sealed on the thread that built them while the journal is
/// still being written, before its head is known ([`Feed`]). Blobs written
/// before this sealed under their head; they read as before.
///
/// The payload is compressed (LZ4, its length first: [`SEAL_LZ4`]): a
/// bucket of a million-line ledger is a third of its size so, and the
/// derived state 42 MB where it was 118, which a bulk `record` writes twice
/// (the WAL, then the file) and syncs; reading it back costs a fraction of
/// a millisecond a bucket. A payload too large for the length field is
/// sealed as it is.
fn seal_blob(key: &str, payload: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let Ok(n) = u32::try_from(payload.len()) else {
        return sealed("", key, payload);
    };
    // `lz4_flex` (pure Rust, kept up, the block format without frames): the
    // fastest compression the registry offers for bytes read back in a
    // late line's milliseconds
    let mut z = vec![0; 4 + lz4_flex::block::get_maximum_output_size(payload.len())];
    z[..4].copy_from_slice(&n.to_le_bytes());
    match lz4_flex::block::compress_into(payload, &mut z[4..]) {
        Ok(len) => {
            z.truncate(4 + len);
            sealed_as(SEAL_LZ4, "", key, &z)
        }
        Err(_) => sealed("", key, payload),
    }
}

/// The payload of a blob sealed compressed ([`seal_blob`]), decompressed;
/// `None` when it does not decompress to the length it gives (a length
/// more than LZ4 can expand to is refused before anything is allocated).
fn unpack(z: &[u8]) -> Option<Vec<u8>> {
    let n = u32::from_le_bytes(z.get(..4)?.try_into().ok()?) as usize;
    let body = &z[4..];
    // LZ4 expands a byte to 255 at most
    if n > body.len().saturating_mul(255).saturating_add(16) {
        return None;
    }
    let raw = lz4_flex::block::decompress(body, n).ok()?;
    (raw.len() == n).then_some(raw)
}

/// [`seal`], and the checksum in it.
fn sealed(head: &str, key: &str, payload: &[u8]) -> (Vec<u8>, [u8; 16]) {
    sealed_as(SEAL, head, key, payload)
}

/// [`sealed`] with the first bytes `magic` ([`SEAL`] or [`SEAL_LZ4`]).
fn sealed_as(magic: &[u8; 4], head: &str, key: &str, payload: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let sum = digest_as(magic, head, key, payload);
    let mut out = Vec::with_capacity(payload.len() + head.len() + 24);
    out.extend_from_slice(magic);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&sum);
    out.extend_from_slice(payload);
    (out, sum)
}

/// A stored blob's seal when it checks: the head it was sealed under, its
/// digest and the length of its header.
struct Unsealed<'a> {
    head: &'a str,
    sum: [u8; 16],
    at: usize,
    /// Sealed by [`seal_blob`] compressed: the payload is [`unpack`]ed.
    packed: bool,
}

fn unseal<'a>(key: &str, stored: &'a [u8]) -> Option<Unsealed<'a>> {
    let mut r = R::new(stored);
    let magic = r.take(4)?;
    let packed = magic == SEAL_LZ4;
    (packed || magic == SEAL).then_some(())?;
    let n = r.u32()? as usize;
    let head = std::str::from_utf8(r.take(n)?).ok()?;
    let sum: [u8; 16] = r.take(16)?.try_into().ok()?;
    let at = r.pos;
    let sum_as = if packed { SEAL_LZ4 } else { SEAL };
    (sum == digest_as(sum_as, head, key, &stored[at..])).then_some(Unsealed { head, sum, at, packed })
}

/// A blob's payload, in the bytes read from the backend (not copied out of
/// them: a bucket can be megabytes).
pub struct Payload {
    stored: Vec<u8>,
    at: usize,
}

impl Payload {
    fn of(bytes: Vec<u8>) -> Payload {
        Payload { stored: bytes, at: 0 }
    }
    fn into_vec(mut self) -> Vec<u8> {
        self.stored.drain(..self.at);
        self.stored
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.stored[self.at..]
    }
}

/// A bucket's or shard's payload, when it is the blob `meta` names: absent,
/// failing its seal, or sealed with another checksum than the meta records
/// for `key` (another state's blob) is [`StoreError::Cache`].
pub fn get(backend: &mut dyn Backend, meta: &Meta, key: &str) -> Result<Payload, StoreError> {
    let stored = backend.cache_get(key)?.ok_or_else(|| damaged(key))?;
    named(meta, key, stored)
}

/// `stored`, the blob read for `key`, as its payload when it is the one
/// `meta` names (see [`get`]).
fn named(meta: &Meta, key: &str, stored: Vec<u8>) -> Result<Payload, StoreError> {
    let want = meta.blobs.get(key).ok_or_else(|| damaged(key))?;
    let u = unseal(key, &stored).ok_or_else(|| damaged(key))?;
    if u.sum != *want {
        return Err(damaged(key));
    }
    if u.packed {
        return unpack(&stored[u.at..]).map(Payload::of).ok_or_else(|| damaged(key));
    }
    let at = u.at;
    Ok(Payload { stored, at })
}

/// Every blob the meta names is there, checks its seal, and is the one the
/// meta records (its checksum): the derived state is tied together
/// without decoding a blob, a few blobs in memory at a time (read
/// [`CHECK_BATCH`] keys to a round trip: on PostgreSQL one query per key
/// was a tenth of `verify` at a million lines).
/// `Err(StoreError::Cache(key))`: the first blob that is not.
pub fn check_blobs(backend: &mut dyn Backend, meta: &Meta) -> Result<(), StoreError> {
    let keys: Vec<String> = meta.blobs.keys().cloned().collect();
    for chunk in keys.chunks(CHECK_BATCH) {
        need_many(backend, meta, chunk)?;
    }
    Ok(())
}

/// Blobs read to a round trip by [`check_blobs`].
const CHECK_BATCH: usize = 32;

/// Several blobs' payloads, read together ([`Backend::cache_get_many`]);
/// any absent or failing its seal is an error.
fn need_many(backend: &mut dyn Backend, meta: &Meta, keys: &[String]) -> Result<Vec<Payload>, StoreError> {
    let got = backend.cache_get_many(keys)?;
    keys.iter()
        .zip(got)
        .map(|(key, stored)| named(meta, key, stored.ok_or_else(|| damaged(key))?))
        .collect()
}

// --- encoding -------------------------------------------------------------

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn date(&mut self, d: Date) {
        self.u32(d.packed());
    }
}

struct R<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    fn new(b: &'a [u8]) -> R<'a> {
        R { b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
    fn u128(&mut self) -> Option<u128> {
        self.take(16)?.try_into().ok().map(u128::from_le_bytes)
    }
    fn i128(&mut self) -> Option<i128> {
        self.take(16)?.try_into().ok().map(i128::from_le_bytes)
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn date(&mut self) -> Option<Date> {
        let p = self.u32()?;
        Date::new((p / 10000) as i32, (p / 100 % 100) as u8, (p % 100) as u8)
    }
    fn done(&self) -> bool {
        self.pos == self.b.len()
    }
}

fn encode_meta(m: &Meta) -> Vec<u8> {
    let mut w = W::default();
    w.u32(FORMAT);
    w.u64(m.seq);
    w.str(&m.head);
    for list in [&m.versions, &m.rate_seqs, &m.close_seqs] {
        w.u32(list.len() as u32);
        for &s in list {
            w.u64(s);
        }
    }
    w.u32(m.files.len() as u32);
    for f in &m.files {
        w.str(f);
    }
    w.u64(m.lines);
    w.i128(m.total);
    w.u32(m.totals.len() as u32);
    for ((v, p, c, mi, site), t) in &m.totals {
        w.u32(*v as u32);
        w.u32(*p as u32);
        w.u32(*c as u32);
        w.u32(*mi as u32);
        w.str(site);
        w.i128(*t);
    }
    w.u32(m.open.len() as u32);
    for ((mi, d), n) in &m.open {
        w.u32(*mi as u32);
        w.date(*d);
        w.u64(*n);
    }
    w.u32(m.carries.len() as u32);
    for c in &m.carries {
        encode_carry(&mut w, c);
    }
    w.u32(m.open_totals.len() as u32);
    for ((v, p, c, mi, site, d), t) in &m.open_totals {
        w.u32(*v as u32);
        w.u32(*p as u32);
        w.u32(*c as u32);
        w.u32(*mi as u32);
        w.str(site);
        w.date(*d);
        w.i128(*t);
    }
    w.u32(m.payments.len() as u32);
    for (id, seq) in &m.payments {
        w.str(id);
        w.u64(*seq);
    }
    w.u32(m.blobs.len() as u32);
    for (key, sum) in &m.blobs {
        w.str(key);
        w.0.extend_from_slice(sum);
    }
    w.0
}

fn decode_meta(b: &[u8]) -> Option<Meta> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let mut m = Meta {
        seq: r.u64()?,
        head: r.str()?.to_string(),
        ..Meta::default()
    };
    for list in [&mut m.versions, &mut m.rate_seqs, &mut m.close_seqs] {
        for _ in 0..r.u32()? {
            list.push(r.u64()?);
        }
    }
    for _ in 0..r.u32()? {
        m.files.push(r.str()?.to_string());
    }
    m.lines = r.u64()?;
    m.total = r.i128()?;
    // the maps were written in key order: built from their entries in one
    // pass (`BTreeMap::from_iter` sorts a sorted list for free) rather than
    // by a search per key
    let n = r.u32()? as usize;
    let mut totals = Vec::with_capacity(n.min(r.b.len() / 36));
    for _ in 0..n {
        let v = u16::try_from(r.u32()?).ok()?;
        let p = u16::try_from(r.u32()?).ok()?;
        let c = u16::try_from(r.u32()?).ok()?;
        let mi = r.u32()? as i32;
        let site = r.str()?.to_string();
        totals.push(((v, p, c, mi, site), r.i128()?));
    }
    m.totals = BTreeMap::from_iter(totals);
    let n = r.u32()? as usize;
    let mut open = Vec::with_capacity(n.min(r.b.len() / 16));
    for _ in 0..n {
        let mi = r.u32()? as i32;
        let d = r.date()?;
        open.push(((mi, d), r.u64()?));
    }
    m.open = BTreeMap::from_iter(open);
    for _ in 0..r.u32()? {
        m.carries.push(decode_carry(&mut r)?);
    }
    let n = r.u32()? as usize;
    let mut open_totals = Vec::with_capacity(n.min(r.b.len() / 40));
    for _ in 0..n {
        let v = u16::try_from(r.u32()?).ok()?;
        let p = u16::try_from(r.u32()?).ok()?;
        let c = u16::try_from(r.u32()?).ok()?;
        let mi = r.u32()? as i32;
        let site = r.str()?.to_string();
        let d = r.date()?;
        open_totals.push(((v, p, c, mi, site, d), r.i128()?));
    }
    m.open_totals = BTreeMap::from_iter(open_totals);
    for _ in 0..r.u32()? {
        m.payments.push((r.str()?.to_string(), r.u64()?));
    }
    let n = r.u32()? as usize;
    let mut blobs = Vec::with_capacity(n.min(r.b.len() / 20));
    for _ in 0..n {
        let key = r.str()?.to_string();
        let sum: [u8; 16] = r.take(16)?.try_into().ok()?;
        blobs.push((key, sum));
    }
    m.blobs = BTreeMap::from_iter(blobs);
    (r.done() && !m.versions.is_empty() && m.carries.len() == m.versions.len()).then_some(m)
}

fn encode_period(w: &mut W, p: Period) {
    match p {
        Period::Months { first, len } => {
            w.u8(0);
            w.u32(first as u32);
            w.u8(len);
        }
        Period::Term => w.u8(1),
    }
}

fn decode_period(r: &mut R<'_>) -> Option<Period> {
    Some(match r.u8()? {
        0 => Period::Months {
            first: r.u32()? as i32,
            len: r.u8()?,
        },
        1 => Period::Term,
        _ => return None,
    })
}

fn encode_carry(w: &mut W, c: &alloc::Carry) {
    w.u32(c.entries().len() as u32);
    for e in c.entries() {
        w.u32(e.category as u32);
        w.u32(e.layer as u32);
        encode_period(w, e.period);
        w.i64(e.money);
        encode_q(w, Some(&e.units));
        w.u32(e.from.len() as u32);
        for f in &e.from {
            w.u32(f.version);
            w.i64(f.money);
            encode_q(w, Some(&f.units));
        }
    }
}

fn decode_carry(r: &mut R<'_>) -> Option<alloc::Carry> {
    let n = r.u32()? as usize;
    let mut entries = Vec::with_capacity(n.min(r.b.len()));
    for _ in 0..n {
        let category = r.u32()? as usize;
        let layer = r.u32()? as usize;
        let period = decode_period(r)?;
        let money = r.i64()?;
        let units = decode_q(r)??;
        let k = r.u32()? as usize;
        let mut from = Vec::with_capacity(k.min(r.b.len()));
        for _ in 0..k {
            from.push(alloc::CarrySource {
                version: r.u32()?,
                money: r.i64()?,
                units: decode_q(r)??,
            });
        }
        entries.push(alloc::Carried {
            category,
            layer,
            period,
            money,
            units,
            from,
        });
    }
    Some(alloc::Carry::new(entries))
}

fn encode_q(w: &mut W, q: Option<&Q>) {
    match q {
        None => w.u8(0),
        Some(Q::S(n, d)) => {
            w.u8(1);
            w.u128(*n);
            w.u128(*d);
        }
        Some(q) => {
            let b = q.to_big();
            w.u8(2);
            w.str(&b.numer().to_string());
            w.str(&b.denom().to_string());
        }
    }
}

fn decode_q(r: &mut R<'_>) -> Option<Option<Q>> {
    Some(match r.u8()? {
        0 => None,
        1 => Some(Q::S(r.u128()?, r.u128()?)),
        2 => {
            let n = num_bigint::BigInt::parse_bytes(r.str()?.as_bytes(), 10)?;
            let d = num_bigint::BigInt::parse_bytes(r.str()?.as_bytes(), 10)?;
            if d.sign() != num_bigint::Sign::Plus || n.sign() == num_bigint::Sign::Minus {
                return None;
            }
            Some(Q::from_big(&BigRational::new(n, d)))
        }
        _ => return None,
    })
}

/// A bucket: the active lines of one category and month, in (date, id)
/// order, as cost lines: the amount in the agreement currency (converted
/// when recorded) and as written, and every field a [`CostLine`] of a
/// replay holds (its `row` is its journal entry; a recorded line replaces
/// nothing, its `replaces` was resolved when it was recorded).
///
/// A line: first what the allocator reads (id, date, amount, quantity),
/// then the length of the rest and the rest (site, entry, amount as
/// written, currency, description, payer), which a reader skips in one
/// step and reads only for the lines it shows or whose totals move.
fn encode_bucket<'l>(lines: impl ExactSizeIterator<Item = LineView<'l>>) -> Vec<u8> {
    // a line of the examples' shape encodes to about 100 bytes
    let mut w = W(Vec::with_capacity(lines.len() * 112 + 8));
    w.u32(FORMAT);
    w.u32(lines.len() as u32);
    for l in lines {
        encode_line(&mut w, &l);
    }
    w.0
}

fn encode_line(w: &mut W, l: &LineView<'_>) {
    w.str(l.id);
    w.date(l.date);
    w.i64(l.amount);
    encode_q(w, l.quantity);
    let at = w.0.len();
    w.u32(0);
    w.str(l.site);
    w.u64(l.row);
    w.i64(l.source_amount);
    w.str(l.currency);
    w.str(l.description);
    w.u32(l.paid_by.map_or(0, |p| p as u32 + 1));
    let n = (w.0.len() - at - 4) as u32;
    w.0[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// A bucket's line as the allocator reads it, borrowed from the stored
/// bytes: the rest of its fields stay bytes ([`BLine::rest`]) until asked
/// for. Its quantity, when it has one, is `qty[q]` of the lines it was
/// read with (most categories count no units: no `Q` per line).
#[derive(Clone, Copy)]
struct BLine<'a> {
    id: &'a [u8],
    rest: &'a [u8],
    amount: i64,
    date: Date,
    q: u32,
}

/// No quantity.
const NO_Q: u32 = u32::MAX;

/// The fields of a bucket line the allocator does not read.
struct Rest<'a> {
    site: &'a str,
    seq: u64,
    source_amount: i64,
    currency: &'a str,
    description: &'a str,
    paid_by: u32,
}

impl<'a> BLine<'a> {
    fn id(&self) -> Option<&'a str> {
        std::str::from_utf8(self.id).ok()
    }
    fn rest(&self) -> Option<Rest<'a>> {
        let mut r = R::new(self.rest);
        let rest = Rest {
            site: r.str()?,
            seq: r.u64()?,
            source_amount: r.i64()?,
            currency: r.str()?,
            description: r.str()?,
            paid_by: r.u32()?,
        };
        r.done().then_some(rest)
    }
}

/// Lines read from buckets, with the quantities of those that have one.
#[derive(Default)]
struct BLines<'a> {
    lines: Vec<BLine<'a>>,
    qty: Vec<Q>,
}

impl<'a> BLines<'a> {
    fn with_capacity(n: usize) -> BLines<'a> {
        BLines {
            lines: Vec::with_capacity(n),
            qty: Vec::new(),
        }
    }
    fn quantity(&self, l: &BLine<'_>) -> Option<&Q> {
        self.qty.get(l.q as usize)
    }
    /// Read one line of a bucket and keep it when `keep` says so by its date.
    fn read(&mut self, r: &mut R<'a>, keep: impl Fn(Date) -> bool) -> Option<()> {
        let n = r.u32()? as usize;
        let id = r.take(n)?;
        let date = r.date()?;
        let amount = r.i64()?;
        let q = decode_q(r)?;
        let n = r.u32()? as usize;
        let rest = r.take(n)?;
        if keep(date) {
            let q = match q {
                None => NO_Q,
                Some(q) => {
                    self.qty.push(q);
                    u32::try_from(self.qty.len() - 1).ok()?
                }
            };
            self.lines.push(BLine {
                id,
                rest,
                amount,
                date,
                q,
            });
        }
        Some(())
    }
}

/// The lines a late line is tied to (all of one category, shown to the
/// allocator as category 0 of [`single_category`]).
struct Tied<'a>(BLines<'a>);

impl alloc::Lines for Tied<'_> {
    fn count(&self) -> usize {
        self.0.lines.len()
    }
    fn date(&self, i: usize) -> Date {
        self.0.lines[i].date
    }
    fn category(&self, _: usize) -> usize {
        0
    }
    fn amount(&self, i: usize) -> i64 {
        self.0.lines[i].amount
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.0.quantity(&self.0.lines[i])
    }
    fn id(&self, i: usize) -> &[u8] {
        self.0.lines[i].id
    }
}

/// Step over one bucket line: its date and id.
fn skip_line<'a>(r: &mut R<'a>) -> Option<(Date, &'a [u8])> {
    let n = r.u32()? as usize;
    let id = r.take(n)?;
    let date = r.date()?;
    r.take(8)?;
    decode_q(r)?;
    let n = r.u32()? as usize;
    r.take(n)?;
    Some((date, id))
}

/// Tied lines but line `.1` (the lines before a new one came in).
struct Without<'t, 'a>(&'t Tied<'a>, usize);

impl Without<'_, '_> {
    fn at(&self, i: usize) -> usize {
        if i < self.1 { i } else { i + 1 }
    }
}

impl alloc::Lines for Without<'_, '_> {
    fn count(&self) -> usize {
        self.0.count() - 1
    }
    fn date(&self, i: usize) -> Date {
        self.0.date(self.at(i))
    }
    fn category(&self, _: usize) -> usize {
        0
    }
    fn amount(&self, i: usize) -> i64 {
        self.0.amount(self.at(i))
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.0.quantity(self.at(i))
    }
    fn id(&self, i: usize) -> &[u8] {
        self.0.id(self.at(i))
    }
}

/// `a()` on a second thread while `b()` runs on this one (a late line's
/// two allocations, `explain`'s trace and its engine check): the machine's
/// second core halves the wait. Should the thread fail, `a()` runs here.
pub fn both<A: Send, B>(a: impl Fn() -> A + Sync, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let h = s.spawn(&a);
        let rb = b();
        let ra = h.join().unwrap_or_else(|_| a());
        (ra, rb)
    })
}

/// How many lines a bucket holds.
fn bucket_len(b: &[u8]) -> Option<usize> {
    let mut r = R::new(b);
    (r.u32()? == FORMAT).then_some(())?;
    Some(r.u32()? as usize)
}

/// A bucket line as the cost line a replay makes of its journal entry: the
/// rate it was converted at is looked up again by the one conversion rule
/// (`costs::convert`), which must give the stored amount.
fn cost_line(ag: &Agreement, rates: &Rates, category: usize, l: &BLine<'_>, quantity: Option<&Q>) -> Option<CostLine> {
    let rest = l.rest()?;
    let rate = if rest.currency == ag.currency.code() {
        None
    } else {
        let c = ag.currency(rest.currency)?;
        let (v, rate) = costshare_core::costs::convert(ag, rates, &c, rest.source_amount, l.date).ok()?;
        (v == l.amount).then_some(())?;
        rate.map(|(d, r)| (d, r.clone()))
    };
    let paid_by = match rest.paid_by {
        0 => None,
        p => Some(p as usize - 1).filter(|&p| p < ag.parties.len()),
    };
    (rest.paid_by == 0 || paid_by.is_some()).then_some(())?;
    Some(CostLine {
        id: l.id()?.to_string(),
        date: l.date,
        category,
        amount: l.amount,
        source_amount: rest.source_amount,
        currency: rest.currency.to_string(),
        rate,
        quantity: quantity.cloned(),
        site: rest.site.to_string(),
        description: rest.description.to_string(),
        row: usize::try_from(rest.seq).ok()?,
        replaces: None,
        paid_by,
    })
}

/// Push a bucket's lines dated within `lo..=hi` onto `out`.
fn decode_bucket_into<'a>(b: &'a [u8], lo: Date, hi: Date, out: &mut BLines<'a>) -> Option<()> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    for _ in 0..n {
        out.read(&mut r, |d| d >= lo && d <= hi)?;
    }
    r.done().then_some(())
}

/// The bucket with `line` inserted in (date, id) order: the stored bytes
/// spliced, no line decoded but those before it.
fn insert_into_bucket(b: &[u8], line: &CostLine) -> Option<Vec<u8>> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    let key = (line.date, line.id.as_bytes());
    let mut at = b.len();
    for _ in 0..n {
        let start = r.pos;
        if skip_line(&mut r)? > key {
            at = start;
            break;
        }
    }
    let one = encode_bucket(std::iter::once(view_of(line)));
    let mut out = Vec::with_capacity(b.len() + one.len());
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(n as u32 + 1).to_le_bytes());
    out.extend_from_slice(&b[8..at]);
    out.extend_from_slice(&one[8..]);
    out.extend_from_slice(&b[at..]);
    Some(out)
}

/// The bucket without its line `id` dated `date` (`None`: no such line, or
/// the bucket does not decode): the stored bytes spliced.
fn remove_from_bucket(b: &[u8], id: &str, date: Date) -> Option<Vec<u8>> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    for _ in 0..n {
        let start = r.pos;
        if skip_line(&mut r)? == (date, id.as_bytes()) {
            let end = r.pos;
            let mut out = Vec::with_capacity(b.len() - (end - start));
            out.extend_from_slice(&FORMAT.to_le_bytes());
            out.extend_from_slice(&(n as u32 - 1).to_le_bytes());
            out.extend_from_slice(&b[8..start]);
            out.extend_from_slice(&b[end..]);
            return Some(out);
        }
    }
    None
}

/// A shard: every recorded id of its hash, with the entry that recorded it
/// and the entry that voided it (0: active).
fn encode_shard<S: AsRef<str>>(ids: &[(S, u64, u64)]) -> Vec<u8> {
    // an id of about 10 bytes, its length and two seqs each
    let mut w = W(Vec::with_capacity(8 + ids.len() * 32));
    w.u32(FORMAT);
    w.u32(ids.len() as u32);
    for (id, seq, void) in ids {
        w.str(id.as_ref());
        w.u64(*seq);
        w.u64(*void);
    }
    w.0
}

/// The entry that recorded `id` and the one that voided it, from a shard's
/// bytes, without a string per id (`None`: the shard does not decode).
fn shard_find(b: &[u8], id: &str) -> Option<Option<(u64, u64)>> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    let mut found = None;
    for _ in 0..n {
        let k = r.u32()? as usize;
        let this = r.take(k)?;
        let (seq, void) = (r.u64()?, r.u64()?);
        if found.is_none() && this == id.as_bytes() {
            found = Some((seq, void));
        }
    }
    r.done().then_some(found)
}

/// Append a new id, recorded by entry `seq`, to a shard's bytes.
fn shard_push(b: &mut Vec<u8>, id: &str, seq: u64) -> Option<()> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()?.checked_add(1)?;
    b[4..8].copy_from_slice(&n.to_le_bytes());
    let mut w = W(std::mem::take(b));
    w.str(id);
    w.u64(seq);
    w.u64(0);
    *b = w.0;
    Some(())
}

/// Mark the active id `id` of a shard's bytes voided by entry `void`
/// (`None`: not there, already voided, or the shard does not decode).
fn shard_void(b: &mut [u8], id: &str, void: u64) -> Option<()> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    for _ in 0..n {
        let k = r.u32()? as usize;
        let this = r.take(k)?;
        let at = r.pos + 8;
        let (_, was) = (r.u64()?, r.u64()?);
        if this == id.as_bytes() {
            (was == 0).then_some(())?;
            b[at..at + 8].copy_from_slice(&void.to_le_bytes());
            return Some(());
        }
    }
    None
}

fn shard_of(id: &str) -> u64 {
    let mut h = Fx::default();
    h.write(id.as_bytes());
    h.finish() % SHARDS
}

/// The bucket of a version, a category (its index in that version) and a
/// month (its month index).
fn bucket_key(version: usize, category: usize, month: i32) -> String {
    format!("b/{version}/{category}/{month}")
}

fn shard_key(shard: u64) -> String {
    format!("i/{shard}")
}

// --- building -------------------------------------------------------------

/// The derived state is kept for every ledger (a ledger without an
/// agreement is refused before it is read).
pub fn applicable(st: &State) -> bool {
    !st.versions.is_empty()
}

/// Every blob of the derived state of `st`, rebuilt from scratch.
pub fn build(st: &State) -> Result<Vec<Blob>, StoreError> {
    let lines = state::lines_with(st, Vec::new(), &[])?;
    Ok(build_lines::<[CostLine], _>(st, &lines, st.entries + 1)
        .into_blobs()
        .collect())
}

/// [`build`] of the state after `st` and new lines (entries after `st`'s
/// last, with no void among them) that are not applied to `st`, from
/// `per_version` ([`state::lines_with`]: `st`'s active lines and the new
/// ones, whose `row`, their entry, is `first_new` or later), borrowed: a
/// bulk `record` writes the same lines to the journal meanwhile, and holds
/// them once.
/// The buckets are encoded only as they are written ([`Built`]).
pub fn build_lines<'a, L, V>(st: &'a State, per_version: &'a [V], first_new: u64) -> Built<'a, L>
where
    L: LineSource + ?Sized + 'a,
    V: std::borrow::Borrow<L>,
{
    let slices: Vec<&L> = per_version.iter().map(Borrow::borrow).collect();
    let new_ids = slices.iter().flat_map(|p| {
        (0..p.count())
            .filter(move |&i| p.row_of(i) >= first_new)
            .map(move |i| (p.id_of(i), p.row_of(i)))
    });
    // amounts do not depend on the as-of date; `open_until` does not either
    let allocated = state::allocate_slices(&st.versions, &slices, st.versions[0].agreement.start);
    let parts: Vec<Part<'_, L>> = slices
        .iter()
        .zip(&allocated)
        .enumerate()
        .map(|(version, (lines, (alloc, carry)))| (version, *lines, alloc, carry))
        .collect();
    let (buckets, shards, meta) = build_views(st, &parts, new_ids);
    Built {
        buckets,
        lines: slices,
        shards,
        blobs: vec![meta],
    }
}

/// A version's lines, allocation and carried use, borrowed.
type Part<'a, L> = (usize, &'a L, &'a alloc::Allocation, &'a alloc::Carry);

/// One agreement version's lines and their allocation, borrowed.
pub struct PartView<'a> {
    /// Index into `State::versions`.
    pub version: usize,
    pub lines: &'a [CostLine],
    pub alloc: &'a alloc::Allocation,
    pub carry: &'a alloc::Carry,
}

/// [`build`] from an allocation of `st`'s active lines already made: one
/// part per agreement version, in order (`state::allocate`).
pub fn build_with(st: &State, parts: &[PartView<'_>]) -> Vec<Blob> {
    let views: Vec<Part<'_, [CostLine]>> = parts.iter().map(|p| (p.version, p.lines, p.alloc, p.carry)).collect();
    let (buckets, shards, meta) = build_views(st, &views, std::iter::empty());
    Built {
        buckets,
        lines: parts.iter().map(|p| p.lines).collect(),
        shards,
        blobs: vec![meta],
    }
    .into_blobs()
    .collect()
}

/// A derived state built, its buckets and id shards not yet encoded: a
/// bucket is the indices of its lines, in (date, id) order, into the lines
/// it borrows, a shard its ids, borrowed; each is encoded when
/// [`Built::into_blobs`] reaches it, so a bulk load does not hold every
/// blob's bytes at once (the writer puts and drops one at a time).
pub struct Built<'a, L: ?Sized = [CostLine]> {
    /// key, part (into `lines`), the indices of the bucket's lines
    buckets: Vec<(String, usize, Vec<u32>)>,
    /// each part's lines
    lines: Vec<&'a L>,
    /// each id shard's (id, entry, void entry or 0)
    shards: Vec<Vec<(&'a str, u64, u64)>>,
    /// the meta (or every blob, already encoded)
    blobs: Vec<Blob>,
}

impl<'a, L: LineSource + ?Sized> Built<'a, L> {
    /// Blobs already encoded (nothing deferred).
    pub fn of(blobs: Vec<Blob>) -> Built<'a, L> {
        Built {
            buckets: Vec::new(),
            lines: Vec::new(),
            shards: Vec::new(),
            blobs,
        }
    }

    /// Every blob: the buckets (each encoded as it is reached), the id
    /// shards, the meta.
    pub fn into_blobs(self) -> impl Iterator<Item = Blob> + 'a {
        let lines = self.lines;
        self.buckets
            .into_iter()
            .map(move |(k, p, b)| {
                // a bucket's lines lie anywhere in the input: each line's
                // columns are asked for 16 lines ahead and its text 8 ahead
                // (the text's place is in the columns), so the encoding
                // does not wait on two cache misses a line (`Packed::view`
                // at a million lines, `perf annotate`)
                let l = lines[p];
                let ahead = |n: usize| b.get(n).map(|&i| i as usize);
                let views = (0..b.len()).map(|n| {
                    if let Some(j) = ahead(n + 16) {
                        l.prefetch_columns(j);
                    }
                    if let Some(j) = ahead(n + 8) {
                        l.prefetch_text(j);
                    }
                    l.view(b[n] as usize)
                });
                (k, encode_bucket(views))
            })
            .chain(
                self.shards
                    .into_iter()
                    .enumerate()
                    .map(|(s, ids)| (shard_key(s as u64), encode_shard(&ids))),
            )
            .chain(self.blobs)
    }
}

/// [`build_with`], the ids of lines not applied to `st` (entries after its
/// last, not voided) in the id shards too.
/// The buckets are left to encode: (key, part, indices of its lines).
#[allow(clippy::type_complexity)]
fn build_views<'s, L: LineSource + ?Sized>(
    st: &'s State,
    parts: &[Part<'_, L>],
    new_ids: impl Iterator<Item = (&'s str, u64)>,
) -> (Vec<(String, usize, Vec<u32>)>, Vec<Vec<(&'s str, u64, u64)>>, Blob) {
    let mut files: Vec<String> = st.batches.iter().map(|b| b.sha256.clone()).collect();
    files.sort_unstable();
    files.dedup();
    let mut meta = Meta {
        seq: st.entries,
        head: st.head.clone(),
        versions: st.versions.iter().map(|v| v.seq).collect(),
        rate_seqs: st.log.iter().filter(|e| e.kind == "rate").map(|e| e.seq).collect(),
        close_seqs: st.statements.iter().map(|s| s.seq).collect(),
        files,
        carries: vec![alloc::Carry::NONE; st.versions.len()],
        payments: st.payments.iter().map(|(seq, p)| (p.id.clone(), *seq)).collect(),
        ..Meta::default()
    };
    let mut deferred = Vec::new();
    // totals by (version, party, category, month, site number): no string per line
    let mut site_no: HashMap<&str, u32, state::BuildFx> = HashMap::default();
    let mut sites: Vec<&str> = Vec::new();
    let mut totals: HashMap<(u16, u16, u16, i32, u32), i128, state::BuildFx> = HashMap::default();
    let mut open_totals: HashMap<(u16, u16, u16, i32, u32, Date), i128, state::BuildFx> = HashMap::default();
    for (n, &(v, lines, alloc, carry)) in parts.iter().enumerate() {
        let ag = &st.versions[v].agreement;
        if let Some(c) = meta.carries.get_mut(v) {
            *c = carry.clone();
        }
        // every month of the term has a bucket per category, empty or not, so a
        // rebuild overwrites every bucket an earlier state wrote
        let m0 = ag.start.month_index();
        let months = (ag.end.month_index() - m0 + 1) as usize;
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); ag.categories.len() * months];
        // The sums below do not depend on the order lines are taken in, so
        // they are taken in input order: `alloc.order` (date, id) jumps about
        // the lines' columns and the allocation's rows, a cache miss or more
        // for each of a line's five reads (at a million lines, 0.3 s of the
        // bulk record's building thread, `perf annotate`). `order` is every
        // line once (`alloc::line_order`), which is checked (a bit per line,
        // about a millisecond at a million): if it were not, it is walked as is.
        let sequential = is_permutation(&alloc.order, lines.count());
        let walk: Box<dyn Iterator<Item = u32>> = match sequential {
            true => Box::new(0..lines.count() as u32),
            false => Box::new(alloc.order.iter().copied()),
        };
        // each line's bucket (`NO_BUCKET`: outside the term), for the pass in
        // (date, id) order that fills the buckets
        let mut bucket_of: Vec<u32> = vec![NO_BUCKET; lines.count()];
        for i in walk {
            let (l_site, l_category) = (lines.site_of(i as usize), lines.category(i as usize));
            let next = sites.len() as u32;
            let site = *site_no.entry(l_site).or_insert_with(|| {
                sites.push(l_site);
                next
            });
            let mi = lines.date(i as usize).month_index();
            for (p, &a) in alloc.row(i as usize).iter().enumerate() {
                if a != 0 {
                    *totals
                        .entry((v as u16, p as u16, l_category as u16, mi, site))
                        .or_insert(0) += a as i128;
                }
            }
            if let Some(d) = alloc.open_until[i as usize] {
                *meta.open.entry((mi, d)).or_insert(0) += 1;
                for (p, &a) in alloc.row(i as usize).iter().enumerate() {
                    if a != 0 {
                        *open_totals
                            .entry((v as u16, p as u16, l_category as u16, mi, site, d))
                            .or_insert(0) += a as i128;
                    }
                }
            }
            meta.lines += 1;
            meta.total += lines.amount(i as usize) as i128;
            let in_term = usize::try_from(mi - m0).ok().filter(|&k| k < months);
            if let (Some(k), Some(slot)) = (in_term, bucket_of.get_mut(i as usize)) {
                *slot = (l_category * months + k) as u32;
            }
        }
        // a bucket's lines in (date, id) order
        for &i in &alloc.order {
            if let Some(b) = bucket_of.get(i as usize).and_then(|&b| buckets.get_mut(b as usize)) {
                b.push(i);
            }
        }
        for (k, b) in buckets.into_iter().enumerate() {
            // amounts in the agreement currency: conversion happened when recorded
            deferred.push((bucket_key(v, k / months, m0 + (k % months) as i32), n, b));
        }
    }
    meta.totals = totals
        .into_iter()
        .filter(|(_, t)| *t != 0)
        .map(|((v, p, c, mi, site), t)| ((v, p, c, mi, sites[site as usize].to_string()), t))
        .collect();
    meta.open_totals = open_totals
        .into_iter()
        .filter(|(_, t)| *t != 0)
        .map(|((v, p, c, mi, site, d), t)| ((v, p, c, mi, sites[site as usize].to_string(), d), t))
        .collect();
    let mut shards: Vec<Vec<(&str, u64, u64)>> = vec![Vec::new(); SHARDS as usize];
    for l in &st.lines {
        let void = l.voided.as_ref().map_or(0, |(s, _)| *s);
        shards[shard_of(&l.body.id) as usize].push((l.body.id.as_str(), l.seq, void));
    }
    for (id, seq) in new_ids {
        shards[shard_of(id) as usize].push((id, seq, 0));
    }
    (deferred, shards, ("meta".to_string(), encode_meta(&meta)))
}

/// `order` holds every index below `n` once.
fn is_permutation(order: &[u32], n: usize) -> bool {
    if order.len() != n {
        return false;
    }
    let mut seen = vec![0u64; n.div_ceil(64)];
    order.iter().all(|&i| {
        if i as usize >= n {
            return false;
        }
        let (w, b) = (i as usize / 64, 1u64 << (i % 64));
        match seen.get_mut(w) {
            Some(x) if *x & b == 0 => {
                *x |= b;
                true
            }
            _ => false,
        }
    })
}

/// A line outside every bucket (dated outside the term), in `build_views`.
const NO_BUCKET: u32 = u32::MAX;

/// Moves of one category's totals (of version 0: late lines are taken in
/// only while there is one version), summed per (party, month, site, date
/// provisional until) before the meta's maps are touched: a pro-rata month
/// moves thousands of lines, into a few dozen totals.
#[derive(Default)]
struct Moves<'s>(HashMap<(i32, &'s str, Option<Date>), Vec<i128>, state::BuildFx>);

impl<'s> Moves<'s> {
    /// Add (`sign` = 1) or remove (−1) one line's parts, provisional until
    /// `open`.
    fn add(&mut self, date: Date, site: &'s str, row: &[i64], open: Option<Date>, sign: i128) {
        self.change(date, site, open, row.iter().map(|&v| sign * v as i128));
    }

    /// Move one line's parts from `r0` to `r1`, provisional until `open`
    /// both times (one look-up instead of two).
    fn change(&mut self, date: Date, site: &'s str, open: Option<Date>, by: impl ExactSizeIterator<Item = i128>) {
        let mi = date.month_index();
        let t = self.0.entry((mi, site, open)).or_insert_with(|| vec![0; by.len()]);
        for (x, v) in t.iter_mut().zip(by) {
            *x += v;
        }
    }

    /// Into the totals, and the open totals for lines provisional until a
    /// date; a total that comes to zero is dropped.
    fn apply(self, meta: &mut Meta, category: usize) {
        let moves = self.0.into_iter().flat_map(|((mi, site, open), row)| {
            row.into_iter()
                .enumerate()
                .map(move |(p, t)| ((p as u16, mi, site, open), t))
        });
        for ((p, mi, site, open), t) in moves {
            if t == 0 {
                continue;
            }
            let key = (0, p, category as u16, mi, site.to_string());
            let e = meta.totals.entry(key.clone()).or_insert(0);
            *e += t;
            if *e == 0 {
                meta.totals.remove(&key);
            }
            if let Some(d) = open {
                let key = (0, p, category as u16, mi, site.to_string(), d);
                let e = meta.open_totals.entry(key.clone()).or_insert(0);
                *e += t;
                if *e == 0 {
                    meta.open_totals.remove(&key);
                }
            }
        }
    }
}

/// Write every blob sealed under `head`, the journal head it reflects
/// (inside the caller's write transaction). The meta is among them, always
/// (a blob written without it would not be the one the meta names): it is
/// written last, naming `head` and the seal digest of every blob written
/// here beside those it already names. Every write of the derived state
/// goes through here.
pub fn put_all(backend: &mut dyn Backend, head: &str, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
    put_each(backend, head, blobs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

/// [`put_all`] of blobs given one at a time (a bulk load's buckets are
/// encoded as they are written: [`Built::into_blobs`]); each is dropped once
/// it is put.
pub fn put_each<K: AsRef<str>, V: AsRef<[u8]>>(
    backend: &mut dyn Backend,
    head: &str,
    blobs: impl IntoIterator<Item = (K, V)>,
) -> Result<(), StoreError> {
    let mut sink = Sink::default();
    for (k, v) in blobs {
        sink.take(backend, ready(k.as_ref(), v.as_ref())?)?;
    }
    match sink.finish(backend, head)? {
        true => Ok(()),
        false => Err(damaged("meta")),
    }
}

/// A built blob as a write takes it: the meta decoded (it is sealed last,
/// under the head, with the checksum of every other blob), any other blob
/// sealed ([`seal_blob`]). The one split of [`put_each`] and of a bulk
/// load's [`send_sealed`].
fn ready(k: &str, v: &[u8]) -> Result<Ready, StoreError> {
    if k == "meta" {
        return Ok(Ready::Meta(Box::new(decode_meta(v).ok_or_else(|| damaged("meta"))?)));
    }
    let (stored, sum) = seal_blob(k, v);
    Ok(Ready::Blob(k.to_string(), stored, sum))
}

/// Where [`Ready`] blobs go: sealed blobs put in batches ([`Puts`]), the
/// meta kept to be written last ([`Sink::finish`]).
#[derive(Default)]
struct Sink {
    puts: Puts,
    meta: Option<Box<Meta>>,
}

impl Sink {
    fn take(&mut self, backend: &mut dyn Backend, r: Ready) -> Result<(), StoreError> {
        match r {
            Ready::Blob(k, stored, sum) => self.puts.add_sealed(backend, k, stored, sum),
            Ready::Meta(m) => {
                self.meta = Some(m);
                Ok(())
            }
        }
    }

    /// The rest of the blobs, and the meta naming `head` and every blob
    /// put. `Ok(false)`: no meta came, and nothing more was written.
    fn finish(self, backend: &mut dyn Backend, head: &str) -> Result<bool, StoreError> {
        match self.meta {
            Some(meta) => {
                self.puts.finish(backend, head, *meta)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Blobs sealed and on their way to the backend, a batch of up to
/// [`PUT_BATCH`] bytes to a [`Backend::cache_put_many`] (on PostgreSQL one
/// statement, where one per blob was a round trip each), with the seal
/// digest of every blob put for the meta.
#[derive(Default)]
struct Puts {
    batch: Vec<(String, Vec<u8>)>,
    bytes: usize,
    sums: Vec<(String, [u8; 16])>,
}

/// The bytes of blobs [`Puts`] holds before writing them: a late line's
/// (under a megabyte) in one statement; a bulk load's 42 MB in about 20,
/// each held twice at most (here and as the statement's parameters): with
/// 8 MB a million-line `record` on PostgreSQL peaked at 302 MB, with 2 MB at
/// 282 MB.
const PUT_BATCH: usize = 2 << 20;

impl Puts {
    /// Put a blob sealed by [`seal_blob`] (with the batch, when full).
    fn add_sealed(
        &mut self,
        backend: &mut dyn Backend,
        k: String,
        stored: Vec<u8>,
        sum: [u8; 16],
    ) -> Result<(), StoreError> {
        self.bytes += stored.len();
        self.sums.push((k.clone(), sum));
        self.batch.push((k, stored));
        if self.bytes >= PUT_BATCH {
            self.flush(backend)?;
        }
        Ok(())
    }

    fn flush(&mut self, backend: &mut dyn Backend) -> Result<(), StoreError> {
        let blobs: Vec<(&str, &[u8])> = self.batch.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        backend.cache_put_many(&blobs)?;
        self.batch.clear();
        self.bytes = 0;
        Ok(())
    }

    /// The meta, naming `head` and the blobs put beside those it names,
    /// written last (with the last batch).
    fn finish(mut self, backend: &mut dyn Backend, head: &str, mut meta: Meta) -> Result<(), StoreError> {
        meta.head = head.to_string();
        for (k, sum) in std::mem::take(&mut self.sums) {
            meta.blobs.insert(k, sum);
        }
        self.batch
            .push(("meta".to_string(), seal(head, "meta", &encode_meta(&meta))));
        self.flush(backend)
    }
}

/// [`put_all`] of `blobs` (the meta not among them) and of `meta` as it is
/// in memory: what a write that already holds the decoded meta calls (a
/// late line, `close`), so the meta is not encoded, decoded and encoded
/// again on the way.
pub fn put_with_meta(backend: &mut dyn Backend, head: &str, blobs: &[Blob], meta: Meta) -> Result<(), StoreError> {
    if blobs.iter().any(|(k, _)| k == "meta") {
        return Err(damaged("meta"));
    }
    let mut sink = Sink {
        puts: Puts::default(),
        meta: Some(Box::new(meta)),
    };
    for (k, v) in blobs {
        sink.take(backend, ready(k, v)?)?;
    }
    sink.finish(backend, head).map(|_| ())
}

/// A built blob ready to be written ([`ready`]): sealed off the writing
/// thread on its way to the writer's [`Feed`] ([`send_sealed`]), or on the
/// writer's own ([`put_each`]).
pub enum Ready {
    /// A bucket or shard: key, stored bytes, checksum ([`seal_blob`]).
    Blob(String, Vec<u8>, [u8; 16]),
    /// The meta, sealed by the writer once it knows the head.
    Meta(Box<Meta>),
}

/// Blobs in flight to a bulk write at most (a bucket at a million lines is
/// a few hundred KB): the writer takes them between chunks of the journal.
const FEED_AHEAD: usize = 16;

/// The writing side of a derived state built and sealed on another thread
/// while the journal is written: the writer takes the blobs ready between
/// chunks of entries ([`Feed::take_ready`]), so they neither wait in memory
/// nor are encoded on its thread, then the rest and the meta under the head
/// ([`Feed::finish`]).
pub struct Feed {
    rx: std::sync::mpsc::Receiver<Ready>,
    sink: Sink,
}

impl Feed {
    /// A feed and the sender for [`send_sealed`].
    pub fn channel() -> (std::sync::mpsc::SyncSender<Ready>, Feed) {
        let (tx, rx) = std::sync::mpsc::sync_channel(FEED_AHEAD);
        let feed = Feed {
            rx,
            sink: Sink::default(),
        };
        (tx, feed)
    }

    /// Put every blob that is ready, without waiting.
    pub fn take_ready(&mut self, backend: &mut dyn Backend) -> Result<(), StoreError> {
        while let Ok(r) = self.rx.try_recv() {
            self.sink.take(backend, r)?;
        }
        Ok(())
    }

    /// Wait for the rest (until the sender is dropped) and write the meta,
    /// naming `head` and every blob put. `Ok(false)`: no meta came (the
    /// derived state does not apply, or its building failed: the builder's
    /// result says which), and nothing more was written.
    pub fn finish(mut self, backend: &mut dyn Backend, head: &str) -> Result<bool, StoreError> {
        while let Ok(r) = self.rx.recv() {
            self.sink.take(backend, r)?;
        }
        self.sink.finish(backend, head)
    }
}

/// Seal each of `blobs` ([`ready`]) and send it to the writer's [`Feed`].
/// Stops, without an error, when the writer has gone: its own error is the
/// one to tell.
pub fn send_sealed(
    blobs: impl Iterator<Item = Blob>,
    tx: &std::sync::mpsc::SyncSender<Ready>,
) -> Result<(), StoreError> {
    for (k, v) in blobs {
        let r = ready(&k, &v)?;
        drop(v);
        if tx.send(r).is_err() {
            break;
        }
    }
    Ok(())
}

/// The derived state's meta as stored (`None`: absent, or written in an
/// earlier layout, which is rebuilt like a stale one). A meta that fails
/// its seal, does not decode, or names another head than it was sealed
/// under is [`StoreError::Cache`].
pub fn meta(backend: &mut dyn Backend) -> Result<Option<Meta>, StoreError> {
    // read once: the meta is the largest blob a late line reads whole
    meta_of(backend.cache_get("meta")?)
}

/// [`meta`] of the blob read for it.
fn meta_of(stored: Option<Vec<u8>>) -> Result<Option<Meta>, StoreError> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    if OLD_SEALS.iter().any(|old| stored.starts_with(*old)) {
        return Ok(None);
    }
    let u = unseal("meta", &stored).ok_or_else(|| damaged("meta"))?;
    match decode_meta(&stored[u.at..]) {
        // the meta is never sealed compressed
        Some(m) if m.head == u.head && !u.packed => Ok(Some(m)),
        _ => Err(damaged("meta")),
    }
}

/// The first blob of the stored derived state (its meta fresh: `meta`) that
/// differs from `blobs`, a rebuild from the journal: a blob the meta does
/// not name or names with another seal, a payload unlike the rebuild's, a
/// meta naming other blobs than the rebuild has or other figures. `None`:
/// the stored state is the rebuild, blob for blob.
pub fn differs(backend: &mut dyn Backend, meta: &Meta, blobs: &[Blob]) -> Result<Option<String>, StoreError> {
    let mut named = 0;
    for (k, v) in blobs {
        if k == "meta" {
            let same = decode_meta(v).is_some_and(|built| {
                let mut stored = meta.clone();
                stored.blobs.clear();
                stored == built
            });
            if !same {
                return Ok(Some(k.clone()));
            }
            continue;
        }
        named += 1;
        match get(backend, meta, k) {
            Ok(p) if *p == **v => {}
            Ok(_) | Err(StoreError::Cache(_)) => return Ok(Some(k.clone())),
            Err(e) => return Err(e),
        }
    }
    Ok((named != meta.blobs.len()).then(|| "meta".to_string()))
}

/// The derived state's meta, when it reflects the journal's head now: the
/// last entry is the one the meta names, and its bytes still hash to its
/// stored hash. That last check is what a command that does not replay can
/// afford of the chain (one entry): an edit of the last entry's bytes behind
/// the program's back makes the caller replay, and the replay, which checks
/// every link, names it. An edit further back is found by `verify`.
///
/// A journal that ends before the meta's entry, or whose entry there is
/// not the one the meta names, lost entries or had its last one replaced
/// ([`cut_off`]): that is [`StoreError::Damaged`], not a stale state to
/// rebuild, since a rebuild would take the shorter journal as the truth.
pub fn fresh_meta(backend: &mut dyn Backend) -> Result<Option<Meta>, StoreError> {
    // the meta and the head read together (one round trip on PostgreSQL),
    // judged in that order
    let (stored, head) = backend.cache_get_and_head("meta")?;
    let Some(meta) = meta_of(stored)? else {
        return Ok(None);
    };
    let head = head?;
    if let Some((_, what)) = cut_off(&meta, head.as_ref().map(|s| (s.seq, s.hash.as_str()))) {
        return Err(StoreError::Damaged {
            location: backend.location(),
            what,
        });
    }
    match head {
        Some(s)
            if s.seq == meta.seq
                && s.hash == meta.head
                && journal::is_hex_of(&s.hash, &journal::chain_digest(&s.prev_hash, &s.body)) =>
        {
            Ok(Some(meta))
        }
        _ => Ok(None),
    }
}

/// Whether the journal, ending at `head` (seq and hash; `None`: empty),
/// lost entries from its end or had its last one replaced since `meta` was
/// written under it (a derived state is written in the same transaction as
/// the entries it reflects, and entries are never removed): the first entry
/// that is missing or not the one the meta names, and what happened. A
/// journal that has grown past the meta is not cut off (the state is stale).
pub fn cut_off(meta: &Meta, head: Option<(u64, &str)>) -> Option<(u64, String)> {
    let (seq, hash) = head.unwrap_or((0, ""));
    if seq < meta.seq {
        Some((
            seq + 1,
            format!(
                "its journal ends at entry {seq}, but its derived state was written when it ended at entry {} (hash {}): entries were removed from its end",
                meta.seq, meta.head
            ),
        ))
    } else if seq == meta.seq && hash != meta.head {
        Some((
            seq,
            format!(
                "its journal's last entry {seq} has hash {hash}, but its derived state was written when that entry's hash was {}: the entry was replaced",
                meta.head
            ),
        ))
    } else {
        None
    }
}

/// One journal entry, decoded (a missing one is a damaged meta: the meta
/// named it).
fn entry(backend: &mut dyn Backend, seq: u64) -> Result<journal::Entry, StoreError> {
    named_entry(backend, seq, "meta")
}

/// The journal entry `seq`, decoded, that the blob `key` names (a missing
/// one is that blob damaged).
///
/// What a read that does not replay can check of the chain around an
/// entry it shows is checked: the entry's link rule ([`ledger::check_link`]:
/// its bytes hash to its stored hash, decode and say `seq`), and the next
/// entry's link to it (its previous hash is this hash, its own bytes hash
/// to its hash). An edit of the entry behind the program's back is
/// therefore named ([`StoreError::Corrupt`]), not shown: an entry's bytes
/// and hash both rewritten break the next entry's link, and so on up to the
/// head, which [`fresh_meta`] ties to the meta.
///
/// [`ledger::check_link`]: crate::ledger::check_link
pub fn named_entry(backend: &mut dyn Backend, seq: u64, key: &str) -> Result<journal::Entry, StoreError> {
    let rows = backend.entry_linked(seq)?;
    let Some(s) = rows.first().filter(|s| s.seq == seq) else {
        return Err(damaged(key));
    };
    let outside = |seq: u64, m: String| StoreError::Corrupt {
        seq,
        message: format!("{m}: the journal was changed outside costshare (`costshare verify` checks it all)"),
    };
    let mut chain = crate::ledger::Chain {
        entries: seq - 1,
        head: s.prev_hash.clone(),
        at: None,
    };
    let e = crate::ledger::check_link(&chain, s.as_ref()).map_err(|m| outside(seq, m))?;
    if let Some(next) = rows.get(1) {
        chain.entries = seq;
        s.hash.clone_into(&mut chain.head);
        crate::ledger::check_chain_link(&chain, next.as_ref()).map_err(|m| outside(next.seq, m))?;
    }
    Ok(e)
}

/// The agreement versions the derived state was built under, read from
/// their journal entries, as a replay has them.
pub fn versions(backend: &mut dyn Backend, meta: &Meta) -> Result<Vec<state::Version>, StoreError> {
    let mut out = Vec::with_capacity(meta.versions.len());
    for &seq in &meta.versions {
        let Body::Agreement {
            version,
            effective,
            file,
            sha256,
            content,
        } = entry(backend, seq)?.body
        else {
            return Err(damaged("meta"));
        };
        let agreement = costshare_core::load(&content)
            .agreement
            .ok_or_else(|| StoreError::Corrupt {
                seq,
                message: "the stored agreement does not load".into(),
            })?;
        let effective = Date::parse(&effective).ok_or_else(|| StoreError::Corrupt {
            seq,
            message: "bad effective date".into(),
        })?;
        out.push(state::Version {
            seq,
            version,
            effective,
            file,
            sha256,
            content,
            agreement,
        });
    }
    Ok(out)
}

/// The latest agreement the derived state was built under, and its SHA-256.
pub fn agreement(backend: &mut dyn Backend, meta: &Meta) -> Result<(Agreement, String), StoreError> {
    let seq = meta.latest_version();
    match entry(backend, seq)?.body {
        Body::Agreement { content, sha256, .. } => {
            let ag = costshare_core::load(&content)
                .agreement
                .ok_or_else(|| StoreError::Corrupt {
                    seq,
                    message: "the stored agreement does not load".into(),
                })?;
            Ok((ag, sha256))
        }
        _ => Err(damaged("meta")),
    }
}

/// The rates recorded so far.
pub fn rates(backend: &mut dyn Backend, meta: &Meta) -> Result<Rates, StoreError> {
    let mut rows = Vec::new();
    for &seq in &meta.rate_seqs {
        if let Body::Rate { date, currency, rate } = entry(backend, seq)?.body {
            let d = Date::parse(&date).ok_or_else(|| damaged("meta"))?;
            let r = costshare_core::num::parse_rational(&rate, 18).map_err(|_| damaged("meta"))?;
            rows.push((currency, d, r));
        } else {
            return Err(damaged("meta"));
        }
    }
    Rates::from_rows(rows).map_err(|_| damaged("meta"))
}

/// Every payment, from its entry, in journal order (as `State::payments`).
pub fn payments(backend: &mut dyn Backend, meta: &Meta) -> Result<Vec<(u64, journal::PaymentBody)>, StoreError> {
    let mut out = Vec::with_capacity(meta.payments.len());
    for (id, seq) in &meta.payments {
        match entry(backend, *seq)?.body {
            Body::Payment(p) if p.id == *id => out.push((*seq, p)),
            _ => return Err(damaged("meta")),
        }
    }
    Ok(out)
}

/// The closed statements, from their entries.
pub fn statements(backend: &mut dyn Backend, meta: &Meta) -> Result<Vec<state::Statement>, StoreError> {
    let mut out = Vec::with_capacity(meta.close_seqs.len());
    for &seq in &meta.close_seqs {
        let e = entry(backend, seq)?;
        let Body::Close {
            period,
            as_of,
            head,
            forced,
            rows,
        } = e.body
        else {
            return Err(damaged("meta"));
        };
        let fy = costshare_core::calendar::FiscalYear::parse(&period)
            .ok_or_else(|| StoreError::Corrupt {
                seq,
                message: format!("its period `{period}` is not a fiscal year"),
            })?
            .0;
        out.push(state::Statement {
            seq,
            at: e.at,
            period,
            fy,
            as_of,
            head,
            forced,
            rows,
        });
    }
    Ok(out)
}

/// Every active line, per agreement version, in journal order: the cost
/// lines a replay makes (`state::allocate`'s input), read from the buckets.
pub fn lines(
    backend: &mut dyn Backend,
    meta: &Meta,
    versions: &[state::Version],
    rates: &Rates,
) -> Result<Vec<Vec<CostLine>>, StoreError> {
    let mut out = Vec::with_capacity(versions.len());
    for (v, ver) in versions.iter().enumerate() {
        let ag = &ver.agreement;
        let mut lines: Vec<CostLine> = Vec::new();
        for c in 0..ag.categories.len() {
            for m in ag.start.month_index()..=ag.end.month_index() {
                read_bucket(backend, meta, ag, rates, (v, c, m), (ag.start, ag.end), &mut lines)?;
            }
        }
        lines.sort_unstable_by_key(|l| l.row);
        out.push(lines);
    }
    let n: usize = out.iter().map(Vec::len).sum();
    if n as u64 != meta.lines {
        return Err(damaged("meta"));
    }
    Ok(out)
}

/// The stored buckets of one version's category for the months of a date
/// range: what `explain` reads of the lines tied to a line's date (see
/// [`TiedBlobs::view`]).
pub struct TiedBlobs {
    category: usize,
    range: (Date, Date),
    blobs: Vec<(String, Payload)>,
}

/// Read the buckets of version `v`'s category `c` (its index in that
/// version) for the months of `lo..=hi`.
pub fn tied_blobs(
    backend: &mut dyn Backend,
    meta: &Meta,
    ag: &Agreement,
    v: usize,
    c: usize,
    (lo, hi): (Date, Date),
) -> Result<TiedBlobs, StoreError> {
    let (m0, m1) = (lo.max(ag.start).month_index(), hi.min(ag.end).month_index());
    let keys: Vec<String> = (m0..=m1).map(|m| bucket_key(v, c, m)).collect();
    let blobs = need_many(backend, meta, &keys)?;
    let blobs = keys.into_iter().zip(blobs).collect();
    Ok(TiedBlobs {
        category: c,
        range: (lo, hi),
        blobs,
    })
}

impl TiedBlobs {
    /// The active lines dated within the range, borrowed from the stored
    /// bytes (no string per line), in (month, date, id) order.
    pub fn view(&self) -> Result<TiedLines<'_>, StoreError> {
        let (lo, hi) = self.range;
        let bytes: usize = self.blobs.iter().map(|(_, b)| b.len()).sum();
        let n: usize = self.blobs.iter().filter_map(|(_, b)| bucket_len(b)).sum();
        let mut lines = BLines::with_capacity(n.min(bytes / 32));
        for (key, b) in &self.blobs {
            decode_bucket_into(b, lo, hi, &mut lines).ok_or_else(|| damaged(key))?;
        }
        Ok(TiedLines {
            category: self.category,
            lines,
        })
    }
}

/// Lines of one category of an agreement version, borrowed from its
/// buckets, as the allocator and the literal oracle read them.
pub struct TiedLines<'a> {
    category: usize,
    lines: BLines<'a>,
}

impl TiedLines<'_> {
    pub fn len(&self) -> usize {
        self.lines.lines.len()
    }
    pub fn is_empty(&self) -> bool {
        self.lines.lines.is_empty()
    }
    /// Where the line `id` recorded by entry `seq` is.
    pub fn position(&self, seq: u64, id: &str) -> Option<usize> {
        self.lines
            .lines
            .iter()
            .position(|l| l.id == id.as_bytes() && l.rest().is_some_and(|r| r.seq == seq))
    }
    /// Line `k` as the cost line a replay makes of its entry (under `ag`,
    /// the version the view was read from).
    pub fn cost_line(&self, ag: &Agreement, rates: &Rates, k: usize) -> Option<CostLine> {
        let l = self.lines.lines.get(k)?;
        cost_line(ag, rates, self.category, l, self.lines.quantity(l))
    }
}

impl alloc::Lines for TiedLines<'_> {
    fn count(&self) -> usize {
        self.lines.lines.len()
    }
    fn date(&self, i: usize) -> Date {
        self.lines.lines[i].date
    }
    fn category(&self, _: usize) -> usize {
        self.category
    }
    fn amount(&self, i: usize) -> i64 {
        self.lines.lines[i].amount
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.lines.quantity(&self.lines.lines[i])
    }
    fn id(&self, i: usize) -> &[u8] {
        self.lines.lines[i].id
    }
}

/// Push the lines of bucket (version, category, month) dated within
/// `lo..=hi` onto `out`, as a replay's cost lines under `ag`.
fn read_bucket(
    backend: &mut dyn Backend,
    meta: &Meta,
    ag: &Agreement,
    rates: &Rates,
    (v, c, m): (usize, usize, i32),
    (lo, hi): (Date, Date),
    out: &mut Vec<CostLine>,
) -> Result<(), StoreError> {
    let key = bucket_key(v, c, m);
    let b = get(backend, meta, &key)?;
    let bad = || damaged(&key);
    let mut r = R::new(&b);
    (r.u32() == Some(FORMAT)).then_some(()).ok_or_else(bad)?;
    let n = r.u32().ok_or_else(bad)? as usize;
    out.reserve(n.min(b.len()));
    let mut one = BLines::with_capacity(1);
    for _ in 0..n {
        one.lines.clear();
        one.qty.clear();
        one.read(&mut r, |d| d >= lo && d <= hi).ok_or_else(bad)?;
        if let Some(l) = one.lines.first() {
            out.push(cost_line(ag, rates, c, l, one.quantity(l)).ok_or_else(bad)?);
        }
    }
    r.done().then_some(()).ok_or_else(bad)
}

/// Report totals as the core's report groups: one version's totals grouped
/// under its own agreement (keys in `dims` order: party index, fiscal-year
/// label, category rank, site index, month index), the versions merged as
/// the report merges them. `months` keeps only lines dated in those months.
pub fn report(
    versions: &[&Agreement],
    meta: &Meta,
    dims: &[costshare_core::report::Dim],
    months: Option<(i32, i32)>,
) -> Result<Vec<costshare_core::report::Row>, costshare_core::report::TotalTooLarge> {
    let items = meta
        .totals
        .iter()
        .map(|((v, p, c, mi, site), t)| (*v, *p, *c, *mi, site.as_str(), *t));
    group(versions, dims, months, items)
}

/// The report of the lines still provisional at `as_of` alone (what a
/// report's per-row flags are read from: `report::provisional_flags`).
pub fn provisional_report(
    versions: &[&Agreement],
    meta: &Meta,
    dims: &[costshare_core::report::Dim],
    as_of: Date,
) -> Result<Vec<costshare_core::report::Row>, costshare_core::report::TotalTooLarge> {
    let items = meta
        .open_totals
        .iter()
        .filter(|((.., d), _)| *d > as_of)
        .map(|((v, p, c, mi, site, _), t)| (*v, *p, *c, *mi, site.as_str(), *t));
    group(versions, dims, None, items)
}

fn group<'m>(
    versions: &[&Agreement],
    dims: &[costshare_core::report::Dim],
    months: Option<(i32, i32)>,
    items: impl Iterator<Item = (u16, u16, u16, i32, &'m str, i128)> + Clone,
) -> Result<Vec<costshare_core::report::Row>, costshare_core::report::TotalTooLarge> {
    use costshare_core::report::{KeyRule, Sites};
    let mut per = Vec::with_capacity(versions.len());
    for (v, ag) in versions.iter().enumerate() {
        let rule = KeyRule::new(ag, dims);
        let mut sites = Sites::default();
        let mut groups: HashMap<[i64; 5], i128, state::BuildFx> = HashMap::default();
        // fiscal years start on the first of a month: a month's first day stands for the month
        for (tv, p, c, mi, site, t) in items.clone() {
            if tv as usize != v || months.is_some_and(|(m0, m1)| mi < m0 || mi > m1) {
                continue;
            }
            let key = rule.key(
                p as usize,
                Date::first_of_month_index(mi),
                c as usize,
                sites.number(site),
            );
            *groups.entry(key).or_insert(0) += t;
        }
        groups.retain(|_, t| *t != 0);
        per.push(rule.rows(sites.names(), groups)?);
    }
    let Some(latest) = versions.last() else {
        return Ok(Vec::new());
    };
    costshare_core::report::merge(latest, dims, per)
}

/// The month indices of fiscal year `fy` (fiscal years start on the first
/// of a month, so a line is of the year exactly when its month is).
pub fn year_months(cal: &costshare_core::calendar::FiscalCalendar, fy: i32) -> (i32, i32) {
    let (first, last) = cal.fy_bounds(fy);
    (first.month_index(), last.month_index())
}

/// The statement rows of fiscal year `fy` from the totals: what
/// `state::year_totals` makes of a replay's allocation (amounts do not
/// depend on the as-of date), grouped by [party, category] per version and
/// merged by [`report`]. `versions` in order, the latest last.
pub fn year_totals(
    versions: &[&Agreement],
    meta: &Meta,
    fy: i32,
) -> Result<Vec<journal::StatementRow>, costshare_core::report::TotalTooLarge> {
    use costshare_core::report::Dim;
    let Some(latest) = versions.last() else {
        return Ok(Vec::new());
    };
    let months = year_months(&latest.calendar, fy);
    Ok(state::statement_rows(report(
        versions,
        meta,
        &[Dim::Party, Dim::Category],
        Some(months),
    )?))
}

// --- late lines -----------------------------------------------------------

/// What taking new lines in changed.
#[derive(Clone, Debug, Default)]
pub struct LateImpact {
    /// Lines re-allocated: the new ones and those their capped periods tie
    /// them to, up to where the allocations with and without a new line
    /// agree on every later line (a category that runs in order, `Runs`).
    pub reallocated: usize,
    /// Earlier lines whose allocation changed: id and change per party
    /// (then UNALLOCATED).
    pub changed: Vec<(String, Vec<i64>)>,
    /// Party ids in order, then UNALLOCATED.
    pub parties: Vec<String>,
    /// Decimals of the agreement currency.
    pub decimals: u32,
}

/// Take new lines (validated, with their journal entries) into the derived
/// state: each one re-allocates only the dates it is tied to. The caller
/// writes the returned blobs with the journal entries, after setting the
/// meta's head.
pub fn add_lines(
    backend: &mut dyn Backend,
    ag: &Agreement,
    meta: &mut Meta,
    new: Vec<(CostLine, u64)>,
) -> Result<(LateImpact, Vec<Blob>), StoreError> {
    // buckets as stored (a bucket a new line goes into is re-encoded)
    let mut buckets: BTreeMap<(usize, i32), Payload> = BTreeMap::new();
    let mut dirty: std::collections::BTreeSet<(usize, i32)> = Default::default();
    // shards as stored, each new id appended to its bytes
    let mut shards: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut impact = LateImpact {
        parties: ag
            .parties
            .iter()
            .map(|p| p.id.clone())
            .chain(["UNALLOCATED".to_string()])
            .collect(),
        decimals: ag.currency.decimals(),
        ..LateImpact::default()
    };
    let mut changed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let added: std::collections::HashSet<String> = new.iter().map(|(l, _)| l.id.clone()).collect();
    for (mut line, seq) in new {
        line.row = seq as usize;
        let c = line.category;
        let (lo, hi) = alloc::tied_range(ag, c, line.date);
        let (m0, m1) = (lo.month_index(), hi.month_index());
        // the allocator sees one category (index 0 of a one-category view)
        let one = single_category(ag, c);
        // a category that runs in order is allocated by runs from the new
        // line on (`Runs`): the months after the new line's are read only
        // when the runs reach them
        let in_order = alloc::runs_in_order(&one, 0);
        let mk = if in_order {
            line.date.month_index().clamp(m0, m1)
        } else {
            m1
        };
        let months: Vec<i32> = (m0..=mk).filter(|m| !buckets.contains_key(&(c, *m))).collect();
        let keys: Vec<String> = months.iter().map(|&m| bucket_key(0, c, m)).collect();
        for (m, b) in months.into_iter().zip(need_many(backend, meta, &keys)?) {
            buckets.insert((c, m), b);
        }
        // later months' buckets, read only if the runs reach them
        let mut later: Vec<(i32, Payload)> = Vec::new();
        // the tied lines, in (date, id) order, without and with the new one
        let room: usize = (m0..=mk).filter_map(|m| bucket_len(&buckets[&(c, m)])).sum();
        let mut tied = Tied(BLines::with_capacity(room + 1));
        for m in m0..=mk {
            decode_bucket_into(&buckets[&(c, m)], lo, hi, &mut tied.0).ok_or_else(|| damaged(&bucket_key(0, c, m)))?;
        }
        // the new line as a bucket holds it, read back as the others are
        let mine = encode_bucket(std::iter::once(view_of(&line)));
        decode_bucket_into(&mine, line.date, line.date, &mut tied.0).ok_or_else(|| damaged("meta"))?;
        // the new line where it sorts: the tied lines stay in (date, id) order,
        // which the allocator then takes as it is (`alloc::line_order`)
        let new = tied.0.lines.pop().ok_or_else(|| damaged("meta"))?;
        let k = tied.0.lines.partition_point(|l| (l.date, l.id) < (new.date, new.id));
        tied.0.lines.insert(k, new);
        let mut moves = Moves::default();
        // the tied lines without and with the new one
        let (row, open, allocated) = if in_order {
            let mut runs = Runs::new(ag, &one, &tied, k);
            runs.advance(ag, &one, meta, c, &tied, k, true, &mut moves, Some(&mut changed))?;
            if !runs.settled && mk < m1 {
                // the runs reached the end of the new line's month: the rest
                let months: Vec<i32> = (mk + 1..=m1).filter(|m| !buckets.contains_key(&(c, *m))).collect();
                let keys: Vec<String> = months.iter().map(|&m| bucket_key(0, c, m)).collect();
                later = months.into_iter().zip(need_many(backend, meta, &keys)?).collect();
                for m in mk + 1..=m1 {
                    let b = match buckets.get(&(c, m)) {
                        Some(b) => b,
                        None => later
                            .iter()
                            .find(|(x, _)| *x == m)
                            .map(|(_, b)| b)
                            .ok_or_else(|| damaged("meta"))?,
                    };
                    decode_bucket_into(b, lo, hi, &mut tied.0).ok_or_else(|| damaged(&bucket_key(0, c, m)))?;
                }
                runs.advance(ag, &one, meta, c, &tied, k, true, &mut moves, Some(&mut changed))?;
            }
            runs.finish(c, &tied, k)?
        } else {
            with_and_without(ag, &one, meta, c, &tied, k, true, &mut moves, Some(&mut changed))?
        };
        impact.reallocated += allocated;
        moves.add(line.date, &line.site, &row, open, 1);
        moves.apply(meta, c);
        drop(tied);
        for (m, b) in later {
            buckets.insert((c, m), b);
        }
        if let Some(d) = open {
            *meta.open.entry((line.date.month_index(), d)).or_insert(0) += 1;
        }
        meta.lines += 1;
        meta.total += line.amount as i128;
        // into its bucket, in (date, id) order
        let m = line.date.month_index();
        let key = bucket_key(0, c, m);
        let stored = buckets.get_mut(&(c, m)).ok_or_else(|| damaged(&key))?;
        *stored = Payload::of(insert_into_bucket(stored, &line).ok_or_else(|| damaged(&key))?);
        dirty.insert((c, m));
        let s = shard_of(&line.id);
        if let std::collections::btree_map::Entry::Vacant(e) = shards.entry(s) {
            let key = shard_key(s);
            e.insert(get(backend, meta, &key)?.into_vec());
        }
        if let Some(sh) = shards.get_mut(&s) {
            shard_push(sh, &line.id, seq).ok_or_else(|| damaged(&shard_key(s)))?;
        }
    }
    // lines added in this call are not "earlier lines"
    impact.changed = changed
        .into_iter()
        .filter(|(id, d)| !added.contains(id) && d.iter().any(|&x| x != 0))
        .collect();
    let mut blobs = Vec::new();
    for (c, m) in dirty {
        if let Some(b) = buckets.remove(&(c, m)) {
            blobs.push((bucket_key(0, c, m), b.into_vec()));
        }
    }
    for (s, b) in shards {
        blobs.push((shard_key(s), b));
    }
    Ok((impact, blobs))
}

/// Line `k` of `tied` (all of category `c`, allocated under `one`, its
/// one-category agreement) comes in (`added`: a late line) or goes (a void):
/// every other tied line whose parts differ with and without it is moved
/// (`move_tied`). Returns line `k`'s row and open date with it, and how many
/// tied lines were allocated (from the first).
///
/// Two allocations of all the tied lines, on two cores; but a category that
/// runs in order (`alloc::runs_in_order`) goes by [`Runs`], which stops where
/// the two allocations agree on every later line.
#[allow(clippy::too_many_arguments)]
fn with_and_without<'s>(
    ag: &Agreement,
    one: &Agreement,
    meta: &mut Meta,
    c: usize,
    tied: &Tied<'s>,
    k: usize,
    added: bool,
    moves: &mut Moves<'s>,
    changed: Option<&mut BTreeMap<String, Vec<i64>>>,
) -> Result<(Vec<i64>, Option<Date>, usize), StoreError> {
    if alloc::runs_in_order(one, 0) {
        let mut runs = Runs::new(ag, one, tied, k);
        runs.advance(ag, one, meta, c, tied, k, added, moves, changed)?;
        return runs.finish(c, tied, k);
    }
    let n = tied.0.lines.len();
    // two allocations that do not depend on each other, one on a second core
    let (aw, ao) = both(
        || alloc::allocate_lines(one, tied, ag.start),
        || alloc::allocate_lines(one, &Without(tied, k), ag.start),
    );
    // line i here is line i - 1 without line k when it comes after it
    let with: (&alloc::Allocation, &dyn Fn(usize) -> usize) = (&aw, &|i| i);
    let without: (&alloc::Allocation, &dyn Fn(usize) -> usize) = (&ao, &|i| if i < k { i } else { i - 1 });
    let (a0, a1) = if added { (without, with) } else { (with, without) };
    move_tied(meta, c, tied, 0..n, k, a0, a1, moves, changed)?;
    Ok((aw.row(k).to_vec(), aw.open_until[k], n))
}

/// The tied lines of a category that runs in order (`alloc::runs_in_order`:
/// every capped layer running, no pro rata) allocated with and without line
/// `k` by runs. The lines before `k` keep their parts either way, so lines
/// `..k` are allocated once, only for the use they leave of each capped
/// period (`Carry::after`); then lines `k..` twice, in runs of doubling
/// length, each run starting with what the lines before it left with line
/// `k` and without it. Once the two leave every capped period the same use
/// (`Carry::same_use`), every later line gets the same parts from both, and
/// nothing after it moves. The parts are the engine's (`allocate_carried`)
/// either way; only which lines it is given differs. The tied lines may
/// grow between two calls of [`Runs::advance`] (later months read only when
/// the runs reach them), never change.
struct Runs {
    with: alloc::Carry,
    without: alloc::Carry,
    /// The first tied line not yet allocated with and without line `k`.
    next: usize,
    /// The length of the next run.
    run: usize,
    /// Line `k`'s row and open date with it, once its run is allocated.
    mine: Option<(Vec<i64>, Option<Date>)>,
    /// The two allocations agree on every line from `next` on.
    settled: bool,
}

impl Runs {
    /// Lines `..k` allocated for the use they leave.
    fn new(ag: &Agreement, one: &Agreement, tied: &Tied<'_>, k: usize) -> Runs {
        let before = alloc::allocate_lines(one, &Span(tied, 0..k), ag.start);
        let carry = alloc::Carry::NONE.after(&before.usage);
        Runs {
            with: carry.clone(),
            without: carry,
            next: k,
            run: 64,
            mine: None,
            settled: false,
        }
    }

    /// Allocate runs until the two allocations agree or the tied lines end,
    /// moving the lines whose parts differ (as [`with_and_without`]).
    #[allow(clippy::too_many_arguments)]
    fn advance<'s>(
        &mut self,
        ag: &Agreement,
        one: &Agreement,
        meta: &mut Meta,
        c: usize,
        tied: &Tied<'s>,
        k: usize,
        added: bool,
        moves: &mut Moves<'s>,
        mut changed: Option<&mut BTreeMap<String, Vec<i64>>>,
    ) -> Result<(), StoreError> {
        let n = tied.0.lines.len();
        while !self.settled && self.next < n {
            let p = self.next;
            let q = n.min(p.saturating_add(1).saturating_add(self.run));
            // without line k its run starts after it
            let po = p.max(k + 1);
            let aw = alloc::allocate_carried(one, &Span(tied, p..q), ag.start, &self.with);
            let ao = alloc::allocate_carried(one, &Span(tied, po..q), ag.start, &self.without);
            if p == k {
                self.mine = Some((aw.row(0).to_vec(), aw.open_until[0]));
            }
            let with: (&alloc::Allocation, &dyn Fn(usize) -> usize) = (&aw, &|i| i - p);
            let without: (&alloc::Allocation, &dyn Fn(usize) -> usize) = (&ao, &|i| i - po);
            let (a0, a1) = if added { (without, with) } else { (with, without) };
            move_tied(meta, c, tied, p..q, k, a0, a1, moves, changed.as_deref_mut())?;
            self.with = self.with.after(&aw.usage);
            self.without = self.without.after(&ao.usage);
            self.settled = self.with.same_use(&self.without);
            (self.next, self.run) = (q, self.run.saturating_mul(2));
        }
        Ok(())
    }

    /// Line `k`'s row and open date with it, and how many tied lines were
    /// allocated.
    fn finish(self, c: usize, tied: &Tied<'_>, k: usize) -> Result<(Vec<i64>, Option<Date>, usize), StoreError> {
        let month = tied.0.lines.get(k).map_or(0, |l| l.date.month_index());
        let (row, open) = self.mine.ok_or_else(|| damaged(&bucket_key(0, c, month)))?;
        Ok((row, open, self.next))
    }
}

/// Tied lines `.1` (a run of them, allocated from what the lines before
/// left: see [`with_and_without`]).
struct Span<'t, 'a>(&'t Tied<'a>, std::ops::Range<usize>);

impl alloc::Lines for Span<'_, '_> {
    fn count(&self) -> usize {
        self.1.len()
    }
    fn date(&self, i: usize) -> Date {
        self.0.date(self.1.start + i)
    }
    fn category(&self, _: usize) -> usize {
        0
    }
    fn amount(&self, i: usize) -> i64 {
        self.0.amount(self.1.start + i)
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.0.quantity(self.1.start + i)
    }
    fn id(&self, i: usize) -> &[u8] {
        self.0.id(self.1.start + i)
    }
}

/// The lines of `tied` in `range` but line `skip` whose allocation differs between
/// `a0` (line i of `tied` is its line `a0.1(i)`) and `a1` (its line
/// `a1.1(i)`): their parts move in the totals (through `moves`), their
/// counts of lines provisional until a date in the meta, and their change by
/// id into `changed` when asked. The one home of how a late line or a void
/// moves the lines its periods tie to it.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn move_tied<'s>(
    meta: &mut Meta,
    c: usize,
    tied: &Tied<'s>,
    range: std::ops::Range<usize>,
    skip: usize,
    a0: (&alloc::Allocation, &dyn Fn(usize) -> usize),
    a1: (&alloc::Allocation, &dyn Fn(usize) -> usize),
    moves: &mut Moves<'s>,
    mut changed: Option<&mut BTreeMap<String, Vec<i64>>>,
) -> Result<(), StoreError> {
    let start = range.start;
    for (i, l) in tied.0.lines[range].iter().enumerate() {
        let i = start + i;
        if i == skip {
            continue;
        }
        let (i0, i1) = (a0.1(i), a1.1(i));
        let (r0, r1) = (a0.0.row(i0), a1.0.row(i1));
        let (o0, o1) = (a0.0.open_until[i0], a1.0.open_until[i1]);
        if r0 == r1 && o0 == o1 {
            continue;
        }
        let bad = || damaged(&bucket_key(0, c, l.date.month_index()));
        let site = l.rest().ok_or_else(bad)?.site;
        if o0 == o1 {
            moves.change(
                l.date,
                site,
                o0,
                r1.iter().zip(r0).map(|(a, b)| *a as i128 - *b as i128),
            );
        } else {
            moves.add(l.date, site, r0, o0, -1);
            moves.add(l.date, site, r1, o1, 1);
        }
        if r0 != r1
            && let Some(changed) = changed.as_deref_mut()
        {
            let id = l.id().ok_or_else(bad)?;
            let d = changed.entry(id.to_string()).or_insert_with(|| vec![0; r0.len()]);
            for ((x, a), b) in d.iter_mut().zip(r1).zip(r0) {
                *x += a - b;
            }
        }
        if o0 != o1 {
            let mi = l.date.month_index();
            if let Some(d) = o0 {
                open_count(meta, mi, d, -1);
            }
            if let Some(d) = o1 {
                open_count(meta, mi, d, 1);
            }
        }
    }
    Ok(())
}

/// One more (`by` = 1) or one fewer (−1) line dated in month `mi` that is
/// provisional until `d`; a count that comes to zero is dropped.
fn open_count(meta: &mut Meta, mi: i32, d: Date, by: i64) {
    let n = meta.open.entry((mi, d)).or_insert(0);
    *n = n.saturating_add_signed(by);
    if *n == 0 {
        meta.open.remove(&(mi, d));
    }
}

/// Void the active line `id`, recorded by entry `seq`, by entry `void`:
/// the lines its capped periods tie it to are re-allocated without it
/// (two allocations, as a late line's), the totals and provisional counts
/// move, the line leaves its bucket, and its id's record in its shard
/// names the void. Returns the blobs to write besides the meta (the
/// caller's, with its new head). What a rebuild after the void would hold.
pub fn remove_line(
    backend: &mut dyn Backend,
    ag: &Agreement,
    meta: &mut Meta,
    id: &str,
    seq: u64,
    void: u64,
) -> Result<Vec<Blob>, StoreError> {
    let (_, body) = line_entry(backend, id, seq)?;
    let skey = shard_key_of(id);
    let date = Date::parse(&body.date).ok_or_else(|| damaged(&skey))?;
    let c = ag
        .categories
        .iter()
        .position(|k| k.id == body.category)
        .ok_or_else(|| damaged(&skey))?;
    let buckets = tied_blobs(backend, meta, ag, 0, c, alloc::tied_range(ag, c, date))?;
    let tied = Tied(buckets.view()?.lines);
    let mi = date.month_index();
    let mkey = bucket_key(0, c, mi);
    let k = tied
        .0
        .lines
        .iter()
        .position(|l| l.date == date && l.id == id.as_bytes())
        .ok_or_else(|| damaged(&mkey))?;
    let one = single_category(ag, c);
    let mut moves = Moves::default();
    // the tied lines with and without the voided one
    let (row, open, _) = with_and_without(ag, &one, meta, c, &tied, k, false, &mut moves, None)?;
    let gone = tied.0.lines[k];
    let site = gone.rest().ok_or_else(|| damaged(&mkey))?.site;
    moves.add(date, site, &row, open, -1);
    moves.apply(meta, c);
    if let Some(d) = open {
        open_count(meta, mi, d, -1);
    }
    meta.lines = meta.lines.checked_sub(1).ok_or_else(|| damaged("meta"))?;
    meta.total -= gone.amount as i128;
    drop(tied);
    let (_, b) = buckets
        .blobs
        .iter()
        .find(|(key, _)| *key == mkey)
        .ok_or_else(|| damaged(&mkey))?;
    let bucket = remove_from_bucket(b, id, date).ok_or_else(|| damaged(&mkey))?;
    let mut shard = get(backend, meta, &skey)?.into_vec();
    shard_void(&mut shard, id, void).ok_or_else(|| damaged(&skey))?;
    Ok(vec![(mkey, bucket), (skey, shard)])
}

/// The agreement with only category `c` (as category 0): the allocator
/// indexes layers by a line's category, and the tied lines are all of `c`.
fn single_category(ag: &Agreement, c: usize) -> Agreement {
    ag.with_only_category(c)
}

/// The meta blob, for writing after its head is set.
pub fn meta_blob(meta: &Meta) -> (String, Vec<u8>) {
    ("meta".to_string(), encode_meta(meta))
}

/// Where a recorded line id is: the entry that recorded it and the entry
/// that voided it (0: active), from its id shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub seq: u64,
    pub void: u64,
}

/// Look `id` up in its shard (voided lines included): `None` when no line
/// with that id was ever recorded.
pub fn lookup(backend: &mut dyn Backend, meta: &Meta, id: &str) -> Result<Option<Recorded>, StoreError> {
    let key = shard_key(shard_of(id));
    let b = get(backend, meta, &key)?;
    let found = shard_find(&b, id).ok_or_else(|| damaged(&key))?;
    Ok(found.map(|(seq, void)| Recorded { seq, void }))
}

/// The blob key of `id`'s shard (what an entry the shard names is read as).
pub fn shard_key_of(id: &str) -> String {
    shard_key(shard_of(id))
}

/// The line entry the shard names for `id`: its `at`, `who` and body (an
/// entry that is not a line of that id is the shard damaged).
pub fn line_entry(backend: &mut dyn Backend, id: &str, seq: u64) -> Result<(journal::Entry, LineBody), StoreError> {
    let key = shard_key_of(id);
    let mut e = named_entry(backend, seq, &key)?;
    match std::mem::replace(&mut e.body, Body::Init { format: String::new() }) {
        Body::Line(l) if l.id == id => Ok((e, l)),
        _ => Err(damaged(&key)),
    }
}

/// The void entry the shard names for `id`: the entry, its reason and the
/// line that replaced it (`by`, empty when voided by `void`); an entry that
/// is not a void of that id is the shard damaged.
pub fn void_entry(
    backend: &mut dyn Backend,
    id: &str,
    seq: u64,
) -> Result<(journal::Entry, String, String), StoreError> {
    let key = shard_key_of(id);
    let mut e = named_entry(backend, seq, &key)?;
    match std::mem::replace(&mut e.body, Body::Init { format: String::new() }) {
        Body::Void { id: v, reason, by } if v == id => Ok((e, reason, by)),
        _ => Err(damaged(&key)),
    }
}

/// The entry that recorded `id`, if any (voided lines included).
pub fn recorded(backend: &mut dyn Backend, meta: &Meta, id: &str) -> Result<Option<(u64, LineBody)>, StoreError> {
    let Some(Recorded { seq, .. }) = lookup(backend, meta, id)? else {
        return Ok(None);
    };
    Ok(Some((seq, line_entry(backend, id, seq)?.1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_naming(key: &str, sum: [u8; 16]) -> Meta {
        let mut m = Meta::default();
        m.blobs.insert(key.to_string(), sum);
        m
    }

    /// A bucket-like payload: repeated fields, as the buckets' lines are.
    fn payload() -> Vec<u8> {
        (0..2000u32)
            .flat_map(|i| format!("B{i:08}\u{0}Okinawa\u{0}JPY\u{0}").into_bytes())
            .collect()
    }

    #[test]
    fn a_blob_sealed_compressed_reads_back_as_its_payload() {
        let p = payload();
        let (stored, sum) = seal_blob("b/0/1/24300", &p);
        assert!(stored.starts_with(SEAL_LZ4));
        assert!(stored.len() * 2 < p.len(), "{} of {}", stored.len(), p.len());
        let got = named(&meta_naming("b/0/1/24300", sum), "b/0/1/24300", stored.clone()).unwrap();
        assert_eq!(&*got, &p[..]);
        // under another key, or with a byte changed, it is damaged
        assert!(named(&meta_naming("b/0/1/24301", sum), "b/0/1/24301", stored.clone()).is_err());
        let mut bad = stored;
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            named(&meta_naming("b/0/1/24300", sum), "b/0/1/24300", bad),
            Err(StoreError::Cache(_))
        ));
    }

    /// A compressed blob whose first bytes are changed to the raw seal's,
    /// or a raw one changed to the compressed seal's, fails its seal.
    #[test]
    fn a_blob_whose_seal_kind_is_changed_fails_its_seal() {
        let p = payload();
        let (mut z, sum) = seal_blob("b/0/0/2", &p);
        z[..4].copy_from_slice(SEAL);
        assert!(named(&meta_naming("b/0/0/2", sum), "b/0/0/2", z).is_err());
        let (mut d, sum) = sealed("", "b/0/0/2", &p);
        d[..4].copy_from_slice(SEAL_LZ4);
        assert!(named(&meta_naming("b/0/0/2", sum), "b/0/0/2", d).is_err());
    }

    #[test]
    fn a_blob_sealed_under_its_head_as_before_still_reads() {
        let p = payload();
        let (stored, sum) = sealed("ab12", "i/7", &p);
        let got = named(&meta_naming("i/7", sum), "i/7", stored).unwrap();
        assert_eq!(&*got, &p[..]);
    }

    /// A compressed blob whose seal checks but whose length field is more
    /// than LZ4 can expand its bytes to, or whose bytes do not decompress:
    /// damaged, and nothing of that length is allocated.
    #[test]
    fn a_compressed_blob_that_does_not_decompress_is_damaged() {
        for z in [
            [u32::MAX.to_le_bytes().as_slice(), &[0x10, b'a']].concat(),
            [100u32.to_le_bytes().as_slice(), &[0xff, 0xff, 0xff]].concat(),
            vec![1, 2],
        ] {
            let (stored, sum) = sealed_as(SEAL_LZ4, "", "b/0/0/1", &z);
            assert!(matches!(
                named(&meta_naming("b/0/0/1", sum), "b/0/0/1", stored),
                Err(StoreError::Cache(k)) if k == "b/0/0/1"
            ));
        }
    }

    #[test]
    fn a_permutation_is_every_index_once() {
        assert!(is_permutation(&[], 0));
        assert!(is_permutation(&[2, 0, 1], 3));
        assert!(is_permutation(&(0..200).rev().collect::<Vec<u32>>(), 200));
        assert!(!is_permutation(&[0, 1], 3));
        assert!(!is_permutation(&[0, 0, 1], 3));
        assert!(!is_permutation(&[0, 1, 3], 3));
        assert!(!is_permutation(&[0, 1, 64], 3));
    }

    /// Random bytes, and a real compressed payload cut or with a byte
    /// changed, never make `unpack` panic; what it returns has the length
    /// it gives (the checked decoder; a blob reaches it only past its seal,
    /// which is what refuses changed bytes).
    #[test]
    fn unpack_of_any_bytes_returns_or_refuses() {
        let p = payload();
        let (stored, _) = seal_blob("b/0/0/1", &p);
        let z = stored[4 + 4 + 16..].to_vec();
        assert_eq!(unpack(&z).as_deref(), Some(&p[..]));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..4000 {
            let mut b = if i % 2 == 0 {
                z.clone()
            } else {
                (0..(next() % 300)).map(|_| next() as u8).collect()
            };
            if !b.is_empty() {
                let at = (next() as usize) % b.len();
                b[at] ^= (next() as u8) | 1;
                if i % 3 == 0 {
                    b.truncate(at);
                }
            }
            if let Some(raw) = unpack(&b) {
                assert_eq!(raw.len(), u32::from_le_bytes(b[..4].try_into().unwrap()) as usize);
            }
        }
    }

    /// The meta is never read from a compressed seal.
    #[test]
    fn a_meta_sealed_compressed_is_damaged() {
        let m = Meta {
            head: "ab12".to_string(),
            versions: vec![3],
            carries: vec![alloc::Carry::NONE],
            ..Meta::default()
        };
        let (stored, _) = sealed_as(SEAL_LZ4, &m.head, "meta", &encode_meta(&m));
        assert!(matches!(meta_of(Some(stored)), Err(StoreError::Cache(_))));
        let (stored, _) = sealed(&m.head, "meta", &encode_meta(&m));
        assert_eq!(meta_of(Some(stored)).unwrap(), Some(m));
    }
}
