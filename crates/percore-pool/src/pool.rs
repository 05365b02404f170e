//! `ThreadPool`: shared per priority and reference counted
//! (`threadpool_get` / `threadpool_put`), or private from a [`Builder`].
//!
//! The registry maps a priority to its pool and a count of handles, under one
//! lock (the seed's `threadpools_lock`). Creating a pool starts a thread, so
//! it happens outside that lock; two callers may race to create the same
//! priority. As in the seed, the loser finds the winner's pool on its second
//! look, takes a reference to it, and destroys its own after unlocking.

use crate::core::{Config, PoolCore};
use crate::priority::{check_pri, label, PRI_NONE};
use crate::spawn::JoinHandle;
use crate::stats::{PoolStats, Stats};
use crate::Error;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The default spin before a worker sleeps, in microseconds.
const SPIN_US: u64 = 50;

/// A registry of shared objects keyed by priority, with handle counts.
pub(crate) struct Registry<V> {
    entries: Mutex<Vec<(i32, Arc<V>, u64)>>,
}

impl<V> Registry<V> {
    pub(crate) const fn new() -> Self {
        Registry { entries: Mutex::new(Vec::new()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<(i32, Arc<V>, u64)>> {
        // Every mutation is one push, one increment or one removal: a panic
        // cannot leave the list inconsistent, so poison is ignored.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a reference to the object for `pri`, creating it if needed.
    pub(crate) fn get(&self, pri: i32, create: impl FnOnce() -> Result<V, Error>) -> Result<Arc<V>, Error> {
        let mut list = self.entries();
        if let Some(e) = list.iter_mut().find(|e| e.0 == pri) {
            e.2 += 1;
            return Ok(e.1.clone());
        }
        drop(list);
        let fresh = Arc::new(create()?);
        let mut list = self.entries();
        let (obj, loser) = match list.iter_mut().find(|e| e.0 == pri) {
            Some(e) => {
                // Lost the creation race: use the winner's, destroy ours.
                e.2 += 1;
                (e.1.clone(), Some(fresh))
            }
            None => {
                list.push((pri, fresh.clone(), 1));
                (fresh, None)
            }
        };
        drop(list);
        drop(loser);
        Ok(obj)
    }

    /// Drop one reference; the registry's own `Arc` goes when it was the last.
    pub(crate) fn put(&self, pri: i32, obj: &Arc<V>) {
        let mut list = self.entries();
        let Some(i) = list.iter().position(|e| e.0 == pri && Arc::ptr_eq(&e.1, obj)) else {
            return;
        };
        list[i].2 -= 1;
        let removed = (list[i].2 == 0).then(|| list.swap_remove(i));
        drop(list);
        drop(removed);
    }
}

/// A started pool and its stats registration; dropping it shuts it down.
pub(crate) struct Pool {
    pub(crate) core: Arc<PoolCore>,
    /// Set by [`Pool::publish`]: only the winner of a creation race appears
    /// in the stats tree, so a shared pool's name never gets a `#2` suffix.
    reg: OnceLock<percore_cpu::stats::Registration>,
}

impl Pool {
    pub(crate) fn start(cfg: Config) -> Result<Pool, Error> {
        let stats = Arc::new(PoolStats::default());
        let core = Arc::new(PoolCore::new(cfg, stats));
        core.start()?;
        Ok(Pool { core, reg: OnceLock::new() })
    }

    /// Register the pool's stats (once).
    pub(crate) fn publish(&self) {
        self.reg.get_or_init(|| self.core.stats.register(&self.core.cfg.name));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

static UNBOUND: Registry<Pool> = Registry::new();

struct Handle {
    pool: Arc<Pool>,
    shared: Option<i32>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(pri) = self.shared {
            UNBOUND.put(pri, &self.pool);
        }
    }
}

/// A thread pool: an overseer thread that creates workers on demand, and
/// workers that run [`Job`](crate::Job)s and spawned closures, exiting after an idle
/// timeout.
///
/// Cloning is cheap and shares the pool. When the last handle of a pool goes
/// away (the last `ThreadPool` of a private pool, or of every `get` of a
/// shared one) the pool is destroyed: it stops accepting work, runs what is
/// queued, cancels delayed jobs (their owners see it in
/// [`JobStats::shutdown_cancelled`](crate::JobStats)), and the drop waits
/// for its threads to exit.
///
/// ```
/// use percore_pool::{ThreadPool, PRI_NONE};
///
/// let pool = ThreadPool::get(PRI_NONE).unwrap();
/// let h = pool.spawn(|| 6 * 7);
/// assert_eq!(h.join().unwrap(), 42);
///
/// assert!(matches!(ThreadPool::get(1000), Err(percore_pool::Error::InvalidPriority(1000))));
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    handle: Arc<Handle>,
}

impl ThreadPool {
    /// A reference to the shared unbound pool of priority `pri`
    /// (`threadpool_get`), created on first use with the default settings.
    ///
    /// `pri` is [`PRI_NONE`] or in [`PRI_MIN`](crate::PRI_MIN)`..=`[`PRI_MAX`](crate::PRI_MAX), otherwise
    /// [`Error::InvalidPriority`]. Where the process may not set that
    /// priority the pool works at the process's own, and its stats say so
    /// (`priority_refused`).
    pub fn get(pri: i32) -> Result<ThreadPool, Error> {
        check_pri(pri)?;
        let pool = UNBOUND.get(pri, || Builder::new().priority(pri).name(format!("u@{}", label(pri))).start())?;
        pool.publish();
        Ok(ThreadPool { handle: Arc::new(Handle { pool, shared: Some(pri) }) })
    }

    /// Settings for a private pool (not shared through [`ThreadPool::get`]).
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_pool(pool: Pool) -> ThreadPool {
        ThreadPool { handle: Arc::new(Handle { pool: Arc::new(pool), shared: None }) }
    }

    /// A private pool around a core that has no threads (the loom model).
    #[cfg(loom)]
    pub(crate) fn from_core(core: Arc<PoolCore>) -> ThreadPool {
        ThreadPool::from_pool(Pool { core, reg: OnceLock::new() })
    }

    /// Register the pool's stats (once; see [`Pool::publish`]).
    pub(crate) fn publish(&self) {
        self.handle.pool.publish();
    }

    pub(crate) fn core(&self) -> &Arc<PoolCore> {
        &self.handle.pool.core
    }

    /// The pool's name (its stats live under `pool.<name>`).
    pub fn name(&self) -> &str {
        &self.core().cfg.name
    }

    /// The pool's priority.
    pub fn priority(&self) -> i32 {
        self.core().cfg.pri
    }

    /// The CPU this pool's threads are pinned to (per-CPU pools only).
    pub fn cpu(&self) -> Option<usize> {
        self.core().cfg.cpu
    }

    /// Run `f` once on the pool; the handle waits for its result. See
    /// [`JoinHandle`].
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        crate::spawn::spawn(self.core(), f)
    }

    /// Run `f` once on the pool, fire and forget: no handle, no result.
    ///
    /// The cheapest way onto the pool: a closure of a few words (up to four,
    /// an `Arc` and three more, say) travels inside the queue entry itself,
    /// so `execute` allocates nothing, and neither side touches a shared
    /// cell. A panic of `f` is caught on the worker and counted in
    /// [`Stats::panics`]; use [`spawn`](ThreadPool::spawn) to see it, or to
    /// wait for the result. [`drain`](ThreadPool::drain) waits for executed
    /// closures too.
    ///
    /// [`Error::Cancelled`] if the pool is shutting down (a job handing work
    /// to the pool it runs on while that pool is destroyed): `f` is dropped
    /// here, on the calling thread, and never runs.
    ///
    /// ```
    /// use percore_pool::ThreadPool;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = ThreadPool::builder().name("doc-execute").max_threads(2).build()?;
    /// let sum = Arc::new(AtomicU64::new(0));
    /// for i in 1..=100 {
    ///     let sum = sum.clone();
    ///     pool.execute(move || {
    ///         sum.fetch_add(i, Ordering::Relaxed);
    ///     })?;
    /// }
    /// pool.drain()?;
    /// assert_eq!(sum.load(Ordering::Relaxed), 5050);
    /// # Ok::<(), percore_pool::Error>(())
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce() + Send + 'static,
    {
        // NOTE: a refused closure is dropped here, at the end of `map_err`.
        self.core().push_call(crate::thunk::Thunk::new(f)).map_err(|_refused| Error::Cancelled)
    }

    /// Wait until every job scheduled here (delayed ones included) and every
    /// spawned or executed closure has run or been cancelled. Work scheduled meanwhile is
    /// waited for too. From one of this pool's own threads it would wait for
    /// itself: [`Error::WouldDeadlock`].
    pub fn drain(&self) -> Result<(), Error> {
        self.core().drain(None)
    }

    /// [`drain`](ThreadPool::drain), giving up after `timeout` with
    /// [`Error::Timeout`].
    pub fn drain_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.core().drain(Some(timeout))
    }

    /// The pool's statistics now.
    pub fn stats(&self) -> Stats {
        self.core().stats.snapshot()
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool").field("name", &self.name()).field("priority", &self.priority()).finish()
    }
}

/// Settings for private pools ([`ThreadPool::builder`]) and per-CPU pools
/// ([`Builder::build_per_cpu`]).
///
/// ```
/// use std::time::Duration;
/// let pool = percore_pool::ThreadPool::builder()
///     .name("io")
///     .idle_timeout(Duration::from_millis(50))
///     .max_threads(8)
///     .build()
///     .unwrap();
/// assert_eq!(pool.spawn(|| 1).join().unwrap(), 1);
/// assert!(percore_pool::ThreadPool::builder().max_threads(0).build().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    pri: i32,
    idle_timeout: Duration,
    max_threads: usize,
    stall: Duration,
    spin: Duration,
    cpu: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: name `private`, [`PRI_NONE`], 30 s idle timeout, at
    /// most 512 workers, 1 ms stall interval, 50 us spin.
    pub fn new() -> Builder {
        Builder {
            name: "private".to_string(),
            pri: PRI_NONE,
            idle_timeout: Duration::from_secs(30),
            max_threads: 512,
            stall: Duration::from_millis(1),
            spin: Duration::from_micros(SPIN_US),
            cpu: None,
        }
    }

    /// The name: stats under `pool.<name>`, threads `poolthr/<name>`.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }

    /// The priority ([`PRI_NONE`] or [`PRI_MIN`](crate::PRI_MIN)`..=`[`PRI_MAX`](crate::PRI_MAX)).
    pub fn priority(mut self, pri: i32) -> Builder {
        self.pri = pri;
        self
    }

    /// How long an idle worker waits for work before it exits (at least 1 ms).
    pub fn idle_timeout(mut self, timeout: Duration) -> Builder {
        self.idle_timeout = timeout;
        self
    }

    /// The most workers the pool may have at once (at least 1).
    pub fn max_threads(mut self, n: usize) -> Builder {
        self.max_threads = n;
        self
    }

    /// Once the pool has a worker per CPU, the overseer adds another only if
    /// work is queued and no job has started for this long (at least 1 us).
    pub fn stall_interval(mut self, interval: Duration) -> Builder {
        self.stall = interval;
        self
    }

    /// How long a worker that ran out of work polls for more before it
    /// sleeps (0: never; at most 1 ms; default 50 us). Polling saves a futex
    /// wake-up when jobs come back to back, and costs that much CPU after
    /// each burst; a worker whose jobs come far apart (more than four times
    /// this) halves its own poll each time, and stops polling below a
    /// sixteenth of it (until a job comes soon after it slept again).
    pub fn spin(mut self, spin: Duration) -> Builder {
        self.spin = spin;
        self
    }

    pub(crate) fn on_cpu(mut self, cpu: usize) -> Builder {
        self.cpu = Some(cpu);
        self
    }

    fn config(&self) -> Result<Config, Error> {
        check_pri(self.pri)?;
        if self.max_threads == 0 {
            return Err(Error::InvalidConfig("max_threads must be at least 1"));
        }
        if self.idle_timeout < Duration::from_millis(1) {
            return Err(Error::InvalidConfig("idle_timeout must be at least 1 ms"));
        }
        if self.stall < Duration::from_micros(1) {
            return Err(Error::InvalidConfig("stall_interval must be at least 1 us"));
        }
        if self.spin > Duration::from_millis(1) {
            return Err(Error::InvalidConfig("spin must be at most 1 ms"));
        }
        if self.name.is_empty() || self.name.contains(['.', '\0']) {
            return Err(Error::InvalidConfig("the name must be non-empty, without '.' or NUL"));
        }
        let eager = match self.cpu {
            Some(_) => 1,
            None => percore_cpu::allowed_cpus().map_or(1, |c| c.len()),
        };
        Ok(Config {
            name: self.name.clone(),
            pri: self.pri,
            cpu: self.cpu,
            idle_timeout: self.idle_timeout,
            max_threads: self.max_threads,
            eager_threads: eager.min(self.max_threads),
            stall: self.stall,
            spin: self.spin,
        })
    }

    pub(crate) fn start(&self) -> Result<Pool, Error> {
        Pool::start(self.config()?)
    }

    /// Create a private pool with these settings.
    pub fn build(&self) -> Result<ThreadPool, Error> {
        let pool = ThreadPool::from_pool(self.start()?);
        pool.publish();
        Ok(pool)
    }

    /// The validated config (also checks the name and priority).
    pub(crate) fn validated(&self) -> Result<(), Error> {
        self.config().map(|_| ())
    }

    pub(crate) fn base_name(&self) -> &str {
        &self.name
    }
}
