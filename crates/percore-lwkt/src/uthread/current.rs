//! What the calling uthread does to itself: find out who and where it is,
//! yield, migrate, change its priority. (Blocking is `block.rs`, critical
//! sections `worker/crit.rs`.)

use crate::error::Error;
use crate::uthread::record::Intent;
use crate::uthread::Uthread;
use crate::worker::{self, current_worker};
use std::time::Duration;

/// The scheduler clock's quantum for [`maybe_yield`].
pub const QUANTUM: Duration = Duration::from_millis(2);

/// The calling uthread, or `None` on a foreign thread.
///
/// ```
/// assert!(percore_lwkt::current().is_none()); // a test thread is foreign
/// ```
pub fn current() -> Option<Uthread> {
    worker::current_thread().map(Uthread)
}

/// The index of the worker running the caller, or `None` on a foreign thread.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// assert_eq!(rt.block_on(percore_lwkt::worker_index).unwrap(), Some(0));
/// ```
pub fn worker_index() -> Option<usize> {
    current_worker().map(|w| w.idx)
}

/// Let other uthreads of the same or higher priority run (`lwkt_yield`, with
/// the round-robin rotation of `lwkt_schedulerclock` applied at once). Drains
/// pending IPIs first; returns at once when no one else is runnable. On a
/// foreign thread, yields the OS thread.
///
/// Inside a critical or SMR section, where switching is not allowed, it is
/// a no-op, in debug and release builds alike, counted as
/// `lwkt.<name>.w<i>.yields_refused` in the stats tree (issue 13; it used to
/// panic in debug builds only).
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| for _ in 0..3 { percore_lwkt::yield_now() }).unwrap();
/// ```
// NOTE: `#[inline]` here and on `maybe_yield`, `park`, `park_on` and
// `wait_once`: after a stack switch the return-address predictor holds the
// other stack's entries, so every `ret` between the switch and the caller
// mispredicts; inlining the chain into the caller removes those returns
// (about 2 ns per level here). `current_worker` stays out of line (see there).
#[inline]
pub fn yield_now() {
    let Some(w) = current_worker() else {
        std::thread::yield_now();
        return;
    };
    let Some(t) = w.current_ptr() else { return };
    if let Err(e) = w.check_block() {
        w.preempt_missed();
        if !matches!(e, Error::Shutdown) {
            w.ws().stats.yields_refused.bump();
        }
        return;
    }
    w.poll_ipis();
    if w.yield_wanted(t) {
        // NOTE: no heartbeat here: the resume that follows the switch-out
        // (`RunningSlot::enter`) is one.
        w.switch_out(t, Intent::Yield);
    } else {
        w.ws().slot.beat();
    }
}

/// Yield if a higher-priority uthread was woken since this one was switched
/// in, or if another uthread is runnable and the scheduler clock's
/// [`QUANTUM`] has passed (`lwkt_user_yield`): cheap enough for the inner
/// loop of a long computation. Never switches inside a critical or SMR
/// section.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| for _ in 0..1000 { percore_lwkt::maybe_yield() }).unwrap();
/// ```
#[inline]
pub fn maybe_yield() {
    let Some(w) = current_worker() else { return };
    let Some(t) = w.current_ptr() else { return };
    if w.check_block().is_err() {
        w.preempt_missed();
        return;
    }
    w.ws().slot.beat();
    w.poll_ipis();
    if w.resched.get() || (w.yield_wanted(t) && w.slice_expired(QUANTUM)) {
        w.switch_out(t, Intent::Yield);
    }
}

/// Move the calling uthread to worker `to` (`lwkt_migratecpu`). When this
/// returns it runs there (a [`Uthread::give_to`](crate::Uthread::give_to)
/// racing it is refused with `NotDescheduled` until it has): its tokens
/// were released and re-taken, and
/// `thread_local!` values are now the new worker's. Refused inside a
/// critical or SMR section.
///
/// # Safety
///
/// The uthread continues on another OS thread, and the compiler cannot see
/// what its stack holds. The caller promises that no `!Send` value made
/// before the call is used after it: no `Rc`, no borrow of a
/// `thread_local!` (a `LocalKey::with` closure must not span the call), no
/// guard of a thread-bound lock, no foreign thread-bound handle. percore's
/// own thread-bound types are safe across it (see the crate docs,
/// "Migration and `!Send` values").
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let w = rt.block_on(|| {
///     // SAFETY: nothing `!Send` lives across the move.
///     unsafe { percore_lwkt::migrate(1) }.unwrap();
///     percore_lwkt::worker_index()
/// });
/// assert_eq!(w.unwrap(), Some(1));
/// ```
///
/// Without `unsafe` it does not compile:
///
/// ```compile_fail
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(|| percore_lwkt::migrate(1)).unwrap();
/// ```
pub unsafe fn migrate(to: usize) -> Result<(), Error> {
    let w = current_worker().ok_or_else(|| Error::NotUthread)?;
    let t = w.current_ptr().ok_or_else(|| Error::NotUthread)?;
    let n = w.shared.workers.len();
    if to >= n {
        return Err(Error::NoSuchWorker { worker: to, workers: n });
    }
    w.check_block()?;
    if to != w.idx {
        // NOTE: pinned against `give_to` until it has run on `to` (issue 16):
        // a give-away racing the migration would otherwise move it on
        // after it reached `to` but before it ran there.
        t.sched(w.owned()).migrating = true;
        w.switch_out(t, Intent::Migrate(to));
        // NOTE: now on the new owner: its witness, re-fetched.
        let w = current_worker().ok_or_else(|| Error::NotUthread)?;
        t.sched(w.owned()).migrating = false;
    }
    Ok(())
}

/// Set the calling uthread's priority (`lwkt_setpri_self`). It does not
/// switch: a now higher-priority peer runs at the next scheduling point.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let p = rt.block_on(|| { percore_lwkt::set_priority(3).unwrap(); percore_lwkt::current().unwrap().priority() });
/// assert_eq!(p.unwrap(), 3);
/// ```
pub fn set_priority(pri: u8) -> Result<(), Error> {
    if pri > crate::MAX_PRIORITY {
        return Err(Error::BadPriority(pri));
    }
    let w = current_worker().ok_or_else(|| Error::NotUthread)?;
    let t = w.current_ptr().ok_or_else(|| Error::NotUthread)?;
    w.set_pri_local(t, pri);
    Ok(())
}
