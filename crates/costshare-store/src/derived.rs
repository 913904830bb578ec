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
//!   how many lines stay provisional until each date;
//! - `b/CATEGORY/MONTH`: the active lines of one category and month (by
//!   month index), in (date, id) order — what re-allocating a period group
//!   needs, a group being a run of whole months;
//! - `i/SHARD`: every recorded id (voided ones too) with its entry, in 256
//!   shards by hash, to tell a new id from a recorded one.
//!
//! Every blob is sealed ([`seal`]): stored after a SHA-256 over the journal
//! head it was written under, its key and its payload. A blob whose seal does
//! not check is never decoded: reading it is [`StoreError::Cache`], and the
//! callers replay the journal instead (and say so).
//!
//! It exists only for a ledger with one agreement version (amendments make
//! every command replay the journal). A late line re-allocates the dates its
//! capped layers' periods tie it to: a month or a fiscal year for monthly and
//! yearly caps, the whole term for term caps.

use crate::backend::{Backend, StoreError};
use crate::journal::{self, Body, LineBody};
use crate::state::{self, State};
use costshare_core::agreement::Agreement;
use costshare_core::alloc;
use costshare_core::calendar::Date;
use costshare_core::costs::CostLine;
use costshare_core::fxhash::Fx;
use costshare_core::num::{BigRational, Q};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

/// The layout of the blobs' payloads.
pub const FORMAT: u32 = 3;
/// The first bytes of every sealed blob.
const SEAL: &[u8; 4] = b"CSd3";
const SHARDS: u64 = 256;

/// A blob of the derived state and its key.
pub type Blob = (String, Vec<u8>);

/// (party index — parties then UNALLOCATED —, category index, month index, site).
pub type TotalKey = (u16, u16, i32, String);

/// Everything but the lines and ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// The journal entry this state reflects, and its hash.
    pub seq: u64,
    pub head: String,
    /// The agreement's entry.
    pub version_seq: u64,
    /// Rate entries.
    pub rate_seqs: Vec<u64>,
    /// Active lines and their total (agreement currency).
    pub lines: u64,
    pub total: i128,
    /// Allocated amounts.
    pub totals: BTreeMap<TotalKey, i128>,
    /// Lines provisional until each date (`Allocation::open_until`).
    pub open: BTreeMap<Date, u64>,
}

impl Meta {
    /// Lines still provisional at `as_of`.
    pub fn provisional(&self, as_of: Date) -> u64 {
        use std::ops::Bound::{Excluded, Unbounded};
        self.open.range((Excluded(as_of), Unbounded)).map(|(_, n)| n).sum()
    }
}

fn damaged(key: &str) -> StoreError {
    StoreError::Cache(key.to_string())
}

// --- sealing --------------------------------------------------------------

fn digest(head: &str, key: &str, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(head.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    h.update(b"\n");
    h.update(payload);
    h.finalize().into()
}

/// A blob as stored: `CSd3`, the head's length (u32 LE) and bytes, the
/// SHA-256 of (head, LF, key, LF, payload), then the payload.
pub fn seal(head: &str, key: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + head.len() + 40);
    out.extend_from_slice(SEAL);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&digest(head, key, payload));
    out.extend_from_slice(payload);
    out
}

/// The head a stored blob was sealed under and the length of its header,
/// when its seal checks.
fn unseal<'a>(key: &str, stored: &'a [u8]) -> Option<(&'a str, usize)> {
    let mut r = R::new(stored);
    (r.take(4)? == SEAL).then_some(())?;
    let n = r.u32()? as usize;
    let head = std::str::from_utf8(r.take(n)?).ok()?;
    let sum = r.take(32)?;
    let at = r.pos;
    (sum == digest(head, key, &stored[at..])).then_some((head, at))
}

/// A blob's payload, with the head it was sealed under; `None` when absent;
/// [`StoreError::Cache`] when its seal does not check.
fn get_sealed(backend: &mut dyn Backend, key: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    let Some(mut stored) = backend.cache_get(key)? else {
        return Ok(None);
    };
    let (head, at) = unseal(key, &stored).ok_or_else(|| damaged(key))?;
    let head = head.to_string();
    stored.drain(..at);
    Ok(Some((head, stored)))
}

/// A blob's payload (`None`: absent); a blob failing its seal is an error.
pub fn get(backend: &mut dyn Backend, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(get_sealed(backend, key)?.map(|(_, p)| p))
}

/// A blob's payload; absent or failing its seal is an error.
fn need(backend: &mut dyn Backend, key: &str) -> Result<Vec<u8>, StoreError> {
    get(backend, key)?.ok_or_else(|| damaged(key))
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
    w.u64(m.version_seq);
    w.u32(m.rate_seqs.len() as u32);
    for &s in &m.rate_seqs {
        w.u64(s);
    }
    w.u64(m.lines);
    w.i128(m.total);
    w.u32(m.totals.len() as u32);
    for ((p, c, mi, site), v) in &m.totals {
        w.u32(*p as u32);
        w.u32(*c as u32);
        w.u32(*mi as u32);
        w.str(site);
        w.i128(*v);
    }
    w.u32(m.open.len() as u32);
    for (d, n) in &m.open {
        w.date(*d);
        w.u64(*n);
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
        version_seq: r.u64()?,
        ..Meta::default()
    };
    for _ in 0..r.u32()? {
        m.rate_seqs.push(r.u64()?);
    }
    m.lines = r.u64()?;
    m.total = r.i128()?;
    for _ in 0..r.u32()? {
        let p = u16::try_from(r.u32()?).ok()?;
        let c = u16::try_from(r.u32()?).ok()?;
        let mi = r.u32()? as i32;
        let site = r.str()?.to_string();
        m.totals.insert((p, c, mi, site), r.i128()?);
    }
    for _ in 0..r.u32()? {
        let d = r.date()?;
        m.open.insert(d, r.u64()?);
    }
    r.done().then_some(m)
}

fn encode_q(w: &mut W, q: &Option<Q>) {
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
/// order, as cost lines in the agreement currency (their `row` is their
/// journal entry).
fn encode_bucket<'l>(lines: impl ExactSizeIterator<Item = &'l CostLine>) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(lines.len() * 40 + 8));
    w.u32(FORMAT);
    w.u32(lines.len() as u32);
    for l in lines {
        w.str(&l.id);
        w.date(l.date);
        w.i64(l.amount);
        encode_q(&mut w, &l.quantity);
        w.str(&l.site);
        w.u64(l.row as u64);
    }
    w.0
}

/// A bucket's line, borrowed from the stored bytes: what re-allocating it
/// needs, without a `String` per line.
struct BLine<'a> {
    id: &'a str,
    date: Date,
    amount: i64,
    quantity: Option<Q>,
    site: &'a str,
}

/// The lines a late line is tied to (all of one category, shown to the
/// allocator as category 0 of [`single_category`]).
struct Tied<'a>(Vec<BLine<'a>>);

impl alloc::Lines for Tied<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn date(&self, i: usize) -> Date {
        self.0[i].date
    }
    fn category(&self, _: usize) -> usize {
        0
    }
    fn amount(&self, i: usize) -> i64 {
        self.0[i].amount
    }
    fn quantity(&self, i: usize) -> Option<&Q> {
        self.0[i].quantity.as_ref()
    }
    fn id(&self, i: usize) -> &[u8] {
        self.0[i].id.as_bytes()
    }
}

/// How many lines a bucket holds.
fn bucket_len(b: &[u8]) -> Option<usize> {
    let mut r = R::new(b);
    (r.u32()? == FORMAT).then_some(())?;
    Some(r.u32()? as usize)
}

/// One line of a bucket: its fields and where it ends.
fn read_bline<'a>(r: &mut R<'a>) -> Option<BLine<'a>> {
    let id = r.str()?;
    let date = r.date()?;
    let amount = r.i64()?;
    let quantity = decode_q(r)?;
    let site = r.str()?;
    r.u64()?; // the journal entry
    Some(BLine {
        id,
        date,
        amount,
        quantity,
        site,
    })
}

/// Push a bucket's lines dated within `lo..=hi` onto `out`.
fn decode_bucket_into<'a>(b: &'a [u8], lo: Date, hi: Date, out: &mut Vec<BLine<'a>>) -> Option<()> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    for _ in 0..n {
        let l = read_bline(&mut r)?;
        if l.date >= lo && l.date <= hi {
            out.push(l);
        }
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
        let l = read_bline(&mut r)?;
        if (l.date, l.id.as_bytes()) > key {
            at = start;
            break;
        }
    }
    let one = encode_bucket(std::iter::once(line));
    let mut out = Vec::with_capacity(b.len() + one.len());
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(n as u32 + 1).to_le_bytes());
    out.extend_from_slice(&b[8..at]);
    out.extend_from_slice(&one[8..]);
    out.extend_from_slice(&b[at..]);
    Some(out)
}

fn encode_shard<S: AsRef<str>>(ids: &[(S, u64)]) -> Vec<u8> {
    let mut w = W::default();
    w.u32(FORMAT);
    w.u32(ids.len() as u32);
    for (id, seq) in ids {
        w.str(id.as_ref());
        w.u64(*seq);
    }
    w.0
}

fn decode_shard(b: &[u8]) -> Option<Vec<(String, u64)>> {
    let mut r = R::new(b);
    if r.u32()? != FORMAT {
        return None;
    }
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(b.len() / 12));
    for _ in 0..n {
        out.push((r.str()?.to_string(), r.u64()?));
    }
    r.done().then_some(out)
}

fn shard_of(id: &str) -> u64 {
    let mut h = Fx::default();
    h.write(id.as_bytes());
    h.finish() % SHARDS
}

/// The bucket of a category and a month (its month index).
fn bucket_key(category: usize, month: i32) -> String {
    format!("b/{category}/{month}")
}

fn shard_key(shard: u64) -> String {
    format!("i/{shard}")
}

// --- building -------------------------------------------------------------

/// The derived state exists for ledgers with one agreement version.
pub fn applicable(st: &State) -> bool {
    st.versions.len() == 1
}

/// Every blob of the derived state of `st`, rebuilt from scratch.
pub fn build(st: &State) -> Result<Vec<Blob>, StoreError> {
    // amounts do not depend on the as-of date; `open_until` does not either
    let parts = state::allocate(st, st.versions[0].agreement.start)?;
    let part = parts
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Db("no agreement".into()))?;
    Ok(build_with(st, &part.lines, &part.alloc))
}

/// [`build`] from an allocation of `st`'s active lines already made.
pub fn build_with(st: &State, lines: &[CostLine], alloc: &alloc::Allocation) -> Vec<Blob> {
    let ag = &st.versions[0].agreement;
    let mut meta = Meta {
        seq: st.entries,
        head: st.head.clone(),
        version_seq: st.versions[0].seq,
        rate_seqs: st.log.iter().filter(|e| e.kind == "rate").map(|e| e.seq).collect(),
        ..Meta::default()
    };
    // every month of the term has a bucket per category, empty or not, so a
    // rebuild overwrites every bucket an earlier state wrote
    let m0 = ag.start.month_index();
    let months = (ag.end.month_index() - m0 + 1) as usize;
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); ag.categories.len() * months];
    // totals by (party, category, month, site number): no string per line
    let mut site_no: HashMap<&str, u32, state::BuildFx> = HashMap::default();
    let mut sites: Vec<&str> = Vec::new();
    let mut totals: HashMap<(u16, u16, i32, u32), i128, state::BuildFx> = HashMap::default();
    for &i in &alloc.order {
        let l = &lines[i as usize];
        let next = sites.len() as u32;
        let site = *site_no.entry(l.site.as_str()).or_insert_with(|| {
            sites.push(l.site.as_str());
            next
        });
        let mi = l.date.month_index();
        for (p, &v) in alloc.row(i as usize).iter().enumerate() {
            if v != 0 {
                *totals.entry((p as u16, l.category as u16, mi, site)).or_insert(0) += v as i128;
            }
        }
        if let Some(d) = alloc.open_until[i as usize] {
            *meta.open.entry(d).or_insert(0) += 1;
        }
        meta.lines += 1;
        meta.total += l.amount as i128;
        buckets[l.category * months + (mi - m0) as usize].push(i);
    }
    meta.totals = totals
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|((p, c, mi, site), v)| ((p, c, mi, sites[site as usize].to_string()), v))
        .collect();
    let mut shards: Vec<Vec<(&str, u64)>> = vec![Vec::new(); SHARDS as usize];
    for l in &st.lines {
        shards[shard_of(&l.body.id) as usize].push((l.body.id.as_str(), l.seq));
    }
    let mut out = Vec::with_capacity(buckets.len() + shards.len() + 1);
    for (k, b) in buckets.iter().enumerate() {
        // amounts in the agreement currency: conversion happened when recorded
        let blob = encode_bucket(b.iter().map(|&i| &lines[i as usize]));
        out.push((bucket_key(k / months, m0 + (k % months) as i32), blob));
    }
    for (s, ids) in shards.iter().enumerate() {
        out.push((shard_key(s as u64), encode_shard(ids)));
    }
    out.push(("meta".to_string(), encode_meta(&meta)));
    out
}

/// Add (`sign` = 1) or remove (−1) one line's parts from the totals.
fn add_totals(meta: &mut Meta, category: usize, date: Date, site: &str, row: &[i64], sign: i128) {
    let mi = date.month_index();
    for (p, &v) in row.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let key = (p as u16, category as u16, mi, site.to_string());
        let e = meta.totals.entry(key).or_insert(0);
        *e += sign * v as i128;
        if *e == 0 {
            let key = (p as u16, category as u16, mi, site.to_string());
            meta.totals.remove(&key);
        }
    }
}

/// Write every blob sealed under `head`, the journal head it reflects
/// (inside the caller's write transaction).
pub fn put_all(backend: &mut dyn Backend, head: &str, blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
    for (k, v) in blobs {
        backend.cache_put(k, &seal(head, k, v))?;
    }
    Ok(())
}

/// The derived state's meta as stored (`None`: absent). A meta that fails
/// its seal, does not decode, or names another head than it was sealed
/// under is [`StoreError::Cache`].
pub fn meta(backend: &mut dyn Backend) -> Result<Option<Meta>, StoreError> {
    let Some((head, b)) = get_sealed(backend, "meta")? else {
        return Ok(None);
    };
    match decode_meta(&b) {
        Some(m) if m.head == head => Ok(Some(m)),
        _ => Err(damaged("meta")),
    }
}

/// The derived state's meta, when it reflects the journal's head now.
pub fn fresh_meta(backend: &mut dyn Backend) -> Result<Option<Meta>, StoreError> {
    let Some(meta) = meta(backend)? else {
        return Ok(None);
    };
    match backend.head()? {
        Some((seq, hash)) if seq == meta.seq && hash == meta.head => Ok(Some(meta)),
        _ => Ok(None),
    }
}

/// The agreement the derived state was built under.
pub fn agreement(backend: &mut dyn Backend, meta: &Meta) -> Result<(Agreement, String), StoreError> {
    let seq = meta.version_seq;
    let bytes = backend.entry(seq)?.ok_or_else(|| damaged("meta"))?;
    let e = journal::decode(&bytes).map_err(|e| StoreError::Corrupt { seq, message: e.0 })?;
    match e.body {
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
pub fn rates(backend: &mut dyn Backend, meta: &Meta) -> Result<costshare_core::costs::Rates, StoreError> {
    let mut rows = Vec::new();
    for &seq in &meta.rate_seqs {
        let bytes = backend.entry(seq)?.ok_or_else(|| damaged("meta"))?;
        let e = journal::decode(&bytes).map_err(|e| StoreError::Corrupt { seq, message: e.0 })?;
        if let Body::Rate { date, currency, rate } = e.body {
            let d = Date::parse(&date).ok_or_else(|| damaged("meta"))?;
            let r = costshare_core::num::parse_rational(&rate, 18).map_err(|_| damaged("meta"))?;
            rows.push((currency, d, r));
        }
    }
    costshare_core::costs::Rates::from_rows(rows).map_err(|_| damaged("meta"))
}

/// Report totals as the core's report groups: keys in `dims` order (party
/// index, fiscal-year label, category rank, site index, month index).
pub fn report(
    ag: &Agreement,
    meta: &Meta,
    dims: &[costshare_core::report::Dim],
) -> Result<Vec<costshare_core::report::Row>, costshare_core::report::TotalTooLarge> {
    use costshare_core::report::{KeyRule, Sites};
    let rule = KeyRule::new(ag, dims);
    let mut sites = Sites::default();
    let mut groups: HashMap<[i64; 5], i128, state::BuildFx> = HashMap::default();
    // fiscal years start on the first of a month: a month's first day stands for the month
    for ((p, c, mi, site), v) in &meta.totals {
        let key = rule.key(
            *p as usize,
            Date::first_of_month_index(*mi),
            *c as usize,
            sites.number(site),
        );
        *groups.entry(key).or_insert(0) += v;
    }
    groups.retain(|_, v| *v != 0);
    rule.rows(sites.names(), groups)
}

// --- late lines -----------------------------------------------------------

/// What taking new lines in changed.
#[derive(Clone, Debug, Default)]
pub struct LateImpact {
    /// Lines re-allocated (the new ones and those sharing their periods).
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
    let mut buckets: BTreeMap<(usize, i32), Vec<u8>> = BTreeMap::new();
    let mut dirty: std::collections::BTreeSet<(usize, i32)> = Default::default();
    let mut shards: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
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
        for m in m0..=m1 {
            if let std::collections::btree_map::Entry::Vacant(e) = buckets.entry((c, m)) {
                let key = bucket_key(c, m);
                e.insert(need(backend, &key)?);
            }
        }
        // the tied lines, in (date, id) order, without and with the new one
        let room: usize = (m0..=m1).filter_map(|m| bucket_len(&buckets[&(c, m)])).sum();
        let mut tied = Tied(Vec::with_capacity(room + 1));
        for m in m0..=m1 {
            decode_bucket_into(&buckets[&(c, m)], lo, hi, &mut tied.0).ok_or_else(|| damaged(&bucket_key(c, m)))?;
        }
        // the allocator sees one category (index 0 of a one-category view)
        let one = single_category(ag, c);
        let a0 = alloc::allocate_lines(&one, &tied, ag.start);
        let k = tied.0.len();
        tied.0.push(BLine {
            id: &line.id,
            date: line.date,
            amount: line.amount,
            quantity: line.quantity.clone(),
            site: &line.site,
        });
        let a1 = alloc::allocate_lines(&one, &tied, ag.start);
        impact.reallocated += tied.0.len();
        for (i, l) in tied.0[..k].iter().enumerate() {
            let (r0, r1) = (a0.row(i), a1.row(i));
            if r0 != r1 {
                add_totals(meta, c, l.date, l.site, r0, -1);
                add_totals(meta, c, l.date, l.site, r1, 1);
                let d = changed.entry(l.id.to_string()).or_insert_with(|| vec![0; r0.len()]);
                for ((x, a), b) in d.iter_mut().zip(r1).zip(r0) {
                    *x += a - b;
                }
            }
            if a0.open_until[i] != a1.open_until[i] {
                if let Some(d) = a0.open_until[i] {
                    let n = meta.open.entry(d).or_insert(0);
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        meta.open.remove(&d);
                    }
                }
                if let Some(d) = a1.open_until[i] {
                    *meta.open.entry(d).or_insert(0) += 1;
                }
            }
        }
        drop(tied);
        add_totals(meta, c, line.date, &line.site, a1.row(k), 1);
        if let Some(d) = a1.open_until[k] {
            *meta.open.entry(d).or_insert(0) += 1;
        }
        meta.lines += 1;
        meta.total += line.amount as i128;
        // into its bucket, in (date, id) order
        let m = line.date.month_index();
        let key = bucket_key(c, m);
        let stored = buckets.get_mut(&(c, m)).ok_or_else(|| damaged(&key))?;
        *stored = insert_into_bucket(stored, &line).ok_or_else(|| damaged(&key))?;
        dirty.insert((c, m));
        let s = shard_of(&line.id);
        if let std::collections::btree_map::Entry::Vacant(e) = shards.entry(s) {
            let key = shard_key(s);
            let b = need(backend, &key)?;
            e.insert(decode_shard(&b).ok_or_else(|| damaged(&key))?);
        }
        if let Some(sh) = shards.get_mut(&s) {
            sh.push((line.id, seq));
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
            blobs.push((bucket_key(c, m), b));
        }
    }
    for (s, ids) in &shards {
        blobs.push((shard_key(*s), encode_shard(ids)));
    }
    Ok((impact, blobs))
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

/// The entry that recorded `id`, if any (voided lines included).
pub fn recorded(backend: &mut dyn Backend, id: &str) -> Result<Option<(u64, LineBody)>, StoreError> {
    let key = shard_key(shard_of(id));
    let b = need(backend, &key)?;
    let ids = decode_shard(&b).ok_or_else(|| damaged(&key))?;
    let Some(&(_, seq)) = ids.iter().find(|(i, _)| i == id) else {
        return Ok(None);
    };
    let bytes = backend.entry(seq)?.ok_or_else(|| damaged(&key))?;
    let e = journal::decode(&bytes).map_err(|e| StoreError::Corrupt { seq, message: e.0 })?;
    match e.body {
        Body::Line(l) => Ok(Some((seq, l))),
        _ => Err(damaged(&key)),
    }
}
