//! # percore-lwkt: per-CPU workers and light-weight threads after DragonFly
//!
//! DragonFly BSD runs one self-contained scheduler per CPU, the LWKT
//! ("light weight kernel thread") scheduler of `sys/kern/lwkt_thread.c`
//! (Matthew Dillon, 2003-2011). Each CPU owns its run queue; other CPUs never
//! touch it, they send it inter-processor interrupts (IPIs) instead, so
//! scheduling needs no locks, only *critical sections* (a per-thread counter
//! that holds off switches and IPIs). This crate is that design in userspace:
//!
//! | kernel | here |
//! | --- | --- |
//! | CPU, `globaldata` | a **worker**: an OS thread pinned to a CPU ([`Runtime`]) |
//! | LWKT thread | a **uthread**: a stackful coroutine on a guard-paged stack ([`spawn`], [`Builder`]) |
//! | `lwkt_switch`, run queue | fixed priorities `0..=31`, round robin within one; the head is the best choice |
//! | IPI queues | one bounded ring per (sender worker, target worker), one queue for foreign threads; a futex wakes a sleeping target |
//! | `crit_enter` / `crit_exit` | [`crit_enter`], [`crit_exit`], [`critical`]; an SMR read section counts as one |
//! | `lwkt_cpusync` | [`Runtime::cpusync`] |
//! | `lwkt_token` | [`Token`]: released when its uthread blocks, re-taken before it runs |
//! | `tsleep` / `wakeup` | [`tsleep`], [`wakeup`], [`wakeup_one`] on any address |
//! | `lwkt_deschedule_self` + switch / `lwkt_schedule` | [`park`] / [`Uthread::unpark`] |
//! | `lwkt_msgport` | [`Uthread::send`], [`Uthread::call`], [`Message::reply`], [`wait_msg`] |
//! | `lwkt_setcpu_self`, `lwkt_setpri_self` | [`migrate`], [`set_priority`] |
//! | `lwkt_giveaway` / `lwkt_acquire` | [`Uthread::give_to`] |
//! | `lwkt_hold` / `lwkt_rele` | [`Uthread::hold`] / [`Uthread::release`] |
//! | thread cache, `lwkt_exit` reaping | per-worker stack cache, stacks reaped after the switch |
//! | device interrupts into the scheduler | [`Driver`]: a per-worker poll hook and the worker's own kernel epoll instance, for crates above (percore-evq) |
//! | a kernel thread doing blocking work for a sleeping thread | [`block_in_pool`], [`block_in`] (percore-pool) |
//! | (async interop) | [`block_on_future`]: a uthread awaits any `Future`; a [`JoinHandle`] is a `Future` |
//!
//! ## How a switch works
//!
//! Each worker runs a scheduler loop on its own stack (`worker/README.md` holds
//! the protocol). A uthread runs until it yields, blocks, migrates or returns; it
//! then switches back to the loop, which releases its tokens, requeues,
//! parks, sends or reaps it, drains IPIs, fires timers, and resumes the best
//! runnable uthread whose tokens it can take. Scheduling is cooperative: a
//! uthread that never reaches a scheduling point (a yield, a blocking call,
//! [`maybe_yield`]) keeps its worker. A woken higher-priority uthread runs at
//! the current one's next scheduling point (counted as a preempt hit; a
//! scheduling point refused inside a critical section counts a miss).
//!
//! ## Never block the worker
//!
//! A uthread shares its worker's OS thread with every other uthread of that
//! worker. Anything that blocks the OS thread instead of the uthread stalls
//! them all until it returns: `std::thread::sleep` (use [`sleep`]), blocking
//! std I/O (use percore-evq's sockets, or [`block_in_pool`]), a std `Mutex`
//! or `Condvar` wait (use [`Token`], [`tsleep`], ports), a long computation
//! without [`maybe_yield`]. A std `MutexGuard` held across a switch can
//! deadlock the worker outright: the next uthread that locks it blocks the
//! OS thread the holder needs to run again. The watchdog
//! ([`RuntimeBuilder::watchdog`], on by default, 100 ms) counts such stalls
//! as `lwkt.<name>.w<i>.stalls` and logs each stalling uthread's name and
//! worker once to stderr (a worker the kernel merely did not run, on an
//! overloaded machine, counts as `w<i>.descheduled` instead).
//!
//! ## Wake-ups
//!
//! Every blocking operation parks the uthread on its park word
//! (`uthread/park.rs`); a waker on any thread swaps in `NOTIFIED` and, if the
//! uthread was parked, sends its owner a *schedule* IPI. IPIs ride per-pair
//! rings (`worker/ring.rs`, a loom-checked SPSC FIFO) and a one-word idle protocol
//! (`worker/idle.rs`, loom-checked: no lost wake-up) decides whether the target must
//! be woken from its futex sleep. Inboxes are drained at every scheduling
//! point and at the outermost `crit_exit`, so uthreads that keep yielding
//! never starve a remote wake-up.
//!
//! ## Stacks and overflow
//!
//! Each uthread runs on its own `mmap`'d stack of
//! [`DEFAULT_STACK_SIZE`] (256 KiB, [`RuntimeBuilder::stack_size`],
//! [`Builder::stack_size`]) with a guard page below it. Only touched pages
//! cost memory. A uthread that overflows faults on the guard page, and the
//! runtime's `SIGSEGV` handler (on a per-worker alternate signal stack,
//! `sys/overflow.rs`) prints `uthread '<name>' on worker N overflowed its
//! stack (size S); raise it with Builder::stack_size or
//! RuntimeBuilder::stack_size` and aborts the process: an overflow cannot be
//! recovered from, but it is never a bare "Segmentation fault".
//!
//! ## Thread-locals
//!
//! Code on a uthread runs on its worker's OS thread: `thread_local!` gives
//! the *worker's* value, shared with every uthread of that worker, and a
//! uthread that [`migrate`]s sees the new worker's values afterwards. Do not
//! keep a reference to a thread-local across a call that may switch.
//!
//! ## Migration and `!Send` values
//!
//! [`migrate`] moves the calling uthread to another worker's OS thread, and
//! [`Uthread::give_to`] moves a descheduled one (so, for a uthread others
//! may give away, any blocking call can return on another OS thread). A
//! `!Send` value kept across such a call ends up used from another thread
//! than the one it was made on, which `!Send` exists to forbid. percore's
//! own thread-bound types are safe against it (issue 16):
//!
//! * an SMR [`Guard`](percore_smr::Guard) and a [`CritGuard`] cannot be
//!   held across a switch: `migrate`, `give_to`'s target blocking, and every
//!   blocking call are refused inside SMR and critical sections;
//! * a [`percore_smr::Participant`] checks at each `enter` that its slot is
//!   the calling thread's, and otherwise enters through that thread's slot;
//! * a [`TokenGuard`] is the uthread's, not the thread's: tokens are released
//!   at the switch and re-taken on the new worker before it runs.
//!
//! The compiler cannot see other `!Send` state a uthread carries across
//! `migrate` or a blocking call: a borrow of a `thread_local!` (inside
//! `LocalKey::with`), an `Rc`, a `MutexGuard` of a thread-bound lock,
//! foreign thread-bound handles. So both moves are `unsafe fn`s: the caller
//! promises the moved uthread keeps none of these across the move (for
//! [`migrate`], across that call; for [`Uthread::give_to`], across the
//! target's blocking calls). Everything else in this crate is safe to call
//! from safe code: a uthread never changes OS thread except through these
//! two (workers are pinned and never steal each other's uthreads).
//!
//! ## Absent in this release
//!
//! * Preemption proper: no uthread is ever switched out except at its own
//!   scheduling points. A woken higher-priority uthread *requests* a switch,
//!   honoured at the current uthread's next scheduling point; the per-worker
//!   counters `preempt_hit` / `preempt_miss` say whether it was honoured
//!   (`worker/preempt.rs` defines them exactly).
//! * Platforms other than Linux.
//!
//! ## Example
//!
//! ```
//! use percore_lwkt::{Runtime, Builder};
//!
//! let rt = Runtime::builder().workers(2).build().unwrap();
//! let total = rt.block_on(|| {
//!     let hs: Vec<_> = (0..8u64)
//!         .map(|i| Builder::new().rotate().spawn(move || { percore_lwkt::yield_now(); i }).unwrap())
//!         .collect();
//!     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
//! }).unwrap();
//! assert_eq!(total, 28);
//! ```

#![warn(missing_docs)]

// The layers, bottom up (`ci/import_loops.py` checks that no import loop is
// longer than three files): `config`, `error`, `sys`, `stats`, `monitor`
// and the protocol words (`worker/{ring,idle}.rs`, `uthread/park.rs`,
// `sync/token/word.rs`) name nothing above them; `kernel` and
// `uthread/record` (the runtime's state, its IPI message, the uthread
// record) are the one loop; `worker/` is the scheduler on top of them;
// `uthread/` and `sync/` are what uthreads call; `runtime/` and `driver/`
// start and extend it all.
// NOTE: under loom, only the maxima that `error` names are used.
#[cfg_attr(loom, allow(dead_code))]
mod config;
#[cfg(not(loom))]
mod driver;
// NOTE: under loom, only `park_until`'s signature uses it.
#[cfg_attr(loom, allow(dead_code))]
mod error;
#[cfg(not(loom))]
mod kernel;
mod monitor;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
mod sync;
mod sys;
#[cfg(not(loom))]
mod uthread;
#[cfg(not(loom))]
mod worker;

// NOTE: under loom only the protocol modules are compiled (the scheduler
// switches stacks, which loom cannot model); their `pub` items are reached
// by the models through `__loom`.
#[cfg(loom)]
#[allow(unreachable_pub)]
mod worker {
    pub(crate) mod idle;
    pub(crate) mod nap;
    pub(crate) mod ring;
}
#[cfg(loom)]
#[allow(unreachable_pub)]
mod uthread {
    pub(crate) mod oneshot;
    pub(crate) mod park;
    pub(crate) mod portslot;
    pub(crate) mod slotcore;
    pub(crate) mod waiter;
}
#[cfg(loom)]
#[allow(unreachable_pub)]
mod sync {
    pub(crate) mod token {
        pub(crate) mod word;
    }
}

pub use config::{
    DEFAULT_PORT_CAPACITY, DEFAULT_PRIORITY, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STACK_CACHE, DEFAULT_STACK_SIZE,
    MAX_PRIORITY, MAX_STACK_SIZE,
};
#[cfg(not(loom))]
pub use driver::{Driver, IoEvent, IO_POLL_EVERY};
pub use error::{Error, JoinError, PanicPayload};
#[cfg(not(loom))]
pub use runtime::{Handle, Runtime, RuntimeBuilder, ShutdownTimeout};
#[cfg(not(loom))]
pub use sync::blocking::{block_in, block_in_pool};
#[cfg(not(loom))]
pub use sync::future::block_on_future;
#[cfg(not(loom))]
pub use sync::port::{wait_msg, Message};
#[cfg(not(loom))]
pub use sync::sleepq::{tsleep, wakeup, wakeup_one};
#[cfg(not(loom))]
pub use sync::token::{Token, TokenGuard};
#[cfg(not(loom))]
pub use uthread::block::{park, park_timeout, park_until, sleep};
#[cfg(not(loom))]
pub use uthread::builder::{spawn, Builder};
#[cfg(not(loom))]
pub use uthread::current::{current, maybe_yield, migrate, set_priority, worker_index, yield_now, QUANTUM};
#[cfg(not(loom))]
pub use uthread::join::JoinHandle;
#[cfg(loom)]
pub use uthread::waiter::park_until;
pub use uthread::waiter::Waiter;
#[cfg(not(loom))]
pub use uthread::Uthread;
#[cfg(not(loom))]
pub use worker::crit::{crit_enter, crit_exit, critical, in_critical, CritGuard};
#[cfg(not(loom))]
pub use worker::watchdog::DEFAULT_WATCHDOG;
/// The hierarchical timing wheel that keeps each worker's uthread timeouts
/// (and percore-evq's alarms): insert and remove in O(1), never early, at
/// most one tick (`2^TICK_SHIFT` ns, about 262 µs) late.
#[cfg(not(loom))]
pub use worker::wheel;

/// The protocol cores, exposed to the loom models in `tests/loom_*.rs` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::monitor::RunningSlot;
    pub use crate::sync::token::word::{Mode, TokenList, TokenWord};
    pub use crate::uthread::oneshot::Oneshot;
    pub use crate::uthread::park::ParkWord;
    pub use crate::uthread::portslot::PortSlot;
    pub use crate::worker::idle::{Idle, Notified};
    pub use crate::worker::nap::Nap;
    pub use crate::worker::ring::{Ring, CAPACITY};
}

/// The crate README's example, compiled and run as a doc test.
#[cfg(all(doctest, not(loom)))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
