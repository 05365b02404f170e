//! The engine: items in a segment log, indexed by a lock-free-read table.
//!
//! # Problem
//!
//! A cache server's store is read far more than written, by every worker at
//! once, and must keep every byte it holds under `-m`. memcached pays for
//! this with a lock per hash bucket on every access and a reference count
//! written by every `get` (two locked instructions on a shared line for a hot
//! key), ~56 bytes of header per item and slab-class rounding.
//!
//! # Mechanism
//!
//! * **Index** (`table.rs`): 64 shards of cache-line buckets (twelve 4-byte
//!   slots, two control words of twelve 8-bit tags and an overflow count). A
//!   slot holds an item's location in units of the arena's alignment (4 bytes
//!   up to 16 GiB of arena, coarser beyond; `segment.rs`). A `get` takes no
//!   lock and stores nothing but rate-limited recency hints: inside a
//!   percore-smr section it hashes the key ([`KeyHasher`]: foldhash seeded
//!   from the OS, so clients cannot aim keys at one bucket), loads one
//!   bucket line, compares tags, loads the slot, compares the key and hands
//!   the callback a slice of the value where it lies. Writers lock the shard
//!   (a spin lock held for a few hundred nanoseconds, never across anything
//!   that sleeps). A shard grows by publishing a twice larger array; the old
//!   one is freed after an SMR grace period, so readers never wait for it.
//! * **Memory** (`segment.rs`): a log of fixed-size segments (1 MiB, or the
//!   item size limit when that is larger; smaller for tiny `-m`), as Pelikan's
//!   Segcache. A writer appends its item with a bump pointer into the open
//!   segment of its *head* (one head per expected writer thread), then links
//!   it into the table. Items are immutable once linked: append, incr, CAS
//!   and `md I` write a new item and swap the slot under the shard lock, so a
//!   reader can never see a torn value. Only the expiry (touch), the recency
//!   hints and the win-token bit are atomics in the header.
//! * **Eviction and compaction** (`evict.rs`): when a writer needs a segment
//!   and the budget has none left, one sealed segment is *cleaned*: every
//!   item still linked is either copied forward into the cleaner's own open
//!   segment (the slot is swapped, readers of the old copy finish on it) or
//!   unlinked. If some sealed segment is at most half live (overwrites and
//!   deletes leave dead bytes) the emptiest one is compacted: all its live
//!   items are copied, none is lost. Otherwise the oldest sealed segment is
//!   evicted FIFO, with a second chance for items read since they were
//!   written or last moved (up to a quarter segment per clean): FIFO with
//!   reinsertion approximates LRU as well as CLOCK does (Segcache, S3-FIFO
//!   report the same) while costing readers only a byte stored when it
//!   changes. The cleaned segment is reused only after an SMR grace period.
//! * **Operations** (`ops.rs`): each is a loop of passes under the key's
//!   shard lock inside a section; a pass either finishes or asks for a
//!   reservation of the exact size it needs, which is made between passes
//!   (outside the section: getting a segment may wait for a grace period),
//!   and the next pass re-decides from the current item.
//! * **CAS uniques** (`segment.rs`): derived, not stored. An item a head
//!   writes has the unique `gen << cas_shift | offset / unit`, `gen` its
//!   segment's generation, drawn from [`Generations`] once when the
//!   head opens the segment (no counter is touched per store); a reader
//!   derives it only where a CAS is needed (`gets`, `gats`, `mg c`, binary
//!   replies, CAS compares). The cleaner's copies store the unique they had
//!   (memcached keeps CAS across its slab mover); clients never set one
//!   (memcached 1.6.18 has no meta `E` flag). One head's uniques grow with
//!   time, as memcached's counter; across heads they follow the order in
//!   which segments were opened, not stores (`ms I`'s "older CAS" compares
//!   uniques of one key, which one writer usually writes).
//! * **Expiry**: lazily, when any operation finds an expired or flushed item
//!   (it unlinks it under the shard lock and counts it as memcached does);
//!   [`Store::sweep`] walks sealed segments in the background, unlinks what
//!   expired and frees segments with nothing live left.
//!
//! ```text
//!   get(key) ──hash──> shard ──> bucket line [tags|slots] ──loc──┐
//!                                                               v
//!   segments:  [ sealed | sealed | ... | open (head 0) | open (cleaner) | free ... ]
//!               ^ FIFO victim / emptiest          ^ bump pointer
//! ```
//!
//! # Invariants
//!
//! 1. A location in a table slot names a completely written item (the slot
//!    store is Release, after the item's bytes).
//! 2. A segment's bytes are rewritten only after it was cleaned (no slot
//!    names it any more) *and* an SMR goal taken after the cleaning expired:
//!    a reader that found a location is in a section that keeps it valid.
//! 3. A segment is cleaned only when sealed and with no reservation in
//!    flight, so its bytes up to the bump pointer are items or fillers.
//! 4. `Budget::used` (table arrays, current and retired, plus segments ever
//!    handed out) never exceeds `Config::memory_limit`.
//! 5. Lock order: head → cleaner → {sealed list, free list, one shard}. A
//!    shard lock holder takes no other lock, and nobody waits for a grace
//!    period inside a section or while holding a shard lock.
//! 6. A head's segment gets its generation before the head hands out any
//!    reservation in it, and keeps it until it is reused (invariant 2), so
//!    a derived CAS unique is the same for every reader of the item; a head
//!    whose generation is older than the last flush's opens a new one
//!    before it reserves (`Generations`, modelled under loom).
//!
//! # Overhead per item
//!
//! Where the bytes of 1,000,000 items of 32-byte keys and 100-byte values go
//! (`-t 2 -m 1024`, release, this 2-CPU machine, 2026-12-03; resident sizes
//! from `/proc/<pid>/smaps`, the index from its arrays' sizes):
//!
//! | what | bytes per item | at 1M items |
//! | --- | --- | --- |
//! | key and value | 132 | 125.9 MiB |
//! | item header (`segment.rs`; flags 0, CAS derived) | 14 | 13.4 MiB |
//! | padding to the unit (4 bytes up to 16 GiB of arena) | 2 here (1.5 on average) | 1.9 MiB |
//! | segment tails (~100 B per 1 MiB segment) | 0.02 | 0.02 MiB |
//! | index: 64-byte buckets of 12 4-byte slots | 8.4 (at 64% load) | 8 MiB |
//! | overhead, index included | 24.4 | 23.3 MiB |
//!
//! Non-zero client flags add 4 bytes to an item, and a copy the cleaner
//! made 8 (its stored CAS). The header was 28 bytes (8 CAS, 4 expiry, 4
//! access time, 4 flags, 4 length, four one-byte fields) on 8-byte
//! alignment, then 24 (a 56-bit CAS sharing its word with the key's
//! length). It is 14 because the CAS is derived from where the item lies
//! (see `segment.rs`), the flags are stored only when non-zero (memcached's
//! `ITEM_CFLAGS`), `fetched` shares the access time's word (30 bits of
//! seconds, 34 years), the token and stale bits share the value length's
//! (30 bits: items are at most 1 GiB), and the key's length and the two
//! presence bits take a byte each; each atomic word keeps one kind of
//! writer (see `segment.rs`), so no reader needs an RMW. Derived uniques
//! repeat only after `2^(64 - cas_shift)` segment openings (2^46 with 1
//! MiB segments: 2,200 years at a thousand a second).
//!
//! The index was 16.8 bytes an item with 7 slots of 8-byte locations a
//! bucket (a shard doubled past 5/7 of its slots: 54% load at 1M items).
//! With 4-byte locations (in units of the arena's alignment) a line holds 12
//! slots, and a shard doubles past 9 of them: the 8 MiB table holds up to
//! 1.18M items, and at 1M it is at 64% load, 8.4 bytes an item (between
//! 5.6 and 11.2 as the table fills and doubles). The issue's ~16 bytes all
//! told would need the header near 8 bytes (Segcache keeps expiry per
//! segment): XXX: issue 11, 8 bytes short, a change of memcached's exact
//! per-item expiry. memcached 1.6.18 takes ~249 bytes an item for the same
//! load (a 48-byte header plus CAS, slab-class rounding, its hash table).
//!
//! The index starts at 16 buckets a shard: a sparse table costs every read a
//! cache and TLB miss (a 32 MiB table for 10,000 keys made uniform gets 3x
//! slower than a right-sized one). It grows into a reserve charged to the
//! budget up front (at most a sixteenth of `memory_limit`), so segments never
//! take the memory the index needs; past the reserve a grow asks the budget,
//! and when segments hold it all, the refused grow is recorded and the next
//! writer that needs a segment moves cleaned segments' bytes to the index
//! (their pages returned with `madvise`). Until then an insert into a full
//! home bucket evicts one of its items (counted as an eviction).
//!
//! # References
//!
//! Yang et al., "Segcache: a memory-efficient and scalable in-memory
//! key-value cache for small objects", NSDI 2021; Folly's F14 hash tables;
//! memcached 1.6 `items.c`; FreeBSD `subr_smr.c` (via percore-smr).

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use percore::cpu::Counter;

use super::segment::{item_size, unit_for, Arena, Item, Loc, HAS_CAS, HAS_FLAGS};
use super::sync::{AtomicU64 as AtomicU64Shim, Seq, Smr};
use super::table::{Budget, Locked, Pos, Table, LOAD_PER_BUCKET};
use super::{Clock, Config, StoreStats, KEY_MAX};
use crate::Error;

/// The largest segment size the engine picks for itself.
const SEGMENT_MAX: usize = 1 << 20;
/// The smallest.
const SEGMENT_MIN: usize = 64 << 10;
/// Items per byte of `memory_limit` the initial table is sized for.
const BYTES_PER_EXPECTED_ITEM: usize = 256;

/// Counters of [`StoreStats`] (sharded: writers on different threads do not
/// share a line).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) total_items: Counter,
    pub(super) linked: Counter,
    pub(super) unlinked: Counter,
    pub(super) linked_bytes: Counter,
    pub(super) unlinked_bytes: Counter,
    pub(super) evictions: Counter,
    pub(super) reclaimed: Counter,
    pub(super) evicted_unfetched: Counter,
    pub(super) expired_unfetched: Counter,
    pub(super) get_expired: Counter,
    pub(super) get_flushed: Counter,
}

/// A head's open segment.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub(super) seg: Option<u32>,
    pub(super) off: usize,
    /// The open segment's generation (its `SegMeta::gen`).
    pub(super) gen: u64,
}

/// The cleaner's state (behind `Store::cleaner`).
#[derive(Debug, Default)]
pub(super) struct Cleaner {
    /// The segment live items are copied into.
    pub(super) dest: Option<u32>,
    pub(super) off: usize,
    /// Where the next sweep starts in the sealed list.
    pub(super) cursor: usize,
}

/// Segments ready for reuse.
#[derive(Debug, Default)]
pub(super) struct FreeList {
    /// Cleaned segments and the goal after which no reader can see them.
    pub(super) cleaned: VecDeque<(u32, Seq)>,
    /// Segments never handed out yet: `fresh..count`.
    pub(super) fresh: usize,
    /// Segments whose memory was given back to the budget (for the index);
    /// handed out again, before fresh ones, when the budget allows.
    pub(super) returned: Vec<u32>,
}

/// Space handed out by a head, not yet filled and published.
#[derive(Debug)]
pub(super) struct Resv {
    pub(super) loc: Loc,
    pub(super) len: usize,
}

/// No segment could be found for an item.
#[derive(Debug)]
pub(super) struct NoMemory;

/// Why a found item does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dead {
    Flushed,
    Expired,
}

/// The keys' hash: foldhash (quality variant), seeded per store from the
/// OS's random source.
///
/// SipHash-1-3 (std's `RandomState`) took ~270 of the ~3,600 user-space
/// instructions a request cost the server (callgrind, 32-byte keys);
/// foldhash takes a few dozen. foldhash calls itself "minimally
/// DoS-resistant": with a secret seed no input list collides for every
/// instance, but it makes no cryptographic promise. That suffices here
/// because collisions cannot make the table slow, only full: probing is
/// bounded (`MAX_PROBE` buckets) and an insert into a full neighbourhood
/// evicts one of its items, so a client that found colliding keys could
/// only evict what shares their buckets (what filling `-m` evicts anyway),
/// never make an operation take longer. The seed is 64 bits drawn from
/// std's `RandomState` (the OS's random source), not foldhash's default
/// (address-space layout and the time).
pub(super) struct KeyHasher {
    per_hasher: u64,
    shared: foldhash::SharedSeed,
}

impl KeyHasher {
    fn new() -> Self {
        // NOTE: std's `RandomState` keys come from the OS (getrandom); two
        // of its hashes give independent 64-bit seeds.
        let os = RandomState::new();
        KeyHasher { per_hasher: os.hash_one(1u8), shared: foldhash::SharedSeed::from_u64(os.hash_one(2u8)) }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        let mut h = foldhash::quality::FoldHasher::with_seed(self.per_hasher, &self.shared);
        h.write(key);
        h.finish()
    }
}

/// Segment generations (`segment.rs`'s derived CAS uniques) and
/// `flush_all`'s: the protocol the `loom_tests` module below models.
///
/// Who touches what: a head draws a generation ([`open`](Self::open)) under
/// its mutex when it opens a segment, and asks before each reservation
/// whether a flush made its segment's generation old
/// ([`flushed`](Self::flushed)); `flush_all` reads the next generation and
/// publishes it as the flush's ([`next`](Self::next), [`flush`](Self::flush)).
pub(super) struct Generations {
    /// The next generation a head takes (from 1: derived uniques are never 0).
    next: AtomicU64Shim,
    /// The first generation the last flush spared.
    flushed: AtomicU64Shim,
}

impl Generations {
    pub(super) fn new() -> Self {
        Generations { next: AtomicU64Shim::new(1), flushed: AtomicU64Shim::new(0) }
    }

    /// A fresh generation, for a segment a head opens.
    #[inline]
    pub(super) fn open(&self) -> u64 {
        // ORDERING: generations only have to be unique (one RMW counter) and
        // follow a flush that reads the counter after this (coherence of the
        // one location: see `next`).
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The generation the next `open` will give at least: a segment opened
    /// before this read has an older one.
    #[inline]
    pub(super) fn next(&self) -> u64 {
        // ORDERING: as memcached reads `get_cas_id()`, unordered with
        // concurrent stores; an `open` that happened before this load is
        // seen by it (coherence), a racing one may or may not be.
        self.next.load(Ordering::Relaxed)
    }

    /// Publishes a flush of every generation below `gen` (taken from
    /// `next`, after the caller stored the flush's `oldest_cas`).
    #[inline]
    pub(super) fn flush(&self, gen: u64) {
        // ORDERING: Release pairs with the Acquire load in `flushed`: a head
        // that sees the flush sees the caller's `oldest_cas` too. Max: of
        // two racing flushes the later generation wins.
        self.flushed.fetch_max(gen, Ordering::Release);
    }

    /// Whether segments of generation `gen` hold only flushed items (a head
    /// must open another before it reserves).
    #[inline]
    pub(super) fn flushed(&self, gen: u64) -> bool {
        // ORDERING: see `flush`.
        gen < self.flushed.load(Ordering::Acquire)
    }

    /// The next generation (tests).
    #[cfg(all(test, not(feature = "loom")))]
    pub(super) fn peek(&self) -> u64 {
        self.next()
    }
}

/// The segment-log engine (see the module docs).
///
/// ```
/// use percore_kv::store::{Config, GetReq, Mode, Store, StoreOutcome, StoreReq};
///
/// let store = Store::new(Config::default()).unwrap();
/// let out = store.store(&StoreReq::new(Mode::Set, b"k", b"v", 7, 0));
/// assert!(matches!(out, StoreOutcome::Stored { .. }));
/// let got = store.get(b"k", &GetReq::default(), |hit| (hit.value.to_vec(), hit.flags));
/// assert_eq!(got, Some((b"v".to_vec(), 7)));
/// ```
pub struct Store {
    pub(super) cfg: Config,
    pub(super) clock: Clock,
    pub(super) smr: Smr,
    hasher: KeyHasher,
    pub(super) table: Table,
    pub(super) arena: Arena,
    pub(super) budget: Arc<Budget>,
    /// One per expected writer thread (picked by `thread_index`).
    pub(super) heads: Box<[Mutex<Head>]>,
    pub(super) cleaner: Mutex<Cleaner>,
    /// Sealed segments, oldest first. Removed from only under `cleaner`.
    pub(super) sealed: Mutex<VecDeque<u32>>,
    pub(super) free: Mutex<FreeList>,
    /// Segment generations and the last flush's (see [`Generations`]).
    pub(super) gens: Generations,
    /// memcached's `settings.oldest_live` / `oldest_cas` (`flush_all`).
    oldest_live: AtomicU32,
    oldest_cas: AtomicU64,
    pub(super) stats: Arc<Counters>,
    /// The counters in percore's stats tree as `kv.store.*` (`stats
    /// percore`); removed when the store is dropped.
    _registration: percore::cpu::stats::Registration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("segment_size", &self.arena.size)
            .field("segments", &self.arena.count)
            .field("used_bytes", &self.budget.used())
            .finish()
    }
}

fn register_stats(stats: &Arc<Counters>, budget: &Arc<Budget>) -> percore::cpu::stats::Registration {
    let (s, b) = (stats.clone(), budget.clone());
    percore::cpu::stats::register("kv.store", move |emit| {
        emit("curr_items", s.linked.sum().wrapping_sub(s.unlinked.sum()));
        emit("total_items", s.total_items.sum());
        emit("evictions", s.evictions.sum());
        emit("evicted_unfetched", s.evicted_unfetched.sum());
        emit("reclaimed", s.reclaimed.sum());
        emit("used_bytes", b.used() as u64);
    })
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a store divides its memory limit: segments, and the index's first
/// size and reserve (no memory taken yet; see [`Store::new`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub(super) seg_size: usize,
    /// Segments in the arena.
    pub(super) count: usize,
    /// Buckets a shard of the index starts with.
    pub(super) buckets: usize,
    /// Bytes charged up front for the index's grows.
    pub(super) reserve: usize,
}

impl Plan {
    pub(super) fn new(cfg: &Config) -> Result<Plan, Error> {
        let writers = cfg.writers.max(1);
        if cfg.max_item_size > 1 << 30 {
            return Err(Error::Config(format!("item size limit {} is above 1 GiB", cfg.max_item_size)));
        }
        // Items are aligned to the arena's unit (4 bytes up to 16 GiB, see
        // `segment.rs`), and segments must be multiples of it; the arena is
        // at most `memory_limit`, so its unit is at most this one.
        let unit = unit_for(cfg.memory_limit).max(8);
        let largest = cfg.max_item_size.max(item_size(KEY_MAX, 8, HAS_FLAGS | HAS_CAS, unit)).next_multiple_of(unit);
        let base = (cfg.memory_limit / 64).clamp(SEGMENT_MIN, SEGMENT_MAX);
        let seg_size = largest.max(1 << base.ilog2());
        // The index starts at 16 buckets a shard and grows into a reserve
        // sized for `memory_limit / BYTES_PER_EXPECTED_ITEM` items, at most a
        // sixteenth of the limit, charged now so that segments cannot take
        // the memory the index will need.
        let buckets = 16;
        let mut full = ((cfg.memory_limit / BYTES_PER_EXPECTED_ITEM / LOAD_PER_BUCKET) >> 6).max(buckets);
        while full > buckets && Table::bytes_for(full) > cfg.memory_limit / 16 {
            full /= 2;
        }
        let reserve = Table::bytes_for(full).saturating_sub(Table::bytes_for(buckets)) * 2;
        let reserve = reserve.min(cfg.memory_limit / 16);
        let table_bytes = Table::bytes_for(buckets) + reserve;
        let count = cfg.memory_limit.saturating_sub(table_bytes) / seg_size;
        if count < writers + 3 {
            let need = table_bytes + (writers + 3) * seg_size;
            return Err(Error::Config(format!(
                "memory limit {} is too small: {writers} writers with {seg_size}-byte segments need at least {need} bytes",
                cfg.memory_limit
            )));
        }
        Ok(Plan { seg_size, count, buckets, reserve })
    }
}

impl Store {
    /// An engine with these limits.
    ///
    /// Fails with [`Error::Config`] when the memory limit cannot hold the
    /// index and at least `writers + 3` segments (one open per writer, one
    /// for the cleaner, two to rotate through grace periods), or when the
    /// item size limit is above 1 GiB.
    pub fn new(cfg: Config) -> Result<Self, Error> {
        let Plan { seg_size, count, buckets, reserve } = Plan::new(&cfg)?;
        let writers = cfg.writers.max(1);
        let smr = Smr::new("kv").map_err(|e| Error::Runtime(e.to_string()))?;
        let budget = Arc::new(Budget::new(cfg.memory_limit));
        let table = Table::new(smr.clone(), budget.clone(), buckets, reserve)
            .ok_or_else(|| Error::Config("memory limit too small for the index".into()))?;
        let arena = Arena::new(seg_size, count)
            .ok_or_else(|| Error::Config(format!("cannot reserve {} bytes", seg_size * count)))?;
        let stats = Arc::new(Counters::default());
        let registration = register_stats(&stats, &budget);
        // The cleaner's first destination (see `clean_one`): charged now.
        if !budget.try_reserve(seg_size) {
            return Err(Error::Config("memory limit too small for the cleaner's segment".into()));
        }
        Ok(Store {
            clock: Clock::new(),
            smr,
            hasher: KeyHasher::new(),
            table,
            arena,
            budget,
            heads: (0..writers).map(|_| Mutex::new(Head::default())).collect(),
            cleaner: Mutex::new(Cleaner { dest: Some(0), off: 0, cursor: 0 }),
            sealed: Mutex::new(VecDeque::new()),
            free: Mutex::new(FreeList { cleaned: VecDeque::new(), fresh: 1, returned: Vec::new() }),
            gens: Generations::new(),
            oldest_live: AtomicU32::new(0),
            oldest_cas: AtomicU64::new(0),
            _registration: registration,
            stats,
            cfg,
        })
    }

    /// The limits it was made with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Its clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    #[inline]
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash(key)
    }

    /// Gives segment `seg`, just opened by the head `hd` (whose mutex the
    /// caller holds), a fresh generation: the uniques of the items it will
    /// hold (see `segment.rs`). Once per segment opened, not per store.
    pub(super) fn open_gen(&self, hd: &mut Head, seg: u32) {
        let gen = self.gens.open();
        // ORDERING: readers of the segment's items get it after the items'
        // bytes: the head mutex orders it before every reservation in the
        // segment, and the Release slot store of an item after those.
        self.arena.meta[seg as usize].gen.store(gen, Ordering::Relaxed);
        hd.gen = gen;
    }

    /// Whether the head's open segment is of a generation older than the
    /// last `flush_all`: its items would be flushed, so the head opens
    /// another before it reserves.
    #[inline]
    pub(super) fn flushed_gen(&self, gen: u64) -> bool {
        self.gens.flushed(gen)
    }

    /// Whether `it`, the item at `loc`, is flushed or expired at `now`
    /// (memcached's order).
    #[inline]
    pub(super) fn dead(&self, it: &Item<'_>, loc: Loc, now: u32) -> Option<Dead> {
        // ORDERING: `flush_all` is not ordered with concurrent operations
        // (memcached's settings fields are plain reads too).
        let oldest_live = self.oldest_live.load(Ordering::Relaxed);
        if oldest_live != 0 && oldest_live <= now {
            // ORDERING: as above.
            let oldest_cas = self.oldest_cas.load(Ordering::Relaxed);
            if it.recency().0 <= oldest_live || (oldest_cas != 0 && self.arena.cas(loc, it) < oldest_cas) {
                return Some(Dead::Flushed);
            }
        }
        let exp = it.exp();
        if exp != 0 && exp <= now {
            Some(Dead::Expired)
        } else {
            None
        }
    }

    /// Unlinks the item at `pos`/`loc` (hash `h`) and accounts for it.
    pub(super) fn unlink(&self, sh: &mut Locked<'_>, h: u64, pos: Pos, loc: Loc) {
        // SAFETY: `loc` is linked (the caller found it under the lock), so its
        // segment is not reused while we read its header (invariant 2).
        let it = unsafe { self.arena.item(loc) };
        sh.remove(h, pos);
        // ORDERING: a count read by the cleaner to choose victims, and
        // compared with 0 only after the cleaner unlinked everything itself.
        self.arena.meta[self.arena.seg_of(loc) as usize].live.fetch_sub(it.kept_size(), Ordering::Relaxed);
        self.stats.unlinked.inc();
        self.stats.unlinked_bytes.add(it.mc_size() as u64);
    }

    /// Links the item at `loc` for hash `h`, replacing `old` (or inserting,
    /// evicting a neighbour when the table may not grow).
    pub(super) fn link(&self, sh: &mut Locked<'_>, h: u64, old: Option<(Pos, Loc)>, loc: Loc) {
        // SAFETY: `loc` is the caller's freshly written item.
        let it = unsafe { self.arena.item(loc) };
        // ORDERING: see `unlink`.
        self.arena.meta[self.arena.seg_of(loc) as usize].live.fetch_add(it.kept_size(), Ordering::Relaxed);
        self.stats.linked.inc();
        self.stats.linked_bytes.add(it.mc_size() as u64);
        match old {
            Some((pos, old_loc)) => {
                sh.replace(pos, loc);
                // SAFETY: `old_loc` was linked until now, under this lock.
                let old = unsafe { self.arena.item(old_loc) };
                // ORDERING: see `unlink`.
                self.arena.meta[self.arena.seg_of(old_loc) as usize].live.fetch_sub(old.kept_size(), Ordering::Relaxed);
                self.stats.unlinked.inc();
                self.stats.unlinked_bytes.add(old.mc_size() as u64);
            }
            None => {
                let hash_of = |l: Loc| {
                    // SAFETY: every location in the table is linked (invariant 2).
                    self.hash(unsafe { self.arena.item(l) }.key())
                };
                while !sh.insert(h, loc, hash_of) {
                    let Some((vpos, vloc)) = sh.victim(h) else { break };
                    // SAFETY: as in `hash_of`.
                    let v = unsafe { self.arena.item(vloc) };
                    self.stats.evictions.inc();
                    if v.recency().1 == 0 {
                        self.stats.evicted_unfetched.inc();
                    }
                    self.unlink(sh, self.hash(v.key()), vpos, vloc);
                }
            }
        }
    }

    /// Ends a reservation whose bytes were written (and linked or not).
    pub(super) fn finish(&self, r: Resv) {
        // ORDERING: Release pairs with the cleaner's Acquire load of
        // `inflight`: the item's bytes and its link happen before the
        // cleaner walks the segment.
        self.arena.meta[self.arena.seg_of(r.loc) as usize].inflight.fetch_sub(1, Ordering::Release);
    }

    /// Gives an unused reservation back (its bytes become a filler).
    pub(super) fn abandon(&self, r: Resv) {
        // SAFETY: `r` is the caller's own reservation.
        unsafe { self.arena.write_filler(r.loc, r.len) };
        self.finish(r);
    }

    /// `flush_all [delay]`: every item stored before the moment `delay`
    /// (client form; `0` = now) becomes invalid at that moment, as
    /// memcached's `oldest_live` / `oldest_cas`.
    ///
    /// CAS uniques follow generations (`segment.rs`), so the flush's
    /// `oldest_cas` is the first unique of the next generation, and every
    /// head opens a segment of a newer generation before its next store
    /// (`Store::flushed_gen`): an item stored before the
    /// flush began is in a segment of an older generation (or is a copy
    /// keeping such a unique) and is flushed; one stored after it returned
    /// has a newer unique and lives; one racing with it may go either way,
    /// as in memcached.
    pub fn flush_all(&self, delay: i64) {
        let now = self.clock.now();
        let new_oldest = if delay > 0 { self.clock.rel_exptime(delay) } else { now };
        let oldest_live = new_oldest.saturating_sub(1).max(1);
        if oldest_live <= now {
            let gen = self.gens.next();
            // ORDERING: see `dead` (max: of two racing flushes the later
            // generation wins).
            self.oldest_cas.fetch_max(gen << self.arena.cas_shift(), Ordering::Relaxed);
            self.gens.flush(gen);
        }
        // ORDERING: see `dead`.
        self.oldest_live.store(oldest_live, Ordering::Relaxed);
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let s = &self.stats;
        StoreStats {
            curr_items: s.linked.sum().wrapping_sub(s.unlinked.sum()),
            total_items: s.total_items.sum(),
            bytes: s.linked_bytes.sum().wrapping_sub(s.unlinked_bytes.sum()),
            evictions: s.evictions.sum(),
            reclaimed: s.reclaimed.sum(),
            evicted_unfetched: s.evicted_unfetched.sum(),
            expired_unfetched: s.expired_unfetched.sum(),
            get_expired: s.get_expired.sum(),
            get_flushed: s.get_flushed.sum(),
            used_bytes: self.budget.used() as u64,
            limit_bytes: self.cfg.memory_limit as u64,
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
#[path = "engine_tests.rs"]
mod tests;

/// The generations' protocol under loom: a head's stores racing a
/// `flush_all` (the head's mutex and the client's causality are modelled
/// with loom's mutex and flags; the generations are the real type).
#[cfg(all(test, feature = "loom"))]
mod loom_tests {
    use super::Generations;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    /// A head: its open segment's generation and the stores it made.
    struct Head {
        gen: u64,
        /// (generation of the store's segment, whether the store began after
        /// the flush returned).
        stores: Vec<(u64, bool)>,
    }

    struct World {
        gens: Generations,
        head: Mutex<Head>,
        /// The flush returned (a client saw its `OK`).
        flushed: AtomicBool,
        /// The first store returned (a client saw its `STORED`).
        stored: AtomicBool,
    }

    /// One store as `Store::reserve` makes it: a newer generation first if
    /// a flush made the head's old.
    fn store(w: &World) {
        // ORDERING: a client's causality: the store began after it saw the
        // flush's reply (pairs with the Release store in the flusher).
        let late = w.flushed.load(Ordering::Acquire);
        let mut hd = w.head.lock().unwrap();
        if w.gens.flushed(hd.gen) {
            hd.gen = w.gens.open();
        }
        let gen = hd.gen;
        hd.stores.push((gen, late));
    }

    /// A store that began after `flush_all` returned is in a generation the
    /// flush spared; one that returned before the flush began is in an
    /// older one (flushed); one racing it may be either.
    #[test]
    fn a_flush_spares_later_stores_and_kills_earlier_ones() {
        loom::model(|| {
            let gens = Generations::new();
            let first = gens.open();
            let w = Arc::new(World {
                gens,
                head: Mutex::new(Head { gen: first, stores: Vec::new() }),
                flushed: AtomicBool::new(false),
                stored: AtomicBool::new(false),
            });
            let writer = {
                let w = w.clone();
                thread::spawn(move || {
                    store(&w);
                    // ORDERING: pairs with the flusher's Acquire load: the
                    // client saw this store's reply.
                    w.stored.store(true, Ordering::Release);
                    store(&w);
                })
            };
            // ORDERING: see the writer's Release store.
            let before = w.stored.load(Ordering::Acquire);
            let spared = w.gens.next();
            w.gens.flush(spared);
            // ORDERING: see `store`.
            w.flushed.store(true, Ordering::Release);
            writer.join().unwrap();
            let hd = w.head.lock().unwrap();
            for (i, &(gen, late)) in hd.stores.iter().enumerate() {
                if late {
                    assert!(gen >= spared, "a store after the flush is flushed");
                }
                if i == 0 && before {
                    assert!(gen < spared, "a store before the flush survives it");
                }
            }
            // Generations never repeat: a head only ever moves forward.
            assert!(hd.stores.windows(2).all(|s| s[0].0 <= s[1].0));
        });
    }

    /// Two heads opening segments while a flush runs: every generation is
    /// drawn once, and the flush's is above every one drawn before it.
    #[test]
    fn generations_are_unique_and_a_flush_is_above_earlier_ones() {
        loom::model(|| {
            let w = Arc::new(Generations::new());
            let opened = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (w, opened) = (w.clone(), opened.clone());
                    thread::spawn(move || {
                        let g = w.open();
                        // ORDERING: pairs with the Acquire load below.
                        opened.store(true, Ordering::Release);
                        g
                    })
                })
                .collect();
            // ORDERING: see the Release store above.
            let saw = opened.load(Ordering::Acquire);
            let spared = w.next();
            w.flush(spared);
            let gs: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            assert_ne!(gs[0], gs[1]);
            assert!(gs.iter().all(|&g| g >= 1));
            if saw {
                assert!(gs.iter().any(|&g| g < spared), "a generation drawn before the flush survives it");
            }
            assert!(w.flushed(spared - 1) && !w.flushed(spared));
        });
    }
}
