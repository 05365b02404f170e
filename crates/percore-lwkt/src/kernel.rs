//! # The runtime's state: what every worker, uthread and handle of one runtime shares
//!
//! The bottom of the crate's import graph. Three things live here because
//! everything else refers to them:
//!
//! * [`RuntimeState`]: one per runtime, behind an `Arc` held by every
//!   uthread record, every handle and every worker. "The kernel's global
//!   data": configuration, the workers' remote halves, the shutdown flags.
//!   (Named for its role: it was `Shared`, a name four crates used for
//!   four different things, issue 14.)
//! * [`Remote`]: the half of a worker that other threads may touch: its IPI
//!   inboxes, its idle word, its epoll instance, its counters, its running
//!   slot. The worker's private half (`worker::Worker`) lives on its own
//!   stack and no other thread reaches it.
//! * [`Msg`]: an IPI, the only way to ask a worker to touch what it owns.
//!
//! The uthread record (`uthread/record.rs`) and this file name each other
//! (a message carries a uthread; a uthread knows its runtime): that pair is
//! the one import loop of the crate, and the rest is layered above it
//! (`ci/import_loops.py`).

use crate::config::Config;
use crate::error::Error;
use crate::monitor::RunningSlot;
use crate::stats::WorkerStats;
use crate::uthread::record::Thread;
use crate::worker::idle::{Idle, Notified};
use crate::worker::ring::Ring;
use crossbeam_utils::CachePadded;
use percore_cpu::loom::Ordering::{Acquire, Release};
use percore_cpu::loom::{Arc, AtomicBool, AtomicUsize, Mutex};
use percore_cpu::Counter;
use std::sync::{Barrier, OnceLock};

/// An IPI: a typed operation or a small closure.
pub(crate) enum Msg {
    /// A new uthread for this worker.
    Spawn(Arc<Thread>),
    /// Make a blocked uthread runnable (`lwkt_schedule_remote`).
    Schedule(Arc<Thread>),
    /// A migrating uthread arrives (`lwkt_setcpu_remote`).
    MigrateIn(Arc<Thread>),
    /// Change a uthread's priority.
    SetPri(Arc<Thread>, u8),
    /// Run a function on this worker, in a critical section.
    Run(Box<dyn FnOnce() + Send>),
    /// Give a descheduled uthread to another worker (`lwkt_giveaway`).
    GiveAway(Arc<Thread>, usize, Box<dyn Reply>),
    /// Take a given-away uthread; `true`: it is runnable (`lwkt_acquire`).
    Acquire(Arc<Thread>, bool),
}

/// The answer to a [`Msg::GiveAway`], sent by the uthread's owner. A reply
/// dropped unanswered (the message was refused at shutdown) must answer
/// [`Error::Shutdown`] itself, so that the asker never waits for ever
/// (`uthread/giveaway.rs` implements it).
pub(crate) trait Reply: Send {
    /// Answer the asker.
    fn send(self: Box<Self>, r: Result<(), Error>);
}

/// What other threads may touch of one worker: everything here is
/// reachable from any thread holding the runtime's `Arc<RuntimeState>`.
pub(crate) struct Remote {
    /// The idle word (`worker/idle.rs`): senders `notify`, the worker
    /// sleeps and takes `PENDING`.
    pub(crate) idle: CachePadded<Idle>,
    /// Inbound IPI rings, indexed by the sending worker: ring `i` is pushed
    /// only by worker `i`'s OS thread and popped only by this worker's.
    pub(crate) rings: Box<[Ring<Msg>]>,
    /// Inbound IPIs from foreign threads: pushed by any thread, taken by
    /// this worker's drain, under the lock.
    pub(crate) foreign: Mutex<Vec<Msg>>,
    /// This worker's counters: written by the worker (and `stalls` by the
    /// watchdog), read by the stats tree from any thread.
    pub(crate) stats: WorkerStats,
    /// The CPU the worker is pinned to. Immutable.
    pub(crate) cpu: usize,
    /// The worker's kernel epoll instance (`driver/mod.rs`): descriptors
    /// are registered from any thread; only the worker waits on it; any
    /// sender may kick it.
    pub(crate) poller: crate::sys::Poller,
    /// Whether any descriptor was ever registered on `poller` (else a busy
    /// worker skips its periodic non-blocking poll). Set by `io_register`
    /// on any thread, read by the worker.
    pub(crate) has_io: AtomicBool,
    /// The running uthread and the heartbeat (`monitor.rs`): written by the
    /// worker, read by the watchdog and by a shutdown that timed out.
    pub(crate) slot: RunningSlot<Thread>,
    /// The kernel thread id of the worker's OS thread (`gettid`), for the
    /// watchdog's look at its scheduler state (`worker/watchdog.rs`):
    /// stored once by the worker when it starts, 0 before.
    pub(crate) tid: std::sync::atomic::AtomicI32,
}

impl Remote {
    /// Wake the worker after pushing a message, through whichever primitive
    /// it sleeps on. Returns whether it slept (this call woke it).
    #[inline]
    pub(crate) fn notify(&self) -> bool {
        match self.idle.notify() {
            Notified::Awake => false,
            Notified::Futex => true,
            Notified::Poller => {
                self.poller.kick();
                true
            }
        }
    }
}

/// The state of one runtime, shared by its workers, its uthreads (each
/// record holds the `Arc`) and its handles.
pub(crate) struct RuntimeState {
    /// Each worker's remote half, indexed by worker. Immutable (the slice;
    /// each `Remote` has its own rules).
    pub(crate) workers: Box<[Remote]>,
    /// What the builder configured. Immutable.
    pub(crate) cfg: Config,
    /// IPIs sent from foreign threads; any thread adds, the stats tree reads.
    pub(crate) foreign_sent: Counter,
    /// Messages `Uthread::send` dropped at a full port where it could not
    /// wait (`sync/port.rs`); any thread adds, the stats tree reads.
    pub(crate) port_full_drops: Counter,
    /// The workers' shutdown rendezvous (`worker/README.md`): each worker
    /// waits on it twice, at shutdown only.
    pub(crate) barrier: Barrier,
    /// The driver, once one is installed (`driver/mod.rs`): set once by
    /// any thread (`Handle::driver`), then read by the workers' loops.
    pub(crate) driver: std::sync::OnceLock<crate::driver::Installed>,
    /// The runtime is shutting down: set once (release) by `Runtime`'s
    /// drop / `shutdown_timeout`, or a failed build; read (acquire) by
    /// workers at every pass and by anyone deciding whether to wait.
    pub(crate) shutdown: AtomicBool,
    /// Past shutdown's second barrier: messages are dropped from now on.
    /// Set once by each worker (`set_stopping`), read by senders.
    stopping: AtomicBool,
    /// The next worker for a rotating spawn; any spawner adds.
    pub(crate) rotor: AtomicUsize,
    /// The pool of [`block_in_pool`](crate::block_in_pool), taken on first
    /// use (any uthread) and given back when the runtime goes.
    pub(crate) pool: OnceLock<percore_pool::ThreadPool>,
    /// The runtime's name (stats tree, diagnostics). Immutable.
    pub(crate) name: String,
    /// Sleeping workers and the watchdog's nap (`worker/nap.rs`): each
    /// worker around its sleeps, the watchdog at its ticks.
    pub(crate) nap: crate::worker::nap::Nap,
    /// The watchdog's thread, set once by the watchdog as it starts, for
    /// the worker that ends its nap.
    pub(crate) watchdog: OnceLock<std::thread::Thread>,
    /// Naps the watchdog took (`watchdog_naps`); the watchdog adds, the
    /// stats tree reads.
    pub(crate) watchdog_naps: Counter,
}

impl RuntimeState {
    /// Make a runtime's state (the builder's; the flags start clear).
    pub(crate) fn new(workers: Box<[Remote]>, cfg: Config, name: String) -> RuntimeState {
        let n = workers.len();
        RuntimeState {
            workers,
            cfg,
            foreign_sent: Counter::new(),
            port_full_drops: Counter::new(),
            barrier: Barrier::new(n),
            driver: std::sync::OnceLock::new(),
            shutdown: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            rotor: AtomicUsize::new(0),
            pool: OnceLock::new(),
            name,
            nap: crate::worker::nap::Nap::new(),
            watchdog: OnceLock::new(),
            watchdog_naps: Counter::new(),
        }
    }

    /// Whether the runtime is shutting down.
    #[inline]
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    /// Whether messages are dropped (shutdown is past its second barrier).
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Acquire)
    }

    /// A worker passed shutdown's second barrier.
    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Release);
    }
}

/// The runtime's counters in the stats tree, under `lwkt.<name>`:
/// `foreign_ipis`, `port_full_drops`, `watchdog_naps`, and each worker's as
/// `w<i>.<key>`.
impl percore_cpu::stats::Emit for RuntimeState {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        emit("foreign_ipis", self.foreign_sent.sum());
        emit("port_full_drops", self.port_full_drops.sum());
        emit("watchdog_naps", self.watchdog_naps.sum());
        for (i, w) in self.workers.iter().enumerate() {
            w.stats.emit(&mut |k, v| emit(&format!("w{i}.{k}"), v));
        }
    }
}
