//! # Event queues: mailboxes that uthreads block on, one or several at once
//!
//! Akaros delivers every asynchronous notification (a finished system call,
//! an alarm, an I/O readiness) as a small message on an *event queue*, and a
//! uthread blocks on one or several queues at once
//! (`uth_blockon_evqs(&msg, &which, n, q1, q2, ...)`). This module is that,
//! for uthreads and foreign threads alike:
//!
//! * [`EventQueue`]: a FIFO of [`Event`]s (a kind plus a 64-bit payload);
//! * [`Ceq`]: a *coalescing* queue (Akaros CEQ): events carry an id in
//!   `0..ids`, and events for the same id merge into one slot (OR of bits,
//!   sum, or last value) until taken, so many sources cost one slot each;
//! * [`wait_any`]: block on several queues with an optional timeout; get the
//!   event and the index of the queue it came from, or [`Error::TimedOut`].
//!
//! ## Wake-ups: one per event, never lost
//!
//! Each queue is a mutex-protected state plus a FIFO of waiting *slots*. A
//! waiter makes one slot (its thread and a `claimed` flag) and links it on
//! every queue it waits on, after checking under each lock that the queue is
//! empty (a closed, empty queue is skipped: nothing will come from it; if
//! every queue is, the wait ends with [`Error::Closed`]). A post links the
//! event, then pops slots until it *claims* one (`claimed.swap(true)`
//! returned false: a slot already claimed by another queue's post is
//! skipped) and wakes it: one wake-up per event, not a
//! thundering herd. A woken waiter takes from the first non-empty queue, which
//! may not be the one that claimed it; so every waiter, on its way out,
//! hands on: any queue it waited on that still holds events and has waiters
//! wakes one of them. An event therefore never sits in a queue while a
//! waiter sleeps on it.
//!
//! Each event is taken exactly once, under its queue's lock.
//!
//! ## Checked three ways
//!
//! Unit and integration tests (`tests/event_queue.rs`, `tests/ceq.rs`), the
//! stress tests there, and a loom model, `tests/loom_queue.rs`: this file
//! compiles under `--cfg loom` unchanged, its lock, `claimed` flag, `Arc` and
//! slot cache coming from `percore_cpu::loom` and its waiters being loom threads
//! (`percore_lwkt::Waiter` in its loom form). The models cover a post against a waiter (no lost
//! wake-up: loom reports one as a deadlock), two waiters and two posts
//! (each event once), `wait_any` on an [`EventQueue`] and a [`Ceq`] posted
//! from two threads (one taken, the other still there), the hand-on to a
//! second waiter, and close and a (zero) timeout racing a wait. Linking in a
//! second lock section after the emptiness check, dropping the hand-on,
//! the last look after a timeout, or close's wake-ups each make a model
//! fail. NOTE: the claim-skipping in `claim_one` is not needed for
//! liveness (the hand-on covers a wake-up spent on a claimed slot); it keeps
//! wake-ups to one per event.

use crate::error::Error;
use crate::stats::stats;
use crate::wait;
use percore_cpu::loom::{Arc, AtomicBool, Mutex, MutexGuard};
use percore_lwkt::Waiter;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::time::Duration;

/// A small event message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Event {
    /// What happened (for a [`Ceq`]: the id).
    pub kind: u32,
    /// Its argument (for a [`Ceq`]: the coalesced value).
    pub payload: u64,
}

impl Event {
    /// An event of `kind` with `payload`.
    pub const fn new(kind: u32, payload: u64) -> Event {
        Event { kind, payload }
    }
}

use sealed::{Slot, Take};

impl Slot {
    fn claim(&self) -> bool {
        // ORDERING: AcqRel: the winner's wake-up happens after the event is
        // linked (the queue lock orders that too); losers see the claim.
        !self.claimed.swap(true, AcqRel)
    }
}

#[derive(Default)]
struct Waiters(VecDeque<Arc<Slot>>);

impl Waiters {
    /// Claim the first unclaimed slot; returns its waiter to wake after
    /// unlocking.
    fn claim_one(&mut self) -> Option<Arc<Slot>> {
        while let Some(s) = self.0.pop_front() {
            if s.claim() {
                return Some(s);
            }
        }
        None
    }

    fn remove(&mut self, slot: &Arc<Slot>) {
        self.0.retain(|s| !Arc::ptr_eq(s, slot));
    }
}

/// The queue operations [`wait_any`] needs; implemented by [`EventQueue`]
/// and [`Ceq`] (sealed).
pub trait Queue: sealed::Sealed {
    /// Take the next event, if any, without blocking.
    fn try_recv(&self) -> Option<Event>;
    /// Whether the queue is closed (it then delivers what it holds, then
    /// [`Error::Closed`]).
    fn is_closed(&self) -> bool;
}

mod sealed {
    use percore_cpu::loom::{Arc, AtomicBool};

    /// A waiter's registration, shared by every queue it waits on.
    pub struct Slot {
        /// Whom to wake: written by the owning waiter only while nobody
        /// else holds the slot (`SlotCache::reset`, `Arc::get_mut`), read
        /// by the post (or close) that claims it.
        pub(super) waiter: super::Waiter,
        /// Whether a post (or close) took this wait's one wake-up: swapped
        /// by posters (`Slot::claim`), read by the waiter.
        pub(super) claimed: AtomicBool,
    }

    /// What [`Sealed::take_or_link`] did.
    pub enum Take {
        Event(super::Event),
        Closed,
        Linked,
    }

    pub trait Sealed {
        /// Under one lock: take an event, or report the queue closed, or
        /// link `slot` as a waiter.
        fn take_or_link(&self, slot: &Arc<Slot>) -> Take;
        fn unlink(&self, slot: &Arc<Slot>);
        /// Wake one waiter if events are left (the hand-on).
        fn hand_on(&self);
    }
}

/// What a queue stores: FIFO events, or coalescing per-id slots.
trait Store {
    /// Take the next event.
    fn pop(&mut self) -> Option<Event>;
    /// Whether an event is waiting.
    fn has_events(&self) -> bool;
}

/// What a mailbox holds under its lock. Every field is touched only with
/// the lock held.
struct Contents<S> {
    /// The events: posters add, waiters (and `try_recv`) take.
    store: S,
    /// The waiting slots, in arrival order: linked by waiters
    /// (`take_or_link`), popped by a post that claims one and by `close`,
    /// removed by a waiter that leaves (`unlink`).
    waiters: Waiters,
    /// Set once by `close`, never cleared: posts then fail, and a waiter
    /// finding the store empty does not link.
    closed: bool,
}

/// A queue's mailbox: the one state that every handle of an
/// [`EventQueue`] or [`Ceq`] shares, its [`Contents`] under one lock. Both
/// queue types are this, with their own store.
struct Mailbox<S>(Mutex<Contents<S>>);

impl<S: Store> Mailbox<S> {
    fn new(store: S) -> Arc<Mailbox<S>> {
        Arc::new(Mailbox(Mutex::new(Contents { store, waiters: Waiters::default(), closed: false })))
    }

    fn lock(&self) -> MutexGuard<'_, Contents<S>> {
        self.0.lock()
    }

    /// Run `put` on the store under the lock (it returns whether a new
    /// event became takeable), then wake one waiter for it.
    fn post(&self, put: impl FnOnce(&mut S) -> Result<bool, Error>) -> Result<(), Error> {
        let w = {
            let mut m = self.lock();
            if m.closed {
                return Err(Error::Closed);
            }
            if put(&mut m.store)? {
                m.waiters.claim_one()
            } else {
                None
            }
        };
        stats().posted.inc();
        if let Some(w) = w {
            stats().wakeups.inc();
            w.waiter.wake_by_ref();
        }
        Ok(())
    }

    fn close(&self) {
        let ws = {
            let mut m = self.lock();
            m.closed = true;
            std::mem::take(&mut m.waiters.0)
        };
        for w in ws {
            if w.claim() {
                w.waiter.wake_by_ref();
            }
        }
    }

    fn try_recv(&self) -> Option<Event> {
        let e = self.lock().store.pop();
        if e.is_some() {
            stats().delivered.inc();
        }
        e
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn take_or_link(&self, slot: &Arc<Slot>) -> Take {
        let mut m = self.lock();
        if let Some(e) = m.store.pop() {
            drop(m);
            stats().delivered.inc();
            return Take::Event(e);
        }
        if m.closed {
            return Take::Closed;
        }
        m.waiters.0.push_back(slot.clone());
        Take::Linked
    }

    fn unlink(&self, slot: &Arc<Slot>) {
        self.lock().waiters.remove(slot);
    }

    fn hand_on(&self) {
        let w = {
            let mut m = self.lock();
            if !m.store.has_events() {
                return;
            }
            m.waiters.claim_one()
        };
        if let Some(w) = w {
            stats().wakeups.inc();
            w.waiter.wake_by_ref();
        }
    }
}

/// `Queue` and its sealed half for a handle type with an `inner: Arc<Mailbox<_>>`.
macro_rules! queue_impls {
    ($t:ty) => {
        impl Queue for $t {
            fn try_recv(&self) -> Option<Event> {
                self.inner.try_recv()
            }
            fn is_closed(&self) -> bool {
                self.inner.is_closed()
            }
        }
        impl sealed::Sealed for $t {
            fn take_or_link(&self, slot: &Arc<Slot>) -> Take {
                self.inner.take_or_link(slot)
            }
            fn unlink(&self, slot: &Arc<Slot>) {
                self.inner.unlink(slot)
            }
            fn hand_on(&self) {
                self.inner.hand_on()
            }
        }
    };
}

impl Store for VecDeque<Event> {
    fn pop(&mut self) -> Option<Event> {
        self.pop_front()
    }
    fn has_events(&self) -> bool {
        !self.is_empty()
    }
}

/// A FIFO event queue (an Akaros `event_queue` with an unbounded mailbox).
/// Cloning gives another handle to the same queue. Any thread may post;
/// uthreads and foreign threads may wait.
///
/// ```
/// use percore_evq::{Event, EventQueue};
/// use std::time::Duration;
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let q = EventQueue::new();
/// let q2 = q.clone();
/// let h = rt.spawn(move || q2.recv(Some(Duration::from_secs(30)))).unwrap();
/// q.post(Event::new(1, 99)).unwrap();
/// assert_eq!(h.join().unwrap().unwrap(), Event::new(1, 99));
/// ```
#[derive(Clone)]
pub struct EventQueue {
    inner: Arc<Mailbox<VecDeque<Event>>>,
}

impl Default for EventQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.inner.lock();
        f.debug_struct("EventQueue").field("len", &m.store.len()).field("closed", &m.closed).finish()
    }
}

impl EventQueue {
    /// An empty, open queue.
    pub fn new() -> EventQueue {
        EventQueue { inner: Mailbox::new(VecDeque::new()) }
    }

    /// Append `ev` and wake one waiter. Fails with [`Error::Closed`] once
    /// the queue is closed.
    ///
    /// ```
    /// let q = percore_evq::EventQueue::new();
    /// q.post(percore_evq::Event::new(3, 4)).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn post(&self, ev: Event) -> Result<(), Error> {
        self.inner.post(|q| {
            q.push_back(ev);
            Ok(true)
        })
    }

    /// Block until an event arrives (or `timeout`: [`Error::TimedOut`]).
    /// Refused inside a critical or SMR section.
    ///
    /// ```
    /// let q = percore_evq::EventQueue::new();
    /// let e = q.recv(Some(std::time::Duration::from_millis(1))).unwrap_err();
    /// assert!(matches!(e, percore_evq::Error::TimedOut));
    /// ```
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Event, Error> {
        wait_any(&[self], timeout).map(|(e, _)| e)
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.inner.lock().store.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Close the queue: posts fail from now on, waiters get what is left and
    /// then [`Error::Closed`].
    ///
    /// ```
    /// let q = percore_evq::EventQueue::new();
    /// q.post(percore_evq::Event::new(1, 1)).unwrap();
    /// q.close();
    /// assert!(q.post(percore_evq::Event::new(2, 2)).is_err());
    /// assert_eq!(q.recv(None).unwrap().kind, 1);
    /// assert!(matches!(q.recv(None), Err(percore_evq::Error::Closed)));
    /// ```
    pub fn close(&self) {
        self.inner.close()
    }

    /// Drop every queued event; returns how many.
    pub(crate) fn clear(&self) -> usize {
        let mut m = self.inner.lock();
        let n = m.store.len();
        m.store.clear();
        n
    }
}

queue_impls!(EventQueue);

/// How a [`Ceq`] merges events for the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coalesce {
    /// Bitwise OR of the payloads (readiness bits).
    Or,
    /// Sum of the payloads (counts), wrapping.
    Add,
    /// The latest payload wins.
    Last,
}

/// A [`Ceq`]'s store: one slot per id, and the ids pending in the order
/// they first became so.
struct CeqStore {
    /// Each id's merged payload since it was last taken (0 once taken).
    values: Vec<u64>,
    /// Whether each id is in `ring`.
    queued: Vec<bool>,
    /// The pending ids, each once, in the order they became pending.
    ring: VecDeque<u32>,
    /// How posts merge; fixed at construction.
    op: Coalesce,
}

impl Store for CeqStore {
    fn pop(&mut self) -> Option<Event> {
        let id = self.ring.pop_front()?;
        self.queued[id as usize] = false;
        Some(Event { kind: id, payload: std::mem::take(&mut self.values[id as usize]) })
    }
    fn has_events(&self) -> bool {
        !self.ring.is_empty()
    }
}

/// A coalescing event queue (Akaros CEQ): ids `0..ids`, one slot each; a
/// post for an id already queued merges into its slot instead of taking
/// another. Takes return `Event { kind: id, payload: merged }` in the order
/// ids first became pending.
///
/// ```
/// use percore_evq::{Ceq, Coalesce, Queue};
/// let q = Ceq::new(8, Coalesce::Or);
/// q.post(3, 0b01).unwrap();
/// q.post(5, 0b10).unwrap();
/// q.post(3, 0b10).unwrap(); // merges with the first
/// assert_eq!(q.try_recv().map(|e| (e.kind, e.payload)), Some((3, 0b11)));
/// assert_eq!(q.try_recv().map(|e| (e.kind, e.payload)), Some((5, 0b10)));
/// assert!(q.try_recv().is_none());
/// assert!(q.post(8, 1).is_err()); // no such id
/// ```
#[derive(Clone)]
pub struct Ceq {
    inner: Arc<Mailbox<CeqStore>>,
}

impl std::fmt::Debug for Ceq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.inner.lock();
        f.debug_struct("Ceq").field("ids", &m.store.values.len()).field("pending", &m.store.ring.len()).finish()
    }
}

impl Ceq {
    /// The most ids a queue may have: ids are `u32`.
    pub const MAX_IDS: usize = u32::MAX as usize + 1;

    /// A coalescing queue for ids `0..ids` (9 bytes of memory per id, taken
    /// at once).
    ///
    /// # Panics
    ///
    /// When [`Ceq::try_new`] fails: `ids` above [`Ceq::MAX_IDS`], or the
    /// memory for them not available. Use `try_new` for sizes that come
    /// from outside.
    pub fn new(ids: usize, op: Coalesce) -> Ceq {
        Ceq::try_new(ids, op).unwrap_or_else(|e| panic!("Ceq::new({ids}): {e}"))
    }

    /// A coalescing queue for ids `0..ids`, or [`Error::Invalid`] for more
    /// than [`Ceq::MAX_IDS`] ids and [`Error::Io`] (`OutOfMemory`) when the
    /// allocator refuses their memory: never an abort.
    ///
    /// ```
    /// use percore_evq::{Ceq, Coalesce, Error};
    /// assert!(matches!(Ceq::try_new(usize::MAX, Coalesce::Or), Err(Error::Invalid(_))));
    /// assert_eq!(Ceq::try_new(8, Coalesce::Or).unwrap().ids(), 8);
    /// ```
    pub fn try_new(ids: usize, op: Coalesce) -> Result<Ceq, Error> {
        if ids > Ceq::MAX_IDS {
            return Err(Error::Invalid(format!("a Ceq has at most {} ids (ids are u32), not {ids}", Ceq::MAX_IDS)));
        }
        let oom = || Error::Io(std::io::Error::new(std::io::ErrorKind::OutOfMemory, format!("Ceq of {ids} ids")));
        let values = zeroed_vec::<u64>(ids).ok_or_else(oom)?;
        let queued = zeroed_vec::<bool>(ids).ok_or_else(oom)?;
        let store = CeqStore { values, queued, ring: VecDeque::new(), op };
        Ok(Ceq { inner: Mailbox::new(store) })
    }

    /// Number of ids.
    pub fn ids(&self) -> usize {
        self.inner.lock().store.values.len()
    }

    /// Merge `value` into id `id`'s slot, queueing the id if it was not
    /// pending, and wake one waiter. [`Error::Invalid`] for an id out of
    /// range, [`Error::Closed`] once closed.
    pub fn post(&self, id: u32, value: u64) -> Result<(), Error> {
        self.inner.post(|s| {
            let i = id as usize;
            if i >= s.values.len() {
                return Err(Error::Invalid(format!("ceq id {id} out of range 0..{}", s.values.len())));
            }
            let v = &mut s.values[i];
            *v = match s.op {
                Coalesce::Or => *v | value,
                Coalesce::Add => v.wrapping_add(value),
                Coalesce::Last => value,
            };
            if s.queued[i] {
                return Ok(false);
            }
            s.queued[i] = true;
            s.ring.push_back(id);
            Ok(true)
        })
    }

    /// Block until an id is pending (or `timeout`).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let q = percore_evq::Ceq::new(4, percore_evq::Coalesce::Add);
    /// let q2 = q.clone();
    /// let h = rt.spawn(move || q2.recv(None)).unwrap();
    /// q.post(2, 5).unwrap();
    /// assert_eq!(h.join().unwrap().unwrap().kind, 2);
    /// ```
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Event, Error> {
        wait_any(&[self], timeout).map(|(e, _)| e)
    }

    /// Close: posts fail, waiters get what is pending, then [`Error::Closed`].
    pub fn close(&self) {
        self.inner.close()
    }
}

queue_impls!(Ceq);

/// Marks types whose all-zero bytes are a valid value.
///
/// # Safety
///
/// Implement only for such types.
unsafe trait Zeroable: Copy {}
// SAFETY: 0 is a u64.
unsafe impl Zeroable for u64 {}
// SAFETY: the byte 0 is `false`.
unsafe impl Zeroable for bool {}

/// `vec![T::zero; n]` through `alloc_zeroed` (the kernel's lazily zeroed
/// pages: nothing is touched up front), or `None` when the allocator
/// refuses; never an abort.
fn zeroed_vec<T: Zeroable>(n: usize) -> Option<Vec<T>> {
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    if layout.size() == 0 {
        return Some(Vec::new());
    }
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` was allocated by the global allocator with the layout of
    // `[T; n]`, and all-zero bytes are `n` valid `T`s (`Zeroable`).
    Some(unsafe { Vec::from_raw_parts(p, n, n) })
}

/// Block on several queues at once (`uth_blockon_evqs`): returns the first
/// event found, scanning `queues` in order, and the index of its queue; or
/// [`Error::TimedOut`] after `timeout` (`None`: no limit; a zero timeout
/// only polls), or [`Error::Closed`] when every queue is closed and empty.
/// Works on uthreads and on foreign threads; refused inside a critical or
/// SMR section. Each event is delivered to exactly one caller.
///
/// ```
/// use percore_evq::{wait_any, Ceq, Coalesce, Event, EventQueue};
/// use std::time::Duration;
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let (a, b) = (EventQueue::new(), Ceq::new(4, Coalesce::Or));
/// let (a2, b2) = (a.clone(), b.clone());
/// let h = rt.spawn(move || wait_any(&[&a2, &b2], Some(Duration::from_secs(30)))).unwrap();
/// b.post(1, 0b100).unwrap();
/// let (ev, which) = h.join().unwrap().unwrap();
/// assert_eq!((ev, which), (Event::new(1, 0b100), 1));
/// assert!(a.is_empty());
/// ```
pub fn wait_any(queues: &[&dyn Queue], timeout: Option<Duration>) -> Result<(Event, usize), Error> {
    match wait_any_inner(queues, timeout, false)? {
        Found::Event(e, i) => Ok((e, i)),
        // NOTE: only asked for with `report_close`.
        Found::Closed(_) => Err(Error::Closed),
    }
}

/// What [`wait_any_inner`] found.
#[derive(Debug)]
pub(crate) enum Found {
    /// An event of the queue at this index.
    Event(Event, usize),
    /// The queue at this index is closed and empty (only with
    /// `report_close`).
    Closed(usize),
}

/// [`wait_any`], and with `report_close` it also returns as soon as one of
/// `queues` is closed and empty, naming it, instead of waiting on the open
/// ones (`Select` reports a closure at once: a close wakes every waiter).
pub(crate) fn wait_any_inner(
    queues: &[&dyn Queue],
    timeout: Option<Duration>,
    report_close: bool,
) -> Result<Found, Error> {
    if queues.is_empty() {
        return Err(Error::Invalid("wait_any needs at least one queue".into()));
    }
    let deadline = wait::deadline(timeout);
    let mut claimed_before = false;
    let mut slot = SlotCache::take();
    loop {
        if !SlotCache::reset(&mut slot) {
            slot = Arc::new(Slot { waiter: Waiter::current(), claimed: AtomicBool::new(false) });
        }
        let mut linked = 0;
        for (i, q) in queues.iter().enumerate() {
            match q.take_or_link(&slot) {
                Take::Event(e) => {
                    leave(queues, i, &slot, claimed_before);
                    SlotCache::put(slot);
                    return Ok(Found::Event(e, i));
                }
                Take::Linked => linked += 1,
                Take::Closed if report_close => {
                    leave(queues, i, &slot, claimed_before);
                    SlotCache::put(slot);
                    return Ok(Found::Closed(i));
                }
                Take::Closed => {}
            }
        }
        if linked == 0 {
            SlotCache::put(slot);
            return Err(Error::Closed);
        }
        let mut timed_out = false;
        // ORDERING: acquire pairs with the AcqRel claim of the poster.
        while !slot.claimed.load(Acquire) {
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                timed_out = true;
                break;
            }
            if let Err(e) = percore_lwkt::park_until(deadline) {
                leave(queues, queues.len(), &slot, claimed_before);
                return Err(e.into());
            }
        }
        // A post that claims us pops our slot from its queue; the others
        // still hold it.
        // ORDERING: acquire, as in the loop above (the poster's claim).
        if queues.len() > 1 || !slot.claimed.load(Acquire) {
            for q in queues {
                q.unlink(&slot);
            }
        }
        // ORDERING: acquire, as above.
        claimed_before |= slot.claimed.load(Acquire);
        if timed_out {
            // One last look: an event posted as the time ran out is ours.
            SlotCache::put(slot);
            for (i, q) in queues.iter().enumerate() {
                if let Some(e) = q.try_recv() {
                    hand_on(queues, claimed_before);
                    return Ok(Found::Event(e, i));
                }
            }
            hand_on(queues, claimed_before);
            return Err(Error::TimedOut);
        }
    }
}

/// One spare waiter slot per OS thread (a worker's uthreads share it), so
/// that a blocking wait does not allocate. A slot is reusable once nobody
/// else holds it (`Arc::get_mut` succeeds): waiters unlink it before they
/// leave, and a post that claims it drops its reference once it has woken
/// the waiter (until then a new wait makes a fresh slot).
struct SlotCache;

percore_cpu::loom_thread_local! {
    static SLOT: std::cell::Cell<Option<Arc<Slot>>> = const { std::cell::Cell::new(None) };
}

impl SlotCache {
    /// A slot for the caller: the cached one if any, else a new one.
    fn take() -> Arc<Slot> {
        // NOTE: taken out and put back around the wait, never borrowed
        // across a switch (a uthread may migrate to another OS thread).
        SLOT.with(|c| c.take())
            .unwrap_or_else(|| Arc::new(Slot { waiter: Waiter::current(), claimed: AtomicBool::new(false) }))
    }

    /// Make `slot` fresh for the caller; `false` if some queue still holds it.
    fn reset(slot: &mut Arc<Slot>) -> bool {
        match Arc::get_mut(slot) {
            Some(s) => {
                // NOTE: a fresh flag rather than `get_mut` (loom's atomics
                // have none); the same single store.
                s.claimed = AtomicBool::new(false);
                s.waiter = Waiter::current();
                true
            }
            None => false,
        }
    }

    fn put(slot: Arc<Slot>) {
        if Arc::strong_count(&slot) == 1 {
            SLOT.with(|c| c.set(Some(slot)));
        }
    }
}

/// Leave with the queues before `linked` holding our slot: unlink it there,
/// and hand on wake-ups.
fn leave(queues: &[&dyn Queue], linked: usize, slot: &Arc<Slot>, claimed_before: bool) {
    for q in &queues[..linked] {
        q.unlink(slot);
    }
    // ORDERING: acquire pairs with a poster's claim.
    hand_on(queues, claimed_before || slot.claimed.load(Acquire));
}

/// A waiter that a post claimed but that leaves without that post's event
/// (it took another queue's, or timed out) passes the wake-up on: every
/// queue it waited on that still holds events wakes one of its waiters.
/// Unclaimed waiters took no wake-up from anyone: nothing to pass on.
fn hand_on(queues: &[&dyn Queue], claimed: bool) {
    if claimed && queues.len() > 1 {
        for q in queues {
            q.hand_on();
        }
    }
}
