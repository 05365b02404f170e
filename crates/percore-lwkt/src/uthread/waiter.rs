//! [`Waiter`]: something that blocks and is woken.
//!
//! Under `--cfg loom` (the loom models of this crate and of percore-evq)
//! a waiter is a loom thread or a task: [`Waiter::current`] is the calling
//! loom thread, woken with `loom::thread::Thread::unpark`, and
//! [`park_until`](crate::park_until) is `loom::thread::park` (loom reports a
//! waiter nobody wakes as a deadlock).

#[cfg(not(loom))]
use crate::uthread::record::Thread;
#[cfg(not(loom))]
use percore_cpu::loom::Arc;

/// Something that blocks and is woken: a uthread, a foreign OS thread, or an
/// async task. What every percore wait queue stores for each of its waiters
/// (tsleep channels, port senders, join slots, and percore-evq's queues,
/// sockets, alarms and selects), each blocking with
/// [`park_until`](crate::park_until).
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
    #[cfg(not(loom))]
    U(Arc<Thread>),
    #[cfg(not(loom))]
    Os(std::thread::Thread),
    #[cfg(loom)]
    Loom(loom::thread::Thread),
    Task(std::task::Waker),
}

impl Waiter {
    /// The caller, as a waiter: its uthread on a worker, else its OS thread.
    #[cfg(not(loom))]
    pub fn current() -> Waiter {
        match crate::worker::current_thread() {
            Some(t) => Waiter(Kind::U(t)),
            None => Waiter(Kind::Os(std::thread::current())),
        }
    }

    /// The caller, as a waiter: the calling loom thread.
    #[cfg(loom)]
    pub fn current() -> Waiter {
        Waiter(Kind::Loom(loom::thread::current()))
    }

    /// An async task, woken through `waker`.
    pub fn from_waker(waker: std::task::Waker) -> Waiter {
        Waiter(Kind::Task(waker))
    }

    /// Whether it is a uthread (and so blocks without blocking its worker).
    pub fn is_uthread(&self) -> bool {
        #[cfg(not(loom))]
        return matches!(self.0, Kind::U(_));
        #[cfg(loom)]
        false
    }

    /// Whether both name the same uthread, OS thread or task.
    pub fn same(&self, other: &Waiter) -> bool {
        match (&self.0, &other.0) {
            #[cfg(not(loom))]
            (Kind::U(a), Kind::U(b)) => Arc::ptr_eq(a, b),
            #[cfg(not(loom))]
            (Kind::Os(a), Kind::Os(b)) => a.id() == b.id(),
            #[cfg(loom)]
            (Kind::Loom(a), Kind::Loom(b)) => a.id() == b.id(),
            (Kind::Task(a), Kind::Task(b)) => a.will_wake(b),
            _ => false,
        }
    }

    /// Wake it, consuming this reference (no extra reference-count traffic
    /// on the hand-off path).
    #[inline]
    pub fn wake(self) {
        match self.0 {
            #[cfg(not(loom))]
            Kind::U(t) => crate::worker::ipi::unpark_owned(t),
            #[cfg(not(loom))]
            Kind::Os(t) => t.unpark(),
            #[cfg(loom)]
            Kind::Loom(t) => t.unpark(),
            Kind::Task(w) => w.wake(),
        }
    }

    /// Wake it, keeping this reference.
    #[inline]
    pub fn wake_by_ref(&self) {
        match &self.0 {
            #[cfg(not(loom))]
            Kind::U(t) => crate::worker::ipi::unpark(t),
            #[cfg(not(loom))]
            Kind::Os(t) => t.unpark(),
            #[cfg(loom)]
            Kind::Loom(t) => t.unpark(),
            Kind::Task(w) => w.wake_by_ref(),
        }
    }
}

impl Waiter {
    /// This waiter as a [`Waker`](std::task::Waker): a uthread's without an
    /// allocation (the waker holds the uthread's reference), a task's is its
    /// own, an OS (or loom) thread's behind an `Arc`.
    ///
    /// ```
    /// use percore_lwkt::{Runtime, Waiter};
    ///
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// let h = rt.spawn(|| {
    ///     let w = Waiter::current().into_waker();
    ///     w.wake_by_ref(); // kept: the park below returns at once
    ///     percore_lwkt::park().unwrap();
    /// }).unwrap();
    /// h.join().unwrap();
    /// ```
    pub fn into_waker(self) -> std::task::Waker {
        match self.0 {
            #[cfg(not(loom))]
            Kind::U(t) => uthread_waker::from_thread(t),
            Kind::Task(w) => w,
            #[allow(unreachable_patterns)]
            other => std::task::Waker::from(std::sync::Arc::new(Waiter(other))),
        }
    }
}

/// The [`Waker`](std::task::Waker) of a uthread: its data pointer is an
/// `Arc<Thread>` given up with `Arc::into_raw`.
#[cfg(not(loom))]
mod uthread_waker {
    use super::{Arc, Thread};
    use std::mem::ManuallyDrop;
    use std::task::{RawWaker, RawWakerVTable, Waker};

    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

    pub(super) fn from_thread(t: Arc<Thread>) -> Waker {
        // SAFETY: the vtable's functions treat the pointer as the
        // `Arc<Thread>` given up here, each reference counted once, and are
        // safe on any thread (a uthread is woken from anywhere, as by
        // `Waiter::wake`).
        unsafe { Waker::from_raw(RawWaker::new(Arc::into_raw(t).cast(), &VTABLE)) }
    }

    /// # Safety
    ///
    /// `p` came from `Arc::into_raw` of an `Arc<Thread>` still counted.
    unsafe fn clone(p: *const ()) -> RawWaker {
        // SAFETY: the caller's promise: the count is at least one.
        unsafe { Arc::increment_strong_count(p.cast::<Thread>()) };
        RawWaker::new(p, &VTABLE)
    }

    /// # Safety
    ///
    /// As `clone`; this reference is consumed.
    unsafe fn wake(p: *const ()) {
        // SAFETY: the caller's promise; the waker's reference moves here.
        crate::worker::ipi::unpark_owned(unsafe { Arc::from_raw(p.cast::<Thread>()) });
    }

    /// # Safety
    ///
    /// As `clone`; this reference is kept.
    unsafe fn wake_by_ref(p: *const ()) {
        // SAFETY: the caller's promise; `ManuallyDrop` keeps the count.
        let t = ManuallyDrop::new(unsafe { Arc::from_raw(p.cast::<Thread>()) });
        crate::worker::ipi::unpark(&t);
    }

    /// # Safety
    ///
    /// As `clone`; this reference is released.
    unsafe fn drop(p: *const ()) {
        // SAFETY: the caller's promise.
        std::mem::drop(unsafe { Arc::from_raw(p.cast::<Thread>()) });
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
            #[cfg(not(loom))]
            Kind::U(t) => f.debug_tuple("Waiter::Uthread").field(&t.id).finish(),
            #[cfg(not(loom))]
            Kind::Os(t) => f.debug_tuple("Waiter::Thread").field(&t.id()).finish(),
            #[cfg(loom)]
            Kind::Loom(t) => f.debug_tuple("Waiter::Loom").field(&t.id()).finish(),
            Kind::Task(_) => f.write_str("Waiter::Task"),
        }
    }
}

/// The loom form of [`park_until`](crate::park_until): park the calling
/// loom thread once (spurious returns allowed, as in production).
///
/// NOTE: deadlines are not modelled (real time would make executions
/// differ); a model's timed wait uses a zero timeout, which its caller
/// checks before it parks. This ignores the deadline.
#[cfg(loom)]
#[allow(clippy::unnecessary_wraps)]
pub fn park_until(deadline: Option<std::time::Instant>) -> Result<(), crate::error::Error> {
    wait_once(deadline);
    Ok(())
}

/// The loom form of `block.rs`'s `wait_once`: park the loom thread once.
#[cfg(loom)]
pub(crate) fn wait_once(_deadline: Option<std::time::Instant>) {
    loom::thread::park();
}
