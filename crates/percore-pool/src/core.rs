//! The pool core: the run queue, the idle workers, the delayed entries, and
//! the overseer that creates workers on demand.
//!
//! # Problem
//!
//! NetBSD's `threadpool(9)` hands each job to one idle thread or, when no
//! thread is idle, to the pool's *overseer*, a thread that runs no jobs but
//! creates workers and assigns them. Its seed (rev 1.11) keeps the job's
//! assignment (`job_thread`) and the pool's lists under two locks and moves a
//! job between them with both released in between; the races later revisions
//! fixed all live in those gaps (see the crate documentation).
//!
//! # Mechanism
//!
//! One mutex (`PoolCore::state`, the seed's `tp_lock`) protects everything in
//! [`State`]. A job's protocol state lives under the job's own lock
//! (`job.rs`). The lock order is **job lock, then pool lock**; nothing that
//! holds the pool lock ever takes a job lock. Entries in the queue are
//! tickets, `(task, ticket)`: the job's lock says whether a ticket is still
//! live, so an entry that lost a race is recognised and dropped by whoever
//! pops it, instead of being unlinked twice.
//!
//! ```text
//!  schedule(job)            worker                        overseer
//!  -------------            ------                        --------
//!  job lock                 ready lock                    pool lock
//!   pool lock                pop ready, or (pool lock)     queue non-empty, nobody idle?
//!    push on queue            move all of queue to ready    -> create a worker
//!    idle worker? wake it   unlock                        due delayed entry?
//!    else kick overseer     none: spin, then go idle        -> pool unlock, job lock,
//!   pool unlock             job lock: ticket live? <--.        re-check, queue it
//!  job unlock                yes: Running, run fn     |
//!                            no: drop the entry ------'
//! ```
//!
//! Wake-ups are targeted: each idle worker sleeps on its own condition
//! variable (the seed's `tpt_cv`) in a LIFO stack, so the most recently idle
//! (cache-hot) worker is woken first and the others age out after the idle
//! timeout. At most one worker is *waking* at a time; a woken worker that
//! finds more work wakes the next (a chain), so a burst of tiny jobs does not
//! wake every thread.
//!
//! # Two queues
//!
//! Producers append to `queue` under the pool lock. Workers do not pop it
//! one entry at a time (that would hand the pool lock's cache line between
//! producer and worker on every job): a worker whose `ready` list is empty
//! moves the whole of `queue` into `ready` in one step, under both locks,
//! and then pops `ready` under the `ready` lock alone. `ready` is shared by
//! all workers, so a long job never hides the entries behind it: a worker
//! that moves more than one entry wakes a helper, and the overseer counts
//! `ready` as backlog. Entries only enter `ready` under the pool lock, so a
//! worker that finds both empty under the pool lock may sleep. Workers
//! settle `pending` for the entries they ran whenever they next take the
//! pool lock (at the latest, right after `ready` runs dry).
//!
//! A worker that runs out of work first *spins* for up to `cfg.spin` (50 us
//! by default), polling `queued`, a relaxed copy of the queue length written
//! under the lock. While any worker spins, pushers wake nobody: the spinner
//! re-checks the queue under the lock before it sleeps, so nothing is lost.
//! Back-to-back jobs then cost no futex wake on either side; an idle pool
//! pays the spin once after its last job, and nothing afterwards.
//!
//! Spinning adapts per worker (`next_budget`). A worker woken within
//! `4 * cfg.spin` after it went to sleep spins the full `cfg.spin` next
//! time: jobs come back to back, and the submitter was only slow to return
//! (on this project's 2-CPU VM, a submitter woken by the job it waited for
//! came back later than a 10 or 20 us spin for most jobs, within 50 us for
//! most: `docs/BENCHMARKS.md`, issue 15's pool section). Woken later,
//! it halves its budget, and stops spinning once half would be below a
//! sixteenth of `cfg.spin`, so that jobs trickling in a millisecond or more
//! apart pay no spin at all (the first job woken within `4 * cfg.spin`
//! brings the full spin back).
//!
//! A spinner polls `queued` every few pauses (`POLL_PAUSES`, about 0.1 us),
//! so that a job pushed meanwhile starts within a fraction of a
//! microsecond; it reads the clock and yields its CPU less often.
//!
//! The overseer creates a worker when work is queued and nobody is idle or
//! waking, at once while the pool has fewer workers than CPUs, and beyond
//! that only when no job has started for a `stall` interval (all workers are
//! blocked), up to `max_threads`. This is the seed's "create on demand" with
//! a brake, so that a flood of tiny jobs does not grow hundreds of threads.
//!
//! # Invariants (all under the pool lock)
//!
//! * `pending` = entries in `queue` + in `ready` + in `delayed` + entries
//!   popped and not yet settled. `drain` waits for it to reach zero.
//! * A worker is in `idle` iff it sleeps and nobody has woken it; waking
//!   removes it and sets its `woken` flag, then `waking += 1` until it runs.
//! * A push wakes nobody while `waking > 0` or `spinning > 0`; both kinds of
//!   worker look at the queue under the lock before they could sleep.
//! * Once `dying` is set no new entry is accepted (promoted delayed entries
//!   aside); workers drain the queue, the overseer cancels delayed entries
//!   (their owners are told) and keeps creating workers while work remains.
//! * An idle pool has every worker asleep on an untimed-except-idle-timeout
//!   wait and the overseer asleep untimed (or until the next delayed entry):
//!   no spinning, no periodic wake-ups.

use crate::spawn::CellRef;
use crate::stats::PoolStats;
use crate::thunk::Thunk;
use percore_cpu::loom::{AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard};
// NOTE: `Arc` is `std`'s, not the loom shim's: it manages memory, not the
// protocol (a job's protocol references are the counted `refs` of `job.rs`),
// and loom's `Arc` cannot be coerced to `Arc<dyn Task>`. The shim's locks
// ignore poisoning, which is right here: job functions run outside the pool
// lock, and one that panics holding its job's lock leaves the protocol fields
// consistent (each is changed in one statement).
use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something a worker can run that lives on beyond its entry: a [`Job`](crate::Job)
/// (spawned and executed closures are [`Queued`] variants of their own).
///
/// NOTE: every method may run user code that the task itself does not catch
/// (the destructor of a job's data when the pool held its last reference,
/// of a spawned closure's result or captures). The pool calls them only
/// through [`PoolCore::guarded`], which catches such a panic and counts it in
/// `panics`, so a destructor can never cost a worker (issue 16). A task
/// leaves its own state consistent before any such drop.
pub(crate) trait Task: Send + Sync + 'static {
    /// Run the entry `ticket` (popped by a worker; no pool lock held).
    /// Stale tickets are dropped here.
    fn run(self: Arc<Self>, ticket: u64, core: &Arc<PoolCore>);
    /// A delayed entry is due: queue it on `core` if `ticket` is still live
    /// (returns true), else drop it (returns false). No pool lock held.
    fn promote(self: Arc<Self>, ticket: u64, core: &Arc<PoolCore>) -> bool;
    /// The pool shut down before this delayed entry was due: tell its owner.
    fn shutdown(self: Arc<Self>, ticket: u64);
}

/// A task entry: the task and the ticket it was scheduled under.
pub(crate) struct Entry {
    pub(crate) task: Arc<dyn Task>,
    pub(crate) ticket: u64,
}

/// What the run queue holds: a task entry, or a closure of
/// [`ThreadPool::execute`](crate::ThreadPool::execute) stored in the entry
/// itself (no cell, no handle, no allocation when it is a few words).
pub(crate) enum Queued {
    Task(Entry),
    /// A [`ThreadPool::spawn`](crate::ThreadPool::spawn)ed closure: the
    /// entry's share of its cell.
    Spawned(CellRef),
    Call(Thunk),
}

impl Queued {
    fn is(&self, task: *const (), ticket: u64) -> bool {
        match self {
            Queued::Task(e) => Arc::as_ptr(&e.task) as *const () == task && e.ticket == ticket,
            Queued::Spawned(_) | Queued::Call(_) => false,
        }
    }
}

/// The key of a delayed entry: its deadline and a tie-breaking sequence.
pub(crate) type DelayKey = (Instant, u64);

/// Pool settings, validated by the [`Builder`](crate::Builder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) pri: i32,
    pub(crate) cpu: Option<usize>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_threads: usize,
    pub(crate) eager_threads: usize,
    pub(crate) stall: Duration,
    pub(crate) spin: Duration,
}

/// The spin budget after a sleep of `slept`: the full `spin` again when the
/// worker was woken within `4 * spin` (jobs come back to back, give or take
/// a submitter's own wake-up), half of it otherwise (jobs come too seldom
/// for spinning to pay), and none once that is below a sixteenth.
fn next_budget(budget: Duration, spin: Duration, slept: Duration) -> Duration {
    if slept <= 4 * spin {
        spin
    } else if budget / 2 < spin / 16 {
        Duration::ZERO
    } else {
        budget / 2
    }
}

/// A spinning worker polls the queue after this many `spin_loop` pauses
/// (25-35 ns each on this project's 2-CPU VM: a poll every 0.1-0.15 us;
/// it was every 32 pauses, about 1 us, before issue 15's dispatch work) ...
const POLL_PAUSES: u32 = 4;
/// ... reads the clock (its budget) every this many polls ...
const CLOCK_POLLS: u32 = 8;
/// ... and yields its CPU every this many polls (256 pauses; 224 before).
const YIELD_POLLS: u32 = 64;

/// One sleeping worker's wake-up channel (the seed's `tpt_cv`).
#[derive(Debug)]
pub(crate) struct Parker {
    cv: Condvar,
    /// Set (under the pool lock) by whoever removes this worker from `idle`.
    woken: AtomicBool,
}

/// Everything the pool lock protects.
pub(crate) struct State {
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) delayed: BTreeMap<DelayKey, Entry>,
    delay_seq: u64,
    idle: Vec<Arc<Parker>>,
    waking: usize,
    /// Workers polling `queued` before they go idle.
    spinning: usize,
    pub(crate) threads: usize,
    pub(crate) pending: usize,
    kicked: bool,
    pub(crate) dying: bool,
    overseer_alive: bool,
    drain_waiters: usize,
}

/// The shared heart of one pool (the seed's `struct threadpool`): the pool
/// lock and its state, the queues, the condition variables, and what every
/// worker, the overseer and each handle reach through an `Arc`.
pub(crate) struct PoolCore {
    pub(crate) state: Mutex<State>,
    overseer_cv: Condvar,
    /// Drain waiters and the destroyer wait here (`notify_all`).
    drain_cv: Condvar,
    pub(crate) cfg: Config,
    pub(crate) stats: Arc<PoolStats>,
    pub(crate) base_name: CString,
    /// `queue.len()`, written under the pool lock, read by spinning workers
    /// without it (a hint: they re-check under the lock).
    queued: AtomicUsize,
    /// Entries a worker moved out of `queue` in one step (see "Two queues").
    /// Lock order: job, then `ready`, then the pool lock.
    ready: Mutex<VecDeque<Queued>>,
    /// `ready.len()`, written under the `ready` lock. It only grows under the
    /// pool lock too, so read under the pool lock it is never too small.
    ready_len: AtomicUsize,
    /// Entries taken by workers so far (the overseer's progress signal).
    started: AtomicU64,
}

thread_local! {
    /// The core whose worker or overseer this thread is (its address), to
    /// refuse waits that would wait for the caller itself.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

enum Wake {
    None,
    Worker(Arc<Parker>),
    Overseer,
}

impl PoolCore {
    /// A core with no threads. [`PoolCore::start`] adds the overseer; the loom
    /// model drives a core without threads instead.
    pub(crate) fn new(cfg: Config, stats: Arc<PoolStats>) -> PoolCore {
        let base_name = crate::sys::thread_name(&format!("poolthr/{}", cfg.name));
        PoolCore {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                delayed: BTreeMap::new(),
                delay_seq: 0,
                idle: Vec::new(),
                waking: 0,
                spinning: 0,
                threads: 0,
                pending: 0,
                kicked: false,
                dying: false,
                overseer_alive: false,
                drain_waiters: 0,
            }),
            overseer_cv: Condvar::new(),
            drain_cv: Condvar::new(),
            cfg,
            stats,
            base_name,
            queued: AtomicUsize::new(0),
            ready: Mutex::new(VecDeque::new()),
            ready_len: AtomicUsize::new(0),
            started: AtomicU64::new(0),
        }
    }

    /// Whether the calling thread is one of this pool's threads.
    pub(crate) fn is_current(&self) -> bool {
        CURRENT.with(|c| c.get() == self as *const PoolCore as usize)
    }

    // ----- queueing (called with a job lock held, or none) -----

    /// Queue `entry`; false (entry dropped) if the pool is dying.
    #[inline]
    pub(crate) fn push(&self, entry: Entry) -> bool {
        self.push_as(entry, Queued::Task).is_ok()
    }

    /// Queue a spawned closure's cell; the share is given back if the pool
    /// is dying.
    #[inline]
    pub(crate) fn push_spawned(&self, cell: CellRef) -> Result<(), CellRef> {
        self.push_as(cell, Queued::Spawned)
    }

    /// Queue a closure of `execute`; given back if the pool is dying, for
    /// the caller to drop on its own thread.
    #[inline]
    pub(crate) fn push_call(&self, call: Thunk) -> Result<(), Thunk> {
        self.push_as(call, Queued::Call)
    }

    /// Queue `what` as `wrap(what)` unless the pool is dying (then `what`
    /// comes back untouched).
    #[inline]
    fn push_as<T>(&self, what: T, wrap: impl FnOnce(T) -> Queued) -> Result<(), T> {
        let st = self.state.lock();
        if st.dying {
            return Err(what);
        }
        self.enqueue(st, wrap(what));
        Ok(())
    }

    /// Append a new entry (it counts in `pending`) and wake a worker for it.
    #[inline]
    fn enqueue(&self, mut st: MutexGuard<'_, State>, q: Queued) {
        st.pending += 1;
        st.queue.push_back(q);
        self.publish_len(&st);
        let wake = self.wake_locked(&mut st);
        drop(st);
        self.signal(wake);
    }

    #[inline]
    fn publish_ready(&self, ready: &VecDeque<Queued>) {
        // ORDERING: a hint, like `queued`; see the `ready_len` field.
        self.ready_len.store(ready.len(), Ordering::Relaxed);
    }

    /// Whether `ready` holds entries. Exact (never a false "empty") when
    /// called with the pool lock held; see the `ready_len` field.
    #[inline]
    fn ready_nonempty(&self) -> bool {
        // ORDERING: see `publish_ready`.
        self.ready_len.load(Ordering::Relaxed) > 0
    }

    #[inline]
    fn publish_len(&self, st: &State) {
        // ORDERING: a hint for spinning workers, who take the pool lock
        // (which orders everything) before acting on it.
        self.queued.store(st.queue.len(), Ordering::Relaxed);
    }

    /// Queue a due delayed entry; its `pending` count carries over. Accepted
    /// while dying too: the delay had been accepted before.
    pub(crate) fn push_promoted(&self, entry: Entry) {
        let mut st = self.state.lock();
        st.queue.push_back(Queued::Task(entry));
        self.publish_len(&st);
        let wake = self.wake_locked(&mut st);
        drop(st);
        self.signal(wake);
    }

    /// Add a delayed entry; `None` if the pool is dying.
    pub(crate) fn push_delayed(&self, deadline: Instant, entry: Entry) -> Option<DelayKey> {
        let mut st = self.state.lock();
        if st.dying {
            return None;
        }
        st.delay_seq += 1;
        let key = (deadline, st.delay_seq);
        let earliest = st.delayed.first_key_value().is_none_or(|(k, _)| key < *k);
        st.pending += 1;
        st.delayed.insert(key, entry);
        drop(st);
        if earliest {
            // The overseer's timer must move earlier.
            self.overseer_cv.notify_one();
        }
        Some(key)
    }

    /// Take `(task, ticket)` out of the queue if it is still there (cancel).
    /// False if a worker popped it first: that worker drops it.
    pub(crate) fn remove_queued(&self, task: *const (), ticket: u64) -> bool {
        let mut ready = self.ready.lock();
        if let Some(i) = ready.iter().position(|e| e.is(task, ticket)) {
            let entry = ready.remove(i);
            self.publish_ready(&ready);
            drop(ready);
            self.finish();
            drop(entry);
            return true;
        }
        let mut st = self.state.lock();
        drop(ready);
        // XXX: linear in the queue length; cancellation is rare next to
        // scheduling, and an index per entry would cost every push.
        let Some(i) = st.queue.iter().position(|e| e.is(task, ticket)) else {
            return false;
        };
        let entry = st.queue.remove(i);
        self.publish_len(&st);
        self.finish_locked(&mut st);
        drop(st);
        drop(entry);
        true
    }

    /// Take a delayed entry out (cancel). False if the overseer popped it.
    pub(crate) fn remove_delayed(&self, key: DelayKey) -> bool {
        let mut st = self.state.lock();
        let Some(entry) = st.delayed.remove(&key) else {
            return false;
        };
        self.finish_locked(&mut st);
        drop(st);
        drop(entry);
        true
    }

    /// Decide who to wake for newly queued work.
    #[inline]
    fn wake_locked(&self, st: &mut State) -> Wake {
        if st.waking > 0 || st.spinning > 0 {
            // A woken worker will take it (and chain-wake the next one), or
            // a spinning worker will see it.
            return Wake::None;
        }
        if let Some(p) = st.idle.pop() {
            st.waking += 1;
            self.stats.set_idle(st.idle.len());
            // ORDERING: written and read under the pool lock only.
            p.woken.store(true, Ordering::Relaxed);
            return Wake::Worker(p);
        }
        self.kick_locked(st)
    }

    fn kick_locked(&self, st: &mut State) -> Wake {
        if st.kicked || !st.overseer_alive {
            return Wake::None;
        }
        st.kicked = true;
        self.stats.handoffs.inc();
        Wake::Overseer
    }

    #[inline]
    fn signal(&self, wake: Wake) {
        match wake {
            Wake::None => {}
            Wake::Worker(p) => p.cv.notify_one(),
            Wake::Overseer => self.overseer_cv.notify_one(),
        }
    }

    /// One entry is gone for good (ran, dropped or cancelled).
    #[inline]
    pub(crate) fn finish_locked(&self, st: &mut State) {
        self.finish_many_locked(st, 1);
    }

    /// `n` entries are gone for good.
    #[inline]
    fn finish_many_locked(&self, st: &mut State, n: usize) {
        st.pending -= n;
        if st.pending == 0 && st.drain_waiters > 0 {
            self.drain_cv.notify_all();
        }
    }

    /// Like [`PoolCore::finish_locked`], taking the lock.
    pub(crate) fn finish(&self) {
        let mut st = self.state.lock();
        self.finish_locked(&mut st);
    }

    // ----- the worker -----

    /// Take and run one entry: from `ready`, or else move all of `queue` to
    /// `ready` in one step (waking a helper when there is more than one).
    /// `done` counts entries run since `pending` was last settled; it is
    /// settled whenever the pool lock is taken here. False: no work.
    #[inline]
    fn take_work(self: &Arc<Self>, done: &mut usize) -> bool {
        let mut ready = self.ready.lock();
        if let Some(entry) = ready.pop_front() {
            self.publish_ready(&ready);
            drop(ready);
            return self.run_taken(entry, done);
        }
        let mut st = self.state.lock();
        if *done > 0 {
            self.finish_many_locked(&mut st, std::mem::take(done));
        }
        if st.queue.is_empty() {
            return false;
        }
        std::mem::swap(&mut st.queue, &mut *ready);
        self.publish_len(&st);
        let Some(entry) = ready.pop_front() else { return false };
        let wake = if ready.is_empty() { Wake::None } else { self.wake_locked(&mut st) };
        self.publish_ready(&ready);
        drop(st);
        drop(ready);
        self.signal(wake);
        self.run_taken(entry, done)
    }

    #[inline]
    fn run_taken(self: &Arc<Self>, entry: Queued, done: &mut usize) -> bool {
        // ORDERING: a progress counter for the overseer; orders nothing.
        self.started.fetch_add(1, Ordering::Relaxed);
        self.run_entry(entry);
        *done += 1;
        true
    }

    /// Run one popped entry and account for it (the worker's inner step, and
    /// the loom model's "worker" step).
    pub(crate) fn run_entry(self: &Arc<Self>, entry: Queued) {
        match entry {
            Queued::Task(e) => self.guarded((), || e.task.run(e.ticket, self)),
            Queued::Spawned(c) => self.guarded((), || c.run(self)),
            // NOTE: nobody waits for an executed closure: a panic of it (or
            // of its captures' destructors) is caught and counted here, and
            // its result, `()`, needs no box.
            Queued::Call(f) => self.guarded((), || drop(f.call())),
        }
        self.stats.jobs_run.inc();
    }

    /// Call a [`Task`] method: a panic that escapes it (a user destructor;
    /// the functions themselves are caught by the tasks) is caught, counted
    /// in `panics`, and answered with `on_panic`.
    #[inline]
    pub(crate) fn guarded<R>(&self, on_panic: R, f: impl FnOnce() -> R) -> R {
        match crate::error::catch_unwind(f) {
            Ok(r) => r,
            Err(payload) => self.caught_slow(payload, on_panic),
        }
    }

    #[cold]
    fn caught_slow<R>(&self, payload: Box<dyn std::any::Any + Send>, on_panic: R) -> R {
        self.stats.panics.inc();
        crate::error::drop_payload(payload);
        on_panic
    }

    /// The loom model's worker step: run one entry, if any, through the
    /// workers' own path (`take_work`), and settle it.
    #[cfg(loom)]
    pub(crate) fn step(self: &Arc<Self>) -> bool {
        let mut done = 0;
        let ran = self.take_work(&mut done);
        if done > 0 {
            let mut st = self.state.lock();
            self.finish_many_locked(&mut st, done);
        }
        ran
    }

    /// The loom model's overseer step: promote every delayed entry now.
    #[cfg(loom)]
    pub(crate) fn promote_all(self: &Arc<Self>) {
        let due: Vec<Entry> = std::mem::take(&mut self.state.lock().delayed).into_values().collect();
        for e in due {
            if !self.guarded(false, || e.task.promote(e.ticket, self)) {
                self.finish();
            }
        }
    }

    fn worker_main(self: Arc<Self>, me: Arc<Parker>) {
        self.setup_thread();
        let mut spun = false;
        let mut done = 0;
        // This worker's spin budget (see "Spinning" in the module essay).
        let mut budget = self.cfg.spin;
        loop {
            if self.take_work(&mut done) {
                spun = false;
                continue;
            }
            // `take_work` found both queues empty and settled `done`.
            let st = self.state.lock();
            if !st.queue.is_empty() || self.ready_nonempty() {
                continue; // work arrived meanwhile
            }
            if st.dying {
                self.exit_locked(st);
                return;
            }
            if !spun {
                // Look again after spinning: the queues, then `dying`.
                drop(self.spin(st, budget));
                spun = true;
                continue;
            }
            spun = false;
            let slept = Instant::now();
            match self.idle_slow(st, &me) {
                Some(st) => drop(st),
                None => return,
            }
            budget = next_budget(budget, self.cfg.spin, slept.elapsed());
        }
    }

    /// Poll the queue briefly (`cfg.spin`, a few tens of microseconds)
    /// before going to sleep: a job that arrives meanwhile is taken without
    /// a futex wake on either side. Bounded, so an idle pool still costs
    /// nothing; pushers see `spinning` and wake nobody.
    fn spin<'a>(&'a self, mut st: MutexGuard<'a, State>, budget: Duration) -> MutexGuard<'a, State> {
        if budget.is_zero() {
            return st;
        }
        st.spinning += 1;
        drop(st);
        let start = Instant::now();
        let mut polls = 0u32;
        // ORDERING: a hint; see `publish_len`.
        while self.queued.load(Ordering::Relaxed) == 0 && !self.ready_nonempty() {
            polls += 1;
            // NOTE: the queue is polled every `POLL_PAUSES` pauses, the
            // clock read every `CLOCK_POLLS` polls (on a VM one read costs
            // about as much as a poll's pauses), and the CPU offered to
            // others every `YIELD_POLLS` polls.
            if polls.is_multiple_of(CLOCK_POLLS) {
                if start.elapsed() >= budget {
                    break;
                }
                if polls.is_multiple_of(YIELD_POLLS) {
                    percore_cpu::loom::yield_now();
                    continue;
                }
            }
            for _ in 0..POLL_PAUSES {
                std::hint::spin_loop();
            }
        }
        let mut st = self.state.lock();
        st.spinning -= 1;
        st
    }

    /// Sleep until woken, the pool dies, or the idle timeout passes (then
    /// leave: `None`).
    #[cold]
    fn idle_slow<'a>(&'a self, mut st: MutexGuard<'a, State>, me: &Arc<Parker>) -> Option<MutexGuard<'a, State>> {
        if st.dying {
            return Some(st);
        }
        // ORDERING: `woken` is only touched under the pool lock.
        me.woken.store(false, Ordering::Relaxed);
        st.idle.push(me.clone());
        self.stats.set_idle(st.idle.len());
        let start = Instant::now();
        loop {
            let left = self.cfg.idle_timeout.saturating_sub(start.elapsed());
            st = me.cv.wait_timeout(st, left);
            if me.woken.load(Ordering::Relaxed) {
                st.waking -= 1;
                return Some(st);
            }
            if start.elapsed() >= self.cfg.idle_timeout {
                // Timed out and nobody woke us: leave the idle stack and exit.
                st.idle.retain(|p| !Arc::ptr_eq(p, me));
                self.stats.set_idle(st.idle.len());
                self.exit_locked(st);
                return None;
            }
        }
    }

    fn exit_locked(&self, mut st: MutexGuard<'_, State>) {
        st.threads -= 1;
        self.stats.set_threads(st.threads);
        self.stats.threads_exited.inc();
        if st.dying {
            // The destroyer waits for the threads; the overseer, once the
            // pool is dying, for the queues to empty before it leaves.
            self.drain_cv.notify_all();
            self.overseer_cv.notify_one();
        }
        drop(st);
        CURRENT.with(|c| c.set(0));
    }

    /// Name, pin and prioritise the calling pool thread.
    fn setup_thread(&self) {
        CURRENT.with(|c| c.set(self as *const PoolCore as usize));
        if let Some(cpu) = self.cfg.cpu {
            if percore_cpu::pin_current(cpu).is_err() {
                self.stats.pin_errors.inc();
            }
        }
        if let Some(nice) = crate::priority::nice_of(self.cfg.pri) {
            self.stats.priority_result(crate::sys::set_nice(nice).is_ok());
        }
    }

    // ----- the overseer -----

    /// Start the overseer thread.
    pub(crate) fn start(self: &Arc<Self>) -> Result<(), crate::Error> {
        self.state.lock().overseer_alive = true;
        let core = self.clone();
        let name = format!("poolover/{}", self.cfg.name);
        let spawned = std::thread::Builder::new()
            .name(crate::sys::thread_name(&name).to_string_lossy().into_owned())
            .spawn(move || core.overseer_main());
        if let Err(e) = spawned {
            self.state.lock().overseer_alive = false;
            return Err(crate::Error::Spawn(e));
        }
        Ok(())
    }

    fn overseer_main(self: Arc<Self>) {
        self.setup_thread();
        let mut st = self.state.lock();
        let mut seen_started: Option<u64> = None;
        loop {
            let now = Instant::now();
            if st.delayed.first_key_value().is_some_and(|((d, _), _)| *d <= now || st.dying) {
                st = self.promote_slow(st, now);
                continue;
            }
            let work = !st.queue.is_empty() || self.ready_nonempty();
            if st.dying && !work {
                break;
            }
            let backlog = work && st.idle.is_empty() && st.waking == 0 && st.spinning == 0;
            // ORDERING: a progress counter; see `run_taken`.
            let started = self.started.load(Ordering::Relaxed);
            if backlog && st.threads < self.cfg.max_threads {
                if st.threads < self.cfg.eager_threads || seen_started == Some(started) {
                    seen_started = None;
                    st = self.spawn_worker_slow(st);
                } else {
                    // Workers are busy and making progress: look again after
                    // a stall interval (only while work is queued).
                    seen_started = Some(started);
                    st = self.overseer_cv.wait_timeout(st, self.cfg.stall);
                }
                continue;
            }
            seen_started = None;
            st.kicked = false;
            st = match st.delayed.first_key_value() {
                Some(((deadline, _), _)) => {
                    let left = deadline.saturating_duration_since(now);
                    self.overseer_cv.wait_timeout(st, left)
                }
                None => self.overseer_cv.wait(st),
            };
        }
        st.overseer_alive = false;
        self.drain_cv.notify_all();
        drop(st);
        CURRENT.with(|c| c.set(0));
    }

    /// Move due delayed entries to the queue (or, when dying, cancel them),
    /// re-checking each under its job's lock with the pool lock released.
    #[cold]
    fn promote_slow<'a>(self: &'a Arc<Self>, mut st: MutexGuard<'a, State>, now: Instant) -> MutexGuard<'a, State> {
        let mut due = Vec::new();
        let dying = st.dying;
        while let Some(first) = st.delayed.first_entry() {
            if !dying && first.key().0 > now {
                break;
            }
            due.push(first.remove());
        }
        drop(st);
        for e in due {
            // NOTE: a panicking promote can only be the drop of the task's
            // last reference, after it decided not to queue: `false`.
            if dying {
                self.guarded((), || e.task.shutdown(e.ticket));
                self.stats.shutdown_cancelled.inc();
                self.finish();
            } else if !self.guarded(false, || e.task.promote(e.ticket, self)) {
                self.finish();
            }
        }
        self.state.lock()
    }

    #[cold]
    fn spawn_worker_slow<'a>(self: &'a Arc<Self>, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.threads += 1;
        self.stats.set_threads(st.threads);
        drop(st);
        let me = Arc::new(Parker { cv: Condvar::new(), woken: AtomicBool::new(false) });
        let core = self.clone();
        let spawned = std::thread::Builder::new()
            .name(self.base_name.to_string_lossy().into_owned())
            .spawn(move || core.worker_main(me));
        let mut st = self.state.lock();
        match spawned {
            Ok(_) => self.stats.threads_created.inc(),
            Err(_) => {
                st.threads -= 1;
                self.stats.set_threads(st.threads);
                self.stats.spawn_errors.inc();
                // The seed's kpause: wait a little before trying again.
                st = self.overseer_cv.wait_timeout(st, Duration::from_millis(10));
            }
        }
        st
    }

    // ----- drain and shutdown -----

    /// Wait until `pending` is zero, at most `timeout` (`None`: forever).
    pub(crate) fn drain(&self, timeout: Option<Duration>) -> Result<(), crate::Error> {
        if self.is_current() {
            return Err(crate::Error::WouldDeadlock);
        }
        let start = Instant::now();
        let mut st = self.state.lock();
        st.drain_waiters += 1;
        let res = loop {
            if st.pending == 0 {
                break Ok(());
            }
            st = match timeout {
                None => self.drain_cv.wait(st),
                Some(t) => {
                    let left = t.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        break Err(crate::Error::Timeout);
                    }
                    self.drain_cv.wait_timeout(st, left)
                }
            };
        };
        st.drain_waiters -= 1;
        res
    }

    /// Mark the pool dying, wake everybody, and (unless called from one of
    /// the pool's own threads) wait until every thread has left. Queued work
    /// runs first; delayed work is cancelled and its owners told.
    pub(crate) fn shutdown(&self) {
        let mut st = self.state.lock();
        st.dying = true;
        let idle = std::mem::take(&mut st.idle);
        for p in &idle {
            st.waking += 1;
            // ORDERING: under the pool lock, like every access to `woken`.
            p.woken.store(true, Ordering::Relaxed);
        }
        self.stats.set_idle(0);
        drop(st);
        for p in &idle {
            p.cv.notify_one();
        }
        self.overseer_cv.notify_one();
        if self.is_current() {
            // A job dropped the last handle of its own pool: the threads
            // finish the queue and leave by themselves.
            return;
        }
        let mut st = self.state.lock();
        st.drain_waiters += 1;
        while st.threads > 0 || st.overseer_alive {
            st = self.drain_cv.wait(st);
        }
        st.drain_waiters -= 1;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::next_budget;
    use std::time::Duration;

    #[test]
    fn the_spin_budget_halves_for_far_apart_jobs_stops_below_a_sixteenth_and_comes_back_for_close_ones() {
        let spin = Duration::from_micros(50);
        let far = Duration::from_millis(1);
        let mut b = spin;
        let mut seen = vec![b];
        for _ in 0..6 {
            b = next_budget(b, spin, far);
            seen.push(b);
        }
        let us: Vec<u128> = seen.iter().map(|d| d.as_nanos()).collect();
        assert_eq!(us, [50_000, 25_000, 12_500, 6_250, 3_125, 0, 0]);
        assert_eq!(b, Duration::ZERO, "far-apart jobs: no spin at all");
        assert_eq!(next_budget(b, spin, 4 * spin), spin, "woken soon: the full spin again");
        assert_eq!(next_budget(b, spin, 4 * spin + Duration::from_nanos(1)), b, "woken late: still none");
        assert_eq!(next_budget(spin / 16, spin, far), Duration::ZERO, "half of a sixteenth is none");
        assert_eq!(next_budget(Duration::ZERO, Duration::ZERO, far), Duration::ZERO, "no spin stays none");
    }
}
