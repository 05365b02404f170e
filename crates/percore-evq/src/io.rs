//! # I/O sources: readiness from a worker's epoll instance to blocked uthreads
//!
//! Every descriptor a uthread does I/O on (a socket, an [`Epoll`]'s own
//! kernel epoll instance) is non-blocking and registered once, edge
//! triggered, on the epoll instance of the worker that created it, with the
//! address of its [`Source`] as the token. The worker hands readiness to
//! `Source::on_ready` (`driver.rs`), which records it and wakes the uthreads
//! waiting for that direction; they retry their system call.
//!
//! The readiness word, the waiters and how an operation waits without
//! losing an edge or a close are `io/source.rs`'s (with its loom model,
//! `tests/loom_io.rs`); this file registers descriptors, runs operations
//! to completion and frees sources.
//!
//! ## Freeing
//!
//! Dropping a [`Registration`] removes the descriptor from the epoll
//! instance, then retires the source through the driver's SMR domain: an
//! event the worker already took out of the kernel may still name it, and
//! the worker dispatches inside a read section.
//!
//! [`Epoll`]: crate::Epoll

use crate::driver::{self, EvqDriver};
use crate::error::Error;
use crate::queue::Ceq;
use crate::sys::epoll as sys;
use percore_cpu::loom::Arc;
use percore_lwkt::Handle;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Instant;

// NOTE: `pub` items inside are reached by the loom model only (`__loom`).
#[allow(unreachable_pub)]
pub(crate) mod source;

pub(crate) use source::{Dir, Source};

/// A descriptor registered on a worker's epoll instance (see the module
/// docs). Drop it *before* closing the descriptor.
pub(crate) struct Registration {
    /// The source, leaked in `new` and retired through `driver.smr` in
    /// `drop`; its address is the epoll token, so the worker reaches it too
    /// (read sections only). Used through `&Source` by every holder.
    src: NonNull<Source>,
    /// The registered descriptor; owned by the caller, who closes it only
    /// after dropping this (deregistration needs it open). Fixed.
    fd: RawFd,
    /// Whose epoll instance it is on: the creating uthread's worker
    /// (worker 0 from a foreign thread). Fixed.
    worker: usize,
    /// The runtime; fixed. Every operation checks `is_shutdown` on it.
    handle: Handle,
    /// The runtime's evq driver, kept for its SMR domain; fixed.
    driver: Arc<EvqDriver>,
}

// SAFETY: the source is only used through `&Source` (thread-safe fields).
unsafe impl Send for Registration {}
// SAFETY: as above.
unsafe impl Sync for Registration {}

impl Registration {
    /// Register `fd` (already non-blocking) edge triggered for `events` on
    /// the calling uthread's worker (worker 0 of `handle` from elsewhere).
    pub(crate) fn new(handle: &Handle, fd: RawFd, events: u32, notify: Option<(Ceq, u32)>) -> Result<Self, Error> {
        let driver = driver::get(handle)?;
        let worker = handle.local_worker().unwrap_or(0);
        let src = NonNull::from(Box::leak(Box::new(Source::new(notify))));
        let token = src.as_ptr() as usize as u64;
        if let Err(e) = handle.io_register(worker, fd, events | sys::ET, token) {
            // SAFETY: never published (registration failed).
            drop(unsafe { Box::from_raw(src.as_ptr()) });
            return Err(e.into());
        }
        Ok(Registration { src, fd, worker, handle: handle.clone(), driver })
    }

    /// The runtime it is registered with.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Close it to its users: every operation waiting now or started later
    /// fails with [`Error::Closed`] (see the module essay). The descriptor
    /// stays registered until drop. Idempotent.
    pub(crate) fn close(&self) {
        self.source().close();
    }

    pub(crate) fn source(&self) -> &Source {
        // SAFETY: owned until drop.
        unsafe { self.src.as_ref() }
    }

    /// Run the non-blocking `op` until it does not return `WouldBlock`,
    /// waiting for `dir` readiness in between; `TimedOut` after `deadline`.
    /// Once the runtime has shut down no worker reports readiness any more,
    /// so every call fails at once with an `io::Error` of kind `Other`
    /// wrapping [`Error::Shutdown`] (checked before each try, and a foreign
    /// waiter re-checks every `FOREIGN_SLICE`). After [`close`](Self::close)
    /// it fails with [`Error::Closed`], waiting or not.
    /// When `drained` says a result shows the socket drained (a partial
    /// read or write), the direction's readiness is cleared at once, so the
    /// next call waits for an edge instead of paying for an `EAGAIN`
    /// system call (tokio does the same).
    pub(crate) fn io<R>(
        &self,
        dir: Dir,
        deadline: Option<Instant>,
        drained: impl Fn(&R) -> bool,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        let src = self.source();
        let foreign = percore_lwkt::current().is_none();
        loop {
            // NOTE: a closed source says so (in `try_io`) even after the
            // runtime is gone.
            if !src.is_closed() && self.handle.is_shutdown() {
                return Err(Error::Shutdown.into());
            }
            if let Some(r) = src.try_io(dir, &drained, &mut op) {
                return r;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            }
            // NOTE: a uthread's wait ends with its runtime (it is cancelled);
            // a foreign thread's wakes in slices to see the shutdown.
            let until = match (foreign, deadline) {
                (false, d) => d,
                (true, d) => {
                    let slice = Instant::now() + crate::wait::FOREIGN_SLICE;
                    Some(d.map_or(slice, |d| d.min(slice)))
                }
            };
            src.wait(dir, until).map_err(io::Error::from)?;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = self.handle.io_deregister(self.worker, self.fd);
        // SAFETY: created by `Box::leak` in `new`; now unreachable for new
        // events (deregistered); in-flight dispatches are SMR readers, so
        // the pointer stays raw until their grace period ends.
        unsafe { self.driver.smr.retire(self.src.as_ptr()) };
    }
}
