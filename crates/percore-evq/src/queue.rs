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

use crate::error::Error;
use crate::stats::stats;
use crate::waiter::{self, Waiter};
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::sync::{Arc, Mutex, MutexGuard};
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

use sealed::{Link, Slot};

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
    fn claim_one(&mut self) -> Option<Waiter> {
        while let Some(s) = self.0.pop_front() {
            if s.claim() {
                return Some(s.waiter.clone());
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
    /// A waiter's registration, shared by every queue it waits on.
    pub struct Slot {
        pub(super) waiter: super::Waiter,
        pub(super) claimed: std::sync::atomic::AtomicBool,
    }

    /// What [`Sealed::link`] did.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Link {
        /// Linked: a post will claim the slot.
        Linked,
        /// Not linked: an event is there already.
        Ready,
        /// Not linked: closed and empty, nothing will ever come from it.
        Closed,
    }

    pub trait Sealed {
        /// Link `slot` unless an event is there already or the queue is
        /// closed and empty.
        fn link(&self, slot: &std::sync::Arc<Slot>) -> Link;
        fn unlink(&self, slot: &std::sync::Arc<Slot>);
        /// Wake one waiter if events are left (the hand-on).
        fn hand_on(&self);
    }
}

struct Fifo {
    events: VecDeque<Event>,
    waiters: Waiters,
    closed: bool,
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
    inner: Arc<Mutex<Fifo>>,
}

impl Default for EventQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("EventQueue").field("len", &s.events.len()).field("closed", &s.closed).finish()
    }
}

impl EventQueue {
    /// An empty, open queue.
    pub fn new() -> EventQueue {
        EventQueue {
            inner: Arc::new(Mutex::new(Fifo { events: VecDeque::new(), waiters: Waiters::default(), closed: false })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Fifo> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let w = {
            let mut s = self.lock();
            if s.closed {
                return Err(Error::Closed);
            }
            s.events.push_back(ev);
            s.waiters.claim_one()
        };
        stats().posted.inc();
        if let Some(w) = w {
            stats().wakeups.inc();
            w.wake();
        }
        Ok(())
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
        self.lock().events.len()
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
        let ws = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.waiters.0)
        };
        for w in ws {
            if w.claim() {
                w.waiter.wake();
            }
        }
    }

    /// Drop every queued event; returns how many.
    pub(crate) fn clear(&self) -> usize {
        let mut s = self.lock();
        let n = s.events.len();
        s.events.clear();
        n
    }
}

impl Queue for EventQueue {
    fn try_recv(&self) -> Option<Event> {
        let e = self.lock().events.pop_front();
        if e.is_some() {
            stats().delivered.inc();
        }
        e
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl sealed::Sealed for EventQueue {
    fn link(&self, slot: &Arc<Slot>) -> Link {
        let mut s = self.lock();
        if !s.events.is_empty() {
            return Link::Ready;
        }
        if s.closed {
            return Link::Closed;
        }
        s.waiters.0.push_back(slot.clone());
        Link::Linked
    }

    fn unlink(&self, slot: &Arc<Slot>) {
        self.lock().waiters.remove(slot);
    }

    fn hand_on(&self) {
        let w = {
            let mut s = self.lock();
            if s.events.is_empty() {
                return;
            }
            s.waiters.claim_one()
        };
        if let Some(w) = w {
            stats().wakeups.inc();
            w.wake();
        }
    }
}

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

struct CeqState {
    values: Vec<u64>,
    queued: Vec<bool>,
    ring: VecDeque<u32>,
    waiters: Waiters,
    closed: bool,
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
    inner: Arc<(Mutex<CeqState>, Coalesce)>,
}

impl std::fmt::Debug for Ceq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Ceq").field("ids", &s.values.len()).field("pending", &s.ring.len()).finish()
    }
}

impl Ceq {
    /// A coalescing queue for ids `0..ids`.
    pub fn new(ids: usize, op: Coalesce) -> Ceq {
        let st = CeqState {
            values: vec![0; ids],
            queued: vec![false; ids],
            ring: VecDeque::new(),
            waiters: Waiters::default(),
            closed: false,
        };
        Ceq { inner: Arc::new((Mutex::new(st), op)) }
    }

    fn lock(&self) -> MutexGuard<'_, CeqState> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of ids.
    pub fn ids(&self) -> usize {
        self.lock().values.len()
    }

    /// Merge `value` into id `id`'s slot, queueing the id if it was not
    /// pending, and wake one waiter. [`Error::Invalid`] for an id out of
    /// range, [`Error::Closed`] once closed.
    pub fn post(&self, id: u32, value: u64) -> Result<(), Error> {
        let w = {
            let mut s = self.lock();
            if s.closed {
                return Err(Error::Closed);
            }
            let i = id as usize;
            if i >= s.values.len() {
                return Err(Error::Invalid(format!("ceq id {id} out of range 0..{}", s.values.len())));
            }
            let v = &mut s.values[i];
            *v = match self.inner.1 {
                Coalesce::Or => *v | value,
                Coalesce::Add => v.wrapping_add(value),
                Coalesce::Last => value,
            };
            if s.queued[i] {
                None
            } else {
                s.queued[i] = true;
                s.ring.push_back(id);
                s.waiters.claim_one()
            }
        };
        stats().posted.inc();
        if let Some(w) = w {
            stats().wakeups.inc();
            w.wake();
        }
        Ok(())
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
        let ws = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.waiters.0)
        };
        for w in ws {
            if w.claim() {
                w.waiter.wake();
            }
        }
    }
}

impl Queue for Ceq {
    fn try_recv(&self) -> Option<Event> {
        let mut s = self.lock();
        let id = s.ring.pop_front()?;
        s.queued[id as usize] = false;
        let v = std::mem::take(&mut s.values[id as usize]);
        drop(s);
        stats().delivered.inc();
        Some(Event { kind: id, payload: v })
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl sealed::Sealed for Ceq {
    fn link(&self, slot: &Arc<Slot>) -> Link {
        let mut s = self.lock();
        if !s.ring.is_empty() {
            return Link::Ready;
        }
        if s.closed {
            return Link::Closed;
        }
        s.waiters.0.push_back(slot.clone());
        Link::Linked
    }

    fn unlink(&self, slot: &Arc<Slot>) {
        self.lock().waiters.remove(slot);
    }

    fn hand_on(&self) {
        let w = {
            let mut s = self.lock();
            if s.ring.is_empty() {
                return;
            }
            s.waiters.claim_one()
        };
        if let Some(w) = w {
            stats().wakeups.inc();
            w.wake();
        }
    }
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
    if queues.is_empty() {
        return Err(Error::Invalid("wait_any needs at least one queue".into()));
    }
    let deadline = waiter::deadline(timeout);
    let mut slot: Option<Arc<Slot>> = None;
    let r = loop {
        for (i, q) in queues.iter().enumerate() {
            if let Some(e) = q.try_recv() {
                break_out(queues, &slot);
                return Ok((e, i));
            }
        }
        if queues.iter().all(|q| q.is_closed()) {
            break Err(Error::Closed);
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break Err(Error::TimedOut);
        }
        // NOTE: a fresh slot per round: an old one may be claimed already,
        // and a claimed slot is skipped by posts.
        if let Some(old) = slot.take() {
            for q in queues {
                q.unlink(&old);
            }
        }
        let s = Arc::new(Slot { waiter: Waiter::current(), claimed: AtomicBool::new(false) });
        let mut linked = 0;
        let mut ready = false;
        for q in queues {
            match q.link(&s) {
                Link::Linked => linked += 1,
                // NOTE: a closed, empty queue is skipped, not "ready": it
                // would make this loop spin (never blocking, never giving a
                // uthread's worker back) while an open queue may still get
                // an event.
                Link::Closed => {}
                Link::Ready => {
                    ready = true;
                    break;
                }
            }
        }
        slot = Some(s.clone());
        // Not linked anywhere: every queue was closed meanwhile (the next
        // round returns `Closed`), or an event is there.
        if ready || linked == 0 {
            for q in queues {
                q.unlink(&s);
            }
            slot = None;
            continue;
        }
        // ORDERING: acquire pairs with the AcqRel claim of the poster.
        while !s.claimed.load(Acquire) {
            if let Err(e) = waiter::block(deadline) {
                break_out(queues, &slot);
                return Err(e);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                break;
            }
        }
    };
    break_out(queues, &slot);
    r
}

/// Leave: unlink our slot everywhere; if a post claimed us, hand on a
/// wake-up for whatever events we leave behind.
fn break_out(queues: &[&dyn Queue], slot: &Option<Arc<Slot>>) {
    let Some(s) = slot else { return };
    for q in queues {
        q.unlink(s);
    }
    // ORDERING: acquire pairs with the claim; unclaimed slots never took a
    // wake-up from anyone, so nothing needs handing on.
    if s.claimed.load(Acquire) {
        for q in queues {
            q.hand_on();
        }
    }
}
