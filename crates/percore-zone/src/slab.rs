//! Slabs: the backing memory of a zone, many items per system allocation.
//!
//! # Problem
//!
//! Buckets hold *constructed* items; somebody has to own the raw memory they
//! were carved from, hand out more when the buckets run dry, and give memory
//! back to the system when a whole chunk is free again. That is UMA's *keg*.
//!
//! # Mechanism
//!
//! A slab is one allocation of `slab_bytes` (a power of two, at least 4 KiB),
//! aligned to its own size, so the slab that owns an item is found by
//! masking the item's address. The header lives at the start of the slab;
//! items follow at `item_offset`, `stride` bytes apart:
//!
//! ```text
//!  base (aligned to slab_bytes)
//!  | SlabHdr | pad | item 0 | item 1 | ... | item ipers-1 | tail |
//!            ^ item_offset  <-stride->
//! ```
//!
//! A slab hands out never-used items by bumping `fresh`; returned items are
//! threaded on an intrusive free list through their own (raw, unconstructed)
//! memory, which is why the stride is at least a pointer. The keg keeps
//! every slab in `slabs` and the ones with a free item in `partial`.
//!
//! # Invariants
//!
//! * Items in a slab's free list or beyond `fresh` are *raw*: no `T` lives
//!   there (for SMR zones also: no reader can reach them, see `cache.rs`).
//! * `items` counts items outside the keg (constructed or handed out); the
//!   zone's `max_items` bounds it.
//! * Every field of `KegInner` and every slab header is touched only under
//!   the keg's mutex (or with `&mut` in `Drop`).

use percore_cpu::loom::{Mutex, MutexGuard};
use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// A raw item on a slab's free list.
struct FreeItem {
    next: Option<NonNull<FreeItem>>,
}

/// At the start of every slab.
struct SlabHdr {
    /// Returned raw items.
    free: Option<NonNull<FreeItem>>,
    /// Items in use or cached (not free in this slab).
    used: usize,
    /// Items `fresh..ipers` were never handed out.
    fresh: usize,
    /// Whether the slab is on the keg's `partial` list.
    in_partial: bool,
}

/// The geometry shared by every slab of a zone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) stride: usize,
    pub(crate) item_offset: usize,
    pub(crate) ipers: usize,
    pub(crate) slab: Layout,
}

impl Geometry {
    /// Geometry for items of `item` layout; `None` when impossibly large.
    pub(crate) fn new(item: Layout) -> Option<Geometry> {
        let align = item.align().max(align_of::<FreeItem>());
        let stride = item.size().max(size_of::<FreeItem>()).checked_next_multiple_of(align)?;
        let item_offset = size_of::<SlabHdr>().checked_next_multiple_of(align)?;
        // At least 4 KiB and room for 8 items (UMA picks a slab so that the
        // waste is small; 8 bounds it below 1/8 plus the header).
        let want = item_offset.checked_add(stride.checked_mul(8)?)?;
        let bytes = want.checked_next_power_of_two()?.max(4096);
        let slab = Layout::from_size_align(bytes, bytes.max(align)).ok()?;
        let ipers = (bytes - item_offset) / stride;
        Some(Geometry { stride, item_offset, ipers, slab })
    }
}

/// The slabs of one zone.
pub(crate) struct Keg {
    pub(crate) geo: Geometry,
    inner: Mutex<KegInner>,
}

/// Protected by `Keg::inner`.
pub(crate) struct KegInner {
    slabs: Vec<NonNull<SlabHdr>>,
    partial: Vec<NonNull<SlabHdr>>,
    /// Items outside the keg (see the module invariants).
    pub(crate) items: usize,
}

// SAFETY: the raw slab pointers are owned by the keg and touched only under
// its mutex; nothing in them is tied to a thread.
unsafe impl Send for KegInner {}

impl Keg {
    pub(crate) fn new(geo: Geometry) -> Keg {
        Keg { geo, inner: Mutex::new(KegInner { slabs: Vec::new(), partial: Vec::new(), items: 0 }) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, KegInner> {
        self.inner.lock()
    }

    /// Take up to `n` raw items into `out`, making new slabs as needed, but
    /// never letting `items` exceed `limit`. Returns how many were taken; an
    /// error only when the system refuses memory and nothing was taken.
    pub(crate) fn import(&self, n: usize, limit: usize, out: &mut Vec<NonNull<u8>>) -> Result<usize, usize> {
        let mut k = self.lock();
        let n = n.min(limit.saturating_sub(k.items));
        let mut got = 0;
        while got < n {
            let slab = match k.partial.last() {
                Some(&s) => s,
                None => match self.new_slab() {
                    Some(s) => {
                        k.slabs.push(s);
                        k.partial.push(s);
                        s
                    }
                    None if got == 0 => return Err(self.geo.slab.size()),
                    None => break,
                },
            };
            // SAFETY: `slab` is one of ours, alive, and we hold the lock.
            let hdr = unsafe { &mut *slab.as_ptr() };
            while got < n {
                let item = if let Some(f) = hdr.free {
                    // SAFETY: free-list entries are raw items of this slab
                    // whose first word we wrote in `release`.
                    hdr.free = unsafe { f.as_ref().next };
                    f.cast::<u8>()
                } else if hdr.fresh < self.geo.ipers {
                    let off = self.geo.item_offset + hdr.fresh * self.geo.stride;
                    hdr.fresh += 1;
                    // SAFETY: `off` is inside the slab allocation.
                    unsafe { slab.cast::<u8>().add(off) }
                } else {
                    break;
                };
                hdr.used += 1;
                out.push(item);
                got += 1;
            }
            if hdr.free.is_none() && hdr.fresh == self.geo.ipers {
                hdr.in_partial = false;
                k.partial.pop();
            }
        }
        k.items += got;
        Ok(got)
    }

    /// Return raw items (their `T` already dropped) to their slabs.
    pub(crate) fn release(&self, items: impl IntoIterator<Item = NonNull<u8>>) {
        let mut k = self.lock();
        for item in items {
            // NOTE: `map_addr` keeps the slab allocation's provenance (the
            // item pointer was derived from it), so Miri can follow it.
            let mask = !(self.geo.slab.size() - 1);
            let base = item.as_ptr().map_addr(|a| a & mask).cast::<SlabHdr>();
            // SAFETY: every item of this keg lies in a slab aligned to its
            // size, so masking yields the header, alive while the item is.
            let hdr_ptr = unsafe { NonNull::new_unchecked(base) };
            // SAFETY: as above; we hold the lock.
            let hdr = unsafe { &mut *hdr_ptr.as_ptr() };
            let f = item.cast::<FreeItem>();
            // SAFETY: the item is raw memory of at least `size_of::<FreeItem>()`
            // bytes, suitably aligned (see `Geometry::new`).
            unsafe { f.as_ptr().write(FreeItem { next: hdr.free }) };
            hdr.free = Some(f);
            hdr.used -= 1;
            k.items -= 1;
            if !hdr.in_partial {
                hdr.in_partial = true;
                k.partial.push(hdr_ptr);
            }
        }
    }

    /// Account for items allocated outside slabs (no-cache mode): `true` when
    /// `n` more fit under `limit`.
    pub(crate) fn charge(&self, n: usize, limit: usize) -> bool {
        let mut k = self.lock();
        if k.items + n > limit {
            return false;
        }
        k.items += n;
        true
    }

    /// Undo `charge`.
    pub(crate) fn uncharge(&self, n: usize) {
        self.lock().items -= n;
    }

    /// Give every slab with no item in use back to the system; returns how
    /// many.
    pub(crate) fn release_free_slabs(&self) -> usize {
        let mut k = self.lock();
        let k = &mut *k;
        let before = k.slabs.len();
        let layout = self.geo.slab;
        let unused = |s: &NonNull<SlabHdr>| {
            // SAFETY: the pointers are our live slabs, under the lock.
            unsafe { s.as_ref().used == 0 }
        };
        k.partial.retain(|s| !unused(s));
        k.slabs.retain(|s| {
            if unused(s) {
                // SAFETY: no item of this slab is in use or cached, nobody
                // can reach it any more, and it was allocated with `layout`.
                unsafe { dealloc(s.as_ptr().cast(), layout) };
                false
            } else {
                true
            }
        });
        before - k.slabs.len()
    }

    /// Number of slabs held.
    pub(crate) fn slabs(&self) -> usize {
        self.lock().slabs.len()
    }

    fn new_slab(&self) -> Option<NonNull<SlabHdr>> {
        // SAFETY: the layout has a non-zero size (at least 4 KiB).
        let p = NonNull::new(unsafe { alloc(self.geo.slab) })?.cast::<SlabHdr>();
        // SAFETY: fresh, aligned memory large enough for the header.
        unsafe { p.as_ptr().write(SlabHdr { free: None, used: 0, fresh: 0, in_partial: true }) };
        Some(p)
    }
}

impl Drop for Keg {
    fn drop(&mut self) {
        let k = self.inner.get_mut();
        for s in k.slabs.drain(..) {
            // SAFETY: allocated in `new_slab` with this layout; the zone is
            // gone, so no item can be reached any more.
            unsafe { dealloc(s.as_ptr().cast(), self.geo.slab) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn geometry_fits_items_and_header() {
        for (size, align) in [(0, 1), (1, 1), (64, 8), (64, 64), (3000, 8), (100_000, 16)] {
            let g = Geometry::new(Layout::from_size_align(size, align).unwrap()).unwrap();
            assert!(g.ipers >= 8, "{g:?}");
            assert!(g.item_offset + g.ipers * g.stride <= g.slab.size());
            assert_eq!(g.stride % align.max(8), 0);
        }
    }

    #[test]
    fn import_release_and_free_slabs() {
        let keg = Keg::new(Geometry::new(Layout::new::<[u64; 8]>()).unwrap());
        let per = keg.geo.ipers;
        let mut out = Vec::new();
        assert_eq!(keg.import(per + 1, usize::MAX, &mut out), Ok(per + 1));
        assert_eq!(keg.slabs(), 2);
        let uniq: std::collections::HashSet<_> = out.iter().collect();
        assert_eq!(uniq.len(), per + 1);
        // The limit caps imports.
        assert_eq!(keg.import(10, per + 3, &mut out), Ok(2));
        let last: Vec<_> = out.drain(per..).collect();
        keg.release(last);
        assert_eq!(keg.release_free_slabs(), 1);
        keg.release(out.drain(..));
        assert_eq!(keg.release_free_slabs(), 1);
        assert_eq!(keg.slabs(), 0);
        assert_eq!(keg.lock().items, 0);
    }
}
