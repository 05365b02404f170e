//! `Thunk`: a spawned closure, type-erased, stored in the recycled cell
//! itself when it is small.
//!
//! # Why
//!
//! `spawn` used to box every closure (`Box<dyn FnOnce>`). The spawner
//! allocates and a worker frees, so each job paid one malloc and one
//! cross-thread free: about 230 of the 672 instructions per job that
//! callgrind counted on the `pool_throughput` loop (issue 15). Most spawned
//! closures capture a few words (an `Arc`, a reference, a counter), so the
//! cell now keeps `INLINE_WORDS` words for them; a larger or more aligned
//! closure is boxed and the box (one word) is kept inline instead.
//!
//! # Representation
//!
//! ```text
//!   Thunk { buf: [MaybeUninit<usize>; INLINE_WORDS], vtable: &'static VTable }
//!           `- holds an F (fits) or a Box<F> (does not)     `- call::<G, R>, drop::<G>
//! ```
//!
//! Invariant: `buf` holds an initialised value of the type `G` that
//! `vtable` was made for (`G` is `F` or `Box<F>`), and `G` fits `buf`
//! (size and alignment, checked at compile time by `fits::<G>`). Exactly
//! one of `call` (consumes the value) or `Drop` (drops it) runs, once:
//! `call` takes `self` by value and wraps it in `ManuallyDrop` first.
//!
//! A `Thunk` is only ever touched by the one party the cell's state word
//! names (see `spawn.rs`); it is `Send` because the closure is.

use std::any::Any;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::ptr;

/// Words of closure state a cell stores without allocating (32 bytes on
/// 64-bit targets: an `Arc` and three more words, say).
pub(crate) const INLINE_WORDS: usize = 4;

/// What a job's closure returns, type-erased (`JoinHandle` downcasts it).
pub(crate) type Output = Box<dyn Any + Send>;

/// The two operations on the erased value, for one concrete type.
struct VTable {
    /// Move the value out of the buffer and run it.
    call: unsafe fn(*mut u8) -> Output,
    /// Drop the value in place.
    drop: unsafe fn(*mut u8),
}

/// A type-erased `FnOnce() -> Output + Send` (see the module documentation).
pub(crate) struct Thunk {
    /// The closure, or its box; see the invariant above.
    buf: [MaybeUninit<usize>; INLINE_WORDS],
    vtable: &'static VTable,
}

// SAFETY: the value in `buf` is an `F: Send` or a `Box<F>` of one (`new`'s
// bounds), and nothing else in a `Thunk` refers to any thread.
unsafe impl Send for Thunk {}

/// Whether a `G` fits the inline buffer (size and alignment).
const fn fits<G>() -> bool {
    mem::size_of::<G>() <= mem::size_of::<[usize; INLINE_WORDS]>() && mem::align_of::<G>() <= mem::align_of::<usize>()
}

/// `VTable::call` for a `G` that returns `R`.
///
/// # Safety
///
/// `p` points at an initialised `G`, aligned, that nobody uses afterwards.
unsafe fn call<G: FnOnce() -> R, R: Send + 'static>(p: *mut u8) -> Output {
    // SAFETY: the caller's promise: an initialised, aligned `G`, read once.
    let g = unsafe { ptr::read(p.cast::<G>()) };
    Box::new(g())
}

/// `VTable::drop` for a `G`.
///
/// # Safety
///
/// As for `call`.
unsafe fn drop_value<G>(p: *mut u8) {
    // SAFETY: the caller's promise: an initialised, aligned `G`, dropped once.
    unsafe { ptr::drop_in_place(p.cast::<G>()) }
}

/// The vtable of one `(G, R)`, as a promoted constant.
struct Table<G, R>(std::marker::PhantomData<(G, R)>);

impl<G: FnOnce() -> R, R: Send + 'static> Table<G, R> {
    const VTABLE: VTable = VTable { call: call::<G, R>, drop: drop_value::<G> };
}

impl Thunk {
    /// Erase `f`, inline if it fits, else boxed.
    #[inline]
    pub(crate) fn new<F, R>(f: F) -> Thunk
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if fits::<F>() {
            Thunk::store(f)
        } else {
            Thunk::store(Box::new(f))
        }
    }

    /// Put a `G` that fits into a fresh buffer.
    #[inline]
    fn store<G: FnOnce() -> R, R: Send + 'static>(g: G) -> Thunk {
        const { assert!(fits::<Box<()>>()) };
        assert!(fits::<G>(), "Thunk::store of a type that does not fit");
        let mut buf = [MaybeUninit::<usize>::uninit(); INLINE_WORDS];
        // SAFETY: `buf` is large and aligned enough for a `G` (`fits`, just
        // checked; the branch folds away at compile time), and is fresh.
        unsafe { ptr::write(buf.as_mut_ptr().cast::<G>(), g) };
        Thunk { buf, vtable: &Table::<G, R>::VTABLE }
    }

    /// Run the closure and box its result. A panic unwinds out of here with
    /// the closure consumed (its captures dropped by the unwinding).
    #[inline]
    pub(crate) fn call(self) -> Output {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: the invariant: `buf` holds the vtable's initialised `G`;
        // `ManuallyDrop` keeps `Drop` from touching it after `call` moved it
        // out (also when the closure panics).
        unsafe { (me.vtable.call)(me.buf.as_mut_ptr().cast()) }
    }
}

impl Drop for Thunk {
    fn drop(&mut self) {
        // SAFETY: the invariant: `buf` holds the vtable's initialised `G`,
        // and `call` (the only other consumer) never lets `Drop` run.
        unsafe { (self.vtable.drop)(self.buf.as_mut_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops into the shared counter.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn run(t: Thunk) -> u64 {
        *t.call().downcast::<u64>().expect("a u64")
    }

    #[test]
    fn fits_is_about_size_and_alignment() {
        assert!(fits::<()>());
        assert!(fits::<[usize; INLINE_WORDS]>());
        assert!(!fits::<[usize; INLINE_WORDS + 1]>());
        #[repr(align(64))]
        struct Aligned(#[allow(dead_code)] u8);
        assert!(!fits::<Aligned>());
        assert!(fits::<Box<Aligned>>());
    }

    #[test]
    fn closures_of_every_shape_run_once_and_drop_their_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        // Zero-sized, one word, exactly the buffer, one word too big, and
        // over-aligned: inline, inline, inline, boxed, boxed.
        assert_eq!(run(Thunk::new(|| 7u64)), 7);
        let c = Counted(drops.clone());
        assert_eq!(run(Thunk::new(move || c.0.load(Ordering::SeqCst) as u64 + 1)), 1);
        let (c, pad) = (Counted(drops.clone()), [1u64; INLINE_WORDS - 1]);
        assert_eq!(run(Thunk::new(move || pad.iter().sum::<u64>() + c.0.load(Ordering::SeqCst) as u64)), 4);
        let (c, pad) = (Counted(drops.clone()), [1u64; INLINE_WORDS]);
        assert_eq!(run(Thunk::new(move || pad.iter().sum::<u64>() + c.0.load(Ordering::SeqCst) as u64)), 6);
        #[repr(align(64))]
        struct Aligned(u64);
        let (c, a) = (Counted(drops.clone()), Aligned(40));
        assert_eq!(run(Thunk::new(move || a.0 + c.0.load(Ordering::SeqCst) as u64)), 43);
        assert_eq!(drops.load(Ordering::SeqCst), 4, "each capture dropped once, after its call");
    }

    #[test]
    fn dropping_an_uncalled_thunk_drops_its_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let c = Counted(drops.clone());
        drop(Thunk::new(move || drop(c)));
        let (c, pad) = (Counted(drops.clone()), [0u8; 100]);
        drop(Thunk::new(move || {
            drop(c);
            pad.len()
        }));
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_closure_drops_its_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        for big in [false, true] {
            let (c, pad) = (Counted(drops.clone()), [0u64; INLINE_WORDS]);
            let t = if big {
                Thunk::new(move || -> u64 {
                    let _c = c;
                    panic!("boom {}", pad.len())
                })
            } else {
                Thunk::new(move || -> u64 {
                    let _c = c;
                    panic!("boom")
                })
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || t.call()));
            assert!(r.is_err());
        }
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}
