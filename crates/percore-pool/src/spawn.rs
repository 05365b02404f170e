//! `spawn`: one-shot closures, their cells taken from a cache, and the
//! handle that waits for the result.
//!
//! # Mechanism
//!
//! A spawned closure travels in a type-erased [`Cell`]: its stage (pending
//! closure, running, result, cancelled) under a small mutex, a condition
//! variable for a joiner, and `users`, the number of parties (the handle and
//! the pool's entry, so 2 at first) still to touch it. Whoever brings
//! `users` to zero gives the cell back to the cache; neither party touches
//! the cell after its decrement (the worker notifies a joiner *before*
//! decrementing), so a recycled cell is never seen by its former users.
//!
//! The cache is a Bonwick magazine layer: each thread keeps up to
//! `MAGAZINE` free cells in a thread-local vector, and full magazines are
//! exchanged through a small global depot, so neither spawning nor
//! recycling takes a shared lock in the common case. It stands in for a
//! percore-zone cache, which does not exist yet.
//! XXX: switch to a `percore_zone::Zone<Cell>` once that crate lands.
//!
//! ```text
//!   spawn: cell <- magazine (or depot, or new); stage = Pending(f); users = 2
//!          push Entry(cell) on the pool
//!   worker: Pending -> Running, run f, -> Finished(result), notify joiner,
//!           users -= 1 (last? recycle)
//!   handle: join waits for Finished/Cancelled, takes it; drop: users -= 1
//! ```

use crate::core::{Core, Entry, Task};
use crate::error::{Error, PanicPayload};
use crate::sync::{AtomicUsize, Condvar, Mutex};
use std::any::Any;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Thunk = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

enum Stage {
    Free,
    Pending(Thunk),
    Running,
    Finished(Result<Box<dyn Any + Send>, PanicPayload>),
    Cancelled,
    Taken,
}

struct Slot {
    stage: Stage,
    waiter: bool,
}

/// A spawned closure's home, recycled through the cache.
pub(crate) struct Cell {
    users: AtomicUsize,
    slot: Mutex<Slot>,
    cv: Condvar,
}

impl Cell {
    fn new() -> Cell {
        Cell { users: AtomicUsize::new(0), slot: Mutex::new(Slot { stage: Stage::Free, waiter: false }), cv: Condvar::new() }
    }

    /// One party is done with the cell; the last one recycles it.
    fn release(self: Arc<Self>) {
        // ORDERING: AcqRel so that the party that recycles sees every write
        // of the other (pairs with the other party's decrement).
        if self.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            cache::free(self);
        }
    }
}

impl Task for Cell {
    fn run(self: Arc<Self>, _ticket: u64, core: &Arc<Core>) {
        let thunk = {
            let mut s = self.slot.lock();
            match std::mem::replace(&mut s.stage, Stage::Running) {
                Stage::Pending(f) => Some(f),
                other => {
                    s.stage = other; // cancelled before it started
                    None
                }
            }
        };
        if let Some(f) = thunk {
            let result = crate::sync::catch_unwind(f).map_err(|p| {
                core.stats.panics.inc();
                PanicPayload::new(p)
            });
            let mut s = self.slot.lock();
            s.stage = Stage::Finished(result);
            let waiter = s.waiter;
            drop(s);
            if waiter {
                self.cv.notify_all();
            }
        }
        self.release();
    }

    fn promote(self: Arc<Self>, ticket: u64, core: &Arc<Core>) -> bool {
        // Spawned closures are never delayed; a promoted one just runs.
        core.push_promoted(Entry { task: self, ticket });
        true
    }

    fn shutdown(self: Arc<Self>, _ticket: u64) {
        let old = std::mem::replace(&mut self.slot.lock().stage, Stage::Cancelled);
        drop(old);
        self.cv.notify_all();
        self.release();
    }
}

pub(crate) fn spawn<F, R>(core: &Arc<Core>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let cell = cache::alloc();
    let thunk: Thunk = Box::new(move || Box::new(f()) as Box<dyn Any + Send>);
    {
        let mut s = cell.slot.lock();
        s.stage = Stage::Pending(thunk);
        s.waiter = false;
    }
    // ORDERING: the pool lock taken by `push` publishes this to the worker.
    cell.users.store(2, Ordering::Relaxed);
    if !core.push(Entry { task: cell.clone(), ticket: 0 }) {
        // The pool is shutting down (a job spawning onto its dying pool):
        // the closure will not run, and the handle says so.
        cell.users.store(1, Ordering::Relaxed);
        let old = std::mem::replace(&mut cell.slot.lock().stage, Stage::Cancelled);
        drop(old);
    }
    JoinHandle { cell, _result: PhantomData }
}

/// The handle of a spawned closure: wait for its result, or cancel it.
///
/// Dropping the handle detaches the closure (it still runs).
///
/// ```
/// use percore_pool::{Error, ThreadPool};
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
///     Err(Error::Cancelled) => assert!(cancelled),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub struct JoinHandle<R> {
    cell: Arc<Cell>,
    _result: PhantomData<fn() -> R>,
}

impl<R: Send + 'static> JoinHandle<R> {
    /// Wait for the closure and return its result: [`Error::Panicked`] if
    /// it panicked, [`Error::Cancelled`] if it was cancelled before it ran.
    pub fn join(self) -> Result<R, Error> {
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
        matches!(self.cell.slot.lock().stage, Stage::Finished(_) | Stage::Cancelled | Stage::Taken)
    }

    /// Cancel the closure if it has not started: true if it never will run
    /// (`join` then returns [`Error::Cancelled`]), false if it is running or
    /// has finished.
    pub fn cancel(&self) -> bool {
        let mut s = self.cell.slot.lock();
        match s.stage {
            Stage::Pending(_) => {
                let old = std::mem::replace(&mut s.stage, Stage::Cancelled);
                drop(s);
                drop(old);
                true
            }
            Stage::Cancelled => true,
            _ => false,
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let start = Instant::now();
        let mut s = self.cell.slot.lock();
        loop {
            if matches!(s.stage, Stage::Finished(_) | Stage::Cancelled | Stage::Taken) {
                s.waiter = false;
                return true;
            }
            s.waiter = true;
            s = match timeout {
                None => self.cell.cv.wait(s),
                Some(t) => {
                    let left = t.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return false;
                    }
                    self.cell.cv.wait_timeout(s, left)
                }
            };
        }
    }

    fn take(&self) -> Result<R, Error> {
        let stage = std::mem::replace(&mut self.cell.slot.lock().stage, Stage::Taken);
        match stage {
            Stage::Finished(Ok(v)) => match v.downcast::<R>() {
                Ok(v) => Ok(*v),
                // NOTE: unreachable: the thunk was built by `spawn::<F, R>`.
                Err(_) => Err(Error::Cancelled),
            },
            Stage::Finished(Err(p)) => Err(Error::Panicked(p)),
            _ => Err(Error::Cancelled),
        }
    }
}

impl<R> Drop for JoinHandle<R> {
    fn drop(&mut self) {
        self.cell.clone().release();
    }
}

impl<R> std::fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinHandle")
    }
}

/// The cell cache (see the module documentation). Under loom there is no
/// cache: cells are allocated and freed, which the model does not care about.
#[cfg(not(loom))]
mod cache {
    use super::{Cell, Stage};
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex};

    /// Free cells a thread keeps for itself.
    const MAGAZINE: usize = 64;
    /// Full magazines kept in the global depot.
    const DEPOT: usize = 32;

    thread_local! {
        static LOCAL: RefCell<Vec<Arc<Cell>>> = const { RefCell::new(Vec::new()) };
    }
    static DEPOT_LIST: Mutex<Vec<Vec<Arc<Cell>>>> = Mutex::new(Vec::new());

    #[inline]
    pub(super) fn alloc() -> Arc<Cell> {
        let local = LOCAL.try_with(|l| l.borrow_mut().pop()).ok().flatten();
        local.or_else(alloc_slow).unwrap_or_else(|| Arc::new(Cell::new()))
    }

    /// The magazine is empty: take a full one from the depot.
    #[cold]
    fn alloc_slow() -> Option<Arc<Cell>> {
        let mut full = DEPOT_LIST.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        let cell = full.pop();
        let _ = LOCAL.try_with(|l| {
            let mut l = l.borrow_mut();
            if l.is_empty() {
                *l = full;
            }
        });
        cell
    }

    #[inline]
    pub(super) fn free(cell: Arc<Cell>) {
        {
            let mut s = cell.slot.lock();
            s.stage = Stage::Free;
            s.waiter = false;
        }
        let _ = LOCAL.try_with(|l| {
            let mut l = l.borrow_mut();
            l.push(cell);
            if l.len() >= 2 * MAGAZINE {
                let full: Vec<Arc<Cell>> = l.drain(..MAGAZINE).collect();
                free_slow(full);
            }
        });
    }

    /// The magazine overflowed: hand a full one to the depot (or free it).
    #[cold]
    fn free_slow(full: Vec<Arc<Cell>>) {
        let mut depot = DEPOT_LIST.lock().unwrap_or_else(|e| e.into_inner());
        if depot.len() < DEPOT {
            depot.push(full);
        }
    }
}

#[cfg(loom)]
mod cache {
    use super::Cell;
    use std::sync::Arc;

    pub(super) fn alloc() -> Arc<Cell> {
        Arc::new(Cell::new())
    }

    pub(super) fn free(cell: Arc<Cell>) {
        drop(cell);
    }
}
