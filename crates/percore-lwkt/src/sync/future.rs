//! Async interop: a uthread (or any thread) waiting on a `Future`.
//!
//! [`block_on_future`] polls the future with a [`Waker`] that is the
//! caller's [`Waiter`](crate::uthread::waiter::Waiter): on a uthread, waking it
//! unparks the uthread (the park word's `NOTIFIED`, then a schedule IPI to
//! its owner, from any thread); on a foreign OS thread, it unparks that
//! thread. Between polls the caller parks, so a uthread's worker runs its
//! other uthreads meanwhile. A wake-up that lands between a `Pending` poll
//! and the park leaves `NOTIFIED` behind and the park returns at once: none
//! is lost. The other direction, a [`JoinHandle`](crate::JoinHandle) as a
//! `Future`, is in `uthread/join.rs`.

use crate::error::Error;
use crate::uthread::block::wait_once;
use crate::uthread::waiter::Waiter;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Run `fut` to completion on the calling uthread without blocking its
/// worker: the uthread parks while the future is pending and its waker
/// unparks it (from any thread: a tokio worker, a pool thread, a signal).
/// On a foreign OS thread it parks that thread instead, so it is also a
/// minimal executor for tests.
///
/// The future is polled on the caller's stack and thread; it needs no
/// `Send`. It must not itself block the OS thread (see the crate docs,
/// "Never block the worker"): a future that needs a particular executor's
/// reactor (tokio's timers, sockets) must run there, spawned onto that
/// runtime, and the uthread awaits its `JoinHandle` with this function.
///
/// Named `block_on_future`, not `block_on`, because
/// [`Runtime::block_on`](crate::Runtime::block_on) takes a closure.
///
/// # Errors
///
/// Refused inside a critical or SMR section ([`Error::InCritical`],
/// [`Error::InSmrSection`]); [`Error::Shutdown`] if the runtime shuts down
/// while the uthread waits (the future is dropped unfinished).
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// // A future that is pending once and wakes itself.
/// struct YieldOnce(bool);
/// impl Future for YieldOnce {
///     type Output = &'static str;
///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
///         if self.0 { return Poll::Ready("done") }
///         self.0 = true;
///         cx.waker().wake_by_ref();
///         Poll::Pending
///     }
/// }
///
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let v = rt.block_on(|| percore_lwkt::block_on_future(YieldOnce(false))).unwrap();
/// assert_eq!(v.unwrap(), "done");
/// ```
pub fn block_on_future<F: Future>(fut: F) -> Result<F::Output, Error> {
    crate::uthread::block::check_may_block()?;
    let waker = Waker::from(Arc::new(Waiter::current()));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        // NOTE: spurious returns are fine: the future is polled again.
        wait_once(None);
    }
}
