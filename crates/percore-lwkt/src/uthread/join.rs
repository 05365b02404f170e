//! Joining: [`JoinHandle`], which takes a uthread's result from the join
//! slot in its record (`joinslot.rs`), and the `Completer` that fills a
//! pool job's `Oneshot` (`sync/blocking.rs`) when it ends or is dropped.

use crate::error::{Error, JoinError};
use crate::uthread::joinslot::{JoinSlot, Taken};
pub(crate) use crate::uthread::oneshot::Oneshot;
use crate::uthread::Uthread;
use percore_cpu::loom::Arc;

/// The handle's result from a done slot: the value, `Cancelled`, or (a
/// future polled again after it was ready) `Wait(Shutdown)`, as the slot's
/// `Oneshot` gave before.
///
/// # Safety
///
/// As [`JoinSlot::take`]: the caller is the one handle, saw the slot done,
/// and `T` is its spawn's.
#[inline]
unsafe fn take<T>(slot: &JoinSlot) -> Result<T, JoinError> {
    // SAFETY: the caller's promise.
    match unsafe { slot.take::<Result<T, JoinError>>() } {
        Taken::Value(r) => r,
        Taken::Cancelled => Err(JoinError::Cancelled),
        Taken::Gone => Err(JoinError::Wait(Error::Shutdown)),
    }
}

/// Marks a [`Oneshot`] as cancelled if it is dropped before completing (a
/// pool job dropped unrun, `sync/blocking.rs`).
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
    /// The uthread; its record holds the join slot.
    pub(crate) thread: Uthread,
    /// The value type the slot holds for this handle. NOTE: as an `Arc` of
    /// a `Mutex` the handle is `Send` and `Sync` exactly when `T: Send`,
    /// and `Unpin`, as it was when it held the slot's `Arc` (issue 15).
    pub(crate) _value: std::marker::PhantomData<std::sync::Arc<std::sync::Mutex<T>>>,
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
        let slot = &self.thread.0.join;
        if !slot.is_done() {
            // NOTE: one look-up of the worker for both checks (a foreign
            // thread may always block, `check_may_block`).
            if let Some(w) = crate::worker::current_worker() {
                // NOTE: compared by address: `current()` would take (and
                // drop) a reference.
                if w.current_ptr().is_some_and(|me| std::ptr::eq(me, &*self.thread.0)) {
                    return Err(JoinError::Wait(Error::SelfJoin));
                }
                w.check_block().map_err(JoinError::Wait)?;
            }
            slot.wait_done(
                || crate::uthread::waiter::Waiter::current().into_waker(),
                || crate::uthread::block::wait_once(None),
            );
        }
        // SAFETY: this is the uthread's one handle, it saw the slot done
        // (`is_done` or `wait_done`), and the slot holds what the spawn
        // that made this handle stores: a `Result<T, JoinError>`.
        let r = unsafe { take(slot) };
        // NOTE: the handle's reference is often the record's last (the
        // uthread has exited): recycled on the joiner's worker, if any.
        let JoinHandle { thread, .. } = self;
        if let Some(w) = crate::worker::current_worker() {
            w.recycle(thread.0);
        }
        r
    }

    /// Whether the uthread has finished (its value is ready).
    pub fn is_finished(&self) -> bool {
        self.thread.0.join.is_done()
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
        self.thread.0.join.poll_done(cx)
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
        let slot = &self.thread.0.join;
        std::task::ready!(slot.poll_done(cx));
        // SAFETY: as in `join`: the one handle (borrowed mutably), the slot
        // seen done by `poll_done`, its value type.
        std::task::Poll::Ready(unsafe { take(slot) })
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("uthread", &self.thread).field("finished", &self.is_finished()).finish()
    }
}
