//! The item store: what every protocol front end (text, meta, binary) calls.
//!
//! The types in this module are the contract between the protocol layer and
//! the storage engine. Their semantics are memcached 1.6.18's (see
//! `doc/protocol.txt` and `items.c` there); where this module says "as
//! memcached", a differential test against the real server checks it.
//!
//! * [`model::ModelStore`] is the reference model: a `Mutex<HashMap>` with
//!   the exact semantics and no eviction. It exists for differential tests
//!   (the engine must answer every sequence of operations the way the model
//!   does while nothing is evicted).
//! * [`Store`] is the engine the server runs on.
//!
//! # Time
//!
//! Times are memcached's: a [`Clock`] counts whole seconds since the store
//! was created ("relative time"); an expiry of `0` means never; a client
//! `exptime` is converted by [`Clock::rel_exptime`].
//!
//! # Items and their flags
//!
//! Besides key, value, client flags and CAS, an item carries what the meta
//! protocol reports: whether it was fetched before (`h`), when it was last
//! accessed (`l`, bumped at most once per [`ITEM_UPDATE_INTERVAL`] seconds,
//! as memcached), whether it is stale (`X`, set by `md .. I` or an `ms .. I`
//! with an older CAS) and whether a win token was already handed out (`Z`).

pub mod clock;
mod engine;
mod evict;
pub mod model;
mod ops;
mod segment;
mod sync;
mod table;

pub use clock::Clock;

/// An item's last-access time is bumped at most this often (seconds), as
/// memcached's `ITEM_UPDATE_INTERVAL`.
pub const ITEM_UPDATE_INTERVAL: u32 = 60;

/// Bytes an item is charged for its header when its size is checked against
/// the item size limit (`-I`). memcached's header is 48 bytes; using the same
/// figure keeps the largest storable value where memcached has it (a value of
/// exactly `-I` bytes is already too large).
pub const SIZE_CHECK_HEADER: usize = 48;

/// The longest key memcached accepts.
pub const KEY_MAX: usize = 250;

/// The engine the server runs on: a segment log indexed by a table whose
/// readers take no lock (see `engine.rs` for the design).
pub use engine::Store;

/// Limits of a store.
#[derive(Clone, Debug)]
pub struct Config {
    /// Every byte the store holds (item headers, keys, values, the table)
    /// stays within this many bytes (`-m`, in bytes).
    pub memory_limit: usize,
    /// The largest item: `SIZE_CHECK_HEADER + key + 1 + value + 2` must not
    /// exceed it (`-I`, in bytes).
    pub max_item_size: usize,
    /// How many threads will write concurrently (a hint: one write head
    /// each).
    pub writers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { memory_limit: 64 << 20, max_item_size: 1 << 20, writers: 1 }
    }
}

impl Config {
    /// Whether an item with a key of `key_len` bytes and a value of
    /// `value_len` bytes is within the item size limit.
    pub fn fits(&self, key_len: usize, value_len: usize) -> bool {
        SIZE_CHECK_HEADER.saturating_add(key_len).saturating_add(1).saturating_add(value_len).saturating_add(2)
            <= self.max_item_size
    }
}

/// How a store request treats an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store whatever is there.
    Set,
    /// Store only if no live item has the key (an existing one is bumped).
    Add,
    /// Store only if a live item has the key.
    Replace,
    /// Append the value to the existing item's (flags and expiry kept).
    Append,
    /// Prepend the value to the existing item's (flags and expiry kept).
    Prepend,
}

/// One store request (`set add replace append prepend cas`, `ms`, binary
/// stores).
#[derive(Clone, Copy, Debug)]
pub struct StoreReq<'a> {
    /// The key (1..=250 bytes; the protocol layer has validated it).
    pub key: &'a [u8],
    /// The value, without the trailing `\r\n`.
    pub value: &'a [u8],
    /// Client flags (ignored by append and prepend).
    pub flags: u32,
    /// Expiry as the client sent it (see [`Clock::rel_exptime`]); ignored by
    /// append and prepend.
    pub exptime: i64,
    /// What to do with an existing item.
    pub mode: Mode,
    /// Compare-and-swap: store only if the item exists and its CAS is this
    /// (`cas` command, `ms C`, binary CAS field when non-zero). A missing
    /// item answers [`StoreOutcome::NotFound`], a different CAS
    /// [`StoreOutcome::Exists`].
    pub cas: Option<u64>,
    /// `ms I`: with `cas`, a CAS *older* than the item's is accepted and the
    /// new item is marked stale.
    pub invalidate: bool,
    /// `ms MA/MP N<ttl>`: append/prepend to a missing item creates it with
    /// this expiry.
    pub vivify: Option<i64>,
}

impl<'a> StoreReq<'a> {
    /// A plain request with the given mode, flags and expiry.
    pub fn new(mode: Mode, key: &'a [u8], value: &'a [u8], flags: u32, exptime: i64) -> Self {
        StoreReq { key, value, flags, exptime, mode, cas: None, invalidate: false, vivify: None }
    }
}

/// What a store request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored; the new item's CAS.
    Stored {
        /// The new item's CAS unique.
        cas: u64,
    },
    /// The mode's condition failed (`NOT_STORED`).
    NotStored,
    /// CAS mismatch (`EXISTS`).
    Exists,
    /// CAS on a missing item (`NOT_FOUND`).
    NotFound,
    /// The item is over the size limit (`SERVER_ERROR object too large for
    /// cache`). As memcached, a `Set` that fails this way also removes the
    /// old item.
    TooLarge,
    /// No memory could be found for it, even after evicting
    /// (`SERVER_ERROR out of memory storing object`).
    NoMemory,
}

/// Options of a retrieval (`get gets gat gats touch`, `mg`, binary gets).
#[derive(Clone, Copy, Debug, Default)]
pub struct GetReq {
    /// gat / `mg T`: set the expiry of a hit (client form).
    pub touch: Option<i64>,
    /// `mg N<ttl>`: on a miss create an empty stub item with this expiry and
    /// win its token.
    pub vivify: Option<i64>,
    /// `mg R<secs>`: win the recache token if the remaining TTL is below this.
    pub recache: Option<u32>,
    /// `mg u`: do not mark the item fetched, do not bump its access time.
    pub no_bump: bool,
}

/// A hit, as the callback of [`Store::get`] sees it. Borrowed: copy what you
/// need inside the callback.
#[derive(Debug)]
pub struct Hit<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value, without `\r\n`.
    pub value: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// CAS unique: see [`Hit::cas`] (derived only when asked for).
    pub(crate) cas: HitCas<'a>,
    /// Remaining time to live in seconds, `-1` for none (after a touch: the
    /// new one).
    pub ttl: i64,
    /// Seconds since the last access, as it was before this access (`l`).
    pub last_access: u32,
    /// Whether it was fetched before this access (`h`).
    pub fetched: bool,
    /// Stale (`X`).
    pub stale: bool,
    /// This request won the recache token (`W`).
    pub win: bool,
    /// Another request already holds the token (`Z`).
    pub token_taken: bool,
}

impl Hit<'_> {
    /// The item's CAS unique (never 0). The engine stores none for most
    /// items and derives it from where the item lies (see `segment.rs`),
    /// so a caller that does not need it pays nothing for it.
    #[inline]
    pub fn cas(&self) -> u64 {
        match self.cas {
            HitCas::Known(cas) => cas,
            HitCas::At { arena, loc, item } => arena.cas(loc, &item),
        }
    }
}

/// Where a hit's CAS unique comes from.
#[derive(Clone, Copy)]
pub(crate) enum HitCas<'a> {
    /// Known already (the model; a stub the get just created).
    Known(u64),
    /// The engine's item `item` at `loc`, read inside the SMR section the
    /// hit's lifetime is bound to.
    At { arena: &'a segment::Arena, loc: segment::Loc, item: segment::Item<'a> },
}

impl std::fmt::Debug for HitCas<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cas = match *self {
            HitCas::Known(cas) => cas,
            HitCas::At { arena, loc, item } => arena.cas(loc, &item),
        };
        write!(f, "{cas}")
    }
}

/// Options of a delete (`delete`, `md`, binary delete).
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteReq {
    /// Only if the item's CAS is this (`md C`, binary CAS field).
    pub cas: Option<u64>,
    /// `md I`: instead of removing, mark stale and give a new CAS.
    pub invalidate: bool,
    /// `md I T<ttl>`: the stale item's new expiry (client form).
    pub ttl: Option<i64>,
}

/// What a delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Removed (or marked stale).
    Deleted,
    /// No live item has the key.
    NotFound,
    /// CAS mismatch.
    Exists,
}

/// An incr/decr request (`incr decr`, `ma`, binary incr/decr).
#[derive(Clone, Copy, Debug)]
pub struct ArithReq<'a> {
    /// The key.
    pub key: &'a [u8],
    /// `true` for incr (wraps at 2^64), `false` for decr (stops at 0).
    pub incr: bool,
    /// The delta.
    pub delta: u64,
    /// Only if the item's CAS is this.
    pub cas: Option<u64>,
    /// On a miss create the item with `(initial value, client exptime)`
    /// (binary incr with an expiry other than `0xffffffff`, `ma N J`). The
    /// created item holds the initial value; the delta is not applied.
    pub vivify: Option<(u64, i64)>,
    /// `ma T`: the new expiry on success (client form).
    pub ttl: Option<i64>,
}

impl<'a> ArithReq<'a> {
    /// A plain incr or decr.
    pub fn new(key: &'a [u8], incr: bool, delta: u64) -> Self {
        ArithReq { key, incr, delta, cas: None, vivify: None, ttl: None }
    }
}

/// What an incr/decr did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new number, the item's new CAS and its remaining TTL (`-1` for
    /// none). As memcached, a result shorter than the stored digits is
    /// stored padded with spaces to the old length.
    Value {
        /// The new value.
        value: u64,
        /// The item's new CAS.
        cas: u64,
        /// Remaining TTL, `-1` for none.
        ttl: i64,
    },
    /// No live item (and no vivify).
    NotFound,
    /// The value is not a decimal number below 2^64 (`CLIENT_ERROR cannot
    /// increment or decrement non-numeric value`).
    NonNumeric,
    /// CAS mismatch.
    Exists,
    /// No memory for the new value (memcached's `SERVER_ERROR out of
    /// memory`; binary status `0x82`).
    NoMemory,
}

/// The store's own counters (the protocol layer counts commands).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live items (`curr_items`).
    pub curr_items: u64,
    /// Items stored since start (`total_items`).
    pub total_items: u64,
    /// Bytes of the live items, as memcached counts them (`bytes`).
    pub bytes: u64,
    /// Live items removed to make room (`evictions`).
    pub evictions: u64,
    /// Expired items whose memory was reused or swept (`reclaimed`).
    pub reclaimed: u64,
    /// Evicted items that were never fetched (`evicted_unfetched`).
    pub evicted_unfetched: u64,
    /// Expired items that were never fetched (`expired_unfetched`).
    pub expired_unfetched: u64,
    /// Gets that found an expired item (`get_expired`).
    pub get_expired: u64,
    /// Gets that found an item invalidated by `flush_all` (`get_flushed`).
    pub get_flushed: u64,
    /// Bytes the store holds against its limit (headers, values, table).
    pub used_bytes: u64,
    /// The limit (`limit_maxbytes`).
    pub limit_bytes: u64,
}

/// Parses a stored value as memcached's `safe_strtoull` does: optional
/// leading whitespace, decimal digits, then only whitespace; no sign; below
/// 2^64. `None` means "non-numeric".
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < value.len() && value[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < value.len() && value[i] == b'+' {
        i += 1;
    }
    let start = i;
    let mut n: u64 = 0;
    while i < value.len() && value[i].is_ascii_digit() {
        n = n.checked_mul(10)?.checked_add(u64::from(value[i] - b'0'))?;
        i += 1;
    }
    if i == start {
        return None;
    }
    if value[i..].iter().all(|b| b.is_ascii_whitespace()) {
        Some(n)
    } else {
        None
    }
}

/// The stored form of an incr/decr result: the digits, padded with spaces to
/// `old_len` when they are shorter (memcached rewrites the item in place).
pub fn counter_bytes(n: u64, old_len: usize) -> Vec<u8> {
    let mut v = n.to_string().into_bytes();
    if v.len() < old_len {
        v.resize(old_len, b' ');
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_like_strtoull() {
        assert_eq!(parse_counter(b"12"), Some(12));
        assert_eq!(parse_counter(b" 12  "), Some(12));
        assert_eq!(parse_counter(b"+7"), Some(7));
        assert_eq!(parse_counter(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_counter(b"18446744073709551616"), None);
        assert_eq!(parse_counter(b"-1"), None);
        assert_eq!(parse_counter(b""), None);
        assert_eq!(parse_counter(b"12a"), None);
        assert_eq!(parse_counter(b"a"), None);
    }

    #[test]
    fn shorter_results_are_padded() {
        assert_eq!(counter_bytes(9, 2), b"9 ");
        assert_eq!(counter_bytes(100, 2), b"100");
    }

    #[test]
    fn size_limit_counts_a_header() {
        let c = Config { max_item_size: 1 << 20, ..Config::default() };
        assert!(!c.fits(1, 1 << 20));
        assert!(c.fits(10, 1000));
    }
}
