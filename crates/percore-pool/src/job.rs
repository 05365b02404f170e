//! Jobs: named, reusable units of work with their own lock (`threadpool_job`).
//!
//! # The state machine
//!
//! Every field below is protected by the job's lock, and only by it. The
//! pool never holds its own lock while taking a job's (lock order: job,
//! then pool), and the job's state names the pool it is scheduled on, so a
//! cancel never has to guess (the seed's `XXXJRT` case).
//!
//! ```text
//!              schedule                      worker pops entry, ticket live
//!   Idle ----------------------> Queued -------------------------------> Running
//!    ^  \  schedule_after          ^  |                                   |  |
//!    |   `--------------> Delayed -'  | cancel / cancel_async              |  | done()
//!    |      overseer: due, ticket live| (entry removed, or left stale)     |  | (or panic)
//!    |<-------------------------------'                                   |  |
//!    |<-------------------------------------------------------------------'  |
//!    |                           rearm(): done, then schedule again          |
//!    `----------------------------------------------------------------------'
//! ```
//!
//! | state | meaning | `schedule` | `cancel_async` | `cancel` |
//! | --- | --- | --- | --- | --- |
//! | `Idle` | not scheduled, not running | queue it | true | returns |
//! | `Queued(pool, t)` | entry `t` in `pool`'s queue | no-op | remove, true | remove |
//! | `Delayed(pool, t, key)` | entry `t` in `pool`'s timer map | no-op | remove, true | remove |
//! | `Running(pool, t, thread)` | a worker runs it | no-op | false | wait for `done` |
//!
//! * **Tickets.** Each schedule takes a fresh ticket `t`; an entry is live
//!   iff the state names its ticket. Whoever pops an entry re-checks that
//!   under the job lock, so an entry a cancel could not unlink (a worker had
//!   just popped it) is dropped by the worker: never run, never unlinked
//!   twice.
//! * **References.** `refs` counts the entries held by pools plus the running
//!   worker: the seed's `job_refcnt`. The holder of an entry releases its
//!   reference under the job lock; `done` releases the running worker's, so
//!   a worker never touches a job after its function said `done`. Dropping a
//!   [`Job`] cancels what is pending, waits for a running call, then waits
//!   for `refs == 0`. Memory is kept alive by an `Arc` regardless; `refs`
//!   is about *behaviour*: nothing runs after the drop returns.
//! * **`done`.** A run ends only when the function returns the [`Done`] that
//!   [`RunLock::done`] (or `rearm`) produced under the job's lock. The
//!   function's return type makes forgetting it a compile error, and the
//!   [`Run`] -> [`RunLock`] -> [`Done`] chain is linear, so `done` happens
//!   exactly once. A panic before `done` is caught and the worker does the
//!   `done` for it.

use crate::core::{DelayKey, Entry, PoolCore, Task};
use crate::error::{Error, PanicPayload};
use crate::ThreadPool;
use percore_cpu::loom::{current_thread, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, ThreadId};
use std::ffi::CString;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a job is doing now ([`Job::status`], [`JobLock::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Neither scheduled nor running.
    Idle,
    /// In a pool's queue, about to run.
    Scheduled,
    /// Waiting for its delay to expire ([`ThreadPool::schedule_after`]).
    Delayed,
    /// A worker is running it (its function has not said `done` yet).
    Running,
}

/// Counts kept by a job ([`Job::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStats {
    /// Runs started.
    pub runs: u64,
    /// Runs that panicked (caught; the job was marked done).
    pub panics: u64,
    /// Pending schedules dropped because the pool shut down first (a delay
    /// that had not expired, or a `rearm` while the pool was dying).
    pub shutdown_cancelled: u64,
}

enum State {
    Idle,
    Queued { core: Arc<PoolCore>, ticket: u64 },
    Delayed { core: Arc<PoolCore>, ticket: u64, key: DelayKey },
    Running { core: Arc<PoolCore>, ticket: u64, thread: ThreadId },
}

/// The protocol fields, under the job lock.
struct Proto {
    /// Changed only through [`Proto::set_state`], which keeps the mirror.
    state: State,
    next_ticket: u64,
    refs: usize,
    waiters: usize,
    dying: bool,
    /// The job's [`Mirror`] (also in `JobInner`), written under this lock.
    mirror: Arc<Mirror>,
}

impl Proto {
    fn set_state(&mut self, st: State) {
        // ORDERING: release: a lock-free `Job::status` that sees the new
        // status sees what was done under the lock before it.
        self.mirror.status.store(status_of(&st) as usize, Release);
        self.state = st;
    }
}

/// What [`Job::status`], [`Job::stats`] and [`Job::take_panic`] read
/// without the job lock, so that they cannot deadlock against a live
/// [`JobLock`] on the same thread (issue 13). Written under the job lock by
/// the protocol (counts, status) and by the panic path (its own small lock,
/// never held across user code).
struct Mirror {
    /// A [`JobStatus`] as `usize` (`Idle` = 0).
    status: AtomicUsize,
    runs: AtomicU64,
    panics: AtomicU64,
    shutdown_cancelled: AtomicU64,
    panic: Mutex<Option<PanicPayload>>,
}

impl Default for Mirror {
    fn default() -> Mirror {
        Mirror {
            status: AtomicUsize::new(JobStatus::Idle as usize),
            runs: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            shutdown_cancelled: AtomicU64::new(0),
            panic: Mutex::new(None),
        }
    }
}

impl Mirror {
    fn bump(c: &AtomicU64) {
        // ORDERING: relaxed: a count; the writers hold the job lock.
        c.fetch_add(1, Relaxed);
    }
}

pub(crate) struct Locked<T> {
    proto: Proto,
    data: T,
}

type JobFn<T> = dyn for<'r> Fn(Run<'r, T>) -> Done<'r> + Send + Sync;

pub(crate) struct JobInner<T: Send + 'static> {
    name: Box<str>,
    os_name: CString,
    lock: Mutex<Locked<T>>,
    cv: Condvar,
    func: Box<JobFn<T>>,
    /// Lock-free snapshots for `status`, `stats`, `take_panic`.
    mirror: Arc<Mirror>,
}

/// A named, reusable job with its own lock guarding its data `T`.
///
/// The function receives a [`Run`]; to finish it must lock the job and call
/// [`RunLock::done`] (or [`RunLock::rearm`]), and return the [`Done`] that
/// produces. Because the decision is taken under the job's lock, a producer
/// that updates the data and calls [`schedule`](JobLock::schedule) under the
/// same lock can never be lost: either the job is idle and gets scheduled,
/// or it is running and will see the update before it says `done`.
///
/// ```
/// use percore_pool::{Job, ThreadPool, PRI_NONE};
///
/// let pool = ThreadPool::get(PRI_NONE).unwrap();
/// // A job that drains a counter of pending work, NetBSD style.
/// let job = Job::new("drainer", 0u32, |run| {
///     let mut g = run.lock();
///     while *g > 0 {
///         *g -= 1; // ... work on one item (could unlock and relock) ...
///     }
///     g.done()
/// });
/// {
///     let mut g = job.lock();
///     *g += 3;
///     g.schedule(&pool);
/// }
/// job.wait_idle_timeout(std::time::Duration::from_secs(10)).unwrap();
/// assert_eq!(*job.lock(), 0);
/// ```
///
/// Forgetting `done` does not compile:
///
/// ```compile_fail
/// let job = percore_pool::Job::new("bad", (), |run| {
///     let _g = run.lock();
/// });
/// ```
pub struct Job<T: Send + 'static = ()> {
    inner: Arc<JobInner<T>>,
}

impl<T: Send + 'static> Job<T> {
    /// A new idle job named `name` (shown as its worker's OS thread name
    /// while it runs, cut to 15 bytes), guarding `data`, running `f`.
    pub fn new<F>(name: impl Into<String>, data: T, f: F) -> Job<T>
    where
        F: for<'r> Fn(Run<'r, T>) -> Done<'r> + Send + Sync + 'static,
    {
        let name: String = name.into();
        let os_name = crate::sys::thread_name(&name);
        let mirror = Arc::new(Mirror::default());
        Job {
            inner: Arc::new(JobInner {
                name: name.into_boxed_str(),
                os_name,
                lock: Mutex::new(Locked {
                    proto: Proto {
                        state: State::Idle,
                        next_ticket: 0,
                        refs: 0,
                        waiters: 0,
                        dying: false,
                        mirror: mirror.clone(),
                    },
                    data,
                }),
                cv: Condvar::new(),
                func: Box::new(f),
                mirror,
            }),
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Take the job's lock: access to its data, and the operations that
    /// must be atomic with changes to it (`schedule`, `cancel`, ...).
    pub fn lock(&self) -> JobLock<'_, T> {
        JobLock { job: &self.inner, guard: Some(self.inner.lock.lock()) }
    }

    /// What the job is doing now: a snapshot as of the last change made
    /// under the job's lock. Lock-free, so it may be called while a
    /// [`JobLock`] of the same job is alive (on this thread or another);
    /// [`JobLock::status`] reads the state under the lock instead.
    ///
    /// ```
    /// use percore_pool::{Job, JobStatus};
    /// let job = Job::new("j", 0u32, |run| run.lock().done());
    /// let g = job.lock();
    /// assert_eq!(job.status(), JobStatus::Idle); // no deadlock
    /// assert_eq!(job.stats().runs, 0);
    /// assert!(job.take_panic().is_none());
    /// drop(g);
    /// ```
    pub fn status(&self) -> JobStatus {
        match self.inner.mirror.status.load(Acquire) {
            0 => JobStatus::Idle,
            1 => JobStatus::Scheduled,
            2 => JobStatus::Delayed,
            _ => JobStatus::Running,
        }
    }

    /// Run, panic and shutdown counts. Lock-free (like [`Job::status`]);
    /// each count is exact, the three are not read at one instant.
    pub fn stats(&self) -> JobStats {
        let m = &self.inner.mirror;
        JobStats {
            runs: m.runs.load(Relaxed),
            panics: m.panics.load(Relaxed),
            shutdown_cancelled: m.shutdown_cancelled.load(Relaxed),
        }
    }

    /// The payload of the most recent panic of the job's function, if not
    /// taken yet. Does not take the job's lock (like [`Job::status`]).
    pub fn take_panic(&self) -> Option<PanicPayload> {
        self.inner.mirror.panic.lock().take()
    }

    /// [`JobLock::cancel_async`] with the lock taken for the call.
    pub fn cancel_async(&self) -> bool {
        self.lock().cancel_async()
    }

    /// [`JobLock::cancel`] with the lock taken for the call.
    pub fn cancel(&self) -> Result<(), Error> {
        self.lock().cancel()
    }

    /// [`JobLock::cancel`], giving up after `timeout` with [`Error::Timeout`].
    pub fn cancel_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.lock().cancel_timeout(timeout)
    }

    /// Wait until the job is [`JobStatus::Idle`] (it ran, or was cancelled),
    /// at most `timeout`. A job that keeps re-arming itself may never be.
    pub fn wait_idle_timeout(&self, timeout: Duration) -> Result<(), Error> {
        let mut g = self.lock();
        g.wait_until(Some(timeout), |p| matches!(p.state, State::Idle))
    }
}

impl<T: Send + 'static> Drop for Job<T> {
    /// Destroy the job: cancel a pending schedule, wait for a running call to
    /// say `done`, then wait until no pool holds a reference to it
    /// (`threadpool_job_destroy`). Afterwards the function never runs again.
    fn drop(&mut self) {
        let mut g = self.lock();
        g.proto_mut().dying = true;
        let me = current_thread();
        loop {
            match &g.proto().state {
                State::Running { thread, .. } if *thread == me => return, // dropped by its own run
                State::Running { .. } => {
                    // NOTE: no timeout, so it cannot fail.
                    let _ = g.wait(Instant::now(), None);
                }
                State::Idle => break,
                State::Queued { .. } | State::Delayed { .. } => {
                    g.cancel_async();
                }
            }
        }
        let _ = g.wait_until(None, |p| p.refs == 0);
    }
}

impl<T: Send + 'static> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").field("name", &self.inner.name).field("status", &self.status()).finish()
    }
}

/// The job's lock, held: access to its data and the atomic operations.
///
/// ```
/// use percore_pool::{Job, JobStatus, ThreadPool, PRI_NONE};
/// let pool = ThreadPool::get(PRI_NONE).unwrap();
/// let job = Job::new("later", (), |run| run.lock().done());
/// let mut g = job.lock();
/// assert!(g.schedule_after(&pool, std::time::Duration::from_secs(3600)));
/// assert_eq!(g.status(), JobStatus::Delayed);
/// assert!(g.cancel_async()); // had not started
/// assert_eq!(g.status(), JobStatus::Idle);
/// ```
pub struct JobLock<'a, T: Send + 'static> {
    job: &'a Arc<JobInner<T>>,
    /// NOTE: `None` only inside [`JobLock::wait`], never observable.
    guard: Option<MutexGuard<'a, Locked<T>>>,
}

impl<'a, T: Send + 'static> JobLock<'a, T> {
    fn locked(&self) -> &Locked<T> {
        self.guard.as_deref().expect("JobLock holds its guard outside wait")
    }

    fn locked_mut(&mut self) -> &mut Locked<T> {
        self.guard.as_deref_mut().expect("JobLock holds its guard outside wait")
    }

    fn proto(&self) -> &Proto {
        &self.locked().proto
    }

    fn proto_mut(&mut self) -> &mut Proto {
        &mut self.locked_mut().proto
    }

    /// What the job is doing now.
    pub fn status(&self) -> JobStatus {
        status_of(&self.proto().state)
    }

    /// Schedule the job on `pool` (`threadpool_schedule_job`). Does nothing
    /// and returns false if it is already scheduled, delayed or running;
    /// returns true if this call queued it.
    pub fn schedule(&mut self, pool: &ThreadPool) -> bool {
        schedule_locked(self.job, self.proto_mut(), pool.core(), None)
    }

    /// Schedule the job on `pool` to run once `delay` has passed. Like
    /// [`schedule`](JobLock::schedule), a no-op (false) unless idle.
    pub fn schedule_after(&mut self, pool: &ThreadPool, delay: Duration) -> bool {
        schedule_locked(self.job, self.proto_mut(), pool.core(), Some(delay))
    }

    /// Cancel a pending schedule (`threadpool_cancel_job_async`): true if
    /// the job is now guaranteed not to be running (it was idle, or was
    /// scheduled and will not run for that schedule), false if it is running.
    pub fn cancel_async(&mut self) -> bool {
        let job_ptr = Arc::as_ptr(self.job) as *const ();
        let proto = self.proto_mut();
        let removed = match &proto.state {
            State::Idle => return true,
            State::Running { .. } => return false,
            State::Queued { core, ticket } => (core.remove_queued(job_ptr, *ticket), core.clone()),
            State::Delayed { core, key, .. } => (core.remove_delayed(*key), core.clone()),
        };
        let (removed, core) = removed;
        core.stats.cancelled.inc();
        if removed {
            // We took the entry out: its reference is ours to release.
            proto.refs -= 1;
        }
        // Otherwise its popper sees a dead ticket and releases it.
        proto.set_state(State::Idle);
        self.notify();
        true
    }

    /// Cancel the job and, if it is running, wait until it says `done`
    /// (`threadpool_cancel_job`). A job that re-arms itself while we wait is
    /// cancelled again, so this returns. Called from the job's own run it
    /// would wait for itself: [`Error::WouldDeadlock`].
    pub fn cancel(&mut self) -> Result<(), Error> {
        self.cancel_until(None)
    }

    /// [`cancel`](JobLock::cancel), giving up after `timeout`.
    pub fn cancel_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.cancel_until(Some(timeout))
    }

    fn cancel_until(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            if self.cancel_async() {
                return Ok(());
            }
            if let State::Running { thread, .. } = &self.proto().state {
                if *thread == current_thread() {
                    return Err(Error::WouldDeadlock);
                }
            }
            self.wait(start, timeout)?;
        }
    }

    /// Wait on the job's condition variable once, for what is left of
    /// `timeout` since `start` ([`Error::Timeout`] once nothing is left).
    fn wait(&mut self, start: Instant, timeout: Option<Duration>) -> Result<(), Error> {
        let left = match timeout {
            None => None,
            Some(t) => match t.saturating_sub(start.elapsed()) {
                left if left.is_zero() => return Err(Error::Timeout),
                left => Some(left),
            },
        };
        let Some(mut g) = self.guard.take() else {
            return Ok(());
        };
        g.proto.waiters += 1;
        g = match left {
            None => self.job.cv.wait(g),
            Some(t) => self.job.cv.wait_timeout(g, t),
        };
        g.proto.waiters -= 1;
        self.guard = Some(g);
        Ok(())
    }

    fn wait_until(&mut self, timeout: Option<Duration>, done: impl Fn(&Proto) -> bool) -> Result<(), Error> {
        let start = Instant::now();
        while !done(self.proto()) {
            self.wait(start, timeout)?;
        }
        Ok(())
    }

    fn notify(&self) {
        if self.proto().waiters > 0 {
            self.job.cv.notify_all();
        }
    }
}

impl<T: Send + 'static> Deref for JobLock<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.locked().data
    }
}

impl<T: Send + 'static> DerefMut for JobLock<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.locked_mut().data
    }
}

fn status_of(state: &State) -> JobStatus {
    match state {
        State::Idle => JobStatus::Idle,
        State::Queued { .. } => JobStatus::Scheduled,
        State::Delayed { .. } => JobStatus::Delayed,
        State::Running { .. } => JobStatus::Running,
    }
}

/// The one place a job enters the pool. Job lock held (via `proto`).
fn schedule_locked<T: Send + 'static>(
    job: &Arc<JobInner<T>>,
    proto: &mut Proto,
    core: &Arc<PoolCore>,
    delay: Option<Duration>,
) -> bool {
    if !matches!(proto.state, State::Idle) || proto.dying {
        return false;
    }
    proto.next_ticket += 1;
    let ticket = proto.next_ticket;
    let entry = Entry { task: job.clone(), ticket };
    match delay {
        None => {
            if !core.push(entry) {
                return false;
            }
            proto.set_state(State::Queued { core: core.clone(), ticket });
        }
        Some(d) => {
            let deadline = Instant::now().checked_add(d).unwrap_or_else(far_future);
            let Some(key) = core.push_delayed(deadline, entry) else {
                return false;
            };
            proto.set_state(State::Delayed { core: core.clone(), ticket, key });
        }
    }
    proto.refs += 1;
    true
}

/// A deadline for delays too long to represent (they never expire).
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)).unwrap_or(now)
}

/// One run of a job, handed to its function. Lock it to finish the run.
///
/// `'r` brands this run: the [`Done`] the function returns must come from
/// this very run.
pub struct Run<'r, T: Send + 'static> {
    job: &'r Arc<JobInner<T>>,
    ticket: u64,
    _brand: PhantomData<fn(&'r ()) -> &'r ()>,
}

impl<'r, T: Send + 'static> Run<'r, T> {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.job.name
    }

    /// Take the job's lock (to read its data, and to say `done`).
    pub fn lock(self) -> RunLock<'r, T> {
        RunLock { guard: self.job.lock.lock(), run: self }
    }
}

/// The job's lock, held by its running function. Finish the run with
/// [`done`](RunLock::done) or [`rearm`](RunLock::rearm), or give the lock
/// back with [`unlock`](RunLock::unlock) to work without it.
///
/// ```
/// use percore_pool::{Job, ThreadPool, PRI_NONE};
/// let pool = ThreadPool::get(PRI_NONE).unwrap();
/// // Runs three times: it re-arms itself race-free under its lock.
/// let job = Job::new("thrice", 0u32, |run| {
///     let mut g = run.lock();
///     *g += 1;
///     if *g < 3 { g.rearm() } else { g.done() }
/// });
/// pool.schedule(&job);
/// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
/// while *job.lock() < 3 && std::time::Instant::now() < deadline {
///     std::thread::yield_now();
/// }
/// job.wait_idle_timeout(std::time::Duration::from_secs(10)).unwrap();
/// assert_eq!(*job.lock(), 3);
/// ```
pub struct RunLock<'r, T: Send + 'static> {
    run: Run<'r, T>,
    guard: MutexGuard<'r, Locked<T>>,
}

impl<'r, T: Send + 'static> RunLock<'r, T> {
    /// Release the lock and keep running.
    pub fn unlock(self) -> Run<'r, T> {
        drop(self.guard);
        self.run
    }

    /// What other threads see: [`JobStatus::Running`].
    pub fn status(&self) -> JobStatus {
        status_of(&self.guard.proto.state)
    }

    /// End the run (`threadpool_job_done`): the job becomes idle, waiters are
    /// woken, and the worker's reference is released. The function must
    /// return the result at once; the job may already run again elsewhere.
    pub fn done(mut self) -> Done<'r> {
        finish_run(self.run.job, &mut self.guard.proto, self.run.ticket);
        Done { _brand: PhantomData }
    }

    /// End the run and schedule the job again on the same pool, atomically:
    /// no schedule in between can be lost. If the pool is shutting down or
    /// the job is being destroyed it is not rescheduled (the former counts
    /// in [`JobStats::shutdown_cancelled`]).
    pub fn rearm(self) -> Done<'r> {
        self.rearm_with(None)
    }

    /// Like [`rearm`](RunLock::rearm), to run again after `delay`.
    pub fn rearm_after(self, delay: Duration) -> Done<'r> {
        self.rearm_with(Some(delay))
    }

    fn rearm_with(mut self, delay: Option<Duration>) -> Done<'r> {
        let core = match &self.guard.proto.state {
            State::Running { core, ticket, .. } if *ticket == self.run.ticket => Some(core.clone()),
            _ => None,
        };
        finish_run(self.run.job, &mut self.guard.proto, self.run.ticket);
        if let Some(core) = core {
            let proto = &mut self.guard.proto;
            if !schedule_locked(self.run.job, proto, &core, delay) && !proto.dying {
                Mirror::bump(&proto.mirror.shutdown_cancelled);
                core.stats.shutdown_cancelled.inc();
            }
        }
        Done { _brand: PhantomData }
    }
}

impl<T: Send + 'static> Deref for RunLock<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard.data
    }
}

impl<T: Send + 'static> DerefMut for RunLock<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard.data
    }
}

/// Proof that a run said `done`; only [`RunLock::done`] and `rearm` make
/// one, and the job function must return it.
#[must_use = "a job function must return the Done it obtained"]
pub struct Done<'r> {
    _brand: PhantomData<fn(&'r ()) -> &'r ()>,
}

impl fmt::Debug for Done<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Done")
    }
}

/// `Running(ticket)` -> `Idle`, release the worker's reference, wake waiters.
/// A no-op if the run already finished (idempotent by ticket).
fn finish_run<T: Send + 'static>(job: &JobInner<T>, proto: &mut Proto, ticket: u64) -> bool {
    match &proto.state {
        State::Running { ticket: t, .. } if *t == ticket => {}
        _ => return false,
    }
    proto.set_state(State::Idle);
    proto.refs -= 1;
    if proto.waiters > 0 {
        job.cv.notify_all();
    }
    true
}

impl<T: Send + 'static> Task for JobInner<T> {
    fn run(self: Arc<Self>, ticket: u64, core: &Arc<PoolCore>) {
        {
            let mut g = self.lock.lock();
            let proto = &mut g.proto;
            let live = matches!(&proto.state, State::Queued { ticket: t, .. } if *t == ticket);
            if !live {
                // Cancelled (and maybe rescheduled) after we popped it.
                release_ref(&self, proto);
                return;
            }
            proto.set_state(State::Running { core: core.clone(), ticket, thread: current_thread() });
            Mirror::bump(&proto.mirror.runs);
        }
        crate::sys::rename_current(&self.os_name);
        let run = Run { job: &self, ticket, _brand: PhantomData };
        let result = crate::error::catch_unwind(|| {
            let _done: Done<'_> = (self.func)(run);
        });
        crate::sys::rename_current(&core.base_name);
        if let Err(payload) = result {
            self.panicked_slow(ticket, core, payload);
        }
    }

    fn promote(self: Arc<Self>, ticket: u64, core: &Arc<PoolCore>) -> bool {
        let mut g = self.lock.lock();
        let proto = &mut g.proto;
        if !matches!(&proto.state, State::Delayed { ticket: t, .. } if *t == ticket) {
            release_ref(&self, proto);
            return false;
        }
        proto.set_state(State::Queued { core: core.clone(), ticket });
        core.push_promoted(Entry { task: self.clone(), ticket });
        true
    }

    fn shutdown(self: Arc<Self>, ticket: u64) {
        let mut g = self.lock.lock();
        let proto = &mut g.proto;
        if matches!(&proto.state, State::Delayed { ticket: t, .. } if *t == ticket) {
            proto.set_state(State::Idle);
            Mirror::bump(&proto.mirror.shutdown_cancelled);
        }
        release_ref(&self, proto);
    }
}

impl<T: Send + 'static> JobInner<T> {
    /// The function panicked: record it, and say `done` if it had not.
    #[cold]
    fn panicked_slow(&self, ticket: u64, core: &PoolCore, payload: Box<dyn std::any::Any + Send>) {
        core.stats.panics.inc();
        let mut g = self.lock.lock();
        let proto = &mut g.proto;
        Mirror::bump(&proto.mirror.panics);
        *proto.mirror.panic.lock() = Some(PanicPayload::new(payload));
        finish_run(self, proto, ticket);
    }
}

/// Drop a pool's reference (an entry that turned out stale).
fn release_ref<T: Send + 'static>(job: &JobInner<T>, proto: &mut Proto) {
    proto.refs -= 1;
    if proto.refs == 0 && proto.waiters > 0 {
        job.cv.notify_all();
    }
}

impl ThreadPool {
    /// Schedule `job` here, as [`JobLock::schedule`](crate::JobLock::schedule):
    /// a no-op (false) if it is already scheduled or running.
    pub fn schedule<T: Send + 'static>(&self, job: &Job<T>) -> bool {
        job.lock().schedule(self)
    }

    /// Schedule `job` to run here after `delay`
    /// ([`JobLock::schedule_after`](crate::JobLock::schedule_after)).
    pub fn schedule_after<T: Send + 'static>(&self, job: &Job<T>, delay: Duration) -> bool {
        job.lock().schedule_after(self, delay)
    }
}
