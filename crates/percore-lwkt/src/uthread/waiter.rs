//! [`Waiter`]: something that blocks and is woken.

use crate::uthread::record::Thread;
use percore_cpu::loom::Arc;

/// Something that blocks and is woken: a uthread, a foreign OS thread, or an
/// async task. What every percore wait queue stores for each of its waiters
/// (tsleep channels, port senders, join slots; percore-evq's queues and
/// alarms are built on the same idea).
///
/// [`Waiter::current`] is the caller; [`Waiter::wake`] wakes it from any
/// thread: a uthread through its park word (its `park` or blocking call
/// returns; a wake-up that comes before it parks is kept, so none is lost),
/// an OS thread through [`std::thread::Thread::unpark`], a task through its
/// [`Waker`](std::task::Waker). Wake-ups may be spurious: the woken party
/// re-checks its condition, as for [`park`](crate::park).
///
/// ```
/// use percore_lwkt::{Runtime, Waiter};
/// use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
/// use std::sync::{mpsc, Arc};
///
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let (tx, rx) = mpsc::channel();
/// let done = Arc::new(AtomicBool::new(false));
/// let d = done.clone();
/// let h = rt.spawn(move || {
///     tx.send(Waiter::current()).unwrap(); // a uthread's waiter
///     while !d.load(SeqCst) {
///         percore_lwkt::park().unwrap();
///     }
/// }).unwrap();
/// let w = rx.recv().unwrap();
/// assert!(w.is_uthread());
/// done.store(true, SeqCst);
/// w.wake();
/// h.join().unwrap();
/// assert!(!Waiter::current().is_uthread()); // the test's own thread
/// ```
#[derive(Clone)]
pub struct Waiter(Kind);

#[derive(Clone)]
enum Kind {
    U(Arc<Thread>),
    Os(std::thread::Thread),
    Task(std::task::Waker),
}

impl Waiter {
    /// The caller, as a waiter: its uthread on a worker, else its OS thread.
    pub fn current() -> Waiter {
        match crate::worker::current_thread() {
            Some(t) => Waiter(Kind::U(t)),
            None => Waiter(Kind::Os(std::thread::current())),
        }
    }

    /// An async task, woken through `waker`.
    pub fn from_waker(waker: std::task::Waker) -> Waiter {
        Waiter(Kind::Task(waker))
    }

    /// Whether it is a uthread (and so blocks without blocking its worker).
    pub fn is_uthread(&self) -> bool {
        matches!(self.0, Kind::U(_))
    }

    /// Whether both name the same uthread, OS thread or task.
    pub fn same(&self, other: &Waiter) -> bool {
        match (&self.0, &other.0) {
            (Kind::U(a), Kind::U(b)) => Arc::ptr_eq(a, b),
            (Kind::Os(a), Kind::Os(b)) => a.id() == b.id(),
            (Kind::Task(a), Kind::Task(b)) => a.will_wake(b),
            _ => false,
        }
    }

    /// Wake it, consuming this reference (no extra reference-count traffic
    /// on the hand-off path).
    #[inline]
    pub fn wake(self) {
        match self.0 {
            Kind::U(t) => crate::worker::ipi::unpark_owned(t),
            Kind::Os(t) => t.unpark(),
            Kind::Task(w) => w.wake(),
        }
    }

    /// Wake it, keeping this reference.
    #[inline]
    pub fn wake_by_ref(&self) {
        match &self.0 {
            Kind::U(t) => crate::worker::ipi::unpark(t),
            Kind::Os(t) => t.unpark(),
            Kind::Task(w) => w.wake_by_ref(),
        }
    }
}

impl std::task::Wake for Waiter {
    fn wake(self: std::sync::Arc<Self>) {
        Waiter::wake(std::sync::Arc::unwrap_or_clone(self));
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        Waiter::wake_by_ref(self);
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::U(t) => f.debug_tuple("Waiter::Uthread").field(&t.id).finish(),
            Kind::Os(t) => f.debug_tuple("Waiter::Thread").field(&t.id()).finish(),
            Kind::Task(_) => f.write_str("Waiter::Task"),
        }
    }
}
