//! # The port slot: opened on first use, closed once at exit
//!
//! A uthread's message port (`sync/port.rs`) is made by whoever first needs
//! it (a sender, or the uthread itself in `wait_msg`), and closed when the
//! uthread exits. Most uthreads never use theirs, so the slot must cost
//! nothing at spawn and little at exit; and a sender racing the exit must
//! never open a port after the close, where its message would wait for ever.
//!
//! The slot is one pointer word:
//!
//! | value | meaning | set by |
//! | --- | --- | --- |
//! | null | never opened, not closed | [`PortSlot::new`], [`PortSlot::reset`] |
//! | `CLOSED` | closed without ever being opened | [`PortSlot::close`] (CAS from null) |
//! | a `Box<T>` | opened (and maybe closed: the port keeps its own flag) | [`PortSlot::get_or_init`] (CAS from null) |
//!
//! Both transitions leave null by a compare-exchange on the one word, so
//! exactly one wins: if the opener's comes first, `close` fails, sees the
//! box and returns it for its caller to close; if the closer's comes first,
//! the opener fails, frees its box and sees `CLOSED`. No port is ever
//! opened after a close. The box is published by the release half of the
//! opener's CAS and read after an acquire load or a failed CAS (acquire).
//!
//! Exit costs one load and one compare-exchange (a `OnceLock` filled with a
//! "never opened" marker, as before, cost about 75 instructions: issue 15).
//! `tests/loom_portslot.rs` checks the race of two openers and a closer.

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use percore_cpu::loom::AtomicPtr;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed};

/// The address that marks a slot closed without a port: a static's, so no
/// allocation can have it. Never dereferenced.
static CLOSED_MARK: u8 = 0;

/// A lazily opened, once-closed slot for one `T` (see the module doc).
#[derive(Debug)]
pub struct PortSlot<T>(AtomicPtr<T>);

impl<T> Default for PortSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PortSlot<T> {
    /// Never opened, not closed.
    pub fn new() -> Self {
        PortSlot(AtomicPtr::new(std::ptr::null_mut()))
    }

    #[inline]
    fn closed() -> *mut T {
        std::ptr::addr_of!(CLOSED_MARK).cast::<T>().cast_mut()
    }

    /// The value, made by `make` on first use; `None` once the slot was
    /// closed without ever being opened.
    #[inline]
    pub fn get_or_init(&self, make: impl FnOnce() -> T) -> Option<&T> {
        // ORDERING: acquire pairs with the release half of the opener's CAS
        // below: the box's contents are visible.
        let p = self.0.load(Acquire);
        if !p.is_null() {
            return self.deref(p);
        }
        self.open_slow(make)
    }

    #[cold]
    fn open_slow(&self, make: impl FnOnce() -> T) -> Option<&T> {
        let b = Box::into_raw(Box::new(make()));
        // ORDERING: release publishes the box; acquire on failure pairs with
        // the winner's release (another opener's box) or sees `CLOSED`.
        match self.0.compare_exchange(std::ptr::null_mut(), b, AcqRel, Acquire) {
            Ok(_) => self.deref(b),
            Err(q) => {
                // SAFETY: `b` came from `Box::into_raw` above and was never
                // published (the CAS failed).
                drop(unsafe { Box::from_raw(b) });
                self.deref(q)
            }
        }
    }

    /// Close the slot: from now on nobody opens it. Returns the value if it
    /// was opened (the caller closes it), `None` if it never was.
    #[inline]
    pub fn close(&self) -> Option<&T> {
        // ORDERING: acquire, as in `get_or_init`; on failure, the CAS's
        // acquire pairs with the opener's release.
        let p = match self.0.compare_exchange(std::ptr::null_mut(), Self::closed(), Acquire, Acquire) {
            Ok(_) => return None,
            Err(p) => p,
        };
        self.deref(p)
    }

    /// Make it a new uthread's slot again (`Thread::reuse`); drops the value
    /// if it was opened.
    #[inline]
    pub fn reset(&mut self) {
        self.free();
        // ORDERING: relaxed: `&mut self`, nobody else reads the word; the
        // record is shared again only through a release (the Spawn IPI).
        self.0.store(std::ptr::null_mut(), Relaxed);
    }

    /// `p` (non-null, read from the word) as a reference.
    #[inline]
    fn deref(&self, p: *mut T) -> Option<&T> {
        if p == Self::closed() {
            return None;
        }
        // SAFETY: a non-null word other than `CLOSED` is a box published by
        // a successful CAS, read with acquire; it is freed only through
        // `&mut self` (`reset`, `drop`), so it outlives this borrow.
        Some(unsafe { &*p })
    }

    #[inline]
    fn free(&mut self) {
        // ORDERING: relaxed: `&mut self` (whoever handed it over ordered
        // every earlier access before it).
        let p = self.0.load(Relaxed);
        if !p.is_null() && p != Self::closed() {
            Self::free_slow(p);
        }
    }

    /// Drop an opened port (rare: most uthreads never open theirs).
    #[cold]
    fn free_slow(p: *mut T) {
        // SAFETY: called by `free` with `&mut self` held: nobody else can
        // reach the box, which came from `Box::into_raw` in `open_slow`.
        drop(unsafe { Box::from_raw(p) });
    }
}

impl<T> Drop for PortSlot<T> {
    fn drop(&mut self) {
        self.free();
    }
}

// SAFETY: the slot owns a `T` (a box), shared by `&` across threads as
// `T: Sync` allows, and dropped by whoever drops the slot (`T: Send`).
unsafe impl<T: Send + Sync> Send for PortSlot<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for PortSlot<T> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn opened_then_closed_returns_the_value() {
        let s = PortSlot::new();
        assert_eq!(s.get_or_init(|| 7).copied(), Some(7));
        assert_eq!(s.get_or_init(|| 8).copied(), Some(7));
        assert_eq!(s.close().copied(), Some(7));
        assert_eq!(s.get_or_init(|| 9).copied(), Some(7));
    }

    #[test]
    fn closed_unopened_never_opens() {
        let mut s = PortSlot::new();
        assert!(s.close().is_none());
        assert!(s.get_or_init(|| 1).is_none());
        s.reset();
        assert_eq!(s.get_or_init(|| 2).copied(), Some(2));
    }
}
