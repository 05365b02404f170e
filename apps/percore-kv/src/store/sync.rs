//! The one door to atomics and SMR for the store's lock-free protocol.
//!
//! Every atomic the table's read/write protocol relies on comes from here, so
//! that the `loom` feature swaps them for loom's model-checked versions (as
//! `percore-smr`'s `loom` module does under `--cfg loom`). The spin lock
//! writers take per shard is here too: under loom its spin is a yield.
//!
//! Under the feature, `Smr` is a small model of GUS with loom atomics (the
//! real percore-smr cannot be built for loom inside this crate: its facade's
//! runtime is configured out under `--cfg loom`). It keeps the contract the
//! table relies on: a goal returned by `advance` expires only once every
//! section that could have seen the state before the advance has ended.
//! percore-smr's own loom models check that the real domain keeps it.

#[cfg(feature = "loom")]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

#[cfg(not(feature = "loom"))]
pub(crate) use percore::smr::{Guard, Seq, Smr};
#[cfg(feature = "loom")]
pub(crate) use smr_model::{Guard, Seq, Smr};

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

/// Spin hint; under loom a yield so the model makes progress.
#[inline]
fn spin_loop(spins: u32) {
    #[cfg(not(feature = "loom"))]
    {
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    #[cfg(feature = "loom")]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
}

/// A test-and-test-and-set lock around `T`, for sections of a few hundred
/// nanoseconds that never block (a shard's writers).
///
/// It is held inside an SMR section on worker uthreads, so it must never be
/// held across anything that can sleep or switch; a waiter spins, then
/// yields its OS thread.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands `T` to one thread at a time (acquire in `lock`,
// release in the guard's drop), so sharing the lock shares `T` only as
// `Mutex<T>` does.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; owning the lock owns `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A lock around `value`.
    pub(crate) fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Takes the lock, spinning while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        // ORDERING: Acquire pairs with the Release store in `SpinGuard::drop`:
        // the previous holder's writes to `T` (and to the table it guards)
        // happen before ours.
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        SpinGuard { lock: self }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0;
        loop {
            // ORDERING: a hint only; the exchange below acquires.
            while self.locked.load(Ordering::Relaxed) {
                spin_loop(spins);
                spins += 1;
            }
            // ORDERING: as in `lock`.
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }
}

/// The holder's access to a [`SpinLock`]'s value; unlocks when dropped.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the lock, and `&mut
        // self` that no other reference to the value is live.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // ORDERING: Release pairs with the Acquire exchange in `lock`.
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// The GUS model used under loom (see the module docs).
#[cfg(feature = "loom")]
mod smr_model {
    use std::cell::Cell;
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

    use loom::sync::atomic::{fence, AtomicU32, AtomicUsize};
    use loom::sync::Arc;

    const READERS: usize = 4;

    struct Inner {
        /// The write sequence; odd, starts at 1.
        wr: AtomicU32,
        /// Each reader's sequence while in a section, 0 outside.
        slots: [AtomicU32; READERS],
        next: AtomicUsize,
    }

    /// A domain (model).
    #[derive(Clone)]
    pub(crate) struct Smr(Arc<Inner>);

    /// A goal.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Seq(u32);

    /// A read section (model).
    pub(crate) struct Guard<'a> {
        smr: &'a Smr,
    }

    loom::thread_local! {
        static SLOT: Cell<usize> = Cell::new(usize::MAX);
        static NEST: Cell<u32> = Cell::new(0);
    }

    impl Smr {
        pub(crate) fn new(_name: &str) -> Result<Smr, std::convert::Infallible> {
            Ok(Smr(Arc::new(Inner {
                wr: AtomicU32::new(1),
                slots: std::array::from_fn(|_| AtomicU32::new(0)),
                next: AtomicUsize::new(0),
            })))
        }

        fn slot(&self) -> &AtomicU32 {
            let mut i = SLOT.with(Cell::get);
            if i == usize::MAX {
                i = self.0.next.fetch_add(1, Relaxed);
                SLOT.with(|s| s.set(i));
            }
            &self.0.slots[i]
        }

        pub(crate) fn enter(&self) -> Guard<'_> {
            if NEST.with(Cell::get) == 0 {
                self.slot().store(self.0.wr.load(SeqCst), SeqCst);
                // ORDERING: the fence the real reader's compiler fence
                // becomes under the writer's membarrier (percore-smr's sys).
                fence(SeqCst);
            }
            NEST.with(|n| n.set(n.get() + 1));
            Guard { smr: self }
        }

        pub(crate) fn in_section(&self) -> bool {
            NEST.with(Cell::get) > 0
        }

        pub(crate) fn advance(&self) -> Seq {
            // ORDERING: SeqCst with the readers' publication (GUS's
            // `smr_advance` is a release RMW followed by the poller's fence).
            Seq(self.0.wr.fetch_add(2, SeqCst) + 2)
        }

        pub(crate) fn poll(&self, goal: Seq, wait: bool) -> bool {
            let wait = wait && !self.in_section();
            loop {
                fence(SeqCst);
                let done = self.0.slots.iter().all(|s| {
                    // ORDERING: Acquire pairs with the Release exit store.
                    let v = s.load(Acquire);
                    v == 0 || v >= goal.0
                });
                if done || !wait {
                    return done;
                }
                loom::thread::yield_now();
            }
        }

        #[allow(dead_code)]
        pub(crate) fn synchronize(&self) -> Result<(), std::convert::Infallible> {
            let goal = self.advance();
            self.poll(goal, true);
            Ok(())
        }
    }

    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let n = NEST.with(|n| {
                n.set(n.get() - 1);
                n.get()
            });
            if n == 0 {
                // ORDERING: Release: the section's loads happen before a
                // poller that acquires 0 frees anything.
                self.smr.slot().store(0, Release);
            }
        }
    }
}
