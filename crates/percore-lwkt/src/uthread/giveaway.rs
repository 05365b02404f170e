//! # Giving a descheduled uthread to another worker (`lwkt_giveaway` / `lwkt_acquire`)
//!
//! [`migrate`](crate::migrate) moves the *calling* uthread. DragonFly also
//! lets a CPU hand a thread that is not running to another CPU:
//! `lwkt_giveaway(td)` on the owner takes it off the owner's thread list and
//! marks it migrating, and `lwkt_acquire(td)` on the new CPU waits until it
//! is fully switched out and adopts it. Here that is
//! [`Uthread::give_to`]`(worker)`, callable from any thread.
//!
//! ## Protocol
//!
//! Only the owner touches a uthread's scheduling state, so the request goes
//! to the owner as an IPI and the caller waits for the owner's answer:
//!
//! ```text
//!   caller               owner O                          target T
//!   ------               -------                          --------
//!   GiveAway(t, T) --->  owner(t) != O? forward to it
//!                        state Blocked or Queued:
//!                          (Queued: off the run queue)
//!                          off O's thread list
//!                          state = Migrating
//!                          owner(t) = T     (release)
//!                          Acquire(t, queued?) ---------> adopt t
//!   <--- Ok               reply Ok                         queued, or a wake-up came
//!                                                            meanwhile: enqueue
//!                                                          else: state = Blocked
//!                        Running / New / Migrating:
//!   <--- Err              reply NotDescheduled; Dead: Exited
//! ```
//!
//! ## Concurrent wake-ups
//!
//! A waker reads `owner` and sends *schedule* there. Three cases, none lost:
//!
//! * it read O, and O handles the schedule before the give-away: the uthread
//!   is `Queued` and is moved as a runnable one;
//! * it read O, and O handles it after the give-away: `owner` is T now, O
//!   forwards it on the O->T ring, behind the `Acquire` (FIFO), so T sees the
//!   uthread adopted and `Blocked` and enqueues it;
//! * it read T (after the release store): its schedule may reach T on another
//!   ring *before* the `Acquire`. T then finds `owner == T` and the state
//!   `Migrating`, and records the wake-up in `resched`; `Acquire` enqueues
//!   instead of blocking. T may touch the state: it read `owner == T` with
//!   acquire, which pairs with O's release store, after O's last access.
//!
//! ## Semantics chosen
//!
//! `give_to` is synchronous: `Ok` means the uthread belongs to the target
//! now (it may of course move again). A uthread that is running (the caller
//! itself, or one running on its worker right now), not yet started on its
//! worker, or in flight between workers is refused with
//! [`Error::NotDescheduled`]: those states are transient, retrying later is
//! the caller's choice. A uthread stays where its timers are armed: a timer
//! entry on the old worker still wakes it on the new one.

use crate::error::Error;
use crate::kernel::{Msg, Reply};
use crate::uthread::join::Oneshot;
use crate::uthread::Uthread;
use crate::worker::ipi::send;
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::Acquire;

/// The owner's answer to a give-away. Dropped unanswered (the message was
/// refused at shutdown), it answers [`Error::Shutdown`], so the caller never
/// waits forever.
struct Answer(Option<Arc<Oneshot<Result<(), Error>>>>);

impl Reply for Answer {
    fn send(mut self: Box<Self>, r: Result<(), Error>) {
        if let Some(s) = self.0.take() {
            s.complete(r);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.complete(Err(Error::Shutdown));
        }
    }
}

impl Uthread {
    /// Give this uthread, while it is descheduled (blocked, or queued but not
    /// running), to worker `to` (`lwkt_giveaway` on its owner, then
    /// `lwkt_acquire` on `to`): from now on it runs there, and its next
    /// wake-up is handled there. Any thread may call it; the caller waits for
    /// the owner's answer (a uthread blocks, a foreign thread parks).
    ///
    /// Giving a uthread to the worker that already owns it does nothing.
    /// Its tokens were released when it blocked and are re-taken on `to`
    /// before it runs; `thread_local!` values are `to`'s afterwards. Its
    /// blocking call returns on `to`'s OS thread: see the crate docs
    /// ("Migration and `!Send` values") for what it may keep across it.
    ///
    /// # Errors
    ///
    /// * [`Error::NoSuchWorker`] for `to` out of range;
    /// * [`Error::NotDescheduled`] if it is running (to move the calling
    ///   uthread, use [`migrate`](crate::migrate)), not yet started on its
    ///   worker, in flight to another worker, or inside `migrate` and not
    ///   yet run on its target (so that `migrate` keeps its promise);
    /// * [`Error::Exited`] if it has returned;
    /// * [`Error::InCritical`] / [`Error::InSmrSection`] when the caller may
    ///   not block, [`Error::Shutdown`] when the runtime is shutting down.
    ///
    /// # Safety
    ///
    /// The uthread resumes on another OS thread at whatever blocking call it
    /// is parked in, and the compiler cannot see what its stack holds. The
    /// caller promises that the uthread keeps no `!Send` value across its
    /// blocking calls (no `Rc`, no `thread_local!` borrow, no guard of a
    /// thread-bound lock), as for [`migrate`](crate::migrate).
    ///
    /// ```
    /// use percore_lwkt::{Builder, Runtime};
    /// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let rt = Runtime::builder().workers(2).build().unwrap();
    /// let go = Arc::new(AtomicBool::new(false));
    /// let g = go.clone();
    /// let h = Builder::new().worker(0).spawn_on(rt.handle(), move || {
    ///     while !g.load(SeqCst) {
    ///         percore_lwkt::park().unwrap();
    ///     }
    ///     percore_lwkt::worker_index()
    /// }).unwrap();
    /// let u = h.uthread().clone();
    /// // Retry while it has not blocked yet.
    /// // SAFETY: the uthread above holds nothing `!Send` while it parks.
    /// while let Err(e) = unsafe { u.give_to(1) } {
    ///     assert!(matches!(e, percore_lwkt::Error::NotDescheduled), "{e}");
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(u.worker(), 1);
    /// go.store(true, SeqCst);
    /// u.unpark();
    /// assert_eq!(h.join().unwrap(), Some(1));
    /// // SAFETY: as above.
    /// assert!(matches!(unsafe { u.give_to(7) }, Err(percore_lwkt::Error::NoSuchWorker { worker: 7, .. })));
    /// ```
    ///
    /// Without `unsafe` it does not compile:
    ///
    /// ```compile_fail
    /// fn move_it(u: &percore_lwkt::Uthread) {
    ///     let _ = u.give_to(1);
    /// }
    /// ```
    pub unsafe fn give_to(&self, to: usize) -> Result<(), Error> {
        let shared = &self.0.shared;
        let n = shared.workers.len();
        if to >= n {
            return Err(Error::NoSuchWorker { worker: to, workers: n });
        }
        if shared.is_shutdown() {
            return Err(Error::Shutdown);
        }
        crate::uthread::block::check_may_block()?;
        let slot = Arc::new(Oneshot::new());
        let owner = self.0.owner.load(Acquire);
        send(shared, owner, Msg::GiveAway(self.0.clone(), to, Box::new(Answer(Some(slot.clone())))));
        slot.wait()?
    }
}

#[cfg(test)]
mod tests {
    use crate::{Builder, Error, Runtime};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;

    /// Spawn a uthread on worker 0 that parks until `go`, and wait until it
    /// has blocked (give_to succeeds only then).
    fn parked_on_0(rt: &Runtime, go: Arc<AtomicBool>) -> crate::JoinHandle<Option<usize>> {
        Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                while !go.load(SeqCst) {
                    crate::park().unwrap();
                }
                crate::worker_index()
            })
            .unwrap()
    }

    #[test]
    fn blocked_uthread_moves_and_wakes_on_the_target() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let h = parked_on_0(&rt, go.clone());
        let u = h.uthread().clone();
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        while unsafe { u.give_to(1) }.is_err() {
            std::thread::yield_now();
        }
        assert_eq!(u.worker(), 1);
        // Same worker again: nothing to do.
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        unsafe { u.give_to(1) }.unwrap();
        go.store(true, SeqCst);
        u.unpark();
        assert_eq!(h.join().unwrap(), Some(1));
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        assert!(matches!(unsafe { u.give_to(0) }, Err(Error::Exited)));
        let s = &rt.handle().shared.workers;
        assert_eq!(s[0].stats.given_away.get(), 1);
    }

    #[test]
    fn running_uthread_is_refused() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        let r = rt.block_on(|| unsafe { crate::current().unwrap().give_to(1) }).unwrap();
        assert!(matches!(r, Err(Error::NotDescheduled)), "{r:?}");
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        let r = rt.block_on(|| unsafe { crate::current().unwrap().give_to(9) }).unwrap();
        assert!(matches!(r, Err(Error::NoSuchWorker { worker: 9, workers: 2 })), "{r:?}");
        let r = rt
            .block_on(|| {
                let _c = crate::critical();
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                unsafe { crate::current().unwrap().give_to(0) }
            })
            .unwrap();
        assert!(matches!(r, Err(Error::InCritical)), "{r:?}");
    }

    #[test]
    fn queued_uthread_moves_runnable() {
        // One uthread on worker 0 keeps it busy in a critical section while
        // a second one is queued behind it; the queued one is given away and
        // runs on worker 1 although worker 0 never switches meanwhile.
        let rt = Runtime::builder().workers(2).build().unwrap();
        let hog = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                crate::crit_enter();
                let queued = crate::spawn(crate::worker_index).unwrap();
                let u = queued.uthread().clone();
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                let mover = std::thread::spawn(move || unsafe { u.give_to(1) });
                // The outermost `crit_exit` drains IPIs without switching:
                // spin on it until the mover has its answer.
                while !mover.is_finished() {
                    crate::crit_exit();
                    std::hint::spin_loop();
                    crate::crit_enter();
                }
                crate::crit_exit();
                (mover.join().unwrap(), queued.join().unwrap())
            })
            .unwrap();
        let (r, ran_on) = hog.join().unwrap();
        r.unwrap();
        assert_eq!(ran_on, Some(1));
    }

    /// Spawn a uthread on worker 0 that parks with `timeout` until `go`.
    fn timed_parker_on_0(
        rt: &Runtime,
        go: Arc<AtomicBool>,
        timeout: std::time::Duration,
    ) -> crate::JoinHandle<Option<usize>> {
        Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                while !go.load(SeqCst) {
                    crate::park_timeout(timeout).unwrap();
                }
                crate::worker_index()
            })
            .unwrap()
    }

    #[test]
    fn timer_armed_on_the_old_worker_wakes_it_on_the_new_one() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let go = Arc::new(AtomicBool::new(false));
        // Only timers wake it: nobody calls `unpark`.
        let h = timed_parker_on_0(&rt, go.clone(), std::time::Duration::from_millis(5));
        let u = h.uthread().clone();
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        while unsafe { u.give_to(1) }.is_err() {
            std::thread::yield_now();
        }
        go.store(true, SeqCst);
        assert_eq!(h.join().unwrap(), Some(1));
    }

    /// A uthread given away while its timer is armed on the old worker
    /// (an hour away) has that worker cancel the entry once it resumes
    /// elsewhere: the wheel does not keep its record alive for the hour.
    #[test]
    fn a_timer_left_on_the_old_worker_is_cancelled_there() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let h = timed_parker_on_0(&rt, go.clone(), std::time::Duration::from_secs(3600));
        let u = h.uthread().clone();
        // Wait until it has armed its timer on worker 0: the first arming
        // there (sequence 1 of a fresh worker's wheel). Then a successful
        // give-away moves it blocked, with the entry left on worker 0.
        let start = std::time::Instant::now();
        while !u.0.timer_armed(0, 1) {
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "the uthread never parked");
            std::thread::yield_now();
        }
        // SAFETY: the moved uthread keeps nothing `!Send` across the move.
        while unsafe { u.give_to(1) }.is_err() {
            std::thread::yield_now();
        }
        go.store(true, SeqCst);
        u.unpark();
        assert_eq!(h.join().unwrap(), Some(1));
        // Only our handle is left once worker 0 has handled the cancel (its
        // wheel entry held the other reference). Bounded: a lost cancel
        // fails here instead of waiting out the hour.
        let start = std::time::Instant::now();
        while Arc::strong_count(&u.0) > 1 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "the record is still referenced {} times",
                Arc::strong_count(&u.0)
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
