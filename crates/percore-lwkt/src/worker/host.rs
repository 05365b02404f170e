//! # A yield that runs the scheduler on the yielder's stack (issue 15)
//!
//! DragonFly's `lwkt_switch` runs on the outgoing thread: there is no
//! scheduler thread between two LWKTs. Here the loop (`run.rs`) runs on the
//! worker's own stack, so an ordinary yield is two stack switches (the
//! uthread to the loop, the loop to the next uthread) plus the loop's pass.
//! corosensei has no coroutine-to-coroutine switch, but a coroutine may
//! resume another from its own stack: `switch_and_link` stores the resumer's
//! stack pointer at the target stack's base at *every* resume
//! (corosensei 0.3.4, `src/arch/x86_64.rs`, "Linked stacks"), so the target's
//! next suspend returns to whoever resumed it last.
//!
//! So a yielding uthread A, when it may, *hosts*: it switches out logically,
//! exactly as `run_one` would after its resume returned with
//! `Intent::Yield` (`switch_back`, then `requeue`: A is a real run-queue
//! entry, `Queued`, in its FIFO/priority position), and runs the loop's pass
//! itself:
//!
//! ```text
//!   A: yield_now ── host_yield ── switch_back(A), requeue(A), host = A
//!        loop:  pick() ── A itself ──> switch_in(A), host = null, return
//!                 └──── B ──> run_one(B): B resumed from A's stack; B's
//!                             switch-out comes back here and is acted on
//!                             by the same code as in the loop
//!               poll IPIs; shutdown / timer armed / driver installed?
//!                 └──── yes ──> bail: A off the run queue, switch_in(A),
//!                             host = null, switch_out(A, Yield) (the loop)
//! ```
//!
//! A ping-pong of two uthreads is then one stack switch per yield instead of
//! two. A uthread resumed by a host (`host` set) never hosts: its yields
//! switch out to the host as they would to the loop, and its `yield_wanted`
//! sees the host queued. Only a yield with nothing for the loop to do
//! hosts: no timer armed, no driver installed (their passes are the loop's),
//! not shutting down, no tokens held by A (it would have to release and
//! re-take them, as the loop's pick does).
//!
//! Why the rest of the worker keeps working with a `Queued` uthread that is
//! not suspended in its coroutine is written down in `README.md` beside
//! this file ("Hosting yields").

use super::Worker;
use crate::uthread::record::{Intent, Thread};
use percore_cpu::loom::Arc;

impl Worker {
    /// The yield of the running uthread `t`, which `yield_wanted` said
    /// should switch: hosted when it may be, else an ordinary switch-out.
    #[inline]
    pub(crate) fn yield_switch(&self, t: &Thread) {
        if self.host.get().is_null() && t.sched(self.owned()).tokens.is_empty() && self.pass_is_pick() {
            self.host_yield(t);
        } else {
            self.switch_out(t, Intent::Yield);
        }
    }

    /// Whether the loop's pass would only poll IPIs and pick: no shutdown,
    /// no timer armed, no driver installed.
    #[inline]
    fn pass_is_pick(&self) -> bool {
        !self.shared.is_shutdown() && self.timers.borrow().is_empty() && self.shared.driver.get().is_none()
    }

    /// Run the loop's pass on `t`'s stack until the pick is `t` again.
    /// `t` is the current uthread, outside any critical section (the caller
    /// checked `check_block`), with no tokens, not hosted.
    fn host_yield(&self, t: &Thread) {
        // SAFETY: `t` is the running uthread, so `run_one` (further down
        // this stack's resumer, the loop) holds a strong reference to it for
        // as long as it runs; we take one more, for the run queue.
        let me = unsafe {
            Arc::increment_strong_count(t);
            Arc::from_raw(t)
        };
        // NOTE: base 0: the loop's depth under `t`'s is zero, and `t`'s own
        // is zero too (`check_block`); `switch_back` saves `t.crit = 0`.
        self.switch_back(&me, 0);
        self.host.set(t);
        self.requeue(me, false);
        loop {
            match self.pick() {
                Some(n) if std::ptr::eq(&*n, t) => {
                    self.host.set(std::ptr::null());
                    self.switch_in(&n);
                    // NOTE: `n` drops here; `current` stays valid through
                    // the loop's reference (see the SAFETY above).
                    return;
                }
                Some(n) => self.run_one(n),
                // NOTE: not reached while `t`, tokenless, is queued; kept
                // as a bail-out rather than an assumption.
                None => break,
            }
            self.poll_ipis();
            if !self.pass_is_pick() {
                break;
            }
        }
        self.unhost(t);
    }

    /// The loop must take over: take `t` back off the run queue, switch it
    /// in, and switch out to the loop as an ordinary yield.
    #[cold]
    fn unhost(&self, t: &Thread) {
        self.host.set(std::ptr::null());
        let pri = t.sched(self.owned()).pri;
        let taken = self.runq.borrow_mut().remove(t, pri);
        let me = taken.unwrap_or_else(|| {
            // SAFETY: as in `host_yield`: the loop's `run_one` holds `t`.
            unsafe {
                Arc::increment_strong_count(t);
                Arc::from_raw(t)
            }
        });
        self.switch_in(&me);
        drop(me);
        self.switch_out(t, Intent::Yield);
    }
}
