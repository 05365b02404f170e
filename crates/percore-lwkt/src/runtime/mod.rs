//! The runtime: its builder, its start-up and its shutdown.
//!
//! [`RuntimeBuilder::build`] makes the [`RuntimeState`], starts one pinned
//! OS thread per worker running `worker::Worker::run`, and the watchdog;
//! dropping the [`Runtime`] stops them (the shutdown protocol is in
//! `worker/README.md`). [`Handle`] (`handle.rs`) is the cloneable,
//! any-thread reference to a runtime.

mod handle;

pub use handle::Handle;

use crate::config::*;
use crate::error::{Error, JoinError};
use crate::kernel::{Remote, RuntimeState};
use crate::stats::WorkerStats;
use crate::uthread::join::JoinHandle;
use crate::uthread::Uthread;
use crate::worker::idle::Idle;
use crate::worker::ring::Ring;
use crate::worker::{self, Worker};
use crossbeam_utils::CachePadded;
use percore_cpu::loom::Ordering::{Relaxed, Release};
use percore_cpu::loom::{Arc, AtomicBool, AtomicU64, Mutex};
use std::time::{Duration, Instant};

/// Runtime names `rt<n>` when none is given.
static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

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
    ///
    /// Pinned, a worker keeps its CPU's caches and never shares a CPU with
    /// another worker: the right choice on a host whose CPUs the runtime has
    /// to itself. On a machine shared with other busy processes (a small VM,
    /// a server beside its load generator), `pin(false)` lets the kernel move
    /// a worker off a CPU someone else holds, and wake a sleeping worker on
    /// the waker's CPU: on the 2-vCPU VM of `docs/BENCHMARKS.md` a message
    /// to a worker idle for 1 ms took about 3x tokio's round trip pinned and
    /// 0.6-1.1x unpinned, and percore-kv's p99 came 0.73-0.95x memcached's
    /// unpinned against 0.53-0.84x pinned (so the server does not pin by
    /// default).
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
    /// uthread. A worker whose OS thread the kernel kept waiting for a CPU
    /// for most of that time (an overloaded machine) is not stalled: it is
    /// counted as `lwkt.<name>.w<i>.descheduled` instead (read from
    /// `/proc/self/task/<tid>/schedstat` and `stat`; without them every such
    /// case counts as a stall). The workers pay a relaxed counter store per
    /// resume and yield.
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
        let workers: Box<[Remote]> = (0..n)
            .map(|i| {
                Ok(Remote {
                    idle: CachePadded::new(Idle::new()),
                    rings: (0..n).map(|_| Ring::new()).collect(),
                    foreign: Mutex::new(Vec::new()),
                    stats: WorkerStats::default(),
                    cpu: cpus[i % cpus.len()],
                    poller: crate::sys::Poller::new().map_err(Error::Poller)?,
                    has_io: AtomicBool::new(false),
                    slot: Default::default(),
                    tid: std::sync::atomic::AtomicI32::new(0),
                })
            })
            .collect::<Result<_, Error>>()?;
        let shared = Arc::new(RuntimeState::new(workers, self.cfg, self.name.clone()));
        let stats = percore_cpu::stats::register_source(&format!("lwkt.{}", self.name), Arc::downgrade(&shared));
        let mut threads = Vec::with_capacity(n);
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), Error>>();
        // Every worker waits at the gate until all `n` are started and
        // pinned, and only then enters its loop: shutdown's barriers count
        // all `n`, so a start that fails half-way must stop the started
        // ones before any reaches them (they would wait there forever).
        let gate = Arc::new(Gate::default());
        let mut first_err = None;
        for i in 0..n {
            let sh = shared.clone();
            let tx = tx.clone();
            let gate = gate.clone();
            let pin = self.pin;
            let spawned = spawn_worker_thread(format!("lwkt-{}-{i}", self.name), move || {
                let r = if pin { percore_cpu::pin_current(sh.workers[i].cpu).map_err(Error::from) } else { Ok(()) };
                let _ = tx.send(r);
                // NOTE: before the gate, so that `build`'s count of replies
                // ends even if another thread died before sending its own.
                drop(tx);
                if gate.wait() {
                    Worker::new(i, sh).run();
                }
            });
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    first_err = Some(Error::WorkerThread(e));
                    break;
                }
            }
        }
        drop(tx);
        for _ in 0..threads.len() {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(_) => first_err = first_err.or(Some(Error::NoWorkers)),
            }
        }
        gate.open(first_err.is_none());
        if let Some(e) = first_err {
            // No worker entered its loop: each returns from the gate.
            for h in threads {
                let _ = h.join();
            }
            return Err(e);
        }
        let mut rt = Runtime { handle: Handle { shared }, threads, monitor: None, _stats: stats };
        if let Some(d) = self.watchdog {
            let shared = Arc::downgrade(&rt.handle.shared);
            // On an error, dropping `rt` stops the started workers.
            rt.monitor = Some(crate::worker::watchdog::start(shared, &self.name, d).map_err(Error::WorkerThread)?);
        }
        Ok(rt)
    }
}

/// Where started worker threads wait until `build` knows whether all of
/// them started: `open(true)` lets them run, `open(false)` sends them home.
#[derive(Default)]
struct Gate {
    // NOTE: std's, not the loom shim's: start-up is not in a loom model.
    state: std::sync::Mutex<Option<bool>>,
    cv: std::sync::Condvar,
}

impl Gate {
    fn open(&self, run: bool) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
        self.cv.notify_all();
    }

    /// Whether the worker may run, once the gate is open.
    fn wait(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match *st {
                Some(run) => return run,
                None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

/// `std::thread::Builder::spawn` of a worker thread; under `cfg(test)` the
/// spawn of the thread named by `FAIL_SPAWN` fails, as when the system is out
/// of threads.
fn spawn_worker_thread(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    #[cfg(test)]
    if tests::FAIL_SPAWN.with(|n| n.borrow().as_deref() == Some(name.as_str())) {
        return Err(std::io::Error::from_raw_os_error(11)); // EAGAIN
    }
    std::thread::Builder::new().name(name).spawn(f)
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
    /// The watchdog's thread (`worker/watchdog.rs`), if on.
    monitor: Option<std::thread::JoinHandle<()>>,
    _stats: percore_cpu::stats::Registration,
}

impl Runtime {
    /// A builder with the defaults: one pinned worker per allowed CPU,
    /// guarded stacks of [`DEFAULT_STACK_SIZE`].
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            workers: None,
            // ORDERING: relaxed: only uniqueness matters.
            name: format!("rt{}", NEXT_RUNTIME.fetch_add(1, Relaxed)),
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
                let running = shared.workers.iter().filter_map(|w| w.slot.running()).map(Uthread).collect();
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

/// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) ran out of
/// time: some workers never reached a scheduling point, because the uthreads
/// they run never yield, block or return.
///
/// The workers are detached (their OS threads go on; each stops at its
/// running uthread's next scheduling point, and the runtime's memory is
/// freed then, or never).
///
/// ```
/// use percore_lwkt::Runtime;
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::time::Duration;
///
/// static GO: AtomicBool = AtomicBool::new(false);
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let h = percore_lwkt::Builder::new().name("spinner").spawn_on(rt.handle(), || {
///     GO.store(true, SeqCst);
///     while GO.load(SeqCst) { std::hint::spin_loop() } // never yields
/// }).unwrap();
/// while !GO.load(SeqCst) { std::thread::yield_now() }
/// let e = rt.shutdown_timeout(Duration::from_millis(50)).unwrap_err();
/// assert_eq!(e.running()[0].name(), Some("spinner"));
/// GO.store(false, SeqCst); // let it go; the detached worker stops
/// assert!(h.join().is_ok());
/// ```
#[derive(Clone)]
pub struct ShutdownTimeout {
    pub(crate) timeout: std::time::Duration,
    pub(crate) running: Vec<Uthread>,
}

impl ShutdownTimeout {
    /// The uthreads still running on their workers when time was up (empty
    /// when a worker is stuck outside any uthread, in an IPI function or a
    /// driver hook).
    pub fn running(&self) -> &[Uthread] {
        &self.running
    }

    /// The time that was given.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }
}

impl std::fmt::Display for ShutdownTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the runtime did not shut down within {:?}: ", self.timeout)?;
        if self.running.is_empty() {
            return write!(f, "a worker is stuck outside any uthread (an IPI function or driver hook)");
        }
        for (i, u) in self.running.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "uthread '{}' (id {}) on worker {}", u.name().unwrap_or("<unnamed>"), u.id(), u.worker())?;
        }
        write!(f, " never reached a scheduling point; its workers are detached")
    }
}

impl std::fmt::Debug for ShutdownTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownTimeout").field("timeout", &self.timeout).field("running", &self.running).finish()
    }
}

impl std::error::Error for ShutdownTimeout {}

/// `percore_cpu::coop`'s query: a uthread that may block (not inside a
/// critical or SMR section, where it could not switch anyway).
fn coop_can_nap() -> bool {
    worker::current_worker().is_some_and(|w| w.current_ptr().is_some()) && !crate::in_critical()
}

/// `percore_cpu::coop`'s nap: sleep the uthread.
fn coop_nap(d: std::time::Duration) -> bool {
    crate::sleep(d).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// The worker thread name whose spawn fails (see `spawn_worker_thread`).
        pub(super) static FAIL_SPAWN: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Worker threads of this process named `<prefix><digits>` (not the
    /// runtime's `<prefix>watchdog`).
    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.strip_prefix(prefix).is_some_and(|i| i.trim_end().bytes().all(|b| b.is_ascii_digit())))
            .count()
    }

    #[test]
    fn a_start_that_fails_half_way_stops_and_joins_the_started_workers() {
        FAIL_SPAWN.with(|n| *n.borrow_mut() = Some("lwkt-spf-2".into()));
        let e = Runtime::builder().workers(4).name("spf").pin(false).build().unwrap_err();
        FAIL_SPAWN.with(|n| *n.borrow_mut() = None);
        assert!(matches!(e, Error::WorkerThread(_)), "{e:?}");
        // Workers 0 and 1 were started; `build` joined them before it
        // returned (before the gate they would wait at shutdown's barrier,
        // sized for 4, forever).
        assert_eq!(threads_named("lwkt-spf-"), 0);
        // The same builder works once threads can be had.
        let rt = Runtime::builder().workers(4).name("spf").pin(false).build().unwrap();
        assert_eq!(threads_named("lwkt-spf-"), 4);
        drop(rt);
        assert_eq!(threads_named("lwkt-spf-"), 0);
    }
}
