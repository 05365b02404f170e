//! Something that blocks and is woken: a uthread or a foreign OS thread
//! (or, under `--cfg loom`, a loom thread: the `loom` module at the end).

#[cfg(not(loom))]
use crate::error::Error;
use std::time::Instant;

#[cfg(loom)]
pub(crate) use loom::{block, Waiter};

#[cfg(not(loom))]
use percore_lwkt::Uthread;

/// A blocked party: woken with [`Waiter::wake`], blocks with [`block`].
#[cfg(not(loom))]
#[derive(Clone, Debug)]
pub(crate) enum Waiter {
    U(Uthread),
    Os(std::thread::Thread),
}

#[cfg(not(loom))]
impl Waiter {
    /// The caller.
    pub(crate) fn current() -> Waiter {
        match percore_lwkt::current() {
            Some(u) => Waiter::U(u),
            None => Waiter::Os(std::thread::current()),
        }
    }

    /// Wake it (a wake-up that comes first makes its next block return).
    pub(crate) fn wake(&self) {
        match self {
            Waiter::U(u) => u.unpark(),
            Waiter::Os(t) => t.unpark(),
        }
    }

    /// Whether both name the same thread.
    pub(crate) fn same(&self, o: &Waiter) -> bool {
        match (self, o) {
            (Waiter::U(a), Waiter::U(b)) => a == b,
            (Waiter::Os(a), Waiter::Os(b)) => a.id() == b.id(),
            _ => false,
        }
    }
}

/// Block the caller once, until woken or `deadline`; spurious returns are
/// possible, callers loop on their condition. Refused (an error) inside a
/// critical or SMR section.
#[cfg(not(loom))]
pub(crate) fn block(deadline: Option<Instant>) -> Result<(), Error> {
    match deadline {
        None => percore_lwkt::park()?,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                percore_lwkt::park_timeout(left)?;
            }
        }
    }
    Ok(())
}

/// How long a foreign OS thread blocks at a time in a wait that a worker
/// would end (an alarm firing, a readiness dispatch): it then checks its own
/// deadline, the descriptors, and whether the runtime shut down. A uthread
/// needs no slice: the worker runs its timers, and shutdown unwinds it.
#[cfg(not(loom))]
pub(crate) const FOREIGN_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// The timeout of one blocking step of a wait that ends at `deadline`:
/// all of it on a uthread, at most [`FOREIGN_SLICE`] on a foreign thread.
#[cfg(not(loom))]
pub(crate) fn slice(deadline: Option<Instant>) -> Option<std::time::Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if percore_lwkt::current().is_some() {
        return left;
    }
    Some(left.map_or(FOREIGN_SLICE, |l| l.min(FOREIGN_SLICE)))
}

/// `now + timeout`, saturating far in the future instead of overflowing.
pub(crate) fn deadline(timeout: Option<std::time::Duration>) -> Option<Instant> {
    let d = timeout?;
    let now = Instant::now();
    Some(now.checked_add(d).unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 86_400)))
}

#[cfg(not(loom))]
impl crate::alarm::state::Park for Waiter {
    fn current() -> Self {
        Waiter::current()
    }

    fn park() {
        // NOTE: a canceller inside a critical or SMR section may not block;
        // the firing it waits for is a few instructions on another worker,
        // so it spins (its caller loops) instead.
        if block(None).is_err() {
            std::hint::spin_loop();
        }
    }

    fn unpark(self) {
        self.wake();
    }
}

/// The waiter of the loom models (`tests/loom_queue.rs`): a loom thread,
/// woken with `Thread::unpark`, blocking with `loom::thread::park` (loom
/// reports a waiter nobody wakes as a deadlock).
///
/// NOTE: deadlines are not modelled (real time would make executions
/// differ); a model's timed wait uses a zero timeout, which takes the
/// give-up path of `wait_any` right after linking, the moment a timeout
/// can race a post. `block` itself ignores the deadline.
#[cfg(loom)]
mod loom {
    use crate::error::Error;
    use std::time::Instant;

    /// A blocked loom thread.
    #[derive(Clone, Debug)]
    pub(crate) struct Waiter(::loom::thread::Thread);

    impl Waiter {
        /// The caller.
        pub(crate) fn current() -> Waiter {
            Waiter(::loom::thread::current())
        }

        /// Wake it (a wake-up that comes first makes its next block return).
        pub(crate) fn wake(&self) {
            self.0.unpark();
        }
    }

    /// Park the caller once (spurious returns allowed, as in production).
    #[allow(clippy::unnecessary_wraps)]
    pub(crate) fn block(_deadline: Option<Instant>) -> Result<(), Error> {
        ::loom::thread::park();
        Ok(())
    }
}
