//! IPIs: sending one to a worker, and the worker's handling of what it
//! receives (`lwkt_send_ipiq`, `lwkt_process_ipiq`), including the owner's
//! half of a give-away (`uthread/giveaway.rs` has the protocol) and waking
//! a uthread (`lwkt_schedule`). The rings are `ring.rs`, the wake-up word
//! `idle.rs`; `README.md` ties them together.

use super::{current_worker, Worker};
use crate::error::Error;
use crate::kernel::{Msg, Reply, RuntimeState};
use crate::uthread::record::{RunState, Thread};
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::{Acquire, Release};

/// Send an IPI to worker `target`. Handled at once when the caller is that
/// worker; otherwise queued on the (sender, target) ring, or on the target's
/// foreign queue when the caller is not one of this runtime's workers.
pub(crate) fn send(shared: &Arc<RuntimeState>, target: usize, msg: Msg) {
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
            // NOTE: a worker that had to wake a sleeping peer expects an
            // answer to take about one OS wake-up: its next idle spins for
            // it (`reply_window`, `io.rs`) instead of sleeping at once.
            if ws.notify() {
                w.woke_peer.set(Some(std::time::Instant::now()));
            }
            return;
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

/// Make `t` runnable on its owner, from anywhere (`lwkt_schedule`).
pub(crate) fn schedule(t: Arc<Thread>) {
    let owner = t.owner.load(Acquire);
    // Fast path, a local wake-up: handled at once, as `send` would, without
    // the `Arc<RuntimeState>` clone that `send` needs for a message moving `t`.
    // NOTE: straight to `wake_local`: `handle`'s own look at `owner` would
    // repeat the one just made (and nothing here can switch, so the
    // critical section `send` puts around a handler is not needed).
    if let Some(w) = current_worker().filter(|w| w.idx == owner && Arc::ptr_eq(&w.shared, &t.shared)) {
        w.wake_local(t);
        return;
    }
    let shared = t.shared.clone();
    send(&shared, owner, Msg::Schedule(t));
}

/// Wake `t` if it is parked (any thread may call this): the park word's
/// transition (`uthread/park.rs`), then a schedule IPI if it was parked.
#[inline]
pub(crate) fn unpark(t: &Arc<Thread>) {
    if t.park.unpark() {
        schedule(t.clone());
    }
}

/// [`unpark`], reusing the caller's reference for the schedule IPI instead
/// of taking another.
#[inline]
pub(crate) fn unpark_owned(t: Arc<Thread>) {
    if t.park.unpark() {
        schedule(t);
    }
}

impl Worker {
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
            // NOTE: during shutdown this adopts uthreads in flight so that
            // phase 3 cancels them.
            Msg::Spawn(t) | Msg::MigrateIn(t) => self.spawn_here(t),
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

    /// A new (or migrated-in) uthread joins this worker: adopted, queued.
    #[inline]
    pub(crate) fn spawn_here(&self, t: Arc<Thread>) {
        self.adopt(&t);
        self.enqueue(t, false);
    }

    /// `lwkt_giveaway`: the owner's half, in an IPI handler.
    pub(crate) fn give_away(&self, t: Arc<Thread>, to: usize, reply: Box<dyn Reply>) {
        let owner = t.owner.load(Acquire);
        if owner != self.idx {
            send(&self.shared.clone(), owner, Msg::GiveAway(t, to, reply));
            return;
        }
        if self.shutting_down.get() {
            return reply.send(Err(Error::Shutdown));
        }
        // NOTE: `t` belongs to this worker (checked above) and, being in an
        // IPI handler, we are not inside a borrow of its state.
        let s = t.sched(self.owned());
        let runnable = match s.state {
            RunState::Dead => return reply.send(Err(Error::Exited)),
            _ if to == self.idx => return reply.send(Ok(())),
            // Inside `migrate`, not yet run on its target: its promise
            // ("when this returns it runs there") wins.
            _ if s.migrating => return reply.send(Err(Error::NotDescheduled)),
            RunState::Blocked => false,
            RunState::Queued => {
                let taken = self.runq.borrow_mut().remove(&t, s.pri);
                if taken.is_none() {
                    return reply.send(Err(Error::NotDescheduled));
                }
                true
            }
            RunState::Running | RunState::New | RunState::Migrating => {
                return reply.send(Err(Error::NotDescheduled));
            }
        };
        self.unadopt(&t);
        s.state = RunState::Migrating;
        s.resched = false;
        // ORDERING: release publishes our last writes of `sched` to the new
        // owner; pairs with the acquire loads of `owner` in `handle` there
        // (and with the ring's own release/acquire for `Acquire`).
        t.owner.store(to, Release);
        send(&self.shared.clone(), to, Msg::Acquire(t, runnable));
        self.shared.workers[self.idx].stats.given_away.bump();
        reply.send(Ok(()));
    }

    /// `lwkt_acquire`: the new owner adopts a given-away uthread.
    pub(crate) fn acquire(&self, t: Arc<Thread>, runnable: bool) {
        self.adopt(&t);
        // NOTE: `t` is ours since the give-away's release store of `owner`,
        // which the ring's acquire pop ordered before this.
        let s = t.sched(self.owned());
        let woken = std::mem::take(&mut s.resched);
        if woken {
            self.shared.workers[self.idx].stats.wakeups.bump();
        }
        if runnable || woken {
            self.enqueue(t, false);
        } else {
            s.state = RunState::Blocked;
        }
    }
}
