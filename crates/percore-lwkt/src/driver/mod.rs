//! # Drivers: per-worker event sources for the crates above
//!
//! A worker sleeps when it has nothing to run. Timers of its own (`worker/timer.rs`)
//! and IPIs (`worker/idle.rs`) wake it; a crate higher in the stack (percore-evq,
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
//! one to kick, see `worker/idle.rs`), and a busy worker still polls its epoll
//! instance without blocking: at the next scheduling pass after a poll that
//! found events, and at most [`IO_POLL_EVERY`] passes apart when none come
//! (the gap doubles from 1 after each empty poll), so I/O is never starved
//! by uthreads that keep the worker busy, and readiness that arrives while
//! requests flow reaches the run queue at the next pass.
//!
//! Both hooks run in a critical section outside any uthread: they must not
//! block; they wake uthreads (`Uthread::unpark`) and return.
//!
//! The worker's idle path lives here too (`Worker::idle`): an adaptive spin,
//! then a sleep on the futex, or in `epoll_wait` once a driver is installed.
//!
//! ```text
//!   worker loop:  IPIs -> own timers -> driver.poll -> [gap of 1..61 passes: epoll_wait(0) -> driver.ready]
//!                 -> pick & run -> ... nothing to run -> epoll_wait(min deadline) -> driver.ready
//! ```
//!
//! NOTE: the runtime keeps the driver alive; a driver holding a
//! [`Handle`](crate::Handle) would keep the runtime's shared state alive in
//! a cycle. Drivers keep only what they need.

use crate::error::Error;
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

mod register;

/// The most scheduling passes between two non-blocking polls of a busy
/// worker's epoll instance (a prime, as tokio's 61 event-loop ticks); the
/// gap is 1 while polls find events.
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
