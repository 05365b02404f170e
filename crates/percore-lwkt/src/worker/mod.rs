//! # Workers: the per-CPU scheduler (`lwkt_switch`)
//!
//! One worker is one OS thread pinned to one CPU. It owns its run queue, its
//! list of uthreads (`gd_tdallq`), its timers and its stack cache; nothing
//! else touches them. Other threads talk to it through IPIs (`ipi.rs`,
//! `ring.rs`) and wake it with the idle word (`idle.rs`).
//!
//! The loop, the IPI and idle protocols, the states and the shutdown are in
//! `README.md` beside this file. This file holds the worker's private half
//! ([`Worker`]), the thread-local through which uthreads find it, and its
//! run-queue operations; the other files of `worker/` hold the rest of
//! `impl Worker`.

pub(crate) mod crit;
pub(crate) mod idle;
pub(crate) mod io;
pub(crate) mod ipi;
pub(crate) mod nap;
pub(crate) mod preempt;
pub(crate) mod ring;
pub(crate) mod run;
pub(crate) mod runq;
pub(crate) mod timer;
pub(crate) mod watchdog;
// NOTE: public, re-exported as `percore_lwkt::wheel`: percore-evq's alarms
// keep their per-worker timers in the same wheel.
pub mod wheel;

use crate::error::Error;
use crate::kernel::{Remote, RuntimeState};
use crate::sys::Stack;
use crate::uthread::record::{Intent, Owned, RunState, Thread};
use percore_cpu::loom::Arc;
use runq::RunQueue;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};
use timer::Timers;

/// a check for work, so a wake-up that arrives while the worker spins is
/// seen within a few pauses.
pub(crate) const SPIN_ROUNDS: u32 = 512;
/// `spin_loop` hints per idle round.
pub(crate) const SPIN_PAUSES: u32 = 4;
/// The least an adaptive spin shrinks to (see `idle`).
pub(crate) const SPIN_MIN_ROUNDS: u32 = 16;
/// Idle rounds between two non-blocking looks at the epoll instance.
pub(crate) const SPIN_IO_EVERY: u32 = 128;
/// The longest a worker spins for an answer after waking a sleeping peer
/// (`io.rs`): a few OS wake-ups of a pinned worker on a VM (25-50 us
/// measured on the 2-vCPU development machine, `examples/wake.rs`).
pub(crate) const REPLY_SPIN_MAX: Duration = Duration::from_micros(100);
/// The least a growing reply window restarts from (a window halved to
/// nothing spins no more until an answer shows it was worth it).
pub(crate) const REPLY_SPIN_MIN: Duration = Duration::from_micros(2);
/// Records of exited uthreads a worker keeps for reuse (`recycle`).
pub(crate) const RECORD_CACHE: usize = 64;

/// A worker's private state. Lives on its OS thread's stack; reached through
/// a thread-local pointer by the uthreads it runs.
pub(crate) struct Worker {
    // NOTE: every field is this worker's OS thread's alone: the struct
    // lives on that thread's stack and only `current_worker` (on the same
    // thread) or `run` reach it. "The worker" below means that thread,
    // running the scheduler loop or one of the worker's uthreads; the
    // `Cell`/`RefCell`s are for that single thread's re-entrant use
    // (a uthread's yield inside the loop's resume), never for sharing.
    /// This worker's index in `shared.workers`. Immutable.
    pub(crate) idx: usize,
    /// The runtime's state. Immutable (the `Arc`; what it points to has its
    /// own rules, `kernel.rs`).
    pub(crate) shared: Arc<RuntimeState>,
    /// This worker's remote half, `&shared.workers[idx]`, computed once.
    /// Immutable. (`ws()` is reached a dozen times per switch; indexing
    /// through `shared` each time, with its bounds check, cost about 50
    /// instructions of a 360-instruction yield. Issue 15.)
    remote: std::ptr::NonNull<Remote>,
    /// Runnable uthreads (`runq.rs`). The worker, between resumes and from
    /// IPI handlers and wake-ups; never borrowed across a resume.
    pub(crate) runq: RefCell<RunQueue>,
    /// Every uthread this worker owns (`gd_tdallq`), indexed by
    /// `Sched::allq_idx`: pushed at adoption, removed at exit and when a
    /// uthread migrates or is given away. Drained at shutdown to cancel them.
    allq: RefCell<Vec<Arc<Thread>>>,
    /// Uthread timeouts armed on this worker (`timer.rs`). Armed by its
    /// uthreads (`add_timer`), fired by the loop.
    timers: RefCell<Timers>,
    /// Stacks of exited uthreads for reuse: filled by `reap` after a
    /// uthread's return, taken by spawns on this worker.
    stacks: RefCell<Vec<Stack>>,
    /// Records of exited uthreads for reuse (issue 15), at most
    /// `RECORD_CACHE`: filled by `recycle` with records of this runtime
    /// that nobody else references any more, taken by spawns on this worker
    /// (`take_record`); dropped with the worker.
    records: RefCell<Vec<Arc<Thread>>>,
    /// The uthread being resumed, null between resumes. Set and cleared by
    /// `run_one` (and shutdown's cancel loop) around the resume; read by
    /// the uthread through `current_ptr` / `current_thread`.
    current: Cell<*const Thread>,
    /// Critical-section depth of the running code (`crit.rs`): the running
    /// uthread's own depth on top of the loop's; raised around IPI
    /// handlers and driver calls.
    pub(crate) crit: Cell<u32>,
    /// Set once, by `shutdown`, before its first barrier: give-aways are
    /// refused from then on.
    pub(crate) shutting_down: Cell<bool>,
    /// A uthread of higher priority than the current one is queued. Set by
    /// `enqueue`, cleared by `run_one` at each resume; read at scheduling
    /// points.
    pub(crate) resched: Cell<bool>,
    /// An unresolved preemption request: the priority it asked for
    /// (`preempt.rs`). Opened by `enqueue`, resolved at the next resume or
    /// refused scheduling point.
    pub(crate) preempt: Cell<Option<u8>>,
    /// When the current uthread's slice began; cleared at each resume and
    /// set lazily by the first `maybe_yield` (an `Instant::now` per switch
    /// would double its cost).
    slice_start: Cell<Option<Instant>>,
    /// The driver's next deadline, from its last `poll` (`driver/mod.rs`).
    /// Written by the loop's driver pass, read by the idle path.
    pub(crate) driver_at: Cell<Option<Instant>>,
    /// Scheduling passes until the next non-blocking epoll poll; the
    /// loop's driver pass counts it down.
    pub(crate) io_countdown: Cell<u32>,
    /// The gap the countdown last started from (`next_io_gap`).
    pub(crate) io_gap: Cell<u32>,
    /// Yields that found nobody else to run since the last forced pass
    /// (`yield_wanted`).
    lone_yields: Cell<u32>,
    /// Idle rounds the next spin may take (adaptive, `io.rs`); the idle
    /// path only.
    pub(crate) spin_budget: Cell<u32>,
    /// When this worker last woke a sleeping peer (an IPI that found it
    /// asleep), if it has since its last idle: set by `ipi::send`, taken by
    /// the idle path, which then spins up to `reply_window` for the answer.
    pub(crate) woke_peer: Cell<Option<Instant>>,
    /// How long the spin after waking a peer may last (adaptive, `io.rs`;
    /// on its own, apart from `spin_budget`: whether answers come back is a
    /// property of the traffic, not of how busy the worker is); the idle
    /// path only.
    pub(crate) reply_window: Cell<Duration>,
    /// The running uthread's stack, for the overflow handler
    /// (`sys/overflow.rs`); boxed so its address stays put. Set and cleared
    /// by the loop around each resume; read by the signal handler on this
    /// same thread.
    guard: Box<crate::sys::overflow::GuardRecord>,
}

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
}

/// The worker running the caller, if any.
///
/// NOTE: never inlined. A uthread may migrate at any switch, after which the
/// same code runs on another OS thread; an inlined thread-local access could
/// have its address computed once and reused across the switch.
#[inline(never)]
pub(crate) fn current_worker<'a>() -> Option<&'a Worker> {
    let p = WORKER.with(|w| w.get());
    // SAFETY: the pointer is set by `Worker::run` for exactly the lifetime of
    // the worker on this OS thread, and cleared before it is dropped. Callers
    // don't keep the reference across a switch (they re-fetch).
    unsafe { p.as_ref() }
}

/// The uthread running the caller, if any.
pub(crate) fn current_thread() -> Option<Arc<Thread>> {
    let w = current_worker()?;
    let p = w.current.get();
    if p.is_null() {
        return None;
    }
    // SAFETY: `current` points into an `Arc<Thread>` that `run_one` holds
    // while the uthread runs.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

impl Worker {
    pub(crate) fn new(idx: usize, shared: Arc<RuntimeState>) -> Worker {
        let remote = std::ptr::NonNull::from(&shared.workers[idx]);
        Worker {
            idx,
            shared,
            remote,
            runq: RefCell::default(),
            allq: RefCell::default(),
            timers: RefCell::default(),
            stacks: RefCell::default(),
            records: RefCell::default(),
            current: Cell::new(std::ptr::null()),
            crit: Cell::new(0),
            shutting_down: Cell::new(false),
            resched: Cell::new(false),
            preempt: Cell::new(None),
            slice_start: Cell::new(None),
            driver_at: Cell::new(None),
            io_countdown: Cell::new(crate::driver::IO_POLL_EVERY),
            io_gap: Cell::new(crate::driver::IO_POLL_EVERY),
            lone_yields: Cell::new(0),
            spin_budget: Cell::new(SPIN_ROUNDS),
            woke_peer: Cell::new(None),
            reply_window: Cell::new(REPLY_SPIN_MAX),
            guard: Box::new(crate::sys::overflow::GuardRecord::new(idx)),
        }
    }

    /// The witness for touching the state of this worker's uthreads.
    #[inline(always)]
    pub(crate) fn owned(&self) -> Owned<'_> {
        // SAFETY: a `&Worker` exists only on its own OS thread (it lives on
        // that thread's stack and is reached through the thread-local
        // `WORKER`, or by `run` itself), so the witness is made there. The
        // worker's code uses it only with uthreads it owns and keeps no two
        // references to one uthread's state at once: the rules of `Owned`,
        // kept by this module and the `uthread/` and `sync/token/` callers
        // that reach their own state through their current worker.
        unsafe { Owned::new() }
    }

    #[inline(always)]
    pub(crate) fn ws(&self) -> &Remote {
        // SAFETY: `remote` points into `shared.workers`, a boxed slice that
        // is never replaced or resized (an immutable field of
        // `RuntimeState`), and `self.shared` keeps that state alive for as
        // long as `self` lives; a `Remote` is only used through `&`.
        unsafe { self.remote.as_ref() }
    }

    /// The running uthread, borrowed for the caller's scope.
    pub(crate) fn current_ptr(&self) -> Option<&Thread> {
        // SAFETY: see `current_thread`.
        unsafe { self.current.get().as_ref() }
    }

    #[inline]
    pub(crate) fn check_block(&self) -> Result<(), Error> {
        if self.shutting_down.get() {
            return Err(Error::Shutdown);
        }
        if self.crit.get() > 0 {
            return Err(Error::InCritical);
        }
        if percore_smr::in_section() {
            return Err(Error::InSmrSection);
        }
        Ok(())
    }

    /// Whether a yield would find someone else to run, or the loop's pass
    /// something to do. The caller has just drained pending IPIs
    /// (`poll_ipis`).
    #[inline]
    pub(crate) fn yield_wanted(&self, t: &Thread) -> bool {
        // NOTE: at shutdown, switch out so the loop can see it: a uthread
        // that spins on `yield_now` alone must not keep `Runtime::drop` waiting.
        if self.resched.get() || self.shared.is_shutdown() {
            return true;
        }
        let pri = t.sched(self.owned()).pri;
        if self.runq.borrow().top().is_some_and(|p| p >= pri) {
            return true;
        }
        // NOTE: a lone yield: with no timer armed and no driver installed,
        // the loop's pass would only poll IPIs (done by our caller) and
        // pick this uthread again, so it returns without a switch.
        if !self.timers_armed() && self.shared.driver.get().is_none() {
            return false;
        }
        // NOTE: a uthread yielding alone would otherwise keep the loop from
        // ever firing timers or running the driver's pass (alarms, I/O):
        // every `IO_POLL_EVERY` lone yields, switch out anyway.
        let n = self.lone_yields.get() + 1;
        self.lone_yields.set(if n >= crate::driver::IO_POLL_EVERY { 0 } else { n });
        n >= crate::driver::IO_POLL_EVERY
    }

    /// Whether the scheduler clock says the current uthread's slice is over.
    pub(crate) fn slice_expired(&self, quantum: Duration) -> bool {
        match self.slice_start.get() {
            Some(t) => t.elapsed() >= quantum,
            None => {
                self.slice_start.set(Some(Instant::now()));
                false
            }
        }
    }

    /// Switch from the running uthread `t` to the scheduler.
    #[inline]
    pub(crate) fn switch_out(&self, t: &Thread, intent: Intent) {
        // NOTE: `t` runs on this worker; the reference ends before the
        // switch.
        let s = t.sched(self.owned());
        s.intent = intent;
        let y = s.yielder;
        // SAFETY: the yielder lives on the coroutine's stack for its whole
        // life, and we are running on that coroutine.
        unsafe { (*y).suspend(()) };
    }

    /// Arm `t`'s timer for `at` (see `timer.rs`); the key cancels it on
    /// this worker.
    pub(crate) fn add_timer(&self, at: Instant, t: &Thread) -> wheel::Key {
        // SAFETY: `t` is alive (it is running); we take a strong reference.
        let thread = unsafe {
            Arc::increment_strong_count(t);
            Arc::from_raw(t)
        };
        self.timers.borrow_mut().add(self.idx, at, thread)
    }

    /// Cancel a timer this worker armed (`add_timer`).
    #[inline]
    pub(crate) fn cancel_timer(&self, key: wheel::Key) {
        self.timers.borrow_mut().cancel(key);
    }

    /// Take a cached stack of `size` usable bytes, if any.
    pub(crate) fn take_stack(&self, size: usize) -> Option<Stack> {
        let mut c = self.stacks.borrow_mut();
        let i = c.iter().rposition(|s| s.usable() == size)?;
        let s = c.swap_remove(i);
        self.ws().stats.cached_stacks.set(c.len() as u64);
        Some(s)
    }

    /// Give up a reference to an exited uthread's record, keeping the
    /// record for a later spawn here if this was the last reference.
    ///
    /// NOTE: `Arc::get_mut` is the whole protocol: it succeeds only while
    /// no other strong or weak reference exists (its acquire load makes the
    /// last owner's writes visible), and once it has, nothing can make a
    /// new one: a reference is only ever cloned from another (the running
    /// slot's readers too: `monitor.rs`), and the cache is this worker's.
    /// So a record is reused only when no handle, timer, run queue or
    /// watchdog can still reach the uthread it was.
    #[inline]
    pub(crate) fn recycle(&self, mut t: Arc<Thread>) {
        if !Arc::ptr_eq(&t.shared, &self.shared) || self.records.borrow().len() >= RECORD_CACHE {
            return;
        }
        let Some(r) = Arc::get_mut(&mut t) else { return };
        if !r.coro_gone() {
            return;
        }
        // NOTE: a result nobody took (a detached uthread's) is dropped here,
        // where its last reference goes, as it would be with the record;
        // before the cache is borrowed: its destructor may spawn, and so
        // take from the cache.
        r.join.reset();
        let mut c = self.records.borrow_mut();
        if c.len() < RECORD_CACHE {
            c.push(t);
        }
        // NOTE: on the other paths `t` drops after `c` (a parameter outlives
        // the locals), so a record's destructor (a never-started uthread's
        // closure) may spawn, and so borrow the cache, again.
    }

    /// A recycled record (`recycle`), if any; the caller has the only
    /// reference.
    #[inline]
    pub(crate) fn take_record(&self) -> Option<Arc<Thread>> {
        let t = self.records.borrow_mut().pop()?;
        self.ws().stats.reused_records.bump();
        Some(t)
    }

    pub(crate) fn adopt(&self, t: &Arc<Thread>) {
        let mut all = self.allq.borrow_mut();
        t.sched(self.owned()).allq_idx = all.len();
        all.push(t.clone());
    }

    pub(crate) fn unadopt(&self, t: &Thread) {
        // NOTE: `allq`'s reference is what keeps `t` alive for a watchdog
        // that read it from the running slot after its last resume here
        // (`monitor.rs`); wait for such readers before giving it up.
        self.ws().slot.quiesce();
        let mut all = self.allq.borrow_mut();
        let i = t.sched(self.owned()).allq_idx;
        if i < all.len() && std::ptr::eq(&*all[i], t) {
            all.swap_remove(i);
            if i < all.len() {
                all[i].sched(self.owned()).allq_idx = i;
            }
        }
    }

    #[inline]
    pub(crate) fn wake_local(&self, t: Arc<Thread>) {
        // NOTE: `t` is not running inside this call (a running uthread is
        // only marked).
        let s = t.sched(self.owned());
        match s.state {
            RunState::Blocked => {
                self.ws().stats.wakeups.bump();
                self.enqueue(t, false);
            }
            // NOTE: `Migrating` here means given to us and the `Acquire`
            // IPI not yet drained (another sender's ring came first):
            // `acquire` makes it runnable.
            RunState::Running | RunState::Migrating => s.resched = true,
            _ => {}
        }
    }

    /// Put `t`, just switched out by a yield, back on the run queue. No
    /// preemption check, unlike `enqueue`: nothing runs between two
    /// resumes, so there is nobody to preempt.
    #[inline]
    pub(crate) fn requeue(&self, t: Arc<Thread>, front: bool) {
        debug_assert!(self.current.get().is_null());
        let s = t.sched(self.owned());
        s.state = RunState::Queued;
        let pri = s.pri;
        self.runq.borrow_mut().push(t, pri, front);
    }

    // NOTE: `always`: a wake-up's `schedule` called it out of line, with a
    // frame of its own (issue 15: 3 callgrind instructions of a hand-off
    // with plain `#[inline]`, which LLVM did not follow there, 3 more with
    // `always`).
    #[inline(always)]
    pub(crate) fn enqueue(&self, t: Arc<Thread>, front: bool) {
        let s = t.sched(self.owned());
        s.state = RunState::Queued;
        let pri = s.pri;
        if let Some(c) = self.current_ptr() {
            // NOTE: `c` and `t` are distinct (a running uthread is never
            // enqueued here).
            if pri > c.sched(self.owned()).pri {
                self.resched.set(true);
                self.request_preempt(pri);
            }
        }
        self.runq.borrow_mut().push(t, pri, front);
    }

    pub(crate) fn set_pri_local(&self, t: &Thread, p: u8) {
        let s = t.sched(self.owned());
        if s.pri == p {
            return;
        }
        let old = s.pri;
        s.pri = p;
        t.set_pri_mirror(p);
        if s.state == RunState::Queued {
            let taken = self.runq.borrow_mut().remove(t, old);
            if let Some(a) = taken {
                self.enqueue(a, false);
            }
        }
    }

    /// Whether a timer is armed here: the loop's and `yield_wanted`'s
    /// check, once per pass.
    ///
    /// NOTE: without `RefCell::borrow`'s increment and decrement of the
    /// borrow flag (LLVM keeps both: it cannot tell the flag from the
    /// wheel's length behind the box); the flag is still checked.
    #[inline]
    fn timers_armed(&self) -> bool {
        // SAFETY: the reference lives only for the `is_empty` read, which
        // calls nothing that could borrow `timers` mutably; a mutable
        // borrow alive now is refused (`Err`), as `borrow` would refuse it.
        match unsafe { self.timers.try_borrow_unguarded() } {
            Ok(t) => !t.is_empty(),
            Err(_) => panic!("timers already mutably borrowed"),
        }
    }

    fn fire_timers(&self) {
        loop {
            let due = self.timers.borrow_mut().pop_due(self.idx, Instant::now());
            match due {
                Some(t) => ipi::unpark(&t),
                None => return,
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.timers.borrow().next_in(Instant::now())
    }
}
