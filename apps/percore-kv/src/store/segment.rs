//! Segments and the items in them: the memory layout of the engine (see the
//! essay in `engine.rs`).
//!
//! One arena of `count` segments of `size` bytes each is reserved at start
//! (`alloc_zeroed`: pages are mapped lazily, so only segments in use are
//! resident); a segment is *charged* to the budget the first time it is
//! handed out.
//!
//! # Locations
//!
//! An item's location ([`Loc`], what a table slot holds) is its byte index in
//! the arena counted in *units*, plus one, so that 0 means "no item":
//!
//! ```text
//! loc = (seg * size + off) / unit + 1        item = base + (loc - 1) * unit
//! ```
//!
//! The unit is the arena's item alignment: the smallest power of two, at
//! least 4, for which `arena bytes / unit < 2^32` (4 bytes up to 16 GiB of
//! arena, 8 up to 32 GiB, and so on), so every `-m` is addressable and
//! items are padded to the unit ([`Geometry::item_size`]). A reader turns a
//! location into an address with one shift; only writers (linking,
//! unlinking, cleaning) need the segment, a division by the segment size.
//!
//! # Item layout (unit-aligned, 14 bytes of header, 4 and 8 optional)
//!
//! ```text
//! off  size  field          who writes it
//!   0     4  vlen | token | stale  atomic: bits 0..30 the value's length
//!                           (for a filler: bytes after the header),
//!                           immutable; bit 30 a win token was handed out
//!                           (set under the shard lock); bit 31 stale
//!                           (immutable: `ms I` / `md I` write a new item)
//!   4     4  exp            atomic: touch / gat / ma T (under the shard lock)
//!   8     4  atime | fetched  atomic recency hints, stored (never RMW) by
//!                           readers: bits 0..30 the last access or store
//!                           time (saturating), 30..32 `fetched`: 0 never
//!                           fetched, 1 fetched, 3 fetched since the item was
//!                           written or last moved (a reader stores only
//!                           when the word would change)
//!  12     1  klen           immutable: the key's length (0 marks a filler:
//!                           an abandoned reservation)
//!  13     1  opt            immutable: bit 2 `flags` is present, bit 3
//!                           `cas` is present, so that the byte is the
//!                           optional fields' length (a filler: 0)
//!  14    [4] flags          immutable, only when non-zero (memcached's
//!                           `ITEM_CFLAGS`); absent flags read as 0
//!   .    [8] cas            immutable, only in a copy the cleaner made
//!                           (the CAS unique it had where it was written)
//!   .  klen  key            at 14 + opt
//!   .  vlen  value          (no "\r\n"), then padding to the unit
//! ```
//!
//! Each atomic word has one kind of writer: `exp` and the token bit only
//! shard-lock holders (so a holder's load-then-store of the word loses
//! nothing), the hint word anyone (a lost store loses only a hint).
//!
//! # CAS uniques
//!
//! An item written into a head's segment stores no CAS: its unique is
//! *derived* from where it lies, `gen << cas_shift | off / unit`, `gen` the
//! segment's generation ([`SegMeta::gen`], drawn from the store's counter,
//! from 1, when a head opens the segment) and `cas_shift` the bits an
//! offset in units needs ([`Geometry::cas_shift`]). In one generation every
//! offset is unique and generations never repeat, so uniques never repeat
//! (until `gen` passes `2^(64 - cas_shift)`: 2^46 segment openings with 1
//! MiB segments, 2,200 years at a thousand a second), and none is 0. A
//! reader derives it only where a CAS is needed, inside its SMR section
//! (the segment keeps its generation until it is reused: invariant 2 of
//! `engine.rs`). The cleaner's copies keep their unique, so they store it
//! (the `cas` field, 8 bytes more for that item).

use std::alloc::Layout;
// NOTE: std atomics, not the loom shim: the header's atomics are views of
// raw segment bytes, which loom's atomics cannot be. The loom model covers
// the table's publish/retire protocol (`table.rs`, and its `loom_tests` module).
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub(crate) use super::table::Loc;

/// Bytes of an item's fixed header (the optional fields follow it).
pub(crate) const HEADER: usize = 14;
/// Bytes of the largest header: both optional fields present.
pub(crate) const HEADER_MAX: usize = HEADER + 4 + 8;
/// The smallest unit of locations (and item alignment): the header's
/// 4-byte atomics need it.
pub(crate) const MIN_UNIT: usize = 4;

/// `fetched` values.
pub(crate) const FETCHED: u8 = 1;
/// Fetched since the item was written or last moved.
pub(crate) const ACCESSED: u8 = 3;

/// The `opt` byte: the client flags field (4 bytes) is present.
pub(crate) const HAS_FLAGS: u8 = 4;
/// The `opt` byte: the CAS field (8 bytes) is present.
pub(crate) const HAS_CAS: u8 = 8;
/// The hint word: `atime` below, `fetched` above.
const ATIME_MASK: u32 = (1 << 30) - 1;
const FETCHED_SHIFT: u32 = 30;
/// The length word: `vlen` below, then the token and stale bits.
const VLEN_MASK: u32 = (1 << 30) - 1;
const TOKEN_BIT: u32 = 1 << 30;
const STALE_BIT: u32 = 1 << 31;

/// The header's length for an `opt` byte: 14, and 4 for flags, 8 for CAS
/// (the bits are those lengths: one addition on a reader's path).
#[inline]
fn header_len(opt: u8) -> usize {
    HEADER + usize::from(opt)
}

/// The `opt` byte of an item with these flags, storing its CAS or not.
#[inline]
pub(crate) fn opt_for(flags: u32, stored_cas: bool) -> u8 {
    (if flags != 0 { HAS_FLAGS } else { 0 }) | if stored_cas { HAS_CAS } else { 0 }
}

/// Bytes an item with these lengths and optional fields (`opt`) takes in a
/// segment whose items are aligned to `unit` (a power of two).
#[inline]
pub(crate) fn item_size(klen: usize, vlen: usize, opt: u8, unit: usize) -> usize {
    debug_assert!(unit.is_power_of_two());
    (header_len(opt) + klen + vlen + unit - 1) & !(unit - 1)
}

/// The unit of locations in an arena of `bytes`: the smallest power of two,
/// at least [`MIN_UNIT`], with `bytes / unit < 2^32` (see the module docs).
pub(crate) fn unit_for(bytes: usize) -> usize {
    let mut unit = MIN_UNIT;
    while (bytes / unit) as u64 > u64::from(Loc::MAX) {
        unit *= 2;
    }
    unit
}

/// The shape of an arena: segment size, segment count and location unit;
/// the location arithmetic, apart from the memory (so that it can be
/// checked for arenas too large to allocate in a test).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    size: usize,
    count: usize,
    /// log2 of the unit.
    shift: u32,
    /// Bits an offset in a segment, in units, needs: a derived CAS is
    /// `gen << cas_shift | offset / unit`.
    cas_shift: u32,
}

impl Geometry {
    /// `count` segments of `size` bytes, with the smallest unit that
    /// addresses them; `None` if the arena's size overflows or `size` is
    /// not a multiple of the unit.
    pub(crate) fn new(size: usize, count: usize) -> Option<Geometry> {
        Geometry::with_unit(size, count, unit_for(size.checked_mul(count)?))
    }

    /// As [`new`](Geometry::new) with a given unit (a power of two, at
    /// least [`MIN_UNIT`], that addresses the whole arena).
    pub(crate) fn with_unit(size: usize, count: usize, unit: usize) -> Option<Geometry> {
        let bytes = size.checked_mul(count)?;
        let ok = unit.is_power_of_two() && unit >= MIN_UNIT && size.is_multiple_of(unit) && size >= HEADER_MAX;
        let shift = unit.trailing_zeros();
        let cas_shift = (size >> shift).next_power_of_two().trailing_zeros();
        (ok && count > 0 && (bytes / unit) as u64 <= u64::from(Loc::MAX) && count as u64 <= u64::from(u32::MAX))
            .then_some(Geometry { size, count, shift, cas_shift })
    }

    /// Items start at multiples of this; locations count it.
    #[inline]
    pub(crate) fn unit(&self) -> usize {
        1 << self.shift
    }

    /// Bits of a derived CAS below the segment's generation.
    #[inline]
    pub(crate) fn cas_shift(&self) -> u32 {
        self.cas_shift
    }

    /// Bytes an item with these lengths and optional fields takes in a
    /// segment.
    #[inline]
    pub(crate) fn item_size(&self, klen: usize, vlen: usize, opt: u8) -> usize {
        item_size(klen, vlen, opt, self.unit())
    }

    /// The location of `off` (a multiple of the unit) in segment `seg`.
    #[inline]
    pub(crate) fn loc(&self, seg: u32, off: usize) -> Loc {
        debug_assert!((seg as usize) < self.count && off < self.size && off.is_multiple_of(self.unit()));
        ((seg as usize * self.size + off) >> self.shift) as Loc + 1
    }

    /// The arena byte a location names (no division: a reader's path).
    #[inline]
    pub(crate) fn byte(&self, loc: Loc) -> usize {
        debug_assert_ne!(loc, 0);
        ((loc - 1) as usize) << self.shift
    }

    /// The segment of a location (a division by the segment size, which
    /// need not be a power of two: writers, and readers that need a CAS).
    #[inline]
    pub(crate) fn seg_of(&self, loc: Loc) -> u32 {
        (self.byte(loc) / self.size) as u32
    }

    /// The offset of a location in its segment.
    #[inline]
    pub(crate) fn off_of(&self, loc: Loc) -> usize {
        self.byte(loc) % self.size
    }

    /// The CAS unique of an item at `loc` that stores none, in a segment of
    /// generation `gen`.
    #[inline]
    pub(crate) fn derived_cas(&self, gen: u64, loc: Loc) -> u64 {
        gen << self.cas_shift | (self.off_of(loc) >> self.shift) as u64
    }
}

/// The hint word for an access or store time and a `fetched` value.
#[inline]
fn hint_word(atime: u32, fetched: u8) -> u32 {
    atime.min(ATIME_MASK) | u32::from(fetched & 3) << FETCHED_SHIFT
}

/// Per-segment bookkeeping.
#[derive(Debug)]
pub(crate) struct SegMeta {
    /// Bytes the segment's linked items would take if the cleaner copied
    /// them ([`Item::kept_size`]: their size with a stored CAS), so that a
    /// segment at most half live fits in half a segment; changed by
    /// whoever links or unlinks one (under that item's shard lock).
    pub(crate) live: AtomicUsize,
    /// Reservations handed out and not yet finished or abandoned; a segment
    /// is cleaned only at 0.
    pub(crate) inflight: AtomicU32,
    /// The bump pointer: bytes handed out. Written by the segment's head
    /// (under its lock); final once the segment is sealed.
    pub(crate) used: AtomicUsize,
    /// The generation of the uniques derived from this segment's items:
    /// stored by the head that opens the segment (under the head's mutex,
    /// before any reservation in it), read by anyone who derives a CAS of
    /// one of its items; unchanged until the segment is reused (which is
    /// after a grace period: invariant 2 of `engine.rs`). 0 in a segment no
    /// head opened (the cleaner's), whose items all store their CAS.
    pub(crate) gen: AtomicU64,
}

/// The arena of segments.
pub(crate) struct Arena {
    base: *mut u8,
    layout: Layout,
    /// Bytes per segment (a multiple of 8 and of the unit).
    pub(crate) size: usize,
    /// Segments in the arena.
    pub(crate) count: usize,
    /// The location arithmetic (`size` and `count` again, and the unit).
    geo: Geometry,
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
        Arena::with_geometry(Geometry::new(size, count)?)
    }

    /// An arena of the given shape (for a test: a unit larger than needed).
    pub(crate) fn with_geometry(geo: Geometry) -> Option<Arena> {
        let (size, count) = (geo.size, geo.count);
        assert!(size % 8 == 0);
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
            .map(|_| SegMeta {
                live: AtomicUsize::new(0),
                inflight: AtomicU32::new(0),
                used: AtomicUsize::new(0),
                gen: AtomicU64::new(0),
            })
            .collect();
        Some(Arena { base, layout, size, count, geo, meta })
    }

    /// Items start at multiples of this; locations count it.
    #[inline]
    pub(crate) fn unit(&self) -> usize {
        self.geo.unit()
    }

    /// Bits of a derived CAS below the segment's generation.
    #[inline]
    pub(crate) fn cas_shift(&self) -> u32 {
        self.geo.cas_shift()
    }

    /// Bytes an item with these lengths and optional fields takes in a
    /// segment of this arena.
    #[inline]
    pub(crate) fn item_size(&self, klen: usize, vlen: usize, opt: u8) -> usize {
        self.geo.item_size(klen, vlen, opt)
    }

    /// The location of `off` (a multiple of the unit) in segment `seg`.
    #[inline]
    pub(crate) fn loc(&self, seg: u32, off: usize) -> Loc {
        self.geo.loc(seg, off)
    }

    /// The segment of a location (a division: writers only).
    #[inline]
    pub(crate) fn seg_of(&self, loc: Loc) -> u32 {
        self.geo.seg_of(loc)
    }

    /// The CAS unique of `it`, the item at `loc`: the one it stores, or the
    /// one derived from its segment's generation and its offset.
    ///
    /// The caller read `it` as [`item`](Arena::item) allows (so the
    /// segment keeps its generation meanwhile); for another `loc` the
    /// answer is wrong, never unsafe.
    #[inline]
    pub(crate) fn cas(&self, loc: Loc, it: &Item<'_>) -> u64 {
        match it.stored_cas() {
            Some(cas) => cas,
            None => {
                // ORDERING: stored before the head handed out any reservation
                // in the segment; the item's publication (the Release slot
                // store after its bytes, or the reservation's own mutexes)
                // carries it to whoever found the item.
                let gen = self.meta[self.seg_of(loc) as usize].gen.load(Ordering::Relaxed);
                self.geo.derived_cas(gen, loc)
            }
        }
    }

    /// The arena byte at `loc`, checked to leave `len` bytes in its
    /// segment (a writer's path).
    fn checked_byte(&self, loc: Loc, len: usize) -> usize {
        let byte = self.geo.byte(loc);
        assert!(loc != 0 && byte < self.size * self.count && self.geo.off_of(loc) + len <= self.size);
        byte
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
    pub(crate) unsafe fn item(&self, loc: Loc) -> Item<'_> {
        let byte = self.geo.byte(loc);
        debug_assert!(byte < self.size * self.count && self.geo.off_of(loc) + HEADER <= self.size);
        // SAFETY: inside the arena (checked above in debug builds; the
        // caller's contract makes it so).
        let p = unsafe { self.base.add(byte) };
        Item { p, unit: self.unit(), _arena: std::marker::PhantomData }
    }

    /// Writes a whole item at `loc` (the caller's reservation of exactly
    /// [`item_size`](Arena::item_size)`(key.len(), sum of parts, h.opt())`
    /// bytes).
    ///
    /// # Safety
    ///
    /// The bytes are the caller's reservation: no other thread reads or
    /// writes them until the caller publishes `loc` (or finishes the
    /// reservation).
    pub(crate) unsafe fn write(&self, loc: Loc, h: &NewItem, key: &[u8], parts: &[&[u8]]) {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        let opt = h.opt();
        let byte = self.checked_byte(loc, self.item_size(key.len(), vlen, opt));
        assert!(!key.is_empty() && key.len() <= 255 && vlen <= VLEN_MASK as usize);
        let lens = vlen as u32 | if h.token != 0 { TOKEN_BIT } else { 0 } | if h.stale != 0 { STALE_BIT } else { 0 };
        // SAFETY: inside the arena and its segment (asserted), unit-aligned
        // (so 4-aligned), and private to the caller by the contract; the
        // optional fields are written unaligned; the copies do not overlap
        // the sources (an old item lives at another location).
        unsafe {
            let p = self.base.add(byte);
            (p as *mut u32).write(lens);
            (p.add(4) as *mut u32).write(h.exp);
            (p.add(8) as *mut u32).write(hint_word(h.atime, h.fetched));
            p.add(12).write(key.len() as u8);
            p.add(13).write(opt);
            let mut q = p.add(HEADER);
            if opt & HAS_FLAGS != 0 {
                (q as *mut u32).write_unaligned(h.flags);
                q = q.add(4);
            }
            if let Some(cas) = h.cas {
                (q as *mut u64).write_unaligned(cas);
                q = q.add(8);
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), q, key.len());
            q = q.add(key.len());
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
    pub(crate) unsafe fn write_filler(&self, loc: Loc, len: usize) {
        let byte = self.checked_byte(loc, len);
        assert!(len >= HEADER && len - HEADER <= VLEN_MASK as usize && len.is_multiple_of(self.unit()));
        // SAFETY: inside the arena and its segment (asserted), unit-aligned,
        // private to the caller.
        unsafe {
            let p = self.base.add(byte);
            (p as *mut u32).write((len - HEADER) as u32);
            (p.add(12) as *mut u16).write(0);
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
    /// A CAS unique to store (the cleaner's copies); `None`: derived from
    /// where the item is written.
    pub(crate) cas: Option<u64>,
    pub(crate) exp: u32,
    pub(crate) atime: u32,
    pub(crate) flags: u32,
    pub(crate) fetched: u8,
    pub(crate) token: u8,
    pub(crate) stale: u8,
}

impl NewItem {
    /// The `opt` byte the item will have.
    #[inline]
    pub(crate) fn opt(&self) -> u8 {
        opt_for(self.flags, self.cas.is_some())
    }
}

/// An item in the arena (see the layout in the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    p: *const u8,
    /// The arena's unit (items are padded to it).
    unit: usize,
    _arena: std::marker::PhantomData<&'a Arena>,
}

impl<'a> Item<'a> {
    #[inline]
    fn atomic_u32(&self, off: usize) -> &'a AtomicU32 {
        // SAFETY: `Arena::item`'s contract: the header is written and
        // readable at this offset; every access to this field after
        // publication is atomic, and AtomicU32 has u32's layout and
        // alignment (4, as every item: the unit is at least 4).
        unsafe { &*(self.p.add(off) as *const AtomicU32) }
    }

    /// `klen` below, `opt` above: the immutable bytes 12 and 13.
    #[inline]
    fn shape(&self) -> u16 {
        // SAFETY: as in `atomic_u32`: written before publication and
        // immutable; 2-aligned (items are 4-aligned).
        unsafe { (self.p.add(12) as *const u16).read() }
    }

    #[inline]
    fn opt(&self) -> u8 {
        (self.shape() >> 8) as u8
    }

    #[inline]
    fn lens(&self) -> u32 {
        // ORDERING: the length and stale bits are immutable; the token bit
        // is read by its callers under the shard lock, or as a hint.
        self.atomic_u32(0).load(Ordering::Relaxed)
    }

    /// The CAS unique the item stores (a cleaner's copy), if any; see
    /// [`Arena::cas`] for every item's.
    #[inline]
    pub(crate) fn stored_cas(&self) -> Option<u64> {
        let opt = self.opt();
        (opt & HAS_CAS != 0).then(|| {
            // SAFETY: as in `shape`: the field is present (the `opt` bit),
            // after the flags when they are present; unaligned.
            unsafe { (self.p.add(HEADER + usize::from(opt & HAS_FLAGS)) as *const u64).read_unaligned() }
        })
    }

    /// Relative expiry (0 = never).
    #[inline]
    pub(crate) fn exp(&self) -> u32 {
        // ORDERING: `exp` changes under the shard lock; a reader may see the
        // old or the new expiry of a concurrent touch, either is correct.
        self.atomic_u32(4).load(Ordering::Relaxed)
    }

    /// Sets the expiry. The caller holds the item's shard lock.
    #[inline]
    pub(crate) fn set_exp(&self, exp: u32) {
        // ORDERING: see `exp`.
        self.atomic_u32(4).store(exp, Ordering::Relaxed);
    }

    /// The recency hints: last access or store time, and `fetched`.
    #[inline]
    pub(crate) fn recency(&self) -> (u32, u8) {
        // ORDERING: hints; they order no other memory.
        let w = self.atomic_u32(8).load(Ordering::Relaxed);
        (w & ATIME_MASK, (w >> FETCHED_SHIFT) as u8)
    }

    /// Stores the recency hints: a plain store, not an RMW (any thread, with
    /// or without the shard lock; a racing store wins or loses whole, which
    /// only loses a hint). Callers store only when a hint changes, so a hit
    /// writes the item's line at most twice per update interval.
    #[inline]
    pub(crate) fn set_recency(&self, atime: u32, fetched: u8) {
        // ORDERING: as in `recency`.
        self.atomic_u32(8).store(hint_word(atime, fetched), Ordering::Relaxed);
    }

    /// Client flags (0 when the item stores none).
    #[inline]
    pub(crate) fn flags(&self) -> u32 {
        if self.opt() & HAS_FLAGS == 0 {
            return 0;
        }
        // SAFETY: as in `shape`: the field is present; unaligned.
        unsafe { (self.p.add(HEADER) as *const u32).read_unaligned() }
    }

    /// Whether this is a filler, not an item.
    #[inline]
    pub(crate) fn is_filler(&self) -> bool {
        self.klen() == 0
    }

    #[inline]
    fn klen(&self) -> usize {
        usize::from(self.shape() as u8)
    }

    #[inline]
    fn vlen(&self) -> usize {
        (self.lens() & VLEN_MASK) as usize
    }

    /// Bytes the item (or filler) takes in its segment.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        item_size(self.klen(), self.vlen(), self.opt(), self.unit)
    }

    /// Bytes a copy of the item by the cleaner takes (its CAS stored):
    /// what [`SegMeta::live`] counts for it.
    #[inline]
    pub(crate) fn kept_size(&self) -> usize {
        item_size(self.klen(), self.vlen(), self.opt() | HAS_CAS, self.unit)
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
        let cell = self.atomic_u32(0);
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
        let shape = self.shape();
        let at = header_len((shape >> 8) as u8);
        // SAFETY: as in `shape`: `klen` bytes after the header are the key.
        unsafe { std::slice::from_raw_parts(self.p.add(at), usize::from(shape as u8)) }
    }

    /// The value.
    #[inline]
    pub(crate) fn value(&self) -> &'a [u8] {
        let shape = self.shape();
        let at = header_len((shape >> 8) as u8) + usize::from(shape as u8);
        // SAFETY: as in `shape`: `vlen` bytes after the key are the value.
        unsafe { std::slice::from_raw_parts(self.p.add(at), self.vlen()) }
    }

    /// The header as it is now, for a new item of the same key (atomics
    /// read Relaxed: the caller holds the shard lock, which orders every
    /// writer of `exp` and the token; a reader's concurrent hint store may
    /// be missed, which only loses a recency hint). The CAS is left to be
    /// derived; a copy that keeps it sets it.
    pub(crate) fn snapshot(&self) -> NewItem {
        let (atime, fetched) = self.recency();
        NewItem {
            cas: None,
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
    fn a_header_is_14_bytes_and_the_optional_fields_4_and_8() {
        // The benchmark's item (32-byte key, 100-byte value): 148 bytes
        // (146 padded to 4); 4 more with flags, 8 more with a stored CAS.
        assert_eq!(item_size(32, 100, 0, 4), 148);
        assert_eq!(item_size(32, 100, HAS_FLAGS, 4), 152);
        assert_eq!(item_size(32, 100, HAS_CAS, 4), 156);
        assert_eq!(item_size(32, 100, HAS_FLAGS | HAS_CAS, 4), 160);
        assert_eq!(HEADER_MAX, 26);
        assert_eq!(item_size(1, 0, 0, 4), 16);
        assert_eq!(item_size(1, 1, 0, 4), 16);
        assert_eq!(item_size(1, 2, 0, 4), 20);
        // Past 16 GiB of arena the unit, and the padding, grows.
        assert_eq!(item_size(32, 100, 0, 8), 152);
        assert_eq!(item_size(32, 100, 0, 16), 160);
        assert_eq!(item_size(32, 100, 0, 32), 160);
        assert_eq!(item_size(1, 0, 0, 32), 32);
        assert_eq!((opt_for(0, false), opt_for(1, false), opt_for(0, true), opt_for(7, true)), (0, 4, 8, 12));
    }

    /// Derived uniques: the offset in units below `cas_shift` bits, the
    /// generation above; distinct for every offset and generation, never 0
    /// from generation 1.
    #[test]
    fn derived_uniques_split_generation_and_offset() {
        const MIB: usize = 1 << 20;
        let g = Geometry::new(MIB, 1023).unwrap();
        assert_eq!(g.cas_shift(), 18);
        // A segment that is not a power of two rounds the offset bits up.
        assert_eq!(Geometry::new(1536 * 1024 + 8, 4).unwrap().cas_shift(), 19);
        for gen in [1u64, 2, 1 << 40] {
            for (seg, off) in [(0, 0), (0, 4), (0, MIB - 4), (7, 0), (1022, MIB - 4)] {
                let cas = g.derived_cas(gen, g.loc(seg, off));
                assert_ne!(cas, 0);
                assert_eq!(cas >> 18, gen);
                assert_eq!((cas & ((1 << 18) - 1)) as usize, off / 4);
            }
        }
        let uniques: std::collections::HashSet<u64> =
            [0usize, 4, 8, MIB - 4].iter().map(|&off| g.derived_cas(3, g.loc(5, off))).collect();
        assert_eq!(uniques.len(), 4);
        assert!(g.derived_cas(2, g.loc(0, MIB - 4)) < g.derived_cas(3, g.loc(0, 0)));
    }

    #[test]
    fn the_unit_is_the_smallest_that_addresses_the_arena() {
        const GIB: usize = 1 << 30;
        assert_eq!(unit_for(64 << 20), 4);
        assert_eq!(unit_for(16 * GIB - 1), 4);
        assert_eq!(unit_for(16 * GIB), 8);
        assert_eq!(unit_for(32 * GIB - 1), 8);
        assert_eq!(unit_for(32 * GIB), 16);
        assert_eq!(unit_for(1 << 40), 512);
    }

    /// Locations round-trip at both ends of arenas from 1 GiB (`-m 1024`)
    /// to 1 TiB, 1 MiB segments and odd-sized ones (`-I` not a power of
    /// two), computed without allocating them.
    #[test]
    fn locations_round_trip_at_the_extremes() {
        const MIB: usize = 1 << 20;
        for (size, count, unit) in [
            (MIB, 1023, 4),
            // 16 GiB less a segment (`-m 16384` less the index's reserve).
            (MIB, 16 * 1024 - 1, 4),
            (MIB, 16 * 1024, 8),
            (MIB, 32 * 1024 + 5, 16),
            (MIB, 1 << 20, 512),
            // 1.5 MiB + 8 bytes (`-I 1536k`: not a power of two), at 24 GiB.
            (1536 * 1024 + 8, 16 * 1024, 8),
            (64 << 10, 2, 4),
        ] {
            let g = Geometry::new(size, count).unwrap();
            assert_eq!(g.unit(), unit, "{size} x {count}");
            let last = size - unit;
            for (seg, off) in [(0, 0), (0, unit), (0, last), (1, 0), (count as u32 - 1, 0), (count as u32 - 1, last)] {
                let loc = g.loc(seg, off);
                assert_ne!(loc, 0);
                assert_eq!((g.seg_of(loc), g.off_of(loc)), (seg, off), "{size} x {count}: {seg}/{off}");
                assert_eq!(g.byte(loc), seg as usize * size + off);
            }
            assert_eq!(g.loc(0, 0), 1);
            // The last unit of the arena has the largest location, within u32.
            assert_eq!(u64::from(g.loc(count as u32 - 1, last)), ((size * count) / unit) as u64);
        }
        // A unit too small for the arena, or one that does not divide the
        // segments, is refused.
        assert!(Geometry::with_unit(MIB, 16 * 1024, 4).is_none());
        assert!(Geometry::with_unit(1536 * 1024 + 8, 4, 16).is_none());
    }

    /// A small arena with a forced 32-byte unit: items are padded to it,
    /// written and read back at unit offsets, and a walk by item sizes
    /// lands on each.
    #[test]
    fn a_larger_unit_pads_and_walks() {
        let a = Arena::with_geometry(Geometry::with_unit(64 << 10, 2, 32).unwrap()).unwrap();
        assert_eq!(a.unit(), 32);
        let h = NewItem { cas: None, exp: 0, atime: 0, flags: 3, fetched: 0, token: 0, stale: 0 };
        let mut off = 0;
        let mut locs = Vec::new();
        for (i, vlen) in [1usize, 100, 7, 8, 200].into_iter().enumerate() {
            let value = vec![i as u8; vlen];
            let loc = a.loc(1, off);
            // SAFETY: the test owns the arena; nothing else reads it.
            unsafe { a.write(loc, &h, &[b'a' + i as u8; 9], &[&value]) };
            assert_eq!(a.item_size(9, vlen, HAS_FLAGS) % 32, 0);
            off += a.item_size(9, vlen, HAS_FLAGS);
            locs.push((loc, value));
        }
        let filler = a.loc(1, off);
        // SAFETY: as above.
        unsafe { a.write_filler(filler, 64) };
        let mut walk = 0;
        for (i, (loc, value)) in locs.iter().enumerate() {
            assert_eq!(a.loc(1, walk), *loc);
            assert_eq!(a.seg_of(*loc), 1);
            // SAFETY: written above.
            let it = unsafe { a.item(*loc) };
            assert_eq!((it.key(), it.value(), it.flags()), (&[b'a' + i as u8; 9][..], &value[..], 3));
            walk += it.size();
        }
        // SAFETY: as above.
        let f = unsafe { a.item(a.loc(1, walk)) };
        assert!(f.is_filler());
        assert_eq!(f.size(), 64);
    }

    #[test]
    fn every_field_round_trips_at_its_limits() {
        let a = arena();
        let key = [b'k'; 250];
        let value = vec![7u8; 1000];
        let h = NewItem {
            cas: Some(u64::MAX),
            exp: u32::MAX,
            atime: 12345,
            flags: u32::MAX,
            fetched: 1,
            token: 1,
            stale: 1,
        };
        // An offset that is 4- but not 8-aligned: the optional fields are
        // read unaligned.
        let loc = a.loc(1, 4);
        // SAFETY: the test owns the arena; nothing else reads it.
        let it = unsafe {
            a.write(loc, &h, &key, &[&value[..10], &value[10..]]);
            a.item(loc)
        };
        assert_eq!(
            (it.stored_cas(), it.exp(), it.recency(), it.flags()),
            (Some(u64::MAX), u32::MAX, (12345, 1), u32::MAX)
        );
        assert_eq!(a.cas(loc, &it), u64::MAX);
        assert!(it.token() && it.stale() && !it.is_filler());
        assert_eq!((it.key(), it.value()), (&key[..], &value[..]));
        assert_eq!(it.size(), a.item_size(250, 1000, HAS_FLAGS | HAS_CAS));
        assert_eq!(it.kept_size(), it.size());
        let s = it.snapshot();
        assert_eq!(
            (s.cas, s.exp, s.atime, s.flags, s.fetched, s.token, s.stale),
            (None, u32::MAX, 12345, u32::MAX, 1, 1, 1)
        );
    }

    /// Flags present or absent, CAS stored or derived: each of the four
    /// shapes reads back its key, value, flags and unique, and takes the
    /// bytes its `opt` says.
    #[test]
    fn the_optional_fields_round_trip_in_every_combination() {
        let a = arena();
        a.meta[1].gen.store(5, Ordering::Relaxed);
        let mut off = 0;
        for (flags, cas) in [(0, None), (9, None), (0, Some(1234)), (u32::MAX, Some(u64::MAX - 1))] {
            let h = NewItem { cas, exp: 3, atime: 4, flags, fetched: 0, token: 0, stale: 0 };
            let loc = a.loc(1, off);
            // SAFETY: the test owns the arena; nothing else reads it.
            let it = unsafe {
                a.write(loc, &h, b"some key", &[b"val", b"ue"]);
                a.item(loc)
            };
            assert_eq!(
                (it.key(), it.value(), it.flags(), it.stored_cas()),
                (&b"some key"[..], &b"value"[..], flags, cas)
            );
            assert_eq!(it.size(), a.item_size(8, 5, opt_for(flags, cas.is_some())));
            assert_eq!(it.kept_size(), a.item_size(8, 5, opt_for(flags, true)));
            let derived = 5 << a.cas_shift() | (off / 4) as u64;
            assert_eq!(a.cas(loc, &it), cas.unwrap_or(derived));
            assert_eq!((it.exp(), it.recency()), (3, (4, 0)));
            off += it.size();
        }
        assert_eq!(off, 28 + 32 + 36 + 40);
    }

    #[test]
    fn the_mutable_bits_leave_their_neighbours_alone() {
        let a = arena();
        let h = NewItem { cas: Some(99), exp: 5, atime: 6, flags: 7, fetched: 0, token: 0, stale: 0 };
        let loc = a.loc(0, 0);
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
        assert_eq!((it.stored_cas(), it.exp(), it.flags(), it.key()), (Some(99), 0, 7, &b"key"[..]));
        it.set_recency(8, FETCHED);
        assert_eq!(it.recency(), (8, FETCHED));
    }

    #[test]
    fn a_filler_spans_its_reservation() {
        let a = arena();
        let loc = a.loc(0, 8);
        // SAFETY: as above.
        let it = unsafe {
            a.write_filler(loc, 156);
            a.item(loc)
        };
        assert!(it.is_filler());
        assert_eq!(it.size(), 156);
    }
}
