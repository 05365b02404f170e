//! # Message ports (`lwkt_msgport`)
//!
//! Every uthread owns a port: a mutex-protected FIFO of [`Message`]s. Anyone
//! may [`send`](Uthread::send) to it (fire and forget) or
//! [`call`](Uthread::call) it (send and wait for the reply, `lwkt_domsg`);
//! only its uthread receives, with [`wait_msg`]. A message dropped without a
//! reply answers its caller with [`Error::NoReply`], so no caller waits
//! forever on a lost message.
//!
//! Waking the receiver uses the uthread's park word: the sender pushes under
//! the port lock, then unparks; the receiver checks the queue under the lock
//! before parking, and a wake-up that lands in between leaves the park word
//! `NOTIFIED`, so its park returns at once.
//!
//! ## Bound
//!
//! A port holds at most [`RuntimeBuilder::port_capacity`](crate::RuntimeBuilder::port_capacity)
//! messages (default [`DEFAULT_PORT_CAPACITY`](crate::DEFAULT_PORT_CAPACITY),
//! 65,536). [`Uthread::try_send`] fails with [`Error::Full`] then;
//! [`Uthread::send`] and [`Uthread::call`] wait for room (back-pressure):
//! the sender registers in the port's `senders` under the lock and parks;
//! every `wait_msg` that takes a message, and `close`, wake them all, and
//! each retries. Where the sender may not block (a critical or SMR section,
//! shutdown unwinding) `send` drops the message instead, counted as
//! `lwkt.<name>.port_full_drops`, and `call` returns the refusal.

use crate::error::Error;
use crate::uthread::block::wait_once;
use crate::uthread::join::Oneshot;
use crate::uthread::record::{Mailbox, Thread};
use crate::uthread::waiter::Waiter;
use crate::uthread::Uthread;
use percore_cpu::loom::{Arc, Mutex};
use std::any::Any;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

type Reply = Option<Box<dyn Any + Send>>;

/// A uthread's port. Internal: reached through [`Uthread`] and [`wait_msg`].
/// Closed when its uthread exits: queued and later messages are dropped, so
/// their callers get [`Error::NoReply`] instead of waiting forever.
#[derive(Default)]
pub(crate) struct Port {
    q: Mutex<PortQ>,
}

#[derive(Default)]
struct PortQ {
    msgs: VecDeque<Message>,
    closed: bool,
    /// Senders waiting for room (see "Bound").
    senders: Vec<Waiter>,
}

impl Port {
    /// The owner exited: drop what is queued, refuse what comes.
    pub(crate) fn close(&self) {
        let (msgs, senders) = {
            let mut q = self.q.lock();
            q.closed = true;
            (std::mem::take(&mut q.msgs), std::mem::take(&mut q.senders))
        };
        drop(msgs); // outside the lock: replies wake callers
        senders.into_iter().for_each(Waiter::wake);
    }
}

impl Mailbox for Port {
    fn close(&self) {
        Port::close(self);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `t`'s port, opened on first use; `None` once `t` has exited without
/// ever opening it (a closed port).
#[inline]
fn port_of(t: &Thread) -> Option<&Port> {
    t.port.get_or_init(|| Box::new(Port::default()))?.as_any().downcast_ref::<Port>()
}

/// A message: a typed payload and, for [`Uthread::call`], a reply slot.
pub struct Message {
    payload: Option<Box<dyn Any + Send>>,
    reply: Option<Arc<Oneshot<Reply>>>,
    from: Option<Uthread>,
}

impl Message {
    /// The payload, if it is an `M`.
    pub fn get<M: Any>(&self) -> Option<&M> {
        self.payload.as_ref()?.downcast_ref()
    }

    /// Take the payload out as an `M` (the message stays, for the reply).
    pub fn take<M: Any>(&mut self) -> Option<M> {
        let p = self.payload.take()?;
        match p.downcast::<M>() {
            Ok(m) => Some(*m),
            Err(p) => {
                self.payload = Some(p);
                None
            }
        }
    }

    /// The sending uthread, when the sender was one.
    pub fn sender(&self) -> Option<&Uthread> {
        self.from.as_ref()
    }

    /// Whether the sender waits for a reply.
    pub fn wants_reply(&self) -> bool {
        self.reply.is_some()
    }

    /// Answer the caller (`lwkt_replymsg`); a no-op for a message sent
    /// without [`Uthread::call`].
    pub fn reply<R: Any + Send>(mut self, r: R) {
        if let Some(slot) = self.reply.take() {
            slot.complete(Some(Box::new(r)));
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if let Some(slot) = self.reply.take() {
            slot.complete(None);
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("wants_reply", &self.wants_reply()).field("from", &self.from).finish()
    }
}

/// What [`Uthread::post`] did.
enum Posted {
    Queued,
    /// The uthread has exited; the message was dropped.
    Closed,
    /// The port is full and the caller may not wait (or `wait` was false);
    /// the message was dropped.
    Full(Error),
}

impl Uthread {
    /// Queue `m`, waiting for room when the port is full and `wait` says so
    /// and the caller may block (see "Bound").
    fn post(&self, m: Message, wait: bool) -> Posted {
        let cap = self.0.shared.cfg.port_capacity;
        let mut m = Some(m);
        let Some(port) = port_of(&self.0) else { return Posted::Closed };
        loop {
            let outcome = {
                let mut q = port.q.lock();
                if q.closed {
                    Some(Posted::Closed)
                } else if q.msgs.len() < cap {
                    q.msgs.push_back(m.take().expect("message posted once"));
                    Some(Posted::Queued)
                } else if !wait {
                    Some(Posted::Full(Error::Full))
                } else if let Err(e) = crate::uthread::block::check_may_block() {
                    Some(Posted::Full(e))
                } else {
                    q.senders.push(Waiter::current());
                    None // wait for room, then retry
                }
            };
            match outcome {
                Some(Posted::Queued) => {
                    crate::worker::ipi::unpark(&self.0);
                    return Posted::Queued;
                }
                // Closed or full: `m` is dropped here (a caller gets NoReply).
                Some(other) => return other,
                None => wait_once(None),
            }
        }
    }

    /// Send `msg` without waiting, or [`Error::Full`] when the port holds
    /// [`RuntimeBuilder::port_capacity`](crate::RuntimeBuilder::port_capacity)
    /// messages already, [`Error::Exited`] when the uthread has exited (the
    /// message is dropped in both cases).
    ///
    /// ```
    /// use percore_lwkt::{Error, Runtime};
    /// let rt = Runtime::builder().workers(1).port_capacity(1).build().unwrap();
    /// // Never reads; parks until shutdown (a spurious return parks again).
    /// let rx = rt.spawn(|| while percore_lwkt::park().is_ok() {}).unwrap();
    /// rx.uthread().try_send(1u8).unwrap();
    /// assert!(matches!(rx.uthread().try_send(2u8), Err(Error::Full)));
    /// ```
    pub fn try_send<M: Any + Send>(&self, msg: M) -> Result<(), Error> {
        match self.post(Message { payload: Some(Box::new(msg)), reply: None, from: crate::current() }, false) {
            Posted::Queued => Ok(()),
            Posted::Closed => Err(Error::Exited),
            Posted::Full(e) => Err(e),
        }
    }

    /// Send `msg` to this uthread's port (`lwkt_sendmsg`). A message to a
    /// uthread that has exited is dropped. When the port is full (see
    /// [`RuntimeBuilder::port_capacity`](crate::RuntimeBuilder::port_capacity))
    /// the sender waits for room; where it may not block (a critical or SMR
    /// section) the message is dropped and counted as
    /// `lwkt.<name>.port_full_drops`: use [`Uthread::try_send`] there.
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let rx = rt.spawn(|| percore_lwkt::wait_msg(None).unwrap().take::<u32>()).unwrap();
    /// rx.uthread().send(7u32);
    /// assert_eq!(rx.join().unwrap(), Some(7));
    /// ```
    pub fn send<M: Any + Send>(&self, msg: M) {
        let m = Message { payload: Some(Box::new(msg)), reply: None, from: crate::current() };
        if let Posted::Full(_) = self.post(m, true) {
            self.0.shared.port_full_drops.inc();
        }
    }

    /// Send `msg` and wait for the reply (`lwkt_domsg`), from a uthread or a
    /// foreign thread. [`Error::NoReply`] if the message is dropped
    /// unanswered (including when the uthread exits first) or answered with
    /// another type than `R`. A full port is waited for, as by
    /// [`send`](Uthread::send).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    /// let server = rt.spawn(|| {
    ///     let mut m = percore_lwkt::wait_msg(None).unwrap();
    ///     let x = m.take::<u64>().unwrap();
    ///     m.reply(x + 1);
    /// }).unwrap();
    /// assert_eq!(server.uthread().call::<_, u64>(41u64).unwrap(), 42);
    /// ```
    pub fn call<M: Any + Send, R: Any>(&self, msg: M) -> Result<R, Error> {
        crate::uthread::block::check_may_block()?;
        let slot = Arc::new(Oneshot::new());
        let m = Message { payload: Some(Box::new(msg)), reply: Some(slot.clone()), from: crate::current() };
        if let Posted::Full(e) = self.post(m, true) {
            return Err(e);
        }
        match slot.wait()? {
            Some(r) => r.downcast::<R>().map(|b| *b).map_err(|_| Error::NoReply),
            None => Err(Error::NoReply),
        }
    }
}

/// Wait for the next message on the current uthread's port (`lwkt_waitport`),
/// at most `timeout`.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.block_on(|| percore_lwkt::wait_msg(Some(std::time::Duration::from_millis(1))).map(|_| ()));
/// assert!(matches!(r.unwrap(), Err(percore_lwkt::Error::TimedOut)));
/// ```
pub fn wait_msg(timeout: Option<Duration>) -> Result<Message, Error> {
    let me = crate::current().ok_or_else(|| Error::NotUthread)?;
    crate::uthread::block::check_may_block()?;
    let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
    // NOTE: never `None` here: only an exited uthread's port is closed.
    let port = port_of(&me.0).ok_or_else(|| Error::Shutdown)?;
    loop {
        let (m, senders) = {
            let mut q = port.q.lock();
            let m = q.msgs.pop_front();
            let senders = if m.is_some() { std::mem::take(&mut q.senders) } else { Vec::new() };
            (m, senders)
        };
        senders.into_iter().for_each(Waiter::wake); // room: they retry
        if let Some(m) = m {
            return Ok(m);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::TimedOut);
        }
        wait_once(deadline);
    }
}
