//! The scheduler loop (`lwkt_switch`): pick, resume, act on the switch-out,
//! and shutdown. `README.md` beside this file holds the protocol.

use super::ipi::send;
use super::Worker;
use crate::kernel::Msg;
use crate::sys::Stack;
use crate::uthread::record::{Intent, RunState, Thread};
use corosensei::CoroutineResult;
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::Release;

impl Worker {
    /// Pick the best runnable uthread whose tokens can all be taken
    /// (`lwkt_switch`'s hot path, then its contended scan).
    /// Also sets the `runq_len` gauge (to the length before the pick), under
    /// the same borrow.
    #[inline]
    fn pick(&self) -> Option<Arc<Thread>> {
        let mut rq = self.runq.borrow_mut();
        self.ws().stats.runq_len.set(rq.len() as u64);
        if let Some(t) = rq.pop_if_free(self.owned()) {
            return Some(t);
        }
        let mut i = 0;
        while let Some((t, _)) = rq.nth(i) {
            let s = t.sched(self.owned());
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
        let s = t.sched(self.owned());
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
        // NOTE: the coroutine cell is the scheduler's alone (the uthread
        // never touches it); the reference ends with the resume.
        let result = match t.coro(self.owned()) {
            Some(c) => c.resume(()),
            None => CoroutineResult::Return(()),
        };
        self.ws().slot.leave();
        self.guard.clear();
        self.current.set(std::ptr::null());
        // NOTE: the uthread is switched out; re-fetched, as the uthread
        // used its state meanwhile.
        let s = t.sched(self.owned());
        s.crit = self.crit.get().saturating_sub(base);
        self.crit.set(base);
        if !s.tokens.is_empty() {
            s.tokens.release_all();
        }
        match result {
            CoroutineResult::Yield(()) => match s.intent {
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
                // NOTE: the yields last, as one arm: two compares instead of
                // a jump table and a merge, on the hottest way out.
                Intent::Yield | Intent::YieldFront => {
                    let front = matches!(s.intent, Intent::YieldFront);
                    self.requeue(t, front);
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
                crate::uthread::record::close_port(&t);
                if let Some(c) = t.coro(self.owned()).take() {
                    self.reap(c.into_stack());
                }
                // NOTE: kept only if nobody holds a handle (a detached
                // uthread); otherwise the last handle recycles it (`join`).
                self.recycle(t);
            }
        }
    }

    /// Keep a dead uthread's stack for the next spawn, up to the cache size.
    fn reap(&self, stack: Stack) {
        let mut c = self.stacks.borrow_mut();
        if c.len() < self.shared.cfg.stack_cache && stack.usable() == self.shared.cfg.stack_size {
            c.push(stack);
            // NOTE: the gauge is kept where the cache changes (here and in
            // `take_stack`), not once per scheduling pass.
            self.ws().stats.cached_stacks.set(c.len() as u64);
        }
    }

    /// The scheduler loop of worker `idx`; returns at shutdown.
    pub(crate) fn run(self) {
        super::WORKER.with(|w| w.set(&self));
        let alt = crate::sys::overflow::enter_worker(&self.guard);
        let ws = self.ws();
        // ORDERING: relaxed: read by the watchdog only, which tolerates 0.
        ws.tid.store(crate::sys::sched::gettid(), std::sync::atomic::Ordering::Relaxed);
        let mut contended = 0u32;
        while !self.shared.is_shutdown() {
            self.poll_ipis();
            if self.timers_armed() {
                self.fire_timers();
            }
            if let Some(d) = self.shared.driver.get() {
                self.driver_pass(&*d.driver);
            }
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
        }
        self.shutdown();
        crate::sys::overflow::leave_worker(alt);
        super::WORKER.with(|w| w.set(std::ptr::null()));
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
            let s = t.sched(self.owned());
            s.cancelled = true;
            s.state = RunState::Dead;
            let crit = std::mem::take(&mut s.crit);
            let coro = t.coro(self.owned()).take();
            // The unwound uthread runs its destructors with its own depth.
            let base = self.crit.get();
            self.crit.set(base + crit);
            self.guard.set(t.stack.0, t.stack.1, t.name.as_deref());
            self.ws().slot.enter(t);
            drop(coro);
            // SAFETY: the coroutine is gone, so its body can no longer
            // complete the slot; this is its owner's thread, where it ran.
            // Its joiner gets `JoinError::Cancelled`.
            unsafe { t.join.cancel() };
            self.ws().slot.leave();
            self.guard.clear();
            self.crit.set(base);
            crate::uthread::record::close_port(t);
            self.current.set(std::ptr::null());
        }
        // NOTE: `all` held the last references of this worker's uthreads:
        // no reader of the running slot may still be taking one (`monitor.rs`).
        self.ws().slot.quiesce();
        drop(all);
        self.drain();
        self.timers.borrow_mut().clear();
        self.stacks.borrow_mut().clear();
        self.ws().stats.cached_stacks.set(0);
    }
}
