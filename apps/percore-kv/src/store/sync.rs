//! The one door to atomics for the store's lock-free protocol.
//!
//! Every atomic the table's read/write protocol relies on comes from here, so
//! that `RUSTFLAGS="--cfg loom"` swaps them for loom's model-checked versions
//! (as `percore-smr`'s `loom` module does). The spin lock writers take per
//! shard is here too: under loom its spin is a yield.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

/// Spin hint; under loom a yield so the model makes progress.
#[inline]
fn spin_loop(spins: u32) {
    #[cfg(not(loom))]
    {
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    #[cfg(loom)]
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
