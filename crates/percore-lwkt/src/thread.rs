//! Uthreads: the thread record, its park word, join and the public handle.
//!
//! A uthread is an `Arc<Thread>`. Its scheduling state ([`Sched`]) belongs to
//! the worker named by `owner` and is touched by that worker's OS thread only
//! (the uthread itself runs there too); other threads reach it by sending the
//! owner an IPI. Only three fields are shared: `owner` (changed by migration),
//! `park` (the wake-up word) and the priority mirror.
//!
//! ## Park word
//!
//! | value | meaning |
//! | --- | --- |
//! | `EMPTY` | running, no wake-up pending |
//! | `PARKED` | blocked, or about to switch out to block |
//! | `NOTIFIED` | a wake-up arrived that the uthread has not consumed |
//!
//! `unpark` swaps in `NOTIFIED`; only the waker that replaces `PARKED`
//! schedules the uthread, so a uthread is put back on a run queue at most
//! once per block. A schedule that reaches the owner while the uthread is
//! still running (it set `PARKED` but has not switched out) sets `resched`,
//! and the switch-out then queues it instead of blocking it: DragonFly's
//! "the target cpu will deal with it" in `_lwkt_schedule`.

use crate::error::{Error, JoinError};
use crate::port::Port;
use crate::runtime::Shared;
use crate::sys::Stack;
use crate::token::TokenList;
use crate::worker::{current_worker, send, Msg};
use corosensei::{Coroutine, Yielder};
use percore_cpu::loom::Ordering::{AcqRel, Acquire, Relaxed, Release};
use percore_cpu::loom::{Arc, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, UnsafeCell};
use std::time::Instant;

pub(crate) type Coro = Coroutine<(), (), (), Stack>;

const EMPTY: u32 = 0;
const PARKED: u32 = 1;
const NOTIFIED: u32 = 2;

/// Where a uthread is, from its owner's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    /// Created, not yet on a run queue.
    New,
    /// On the owner's run queue.
    Queued,
    /// The owner's current uthread.
    Running,
    /// Descheduled, waiting for a wake-up.
    Blocked,
    /// Switched out, in flight to another worker.
    Migrating,
    /// Finished; its stack is reaped.
    Dead,
}

/// What a uthread asks of the scheduler when it switches out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Back on the run queue, behind its equal-priority peers.
    Yield,
    /// Back on the run queue, ahead of its peers (token contention).
    YieldFront,
    /// Descheduled until a wake-up.
    Block,
    /// Move to another worker.
    Migrate(usize),
}

/// Owner-only scheduling state.
pub(crate) struct Sched {
    /// Set by the coroutine body when it starts; valid while it lives.
    pub(crate) yielder: *const Yielder<(), ()>,
    pub(crate) state: RunState,
    /// A wake-up arrived while it was running.
    pub(crate) resched: bool,
    pub(crate) pri: u8,
    pub(crate) intent: Intent,
    pub(crate) tokens: TokenList,
    /// Index in the owner's list of all uthreads (`gd_tdallq`).
    pub(crate) allq_idx: usize,
    /// Being unwound by runtime shutdown.
    pub(crate) cancelled: bool,
    /// The uthread's critical-section depth while it is switched out
    /// (saved and restored by the worker around each resume). A critical
    /// section belongs to the uthread, not to the worker (issue 16).
    pub(crate) crit: u32,
    /// Inside `migrate`: set by the uthread before it switches out, cleared
    /// when it runs again (on its target). While set, `give_away` refuses
    /// (`NotDescheduled`), so `migrate` returns where it was asked to.
    pub(crate) migrating: bool,
}

/// A uthread.
pub(crate) struct Thread {
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    pub(crate) shared: Arc<Shared>,
    /// Owning worker. Stored by the old owner's scheduler when it migrates the
    /// uthread (after the switch-out), read by wakers.
    pub(crate) owner: AtomicUsize,
    park: AtomicU32,
    pri: AtomicU32,
    holds: AtomicUsize,
    /// The armed timer: `(worker << 48) | seq` of its heap entry, 0 if none.
    /// Written by the uthread itself, read by the worker holding the entry.
    timer: AtomicU64,
    pub(crate) port: Port,
    /// Its stack's guard range and usable size, for the overflow handler
    /// (`sys/overflow.rs`); set before the uthread is shared, then immutable.
    pub(crate) stack: ((usize, usize), usize),
    /// The watchdog has reported this uthread's stall (`watchdog.rs`).
    pub(crate) stall_logged: AtomicBool,
    sched: UnsafeCell<Sched>,
    /// The coroutine. Owner-only like `sched`, but a separate cell: the
    /// scheduler holds it mutably across `resume` while the uthread uses
    /// `sched`.
    coro: UnsafeCell<Option<Coro>>,
}

// SAFETY: `sched` is only touched by the owning worker's OS thread (see the
// module doc); everything else is atomic or immutable.
unsafe impl Send for Thread {}
// SAFETY: as above.
unsafe impl Sync for Thread {}

impl Thread {
    pub(crate) fn new(id: u64, name: Option<Box<str>>, shared: Arc<Shared>, owner: usize, pri: u8) -> Thread {
        Thread {
            id,
            name,
            shared,
            owner: AtomicUsize::new(owner),
            park: AtomicU32::new(EMPTY),
            pri: AtomicU32::new(u32::from(pri)),
            holds: AtomicUsize::new(0),
            timer: AtomicU64::new(0),
            port: Port::default(),
            stack: ((0, 0), 0),
            stall_logged: AtomicBool::new(false),
            coro: UnsafeCell::new(None),
            sched: UnsafeCell::new(Sched {
                yielder: std::ptr::null(),
                state: RunState::New,
                resched: false,
                pri,
                intent: Intent::Yield,
                tokens: TokenList::default(),
                allq_idx: usize::MAX,
                cancelled: false,
                crit: 0,
                migrating: false,
            }),
        }
    }

    /// The owner-only state.
    ///
    /// # Safety
    ///
    /// The caller runs on the owning worker's OS thread (or holds the only
    /// reference), and no other reference from `sched` is live.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn sched(&self) -> &mut Sched {
        // SAFETY: forwarded from the caller.
        self.sched.with_mut(|p| unsafe { &mut *p })
    }

    /// The coroutine slot.
    ///
    /// # Safety
    ///
    /// As for [`Thread::sched`], for the `coro` cell.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn coro(&self) -> &mut Option<Coro> {
        // SAFETY: forwarded from the caller.
        self.coro.with_mut(|p| unsafe { &mut *p })
    }

    pub(crate) fn set_pri_mirror(&self, p: u8) {
        self.pri.store(u32::from(p), Relaxed);
    }

    pub(crate) fn arm_timer(&self, worker: usize, seq: u64) {
        // ORDERING: relaxed: a stale read only costs a spurious unpark, which
        // every waiter tolerates, or keeps a stale entry until it expires.
        self.timer.store(((worker as u64) << 48) | (seq & ((1 << 48) - 1)), Relaxed);
    }

    pub(crate) fn timer_armed(&self, worker: usize, seq: u64) -> bool {
        self.timer.load(Relaxed) == ((worker as u64) << 48) | (seq & ((1 << 48) - 1))
    }

    pub(crate) fn disarm_timer(&self) {
        self.timer.store(0, Relaxed);
    }

    /// Wake the uthread if it is parked (any thread may call this).
    pub(crate) fn unpark(self: &Arc<Self>) {
        // ORDERING: release publishes whatever the waker changed before the
        // wake-up; acquire pairs with the release CAS to `PARKED` in `park`,
        // so the `owner` read in `schedule` is the one the uthread parked on.
        if self.park.swap(NOTIFIED, AcqRel) == PARKED {
            schedule(self.clone());
        }
    }

    /// [`Thread::unpark`], reusing the caller's reference for the schedule
    /// IPI instead of taking another.
    pub(crate) fn unpark_owned(self: Arc<Self>) {
        // ORDERING: as in `unpark`.
        if self.park.swap(NOTIFIED, AcqRel) == PARKED {
            schedule(self);
        }
    }

    /// Consume a pending wake-up. Returns whether there was one.
    #[inline]
    pub(crate) fn take_notified(&self) -> bool {
        // NOTE: a plain load first: a failing compare-exchange is still a
        // locked instruction, and the common case is "no wake-up pending".
        // ORDERING: relaxed: a stale `EMPTY` only sends us on to
        // `prepare_park`, whose compare-exchange sees the real value.
        if self.park.load(Relaxed) != NOTIFIED {
            return false;
        }
        // ORDERING: acquire pairs with the release half of `unpark`'s swap.
        self.park.compare_exchange(NOTIFIED, EMPTY, Acquire, Relaxed).is_ok()
    }

    /// Announce the switch-out to block. Fails if a wake-up arrived meanwhile
    /// (it is consumed).
    #[inline]
    pub(crate) fn prepare_park(&self) -> bool {
        // ORDERING: release pairs with the acquire in `unpark` (see there).
        match self.park.compare_exchange(EMPTY, PARKED, Release, Acquire) {
            Ok(_) => true,
            Err(_) => {
                // NOTE: a swap, not a store: a second `unpark` landing after
                // the failed compare-exchange would otherwise be erased
                // without our acquiring its release (see `finish_park`).
                // ORDERING: acquire pairs with the release of the latest
                // `unpark` swap.
                self.park.swap(EMPTY, Acquire);
                false
            }
        }
    }

    /// After being resumed from a block.
    #[inline]
    pub(crate) fn finish_park(&self) {
        // NOTE: this must stay a read-modify-write. A load and a store
        // would let an `unpark` land between them unseen: its notification
        // erased without our acquiring its release, so its waiter's
        // condition could read stale and the uthread park for good.
        // ORDERING: acquire pairs with the waker's release in `unpark`.
        self.park.swap(EMPTY, Acquire);
    }
}

/// Make `t` runnable on its owner, from anywhere (`lwkt_schedule`).
pub(crate) fn schedule(t: Arc<Thread>) {
    let owner = t.owner.load(Acquire);
    // Fast path, a local wake-up: handled at once, as `send` would, without
    // the `Arc<Shared>` clone that `send` needs for a message moving `t`.
    if let Some(w) = current_worker().filter(|w| w.idx == owner && Arc::ptr_eq(&w.shared, &t.shared)) {
        w.crit.set(w.crit.get() + 1);
        w.handle(Msg::Schedule(t));
        w.crit.set(w.crit.get() - 1);
        return;
    }
    let shared = t.shared.clone();
    send(&shared, owner, Msg::Schedule(t));
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other reference to the cell exists.
        if let Some(c) = self.coro.with_mut(|p| unsafe { (*p).take() }) {
            if c.started() && !c.done() {
                // NOTE: a suspended coroutine is only ever dropped by its
                // owner at shutdown (it is unwound there). Should one escape,
                // leaking its stack is the sound choice: unwinding it here
                // would run its destructors on a foreign thread, and freeing
                // it unwound would break `Pin`'s drop guarantee.
                std::mem::forget(c);
            }
        }
    }
}

/// Something that can wait and be woken: a uthread, a foreign OS thread,
/// or an async task (a [`JoinHandle`] polled as a `Future`).
#[derive(Clone)]
pub(crate) enum Waiter {
    U(Arc<Thread>),
    Os(std::thread::Thread),
    Task(std::task::Waker),
}

impl Waiter {
    /// The caller, as a waiter.
    pub(crate) fn current() -> Waiter {
        match crate::worker::current_thread() {
            Some(t) => Waiter::U(t),
            None => Waiter::Os(std::thread::current()),
        }
    }

    /// Wake it, consuming this reference (no extra reference count traffic
    /// on the hand-off path).
    pub(crate) fn wake(self) {
        match self {
            Waiter::U(t) => t.unpark_owned(),
            Waiter::Os(t) => t.unpark(),
            Waiter::Task(w) => w.wake(),
        }
    }
}

impl std::task::Wake for Waiter {
    fn wake(self: Arc<Self>) {
        Waiter::wake(Arc::unwrap_or_clone(self));
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Waiter::wake((**self).clone());
    }
}

/// Block the caller (uthread or OS thread) once, until woken or `deadline`.
/// Spurious returns are allowed; callers loop on their condition.
#[inline]
pub(crate) fn wait_once(deadline: Option<Instant>) -> Result<(), Error> {
    match crate::worker::park_current(deadline) {
        Err(Error::NotUthread) => {
            match deadline {
                None => std::thread::park(),
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(Instant::now())),
            }
            Ok(())
        }
        r => r,
    }
}

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
                _ if registered => wait_once(None)?,
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
        use std::task::Poll;
        loop {
            match self.state.load(Acquire) {
                DONE => {
                    // SAFETY: as in `wait`.
                    return Poll::Ready(self.value.with_mut(|p| unsafe { (*p).take() }).ok_or(Error::Shutdown));
                }
                OPEN => {
                    // SAFETY: before `WAITING` only the waiter touches it.
                    self.waiter.with_mut(|p| unsafe { *p = Some(Waiter::Task(cx.waker().clone())) });
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

/// A handle to a uthread: its identity, and a reference that keeps its
/// record alive (`lwkt_hold`).
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let id = rt.block_on(|| percore_lwkt::current().unwrap().id()).unwrap();
/// assert!(id > 0);
/// ```
#[derive(Clone)]
pub struct Uthread(pub(crate) Arc<Thread>);

impl Uthread {
    /// A process-unique id (never 0).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The name given with [`Builder::name`](crate::Builder::name).
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    /// The uthread's priority (higher runs first).
    pub fn priority(&self) -> u8 {
        self.0.pri.load(Relaxed) as u8
    }

    /// The worker that owns it now (migration changes it).
    pub fn worker(&self) -> usize {
        self.0.owner.load(Acquire)
    }

    /// Take a hold reference (`lwkt_hold`): the uthread's record stays valid
    /// while it is held, whatever the uthread does. Return it with
    /// [`Uthread::release`].
    pub fn hold(&self) -> Uthread {
        self.0.holds.fetch_add(1, Relaxed);
        self.clone()
    }

    /// Give back a reference taken with [`Uthread::hold`] (`lwkt_rele`).
    pub fn release(self) {
        // ORDERING: relaxed: the count is informational; the `Arc` keeps the
        // record alive.
        let _ = self.0.holds.fetch_update(Relaxed, Relaxed, |h| h.checked_sub(1));
    }

    /// Hold references currently taken.
    pub fn holds(&self) -> usize {
        self.0.holds.load(Relaxed)
    }

    /// Wake the uthread if it is [`park`](crate::park)ed, or make its next
    /// `park` return at once (`lwkt_schedule`). Any thread may call it.
    pub fn unpark(&self) {
        self.0.unpark();
    }

    /// Change the uthread's priority (`lwkt_setpri`). Takes effect when its
    /// owner next processes IPIs; it does not force a switch.
    pub fn set_priority(&self, pri: u8) -> Result<(), Error> {
        if pri > crate::MAX_PRIORITY {
            return Err(Error::BadPriority(pri));
        }
        self.0.set_pri_mirror(pri);
        let owner = self.0.owner.load(Acquire);
        crate::worker::send(&self.0.shared, owner, crate::worker::Msg::SetPri(self.0.clone(), pri));
        Ok(())
    }
}

impl PartialEq for Uthread {
    fn eq(&self, o: &Uthread) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Uthread {}

impl std::fmt::Debug for Uthread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uthread")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("worker", &self.worker())
            .finish()
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
            crate::worker::check_may_block().map_err(JoinError::Wait)?;
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
