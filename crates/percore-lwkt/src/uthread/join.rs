//! Joining: the single-value slot (`Oneshot`) that carries a uthread's
//! result (and a message's reply, a give-away's answer) to one waiter, and
//! [`JoinHandle`].

use crate::error::{Error, JoinError};
use crate::uthread::block::wait_once;
use crate::uthread::waiter::Waiter;
use crate::uthread::Uthread;
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Release};
use percore_cpu::loom::{Arc, AtomicU32, UnsafeCell};

const OPEN: u32 = 0;
const WAITING: u32 = 1;
const DONE: u32 = 2;

/// A single-value slot with one waiter: join results and message replies.
pub(crate) struct Oneshot<T> {
    state: AtomicU32,
    waiter: UnsafeCell<Option<Waiter>>,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: `value` is written once before `DONE` is published and read after
// it is observed; `waiter` is written before `WAITING` is published and read
// after it is observed (module protocol below).
unsafe impl<T: Send> Send for Oneshot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Oneshot<T> {}

impl<T> Oneshot<T> {
    pub(crate) fn new() -> Self {
        Oneshot { state: AtomicU32::new(OPEN), waiter: UnsafeCell::new(None), value: UnsafeCell::new(None) }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Acquire) == DONE
    }

    /// Store the value and wake the waiter. Called at most once.
    pub(crate) fn complete(&self, v: T) {
        // SAFETY: only the single completer writes `value`, before `DONE`.
        self.value.with_mut(|p| unsafe { *p = Some(v) });
        // ORDERING: release publishes `value`; acquire pairs with the release
        // CAS to `WAITING` in `wait`, making `waiter` readable.
        if self.state.swap(DONE, AcqRel) == WAITING {
            // SAFETY: the waiter wrote it before publishing `WAITING` and
            // no longer touches it.
            if let Some(w) = self.waiter.with_mut(|p| unsafe { (*p).take() }) {
                w.wake();
            }
        }
    }

    /// Wait for the value (once per slot). The caller checked that it may
    /// block.
    pub(crate) fn wait(&self) -> Result<T, Error> {
        // Whether `waiter` is ours (this call's), not a waker left by an
        // earlier `poll`.
        let mut registered = false;
        loop {
            match self.state.load(Acquire) {
                DONE => {
                    // SAFETY: `DONE` was observed with acquire: `value` is
                    // written and nobody else reads it.
                    return self.value.with_mut(|p| unsafe { (*p).take() }).ok_or(Error::Shutdown);
                }
                OPEN => {
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(Waiter::current()) });
                    // ORDERING: release publishes `waiter` to `complete`.
                    registered = self.state.compare_exchange(OPEN, WAITING, Release, Acquire).is_ok();
                    continue;
                }
                _ if registered => wait_once(None),
                _ => {
                    // A stale registration from `poll`: take the slot back
                    // (fails only if `complete` won, then `DONE` is seen).
                    // ORDERING: acquire, as for the `DONE` load above.
                    let _ = self.state.compare_exchange(WAITING, OPEN, Acquire, Acquire);
                }
            }
        }
    }

    /// The `Future` side of [`Oneshot::wait`]: the value if it is there,
    /// otherwise register `cx`'s waker (replacing an earlier one) and
    /// return `Pending`. Never blocks.
    pub(crate) fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<T, Error>> {
        std::task::ready!(self.poll_done(cx));
        // SAFETY: `poll_done` saw `DONE` with acquire: `value` is written and
        // nobody else reads it (as in `wait`).
        std::task::Poll::Ready(self.value.with_mut(|p| unsafe { (*p).take() }).ok_or(Error::Shutdown))
    }

    /// `Ready` once the value is there (without taking it), otherwise
    /// register `cx`'s waker (replacing an earlier one) and return
    /// `Pending`. Never blocks.
    pub(crate) fn poll_done(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use std::task::Poll;
        loop {
            match self.state.load(Acquire) {
                DONE => return Poll::Ready(()),
                OPEN => {
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(Waiter::from_waker(cx.waker().clone())) });
                    // ORDERING: release publishes `waiter` to `complete`;
                    // on failure `complete` won and the loop sees `DONE`.
                    if self.state.compare_exchange(OPEN, WAITING, Release, Acquire).is_ok() {
                        return Poll::Pending;
                    }
                }
                _ => {
                    // Registered before, maybe with another waker: take the
                    // slot back and register again. `complete` reads
                    // `waiter` only if it swaps `WAITING` away, so once this
                    // CAS succeeds the slot is ours.
                    // ORDERING: acquire, as for the `DONE` load above.
                    let _ = self.state.compare_exchange(WAITING, OPEN, Acquire, Acquire);
                }
            }
        }
    }
}

/// Marks a [`Oneshot`] as cancelled if it is dropped before completing (an
/// unstarted uthread dropped, or one unwound at shutdown).
pub(crate) struct Completer<T>(pub(crate) Option<Arc<Oneshot<Result<T, JoinError>>>>);

impl<T> Completer<T> {
    pub(crate) fn complete(mut self, v: Result<T, JoinError>) {
        if let Some(s) = self.0.take() {
            s.complete(v);
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.complete(Err(JoinError::Cancelled));
        }
    }
}

/// An owned permission to join a uthread: wait for it and take its result.
///
/// Dropping the handle detaches the uthread.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let h = rt.spawn(|| 6 * 7).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    pub(crate) packet: Arc<Oneshot<Result<T, JoinError>>>,
    pub(crate) thread: Uthread,
}

impl<T> JoinHandle<T> {
    /// Wait for the uthread to finish and return its value, or
    /// [`JoinError::Panicked`] with the panic payload. Works from a uthread
    /// (which blocks, letting its worker run others) and from a foreign
    /// thread (which parks). Refused with [`JoinError::Wait`] inside a
    /// critical or SMR section, unless the uthread already finished, and
    /// with `JoinError::Wait(Error::SelfJoin)` when the uthread joins its
    /// own handle (it would wait for itself for ever).
    ///
    /// ```
    /// use percore_lwkt::{Error, JoinError, JoinHandle, Runtime};
    /// use std::sync::{mpsc, Arc, Mutex};
    ///
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// let slot: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
    /// let (s, (tx, rx)) = (slot.clone(), mpsc::channel());
    /// let h = rt.spawn(move || {
    ///     let me = loop {
    ///         if let Some(h) = s.lock().unwrap().take() { break h; }
    ///         percore_lwkt::yield_now();
    ///     };
    ///     tx.send(matches!(me.join(), Err(JoinError::Wait(Error::SelfJoin)))).unwrap();
    /// }).unwrap();
    /// *slot.lock().unwrap() = Some(h); // hand the uthread its own handle
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        if !self.packet.is_done() {
            if crate::current().is_some_and(|me| me == self.thread) {
                return Err(JoinError::Wait(Error::SelfJoin));
            }
            crate::uthread::block::check_may_block().map_err(JoinError::Wait)?;
        }
        match self.packet.wait() {
            Ok(r) => r,
            Err(e) => Err(JoinError::Wait(e)),
        }
    }

    /// Whether the uthread has finished (its value is ready).
    pub fn is_finished(&self) -> bool {
        self.packet.is_done()
    }

    /// `Ready` once the uthread has finished, without taking its value
    /// ([`join`](JoinHandle::join) then returns at once); otherwise `cx`'s
    /// waker is registered in the join slot (replacing the one an earlier
    /// poll left) and woken when the uthread ends. This is how a wait over
    /// several sources (`percore_evq::Select`) watches a join without
    /// consuming it.
    ///
    /// ```
    /// use std::task::{Context, Waker};
    ///
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let h = rt.spawn(|| 7).unwrap();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// while h.poll_finished(&mut cx).is_pending() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(h.join().unwrap(), 7); // the value is still there
    /// ```
    pub fn poll_finished(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.packet.poll_done(cx)
    }

    /// The uthread.
    pub fn uthread(&self) -> &Uthread {
        &self.thread
    }
}

/// Await a uthread from async code: `handle.await` gives what
/// [`JoinHandle::join`] would, without blocking the executor's thread (the
/// waker is registered in the join slot and woken when the uthread ends; no
/// polling loop). Polling again replaces the waker; a handle polled and then
/// [`join`](JoinHandle::join)ed still joins.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let h = rt.spawn(|| 6 * 7).unwrap();
/// // Any executor will do; this one parks the calling thread.
/// assert_eq!(percore_lwkt::block_on_future(h).unwrap().unwrap(), 42);
/// ```
impl<T> std::future::Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        self.packet.poll(cx).map(|r| r.unwrap_or_else(|e| Err(JoinError::Wait(e))))
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("uthread", &self.thread).field("finished", &self.is_finished()).finish()
    }
}
