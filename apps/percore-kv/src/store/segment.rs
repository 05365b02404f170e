//! Segments and the items in them: the memory layout of the engine (see the
//! essay in `engine.rs`).
//!
//! One arena of `count` segments of `size` bytes each is reserved at start
//! (`alloc_zeroed`: pages are mapped lazily, so only segments in use are
//! resident); a segment is *charged* to the budget the first time it is
//! handed out. An item's location is `(segment + 1) << 32 | offset`, never 0.
//!
//! # Item layout (8-byte aligned, 28 bytes of header)
//!
//! ```text
//! off  size  field    who writes it
//!   0     8  cas      the writer that builds the item; immutable once linked
//!   8     4  exp      atomic: touch / gat / ma T (under the shard lock)
//!  12     4  atime    atomic: a reader, at most once per ITEM_UPDATE_INTERVAL
//!  16     4  flags    immutable
//!  20     4  vlen     immutable (for a filler: bytes after the header)
//!  24     1  klen     immutable; 0 marks a filler (an abandoned reservation)
//!  25     1  fetched  atomic: 0 never fetched, 1 fetched, 3 fetched since the
//!                     item was written or last moved (a reader stores 3 only
//!                     when it is not 3 yet)
//!  26     1  token    atomic: a win token was handed out (under the shard lock)
//!  27     1  stale    immutable (`ms I` / `md I` write a new item)
//!  28  klen  key
//!   .  vlen  value    (no "\r\n")
//! ```

use std::alloc::Layout;
// NOTE: std atomics, not the loom shim: the header's atomics are views of
// raw segment bytes, which loom's atomics cannot be. The loom model covers
// the table's publish/retire protocol (`table.rs`, and its `loom_tests` module).
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Bytes of an item's header.
pub(crate) const HEADER: usize = 28;

/// `fetched` values.
pub(crate) const FETCHED: u8 = 1;
/// Fetched since the item was written or last moved.
pub(crate) const ACCESSED: u8 = 3;

/// Bytes an item with these lengths takes in a segment.
#[inline]
pub(crate) fn item_size(klen: usize, vlen: usize) -> usize {
    (HEADER + klen + vlen + 7) & !7
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
        // SAFETY: inside the arena (asserted), 8-aligned, and private to the
        // caller by the contract; the copies do not overlap the sources (an
        // old item lives at another location).
        unsafe {
            let p = self.base.add(seg * self.size + off);
            (p as *mut u64).write(h.cas);
            (p.add(8) as *mut u32).write(h.exp);
            (p.add(12) as *mut u32).write(h.atime);
            (p.add(16) as *mut u32).write(h.flags);
            (p.add(20) as *mut u32).write(vlen as u32);
            p.add(24).write(key.len() as u8);
            p.add(25).write(h.fetched);
            p.add(26).write(h.token);
            p.add(27).write(h.stale);
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
        assert!(seg < self.count && off + len <= self.size && len >= HEADER);
        // SAFETY: inside the arena (asserted), private to the caller.
        unsafe {
            let p = self.base.add(seg * self.size + off);
            (p.add(20) as *mut u32).write((len - HEADER) as u32);
            p.add(24).write(0);
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
        // atomic, and AtomicU32 has u32's layout.
        unsafe { &*(self.p.add(off) as *const AtomicU32) }
    }

    #[inline]
    fn atomic_u8(&self, off: usize) -> &'a AtomicU8 {
        // SAFETY: as in `atomic_u32`.
        unsafe { &*(self.p.add(off) as *const AtomicU8) }
    }

    /// The CAS unique.
    #[inline]
    pub(crate) fn cas(&self) -> u64 {
        // SAFETY: as in `u32_at`; 8-aligned.
        unsafe { (self.p as *const u64).read() }
    }

    /// Relative expiry (0 = never).
    #[inline]
    pub(crate) fn exp(&self) -> &'a AtomicU32 {
        self.atomic_u32(8)
    }

    /// Last access or store time.
    #[inline]
    pub(crate) fn atime(&self) -> &'a AtomicU32 {
        self.atomic_u32(12)
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
        // SAFETY: as in `u32_at`.
        usize::from(unsafe { self.p.add(24).read() })
    }

    #[inline]
    fn vlen(&self) -> usize {
        self.u32_at(20) as usize
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

    /// 0, [`FETCHED`] or [`ACCESSED`].
    #[inline]
    pub(crate) fn fetched(&self) -> &'a AtomicU8 {
        self.atomic_u8(25)
    }

    /// Whether a win token was handed out.
    #[inline]
    pub(crate) fn token(&self) -> &'a AtomicU8 {
        self.atomic_u8(26)
    }

    /// Stale (`X`).
    #[inline]
    pub(crate) fn stale(&self) -> bool {
        // SAFETY: as in `u32_at`.
        unsafe { self.p.add(27).read() != 0 }
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
    /// holds the shard lock, which orders every writer of `exp` and `token`;
    /// a reader's concurrent `fetched`/`atime` store may be missed, which
    /// only loses a recency hint).
    pub(crate) fn snapshot(&self) -> NewItem {
        // ORDERING: see the doc comment.
        NewItem {
            cas: self.cas(),
            exp: self.exp().load(Ordering::Relaxed),
            atime: self.atime().load(Ordering::Relaxed),
            flags: self.flags(),
            fetched: self.fetched().load(Ordering::Relaxed),
            token: self.token().load(Ordering::Relaxed),
            stale: u8::from(self.stale()),
        }
    }
}
