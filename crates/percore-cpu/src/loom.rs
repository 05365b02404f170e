//! The one door through which every percore protocol reaches atomics, cells,
//! locks, condition variables and thread-locals, so that the same source runs
//! under `RUSTFLAGS="--cfg loom"` with loom's model-checked versions (tokio's
//! `loom` module, crossbeam's `primitive`).
//!
//! Every crate of the workspace imports its protocol primitives from here and
//! nowhere else; a crate keeps only what is its own (constants shrunk under
//! loom, a modelled system call). Statistics counters do not come through
//! here: they order nothing, and loom has no need to see them.
//!
//! Two choices that every caller inherits:
//!
//! * [`Mutex::lock`] and [`Condvar::wait`] ignore poisoning. percore never runs
//!   user code while holding a protocol lock, and each critical section leaves
//!   its data consistent at every step, so a panic elsewhere cannot tear it.
//! * [`compiler_fence`] is modelled as a full `SeqCst` fence under loom: the
//!   SMR reader's compiler fence is turned into one by the writer's
//!   `membarrier`, and a compiler fence alone means nothing to loom.
//!
//! ```
//! use percore_cpu::loom::{AtomicUsize, Mutex, Ordering, UnsafeCell};
//!
//! let n = AtomicUsize::new(0);
//! n.fetch_add(1, Ordering::Relaxed);
//! let m = Mutex::new(5);
//! *m.lock() += n.load(Ordering::Relaxed);
//! assert_eq!(*m.lock(), 6);
//! let cell = UnsafeCell::new(1u32);
//! // SAFETY: nobody else can reach `cell`.
//! cell.with_mut(|p| unsafe { *p += 1 });
//! assert_eq!(cell.with(|p| unsafe { *p }), 2);
//! ```

#[cfg(loom)]
use loom as imp;
#[cfg(not(loom))]
use std as imp;

use std::time::Duration;

pub use imp::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
pub use imp::sync::{Arc, MutexGuard};
pub use std::sync::atomic::Ordering;

#[cfg(not(loom))]
pub use std::sync::atomic::compiler_fence;

/// Under loom a compiler fence is modelled as a full fence: that is what the
/// writer's `membarrier` turns the reader's compiler fence into.
#[cfg(loom)]
pub fn compiler_fence(_: Ordering) {
    fence(Ordering::SeqCst);
}

/// A cell whose every access loom can check for data races. Outside loom, a
/// plain `UnsafeCell` with loom's closure-style API.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// A cell holding `v`.
    pub const fn new(v: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }

    /// Run `f` with a raw pointer to the contents, for shared (read) use.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Run `f` with a raw pointer to the contents, for exclusive use.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// A mutex whose [`lock`](Mutex::lock) ignores poisoning (see the module
/// documentation).
#[derive(Debug, Default)]
pub struct Mutex<T>(imp::sync::Mutex<T>);

impl<T> Mutex<T> {
    /// A mutex guarding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Mutex(imp::sync::Mutex::new(value))
    }

    /// A mutex guarding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex(imp::sync::Mutex::new(value))
    }

    /// Lock it, waiting as long as it takes.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lock it if nobody holds it.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The value, by exclusive reference (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

/// A condition variable paired with a [`Mutex`], poisoning ignored.
#[derive(Debug, Default)]
pub struct Condvar(imp::sync::Condvar);

impl Condvar {
    /// A condition variable with no waiters.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Condvar(imp::sync::Condvar::new())
    }

    /// A condition variable with no waiters.
    #[cfg(loom)]
    pub fn new() -> Self {
        Condvar(imp::sync::Condvar::new())
    }

    /// Release `guard`, sleep until notified, take the lock again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// As [`wait`](Condvar::wait), for at most `dur`. NOTE: loom does not
    /// model the timeout (the wait is untimed), so a model may use this only
    /// where a notification is certain to come.
    pub fn wait_timeout<'a, T>(&self, guard: MutexGuard<'a, T>, dur: Duration) -> MutexGuard<'a, T> {
        match self.0.wait_timeout(guard, dur) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        }
    }

    /// Wake one waiter.
    #[inline]
    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    /// Wake every waiter.
    #[inline]
    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// Spin hint for a bounded wait loop; under loom, a yield, so that the model
/// lets the awaited thread run.
#[inline]
pub fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Give the CPU away (under loom: a scheduling point).
#[inline]
pub fn yield_now() {
    imp::thread::yield_now();
}

/// Sleep for `dur` (under loom: a yield, since loom has no clock; a model
/// may use this only in a loop that re-checks its condition).
#[inline]
pub fn sleep(dur: Duration) {
    #[cfg(not(loom))]
    std::thread::sleep(dur);
    #[cfg(loom)]
    {
        let _ = dur;
        loom::thread::yield_now();
    }
}

/// The identity type of [`current_thread`].
pub type ThreadId = imp::thread::ThreadId;

/// The identity of the calling thread (a loom thread's under loom).
pub fn current_thread() -> ThreadId {
    imp::thread::current().id()
}

/// `thread_local!`, modelled per loom thread under loom. It takes the
/// `const { .. }` initialiser of the production declaration, which loom's own
/// macro does not.
#[cfg(not(loom))]
#[macro_export]
macro_rules! loom_thread_local {
    ($($t:tt)*) => { ::std::thread_local!($($t)*); };
}

/// `thread_local!`, modelled per loom thread under loom. It takes the
/// `const { .. }` initialiser of the production declaration, which loom's own
/// macro does not.
#[cfg(loom)]
#[macro_export]
macro_rules! loom_thread_local {
    ($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = const { $init:expr };) => {
        ::loom::thread_local!($(#[$m])* $vis static $name: $ty = $init);
    };
    ($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        ::loom::thread_local!($(#[$m])* $vis static $name: $ty = $init);
    };
}

pub use crate::loom_thread_local as thread_local;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(*m.lock(), 1);
        assert_eq!(m.try_lock().map(|g| *g), Some(1));
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = Mutex::new(());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(m.try_lock().is_some());
    }

    crate::loom_thread_local! {
        static N: std::cell::Cell<u32> = const { std::cell::Cell::new(3) };
    }

    #[test]
    fn the_thread_local_macro_takes_a_const_initialiser() {
        assert_eq!(N.with(|n| n.get()), 3);
    }
}
