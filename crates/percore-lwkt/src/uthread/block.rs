//! # Blocking: the one path every wait of a uthread takes
//!
//! [`park`], [`park_timeout`], [`sleep`], joins, ports, wait channels and
//! tokens all block through [`wait_once`]: on a uthread, the park word's
//! three steps (`park.rs`) around a switch-out, with an optional timer;
//! on a foreign thread, `std::thread::park`.

use crate::error::Error;
use crate::uthread::record::Intent;
use crate::worker::current_worker;
use std::time::{Duration, Instant};

/// Block the caller for `d` (a per-worker timer wakes it). On a foreign
/// thread, sleeps the OS thread. Refused inside a critical or SMR section.
///
/// Never returns early. On a uthread the timer is the worker's timing wheel
/// (`worker/timer.rs`), whose tick is `2^18` ns (about 262 µs): the sleep
/// ends at most one tick after `d`, plus however late the worker's next
/// pass comes (a uthread that does not yield delays it).
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
    check_may_block()?;
    let Some(deadline) = Instant::now().checked_add(d) else {
        loop {
            wait_once(None); // for ever: spurious returns loop
        }
    };
    loop {
        if Instant::now() >= deadline {
            return Ok(());
        }
        wait_once(Some(deadline));
    }
}

/// Block the calling uthread until [`Uthread::unpark`](crate::Uthread::unpark) (the hand-off pair of
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
    // NOTE: `check_may_block` and `wait_once` with one look-up of the
    // worker (the hand-off's hot path, issue 15).
    if let Some(w) = current_worker() {
        w.check_block()?;
        if let Some(t) = w.current_ptr() {
            park_on(w, t, None);
            return Ok(());
        }
    }
    std::thread::park();
    Ok(())
}

/// [`park`], at most `timeout`.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| percore_lwkt::park_timeout(std::time::Duration::from_millis(1))).unwrap().unwrap();
/// ```
pub fn park_timeout(timeout: Duration) -> Result<(), Error> {
    check_may_block()?;
    wait_once(Instant::now().checked_add(timeout));
    Ok(())
}

/// Whether the caller may block: refused inside critical and SMR sections,
/// and during shutdown unwinding. Foreign threads may always block.
pub(crate) fn check_may_block() -> Result<(), Error> {
    let Some(w) = current_worker() else { return Ok(()) };
    w.check_block()
}

/// Park the uthread `t`, running on `w`, once (until unparked or `deadline`): the park
/// word's three steps around the switch-out, and the timer.
///
/// NOTE: the one check that the caller may block is its caller's, made once
/// at the entry of every blocking operation (`check_may_block`): nothing
/// between there and here can enter a critical section or start a
/// shutdown unwind, so it is only asserted here.
#[inline]
fn park_on(w: &crate::worker::Worker, t: &crate::uthread::record::Thread, deadline: Option<Instant>) {
    debug_assert!(w.check_block().is_ok(), "a blocking call skipped check_may_block");
    if t.park.take_notified() {
        return;
    }
    // A deadline already past fires at the next scheduling pass.
    let timer = deadline.map(|at| (w.idx, w.add_timer(at, t)));
    if !t.park.prepare_park() {
        t.disarm_timer();
        if let Some((_, key)) = timer {
            w.cancel_timer(key);
        }
        return;
    }
    w.switch_out(t, Intent::Block);
    t.park.finish_park();
    if let Some((armed_on, key)) = timer {
        t.disarm_timer();
        // NOTE: re-fetched: a give-away may have moved us meanwhile. The
        // entry is then on the old worker's wheel, which only that worker
        // may touch: it is told to cancel it (an IPI, on this rare path
        // only), instead of keeping the record alive until the deadline.
        match current_worker() {
            Some(w) if w.idx == armed_on => w.cancel_timer(key),
            Some(w) => crate::worker::timer::cancel_on(&w.shared, armed_on, key),
            None => {}
        }
    }
}

/// Block the caller (uthread or OS thread) once, until woken or `deadline`.
/// Spurious returns are allowed; callers loop on their condition.
///
/// NOTE: infallible, and the hot path (a uthread parks and is woken)
/// constructs no [`Error`]: the foreign-thread case is told apart up front
/// rather than by matching a `NotUthread` error (issue 15).
#[inline]
pub(crate) fn wait_once(deadline: Option<Instant>) {
    if let Some(w) = current_worker() {
        if let Some(t) = w.current_ptr() {
            park_on(w, t, deadline);
            return;
        }
    }
    match deadline {
        None => std::thread::park(),
        Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
    }
}

/// Block the caller once, until woken (by a [`Waiter`](crate::Waiter)
/// taken with [`Waiter::current`](crate::Waiter::current), an
/// [`Uthread::unpark`](crate::Uthread::unpark) or a thread's `unpark`) or
/// until `deadline` (`None`: no deadline). Spurious returns are possible:
/// wait for a condition in a loop. The building block of wait queues kept
/// outside this crate (percore-evq's queues, sockets and alarms). Refused
/// inside a critical or SMR section.
///
/// A deadline already past returns at once. On the common path (a uthread
/// parks and is woken) no error value is built.
///
/// ```
/// use std::time::{Duration, Instant};
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let at = Instant::now() + Duration::from_millis(1);
/// rt.block_on(move || while Instant::now() < at { percore_lwkt::park_until(Some(at)).unwrap() }).unwrap();
/// ```
#[inline]
pub fn park_until(deadline: Option<Instant>) -> Result<(), Error> {
    check_may_block()?;
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Ok(());
    }
    wait_once(deadline);
    Ok(())
}
