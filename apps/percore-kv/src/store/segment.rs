//! Segments and the items in them: the memory layout of the engine (see the
//! essay in `engine.rs`).
//!
//! One arena of `count` segments of `size` bytes each is reserved at start
//! (`alloc_zeroed`: pages are mapped lazily, so only segments in use are
//! resident); a segment is *charged* to the budget the first time it is
//! handed out. An item's location is `(segment + 1) << 32 | offset`, never 0.
//!
//! # Item layout (4-byte aligned, 24 bytes of header)
//!
//! ```text
//! off  size  field          who writes it
//!   0     8  cas | klen     immutable: bits 0..56 the CAS unique, 56..64 the
//!                           key's length (0 marks a filler: an abandoned
//!                           reservation)
//!   8     4  exp            atomic: touch / gat / ma T (under the shard lock)
//!  12     4  atime | fetched  atomic recency hints, stored (never RMW) by
//!                           readers: bits 0..30 the last access or store
//!                           time (saturating), 30..32 `fetched`: 0 never
//!                           fetched, 1 fetched, 3 fetched since the item was
//!                           written or last moved (a reader stores only
//!                           when the word would change)
//!  16     4  flags          immutable
//!  20     4  vlen | token | stale  atomic: bits 0..30 the value's length
//!                           (for a filler: bytes after the header),
//!                           immutable; bit 30 a win token was handed out
//!                           (set under the shard lock); bit 31 stale
//!                           (immutable: `ms I` / `md I` write a new item)
//!  24  klen  key
//!   .  vlen  value          (no "\r\n"), then padding to 4 bytes
//! ```
//!
//! Each atomic word has one kind of writer: `exp` and the token bit only
//! shard-lock holders (so a holder's load-then-store of the word loses
//! nothing), the hint word anyone (a lost store loses only a hint). The CAS
//! unique has 56 bits: at ten million stores a second it wraps after 228
//! years (see `engine.rs`).

use std::alloc::Layout;
// NOTE: std atomics, not the loom shim: the header's atomics are views of
// raw segment bytes, which loom's atomics cannot be. The loom model covers
// the table's publish/retire protocol (`table.rs`, and its `loom_tests` module).
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Bytes of an item's header.
pub(crate) const HEADER: usize = 24;
/// Items start at multiples of this.
pub(crate) const ALIGN: usize = 4;

/// `fetched` values.
pub(crate) const FETCHED: u8 = 1;
/// Fetched since the item was written or last moved.
pub(crate) const ACCESSED: u8 = 3;

/// The bits of the first word that hold the CAS unique.
pub(crate) const CAS_MASK: u64 = (1 << 56) - 1;
const KLEN_SHIFT: u32 = 56;
/// The hint word: `atime` below, `fetched` above.
const ATIME_MASK: u32 = (1 << 30) - 1;
const FETCHED_SHIFT: u32 = 30;
/// The length word: `vlen` below, then the token and stale bits.
const VLEN_MASK: u32 = (1 << 30) - 1;
const TOKEN_BIT: u32 = 1 << 30;
const STALE_BIT: u32 = 1 << 31;

/// Bytes an item with these lengths takes in a segment.
#[inline]
pub(crate) fn item_size(klen: usize, vlen: usize) -> usize {
    (HEADER + klen + vlen + ALIGN - 1) & !(ALIGN - 1)
}

/// The hint word for an access or store time and a `fetched` value.
#[inline]
fn hint_word(atime: u32, fetched: u8) -> u32 {
    atime.min(ATIME_MASK) | u32::from(fetched & 3) << FETCHED_SHIFT
}

/// Per-segment bookkeeping.
#[derive(Debug)]
pub(crate) struct SegMeta {
    /// Bytes of linked items in the segment; changed by whoever links or
    /// unlinks one (under that item's shard lock).
    pub(crate) live: AtomicUsize,
    /// Reservations handed out and not yet finished or abandoned; a segment
    /// is cleaned only at 0.
    pub(crate) inflight: AtomicU32,
    /// The bump pointer: bytes handed out. Written by the segment's head
    /// (under its lock); final once the segment is sealed.
    pub(crate) used: AtomicUsize,
}

/// The arena of segments.
pub(crate) struct Arena {
    base: *mut u8,
    layout: Layout,
    /// Bytes per segment (a multiple of 8, below 2^32).
    pub(crate) size: usize,
    /// Segments in the arena.
    pub(crate) count: usize,
    /// One per segment.
    pub(crate) meta: Box<[SegMeta]>,
}

// SAFETY: the arena is plain memory; who may write which bytes when is the
// engine's protocol (reservations, shard locks, SMR grace periods), and every
// mutable header field is accessed through atomics.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena of `count` segments of `size` bytes; `None` if the memory
    /// cannot be reserved.
    pub(crate) fn new(size: usize, count: usize) -> Option<Arena> {
        assert!(size % 8 == 0 && size < 1 << 32 && count > 0);
        // NOTE: alignment 8, not a page: with the default alignment the system
        // allocator zeroes through calloc, whose fresh mmap pages stay
        // untouched (not resident) until a segment is used; an aligned
        // zeroed allocation would memset, and touch, the whole arena.
        let layout = Layout::from_size_align(size.checked_mul(count)?, 8).ok()?;
        // SAFETY: the layout is non-zero in size.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        if base.is_null() {
            return None;
        }
        let meta = (0..count)
            .map(|_| SegMeta { live: AtomicUsize::new(0), inflight: AtomicU32::new(0), used: AtomicUsize::new(0) })
            .collect();
        Some(Arena { base, layout, size, count, meta })
    }

    /// The location of `off` in segment `seg`.
    #[inline]
    pub(crate) fn loc(seg: u32, off: usize) -> u64 {
        (u64::from(seg) + 1) << 32 | off as u64
    }

    /// The segment of a location.
    #[inline]
    pub(crate) fn seg_of(loc: u64) -> u32 {
        ((loc >> 32) - 1) as u32
    }

    /// The item at `loc`.
    ///
    /// # Safety
    ///
    /// `loc` must be the location of an item (or filler) whose header was
    /// completely written before the caller could observe `loc` (a table
    /// load with Acquire, a reservation of the caller's own, or a walk of a
    /// sealed segment with no reservation in flight), and the segment must
    /// not be reused while the returned reference lives (the caller is in an
    /// SMR section that began before the item was unlinked, or holds what
    /// keeps the segment from being freed).
    #[inline]
    pub(crate) unsafe fn item(&self, loc: u64) -> Item<'_> {
        let seg = Arena::seg_of(loc) as usize;
        let off = (loc & 0xffff_ffff) as usize;
        debug_assert!(seg < self.count && off + HEADER <= self.size);
        // SAFETY: inside the arena (checked above in debug builds; the
        // caller's contract makes it so).
        let p = unsafe { self.base.add(seg * self.size + off) };
        Item { p, _arena: std::marker::PhantomData }
    }

    /// Writes a whole item at `loc` (the caller's reservation of exactly
    /// `item_size(key.len(), sum of parts)` bytes).
    ///
    /// # Safety
    ///
    /// The bytes are the caller's reservation: no other thread reads or
    /// writes them until the caller publishes `loc` (or finishes the
    /// reservation).
    pub(crate) unsafe fn write(&self, loc: u64, h: &NewItem, key: &[u8], parts: &[&[u8]]) {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        let seg = Arena::seg_of(loc) as usize;
        let off = (loc & 0xffff_ffff) as usize;
        assert!(seg < self.count && off + item_size(key.len(), vlen) <= self.size && !key.is_empty());
        assert!(off % ALIGN == 0 && key.len() <= 255 && vlen <= VLEN_MASK as usize && h.cas <= CAS_MASK);
        let lens = vlen as u32 | if h.token != 0 { TOKEN_BIT } else { 0 } | if h.stale != 0 { STALE_BIT } else { 0 };
        // SAFETY: inside the arena (asserted), 4-aligned, and private to the
        // caller by the contract; the copies do not overlap the sources (an
        // old item lives at another location).
        unsafe {
            let p = self.base.add(seg * self.size + off);
            (p as *mut u64).write_unaligned(h.cas | (key.len() as u64) << KLEN_SHIFT);
            (p.add(8) as *mut u32).write(h.exp);
            (p.add(12) as *mut u32).write(hint_word(h.atime, h.fetched));
            (p.add(16) as *mut u32).write(h.flags);
            (p.add(20) as *mut u32).write(lens);
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(HEADER), key.len());
            let mut q = p.add(HEADER + key.len());
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), q, part.len());
                q = q.add(part.len());
            }
        }
    }

    /// Returns segment `seg`'s pages to the system (they read as zeroes when
    /// next touched); for a segment whose budget is given back to the index.
    ///
    /// The caller owns the segment (no slot names it, its grace period is
    /// over).
    pub(crate) fn discard(&self, seg: u32) {
        const PAGE: usize = 4096;
        let start = self.base as usize + seg as usize * self.size;
        let (lo, hi) = ((start + PAGE - 1) & !(PAGE - 1), (start + self.size) & !(PAGE - 1));
        if hi > lo {
            // NOTE: the one system call of the store; a failure only leaves
            // the pages resident, so it is ignored.
            // SAFETY: [lo, hi) is inside the arena, page-aligned, and owned by
            // the caller; MADV_DONTNEED on private anonymous memory keeps the
            // mapping valid (reads see zeroes).
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
        }
    }

    /// Writes a filler over `len` bytes at `loc` (an abandoned reservation).
    ///
    /// # Safety
    ///
    /// As for [`write`](Arena::write).
    pub(crate) unsafe fn write_filler(&self, loc: u64, len: usize) {
        let seg = Arena::seg_of(loc) as usize;
        let off = (loc & 0xffff_ffff) as usize;
        assert!(seg < self.count && off + len <= self.size && len >= HEADER && len - HEADER <= VLEN_MASK as usize);
        assert!(off % ALIGN == 0 && len % ALIGN == 0);
        // SAFETY: inside the arena (asserted), 4-aligned, private to the
        // caller.
        unsafe {
            let p = self.base.add(seg * self.size + off);
            (p as *mut u64).write_unaligned(0);
            (p.add(20) as *mut u32).write((len - HEADER) as u32);
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; `&mut self` means no
        // reader or writer is left.
        unsafe { std::alloc::dealloc(self.base, self.layout) };
    }
}

/// The header fields of an item to be written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewItem {
    pub(crate) cas: u64,
    pub(crate) exp: u32,
    pub(crate) atime: u32,
    pub(crate) flags: u32,
    pub(crate) fetched: u8,
    pub(crate) token: u8,
    pub(crate) stale: u8,
}

/// An item in the arena (see the layout in the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    p: *const u8,
    _arena: std::marker::PhantomData<&'a Arena>,
}

impl<'a> Item<'a> {
    #[inline]
    fn u32_at(&self, off: usize) -> u32 {
        // SAFETY: `Arena::item`'s contract: the header is written, readable
        // and immutable at this offset; 4-aligned.
        unsafe { (self.p.add(off) as *const u32).read() }
    }

    #[inline]
    fn atomic_u32(&self, off: usize) -> &'a AtomicU32 {
        // SAFETY: as above; every access to this field after publication is
        // atomic, and AtomicU32 has u32's layout and alignment (4, as every
        // item).
        unsafe { &*(self.p.add(off) as *const AtomicU32) }
    }

    #[inline]
    fn word0(&self) -> u64 {
        // SAFETY: as in `u32_at`; only 4-aligned, hence unaligned.
        unsafe { (self.p as *const u64).read_unaligned() }
    }

    #[inline]
    fn lens(&self) -> u32 {
        // ORDERING: the length and stale bits are immutable; the token bit
        // is read by its callers under the shard lock, or as a hint.
        self.atomic_u32(20).load(Ordering::Relaxed)
    }

    /// The CAS unique.
    #[inline]
    pub(crate) fn cas(&self) -> u64 {
        self.word0() & CAS_MASK
    }

    /// Relative expiry (0 = never).
    #[inline]
    pub(crate) fn exp(&self) -> u32 {
        // ORDERING: `exp` changes under the shard lock; a reader may see the
        // old or the new expiry of a concurrent touch, either is correct.
        self.atomic_u32(8).load(Ordering::Relaxed)
    }

    /// Sets the expiry. The caller holds the item's shard lock.
    #[inline]
    pub(crate) fn set_exp(&self, exp: u32) {
        // ORDERING: see `exp`.
        self.atomic_u32(8).store(exp, Ordering::Relaxed);
    }

    /// The recency hints: last access or store time, and `fetched`.
    #[inline]
    pub(crate) fn recency(&self) -> (u32, u8) {
        // ORDERING: hints; they order no other memory.
        let w = self.atomic_u32(12).load(Ordering::Relaxed);
        (w & ATIME_MASK, (w >> FETCHED_SHIFT) as u8)
    }

    /// Stores the recency hints: a plain store, not an RMW (any thread, with
    /// or without the shard lock; a racing store wins or loses whole, which
    /// only loses a hint). Callers store only when a hint changes, so a hit
    /// writes the item's line at most twice per update interval.
    #[inline]
    pub(crate) fn set_recency(&self, atime: u32, fetched: u8) {
        // ORDERING: as in `recency`.
        self.atomic_u32(12).store(hint_word(atime, fetched), Ordering::Relaxed);
    }

    /// Client flags.
    #[inline]
    pub(crate) fn flags(&self) -> u32 {
        self.u32_at(16)
    }

    /// Whether this is a filler, not an item.
    #[inline]
    pub(crate) fn is_filler(&self) -> bool {
        self.klen() == 0
    }

    #[inline]
    fn klen(&self) -> usize {
        (self.word0() >> KLEN_SHIFT) as usize
    }

    #[inline]
    fn vlen(&self) -> usize {
        (self.lens() & VLEN_MASK) as usize
    }

    /// Bytes the item (or filler) takes in its segment.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        item_size(self.klen(), self.vlen())
    }

    /// memcached's size of the item, as `stats bytes` counts it.
    #[inline]
    pub(crate) fn mc_size(&self) -> usize {
        super::SIZE_CHECK_HEADER + self.klen() + 1 + self.vlen() + 2
    }

    /// Whether a win token was handed out.
    #[inline]
    pub(crate) fn token(&self) -> bool {
        self.lens() & TOKEN_BIT != 0
    }

    /// Records that a win token was handed out. The caller holds the item's
    /// shard lock (the only writers of the length word).
    #[inline]
    pub(crate) fn set_token(&self) {
        let cell = self.atomic_u32(20);
        // ORDERING: see `lens`; under the lock a load-then-store loses
        // nothing (readers never store this word), and it is no RMW.
        let w = cell.load(Ordering::Relaxed);
        // ORDERING: as above.
        cell.store(w | TOKEN_BIT, Ordering::Relaxed);
    }

    /// Stale (`X`).
    #[inline]
    pub(crate) fn stale(&self) -> bool {
        self.lens() & STALE_BIT != 0
    }

    /// The key.
    #[inline]
    pub(crate) fn key(&self) -> &'a [u8] {
        // SAFETY: as in `u32_at`: `klen` bytes after the header are the key.
        unsafe { std::slice::from_raw_parts(self.p.add(HEADER), self.klen()) }
    }

    /// The value.
    #[inline]
    pub(crate) fn value(&self) -> &'a [u8] {
        // SAFETY: as in `u32_at`: `vlen` bytes after the key are the value.
        unsafe { std::slice::from_raw_parts(self.p.add(HEADER + self.klen()), self.vlen()) }
    }

    /// The header as it is now, for a copy (atomics read Relaxed: the caller
    /// holds the shard lock, which orders every writer of `exp` and the
    /// token; a reader's concurrent hint store may be missed, which only
    /// loses a recency hint).
    pub(crate) fn snapshot(&self) -> NewItem {
        let (atime, fetched) = self.recency();
        NewItem {
            cas: self.cas(),
            exp: self.exp(),
            atime,
            flags: self.flags(),
            fetched,
            token: u8::from(self.token()),
            stale: u8::from(self.stale()),
        }
    }
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn arena() -> Arena {
        Arena::new(64 << 10, 2).unwrap()
    }

    #[test]
    fn a_header_is_24_bytes_and_items_4_aligned() {
        // The benchmark's item (32-byte key, 100-byte value): 156 bytes.
        assert_eq!(item_size(32, 100), 156);
        assert_eq!(item_size(1, 0), 28);
        assert_eq!(item_size(1, 3), 28);
        assert_eq!(item_size(1, 4), 32);
    }

    #[test]
    fn every_field_round_trips_at_its_limits() {
        let a = arena();
        let key = [b'k'; 250];
        let value = vec![7u8; 1000];
        let h = NewItem { cas: CAS_MASK, exp: u32::MAX, atime: 12345, flags: u32::MAX, fetched: 1, token: 1, stale: 1 };
        // An offset that is 4- but not 8-aligned: the first word is read
        // unaligned.
        let loc = Arena::loc(1, 4);
        // SAFETY: the test owns the arena; nothing else reads it.
        let it = unsafe {
            a.write(loc, &h, &key, &[&value[..10], &value[10..]]);
            a.item(loc)
        };
        assert_eq!((it.cas(), it.exp(), it.recency(), it.flags()), (CAS_MASK, u32::MAX, (12345, 1), u32::MAX));
        assert!(it.token() && it.stale() && !it.is_filler());
        assert_eq!((it.key(), it.value()), (&key[..], &value[..]));
        assert_eq!(it.size(), item_size(250, 1000));
        let s = it.snapshot();
        assert_eq!(
            (s.cas, s.exp, s.atime, s.flags, s.fetched, s.token, s.stale),
            (CAS_MASK, u32::MAX, 12345, u32::MAX, 1, 1, 1)
        );
    }

    #[test]
    fn the_mutable_bits_leave_their_neighbours_alone() {
        let a = arena();
        let h = NewItem { cas: 99, exp: 5, atime: 6, flags: 7, fetched: 0, token: 0, stale: 0 };
        let loc = Arena::loc(0, 0);
        // SAFETY: as above.
        let it = unsafe {
            a.write(loc, &h, b"key", &[b"value"]);
            a.item(loc)
        };
        assert!(!it.token() && !it.stale());
        it.set_token();
        assert!(it.token() && !it.stale());
        assert_eq!(it.value(), b"value");
        it.set_exp(0);
        it.set_recency(u32::MAX, ACCESSED);
        // The access time saturates at 30 bits; `fetched` keeps its own.
        assert_eq!(it.recency(), (ATIME_MASK, ACCESSED));
        assert_eq!((it.cas(), it.exp(), it.flags(), it.key()), (99, 0, 7, &b"key"[..]));
        it.set_recency(8, FETCHED);
        assert_eq!(it.recency(), (8, FETCHED));
    }

    #[test]
    fn a_filler_spans_its_reservation() {
        let a = arena();
        let loc = Arena::loc(0, 8);
        // SAFETY: as above.
        let it = unsafe {
            a.write_filler(loc, 156);
            a.item(loc)
        };
        assert!(it.is_filler());
        assert_eq!(it.size(), 156);
    }
}
