//! Installing a runtime's driver and registering descriptors on a worker's
//! epoll instance: the [`Handle`] methods of the driver interface.

use super::{Driver, Installed};
use crate::error::Error;
use crate::kernel::{Msg, Remote};
use crate::runtime::Handle;
use crate::worker::ipi::send;
use percore_cpu::loom::Arc;
use percore_cpu::loom::Ordering::Relaxed;
use std::io;
use std::os::fd::RawFd;

impl Handle {
    /// The runtime's driver of type `D`, installing `init()` if it has none
    /// yet. Fails with [`Error::DriverMismatch`] if a driver of another type
    /// is installed.
    ///
    /// ```
    /// use percore_lwkt::{Driver, Error, IoEvent, Runtime};
    /// use std::time::Instant;
    /// struct A;
    /// struct B;
    /// impl Driver for A { fn poll(&self, _: usize) -> Option<Instant> { None } fn ready(&self, _: usize, _: &[IoEvent]) {} }
    /// impl Driver for B { fn poll(&self, _: usize) -> Option<Instant> { None } fn ready(&self, _: usize, _: &[IoEvent]) {} }
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// let a1 = rt.handle().driver(|| A).unwrap();
    /// let a2 = rt.handle().driver(|| A).unwrap();
    /// assert!(std::sync::Arc::ptr_eq(&a1, &a2));
    /// assert!(matches!(rt.handle().driver(|| B), Err(Error::DriverMismatch)));
    /// ```
    pub fn driver<D: Driver>(&self, init: impl FnOnce() -> D) -> Result<Arc<D>, Error> {
        self.try_driver(|| Ok::<D, Error>(init()))
    }

    /// [`Handle::driver`](crate::Handle::driver) with a fallible `init`: its error is returned and
    /// nothing is installed (a later call tries again).
    ///
    /// ```
    /// use percore_lwkt::{Driver, Error, IoEvent, Runtime};
    /// use std::time::Instant;
    /// struct A;
    /// impl Driver for A { fn poll(&self, _: usize) -> Option<Instant> { None } fn ready(&self, _: usize, _: &[IoEvent]) {} }
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// assert!(rt.handle().try_driver(|| Err::<A, _>(Error::NoWorkers)).is_err());
    /// assert!(rt.handle().try_driver(|| Ok::<_, Error>(A)).is_ok());
    /// ```
    pub fn try_driver<D: Driver, E: From<Error>>(&self, init: impl FnOnce() -> Result<D, E>) -> Result<Arc<D>, E> {
        if let Some(i) = self.shared.driver.get() {
            return Ok(i.downcast::<D>()?);
        }
        let d = init()?;
        let mut fresh = false;
        // NOTE: if another thread installed one meanwhile, `d` is dropped
        // unused and theirs is returned (or a type mismatch reported).
        let installed = self.shared.driver.get_or_init(|| {
            fresh = true;
            Installed::new(d)
        });
        let d = installed.downcast::<D>()?;
        if fresh {
            // NOTE: workers asleep on their futex must move to epoll_wait
            // now that there is a driver; an empty IPI makes them pass
            // their loop.
            for i in 0..self.workers() {
                send(&self.shared, i, Msg::Run(Box::new(|| {})));
            }
        }
        Ok(d)
    }

    /// Register `fd` on worker `worker`'s epoll instance with the `EPOLL*`
    /// bits `events` and `token` (any value but `u64::MAX`); its readiness
    /// then reaches the driver's [`Driver::ready`] on that worker. The
    /// caller keeps `fd` open until it calls [`Handle::io_deregister`](crate::Handle::io_deregister).
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// rt.handle().io_register(0, a.as_raw_fd(), libc::EPOLLIN as u32, 7).unwrap();
    /// assert!(rt.handle().io_register(1, a.as_raw_fd(), 0, 7).is_err()); // no worker 1
    /// rt.handle().io_deregister(0, a.as_raw_fd()).unwrap();
    /// ```
    pub fn io_register(&self, worker: usize, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let ws = self.io_worker(worker, token)?;
        // ORDERING: relaxed: a hint for the worker's periodic poll; the kernel orders the registration itself, and a worker that reads it late only polls later.
        ws.has_io.store(true, Relaxed);
        ws.poller.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Change the interest bits or token of a registered `fd`.
    pub fn io_modify(&self, worker: usize, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.io_worker(worker, token)?.poller.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Remove `fd` from worker `worker`'s epoll instance. An event already
    /// taken out of the kernel may still reach the driver afterwards, until
    /// that worker's current pass ends: drivers free what a token names only
    /// after a grace period (percore-evq uses SMR for it).
    pub fn io_deregister(&self, worker: usize, fd: RawFd) -> io::Result<()> {
        self.io_worker(worker, 0)?.poller.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn io_worker(&self, worker: usize, token: u64) -> io::Result<&Remote> {
        if token == crate::sys::KICK_TOKEN {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "epoll token u64::MAX is reserved"));
        }
        self.shared.workers.get(worker).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("worker {worker} does not exist ({})", self.workers()))
        })
    }
}
