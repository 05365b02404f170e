//! `spawn`: one-shot closures, their cells taken from a cache, and the
//! handle that waits for the result.
//!
//! # Mechanism
//!
//! A spawned closure travels in a type-erased [`Cell`] (inside it, when it
//! is a few words: see `thunk.rs`) whose life is one atomic state word:
//!
//! ```text
//!   FREE --spawn--> PENDING --worker CAS--> RUNNING --worker swap--> FINISHED --join--> (taken)
//!                      |
//!                      `--cancel CAS--> CANCELLED      (+ WAITER bit: a joiner sleeps)
//! ```
//!
//! | state | who may touch `thunk` / `result` |
//! | --- | --- |
//! | `FREE` | the one owner (cache, then `spawn`) |
//! | `PENDING` | nobody (the entry is in flight) |
//! | `RUNNING` | the worker that won the CAS |
//! | `FINISHED` | the handle (reads `result`) |
//! | `CANCELLED` | the handle that won the cancel CAS (drops `thunk`) |
//!
//! The `WAITER` bit is set by a joiner before it sleeps on the cell's
//! condition variable; the worker that finishes swaps the state, and only if
//! the bit was set takes the cell's mutex and notifies (the joiner re-checks
//! the state under that mutex, so the wake-up cannot be lost). A job that
//! nobody waits for costs no lock at all.
//!
//! `users` counts the parties still to touch the cell (the handle and the
//! pool's entry, so 2 at first), each holding one [`CellRef`]. Whoever
//! brings it to zero gives the cell back to the cache; neither party touches
//! the cell after its decrement, so a recycled cell is never seen by its
//! former users. The two `CellRef`s are the only pointers to a cell, and
//! the count is the only thing that keeps it alive (there is no `Arc`).
//!
//! The cache is a percore-zone [`Zone`](percore_zone::Zone) (`pool.cells`
//! in the stats tree): per-thread buckets over a depot over slabs, so
//! neither spawning nor recycling takes a shared lock in the common case,
//! and a flood of spawns far ahead of the workers (a deep queue) takes its
//! cells from slabs in whole buckets rather than calling malloc for each.
//! A cell keeps its lock and condition variable across reuse (the zone's
//! constructed state). Should the zone be unavailable, cells come from the
//! heap, each marked so that it goes back where it came from.
//! XXX: the cell's `UnsafeCell`s are `std`'s, so the loom model does not
//! cover this module; its protocol is the table above.

use crate::core::PoolCore;
use crate::error::{JoinError, PanicPayload};
use crate::thunk::Thunk;
use percore_cpu::loom::{AtomicUsize, Condvar, Mutex};
use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Outcome = Result<Box<dyn Any + Send>, PanicPayload>;
/// A caught panic of a destructor, on its way to be counted or re-raised.
type Payload = Box<dyn Any + Send>;

const FREE: usize = 0;
const PENDING: usize = 1;
const RUNNING: usize = 2;
const FINISHED: usize = 3;
const CANCELLED: usize = 4;
/// The state proper, without the `WAITER` bit.
const MASK: usize = 7;
/// A joiner sleeps (or is about to) on `cv`.
const WAITER: usize = 8;

/// A spawned closure's home, recycled through the cache.
pub(crate) struct Cell {
    users: AtomicUsize,
    state: AtomicUsize,
    /// See the ownership table in the module documentation.
    thunk: UnsafeCell<Option<Thunk>>,
    /// See the ownership table in the module documentation.
    result: UnsafeCell<Option<Outcome>>,
    lock: Mutex<()>,
    cv: Condvar,
    /// Allocated on the heap, not from the zone (see `cache`): where it goes
    /// back to. Fixed for the cell's life.
    heap: bool,
}

// SAFETY: `thunk` and `result` are only touched by the one party the state
// word names (module documentation), every hand-over of that right is an
// Acquire/Release pair on `state` or the pool lock, and their contents are
// `Send`.
unsafe impl Sync for Cell {}

impl Cell {
    fn new(heap: bool) -> Cell {
        Cell {
            heap,
            users: AtomicUsize::new(0),
            state: AtomicUsize::new(FREE),
            thunk: UnsafeCell::new(None),
            result: UnsafeCell::new(None),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Back to `FREE`, dropping leftovers. Caller: the last user.
    fn reset(&self) -> Option<Payload> {
        // SAFETY: `users` reached zero: nobody else can touch the cell.
        let (thunk, result) = unsafe { ((*self.thunk.get()).take(), (*self.result.get()).take()) };
        // ORDERING: the cell is private to its owner until the pool lock
        // publishes it again.
        self.state.store(FREE, Ordering::Relaxed);
        // NOTE: the leftovers are out of the cell already, so a panicking
        // destructor leaves it clean and recyclable.
        drop_caught((thunk, result))
    }

    /// Move from `PENDING` to `to`, keeping the `WAITER` bit; false if the
    /// cell was not pending (cancelled, or already taken by the worker).
    fn leave_pending(&self, to: usize) -> bool {
        // ORDERING: Acquire pairs with the publication of the thunk (the
        // pool lock for the worker; program order for the handle).
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & MASK != PENDING {
                return false;
            }
            match self.state.compare_exchange_weak(s, to | (s & WAITER), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Enter a final state and wake a joiner if one registered.
    fn finish(&self, to: usize) {
        // ORDERING: Release publishes `result` to the joiner's Acquire load.
        let prev = self.state.swap(to, Ordering::AcqRel);
        if prev & WAITER != 0 {
            // The joiner checks the state under this mutex before it sleeps.
            drop(self.lock.lock());
            self.cv.notify_all();
        }
    }

    fn is_final(&self) -> bool {
        // ORDERING: Acquire pairs with the Release swap in `finish`.
        matches!(self.state.load(Ordering::Acquire) & MASK, FINISHED | CANCELLED)
    }
}

/// One party's counted reference to a cell: the handle's or the queue
/// entry's. Not `Clone`: `spawn` makes exactly two and sets `users` to 2.
///
/// Invariant: while a `CellRef` exists, its count in `users` is not yet
/// given back, so the cell is allocated and not recycled. `release`
/// consumes it; dropping one releases it too (a queue dropped with entries
/// still in it), counting nothing and swallowing a destructor's panic.
pub(crate) struct CellRef(NonNull<Cell>);

// SAFETY: a `CellRef` is a counted share of a `Cell`, which is `Sync`; the
// last share recycles it, from whichever thread that is (the cache accepts
// frees from any thread).
unsafe impl Send for CellRef {}
// SAFETY: as for `Send`; shared use goes through `&Cell` only.
unsafe impl Sync for CellRef {}

impl std::ops::Deref for CellRef {
    type Target = Cell;

    #[inline]
    fn deref(&self) -> &Cell {
        // SAFETY: the invariant: this share is still counted, so the cell is
        // allocated and no other party recycles it meanwhile.
        unsafe { self.0.as_ref() }
    }
}

impl CellRef {
    /// This party is done with the cell; the last one recycles it.
    ///
    /// Returns the panic of a leftover's destructor (a result nobody joined,
    /// a panic payload, a closure's captures), raised only after the cell
    /// was recycled: the caller decides where it goes (issue 16).
    #[must_use = "a destructor's panic must be counted or re-raised"]
    fn release(self) -> Option<Payload> {
        let me = ManuallyDrop::new(self);
        // ORDERING: AcqRel so that the party that recycles sees every write
        // of the other (pairs with the other party's decrement).
        if me.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: `users` reached zero: this was the last share, nobody
            // touches the cell again (`me` is not dropped), and it came from
            // `cache::alloc` (`spawn`).
            return unsafe { cache::free(me.0) };
        }
        None
    }

    /// Run the closure, if still pending (popped by a worker; no pool lock
    /// held), then give the entry's share back.
    pub(crate) fn run(self, core: &PoolCore) {
        if self.leave_pending(RUNNING) {
            // SAFETY: RUNNING and we won the CAS: the thunk is ours.
            let thunk = unsafe { (*self.thunk.get()).take() };
            if let Some(f) = thunk {
                let outcome = crate::error::catch_unwind(move || f.call()).map_err(|p| {
                    core.stats.panics.inc();
                    PanicPayload::new(p)
                });
                // SAFETY: still RUNNING: the result slot is ours until `finish`.
                unsafe { *self.result.get() = Some(outcome) };
            }
            self.finish(FINISHED);
        }
        reraise(self.release());
    }
}

impl Drop for CellRef {
    fn drop(&mut self) {
        let me = CellRef(self.0);
        if let Some(p) = me.release() {
            crate::error::drop_payload(p);
        }
    }
}

/// Drop `v`, returning the panic of its destructor instead of unwinding.
fn drop_caught<V>(v: V) -> Option<Payload> {
    crate::error::catch_unwind(move || drop(v)).err()
}

/// Re-raise a destructor's panic on a pool thread: [`PoolCore::guarded`]
/// catches and counts it.
fn reraise(p: Option<Payload>) {
    if let Some(p) = p {
        std::panic::resume_unwind(p);
    }
}

/// `PENDING` -> `CANCELLED`, dropping the closure. True if it never runs;
/// second, the panic of the closure's captures' destructor, if any (the
/// cell is already `CANCELLED` and its joiner woken when it is raised).
fn cancel(cell: &Cell) -> (bool, Option<Payload>) {
    if !cell.leave_pending(CANCELLED) {
        // ORDERING: Acquire, as in `is_final`.
        return (cell.state.load(Ordering::Acquire) & MASK == CANCELLED, None);
    }
    // SAFETY: we won the cancel CAS: no worker will take the thunk, and the
    // handle is the only other party.
    let thunk = unsafe { (*cell.thunk.get()).take() };
    // NOTE: wake the joiner before user code (the captures' destructors)
    // runs: a panic there must not leave it waiting for ever.
    cell.finish(CANCELLED);
    (true, drop_caught(thunk))
}

pub(crate) fn spawn<F, R>(core: &Arc<PoolCore>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ptr = cache::alloc();
    // NOTE: small closures travel inside the cell, no allocation (thunk.rs).
    let thunk = Thunk::new(f);
    // SAFETY: the cell is FREE and ours alone (fresh, or from the cache),
    // and stays allocated: nothing has released it.
    let fresh = unsafe { ptr.as_ref() };
    // SAFETY: as above: nobody else can see the cell yet.
    unsafe { *fresh.thunk.get() = Some(thunk) };
    // ORDERING (both): the pool lock taken by `push_spawned` publishes them.
    fresh.state.store(PENDING, Ordering::Relaxed);
    fresh.users.store(2, Ordering::Relaxed);
    // The two shares that `users` counts: the handle's and the entry's.
    let (cell, entry) = (CellRef(ptr), CellRef(ptr));
    if let Err(refused) = core.push_spawned(entry) {
        // The pool is shutting down (a job spawning onto its dying pool):
        // the closure will not run, and the handle says so. The entry's
        // share goes first (the handle's keeps the cell), then the cancel.
        let recycled = refused.release();
        let (_, captures) = cancel(&cell);
        if let Some(p) = captures.or(recycled) {
            // The spawner's own captures: their panic is the spawner's.
            std::panic::resume_unwind(p);
        }
    }
    JoinHandle { cell: ManuallyDrop::new(cell), _result: PhantomData }
}

/// The handle of a spawned closure: wait for its result, or cancel it.
///
/// Dropping the handle detaches the closure (it still runs).
///
/// The same shape as `percore_lwkt::JoinHandle` (issue 13): [`join`](JoinHandle::join)
/// returns a [`JoinError`] with `is_panic`, `is_cancelled`, `panic_message`
/// and `into_panic`; [`is_finished`](JoinHandle::is_finished) polls.
///
/// ```
/// use percore_pool::{JoinError, ThreadPool};
/// let pool = ThreadPool::builder().name("doc-join").max_threads(1).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let blocker = pool.spawn(move || rx.recv().is_ok());
/// let queued = pool.spawn(|| 1);
/// // With one worker busy, `queued` may not have started yet.
/// let cancelled = queued.cancel();
/// tx.send(()).unwrap();
/// assert!(blocker.join().unwrap());
/// match queued.join() {
///     Ok(v) => assert!(!cancelled && v == 1),
///     Err(JoinError::Cancelled) => assert!(cancelled),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub struct JoinHandle<R> {
    /// The handle's share, released once, in `drop`.
    cell: ManuallyDrop<CellRef>,
    _result: PhantomData<fn() -> R>,
}

impl<R: Send + 'static> JoinHandle<R> {
    /// Wait for the closure and return its result: [`JoinError::Panicked`]
    /// if it panicked, [`JoinError::Cancelled`] if it was cancelled before
    /// it ran.
    pub fn join(self) -> Result<R, JoinError> {
        self.wait(None);
        self.take()
    }

    /// Wait at most `timeout` for the closure to finish (or be cancelled);
    /// true if it has. Then [`join`](JoinHandle::join) returns at once.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait(Some(timeout))
    }

    /// Whether the closure has finished (or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.cell.is_final()
    }

    /// Cancel the closure if it has not started: true if it never will run
    /// (`join` then returns [`JoinError::Cancelled`]), false if it is running or
    /// has finished.
    ///
    /// The closure is dropped on the calling thread: a panic of its
    /// captures' destructors propagates from here, after the cancellation
    /// took effect.
    pub fn cancel(&self) -> bool {
        let (cancelled, captures) = cancel(&self.cell);
        if let Some(p) = captures {
            std::panic::resume_unwind(p);
        }
        cancelled
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let start = Instant::now();
        loop {
            if self.cell.is_final() {
                return true;
            }
            // Register as a waiter (keeping the state), then sleep under
            // the mutex after re-checking.
            // ORDERING: Acquire, as in `is_final`.
            let s = self.cell.state.load(Ordering::Acquire);
            if s & WAITER == 0
                && self.cell.state.compare_exchange(s, s | WAITER, Ordering::AcqRel, Ordering::Acquire).is_err()
            {
                continue;
            }
            let g = self.cell.lock.lock();
            if self.cell.is_final() {
                return true;
            }
            match timeout {
                None => drop(self.cell.cv.wait(g)),
                Some(t) => {
                    let left = t.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return false;
                    }
                    drop(self.cell.cv.wait_timeout(g, left));
                }
            }
        }
    }

    fn take(&self) -> Result<R, JoinError> {
        // ORDERING: Acquire, as in `is_final`.
        if self.cell.state.load(Ordering::Acquire) & MASK != FINISHED {
            return Err(JoinError::Cancelled);
        }
        // SAFETY: FINISHED: the worker is done with the result slot, and
        // `join` consumed the only handle.
        let outcome = unsafe { (*self.cell.result.get()).take() };
        match outcome {
            Some(Ok(v)) => match v.downcast::<R>() {
                Ok(v) => Ok(*v),
                // NOTE: unreachable: the thunk was built by `spawn::<F, R>`.
                Err(_) => Err(JoinError::Cancelled),
            },
            Some(Err(p)) => Err(JoinError::Panicked(p)),
            None => Err(JoinError::Cancelled),
        }
    }
}

impl<R> Drop for JoinHandle<R> {
    /// Detach (or, after the closure finished, drop an unjoined result).
    ///
    /// When the handle is the last party, the result (or a panic payload) is
    /// dropped on the calling thread: a panic of its destructor propagates
    /// from here (swallowed if the thread is already unwinding, which would
    /// abort). When the pool thread is the last party, it drops them and
    /// counts such a panic in [`Stats::panics`](crate::Stats::panics).
    fn drop(&mut self) {
        // SAFETY: taken once, here, and `self.cell` is not used afterwards.
        let share = unsafe { ManuallyDrop::take(&mut self.cell) };
        if let Some(p) = share.release() {
            if std::thread::panicking() {
                crate::error::drop_payload(p);
            } else {
                std::panic::resume_unwind(p);
            }
        }
    }
}

impl<R> std::fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinHandle")
    }
}

/// The cell cache (see the module documentation). Under loom there is no
/// cache: cells are allocated and freed, which the model does not care about.
mod cache {
    use super::{Cell, Payload};
    use std::ptr::NonNull;

    #[cfg(not(loom))]
    static CELLS: std::sync::OnceLock<Option<percore_zone::Zone<Cell>>> = std::sync::OnceLock::new();

    /// The zone of every pool's cells, if it could be made.
    #[cfg(not(loom))]
    #[inline]
    fn zone() -> Option<&'static percore_zone::Zone<Cell>> {
        CELLS.get_or_init(|| percore_zone::Zone::new("pool.cells", || Cell::new(false)).ok()).as_ref()
    }

    /// A `FREE` cell with `users` at 0, owned by the caller.
    #[inline]
    pub(super) fn alloc() -> NonNull<Cell> {
        #[cfg(not(loom))]
        if let Some(p) = zone().and_then(|z| z.alloc_raw().ok()) {
            return p;
        }
        NonNull::from(Box::leak(Box::new(Cell::new(true))))
    }

    /// Reset `cell` (dropping its leftovers) and give it back; the panic of
    /// a leftover's destructor is returned.
    ///
    /// # Safety
    ///
    /// `cell` came from [`alloc`], is not freed yet, and nobody touches it
    /// after this call.
    #[inline]
    pub(super) unsafe fn free(cell: NonNull<Cell>) -> Option<Payload> {
        // SAFETY: the caller's promise: allocated, and ours alone.
        let c = unsafe { cell.as_ref() };
        let panicked = c.reset();
        if c.heap {
            // SAFETY: a heap cell is a leaked `Box` of `alloc`, freed once.
            drop(unsafe { Box::from_raw(cell.as_ptr()) });
        } else {
            #[cfg(not(loom))]
            if let Some(z) = zone() {
                // SAFETY: a zone cell of this zone (the only one), freed
                // once, unused afterwards.
                unsafe { z.free_raw(cell) };
            }
        }
        panicked
    }
}
