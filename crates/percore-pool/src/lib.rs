//! # percore-pool: NetBSD-style thread pools and jobs
//!
//! NetBSD's `threadpool(9)` (`kern_threadpool.c`, Taylor R. Campbell and
//! Jason R. Thorpe; the seed is rev 1.11) in userspace, plus what users of
//! Linux workqueues and FreeBSD taskqueues expect.
//!
//! * [`ThreadPool::get`]`(pri)` returns the pool shared by everybody at that
//!   priority; the last handle to go destroys it. [`PerCpuPool::get`] gives
//!   one pool per CPU with pinned threads. [`ThreadPool::builder`] makes
//!   private pools with their own settings (idle timeout, thread limit).
//! * Each pool has an **overseer** thread that creates workers on demand;
//!   idle workers exit after an idle timeout (30 s by default).
//! * A [`Job`] is named, has its own lock guarding its data, and is reusable.
//!   Scheduling a job that is scheduled or running does nothing;
//!   [`Job::cancel_async`] succeeds only if it has not started;
//!   [`Job::cancel`] waits for a running one. A run ends only when the job
//!   function says [`done`](RunLock::done) under the job's lock, and the
//!   types make forgetting that a compile error. While a job runs, its
//!   worker's OS thread name is the job's name.
//! * Beyond NetBSD: [`ThreadPool::spawn`] for one-shot closures with a
//!   [`JoinHandle`], [`ThreadPool::schedule_after`] for delayed jobs,
//!   [`ThreadPool::drain`], caught panics, and per-pool [`Stats`] in
//!   percore's stats tree (`pool.<name>.*`).
//! * Panics never cost a worker: a panic anywhere user code runs on a pool
//!   thread (a job function, a spawned closure, the destructor of a
//!   detached result, of a job's data or of a cancelled closure's captures)
//!   is caught and counted in [`Stats::panics`]. User values dropped on the
//!   caller's thread (an unjoined result dropped with its [`JoinHandle`],
//!   captures dropped by [`JoinHandle::cancel`]) raise their panic there,
//!   after the pool's own state is settled.
//!
//! ```
//! use percore_pool::{Job, ThreadPool, PRI_NONE};
//! use std::time::Duration;
//!
//! let pool = ThreadPool::get(PRI_NONE)?;
//!
//! // One-shot work.
//! assert_eq!(pool.spawn(|| 2 + 2).join()?, 4);
//!
//! // A reusable job; its function must finish with `done`.
//! let job = Job::new("tick", 0u64, |run| {
//!     let mut count = run.lock();
//!     *count += 1;
//!     count.done()
//! });
//! pool.schedule(&job);
//! pool.drain_timeout(Duration::from_secs(10))?;
//! assert_eq!(*job.lock(), 1);
//! # Ok::<(), percore_pool::Error>(())
//! ```
//!
//! # Shutdown semantics
//!
//! A pool is destroyed when its last handle is dropped. From then on it
//! accepts no new work: a job that re-arms itself is not rescheduled and a
//! closure spawned from inside the pool is cancelled (its handle says
//! [`JoinError::Cancelled`]). Everything already queued **runs**; delayed jobs
//! whose time has not come are **cancelled** and their owner is told
//! ([`JobStats::shutdown_cancelled`], [`Stats::shutdown_cancelled`]). The
//! drop waits until every pool thread has exited, unless it happens on one
//! of the pool's own threads (then they finish by themselves). No job is
//! silently dropped.
//!
//! # Races of the seed that cannot happen here
//!
//! Later NetBSD revisions fixed races in rev 1.11. Each is excluded here by
//! construction, not by care at a call site:
//!
//! 1. **Cancel against the overseer's hand-off.** In the seed, a job given
//!    to the overseer sits on `tp_jobs` with `job_thread = overseer`. The
//!    overseer dequeues it holding only `tp_lock`, drops that lock, and only
//!    then takes the job's lock. In that window `threadpool_cancel_job_async`
//!    (holding the job lock) still sees `job_thread == overseer`, and removes
//!    the job from `tp_jobs` *again*: a double `TAILQ_REMOVE` on a job that
//!    is no longer on the list. Here a queue entry is a *ticket*: the job's
//!    state, under its lock, names the live ticket. Cancel removes the entry
//!    by searching for it (finding nothing if a worker popped it) and kills
//!    the ticket; whoever popped the entry re-checks the ticket under the
//!    job lock and drops a dead one. No list is ever unlinked twice, and no
//!    code path holds the pool lock while taking a job lock.
//! 2. **Cancel through the wrong pool.** The seed's own `XXXJRT` note:
//!    `cancel_async(pool, job)` compares `job_thread` with *that pool's*
//!    overseer, so a job queued on CPU 0's pool and cancelled through CPU 1's
//!    looks running, and `cancel` waits for it to run. Here the job's state
//!    records the pool it is on; [`Job::cancel`] takes no pool argument.
//! 3. **The worker touching the job after `job_done`.** In the seed, once
//!    the job function calls `threadpool_job_done` and unlocks, its owner's
//!    `threadpool_cancel_job` returns and the owner may destroy the job, while
//!    the worker still has `curlwp->l_name` pointing at `job->job_name` and
//!    has yet to `threadpool_job_rele` it. Here [`RunLock::done`] releases
//!    the worker's reference *under the job lock*, the worker never touches
//!    the job's state after the function returns, the OS thread name is a
//!    copy made by the kernel, and the job's memory is an `Arc` in any case.
//!    Dropping a [`Job`] waits for `refs == 0`, so nothing runs after it.
//! 4. **Forgetting `job_done`**, or calling it twice, is a type error here:
//!    the function must return the [`Done`] that only `done`/`rearm` make,
//!    from a linear [`Run`] -> [`RunLock`] chain. A panic before `done` is
//!    caught and the worker says `done` for it.
//! 5. **Destroying a pool with jobs pending** trips a `KASSERT` in the seed's
//!    `threadpool_destroy`; here it has the semantics above. A pool whose
//!    creation fails never held a reference (the seed's failure path asserts
//!    a reference count it had just set to 1).
//!
//! The protocols are described in the modules' design essays: the job state
//! machine in `job.rs`, the queue, workers and overseer in `core.rs`, the
//! spawn cells and their cache in `spawn.rs`. `tests/loom_pool.rs` checks the
//! job state machine under loom.

mod core;
mod error;
mod job;
mod percpu;
mod pool;
mod priority;
mod spawn;
mod stats;
mod sys;
mod thunk;

pub use error::{Error, JoinError, PanicPayload};
pub use job::{Done, Job, JobLock, JobStats, JobStatus, Run, RunLock};
pub use percpu::PerCpuPool;
pub use pool::{Builder, ThreadPool};
pub use priority::{PRI_MAX, PRI_MIN, PRI_NONE};
pub use spawn::JoinHandle;
pub use stats::Stats;

/// The loom model's handle on a pool core without threads: the test plays
/// the worker and the overseer itself, step by step. Not part of the API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    use crate::core::{Config, PoolCore};
    use std::sync::Arc;
    use std::time::Duration;

    /// A pool core with no threads, and a `ThreadPool` handle on it.
    pub struct Model {
        core: Arc<PoolCore>,
        pool: crate::ThreadPool,
    }

    impl Model {
        /// A fresh model pool.
        pub fn new() -> Model {
            let cfg = Config {
                name: "loom".into(),
                pri: crate::PRI_NONE,
                cpu: None,
                idle_timeout: Duration::from_secs(1),
                max_threads: 1,
                eager_threads: 1,
                stall: Duration::from_millis(1),
                spin: Duration::ZERO,
            };
            let stats = Arc::new(crate::stats::PoolStats::default());
            let pool = crate::ThreadPool::from_core(Arc::new(PoolCore::new(cfg, stats)));
            Model { core: pool.core().clone(), pool }
        }

        /// The pool, to schedule on.
        pub fn pool(&self) -> &crate::ThreadPool {
            &self.pool
        }

        /// A worker step: run one queued entry; false if the queue was empty.
        pub fn worker_step(&self) -> bool {
            self.core.step()
        }

        /// An overseer step: every delayed entry is due now.
        pub fn overseer_step(&self) {
            self.core.promote_all();
        }

        /// Queued + delayed + running entries.
        pub fn pending(&self) -> usize {
            self.core.state.lock().pending
        }

        /// Mark the pool dying (what dropping its last handle does first).
        pub fn begin_shutdown(&self) {
            self.core.state.lock().dying = true;
        }
    }

    impl Default for Model {
        fn default() -> Self {
            Model::new()
        }
    }
}

/// The README's example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
