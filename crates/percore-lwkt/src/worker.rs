//! # Workers: the per-CPU scheduler (`lwkt_switch`)
//!
//! One worker is one OS thread pinned to one CPU. It owns its run queue, its
//! list of uthreads (`gd_tdallq`), its timers and its stack cache; nothing
//! else touches them. Other threads talk to it through IPIs (`ipi.rs`) and
//! wake it with the idle word (`idle.rs`).
//!
//! ## The loop
//!
//! ```text
//!   loop:
//!     drain IPIs if PENDING       (schedule, migrate-in, set-priority, run-function,
//!                                  give-away / acquire: `giveaway.rs`)
//!     fire expired timers         (unpark their uthreads)
//!     pick the best uthread whose tokens can all be taken
//!        none queued   -> spin a little, then futex-sleep until an IPI or a timer
//!        all contended -> back off, retry (the holders run on other workers)
//!     resume it; it runs until it yields, blocks, migrates or returns
//!     release its tokens; requeue / block / send it away / reap its stack
//! ```
//!
//! Uthreads are corosensei coroutines resumed from this loop, so a switch
//! between two uthreads is two stack switches through the worker's own stack.
//! That is also where an exiting uthread is reaped (`lwkt_exit` caches the
//! dying thread in `gd_freetd` for the same reason): its stack is no longer in
//! use once control is back here, and goes to the stack cache.
//!
//! ## Critical sections
//!
//! `crit` counts nested critical sections of the running code. IPIs are only
//! drained at scheduling points (which never happen inside one) and at the
//! outermost `crit_exit`; handlers run with `crit` raised, so a handler that
//! tries to block is refused. An SMR read section counts as a critical
//! section (`percore_smr::in_section`).
//!
//! The depth belongs to the uthread, not to the worker: `run_one` adds the
//! uthread's saved depth (`Sched::crit`) to the worker's count before the
//! resume and takes it back after the switch-out. A uthread cannot block or
//! yield inside a section, so the saved depth is normally zero; what it
//! catches is a uthread that *exits* inside one (it returned inside
//! `crit_enter()`, `mem::forget`'s a `critical()` guard, or panicked past a
//! bare `crit_enter`). Such a leaked depth dies with its uthread and is
//! counted as the worker's `crit_leaks`; it never reaches the next uthread
//! (issue 16).
//!
//! ## Shutdown
//!
//! When the [`Runtime`](crate::Runtime) is dropped every worker stops at its
//! next scheduling point, then (1) all workers meet at a barrier, so no uthread
//! runs anywhere; (2) each drains its inboxes, adopting uthreads in flight
//! (spawned, migrating); (3) after a second barrier, each cancels its
//! uthreads: a started one is unwound (its destructors run, and any blocking
//! call they make returns [`Error::Shutdown`] at once), an unstarted one is
//! dropped; their joiners get [`JoinError::Cancelled`](crate::JoinError).
//! Messages sent from then on are dropped.

use crate::error::Error;
use crate::runq::RunQueue;
use crate::runtime::Shared;
use crate::sys::Stack;
use crate::thread::{Intent, RunState, Thread};
use crate::timer::Timers;
// NOTE: moved out to keep this file near 600 lines; the names stay here.
pub(crate) use crate::sched::{check_may_block, park_current};
use corosensei::CoroutineResult;
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::{Acquire, Release};
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// Idle rounds before a sleep; each is `SPIN_PAUSES` `spin_loop` hints and
/// a check for work, so a wake-up that arrives while the worker spins is
/// seen within a few pauses.
pub(crate) const SPIN_ROUNDS: u32 = 512;
/// `spin_loop` hints per idle round.
pub(crate) const SPIN_PAUSES: u32 = 4;
/// The least an adaptive spin shrinks to (see `idle`).
pub(crate) const SPIN_MIN_ROUNDS: u32 = 16;
/// Idle rounds between two non-blocking looks at the epoll instance.
pub(crate) const SPIN_IO_EVERY: u32 = 128;

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
    GiveAway(Arc<Thread>, usize, crate::giveaway::Reply),
    /// Take a given-away uthread; `true`: it is runnable (`lwkt_acquire`).
    Acquire(Arc<Thread>, bool),
}

/// A worker's private state. Lives on its OS thread's stack; reached through
/// a thread-local pointer by the uthreads it runs.
pub(crate) struct Worker {
    pub(crate) idx: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) runq: RefCell<RunQueue>,
    allq: RefCell<Vec<Arc<Thread>>>,
    timers: RefCell<Timers>,
    stacks: RefCell<Vec<Stack>>,
    current: Cell<*const Thread>,
    pub(crate) crit: Cell<u32>,
    pub(crate) shutting_down: Cell<bool>,
    /// A uthread of higher priority than the current one is queued.
    pub(crate) resched: Cell<bool>,
    /// An unresolved preemption request: the priority it asked for
    /// (`preempt.rs`).
    pub(crate) preempt: Cell<Option<u8>>,
    /// When the current uthread's slice began; set lazily by the first
    /// `maybe_yield` (an `Instant::now` per switch would double its cost).
    slice_start: Cell<Option<Instant>>,
    /// The driver's next deadline, from its last `poll` (`driver.rs`).
    pub(crate) driver_at: Cell<Option<Instant>>,
    /// Scheduling passes until the next non-blocking epoll poll.
    pub(crate) io_countdown: Cell<u32>,
    /// Yields that found nobody else to run since the last forced pass.
    lone_yields: Cell<u32>,
    /// Idle rounds the next spin may take (adaptive, see `idle`).
    pub(crate) spin_budget: Cell<u32>,
    /// The running uthread's stack, for the overflow handler
    /// (`sys/overflow.rs`); boxed so its address stays put.
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

/// Send an IPI to worker `target`. Handled at once when the caller is that
/// worker; otherwise queued on the (sender, target) ring, or on the target's
/// foreign queue when the caller is not one of this runtime's workers.
pub(crate) fn send(shared: &Arc<Shared>, target: usize, msg: Msg) {
    let ws = &shared.workers[target];
    match current_worker() {
        Some(w) if Arc::ptr_eq(&w.shared, shared) => {
            if target == w.idx {
                w.crit.set(w.crit.get() + 1);
                w.handle(msg);
                w.crit.set(w.crit.get() - 1);
                return;
            }
            if shared.stopping() {
                return;
            }
            let ring = &ws.rings[w.idx];
            // SAFETY: worker `w.idx`'s OS thread (us) is the only producer on
            // this ring.
            let sent = unsafe {
                ring.push_wait(msg, || {
                    ws.notify();
                    w.drain();
                    !shared.stopping()
                })
            };
            if !sent {
                return;
            }
            shared.workers[w.idx].stats.ipis_sent.bump();
        }
        _ => {
            let refused = {
                let mut q = ws.foreign.lock();
                // NOTE: checked under the lock: the worker's last drain
                // after `set_stopping` takes it too, so a message is either
                // drained there or refused here, never left behind.
                if shared.stopping() {
                    Some(msg)
                } else {
                    q.push(msg);
                    None
                }
            };
            // Dropped outside the lock: its guards (cpusync parts, give-away
            // replies) report the shutdown and may send in turn.
            if refused.is_some() {
                return;
            }
            shared.foreign_sent.inc();
        }
    }
    ws.notify();
}

impl Worker {
    pub(crate) fn new(idx: usize, shared: Arc<Shared>) -> Worker {
        Worker {
            idx,
            shared,
            runq: RefCell::default(),
            allq: RefCell::default(),
            timers: RefCell::default(),
            stacks: RefCell::default(),
            current: Cell::new(std::ptr::null()),
            crit: Cell::new(0),
            shutting_down: Cell::new(false),
            resched: Cell::new(false),
            preempt: Cell::new(None),
            slice_start: Cell::new(None),
            driver_at: Cell::new(None),
            io_countdown: Cell::new(crate::driver::IO_POLL_EVERY),
            lone_yields: Cell::new(0),
            spin_budget: Cell::new(SPIN_ROUNDS),
            guard: Box::new(crate::sys::overflow::GuardRecord::new(idx)),
        }
    }

    pub(crate) fn ws(&self) -> &crate::runtime::WorkerShared {
        &self.shared.workers[self.idx]
    }

    /// The running uthread, borrowed for the caller's scope.
    pub(crate) fn current_ptr(&self) -> Option<&Thread> {
        // SAFETY: see `current_thread`.
        unsafe { self.current.get().as_ref() }
    }

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

    /// Whether a yield would find someone else to run.
    #[inline]
    pub(crate) fn yield_wanted(&self, t: &Thread) -> bool {
        // NOTE: at shutdown, switch out so the loop can see it: a uthread
        // that spins on `yield_now` alone must not keep `Runtime::drop` waiting.
        if self.ws().idle.peek_pending() || self.resched.get() || self.shared.is_shutdown() {
            return true;
        }
        // SAFETY: `t` is our current uthread.
        let pri = unsafe { t.sched() }.pri;
        if self.runq.borrow().top().is_some_and(|p| p >= pri) {
            return true;
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
        // SAFETY: `t` runs on this worker; the reference ends before the
        // switch.
        let y = unsafe {
            let s = t.sched();
            s.intent = intent;
            s.yielder
        };
        // SAFETY: the yielder lives on the coroutine's stack for its whole
        // life, and we are running on that coroutine.
        unsafe { (*y).suspend(()) };
    }

    /// Arm `t`'s timer for `at` (see `timer.rs`).
    pub(crate) fn add_timer(&self, at: Instant, t: &Thread) {
        // SAFETY: `t` is alive (it is running); we take a strong reference.
        let thread = unsafe {
            Arc::increment_strong_count(t);
            Arc::from_raw(t)
        };
        self.timers.borrow_mut().add(self.idx, at, thread);
    }

    /// Take a cached stack of `size` usable bytes, if any.
    pub(crate) fn take_stack(&self, size: usize) -> Option<Stack> {
        let mut c = self.stacks.borrow_mut();
        let i = c.iter().rposition(|s| s.usable() == size)?;
        Some(c.swap_remove(i))
    }

    /// Drain every inbox (`lwkt_process_ipiq`), in a critical section.
    #[cold]
    pub(crate) fn drain(&self) {
        self.crit.set(self.crit.get() + 1);
        let ws = self.ws();
        let mut n = 0u64;
        for ring in ws.rings.iter() {
            // SAFETY: this worker's OS thread is the only consumer of its
            // inbound rings.
            while let Some(m) = unsafe { ring.pop() } {
                n += 1;
                self.handle(m);
            }
        }
        let foreign = std::mem::take(&mut *ws.foreign.lock());
        for m in foreign {
            n += 1;
            self.handle(m);
        }
        ws.stats.ipis_received.add(n);
        self.crit.set(self.crit.get() - 1);
    }

    /// Drain if an IPI is pending: called at every scheduling point and at
    /// the outermost `crit_exit`.
    #[inline]
    pub(crate) fn poll_ipis(&self) {
        if self.ws().idle.take_pending() {
            self.drain();
        }
    }

    pub(crate) fn handle(&self, m: Msg) {
        match m {
            Msg::Spawn(t) | Msg::MigrateIn(t) => {
                // NOTE: during shutdown this adopts uthreads in flight so
                // that phase 3 cancels them.
                self.adopt(&t);
                self.enqueue(t, false);
            }
            Msg::Schedule(t) => {
                let owner = t.owner.load(Acquire);
                if owner != self.idx {
                    send(&self.shared.clone(), owner, Msg::Schedule(t));
                    return;
                }
                self.wake_local(t);
            }
            Msg::SetPri(t, p) => {
                let owner = t.owner.load(Acquire);
                if owner != self.idx {
                    send(&self.shared.clone(), owner, Msg::SetPri(t, p));
                    return;
                }
                self.set_pri_local(&t, p);
            }
            Msg::GiveAway(t, to, reply) => self.give_away(t, to, reply),
            Msg::Acquire(t, runnable) => self.acquire(t, runnable),
            Msg::Run(f) => {
                // A panicking IPI function must not take the worker down;
                // `cpusync` reports it (its part is dropped unfinished).
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
                    self.ws().stats.ipi_panics.bump();
                }
            }
        }
    }

    pub(crate) fn adopt(&self, t: &Arc<Thread>) {
        let mut all = self.allq.borrow_mut();
        // SAFETY: `t` now belongs to this worker.
        unsafe { t.sched() }.allq_idx = all.len();
        all.push(t.clone());
    }

    pub(crate) fn unadopt(&self, t: &Thread) {
        let mut all = self.allq.borrow_mut();
        // SAFETY: `t` belongs to this worker.
        let i = unsafe { t.sched() }.allq_idx;
        if i < all.len() && std::ptr::eq(&*all[i], t) {
            all.swap_remove(i);
            if i < all.len() {
                // SAFETY: every uthread in `allq` belongs to this worker.
                unsafe { all[i].sched() }.allq_idx = i;
            }
        }
    }

    fn wake_local(&self, t: Arc<Thread>) {
        // SAFETY: `t` belongs to this worker and is not running inside this
        // call (a running uthread is only marked).
        let s = unsafe { t.sched() };
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

    pub(crate) fn enqueue(&self, t: Arc<Thread>, front: bool) {
        // SAFETY: `t` belongs to this worker.
        let s = unsafe { t.sched() };
        s.state = RunState::Queued;
        let pri = s.pri;
        if let Some(c) = self.current_ptr() {
            // SAFETY: the current uthread belongs to this worker; `c` and `t`
            // are distinct (a running uthread is never enqueued here).
            if pri > unsafe { c.sched() }.pri {
                self.resched.set(true);
                self.request_preempt(pri);
            }
        }
        self.runq.borrow_mut().push(t, pri, front);
    }

    pub(crate) fn set_pri_local(&self, t: &Thread, p: u8) {
        // SAFETY: `t` belongs to this worker.
        let s = unsafe { t.sched() };
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

    fn fire_timers(&self) {
        loop {
            let due = self.timers.borrow_mut().pop_due(self.idx, Instant::now());
            match due {
                Some(t) => t.unpark(),
                None => return,
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.timers.borrow().next().map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Pick the best runnable uthread whose tokens can all be taken
    /// (`lwkt_switch`'s hot path, then its contended scan).
    #[inline]
    fn pick(&self) -> Option<Arc<Thread>> {
        let mut rq = self.runq.borrow_mut();
        if let Some(t) = rq.pop_if_free() {
            return Some(t);
        }
        let mut i = 0;
        while let Some((t, _)) = rq.nth(i) {
            // SAFETY: queued uthreads belong to this worker and are not running.
            let s = unsafe { t.sched() };
            if s.tokens.is_empty() || s.tokens.acquire_all() {
                return rq.remove_nth(i);
            }
            self.ws().stats.token_contended.bump();
            i += 1;
        }
        None
    }

    /// Resume `t` until it switches out, then act on why it did.
    fn run_one(&self, t: Arc<Thread>) {
        self.current.set(Arc::as_ptr(&t));
        self.resched.set(false);
        self.slice_start.set(None);
        self.ws().stats.switches.bump();
        // SAFETY: `t` belongs to this worker and does not run yet.
        let s = unsafe { t.sched() };
        s.state = RunState::Running;
        if self.preempt.get().is_some() {
            self.resolve_preempt(s.pri);
        }
        // NOTE: the critical-section count is the uthread's: it runs with
        // its own depth on top of the scheduler's (zero here), and takes it
        // away when it switches out (issue 16).
        let base = self.crit.get();
        self.crit.set(base + s.crit);
        // NOTE: `t` (and so its name) outlives the resume: the overflow
        // handler may read both while the uthread runs.
        self.guard.set(t.stack.0, t.stack.1, t.name.as_deref());
        self.ws().slot.enter(&t);
        // SAFETY: only this worker touches the coroutine cell, and the
        // uthread itself never does; the reference ends with the resume.
        let result = match unsafe { t.coro() } {
            Some(c) => c.resume(()),
            None => CoroutineResult::Return(()),
        };
        self.ws().slot.leave();
        self.guard.clear();
        self.current.set(std::ptr::null());
        // SAFETY: the uthread is switched out; its state is ours again.
        let s = unsafe { t.sched() };
        s.crit = self.crit.get().saturating_sub(base);
        self.crit.set(base);
        if !s.tokens.is_empty() {
            s.tokens.release_all();
        }
        match result {
            CoroutineResult::Yield(()) => match s.intent {
                Intent::Yield => self.enqueue(t, false),
                Intent::YieldFront => self.enqueue(t, true),
                Intent::Block => {
                    if std::mem::take(&mut s.resched) {
                        self.enqueue(t, false);
                    } else {
                        s.state = RunState::Blocked;
                    }
                }
                Intent::Migrate(to) => {
                    s.state = RunState::Migrating;
                    s.resched = false;
                    self.unadopt(&t);
                    // ORDERING: release publishes the switched-out state
                    // to the new owner, with the ring's own release.
                    t.owner.store(to, Release);
                    send(&self.shared.clone(), to, Msg::MigrateIn(t));
                }
            },
            CoroutineResult::Return(()) => {
                if std::mem::take(&mut s.crit) != 0 {
                    // It exited inside a critical section: the depth dies
                    // with it; count the leak where users can see it.
                    self.ws().stats.crit_leaks.bump();
                }
                s.state = RunState::Dead;
                self.unadopt(&t);
                t.port.close();
                // SAFETY: as above; the coroutine has finished.
                if let Some(c) = unsafe { t.coro() }.take() {
                    self.reap(c.into_stack());
                }
            }
        }
    }

    /// Keep a dead uthread's stack for the next spawn, up to the cache size.
    fn reap(&self, stack: Stack) {
        let mut c = self.stacks.borrow_mut();
        if c.len() < self.shared.cfg.stack_cache && stack.usable() == self.shared.cfg.stack_size {
            c.push(stack);
        }
    }

    /// The scheduler loop of worker `idx`; returns at shutdown.
    pub(crate) fn run(self) {
        WORKER.with(|w| w.set(&self));
        let alt = crate::sys::overflow::enter_worker(&self.guard);
        let ws = self.ws();
        let mut contended = 0u32;
        while !self.shared.is_shutdown() {
            self.poll_ipis();
            if !self.timers.borrow().is_empty() {
                self.fire_timers();
            }
            if let Some(d) = self.shared.driver.get() {
                self.driver_pass(&*d.driver);
            }
            ws.stats.runq_len.set(self.runq.borrow().len() as u64);
            match self.pick() {
                Some(t) => {
                    contended = 0;
                    self.run_one(t);
                }
                None if self.runq.borrow().len() == 0 => self.idle(),
                None => {
                    // Every runnable uthread wants a token held by a uthread
                    // running on another worker; it gives it up at its next
                    // switch. Back off politely.
                    contended = contended.saturating_add(1);
                    if contended < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
            ws.stats.cached_stacks.set(self.stacks.borrow().len() as u64);
        }
        self.shutdown();
        crate::sys::overflow::leave_worker(alt);
        WORKER.with(|w| w.set(std::ptr::null()));
    }

    fn shutdown(&self) {
        self.shutting_down.set(true);
        self.shared.barrier.wait(); // (1) no uthread runs anywhere
        self.drain(); // (2) adopt uthreads in flight
        self.shared.barrier.wait();
        self.shared.set_stopping();
        // (3) cancel: unwind started uthreads, drop unstarted ones.
        drop(self.runq.borrow_mut().drain_all());
        let all = std::mem::take(&mut *self.allq.borrow_mut());
        for t in &all {
            self.current.set(Arc::as_ptr(t));
            // SAFETY: `t` belongs to this worker and does not run.
            let (coro, crit) = unsafe {
                let s = t.sched();
                s.cancelled = true;
                s.state = RunState::Dead;
                (t.coro().take(), std::mem::take(&mut s.crit))
            };
            // The unwound uthread runs its destructors with its own depth.
            let base = self.crit.get();
            self.crit.set(base + crit);
            self.guard.set(t.stack.0, t.stack.1, t.name.as_deref());
            self.ws().slot.enter(t);
            drop(coro);
            self.ws().slot.leave();
            self.guard.clear();
            self.crit.set(base);
            t.port.close();
            self.current.set(std::ptr::null());
        }
        drop(all);
        self.drain();
        self.timers.borrow_mut().clear();
        self.stacks.borrow_mut().clear();
    }
}
