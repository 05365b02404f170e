//! The worker's idle path and its driver calls: an adaptive spin, then a
//! sleep on the futex, or in `epoll_wait` once a driver is installed
//! (`driver/mod.rs` is the driver's side, `idle.rs` the word that says which
//! primitive a sender must wake, `README.md` the whole protocol).

use super::{Worker, REPLY_SPIN_MAX, REPLY_SPIN_MIN, SPIN_IO_EVERY, SPIN_MIN_ROUNDS, SPIN_PAUSES, SPIN_ROUNDS};
use crate::driver::{Driver, IoEvent, IO_POLL_EVERY};
use percore_cpu::loom::Ordering::Relaxed;
use std::time::{Duration, Instant};

impl Worker {
    /// Nothing to run: spin a little (adaptively), then sleep on the futex,
    /// or in `epoll_wait` once a driver is installed, until an IPI, a timer,
    /// the driver's deadline or I/O.
    pub(crate) fn idle(&self) {
        let ws = self.ws();
        // ORDERING: relaxed: pairs with the relaxed store in `io_register` (a hint).
        let io = self.shared.driver.get().map(|i| &*i.driver).filter(|_| ws.has_io.load(Relaxed));
        // NOTE: a worker that just woke a sleeping peer (`woke_peer`)
        // expects an answer after about one OS wake-up of that peer (tens of
        // microseconds on a VM, where a pinned worker's CPU must first leave
        // its idle state); sleeping through it would add a second wake-up to
        // the round trip. So it spins for the answer, up to `reply_window`,
        // instead of the ordinary spin. The window adapts: it doubles when
        // the next message came within `REPLY_SPIN_MAX` of the kick (spun
        // for or slept through), and halves otherwise, so one-way traffic
        // (nobody answers, or too late) soon stops paying for it.
        let kicked = self.woke_peer.take();
        let found = match kicked {
            Some(at) => self.spin_until(io, at + self.reply_window.get()),
            None => {
                // NOTE: the ordinary spin adapts like an adaptive mutex: a
                // spin that found work doubles the next one's budget, a
                // spin that ended in a sleep halves it. Ping-pong between
                // busy workers keeps spinning; work that arrives only after
                // network round trips (an echo server) soon stops paying
                // for spins that steal the CPU from everyone else.
                let budget = self.spin_budget.get();
                let found = self.spin_rounds(io, budget);
                self.spin_budget.set(if found {
                    (budget * 2).min(SPIN_ROUNDS)
                } else {
                    (budget / 2).max(SPIN_MIN_ROUNDS)
                });
                found
            }
        };
        if found {
            if kicked.is_some() {
                self.adapt_reply_window(true);
            }
            return;
        }
        self.sleep_idle();
        if let Some(at) = kicked {
            // Was the spin just too short? Only a message that woke us counts.
            self.adapt_reply_window(ws.idle.peek_pending() && at.elapsed() <= REPLY_SPIN_MAX);
        }
    }

    /// Spin up to `budget` rounds for an IPI, a shutdown or (with `io`) I/O;
    /// whether one came.
    fn spin_rounds(&self, io: Option<&dyn Driver>, budget: u32) -> bool {
        (0..budget).any(|round| self.spin_once(io, round))
    }

    /// Spin until `deadline` for the same; whether one came.
    fn spin_until(&self, io: Option<&dyn Driver>, deadline: Instant) -> bool {
        let mut round = 0;
        // NOTE: the clock is read once every 16 rounds (a round is a few
        // `spin_loop` hints, about 0.1 us).
        loop {
            if self.spin_once(io, round) {
                return true;
            }
            round += 1;
            if round % 16 == 0 && Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// One idle round: look for work, then pause. Whether work came.
    #[inline]
    fn spin_once(&self, io: Option<&dyn Driver>, round: u32) -> bool {
        let ws = self.ws();
        if ws.idle.peek_pending() || self.shared.is_shutdown() {
            return true;
        }
        // NOTE: I/O that arrives while we spin must not wait for the spin
        // to end: look a few times (a system call each).
        if let Some(d) = io.filter(|_| round % SPIN_IO_EVERY == SPIN_IO_EVERY - 1) {
            if self.poll_io(d, Some(Duration::ZERO)) > 0 {
                return true;
            }
        }
        for _ in 0..SPIN_PAUSES {
            std::hint::spin_loop();
        }
        false
    }

    fn adapt_reply_window(&self, worth_it: bool) {
        self.reply_window.set(next_reply_window(self.reply_window.get(), worth_it));
    }

    /// Sleep on the futex, or in `epoll_wait` once a driver is installed,
    /// until an IPI, a timer, the driver's deadline or I/O.
    fn sleep_idle(&self) {
        let ws = self.ws();
        let mut timeout = self.next_deadline();
        let driver = self.shared.driver.get().map(|i| &*i.driver);
        if let Some(at) = self.driver_at.get().filter(|_| driver.is_some()) {
            let d = at.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        if timeout == Some(Duration::ZERO) {
            return;
        }
        // NOTE: counted asleep from here to its end, so that the watchdog
        // can nap while every worker sleeps (`nap.rs`); the first worker to
        // wake ends the nap before it runs anything.
        self.shared.nap.sleep_begins();
        let Some(d) = driver else {
            let slept = ws.idle.sleep(timeout);
            self.end_sleep();
            if slept {
                ws.stats.idle_sleeps.bump();
            }
            return;
        };
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut n = 0;
        let slept = ws.idle.sleep_polling(|| n = ws.poller.wait(&mut buf, timeout));
        self.end_sleep();
        if slept {
            ws.stats.idle_sleeps.bump();
            self.crit.set(self.crit.get() + 1);
            self.dispatch_io(d, &buf[..n]);
            self.crit.set(self.crit.get() - 1);
        }
    }

    /// The other half of `sleep_begins`: wake the watchdog if it napped.
    #[inline]
    fn end_sleep(&self) {
        if self.shared.nap.sleep_ends() {
            if let Some(t) = self.shared.watchdog.get() {
                t.unpark();
            }
        }
    }

    /// The driver's part of a scheduling pass: its poll hook, and a
    /// non-blocking look at the epoll instance when the countdown runs out.
    ///
    /// NOTE: the gap between two looks adapts (`next_io_gap`, set by
    /// `dispatch_io` after every look, the idle path's included): one pass
    /// after a look that found readiness events, doubling up to
    /// `IO_POLL_EVERY` after each look that found none. While requests
    /// flow, readiness that arrives as the worker serves others reaches the
    /// run queue at the next pass instead of up to 61 passes later. With
    /// the fixed 61, at 50 connections on 2 CPUs (two workers, two loader
    /// threads), each worker served one loader thread's connections up to
    /// 17x as often as the other's, which set the p99. Why only a look at
    /// every pass evens them out (a gap of 2 does not, nor does a system
    /// call at every pass without the look) is not known: issue 11,
    /// `docs/BENCHMARKS.md`. The price is one `epoll_wait` a pass while
    /// events flow; uthreads that do no I/O still pay one every 61 passes.
    #[inline]
    pub(crate) fn driver_pass(&self, d: &dyn Driver) {
        self.crit.set(self.crit.get() + 1);
        self.driver_at.set(d.poll(self.idx));
        let c = self.io_countdown.get();
        if c > 1 {
            self.io_countdown.set(c - 1);
        } else if self.ws().has_io.load(Relaxed) {
            // ORDERING: relaxed: as above.
            self.poll_io(d, Some(Duration::ZERO));
        } else {
            self.io_countdown.set(IO_POLL_EVERY);
        }
        self.crit.set(self.crit.get() - 1);
    }

    /// Wait for I/O at most `timeout` and hand the events to the driver.
    /// Returns how many events (the kick included) the kernel reported.
    pub(crate) fn poll_io(&self, d: &dyn Driver, timeout: Option<Duration>) -> usize {
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let n = self.ws().poller.wait(&mut buf, timeout);
        self.crit.set(self.crit.get() + 1);
        self.dispatch_io(d, &buf[..n]);
        self.crit.set(self.crit.get() - 1);
        n
    }

    /// Hand a look's events to the driver, and start the countdown to the
    /// next busy look from the gap this look earns (`driver_pass`).
    pub(crate) fn dispatch_io(&self, d: &dyn Driver, evs: &[libc::epoll_event]) {
        let mut out = [IoEvent { token: 0, events: 0 }; 64];
        let mut k = 0;
        for e in evs {
            let (token, events) = (e.u64, e.events);
            if token != crate::sys::KICK_TOKEN {
                out[k] = IoEvent { token, events };
                k += 1;
            }
        }
        let gap = next_io_gap(self.io_gap.get(), k > 0);
        self.io_gap.set(gap);
        self.io_countdown.set(gap);
        if k > 0 {
            self.ws().stats.io_events.add(k as u64);
            d.ready(self.idx, &out[..k]);
        }
    }
}

/// The passes until the next busy epoll look, after a look that did or did
/// not find events (`driver_pass`): 1 after events, else `gap` doubled, at
/// most `IO_POLL_EVERY`.
fn next_io_gap(gap: u32, found: bool) -> u32 {
    if found {
        1
    } else {
        (gap * 2).clamp(1, IO_POLL_EVERY)
    }
}

/// The reply window after one more spin for an answer (`Worker::idle`):
/// doubled, from at least `REPLY_SPIN_MIN` and at most `REPLY_SPIN_MAX`,
/// when the answer came in time; halved (towards nothing) when not.
fn next_reply_window(w: Duration, worth_it: bool) -> Duration {
    if worth_it {
        (w * 2).clamp(REPLY_SPIN_MIN, REPLY_SPIN_MAX)
    } else {
        w / 2
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn io_gap_is_one_pass_while_events_flow_and_backs_off_to_the_cap() {
        assert_eq!(next_io_gap(IO_POLL_EVERY, true), 1, "events: look again at the next pass");
        let mut g = 1;
        let mut seen = vec![g];
        for _ in 0..10 {
            g = next_io_gap(g, false);
            seen.push(g);
        }
        assert_eq!(&seen[..7], &[1, 2, 4, 8, 16, 32, IO_POLL_EVERY]);
        assert!(seen[7..].iter().all(|&g| g == IO_POLL_EVERY), "never above the cap: {seen:?}");
        assert_eq!(next_io_gap(g, true), 1);
    }

    #[test]
    fn reply_window_adapts_both_ways_within_its_bounds() {
        let mut w = REPLY_SPIN_MAX;
        w = next_reply_window(w, true);
        assert_eq!(w, REPLY_SPIN_MAX, "never above the cap");
        for _ in 0..40 {
            w = next_reply_window(w, false);
        }
        assert!(w < Duration::from_nanos(1), "one-way traffic stops spinning: {w:?}");
        w = next_reply_window(w, true);
        assert_eq!(w, REPLY_SPIN_MIN, "a window halved to nothing restarts from the floor");
        w = next_reply_window(w, true);
        assert_eq!(w, REPLY_SPIN_MIN * 2);
        w = next_reply_window(w, false);
        assert_eq!(w, REPLY_SPIN_MIN);
    }
}
