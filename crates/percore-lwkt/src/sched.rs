//! Operations of the current uthread: yield, sleep, critical sections,
//! migration, priority.

use crate::error::Error;
use crate::thread::{wait_once, Intent, Uthread};
use crate::worker::{self, current_worker};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

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
// NOTE: `#[inline]` here and on `maybe_yield`, `park`, `park_current` and
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
    w.ws().slot.beat();
    w.poll_ipis();
    if w.yield_wanted(t) {
        w.switch_out(t, Intent::Yield);
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

/// Block the caller for `d` (a per-worker timer wakes it). On a foreign
/// thread, sleeps the OS thread. Refused inside a critical or SMR section.
///
/// A `d` too long for an `Instant` (`Duration::MAX`) sleeps for ever, as
/// every other percore wait given `Duration::MAX` does (park, tsleep, joins,
/// ports); on a uthread it ends only with [`Error::Shutdown`] when the
/// runtime is dropped (the uthread is then cancelled).
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| percore_lwkt::sleep(std::time::Duration::from_millis(1))).unwrap().unwrap();
/// ```
pub fn sleep(d: Duration) -> Result<(), Error> {
    worker::check_may_block()?;
    let Some(deadline) = Instant::now().checked_add(d) else {
        loop {
            wait_once(None)?; // for ever: spurious returns loop
        }
    };
    loop {
        if Instant::now() >= deadline {
            return Ok(());
        }
        wait_once(Some(deadline))?;
    }
}

/// Block the calling uthread until [`Uthread::unpark`] (the hand-off pair of
/// `lwkt_deschedule_self` + `lwkt_switch` / `lwkt_schedule`). Like
/// [`std::thread::park`]: an unpark that came first makes it return at once,
/// and spurious returns are possible, so wait for a condition in a loop. On a
/// foreign thread it parks the OS thread. Refused inside a critical or SMR
/// section.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::sync::Arc;
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let flag = Arc::new(AtomicBool::new(false));
/// let f = flag.clone();
/// let h = rt.spawn(move || while !f.load(SeqCst) { percore_lwkt::park().unwrap() }).unwrap();
/// flag.store(true, SeqCst);
/// h.uthread().unpark();
/// h.join().unwrap();
/// ```
#[inline]
pub fn park() -> Result<(), Error> {
    worker::check_may_block()?;
    wait_once(None)
}

/// [`park`], at most `timeout`.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| percore_lwkt::park_timeout(std::time::Duration::from_millis(1))).unwrap().unwrap();
/// ```
pub fn park_timeout(timeout: Duration) -> Result<(), Error> {
    worker::check_may_block()?;
    wait_once(Instant::now().checked_add(timeout))
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
    let w = current_worker().ok_or(Error::NotUthread)?;
    let t = w.current_ptr().ok_or(Error::NotUthread)?;
    let n = w.shared.workers.len();
    if to >= n {
        return Err(Error::NoSuchWorker { worker: to, workers: n });
    }
    w.check_block()?;
    if to != w.idx {
        // NOTE: pinned against `give_to` until it has run on `to` (issue 16):
        // a give-away racing the migration would otherwise move it on
        // after it reached `to` but before it ran there.
        // SAFETY: we are the uthread `t`, running on its owner; no other
        // reference to its state is live.
        unsafe { t.sched() }.migrating = true;
        w.switch_out(t, Intent::Migrate(to));
        // SAFETY: as above, now on the new owner.
        unsafe { t.sched() }.migrating = false;
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
    let w = current_worker().ok_or(Error::NotUthread)?;
    let t = w.current_ptr().ok_or(Error::NotUthread)?;
    w.set_pri_local(t, pri);
    Ok(())
}

/// Enter a critical section (`crit_enter`): until the matching
/// [`crit_exit`], the worker does not switch away from the caller, IPIs wait,
/// and blocking calls are refused. Nests. On a foreign thread there is no
/// scheduler to hold off and it has no effect.
///
/// The section belongs to the calling uthread. A uthread that exits inside
/// one (no matching `crit_exit`, or a [`critical`] guard passed to
/// `mem::forget`) leaks nothing into its worker: the depth is reset when it
/// exits, and the leak is counted as `lwkt.<name>.w<i>.crit_leaks` in the
/// stats tree.
///
/// ```
/// percore_lwkt::crit_enter();
/// percore_lwkt::crit_exit();
/// ```
pub fn crit_enter() {
    if let Some(w) = current_worker() {
        w.crit.set(w.crit.get() + 1);
    }
}

/// Leave a critical section (`crit_exit`); the outermost exit runs the IPIs
/// that arrived meanwhile. An unmatched exit is ignored (and asserts in debug).
///
/// ```
/// percore_lwkt::crit_enter();
/// percore_lwkt::crit_exit();
/// ```
pub fn crit_exit() {
    let Some(w) = current_worker() else { return };
    let c = w.crit.get();
    debug_assert!(c > 0, "percore_lwkt::crit_exit without crit_enter");
    if c == 0 {
        return;
    }
    w.crit.set(c - 1);
    if c == 1 {
        w.poll_ipis();
    }
}

/// Whether the caller is inside a critical section (or an SMR read section,
/// which counts as one).
///
/// ```
/// assert!(!percore_lwkt::in_critical());
/// ```
pub fn in_critical() -> bool {
    current_worker().is_some_and(|w| w.crit.get() > 0) || percore_smr::in_section()
}

/// A critical section as a guard: [`crit_enter`] now, [`crit_exit`] on drop.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.block_on(|| {
///     let _c = percore_lwkt::critical();
///     percore_lwkt::sleep(std::time::Duration::from_millis(1)) // refused
/// });
/// assert!(matches!(r.unwrap(), Err(percore_lwkt::Error::InCritical)));
/// ```
pub fn critical() -> CritGuard {
    crit_enter();
    CritGuard { _not_send: PhantomData }
}

/// See [`critical`]. Not `Send`: the section belongs to its worker.
#[derive(Debug)]
pub struct CritGuard {
    _not_send: PhantomData<*const ()>,
}

impl Drop for CritGuard {
    fn drop(&mut self) {
        crit_exit();
    }
}

/// Whether the caller may block: refused inside critical and SMR sections,
/// and during shutdown unwinding. Foreign threads may always block.
pub(crate) fn check_may_block() -> Result<(), Error> {
    let Some(w) = current_worker() else { return Ok(()) };
    w.check_block()
}

/// Park the current uthread once (until unparked or `deadline`).
#[inline]
pub(crate) fn park_current(deadline: Option<Instant>) -> Result<(), Error> {
    let w = current_worker().ok_or(Error::NotUthread)?;
    let t = w.current_ptr().ok_or(Error::NotUthread)?;
    w.check_block()?;
    if t.take_notified() {
        return Ok(());
    }
    if let Some(at) = deadline {
        // A deadline already past fires at the next scheduling pass.
        w.add_timer(at, t);
    }
    if !t.prepare_park() {
        t.disarm_timer();
        return Ok(());
    }
    w.switch_out(t, Intent::Block);
    t.finish_park();
    if deadline.is_some() {
        t.disarm_timer();
    }
    Ok(())
}
