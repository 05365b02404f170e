//! The runtime: its workers, its builder, spawning and `cpusync`.

use crate::error::{Error, JoinError};
use crate::idle::Idle;
use crate::ipi::Ring;
use crate::stats::WorkerStats;
use crate::sys::Stack;
use crate::thread::{Completer, JoinHandle, Oneshot, Thread, Uthread};
use crate::worker::{self, Msg, Worker};
use crossbeam_utils::CachePadded;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed, Release};
use percore_cpu::loom::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex};
use percore_cpu::Counter;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

/// Default usable stack size of a uthread: 256 KiB, reserved, not
/// committed.
///
/// Stacks are `MAP_NORESERVE` mappings: a uthread costs only the pages it
/// touched, so this default does not raise the memory of a parked uthread
/// (percore-bench's `lwkt_parked_memory` measures touched pages, a few KiB
/// per uthread whatever the reserved size). It costs address space (10,000
/// uthreads reserve 2.5 GiB of the 128 TiB user space) and page-table setup
/// only when touched. It was 64 KiB, which a 64 KiB local array, or a debug
/// build's formatting and panic machinery a few calls deep, overflowed; it
/// stays well below 2 MiB so that transparent huge pages never back a whole
/// stack. Cached stacks keep the pages their last uthread touched (at most
/// [`DEFAULT_STACK_CACHE`] per worker).
///
/// An overflow hits the guard page below the stack and the runtime reports
/// it on stderr (`uthread '<name>' on worker N overflowed its stack (size
/// S)`) before aborting the process; see [`RuntimeBuilder::guard_pages`].
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// How long dropping a [`Runtime`] waits for its workers to stop before it
/// reports the uthreads that keep them and detaches them (see
/// [`RuntimeBuilder::shutdown_timeout`]).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest uthread stack, 1 GiB: a larger [`Builder::stack_size`] or
/// [`RuntimeBuilder::stack_size`] makes `spawn` / `build` fail with
/// [`Error::StackSize`] (never an arithmetic overflow).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// The smallest uthread stack, 16 KiB: smaller sizes are raised to it.
const MIN_STACK_SIZE: usize = 16 * 1024;

/// `bytes` rounded up to pages, at least [`MIN_STACK_SIZE`]; `None` above
/// [`MAX_STACK_SIZE`].
fn stack_bytes(bytes: usize) -> Option<usize> {
    (bytes <= MAX_STACK_SIZE).then(|| bytes.max(MIN_STACK_SIZE).next_multiple_of(4096))
}

/// Default bound of a uthread's message port: 65,536 messages
/// ([`RuntimeBuilder::port_capacity`]).
pub const DEFAULT_PORT_CAPACITY: usize = 65_536;
/// Default number of cached stacks per worker.
pub const DEFAULT_STACK_CACHE: usize = 64;
/// The highest priority (`0` is the lowest).
pub const MAX_PRIORITY: u8 = (crate::runq::LEVELS - 1) as u8;
/// The priority uthreads get unless told otherwise.
pub const DEFAULT_PRIORITY: u8 = 16;

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

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) stack_size: usize,
    pub(crate) guard: bool,
    pub(crate) stack_cache: usize,
    /// What `Drop for Runtime` waits.
    pub(crate) shutdown_timeout: Duration,
    /// Messages a uthread's port holds at most (`port.rs`).
    pub(crate) port_capacity: usize,
}

/// What other threads may touch of one worker.
pub(crate) struct WorkerShared {
    pub(crate) idle: CachePadded<Idle>,
    /// Inbound IPI rings, indexed by the sending worker.
    pub(crate) rings: Box<[Ring<Msg>]>,
    /// Inbound IPIs from foreign threads.
    pub(crate) foreign: Mutex<Vec<Msg>>,
    pub(crate) stats: WorkerStats,
    pub(crate) cpu: usize,
    /// The worker's kernel epoll instance (`driver.rs`).
    pub(crate) poller: crate::sys::Poller,
    /// Whether any descriptor was ever registered on `poller` (else a busy
    /// worker skips its periodic non-blocking poll).
    pub(crate) has_io: AtomicBool,
    /// The running uthread and the heartbeat, for observers on other threads
    /// (`monitor.rs`).
    pub(crate) slot: crate::monitor::RunningSlot,
}

impl WorkerShared {
    /// Wake the worker after pushing a message, through whichever primitive
    /// it sleeps on.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.idle.notify() == crate::idle::Notified::Poller {
            self.poller.kick();
        }
    }
}

/// State shared by a runtime's workers, its uthreads and its handles.
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerShared]>,
    pub(crate) cfg: Config,
    pub(crate) foreign_sent: Counter,
    /// Messages `Uthread::send` dropped at a full port where it could not
    /// wait (`port.rs`).
    pub(crate) port_full_drops: Counter,
    pub(crate) barrier: Barrier,
    /// The driver, once one is installed (`driver.rs`).
    pub(crate) driver: std::sync::OnceLock<crate::driver::Installed>,
    shutdown: AtomicBool,
    stopping: AtomicBool,
    rotor: AtomicUsize,
    /// The pool of [`block_in_pool`](crate::block_in_pool), taken on first
    /// use and given back when the runtime goes.
    pub(crate) pool: OnceLock<percore_pool::ThreadPool>,
    /// The runtime's name (stats tree, diagnostics).
    pub(crate) name: String,
}

impl Shared {
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Acquire)
    }

    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Release);
    }
}

/// Configures and starts a [`Runtime`].
///
/// ```
/// use percore_lwkt::Runtime;
/// let rt = Runtime::builder().workers(2).name("doc").stack_size(32 * 1024).build().unwrap();
/// assert_eq!(rt.workers(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    workers: Option<usize>,
    name: String,
    pin: bool,
    cfg: Config,
    watchdog: Option<Duration>,
}

impl RuntimeBuilder {
    /// Number of workers (default: one per CPU of the affinity mask). With
    /// more workers than CPUs, CPUs are reused round robin.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// The runtime's name in the stats tree (`lwkt.<name>.w<i>.*`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Whether to pin each worker to its CPU (default `true`).
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// Default usable stack size of uthreads (rounded up to pages, at least
    /// 16 KiB, at most [`MAX_STACK_SIZE`]: above it `build` fails with
    /// [`Error::StackSize`]). Memory is committed only as the stack grows.
    ///
    /// ```
    /// let e = percore_lwkt::Runtime::builder().stack_size(usize::MAX).build().unwrap_err();
    /// assert!(matches!(e, percore_lwkt::Error::StackSize { size: usize::MAX }));
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.cfg.stack_size = bytes;
        self
    }

    /// Whether uthread stacks get a `PROT_NONE` guard page (default `true`).
    /// A guarded uthread that overflows its stack faults on the guard page;
    /// the runtime's `SIGSEGV` handler (on an alternate signal stack per
    /// worker) recognises it, writes `uthread '<name>' on worker N
    /// overflowed its stack (size S); raise it with Builder::stack_size or
    /// RuntimeBuilder::stack_size` to stderr and aborts the process. Other
    /// faults go to the handler found before (std's, or the default action).
    /// A guarded stack costs two kernel mappings and `vm.max_map_count`
    /// (65,530 by default) then limits a process to about 32,700 uthreads;
    /// an unguarded stack is one mapping, and adjacent ones usually merge
    /// into one, so only memory limits them, but a stack overflow then
    /// corrupts memory silently instead of faulting.
    pub fn guard_pages(mut self, guard: bool) -> Self {
        self.cfg.guard = guard;
        self
    }

    /// How long dropping the [`Runtime`] waits for its workers (default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`], 10 s; `Duration::MAX`: for ever). When
    /// time is up, `Drop` writes the [`ShutdownTimeout`](crate::ShutdownTimeout)
    /// report (the uthreads that never reached a scheduling point, with
    /// their names and workers) to stderr and returns, leaving the workers
    /// detached: each stops at its uthread's next scheduling point, and what
    /// the runtime holds is freed then (or leaks, if that never comes).
    /// [`Runtime::shutdown_timeout`] gives the same report as a value.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.cfg.shutdown_timeout = d;
        self
    }

    /// The watchdog's stall threshold (default `Some(`[`DEFAULT_WATCHDOG`](crate::DEFAULT_WATCHDOG)`)`,
    /// 100 ms; `None` turns it off). A monitor thread notices a worker that
    /// has run one uthread for longer than this without a scheduling point
    /// (the uthread called `std::thread::sleep`, blocking std I/O, or waits
    /// on a std `Mutex`), counts it as `lwkt.<name>.w<i>.stalls` in the
    /// stats tree, and logs the uthread's name and worker to stderr once per
    /// uthread. The workers pay a relaxed counter store per resume and yield.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).watchdog(None).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn watchdog(mut self, threshold: Option<Duration>) -> Self {
        self.watchdog = threshold;
        self
    }

    /// The most messages a uthread's port holds (default
    /// [`DEFAULT_PORT_CAPACITY`], 65,536; at least 1). Beyond it
    /// [`Uthread::try_send`] fails with [`Error::Full`] and
    /// [`Uthread::send`] / [`Uthread::call`] wait for room.
    pub fn port_capacity(mut self, n: usize) -> Self {
        self.cfg.port_capacity = n.max(1);
        self
    }

    /// Stacks of exited uthreads each worker keeps for reuse (default 64).
    pub fn stack_cache(mut self, n: usize) -> Self {
        self.cfg.stack_cache = n;
        self
    }

    /// Start the workers.
    pub fn build(mut self) -> Result<Runtime, Error> {
        // Lower crates' waits (a zone at its limit) park a uthread instead
        // of its worker (issue 16). Process-wide; the first runtime installs.
        let _ = percore_cpu::coop::install(coop_can_nap, coop_nap);
        let size = self.cfg.stack_size;
        self.cfg.stack_size = stack_bytes(size).ok_or(Error::StackSize { size })?;
        let cpus = percore_cpu::allowed_cpus()?;
        let n = self.workers.unwrap_or(cpus.len());
        if n == 0 || cpus.is_empty() {
            return Err(Error::NoWorkers);
        }
        let workers: Box<[WorkerShared]> = (0..n)
            .map(|i| {
                Ok(WorkerShared {
                    idle: CachePadded::new(Idle::new()),
                    rings: (0..n).map(|_| Ring::new()).collect(),
                    foreign: Mutex::new(Vec::new()),
                    stats: WorkerStats::default(),
                    cpu: cpus[i % cpus.len()],
                    poller: crate::sys::Poller::new().map_err(Error::Poller)?,
                    has_io: AtomicBool::new(false),
                    slot: Default::default(),
                })
            })
            .collect::<Result<_, Error>>()?;
        let shared = Arc::new(Shared {
            workers,
            cfg: self.cfg,
            foreign_sent: Counter::new(),
            port_full_drops: Counter::new(),
            barrier: Barrier::new(n),
            driver: std::sync::OnceLock::new(),
            shutdown: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            rotor: AtomicUsize::new(0),
            pool: OnceLock::new(),
            name: self.name.clone(),
        });
        let stats = crate::stats::register(&self.name, &shared);
        let mut threads = Vec::with_capacity(n);
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), Error>>();
        for i in 0..n {
            let sh = shared.clone();
            let tx = tx.clone();
            let pin = self.pin;
            let spawned = std::thread::Builder::new().name(format!("lwkt-{}-{i}", self.name)).spawn(move || {
                let r = if pin { percore_cpu::pin_current(sh.workers[i].cpu).map_err(Error::from) } else { Ok(()) };
                let _ = tx.send(r);
                // NOTE: a worker that failed to pin still runs its loop: the
                // runtime is then dropped at once, and shutdown needs every
                // worker at its barriers.
                Worker::new(i, sh).run();
            });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    // XXX: the workers already started wait at the shutdown
                    // barrier for all `n` and are leaked (detached), not joined.
                    shared.shutdown.store(true, Release);
                    for w in shared.workers.iter() {
                        w.notify();
                    }
                    return Err(Error::WorkerThread(e));
                }
            }
        }
        drop(tx);
        let mut first_err = None;
        for _ in 0..n {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(_) => first_err = first_err.or(Some(Error::NoWorkers)),
            }
        }
        let monitor = match self.watchdog {
            Some(d) => {
                Some(crate::watchdog::start(Arc::downgrade(&shared), &self.name, d).map_err(Error::WorkerThread))
            }
            None => None,
        };
        let monitor = match monitor.transpose() {
            Ok(m) => m,
            Err(e) => {
                first_err = first_err.or(Some(e));
                None
            }
        };
        let rt = Runtime { handle: Handle { shared }, threads, monitor, _stats: stats };
        match first_err {
            None => Ok(rt),
            Some(e) => Err(e), // dropping `rt` stops the started workers
        }
    }
}

/// A set of per-CPU workers running uthreads.
///
/// Dropping the runtime shuts it down: every worker stops at its next
/// scheduling point (a uthread that never yields delays this), and uthreads
/// that have not finished are cancelled, never resumed normally: a started
/// one has its stack unwound (its destructors run, and any blocking call made
/// from them returns [`Error::Shutdown`] at once) and freed, an unstarted one
/// is dropped. Their [`JoinHandle`]s report [`JoinError::Cancelled`]. Dropped
/// from one of its own uthreads, the runtime only signals the shutdown and
/// does not wait for its workers.
///
/// # Shutdown and destructors
///
/// A cancelled uthread's values are dropped by unwinding its stack, the only
/// way to run their destructors. A destructor that panics during that
/// unwind is a panic during unwinding, on which Rust aborts the process
/// (the destructor's panic message is printed first); no library can catch
/// it. So a value that lives across a blocking call should not panic in its
/// `Drop`, or the uthread should be finished before the runtime goes
/// ([`Runtime::shutdown_timeout`] says which are still running). Tested in
/// `tests/issue_cancel_destructor_panic.rs`.
///
/// `Drop` waits at most [`RuntimeBuilder::shutdown_timeout`] (default
/// [`DEFAULT_SHUTDOWN_TIMEOUT`], 10 s) and never hangs silently: when a
/// uthread that never yields keeps a worker past it, `Drop` writes which
/// (name, id, worker) to stderr and returns with the workers detached (see
/// [`Runtime::shutdown_timeout`], which returns that report instead).
///
/// ```
/// use percore_lwkt::Runtime;
/// let rt = Runtime::builder().workers(2).build().unwrap();
/// let sum = rt.block_on(|| {
///     let hs: Vec<_> = (0..10u64).map(|i| percore_lwkt::spawn(move || i * i).unwrap()).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum.unwrap(), 285);
/// ```
pub struct Runtime {
    handle: Handle,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The watchdog's thread (`watchdog.rs`), if on.
    monitor: Option<std::thread::JoinHandle<()>>,
    _stats: percore_cpu::stats::Registration,
}

impl Runtime {
    /// A builder with the defaults: one pinned worker per allowed CPU,
    /// guarded stacks of [`DEFAULT_STACK_SIZE`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            workers: None,
            name: format!("rt{}", NEXT_ID.fetch_add(1, Relaxed)),
            pin: true,
            watchdog: Some(crate::DEFAULT_WATCHDOG),
            cfg: Config {
                stack_size: DEFAULT_STACK_SIZE,
                guard: true,
                stack_cache: DEFAULT_STACK_CACHE,
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
                port_capacity: DEFAULT_PORT_CAPACITY,
            },
        }
    }

    /// A runtime with the defaults.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::new().unwrap();
    /// assert!(rt.workers() >= 1);
    /// ```
    pub fn new() -> Result<Runtime, Error> {
        Self::builder().build()
    }

    /// A cloneable handle for spawning from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.handle.workers()
    }

    /// Spawn a uthread (see [`Handle::spawn`]).
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// Shut down as `Drop` does, waiting at most `timeout` for the workers
    /// to stop (`Duration::MAX`: for ever). When time is up, returns
    /// [`ShutdownTimeout`](crate::ShutdownTimeout) naming the uthreads that
    /// still run (a uthread that never reaches a scheduling point keeps its
    /// worker, and shutdown needs every worker); the workers are then
    /// detached: each stops at its uthread's next scheduling point, and the
    /// runtime's memory is freed then (or leaks, if that never comes).
    ///
    /// Called from one of the runtime's own uthreads, it cannot wait for
    /// itself: it signals the shutdown and returns the error at once, naming
    /// the caller.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// rt.block_on(|| ()).unwrap();
    /// rt.shutdown_timeout(std::time::Duration::from_secs(10)).unwrap();
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Result<(), crate::ShutdownTimeout> {
        self.stop(timeout)
    }

    /// Signal the shutdown and wait for the workers at most `timeout`.
    fn stop(&mut self, timeout: Duration) -> Result<(), crate::ShutdownTimeout> {
        let shared = self.handle.shared.clone();
        shared.shutdown.store(true, Release);
        for w in shared.workers.iter() {
            w.notify();
        }
        if let Some(m) = self.monitor.take() {
            m.thread().unpark(); // it sees the shutdown and returns; detached
        }
        if worker::current_worker().is_some_and(|w| Arc::ptr_eq(&w.shared, &shared)) {
            self.threads.clear(); // detached: we are one of them
            return Err(crate::ShutdownTimeout { timeout, running: crate::current().into_iter().collect() });
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = Duration::from_micros(20);
        while !self.threads.iter().all(|t| t.is_finished()) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let running = shared.workers.iter().filter_map(|w| w.slot.running()).collect();
                self.threads.clear(); // detach
                return Err(crate::ShutdownTimeout { timeout, running });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    /// Run `f` on a uthread and wait for its result from the calling (foreign)
    /// thread; a panic in `f` comes back as [`JoinError::Panicked`].
    pub fn block_on<F, T>(&self, f: F) -> Result<T, JoinError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(f).map_err(JoinError::Wait)?.join()
    }

    /// Run `f` on every worker (in a critical section, at its next
    /// scheduling point) and wait until all have (see [`Handle::cpusync`]).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// rt.cpusync(|worker| assert_eq!(percore_lwkt::worker_index(), Some(worker))).unwrap();
    /// ```
    pub fn cpusync<F: Fn(usize) + Send + Sync + 'static>(&self, f: F) -> Result<(), Error> {
        self.handle.cpusync(f)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let own = worker::current_worker().is_some_and(|w| Arc::ptr_eq(&w.shared, &self.handle.shared));
        if self.threads.is_empty() && !own {
            return; // stopped already (`shutdown_timeout`)
        }
        match self.stop(self.handle.shared.cfg.shutdown_timeout) {
            Err(_) if own => {} // dropped from its own uthread: signal only
            Err(e) => eprintln!("percore-lwkt: runtime '{}': {e}", self.handle.shared.name),
            Ok(()) => {}
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("workers", &self.workers()).finish()
    }
}

/// A cloneable reference to a runtime, usable from any thread. It does not
/// keep the workers alive: once the [`Runtime`] is dropped, spawning through
/// a handle returns [`Error::Shutdown`].
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let h = rt.handle().clone();
/// let j = std::thread::spawn(move || h.spawn(|| 1).unwrap().join().unwrap());
/// assert_eq!(j.join().unwrap(), 1);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// The handle of the runtime running the calling uthread.
    pub fn current() -> Option<Handle> {
        worker::current_worker().map(|w| Handle { shared: w.shared.clone() })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Whether the runtime has begun shutting down (its [`Runtime`] was
    /// dropped): no worker runs timers or uthreads any more, so a wait that
    /// depends on them must fail instead of blocking (percore-evq's waits
    /// return their `Shutdown` error).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let h = rt.handle().clone();
    /// assert!(!h.is_shutdown());
    /// drop(rt);
    /// assert!(h.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// Spawn a uthread with the defaults of [`Builder`]: on the calling
    /// worker when called from one of this runtime's uthreads, else on the
    /// next worker in rotation.
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Builder::new().spawn_on(self, f)
    }

    /// Run `f(worker_index)` on every worker and wait until all have
    /// (`lwkt_cpusync`). `f` runs as an IPI handler: in a critical section,
    /// so it must not block. From a uthread the caller blocks meanwhile;
    /// refused inside a critical or SMR section. If `f` panics on a worker,
    /// the panic is caught there and `cpusync` returns
    /// [`Error::IpiPanicked`] once every worker is done.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// let e = rt.handle().cpusync(|w| if w == 1 { panic!("no") }).unwrap_err();
    /// assert!(matches!(e, percore_lwkt::Error::IpiPanicked));
    /// ```
    pub fn cpusync<F: Fn(usize) + Send + Sync + 'static>(&self, f: F) -> Result<(), Error> {
        worker::check_may_block()?;
        if self.shared.is_shutdown() {
            return Err(Error::Shutdown);
        }
        struct Sync {
            left: AtomicUsize,
            failed: AtomicBool,
            done: Oneshot<()>,
        }
        struct Part(Option<Arc<Sync>>);
        impl Part {
            fn finish(&mut self, ok: bool) {
                if let Some(s) = self.0.take() {
                    if !ok {
                        s.failed.store(true, Relaxed);
                    }
                    // ORDERING: AcqRel: the last one sees every other's
                    // effects and publishes them to the waiter.
                    if s.left.fetch_sub(1, AcqRel) == 1 {
                        s.done.complete(());
                    }
                }
            }
        }
        impl Drop for Part {
            fn drop(&mut self) {
                self.finish(false); // dropped unrun (shutdown)
            }
        }
        let n = self.workers();
        let s = Arc::new(Sync { left: AtomicUsize::new(n), failed: AtomicBool::new(false), done: Oneshot::new() });
        let f = Arc::new(f);
        for i in 0..n {
            let mut part = Part(Some(s.clone()));
            let f = f.clone();
            worker::send(
                &self.shared,
                i,
                Msg::Run(Box::new(move || {
                    f(i);
                    part.finish(true);
                })),
            );
        }
        s.done.wait()?;
        if s.failed.load(Relaxed) {
            return Err(if self.shared.is_shutdown() { Error::Shutdown } else { Error::IpiPanicked });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("workers", &self.workers()).finish()
    }
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
/// deadlock the worker. The watchdog ([`RuntimeBuilder::watchdog`]) counts
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
        let w = worker::current_worker().ok_or(Error::NotUthread)?;
        self.spawn_in(&w.shared, f)
    }

    /// Spawn on the runtime of `handle`, from any thread. Fails with
    /// [`Error::StackExhausted`] when the OS refuses a stack.
    pub fn spawn_on<F, T>(self, handle: &Handle, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_in(&handle.shared, f)
    }

    fn spawn_in<F, T>(self, shared: &Arc<Shared>, f: F) -> Result<JoinHandle<T>, Error>
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
        let here = worker::current_worker().filter(|w| Arc::ptr_eq(&w.shared, shared));
        let target = match (self.worker, here) {
            (Some(i), _) if i >= n => return Err(Error::NoSuchWorker { worker: i, workers: n }),
            (Some(i), _) => i,
            (None, Some(w)) if !self.rotate => w.idx,
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
        let mut thread = Thread::new(id, self.name.map(Into::into), shared.clone(), target, pri);
        thread.stack = (stack.guard_range(), stack.usable());
        let thread = Arc::new(thread);
        let packet = Arc::new(Oneshot::new());
        let completer = Completer(Some(packet.clone()));
        let coro = crate::thread::Coro::with_stack(stack, move |y: &corosensei::Yielder<(), ()>, ()| {
            let completer = completer;
            let me = worker::current_worker().and_then(|w| w.current_ptr()).map(|t| t as *const Thread);
            if let Some(t) = me {
                // SAFETY: we are the uthread `t`, running on its owner.
                unsafe { (*t).sched() }.yielder = y;
            }
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => completer.complete(Ok(v)),
                Err(p) => {
                    // SAFETY: as above; re-fetched, we may have migrated.
                    let cancelled = worker::current_worker()
                        .and_then(|w| w.current_ptr())
                        .is_some_and(|t| unsafe { t.sched() }.cancelled);
                    if cancelled {
                        // The runtime's forced unwind: let it reach the root
                        // (the completer reports `Cancelled` as it drops).
                        resume_unwind(p);
                    }
                    completer.complete(Err(JoinError::panicked(p)));
                }
            }
        });
        // SAFETY: nobody else has seen `thread` yet.
        *unsafe { thread.coro() } = Some(coro);
        let handle = JoinHandle { packet, thread: Uthread(thread.clone()) };
        worker::send(shared, target, Msg::Spawn(thread));
        Ok(handle)
    }
}

/// `percore_cpu::coop`'s query: a uthread that may block (not inside a
/// critical or SMR section, where it could not switch anyway).
fn coop_can_nap() -> bool {
    worker::current_worker().is_some_and(|w| w.current_ptr().is_some()) && !crate::in_critical()
}

/// `percore_cpu::coop`'s nap: sleep the uthread.
fn coop_nap(d: std::time::Duration) -> bool {
    crate::sleep(d).is_ok()
}
