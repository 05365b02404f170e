//! # Blocking work on a thread pool (`block_in_pool`)
//!
//! A uthread must not make a blocking system call (a `read` on a regular
//! file, `getaddrinfo`, a lock held by an OS thread): it would block its
//! whole worker, and every other uthread queued there. Kernels hand such work
//! to a kernel thread and sleep the caller; [`block_in_pool`] does the same
//! with percore-pool's shared pool.
//!
//! ## Mechanism
//!
//! ```text
//!   uthread U on worker W                pool thread P
//!   ---------------------                -------------
//!   check: not in a critical/SMR section
//!   slot = Oneshot, completer -> closure
//!   pool.spawn(closure) ---------------> catch_unwind(f)
//!   slot.wait(): park U, W runs others   completer.complete(result)
//!                                          `- U.unpark(): schedule IPI to W
//!   <- resumed by W with the result
//! ```
//!
//! The slot is the same one-value [`Oneshot`] that `join` uses, so the
//! wake-up follows the park-word protocol of `thread.rs`: whichever of
//! "complete" and "park" comes second does the work, and no wake-up is lost.
//!
//! ## Failure modes
//!
//! * `f` panics: the pool thread catches it and the caller gets
//!   [`JoinError::Panicked`] with the payload; neither the pool thread nor the
//!   worker goes down.
//! * The pool refuses the closure (it is shutting down): the closure is
//!   dropped unrun, its [`Completer`] says [`JoinError::Cancelled`].
//! * The runtime shuts down while the uthread waits: the uthread is cancelled
//!   like any blocked one (its stack unwound); `f` still runs to completion
//!   on the pool, and its result is dropped.
//! * Called inside a critical or SMR section, or while the runtime unwinds
//!   uthreads at shutdown: refused, [`JoinError::Wait`].
//!
//! `f` must be `'static`: a borrowed argument would dangle if the uthread
//! were cancelled (unwound) while the pool thread still runs `f`.

use crate::error::{Error, JoinError};
use crate::uthread::join::{Completer, Oneshot};
use crate::worker::current_worker;
use percore_pool::{ThreadPool, PRI_NONE};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Run the blocking function `f` on a thread pool and wait for its result
/// without blocking the worker: the calling uthread is parked, its worker
/// runs other uthreads, and the uthread is woken with `f`'s value when the
/// pool thread is done.
///
/// The pool is percore-pool's shared unbound pool
/// ([`ThreadPool::get`]`(`[`PRI_NONE`]`)`), taken by the runtime on first use
/// and given back when it is dropped. Use [`block_in`] to choose the pool.
/// That pool runs at most 512 closures at once (its thread limit); more
/// wait in its queue, so closures that wait for *each other* can deadlock
/// past that, as on any bounded pool.
///
/// On a foreign thread (not a uthread) there is no worker to keep free:
/// `f` then runs inline, on the calling OS thread, with the same panic
/// handling.
///
/// # Errors
///
/// * [`JoinError::Panicked`] if `f` panicked (caught on the pool thread);
/// * [`JoinError::Cancelled`] if the pool shut down before running `f`;
/// * [`JoinError::Wait`] with [`Error::InCritical`] or
///   [`Error::InSmrSection`] inside a critical or SMR section (nothing is run),
///   [`Error::Shutdown`] while the runtime shuts down, or [`Error::Pool`] if
///   the pool cannot be started.
///
/// ```
/// use percore_lwkt::{block_in_pool, Runtime};
///
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let v = rt.block_on(|| {
///     // The worker runs other uthreads while a pool thread sleeps.
///     let other = percore_lwkt::spawn(|| 1).unwrap();
///     let slow = block_in_pool(|| {
///         std::thread::sleep(std::time::Duration::from_millis(5));
///         41
///     });
///     slow.unwrap() + other.join().unwrap()
/// });
/// assert_eq!(v.unwrap(), 42);
///
/// // A panic comes back as an error; the worker lives on.
/// let e = rt.block_on(|| block_in_pool(|| -> u32 { panic!("disk on fire") })).unwrap().unwrap_err();
/// assert_eq!(e.panic_message(), Some("disk on fire"));
/// ```
pub fn block_in_pool<F, T>(f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(w) = current_worker() else { return run_inline(f) };
    w.check_block().map_err(JoinError::Wait)?;
    let pool = match w.shared.pool.get() {
        Some(p) => p,
        None => {
            let p = ThreadPool::get(PRI_NONE).map_err(|e| JoinError::Wait(Error::Pool(e)))?;
            // NOTE: a racing first user may have set it; its pool is the
            // same shared one anyway (refcounted), ours is given back.
            let _ = w.shared.pool.set(p);
            w.shared.pool.get().ok_or_else(|| JoinError::Wait(Error::Shutdown))?
        }
    };
    submit(pool, f)
}

/// [`block_in_pool`] on the given `pool` (a private one, a per-CPU one, one of
/// another priority). On a foreign thread `f` runs on `pool` too, and the OS
/// thread blocks until it is done.
///
/// # Errors
///
/// As for [`block_in_pool`].
///
/// ```
/// use percore_lwkt::{block_in, Runtime};
/// use percore_pool::ThreadPool;
///
/// let pool = ThreadPool::builder().name("doc-io").max_threads(2).build().unwrap();
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let p = pool.clone();
/// let name = rt.block_on(move || block_in(&p, || std::thread::current().name().map(String::from)));
/// assert!(name.unwrap().unwrap().is_some()); // a pool thread, named after its job
/// // From a foreign thread: runs on the pool as well.
/// assert_eq!(block_in(&pool, || 7).unwrap(), 7);
/// ```
pub fn block_in<F, T>(pool: &ThreadPool, f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Some(w) = current_worker() {
        w.check_block().map_err(JoinError::Wait)?;
    }
    submit(pool, f)
}

/// Run `f` on `pool` and wait (park the uthread, or the OS thread) for it.
fn submit<F, T>(pool: &ThreadPool, f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Oneshot::new());
    let completer = Completer(Some(slot.clone()));
    // Fire and forget (no pool cell, no handle): `slot` is our handle. A
    // closure the pool refuses (it is shutting down) is dropped unrun, and
    // its completer's drop answers `Cancelled`, so the wait below ends.
    let queued = pool.execute(move || {
        let completer = completer;
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => completer.complete(Ok(v)),
            Err(p) => completer.complete(Err(JoinError::from_panic(p))),
        }
    });
    debug_assert!(queued.is_ok() || slot.is_done(), "a refused closure must have answered");
    match slot.wait() {
        Ok(r) => r,
        Err(e) => Err(JoinError::Wait(e)),
    }
}

fn run_inline<F: FnOnce() -> T, T>(f: F) -> Result<T, JoinError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::from_panic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
    use std::sync::mpsc;

    #[test]
    fn worker_runs_others_while_the_pool_blocks() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let r = rt.block_on(|| {
            // The pool closure waits for a uthread of the same (only) worker:
            // this only finishes if the worker is not blocked meanwhile.
            let (tx, rx) = mpsc::channel::<u32>();
            let h = crate::spawn(move || tx.send(5).unwrap()).unwrap();
            let v = block_in_pool(move || rx.recv().unwrap() * 2).unwrap();
            h.join().unwrap();
            v
        });
        assert_eq!(r.unwrap(), 10);
    }

    #[test]
    fn many_concurrent_callers() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let total = rt.block_on(|| {
            let hs: Vec<_> = (0..64u64)
                .map(|i| crate::Builder::new().rotate().spawn(move || block_in_pool(move || i).unwrap()).unwrap())
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(total.unwrap(), 63 * 64 / 2);
    }

    #[test]
    fn panic_is_an_error_and_the_worker_survives() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let e = rt.block_on(|| block_in_pool(|| -> u8 { panic!("pool boom") })).unwrap().unwrap_err();
        assert!(e.is_panic());
        assert_eq!(e.panic_message(), Some("pool boom"));
        assert_eq!(rt.block_on(|| block_in_pool(|| 3)).unwrap().unwrap(), 3);
    }

    #[test]
    fn refused_in_critical_and_smr_sections() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let e = rt
            .block_on(move || {
                let _c = crate::critical();
                block_in_pool(move || r.store(true, SeqCst))
            })
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, JoinError::Wait(Error::InCritical)), "{e:?}");
        let smr = percore_smr::Smr::new("lwkt-blocking-test").unwrap();
        let e = rt
            .block_on(move || {
                let _g = smr.enter();
                block_in_pool(|| ())
            })
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, JoinError::Wait(Error::InSmrSection)), "{e:?}");
        assert!(!ran.load(SeqCst));
    }

    #[test]
    fn foreign_thread_runs_inline() {
        let me = std::thread::current().id();
        assert!(block_in_pool(move || std::thread::current().id() == me).unwrap());
        assert!(block_in_pool(|| -> () { panic!("inline") }).unwrap_err().is_panic());
    }

    #[test]
    fn explicit_pool_from_uthread_and_foreign_thread() {
        let pool = ThreadPool::builder().name("lwkt-test-io").max_threads(1).build().unwrap();
        let rt = Runtime::builder().workers(1).build().unwrap();
        let n = Arc::new(AtomicU32::new(0));
        let (p, n2) = (pool.clone(), n.clone());
        rt.block_on(move || {
            for _ in 0..10 {
                let n = n2.clone();
                block_in(&p, move || n.fetch_add(1, SeqCst)).unwrap();
            }
        })
        .unwrap();
        assert_eq!(n.load(SeqCst), 10);
        assert_eq!(block_in(&pool, || 1).unwrap(), 1);
    }
}
