//! [`Handle`]: a cloneable reference to a runtime, usable from any thread.

use crate::error::Error;
use crate::kernel::{Msg, RuntimeState};
use crate::uthread::builder::Builder;
use crate::uthread::join::{JoinHandle, Oneshot};
use crate::worker;
use crate::worker::ipi::send;
use percore_cpu::loom::Ordering::{AcqRel, Relaxed};
use percore_cpu::loom::{Arc, AtomicBool, AtomicUsize};

/// A cloneable reference to a runtime, usable from any thread. It does not
/// keep the workers alive: once the [`Runtime`](crate::Runtime) is dropped, spawning through
/// a handle returns [`Error::Shutdown`].
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let h = rt.handle().clone();
/// let j = std::thread::spawn(move || h.spawn(|| 1).unwrap().join().unwrap());
/// assert_eq!(j.join().unwrap(), 1);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<RuntimeState>,
}

impl Handle {
    /// The handle of the runtime running the calling uthread.
    pub fn current() -> Option<Handle> {
        worker::current_worker().map(|w| Handle { shared: w.shared.clone() })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Whether the runtime has begun shutting down (its [`Runtime`](crate::Runtime) was
    /// dropped): no worker runs timers or uthreads any more, so a wait that
    /// depends on them must fail instead of blocking (percore-evq's waits
    /// return their `Shutdown` error).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let h = rt.handle().clone();
    /// assert!(!h.is_shutdown());
    /// drop(rt);
    /// assert!(h.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// Spawn a uthread with the defaults of [`Builder`]: on the calling
    /// worker when called from one of this runtime's uthreads, else on the
    /// next worker in rotation.
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Builder::new().spawn_on(self, f)
    }

    /// Run `f(worker_index)` on every worker and wait until all have
    /// (`lwkt_cpusync`). `f` runs as an IPI handler: in a critical section,
    /// so it must not block. From a uthread the caller blocks meanwhile;
    /// refused inside a critical or SMR section. If `f` panics on a worker,
    /// the panic is caught there and `cpusync` returns
    /// [`Error::IpiPanicked`] once every worker is done.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// let e = rt.handle().cpusync(|w| if w == 1 { panic!("no") }).unwrap_err();
    /// assert!(matches!(e, percore_lwkt::Error::IpiPanicked));
    /// ```
    pub fn cpusync<F: Fn(usize) + Send + Sync + 'static>(&self, f: F) -> Result<(), Error> {
        crate::uthread::block::check_may_block()?;
        if self.shared.is_shutdown() {
            return Err(Error::Shutdown);
        }
        struct Sync {
            left: AtomicUsize,
            failed: AtomicBool,
            done: Oneshot<()>,
        }
        struct Part(Option<Arc<Sync>>);
        impl Part {
            fn finish(&mut self, ok: bool) {
                if let Some(s) = self.0.take() {
                    if !ok {
                        // ORDERING: relaxed: published to the waiter by the AcqRel `left` decrement below.
                        s.failed.store(true, Relaxed);
                    }
                    // ORDERING: AcqRel: the last one sees every other's
                    // effects and publishes them to the waiter.
                    if s.left.fetch_sub(1, AcqRel) == 1 {
                        s.done.complete(());
                    }
                }
            }
        }
        impl Drop for Part {
            fn drop(&mut self) {
                self.finish(false); // dropped unrun (shutdown)
            }
        }
        let n = self.workers();
        let s = Arc::new(Sync { left: AtomicUsize::new(n), failed: AtomicBool::new(false), done: Oneshot::new() });
        let f = Arc::new(f);
        for i in 0..n {
            let mut part = Part(Some(s.clone()));
            let f = f.clone();
            send(
                &self.shared,
                i,
                Msg::Run(Box::new(move || {
                    f(i);
                    part.finish(true);
                })),
            );
        }
        s.done.wait()?;
        // ORDERING: relaxed: the oneshot's completion (acquire) ordered every part's store before this.
        if s.failed.load(Relaxed) {
            return Err(if self.shared.is_shutdown() { Error::Shutdown } else { Error::IpiPanicked });
        }
        Ok(())
    }

    /// Run `f` on worker `worker` as an IPI (in a critical section, at its
    /// next scheduling point) without waiting for it. Dropped unrun if the
    /// runtime shuts down first.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.handle().run_on(1, move || tx.send(percore_lwkt::worker_index()).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), Some(1));
    /// ```
    pub fn run_on(&self, worker: usize, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        let n = self.workers();
        if worker >= n {
            return Err(Error::NoSuchWorker { worker, workers: n });
        }
        if self.shared.is_shutdown() {
            return Err(Error::Shutdown);
        }
        send(&self.shared, worker, Msg::Run(Box::new(f)));
        Ok(())
    }

    /// Whether both handles name the same runtime.
    ///
    /// ```
    /// let a = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let b = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// assert!(a.handle().same(&a.handle().clone()));
    /// assert!(!a.handle().same(b.handle()));
    /// ```
    pub fn same(&self, other: &crate::Handle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The index of the worker running the caller if it is one of this
    /// runtime's workers (cheaper than comparing [`Handle::current`](crate::Handle::current)).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.handle().local_worker(), None); // a foreign thread
    /// let h = rt.handle().clone();
    /// assert_eq!(rt.block_on(move || h.local_worker()).unwrap(), Some(0));
    /// ```
    pub fn local_worker(&self) -> Option<usize> {
        let w = crate::worker::current_worker()?;
        Arc::ptr_eq(&w.shared, &self.shared).then_some(w.idx)
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("workers", &self.workers()).finish()
    }
}
