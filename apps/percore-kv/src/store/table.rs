//! The index: a sharded hash table from a key's hash to an item's location,
//! read without locks inside an SMR section.
//!
//! # Layout
//!
//! The table is `SHARDS` independent shards picked by the hash's top bits.
//! A shard owns an array of cache-line buckets, each twelve 4-byte slots and
//! two control words (the layout of Folly's F14 chunks, 12 slots and 16
//! bytes of tags and counts in one line):
//!
//! ```text
//! bucket (64 bytes, one cache line)
//! +--------------------------------------------------------+----------+
//! | ctrl[0]: tag0 tag1 tag2 tag3 tag4 tag5 tag6 tag7        | 8 bytes  |
//! | ctrl[1]: tag8 tag9 tag10 tag11 | overflow (32 bits)     | 8 bytes  |
//! | slot0 .. slot11: item locations (`Loc`, 0 = empty)      | 12 x 4   |
//! +--------------------------------------------------------+----------+
//! ```
//!
//! A tag is eight bits of the hash (never 0, which marks an empty slot); slot
//! `i`'s tag is byte `i % 8` of `ctrl[i / 8]`. A key lives in its home bucket
//! (`hash & mask`) or, when that is full, in one of the next buckets;
//! `overflow` counts the keys that were placed *past* this bucket, so a
//! lookup stops at the first bucket whose overflow is 0. It cannot wrap: a
//! bucket counts each key of its shard at most once, and a shard holds fewer
//! than 2^32 keys (there are fewer locations).
//!
//! A location is an item's index in the arena in units of its alignment (see
//! `segment.rs`), so 4 bytes address 16 GiB of 4-byte aligned items, and
//! larger arenas align items more coarsely. At 1,000,000 items a table of
//! 12-slot buckets that grows past 9 keys a bucket sits at 64% load: 8.4
//! bytes an item (7-slot buckets of 8-byte locations, growing past 5, were
//! at 54%: 16.8 bytes).
//!
//! # Protocol
//!
//! * Readers ([`Table::find`]) take no lock and write nothing: one Acquire
//!   load of the shard's array pointer, then per bucket the Acquire loads of
//!   both control words (one line) and, for each tag that matches (a SWAR
//!   compare of eight bytes in the first word, four in the second), one load
//!   of the slot and a caller-supplied key check. The two words need not be
//!   read together: every slot's tag lives in one word, and the overflow
//!   count is read after the tags of its own bucket, as before.
//! * Writers hold the shard's [`SpinLock`]. Publishing a new key stores the
//!   slot, then the tag into the word that holds it (both Release), so a
//!   reader that sees the tag sees the location, and one that sees the
//!   location sees the item written before it. Replacing a key's item is one Release store of its slot (a
//!   key never moves between slots while the array is current). Removing
//!   clears the tag and the slot; a reader that loaded the tag before finds
//!   0 or, if the slot was reused, an item whose key does not match.
//! * Growing builds a twice larger array under the shard lock, publishes it
//!   with a Release store and retires the old one with an SMR goal; it is
//!   freed once a poll finds the goal expired (no reader can still be
//!   walking it). Readers never wait for a grow: those already in the old
//!   array finish there, on a snapshot that was current when they started.
//!
//! The memory of every array, current or retired, is charged to the store's
//! [`Budget`]. Shards start small (a sparse table costs readers cache and TLB
//! misses) and grow into a reserve charged up front; past it, a grow asks the
//! budget, and one that does not fit is refused: the caller evicts an item
//! from the home bucket instead, and the table records what it wanted so
//! that the engine gives segments back to the budget for the next grow.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::sync::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Guard, Seq, Smr, SpinGuard, SpinLock};

/// An item's location as a slot holds it (0 = empty); what it means is the
/// arena's business (`segment.rs`).
pub(crate) type Loc = u32;

/// Slots per bucket.
pub(crate) const SLOTS: usize = 12;

/// log2 of the number of shards.
#[cfg(not(feature = "loom"))]
const SHARD_BITS: u32 = 6;
#[cfg(feature = "loom")]
const SHARD_BITS: u32 = 0;

/// A key is placed at most this many buckets past its home before the shard
/// grows.
#[cfg(not(feature = "loom"))]
const MAX_PROBE: usize = 8;
#[cfg(feature = "loom")]
const MAX_PROBE: usize = 2;

/// A shard grows when it holds more than this many keys per bucket (of
/// [`SLOTS`]): a load factor of 9/12 (it was 5/7 with 7 slots), so a
/// lookup's home bucket is about as often full, and the probe as short.
#[cfg(not(feature = "loom"))]
pub(crate) const LOAD_PER_BUCKET: usize = 9;
#[cfg(feature = "loom")]
pub(crate) const LOAD_PER_BUCKET: usize = 1;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
/// The bytes of each control word that hold tags: all of `ctrl[0]`, the low
/// four of `ctrl[1]`.
const TAG_BYTES: [u64; 2] = [u64::MAX, 0x0000_0000_ffff_ffff];
/// Tags in `ctrl[0]`.
const TAGS0: usize = 8;
const OVERFLOW_SHIFT: u32 = 32;

/// Bytes the store may hold, and how many it holds (tables and segments).
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget { used: AtomicUsize::new(0), limit }
    }

    /// Takes `n` bytes if they fit under the limit.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        // ORDERING: the count orders no other memory; what it protects is
        // allocated after the exchange succeeds.
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|&v| v <= self.limit) else {
                return false;
            };
            match self.used.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        // ORDERING: a statistic.
        self.used.load(Ordering::Relaxed)
    }
}

#[repr(C, align(64))]
struct Bucket {
    /// Tags of slots 0..8; tags of slots 8..12 and the overflow count.
    ctrl: [AtomicU64; 2],
    slots: [AtomicU32; SLOTS],
}

impl Bucket {
    fn new() -> Self {
        Bucket { ctrl: std::array::from_fn(|_| AtomicU64::new(0)), slots: std::array::from_fn(|_| AtomicU32::new(0)) }
    }

    /// The control word holding slot `i`'s tag, and the tag's shift in it.
    #[inline]
    fn tag_word(&self, i: usize) -> (&AtomicU64, u32) {
        (&self.ctrl[i / TAGS0], 8 * (i % TAGS0) as u32)
    }

    /// Slot `i`'s tag in the control words `c`.
    #[inline]
    fn tag(c: [u64; 2], i: usize) -> u64 {
        (c[i / TAGS0] >> (8 * (i % TAGS0))) & 0xff
    }

    /// Both control words (relaxed: for lock holders).
    #[inline]
    fn ctrl_locked(&self) -> [u64; 2] {
        // ORDERING: under the shard lock (or on a private array) every store
        // to the bucket is ours or ordered before the lock acquisition.
        [self.ctrl[0].load(Ordering::Relaxed), self.ctrl[1].load(Ordering::Relaxed)]
    }
}

struct Array {
    mask: usize,
    buckets: Box<[Bucket]>,
}

impl Array {
    fn new(buckets: usize) -> Box<Array> {
        debug_assert!(buckets.is_power_of_two());
        Box::new(Array { mask: buckets - 1, buckets: (0..buckets).map(|_| Bucket::new()).collect() })
    }

    fn bytes(buckets: usize) -> usize {
        buckets * std::mem::size_of::<Bucket>() + std::mem::size_of::<Array>()
    }
}

/// Where a key sits in the current array of its shard (valid while the
/// shard lock is held).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pos {
    bucket: usize,
    slot: usize,
}

struct ShardState {
    /// Keys in the current array.
    len: usize,
    /// Arrays replaced by a grow, with the goal after which they are free.
    retired: Vec<(Seq, Box<Array>)>,
}

struct Shard {
    /// The current array. Written only under `state`'s lock; read by anyone.
    array: AtomicPtr<Array>,
    state: SpinLock<ShardState>,
}

/// The index (see the module docs).
pub(crate) struct Table {
    shards: Box<[Shard]>,
    smr: Smr,
    budget: Arc<Budget>,
    /// Bytes charged to the budget up front for arrays not allocated yet:
    /// grows draw from here first, freed arrays return here.
    reserve: AtomicUsize,
    /// Bytes the largest grow refused since the engine last looked (0:
    /// none); the engine gives segments back to the budget for it.
    wants: AtomicUsize,
}

#[inline]
fn tag_of(h: u64) -> u64 {
    ((h >> 48) as u8).max(1) as u64
}

/// Bytes of control word `w` (as 0x80 bits) whose tag may equal `tag`: the
/// classic has-zero-byte trick on `ctrl ^ tag * LO`. It can report a false
/// match above a true one, never miss a true one; callers check the key
/// anyway. (A borrow only runs upwards, so the overflow bytes above the tags
/// of `ctrl[1]` cannot make a tag byte match.)
#[inline]
fn matches(ctrl: u64, w: usize, tag: u64) -> u64 {
    let x = ctrl ^ (tag * LO);
    x.wrapping_sub(LO) & !x & HI & TAG_BYTES[w]
}

/// Slots (as bits 0..12) whose tag may equal `tag`, from both words.
#[inline]
fn candidates(c: [u64; 2], tag: u64) -> u32 {
    byte_mask(matches(c[0], 0, tag)) | byte_mask(matches(c[1], 1, tag)) << TAGS0
}

/// The empty slots (as bits 0..12).
#[inline]
fn empties(c: [u64; 2]) -> u32 {
    candidates(c, 0)
}

/// Gathers the 0x80 bits of `m`'s bytes into bits 0..8: bit `8i` of `m >>
/// 7` times the constant lands on bit `56 + i`, and no two partial products
/// meet (the movemask of SSE2, without SSE2).
#[inline]
fn byte_mask(m: u64) -> u32 {
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

#[inline]
fn overflow(ctrl1: u64) -> u64 {
    ctrl1 >> OVERFLOW_SHIFT
}

impl Table {
    /// A table whose shards start with `buckets_per_shard` buckets (rounded
    /// up to a power of two), charged to `budget` together with `reserve`
    /// more bytes that grows use before asking the budget; `None` if that
    /// does not fit.
    pub(crate) fn new(smr: Smr, budget: Arc<Budget>, buckets_per_shard: usize, reserve: usize) -> Option<Table> {
        let n = buckets_per_shard.max(1).next_power_of_two();
        let shards = 1usize << SHARD_BITS;
        if !budget.try_reserve(Array::bytes(n) * shards + reserve) {
            return None;
        }
        let shards = (0..shards)
            .map(|_| Shard {
                array: AtomicPtr::new(Box::into_raw(Array::new(n))),
                state: SpinLock::new(ShardState { len: 0, retired: Vec::new() }),
            })
            .collect();
        Some(Table { shards, smr, budget, reserve: AtomicUsize::new(reserve), wants: AtomicUsize::new(0) })
    }

    /// Takes `n` bytes for an array: from the reserve, else the budget.
    fn take(&self, n: usize) -> bool {
        // ORDERING: a count; see `Budget::try_reserve`.
        let r = self.reserve.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(n));
        r.is_ok() || self.budget.try_reserve(n)
    }

    /// Bytes a refused grow asked for (0: none).
    pub(crate) fn wants(&self) -> usize {
        // ORDERING: a hint; the budget's own exchange decides.
        self.wants.load(Ordering::Relaxed)
    }

    /// The engine made room for what [`wants`](Table::wants) said.
    pub(crate) fn clear_wants(&self) {
        // ORDERING: as in `wants`.
        self.wants.store(0, Ordering::Relaxed);
    }

    /// Adds `n` bytes, already charged to the budget, to the reserve (a freed
    /// array's, or a segment's the engine gave up for the index).
    pub(crate) fn add_reserve(&self, n: usize) {
        // ORDERING: as in `take`.
        self.reserve.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes of a table with `buckets_per_shard` buckets per shard.
    pub(crate) fn bytes_for(buckets_per_shard: usize) -> usize {
        Array::bytes(buckets_per_shard.max(1).next_power_of_two()) << SHARD_BITS
    }

    #[inline]
    fn shard(&self, h: u64) -> &Shard {
        if SHARD_BITS == 0 {
            &self.shards[0]
        } else {
            &self.shards[(h >> (64 - SHARD_BITS)) as usize]
        }
    }

    /// The location of the item whose key hashes to `h` and for which `is`
    /// says yes, as a reader sees it (no lock, no store).
    ///
    /// `is` gets locations that were published under this hash's tag and
    /// must check the key; it may see a location that a writer is replacing
    /// at the same moment, which the SMR section keeps readable.
    #[inline]
    pub(crate) fn find(&self, _section: &Guard<'_>, h: u64, mut is: impl FnMut(Loc) -> bool) -> Option<Loc> {
        let shard = self.shard(h);
        // ORDERING: Acquire pairs with the Release store of a grown array in
        // `grow`: its buckets' contents happen before.
        let ptr = shard.array.load(Ordering::Acquire);
        // SAFETY: the array was published by `new` or `grow` and is freed
        // only after an SMR goal taken after it was replaced has expired;
        // `_section` proves this thread is in a section that began before
        // such a goal could expire.
        let array = unsafe { &*ptr };
        let tag = tag_of(h);
        let mut b = h as usize & array.mask;
        for _ in 0..=array.mask {
            let bucket = &array.buckets[b];
            // ORDERING: Acquire pairs with the Release stores of the control
            // words in `place` (and `remove`): a visible tag comes with its
            // slot, a visible overflow count with the keys it counts.
            let ctrl = [bucket.ctrl[0].load(Ordering::Acquire), bucket.ctrl[1].load(Ordering::Acquire)];
            // NOTE: word by word rather than `candidates`: the reader skips
            // the gathering multiplies (callgrind, get90: 47.0 instructions
            // of this function a request with them, 35.6 without).
            for (w, &c) in ctrl.iter().enumerate() {
                let mut m = matches(c, w, tag);
                while m != 0 {
                    let i = w * TAGS0 + m.trailing_zeros() as usize / 8;
                    m &= m - 1;
                    // ORDERING: Acquire pairs with the Release slot stores in
                    // `place` and `replace`: the item's bytes written before
                    // its location was published are visible.
                    let loc = bucket.slots[i].load(Ordering::Acquire);
                    if loc != 0 && is(loc) {
                        return Some(loc);
                    }
                }
            }
            if overflow(ctrl[1]) == 0 {
                return None;
            }
            b = (b + 1) & array.mask;
        }
        None
    }

    /// Takes the lock of `h`'s shard.
    #[inline]
    pub(crate) fn lock(&self, h: u64) -> Locked<'_> {
        let shard = self.shard(h);
        Locked { table: self, shard, state: shard.state.lock() }
    }

    /// Frees the retired arrays whose goals expired (a sweep calls this).
    pub(crate) fn reclaim(&self) {
        for shard in self.shards.iter() {
            let mut st = shard.state.lock();
            self.reclaim_shard(&mut st);
        }
    }

    fn reclaim_shard(&self, st: &mut ShardState) {
        st.retired.retain(|(goal, array)| {
            if self.smr.poll(*goal, false) {
                self.add_reserve(Array::bytes(array.mask + 1));
                false
            } else {
                true
            }
        });
    }

    /// Buckets in the current arrays.
    #[cfg(all(test, not(feature = "loom")))]
    pub(crate) fn buckets(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let _l = s.state.lock();
                // ORDERING: under the lock (see `Locked::array`).
                let ptr = s.array.load(Ordering::Relaxed);
                // SAFETY: the current array, kept alive by the lock.
                unsafe { (*ptr).mask + 1 }
            })
            .sum::<usize>()
    }

    /// Keys in the table.
    #[cfg(all(test, not(feature = "loom")))]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.state.lock().len).sum()
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for shard in self.shards.iter() {
            // ORDERING: `&mut self`: no other thread can touch the table.
            let ptr = shard.array.load(Ordering::Relaxed);
            // SAFETY: the current array came from `Box::into_raw` and nobody
            // can reach it any more.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

/// A shard, locked for writing.
pub(crate) struct Locked<'a> {
    table: &'a Table,
    shard: &'a Shard,
    state: SpinGuard<'a, ShardState>,
}

impl Locked<'_> {
    #[inline]
    fn array(&self) -> &Array {
        // ORDERING: only lock holders store the pointer, and the lock orders
        // them.
        let ptr = self.shard.array.load(Ordering::Relaxed);
        // SAFETY: the current array is only retired by a lock holder, which
        // we are.
        unsafe { &*ptr }
    }

    /// The slot of the item for which `is` says yes, and its location.
    pub(crate) fn find(&self, h: u64, mut is: impl FnMut(Loc) -> bool) -> Option<(Pos, Loc)> {
        let array = self.array();
        let tag = tag_of(h);
        let mut b = h as usize & array.mask;
        for _ in 0..=array.mask {
            let bucket = &array.buckets[b];
            let ctrl = bucket.ctrl_locked();
            let mut m = candidates(ctrl, tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                // ORDERING: under the lock (see `Bucket::ctrl_locked`).
                let loc = bucket.slots[i].load(Ordering::Relaxed);
                if Bucket::tag(ctrl, i) == tag && loc != 0 && is(loc) {
                    return Some((Pos { bucket: b, slot: i }, loc));
                }
            }
            if overflow(ctrl[1]) == 0 {
                return None;
            }
            b = (b + 1) & array.mask;
        }
        None
    }

    /// Points `pos` at a new item of the same key.
    pub(crate) fn replace(&mut self, pos: Pos, loc: Loc) {
        debug_assert_ne!(loc, 0);
        // ORDERING: Release pairs with the Acquire slot load in `find`: the
        // new item's bytes are visible to a reader that sees `loc`.
        self.array().buckets[pos.bucket].slots[pos.slot].store(loc, Ordering::Release);
    }

    /// Removes the key at `pos` (whose hash is `h`).
    pub(crate) fn remove(&mut self, h: u64, pos: Pos) {
        let array = self.array();
        let bucket = &array.buckets[pos.bucket];
        let (word, shift) = bucket.tag_word(pos.slot);
        // ORDERING: Relaxed load under the lock (see `Bucket::ctrl_locked`);
        // the Release stores keep a reader that sees the cleared tag from
        // seeing older contents than ours.
        let ctrl = word.load(Ordering::Relaxed);
        word.store(ctrl & !(0xff << shift), Ordering::Release);
        // ORDERING: as above.
        bucket.slots[pos.slot].store(0, Ordering::Release);
        let mut b = h as usize & array.mask;
        while b != pos.bucket {
            let over = &array.buckets[b].ctrl[1];
            // ORDERING: as above.
            let c = over.load(Ordering::Relaxed);
            debug_assert!(overflow(c) > 0, "a key past its home is counted there");
            over.store(c - (1 << OVERFLOW_SHIFT), Ordering::Release);
            b = (b + 1) & array.mask;
        }
        self.state.len -= 1;
    }

    /// Some key of `h`'s home bucket (to evict when an insert cannot grow
    /// the table).
    pub(crate) fn victim(&self, h: u64) -> Option<(Pos, Loc)> {
        let array = self.array();
        let b = h as usize & array.mask;
        let bucket = &array.buckets[b];
        let ctrl = bucket.ctrl_locked();
        (0..SLOTS).find(|&i| Bucket::tag(ctrl, i) != 0).map(|i| {
            // ORDERING: under the lock.
            (Pos { bucket: b, slot: i }, bucket.slots[i].load(Ordering::Relaxed))
        })
    }

    /// Inserts a key that is not in the table. `hash_of` gives the hash of
    /// any location in the table (for a grow). `false`: the home bucket and
    /// its probe window are full and the table may not grow; evict a
    /// [`victim`](Locked::victim) and try again.
    pub(crate) fn insert(&mut self, h: u64, loc: Loc, hash_of: impl Fn(Loc) -> u64) -> bool {
        debug_assert_ne!(loc, 0);
        let mask = self.array().mask;
        if self.state.len >= (mask + 1) * LOAD_PER_BUCKET {
            self.grow(&hash_of);
        }
        if place(self.array(), h, loc, MAX_PROBE.min(mask + 1)) {
            self.state.len += 1;
            return true;
        }
        if self.grow(&hash_of) && place(self.array(), h, loc, MAX_PROBE.min(self.array().mask + 1)) {
            self.state.len += 1;
            return true;
        }
        false
    }

    /// Replaces the array by one twice as large; `false` if the budget has
    /// no room for it.
    #[cold]
    fn grow(&mut self, hash_of: &dyn Fn(Loc) -> u64) -> bool {
        self.table.reclaim_shard(&mut self.state);
        let old = self.array();
        let n = (old.mask + 1) * 2;
        if !self.table.take(Array::bytes(n)) {
            // ORDERING: as in `Table::wants`.
            self.table.wants.fetch_max(Array::bytes(n), Ordering::Relaxed);
            return false;
        }
        let new = Array::new(n);
        for bucket in old.buckets.iter() {
            let ctrl = bucket.ctrl_locked();
            for (i, slot) in bucket.slots.iter().enumerate() {
                if Bucket::tag(ctrl, i) != 0 {
                    // ORDERING: under the lock.
                    let loc = slot.load(Ordering::Relaxed);
                    let placed = place(&new, hash_of(loc), loc, n);
                    debug_assert!(placed, "a grown array has room for every key");
                }
            }
        }
        let new = Box::into_raw(new);
        // ORDERING: Release pairs with the Acquire load in `Table::find`: the
        // new array's contents are visible with its pointer.
        let old = self.shard.array.swap(new, Ordering::Release);
        let goal = self.table.smr.advance();
        // SAFETY: `old` came from `Box::into_raw` and is no longer reachable
        // for new readers; it is dropped only after `goal` expires.
        self.state.retired.push((goal, unsafe { Box::from_raw(old) }));
        true
    }
}

/// Puts `loc` into the first free slot at most `probe` buckets from `h`'s
/// home; counts the overflow on the buckets passed. Called under the shard
/// lock or on a private array.
fn place(array: &Array, h: u64, loc: Loc, probe: usize) -> bool {
    let home = h as usize & array.mask;
    let mut b = home;
    for _ in 0..probe {
        let bucket = &array.buckets[b];
        let ctrl = bucket.ctrl_locked();
        let e = empties(ctrl);
        if e != 0 {
            // NOTE: the lowest reported byte is a true empty one (a false
            // match only sits above a true one).
            let i = e.trailing_zeros() as usize;
            // The overflow counts on the way go first, so that the key is
            // reachable as soon as its tag is visible.
            let mut p = home;
            while p != b {
                let over = &array.buckets[p].ctrl[1];
                // ORDERING: as in `Bucket::ctrl_locked`; the Release store
                // publishes the count before the tag below.
                let c = over.load(Ordering::Relaxed);
                debug_assert!(overflow(c) < u64::from(u32::MAX), "a shard holds fewer than 2^32 keys");
                over.store(c + (1 << OVERFLOW_SHIFT), Ordering::Release);
                p = (p + 1) & array.mask;
            }
            // ORDERING: Release pairs with the Acquire slot load in `find`.
            bucket.slots[i].store(loc, Ordering::Release);
            let (word, shift) = bucket.tag_word(i);
            // ORDERING: Release pairs with the Acquire ctrl loads in `find`:
            // the slot is visible with the tag. (`ctrl` is current: the
            // overflow stores above were to the buckets before this one.)
            word.store(ctrl[i / TAGS0] | (tag_of(h) << shift), Ordering::Release);
            return true;
        }
        b = (b + 1) & array.mask;
    }
    false
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn table(buckets: usize, limit: usize) -> Table {
        let smr = Smr::new("kv-table-test").unwrap();
        Table::new(smr, Arc::new(Budget::new(limit)), buckets, 0).unwrap()
    }

    /// A hash that puts everything into shard 0, bucket `b`.
    fn h(b: u64, tag: u64) -> u64 {
        (tag << 48) | b
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn swar_matches_every_true_tag() {
        // Slots 0..8 in the first word, 8..12 in the second, whose high half
        // (the overflow count) holds bytes that equal the tags looked for.
        let c = [0x0800_0706_0505_0201u64, 0x0505_0505_0009_0505];
        assert_eq!(candidates(c, 5), 0b1100 | 0b0011 << 8);
        assert_eq!(candidates(c, 9), 1 << 10);
        assert_eq!(candidates(c, 0x99), 0);
        assert_eq!(empties(c) & (1 << 6), 1 << 6);
        assert_eq!(empties(c) & (1 << 11), 1 << 11);
        assert_eq!(empties([0; 2]), (1 << SLOTS) - 1);
        assert_eq!(overflow(c[1]), 0x0505_0505);
        // Every true match is reported; the lowest reported byte is a true
        // one.
        for tags in [0x0102_0304_0506_0708u64, 0x0101_0101_0101_0101, 0x0001_0000_0100_0001, 0xff00_ff00_00ff_00ff] {
            for tag in [0u64, 1, 2, 0xff] {
                let m = candidates([tags, tags | 0xffff_ffff << OVERFLOW_SHIFT], tag);
                for i in 0..SLOTS {
                    if Bucket::tag([tags, tags], i) == tag {
                        assert_ne!(m & (1 << i), 0, "{tags:x} {tag} {i}");
                    }
                }
                if m != 0 {
                    assert_eq!(Bucket::tag([tags, tags], m.trailing_zeros() as usize), tag);
                }
            }
        }
    }

    #[test]
    fn byte_mask_gathers_every_pattern() {
        for bits in 0u32..256 {
            let m = (0..8).filter(|i| bits & (1 << i) != 0).map(|i| 0x80u64 << (8 * i)).sum::<u64>();
            assert_eq!(byte_mask(m), bits);
        }
    }

    #[test]
    fn insert_find_remove_with_overflow() {
        let t = table(1, 1 << 20);
        let hash_of = |loc: Loc| h(0, loc.into());
        let smr = t.smr.clone();
        let mut l = t.lock(h(0, 1));
        // Thirty keys with one home bucket: eighteen spill into the next
        // ones (the shard grows to 4 buckets on the way), the last six
        // into the third bucket, so the tags of both words of each bucket
        // and the second bucket's overflow count are used.
        for loc in 1..=30 {
            assert!(l.insert(h(0, loc.into()), loc, hash_of));
        }
        drop(l);
        let g = smr.enter();
        for loc in 1..=30 {
            assert_eq!(t.find(&g, h(0, loc.into()), |x| x == loc), Some(loc));
        }
        assert_eq!(t.find(&g, h(0, 31), |x| x == 31), None);
        drop(g);
        let mut l = t.lock(h(0, 1));
        for loc in (1..=30).step_by(2) {
            let (pos, _) = l.find(h(0, loc.into()), |x| x == loc).unwrap();
            l.remove(h(0, loc.into()), pos);
        }
        // Every spilled key was counted on the buckets it passed, and each
        // removal uncounted it: what is left counts what is left.
        let spilled = |l: &Locked<'_>| {
            let a = l.array();
            (0..=a.mask).map(|b| overflow(a.buckets[b].ctrl_locked()[1])).collect::<Vec<_>>()
        };
        assert_eq!(spilled(&l), [9, 3, 0, 0]);
        drop(l);
        let g = smr.enter();
        for loc in 1..=30 {
            assert_eq!(t.find(&g, h(0, loc.into()), |x| x == loc).is_some(), loc % 2 == 0);
        }
        drop(g);
        assert_eq!(t.len(), 15);
    }

    #[test]
    fn grows_and_keeps_old_arrays_until_reclaimed() {
        let t = table(1, 1 << 20);
        let before = t.budget.used();
        let hash_of = |loc: Loc| u64::from(loc).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for loc in 1..=2000 {
            let mut l = t.lock(hash_of(loc));
            assert!(l.insert(hash_of(loc), loc, hash_of));
        }
        assert!(t.budget.used() > before);
        let g = t.smr.enter();
        for loc in 1..=2000 {
            assert_eq!(t.find(&g, hash_of(loc), |x| x == loc), Some(loc));
        }
        drop(g);
        t.smr.synchronize().unwrap();
        t.reclaim();
        assert_eq!(t.len(), 2000);
    }

    #[test]
    fn refuses_to_grow_past_the_budget() {
        let t = table(1, Table::bytes_for(1));
        let hash_of = |loc: Loc| h(0, loc.into());
        let mut l = t.lock(h(0, 1));
        let mut n = 0;
        for loc in 1..=100 {
            if !l.insert(h(0, loc.into()), loc, hash_of) {
                let (pos, victim) = l.victim(h(0, loc.into())).unwrap();
                l.remove(hash_of(victim), pos);
                assert!(l.insert(h(0, loc.into()), loc, hash_of));
            }
            n += 1;
        }
        assert_eq!(n, 100);
        assert!(l.state.len <= SLOTS);
    }
}

/// loom models of the table's core protocol, with the real code and shrunk
/// constants (one shard, probe windows of two buckets, a grow at one key per
/// bucket), over the SMR model in `sync.rs`. Buckets keep their twelve
/// slots; filler keys placed before the threads start put the key under
/// test in the second control word or past its home bucket. Run with
/// `LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-kv --release --features loom
/// --lib loom`.
///
/// Item memory is modelled by loom `UnsafeCell`s, so loom reports a reader
/// that could see an item before its bytes were written, and "freeing" an
/// item poisons it: a reader must never see the poison.
#[cfg(all(test, feature = "loom"))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::thread;

    const POISON: usize = usize::MAX;

    /// Items (locations 1..=ITEMS).
    const ITEMS: usize = 20;
    /// Locations of filler items.
    const FILLER: Loc = 5;

    struct World {
        table: Table,
        smr: Smr,
        items: [UnsafeCell<usize>; ITEMS],
    }

    // SAFETY: the cells are accessed under the protocol the model checks;
    // loom reports any unsynchronised access.
    unsafe impl Sync for World {}
    // SAFETY: as above.
    unsafe impl Send for World {}

    fn world() -> Arc<World> {
        world_of(1)
    }

    fn world_of(buckets: usize) -> Arc<World> {
        let smr = Smr::new("kv-loom").unwrap();
        let table = Table::new(smr.clone(), Arc::new(Budget::new(1 << 20)), buckets, 0).unwrap();
        Arc::new(World { table, smr, items: std::array::from_fn(|_| UnsafeCell::new(0)) })
    }

    impl World {
        fn read_item(&self, loc: Loc) -> usize {
            // SAFETY: loom checks this access against the writer's.
            self.items[loc as usize - 1].with(|p| unsafe { *p })
        }

        fn write_item(&self, loc: Loc, v: usize) {
            // SAFETY: loom checks this access against the readers'.
            self.items[loc as usize - 1].with_mut(|p| unsafe { *p = v });
        }

        /// Fills `n` slots of bucket 0 with keys of tags 0x80.. (items
        /// from `FILLER` on), before any other thread runs: placed
        /// directly, uncounted, so that they never make the shard grow.
        fn fill(&self, n: usize) {
            let l = self.table.lock(0);
            for k in 0..n {
                let loc = FILLER + k as Loc;
                self.write_item(loc, 1);
                assert!(place(l.array(), (0x80 + k as u64) << 48, loc, 1));
            }
        }

        /// A reader's lookup of the key with hash `h`: the value it sees.
        fn get(&self, h: u64) -> Option<usize> {
            let g = self.smr.enter();
            let loc = self.table.find(&g, h, |loc| self.read_item(loc) != 0)?;
            let v = self.read_item(loc);
            assert_ne!(v, POISON, "a reader saw a freed item");
            Some(v)
        }
    }

    /// Two keys: `A` homes in bucket 0, `B` in bucket 1 once grown; `S`
    /// and `T` home in bucket 0.
    const A: u64 = 1 << 48;
    const B: u64 = (2 << 48) | 1;
    const S: u64 = 3 << 48;
    const T: u64 = 4 << 48;

    /// A key published into a slot whose tag is in the second control word
    /// (the first eight slots are taken), under a reader: the reader finds
    /// nothing or the item fully written.
    #[test]
    fn a_tag_in_the_second_word_publishes_its_slot() {
        loom::model(|| {
            let w = world();
            w.fill(TAGS0);
            let r = {
                let w = w.clone();
                thread::spawn(move || w.get(A))
            };
            w.write_item(1, 10);
            let mut l = w.table.lock(A);
            assert!(l.insert(A, 1, |_| A));
            assert_eq!(l.find(A, |loc| loc == 1).unwrap().0.slot, TAGS0);
            drop(l);
            let seen = r.join().unwrap();
            assert!(matches!(seen, None | Some(10)), "{seen:?}");
            assert_eq!(w.get(A), Some(10));
        });
    }

    /// Two keys spilled past a full home bucket; one is removed (its home's
    /// overflow count drops from 2 to 1) while a reader looks up the other:
    /// the reader always finds it.
    #[test]
    fn removing_a_spilled_key_keeps_the_next_reachable() {
        loom::model(|| {
            let w = world_of(2);
            w.fill(SLOTS);
            w.write_item(1, 30);
            w.write_item(2, 40);
            {
                let mut l = w.table.lock(S);
                assert!(l.insert(S, 1, |_| S));
                assert!(l.insert(T, 2, |_| T));
                assert_eq!(l.find(T, |loc| loc == 2).unwrap().0.bucket, 1);
            }
            let r = {
                let w = w.clone();
                thread::spawn(move || w.get(T))
            };
            {
                let mut l = w.table.lock(S);
                let (pos, _) = l.find(S, |loc| loc == 1).unwrap();
                l.remove(S, pos);
            }
            assert_eq!(r.join().unwrap(), Some(40));
            assert_eq!(w.get(S), None);
        });
    }

    /// A writer replaces an item and frees the old one after a grace
    /// period while a reader looks it up: the reader sees the old or the
    /// new item, fully written, never the freed one.
    #[test]
    fn replace_then_free_after_grace() {
        loom::model(|| {
            let w = world();
            w.write_item(1, 10);
            assert!(w.table.lock(A).insert(A, 1, |_| A));
            let r = {
                let w = w.clone();
                thread::spawn(move || w.get(A))
            };
            w.write_item(2, 11);
            {
                let mut l = w.table.lock(A);
                let (pos, old) = l.find(A, |loc| loc == 1).unwrap();
                assert_eq!(old, 1);
                l.replace(pos, 2);
            }
            let goal = w.smr.advance();
            assert!(w.smr.poll(goal, true));
            w.write_item(1, POISON);
            let seen = r.join().unwrap();
            assert!(matches!(seen, Some(10) | Some(11)), "{seen:?}");
        });
    }

    /// A reader looking up a key while a writer inserts another one, which
    /// grows the shard: the present key is always found, and the grown
    /// table holds both.
    #[test]
    fn grow_never_hides_a_present_key() {
        loom::model(|| {
            let w = world();
            w.write_item(1, 10);
            let hash_of = |loc: Loc| if loc == 1 { A } else { B };
            assert!(w.table.lock(A).insert(A, 1, hash_of));
            let r = {
                let w = w.clone();
                thread::spawn(move || w.get(A))
            };
            w.write_item(2, 20);
            assert!(w.table.lock(B).insert(B, 2, hash_of));
            assert_eq!(r.join().unwrap(), Some(10));
            assert_eq!(w.get(B), Some(20));
            assert_eq!(w.get(A), Some(10));
        });
    }

    /// A key removed and its slot reused by another key while a reader
    /// looks for the first: the reader finds it or nothing, never the other
    /// key's item (the key check sees a fully written item).
    #[test]
    fn reused_slot_is_never_mistaken() {
        loom::model(|| {
            let w = world();
            w.write_item(1, 10);
            assert!(w.table.lock(A).insert(A, 1, |_| A));
            let r = {
                let w = w.clone();
                thread::spawn(move || {
                    let g = w.smr.enter();
                    let loc = w.table.find(&g, A, |loc| w.read_item(loc) == 10);
                    loc.map(|l| w.read_item(l))
                })
            };
            {
                let mut l = w.table.lock(A);
                let (pos, _) = l.find(A, |loc| loc == 1).unwrap();
                l.remove(A, pos);
            }
            w.write_item(3, 30);
            // Same tag, same bucket: the freed slot is reused.
            assert!(w.table.lock(A).insert(A, 3, |_| A));
            let seen = r.join().unwrap();
            assert!(matches!(seen, None | Some(10)), "{seen:?}");
        });
    }
}
