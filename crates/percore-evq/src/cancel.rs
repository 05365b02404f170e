//! # `CancellationToken`: one flag that many waits watch
//!
//! A token is a shared flag that goes from *live* to *cancelled* once and
//! never back. Whoever waits on it registers a [`Waker`]; [`cancel`] sets the
//! flag and wakes every registered waker. It is a source of a
//! [`Select`](crate::Select) (stop a loop that also waits on queues, sockets
//! and joins), a [`Future`] (`token.cancelled().await`), and a blocking wait
//! of its own ([`CancellationToken::wait`]).
//!
//! ## The protocol
//!
//! ```text
//!  register(w):  lock; if cancelled: unlock, Ready; else put w, unlock, Pending
//!  cancel():     swap(cancelled, true); lock; take every waker; unlock; wake them
//! ```
//!
//! Both read or change the waker list under the lock, and `register` reads
//! the flag under it: if `register` takes the lock first, `cancel`'s later
//! critical section finds its waker; if `cancel` takes it first, the flag was
//! set before, so `register` sees it. No wake-up is lost (`tests/loom_cancel.rs`
//! checks both orders and the interleavings between). The flag is also read
//! without the lock ([`is_cancelled`], the fast path of `register`), which can
//! only answer "cancelled" early, never miss it: the locked re-check decides.
//!
//! Registrations have keys, so a wait that ends for another reason takes its
//! waker out again ([`Select`](crate::Select) does on drop, the future on
//! drop): a long-lived token watched by many short waits does not grow.
//!
//! [`cancel`]: CancellationToken::cancel
//! [`is_cancelled`]: CancellationToken::is_cancelled

use percore_cpu::loom::{Arc, AtomicBool, Mutex, Ordering};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A cancellation flag shared by every clone: [`cancel`](Self::cancel) once,
/// and every wait on it (a [`Select`](crate::Select), the
/// [`cancelled`](Self::cancelled) future, [`wait`](Self::wait)) returns.
///
/// ```
/// use percore_evq::CancellationToken;
/// use std::time::Duration;
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let token = CancellationToken::new();
/// let t = token.clone();
/// let worker = rt.spawn(move || t.wait(Some(Duration::from_secs(30)))).unwrap();
/// assert!(token.cancel()); // the first cancel says so
/// assert!(!token.cancel()); // later ones change nothing
/// worker.join().unwrap().unwrap();
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct CancellationToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Set once by `cancel`, never cleared. Read by anyone.
    cancelled: AtomicBool,
    /// The registered wakers. Locked by `register`, `deregister` and
    /// `cancel`; nobody holds the lock while waking or running user code.
    wakers: Mutex<Wakers>,
}

#[derive(Default)]
struct Wakers {
    /// The key the next registration gets.
    next: u64,
    /// `(key, waker)` pairs, in registration order.
    list: Vec<(u64, Waker)>,
}

impl std::fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancellationToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

impl CancellationToken {
    /// A live (not cancelled) token.
    pub fn new() -> CancellationToken {
        CancellationToken::default()
    }

    /// Cancel: every current and future wait on this token (or a clone)
    /// returns. Returns whether this call was the one that cancelled it.
    pub fn cancel(&self) -> bool {
        // ORDERING: AcqRel: release publishes whatever the canceller wrote
        // before to waiters that see the flag (acquire in `is_cancelled`);
        // the waker hand-over itself is ordered by the lock.
        if self.inner.cancelled.swap(true, Ordering::AcqRel) {
            return false;
        }
        let wakers = std::mem::take(&mut self.inner.wakers.lock().list);
        for (_, w) in wakers {
            w.wake();
        }
        true
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        // ORDERING: acquire pairs with the swap in `cancel`.
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// `Ready` if cancelled; otherwise registers `waker` (replacing the
    /// registration `key` names, if any) and returns `Pending`.
    pub(crate) fn register(&self, key: &mut Option<u64>, waker: &Waker) -> Poll<()> {
        if self.is_cancelled() {
            return Poll::Ready(());
        }
        let mut w = self.inner.wakers.lock();
        // NOTE: the re-check under the lock is what makes the wake-up
        // certain (module docs): `cancel` sets the flag before it locks.
        // ORDERING: relaxed is enough here: the lock orders it after the
        // swap of a `cancel` whose critical section came first.
        if self.inner.cancelled.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        match key.and_then(|k| w.list.iter_mut().find(|(kk, _)| *kk == k)) {
            Some((_, old)) => {
                if !old.will_wake(waker) {
                    old.clone_from(waker);
                }
            }
            None => {
                let k = w.next;
                w.next += 1;
                w.list.push((k, waker.clone()));
                *key = Some(k);
            }
        }
        Poll::Pending
    }

    /// Take out the registration `key` names, if it is still there.
    pub(crate) fn deregister(&self, key: &mut Option<u64>) {
        if let Some(k) = key.take() {
            self.inner.wakers.lock().list.retain(|(kk, _)| *kk != k);
        }
    }

    /// `register`, for the loom model (`tests/loom_cancel.rs`) only.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn __register(&self, key: &mut Option<u64>, waker: &Waker) -> Poll<()> {
        self.register(key, waker)
    }

    /// `deregister`, for the loom model only.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn __deregister(&self, key: &mut Option<u64>) {
        self.deregister(key)
    }

    /// Registered wakers (for tests: a wait that ended must leave none).
    #[doc(hidden)]
    pub fn registered(&self) -> usize {
        self.inner.wakers.lock().list.len()
    }

    /// A future that completes once the token is cancelled (for async code:
    /// `token.cancelled().await`). Dropping it unregisters its waker.
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled { token: self, key: None }
    }

    /// Block until the token is cancelled, or [`Error::TimedOut`] after
    /// `timeout` (`None`: no limit). Parks the calling uthread only; works
    /// on foreign threads too (they block). Refused inside a critical or SMR
    /// section.
    ///
    /// [`Error::TimedOut`]: crate::Error::TimedOut
    #[cfg(not(loom))]
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> Result<(), crate::Error> {
        let mut s = crate::Select::new();
        s.cancelled(self);
        s.wait(timeout).map(drop)
    }
}

/// The future of [`CancellationToken::cancelled`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Cancelled<'a> {
    token: &'a CancellationToken,
    key: Option<u64>,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let r = this.token.register(&mut this.key, cx.waker());
        if r.is_ready() {
            this.key = None;
        }
        r
    }
}

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        self.token.deregister(&mut self.key);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn cancel_wakes_each_registration_once_and_later_registrations_see_it() {
        let t = CancellationToken::new();
        let c = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        let w = Waker::from(c.clone());
        let (mut k1, mut k2) = (None, None);
        assert!(t.register(&mut k1, &w).is_pending());
        assert!(t.register(&mut k1, &w).is_pending(), "re-registering replaces");
        assert!(t.register(&mut k2, &w).is_pending());
        assert_eq!(t.registered(), 2);
        assert!(t.clone().cancel());
        assert_eq!(c.0.load(Ordering::Relaxed), 2);
        assert_eq!(t.registered(), 0);
        let mut k3 = None;
        assert!(t.register(&mut k3, &w).is_ready());
        assert!(!t.cancel());
        assert_eq!(c.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_dropped_future_leaves_no_waker_behind() {
        let t = CancellationToken::new();
        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut f = std::pin::pin!(t.cancelled());
            assert!(f.as_mut().poll(&mut cx).is_pending());
            assert_eq!(t.registered(), 1);
        }
        assert_eq!(t.registered(), 0);
        t.cancel();
        let mut f = std::pin::pin!(t.cancelled());
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
}
