//! # Drivers: per-worker event sources for the crates above
//!
//! A worker sleeps when it has nothing to run. Timers of its own (`timer.rs`)
//! and IPIs (`idle.rs`) wake it; a crate higher in the stack (percore-evq,
//! with its alarms, event queues and sockets) needs two more things from the
//! same loop, without extra threads:
//!
//! * a **poll hook**, called on the worker's OS thread at every scheduling
//!   pass and before it sleeps, that fires whatever is due and says when it
//!   next needs the worker ([`Driver::poll`]);
//! * the worker's **kernel epoll instance**: each worker owns one, created
//!   with the runtime. File descriptors are registered on it with a 64-bit
//!   token ([`Handle::io_register`](crate::Handle::io_register)); readiness
//!   comes back to [`Driver::ready`] on that worker's thread.
//!
//! A runtime has at most one driver, installed on first use
//! ([`Handle::driver`](crate::Handle::driver)) and kept until the runtime is
//! gone. Once one is installed a worker with nothing to run sleeps in
//! `epoll_wait` instead of on its futex (the idle word tells senders which
//! one to kick, see `idle.rs`), and a busy worker still polls its epoll
//! instance without blocking every [`IO_POLL_EVERY`] scheduling passes, so
//! I/O is never starved by uthreads that keep the worker busy.
//!
//! Both hooks run in a critical section outside any uthread: they must not
//! block; they wake uthreads (`Uthread::unpark`) and return.
//!
//! The worker's idle path lives here too (`Worker::idle`): an adaptive spin,
//! then a sleep on the futex, or in `epoll_wait` once a driver is installed.
//!
//! ```text
//!   worker loop:  IPIs -> own timers -> driver.poll -> [every 61 passes: epoll_wait(0) -> driver.ready]
//!                 -> pick & run -> ... nothing to run -> epoll_wait(min deadline) -> driver.ready
//! ```
//!
//! NOTE: the runtime keeps the driver alive; a driver holding a
//! [`Handle`](crate::Handle) would keep the runtime's shared state alive in
//! a cycle. Drivers keep only what they need.

use crate::error::Error;
use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Scheduling passes between two non-blocking polls of a busy worker's epoll
/// instance (a prime, as tokio's 61 event-loop ticks).
pub const IO_POLL_EVERY: u32 = 61;

/// One readiness event from a worker's epoll instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoEvent {
    /// The token the descriptor was registered with.
    pub token: u64,
    /// The `EPOLL*` bits the kernel reported.
    pub events: u32,
}

/// Per-worker hooks of a crate above the scheduler (see the module docs).
///
/// ```
/// use percore_lwkt::{Driver, IoEvent, Runtime};
/// use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
/// use std::time::Instant;
///
/// #[derive(Default)]
/// struct Passes(AtomicU64);
/// impl Driver for Passes {
///     fn poll(&self, _worker: usize) -> Option<Instant> {
///         self.0.fetch_add(1, Relaxed);
///         None
///     }
///     fn ready(&self, _worker: usize, _events: &[IoEvent]) {}
/// }
///
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let d = rt.handle().driver(Passes::default).unwrap();
/// rt.block_on(percore_lwkt::yield_now).unwrap();
/// assert!(d.0.load(Relaxed) > 0);
/// ```
pub trait Driver: Send + Sync + 'static {
    /// On worker `worker`'s thread, at every scheduling pass and before it
    /// sleeps: run what is due, and return the earliest instant at which the
    /// driver needs this worker again (`None`: only on an event).
    fn poll(&self, worker: usize) -> Option<Instant>;

    /// On worker `worker`'s thread: readiness events of descriptors
    /// registered on its epoll instance.
    fn ready(&self, worker: usize, events: &[IoEvent]);
}

/// The worker loop's driver calls (`worker.rs` calls them).
impl crate::worker::Worker {
    /// Nothing to run: spin a little (adaptively), then sleep on the futex,
    /// or in `epoll_wait` once a driver is installed, until an IPI, a timer,
    /// the driver's deadline or I/O.
    pub(crate) fn idle(&self) {
        let ws = self.ws();
        let io = self.shared.driver.get().map(|i| &*i.driver).filter(|_| ws.has_io.load(Relaxed));
        // NOTE: the spin adapts, like an adaptive mutex: a spin that found
        // work doubles the next one's budget, a spin that ended in a sleep
        // halves it. Ping-pong between workers keeps spinning; work that
        // arrives only after network round trips (an echo server) soon
        // stops paying for spins that steal the CPU from everyone else.
        let budget = self.spin_budget.get();
        for round in 0..budget {
            if ws.idle.peek_pending() || self.shared.is_shutdown() {
                self.spin_budget.set((budget * 2).min(crate::worker::SPIN_ROUNDS));
                return;
            }
            // NOTE: I/O that arrives while we spin must not wait for the
            // spin to end: look a few times (a system call each).
            if let Some(d) = io.filter(|_| round % crate::worker::SPIN_IO_EVERY == crate::worker::SPIN_IO_EVERY - 1) {
                if self.poll_io(d, Some(Duration::ZERO)) > 0 {
                    self.spin_budget.set((budget * 2).min(crate::worker::SPIN_ROUNDS));
                    return;
                }
            }
            for _ in 0..crate::worker::SPIN_PAUSES {
                std::hint::spin_loop();
            }
        }
        self.spin_budget.set((budget / 2).max(crate::worker::SPIN_MIN_ROUNDS));
        let mut timeout = self.next_deadline();
        let driver = self.shared.driver.get().map(|i| &*i.driver);
        if let Some(at) = self.driver_at.get().filter(|_| driver.is_some()) {
            let d = at.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        if timeout == Some(Duration::ZERO) {
            return;
        }
        let Some(d) = driver else {
            if ws.idle.sleep(timeout) {
                ws.stats.idle_sleeps.bump();
            }
            return;
        };
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut n = 0;
        if ws.idle.sleep_polling(|| n = ws.poller.wait(&mut buf, timeout)) {
            ws.stats.idle_sleeps.bump();
            self.crit.set(self.crit.get() + 1);
            self.dispatch_io(d, &buf[..n]);
            self.crit.set(self.crit.get() - 1);
        }
    }

    /// The driver's part of a scheduling pass: its poll hook, and every
    /// `IO_POLL_EVERY` passes a non-blocking look at the epoll instance.
    #[inline]
    pub(crate) fn driver_pass(&self, d: &dyn crate::driver::Driver) {
        self.crit.set(self.crit.get() + 1);
        self.driver_at.set(d.poll(self.idx));
        let c = self.io_countdown.get();
        if c > 1 {
            self.io_countdown.set(c - 1);
        } else {
            self.io_countdown.set(crate::driver::IO_POLL_EVERY);
            if self.ws().has_io.load(Relaxed) {
                self.poll_io(d, Some(Duration::ZERO));
            }
        }
        self.crit.set(self.crit.get() - 1);
    }

    /// Wait for I/O at most `timeout` and hand the events to the driver.
    /// Returns how many events (the kick included) the kernel reported.
    pub(crate) fn poll_io(&self, d: &dyn crate::driver::Driver, timeout: Option<Duration>) -> usize {
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let n = self.ws().poller.wait(&mut buf, timeout);
        self.crit.set(self.crit.get() + 1);
        self.dispatch_io(d, &buf[..n]);
        self.crit.set(self.crit.get() - 1);
        n
    }

    pub(crate) fn dispatch_io(&self, d: &dyn crate::driver::Driver, evs: &[libc::epoll_event]) {
        let mut out = [crate::driver::IoEvent { token: 0, events: 0 }; 64];
        let mut k = 0;
        for e in evs {
            let (token, events) = (e.u64, e.events);
            if token != crate::sys::KICK_TOKEN {
                out[k] = crate::driver::IoEvent { token, events };
                k += 1;
            }
        }
        if k > 0 {
            self.ws().stats.io_events.add(k as u64);
            d.ready(self.idx, &out[..k]);
        }
    }
}

/// The installed driver, as the trait object the workers call and as `Any`
/// for [`Handle::driver`](crate::Handle::driver)'s downcast.
pub(crate) struct Installed {
    pub(crate) driver: Arc<dyn Driver>,
    any: Arc<dyn Any + Send + Sync>,
}

impl Installed {
    pub(crate) fn new<D: Driver>(d: D) -> Installed {
        let d = Arc::new(d);
        Installed { driver: d.clone(), any: d }
    }

    pub(crate) fn downcast<D: Driver>(&self) -> Result<Arc<D>, Error> {
        self.any.clone().downcast::<D>().map_err(|_| Error::DriverMismatch)
    }
}

impl crate::Handle {
    /// The runtime's driver of type `D`, installing `init()` if it has none
    /// yet. Fails with [`Error::DriverMismatch`] if a driver of another type
    /// is installed.
    ///
    /// ```
    /// use percore_lwkt::{Driver, Error, IoEvent, Runtime};
    /// use std::time::Instant;
    /// struct A;
    /// struct B;
    /// impl Driver for A { fn poll(&self, _: usize) -> Option<Instant> { None } fn ready(&self, _: usize, _: &[IoEvent]) {} }
    /// impl Driver for B { fn poll(&self, _: usize) -> Option<Instant> { None } fn ready(&self, _: usize, _: &[IoEvent]) {} }
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// let a1 = rt.handle().driver(|| A).unwrap();
    /// let a2 = rt.handle().driver(|| A).unwrap();
    /// assert!(std::sync::Arc::ptr_eq(&a1, &a2));
    /// assert!(matches!(rt.handle().driver(|| B), Err(Error::DriverMismatch)));
    /// ```
    pub fn driver<D: Driver>(&self, init: impl FnOnce() -> D) -> Result<Arc<D>, Error> {
        self.try_driver(|| Ok::<D, Error>(init()))
    }

    /// [`Handle::driver`](crate::Handle::driver) with a fallible `init`: its error is returned and
    /// nothing is installed (a later call tries again).
    ///
    /// ```
    /// use percore_lwkt::{Driver, Error, IoEvent, Runtime};
    /// use std::time::Instant;
    /// struct A;
    /// impl Driver for A { fn poll(&self, _: usize) -> Option<Instant> { None } fn ready(&self, _: usize, _: &[IoEvent]) {} }
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// assert!(rt.handle().try_driver(|| Err::<A, _>(Error::NoWorkers)).is_err());
    /// assert!(rt.handle().try_driver(|| Ok::<_, Error>(A)).is_ok());
    /// ```
    pub fn try_driver<D: Driver, E: From<Error>>(&self, init: impl FnOnce() -> Result<D, E>) -> Result<Arc<D>, E> {
        if let Some(i) = self.shared.driver.get() {
            return Ok(i.downcast::<D>()?);
        }
        let d = init()?;
        let mut fresh = false;
        // NOTE: if another thread installed one meanwhile, `d` is dropped
        // unused and theirs is returned (or a type mismatch reported).
        let installed = self.shared.driver.get_or_init(|| {
            fresh = true;
            Installed::new(d)
        });
        let d = installed.downcast::<D>()?;
        if fresh {
            // NOTE: workers asleep on their futex must move to epoll_wait
            // now that there is a driver; an empty IPI makes them pass
            // their loop.
            for i in 0..self.workers() {
                crate::worker::send(&self.shared, i, crate::worker::Msg::Run(Box::new(|| {})));
            }
        }
        Ok(d)
    }

    /// Register `fd` on worker `worker`'s epoll instance with the `EPOLL*`
    /// bits `events` and `token` (any value but `u64::MAX`); its readiness
    /// then reaches the driver's [`Driver::ready`] on that worker. The
    /// caller keeps `fd` open until it calls [`Handle::io_deregister`](crate::Handle::io_deregister).
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// rt.handle().io_register(0, a.as_raw_fd(), libc::EPOLLIN as u32, 7).unwrap();
    /// assert!(rt.handle().io_register(1, a.as_raw_fd(), 0, 7).is_err()); // no worker 1
    /// rt.handle().io_deregister(0, a.as_raw_fd()).unwrap();
    /// ```
    pub fn io_register(&self, worker: usize, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let ws = self.io_worker(worker, token)?;
        ws.has_io.store(true, Relaxed);
        ws.poller.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Change the interest bits or token of a registered `fd`.
    pub fn io_modify(&self, worker: usize, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.io_worker(worker, token)?.poller.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Remove `fd` from worker `worker`'s epoll instance. An event already
    /// taken out of the kernel may still reach the driver afterwards, until
    /// that worker's current pass ends: drivers free what a token names only
    /// after a grace period (percore-evq uses SMR for it).
    pub fn io_deregister(&self, worker: usize, fd: RawFd) -> io::Result<()> {
        self.io_worker(worker, 0)?.poller.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Run `f` on worker `worker` as an IPI (in a critical section, at its
    /// next scheduling point) without waiting for it. Dropped unrun if the
    /// runtime shuts down first.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.handle().run_on(1, move || tx.send(percore_lwkt::worker_index()).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), Some(1));
    /// ```
    pub fn run_on(&self, worker: usize, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        let n = self.workers();
        if worker >= n {
            return Err(Error::NoSuchWorker { worker, workers: n });
        }
        if self.shared.is_shutdown() {
            return Err(Error::Shutdown);
        }
        crate::worker::send(&self.shared, worker, crate::worker::Msg::Run(Box::new(f)));
        Ok(())
    }

    fn io_worker(&self, worker: usize, token: u64) -> io::Result<&crate::runtime::WorkerShared> {
        if token == crate::sys::KICK_TOKEN {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "epoll token u64::MAX is reserved"));
        }
        self.shared.workers.get(worker).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("worker {worker} does not exist ({})", self.workers()))
        })
    }

    /// Whether both handles name the same runtime.
    ///
    /// ```
    /// let a = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let b = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// assert!(a.handle().same(&a.handle().clone()));
    /// assert!(!a.handle().same(b.handle()));
    /// ```
    pub fn same(&self, other: &crate::Handle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The index of the worker running the caller if it is one of this
    /// runtime's workers (cheaper than comparing [`Handle::current`](crate::Handle::current)).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.handle().local_worker(), None); // a foreign thread
    /// let h = rt.handle().clone();
    /// assert_eq!(rt.block_on(move || h.local_worker()).unwrap(), Some(0));
    /// ```
    pub fn local_worker(&self) -> Option<usize> {
        let w = crate::worker::current_worker()?;
        Arc::ptr_eq(&w.shared, &self.shared).then_some(w.idx)
    }
}
