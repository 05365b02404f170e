//! Spawning: [`Builder`] (`lwkt_create`'s options), [`spawn`], uthread ids.

use crate::config::*;
use crate::error::{Error, JoinError};
use crate::kernel::{Msg, RuntimeState};
use crate::runtime::Handle;
use crate::sys::Stack;
use crate::uthread::join::JoinHandle;
use crate::uthread::record::{Coro, Thread};
use crate::uthread::Uthread;
use crate::worker::{self, ipi::send};
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::Relaxed;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Uthread ids are taken from [`NEXT_ID`] in blocks of this many per OS
/// thread, so that a spawn costs no shared atomic increment.
const ID_BLOCK: u64 = 1024;

/// A process-unique uthread id (never 0).
fn next_id() -> u64 {
    thread_local! {
        /// The rest of this thread's block: `(next, end)`.
        static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    IDS.try_with(|c| {
        let (next, end) = c.get();
        if next < end {
            c.set((next + 1, end));
            return next;
        }
        // ORDERING: relaxed: only uniqueness matters.
        let base = NEXT_ID.fetch_add(ID_BLOCK, Relaxed);
        c.set((base + 1, base + ID_BLOCK));
        base
    })
    .unwrap_or_else(|_| NEXT_ID.fetch_add(1, Relaxed))
}

/// Spawn a uthread on the caller's runtime (the caller must be a uthread).
///
/// # Never block the worker
///
/// The uthread shares its worker's OS thread with the worker's other
/// uthreads, and runs until it reaches a scheduling point (a yield, a
/// blocking percore call, [`maybe_yield`](crate::maybe_yield)). Whatever
/// blocks the OS thread instead stalls all of them: `std::thread::sleep`
/// (use [`sleep`](crate::sleep)), blocking std I/O (percore-evq's sockets or
/// [`block_in_pool`](crate::block_in_pool)), a std `Mutex` wait (a
/// [`Token`](crate::Token)), and a std `MutexGuard` held across a switch can
/// deadlock the worker. The watchdog ([`RuntimeBuilder::watchdog`](crate::RuntimeBuilder::watchdog)) counts
/// and logs such stalls.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let v = rt.block_on(|| percore_lwkt::spawn(|| "hi").unwrap().join().unwrap()).unwrap();
/// assert_eq!(v, "hi");
/// ```
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f)
}

/// Options for a new uthread (`lwkt_create`): name, priority, worker, stack.
///
/// ```
/// use percore_lwkt::{Builder, Runtime};
/// let rt = Runtime::builder().workers(2).build().unwrap();
/// let h = Builder::new().name("pinger").priority(20).worker(1).spawn_on(rt.handle(), || {
///     let me = percore_lwkt::current().unwrap();
///     (me.name().map(String::from), me.priority(), me.worker())
/// }).unwrap();
/// assert_eq!(h.join().unwrap(), (Some("pinger".into()), 20, 1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<String>,
    priority: Option<u8>,
    worker: Option<usize>,
    rotate: bool,
    stack_size: Option<usize>,
}

impl Builder {
    /// Defaults: no name, [`DEFAULT_PRIORITY`], the calling worker (or the
    /// rotator from outside), the runtime's stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// A name, shown by [`Uthread::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The priority, `0..=MAX_PRIORITY`; higher runs first.
    pub fn priority(mut self, pri: u8) -> Self {
        self.priority = Some(pri);
        self
    }

    /// Run on this worker.
    pub fn worker(mut self, worker: usize) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Run on the next worker in rotation (`lwkt_alloc_thread` with cpu -1).
    pub fn rotate(mut self) -> Self {
        self.rotate = true;
        self
    }

    /// Usable stack size in bytes (rounded up to pages, at least 16 KiB, at
    /// most [`MAX_STACK_SIZE`]: above it `spawn` fails with
    /// [`Error::StackSize`]). Only stacks of the runtime's default size are
    /// cached.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawn on the calling uthread's runtime.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // NOTE: borrowed from the worker, not cloned as `Handle::current`
        // would: spawning never switches, so the worker outlives the call.
        // NOTE: `ok_or_else`, here and on the other hot paths: `Error` has
        // drop glue, and `ok_or(Error::..)` built and dropped one per call.
        let w = worker::current_worker().ok_or_else(|| Error::NotUthread)?;
        self.spawn_in(&w.shared, Some(w), f)
    }

    /// Spawn on the runtime of `handle`, from any thread. Fails with
    /// [`Error::StackExhausted`] when the OS refuses a stack.
    pub fn spawn_on<F, T>(self, handle: &Handle, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let here = worker::current_worker().filter(|w| Arc::ptr_eq(&w.shared, &handle.shared));
        self.spawn_in(&handle.shared, here, f)
    }

    /// Spawn on `shared`'s runtime; `here` is the caller's worker if it is
    /// one of that runtime's (the caller looked it up once).
    fn spawn_in<F, T>(
        self,
        shared: &Arc<RuntimeState>,
        here: Option<&worker::Worker>,
        f: F,
    ) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if shared.is_shutdown() {
            return Err(Error::Shutdown);
        }
        let n = shared.workers.len();
        let pri = self.priority.unwrap_or(DEFAULT_PRIORITY);
        if pri > MAX_PRIORITY {
            return Err(Error::BadPriority(pri));
        }
        let target = match (self.worker, here) {
            (Some(i), _) if i >= n => return Err(Error::NoSuchWorker { worker: i, workers: n }),
            (Some(i), _) => i,
            (None, Some(w)) if !self.rotate => w.idx,
            // ORDERING: relaxed: a spreading hint, orders nothing.
            _ => shared.rotor.fetch_add(1, Relaxed) % n,
        };
        let size = match self.stack_size {
            Some(b) => stack_bytes(b).ok_or(Error::StackSize { size: b })?,
            None => shared.cfg.stack_size,
        };
        let stack = match here.and_then(|w| w.take_stack(size)) {
            Some(s) => s,
            None => Stack::new(size, shared.cfg.guard).map_err(|source| Error::StackExhausted { size, source })?,
        };
        let id = next_id();
        let guard = (stack.guard_range(), stack.usable());
        let coro = Coro::with_stack(stack, move |y: &corosensei::Yielder<(), ()>, ()| {
            if let Some(w) = worker::current_worker() {
                if let Some(t) = w.current_ptr() {
                    t.sched(w.owned()).yielder = y;
                }
            }
            let r = match catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => Ok(v),
                Err(p) => {
                    // NOTE: re-fetched: we may have migrated.
                    let cancelled = worker::current_worker()
                        .is_some_and(|w| w.current_ptr().is_some_and(|t| t.sched(w.owned()).cancelled));
                    if cancelled {
                        // The runtime's forced unwind: let it reach the root
                        // (the owner then cancels the join slot, `run.rs`).
                        resume_unwind(p);
                    }
                    Err(JoinError::from_panic(p))
                }
            };
            // NOTE: re-fetched, as above; the record is this uthread's own
            // (the worker holds it across the resume).
            if let Some(t) = worker::current_worker().and_then(|w| w.current_ptr()) {
                // SAFETY: this body is the slot's one completer and runs
                // once per life of the record; its handle (made below, with
                // this `T`) takes a `Result<T, JoinError>`.
                unsafe { t.join.complete::<Result<T, JoinError>>(r) };
            }
        });
        let name = self.name.map(Into::into);
        // NOTE: a record recycled on this worker (`Worker::recycle`) saves
        // an allocation and the runtime's reference count; `take_record`
        // hands out only records nobody else can reach, so `get_mut`
        // succeeds.
        let thread = match here.and_then(|w| w.take_record()) {
            Some(mut t) => {
                let r = Arc::get_mut(&mut t).expect("a cached record has no other reference");
                r.reuse(id, name, target, pri, Some(coro));
                r.stack = guard;
                t
            }
            None => {
                let mut thread = Thread::new(id, name, shared.clone(), target, pri, Some(coro));
                thread.stack = guard;
                Arc::new(thread)
            }
        };
        let handle = JoinHandle { thread: Uthread(thread.clone()), _value: std::marker::PhantomData };
        match here {
            // NOTE: the Spawn IPI to ourselves, handled in place as `send`
            // would (without its look-up of the current worker again).
            Some(w) if w.idx == target => w.spawn_here(thread),
            _ => send(shared, target, Msg::Spawn(thread)),
        }
        Ok(handle)
    }
}
