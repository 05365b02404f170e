//! Deferred destructors and the batches that carry them.
//!
//! `retire` and `defer` append a [`Deferred`] to the calling participant's
//! untagged [`Batch`]. When the batch is full it is tagged with one
//! `advance()` and queued on the domain; it is run once `poll(tag)` succeeds.
//! The heavy fence is thus paid once per batch, never per object: FreeBSD's
//! UMA tags a whole bucket at free and polls at reuse in the same way.
//!
//! A `Deferred` runs when it is dropped. Whoever holds one and lets it go
//! (normal reclamation, domain teardown, even unwinding from a panicking
//! destructor in the same batch) runs it, so nothing retired is ever leaked.

use crate::seq::Seq;
use std::mem;

/// One deferred destructor: a type-erased pointer and the function that
/// consumes it.
pub(crate) struct Deferred {
    data: *mut (),
    call: unsafe fn(*mut ()),
}

// SAFETY: built only from boxed `T: Send` or closures that are `Send`;
// running it on another thread is what `Send` allows.
unsafe impl Send for Deferred {}

impl Deferred {
    /// Drop the `Box<T>` behind `p` later.
    ///
    /// NOTE: `p` stays a raw pointer until the destructor runs: readers may
    /// still hold shared references to `*p`, so no `Box` (a unique
    /// reference) may exist before the grace period ends (issue 16).
    ///
    /// # Safety
    ///
    /// `p` is non-null, came from `Box::<T>::into_raw`, and nobody else frees
    /// or writes through it (the contract of `Smr::retire`).
    pub(crate) unsafe fn boxed<T: Send + 'static>(p: *mut T) -> Deferred {
        unsafe fn drop_box<T>(p: *mut ()) {
            // SAFETY: `p` came from `Box::<T>::into_raw` (the caller of
            // `boxed` promised it) and is consumed exactly once (`Deferred`
            // runs only in its `Drop`), after the grace period.
            drop(unsafe { Box::from_raw(p.cast::<T>()) });
        }
        Deferred { data: p.cast(), call: drop_box::<T> }
    }

    /// Call `f` later.
    pub(crate) fn closure<F: FnOnce() + Send + 'static>(f: F) -> Deferred {
        unsafe fn call_box<F: FnOnce()>(p: *mut ()) {
            // SAFETY: `p` came from `Box::<F>::into_raw` in `closure` and is
            // consumed exactly once. A zero-sized `F` allocates nothing.
            let f = unsafe { Box::from_raw(p.cast::<F>()) };
            f();
        }
        Deferred { data: Box::into_raw(Box::new(f)).cast(), call: call_box::<F> }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        // SAFETY: `data` and `call` were made together by `boxed` or
        // `closure`, and drop runs once.
        unsafe { (self.call)(self.data) }
    }
}

/// Retired objects sharing one goal (or none yet, while untagged).
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) items: Vec<Deferred>,
    /// Bytes of the retired objects (closures count their captures).
    pub(crate) bytes: usize,
}

impl Batch {
    pub(crate) fn push(&mut self, d: Deferred, bytes: usize) {
        self.items.push(d);
        self.bytes += bytes;
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn take(&mut self) -> Batch {
        mem::take(self)
    }
}

/// A batch waiting for its goal to expire.
pub(crate) struct Tagged {
    pub(crate) tag: Seq,
    pub(crate) batch: Batch,
}
