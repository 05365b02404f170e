//! # Synchronisation between uthreads
//!
//! | need | use | kernel name |
//! | --- | --- | --- |
//! | mutual exclusion that cannot deadlock across blocking | [`Token`] | `lwkt_token` |
//! | sleep until someone signals an address | [`tsleep`], [`wakeup`], [`wakeup_one`] | `tsleep` / `wakeup` |
//! | a typed message to a uthread, with or without a reply | [`Uthread::send`](crate::Uthread::send), [`Uthread::call`](crate::Uthread::call), [`wait_msg`], [`Message`] | `lwkt_msgport` |
//! | a stream of small events, waited on from several queues at once | [`EventQueue`], [`Ceq`], [`wait_any`] | Akaros event queues |
//! | one wait over queues, sockets, uthreads' ends, cancellation and a timeout | [`Select`], [`CancellationToken`] | Akaros: everything is an event |
//!
//! Every wait here parks the calling uthread only (its worker runs others),
//! works from foreign threads too (which block), takes a timeout, and is
//! refused inside a critical or SMR section. Tokens and wait channels fail
//! with [`Error`](crate::Error); queues with [`QueueError`], whose `Lwkt`
//! variant carries the runtime's.
//!
//! A `std::sync::Mutex` is fine for a short section that never reaches a
//! scheduling point; held across one (a percore blocking call, a yield) it
//! can deadlock the worker (see [the crate docs](crate#never-block-the-worker)).
//!
//! ```
//! use percore::sync::{wait_msg, Token};
//! use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
//! use std::sync::Arc;
//!
//! static TOKEN: Token = Token::new();
//!
//! let total = percore::run(|| {
//!     // A counter server over its message port.
//!     let server = percore::spawn(|| {
//!         let mut sum = 0u64;
//!         loop {
//!             let mut m = wait_msg(None).unwrap();
//!             match m.take::<u64>() {
//!                 Some(0) => break m.reply(sum),
//!                 Some(x) => sum += x,
//!                 None => {}
//!             }
//!         }
//!     })
//!     .unwrap();
//!     let port = server.uthread().clone();
//!     let shared = Arc::new(AtomicU64::new(0));
//!     let clients: Vec<_> = (1..=3u64)
//!         .map(|i| {
//!             let (port, shared) = (port.clone(), shared.clone());
//!             percore::spawn(move || {
//!                 port.send(i);
//!                 let _g = TOKEN.lock().unwrap(); // released if we block
//!                 shared.fetch_add(i, Relaxed);
//!             })
//!             .unwrap()
//!         })
//!         .collect();
//!     clients.into_iter().for_each(|c| c.join().unwrap());
//!     let sum: u64 = port.call(0u64).unwrap();
//!     server.join().unwrap();
//!     (sum, shared.load(Relaxed))
//! });
//! assert_eq!(total, (6, 6));
//! ```

/// A serialising lock owned by the running uthread: released whenever it
/// blocks, re-taken before it runs again, so it cannot deadlock across
/// blocking ([`lwkt::Token`](crate::lwkt::Token)).
///
/// ```
/// use percore::sync::Token;
/// let t = Token::new();
/// percore::run(move || {
///     let g = t.lock().unwrap();
///     assert!(t.is_locked());
///     drop(g);
/// });
/// ```
pub use percore_lwkt::Token;

/// A held [`Token`]; releases it on drop ([`lwkt::TokenGuard`](crate::lwkt::TokenGuard)).
pub use percore_lwkt::TokenGuard;

/// Sleep on the wait channel of an address until [`wakeup`] or the timeout
/// ([`lwkt::tsleep`](crate::lwkt::tsleep)).
///
/// ```
/// use percore::sync::{tsleep, wakeup};
/// use std::time::Duration;
///
/// static CHAN: u8 = 0;
/// percore::run(|| {
///     let sleeper = percore::spawn(|| tsleep(&CHAN, Some(Duration::from_secs(30)))).unwrap();
///     while wakeup(&CHAN) == 0 {
///         percore::time::sleep(Duration::from_millis(1)).unwrap(); // until it is linked
///     }
///     sleeper.join().unwrap().unwrap();
/// });
/// ```
pub use percore_lwkt::tsleep;

/// Wake every sleeper on an address; returns how many ([`lwkt::wakeup`](crate::lwkt::wakeup)).
///
/// ```
/// static CHAN: u8 = 0;
/// assert_eq!(percore::sync::wakeup(&CHAN), 0); // nobody sleeps there
/// ```
pub use percore_lwkt::wakeup;

/// Wake one sleeper on an address ([`lwkt::wakeup_one`](crate::lwkt::wakeup_one)).
///
/// ```
/// static CHAN: u8 = 0;
/// assert_eq!(percore::sync::wakeup_one(&CHAN), 0);
/// ```
pub use percore_lwkt::wakeup_one;

/// A message taken from a uthread's port ([`lwkt::Message`](crate::lwkt::Message)).
///
/// ```
/// let reply: String = percore::run(|| {
///     let echo = percore::spawn(|| {
///         let mut m = percore::sync::wait_msg(None).unwrap();
///         let s = m.take::<String>().unwrap();
///         m.reply(s.to_uppercase());
///     })
///     .unwrap();
///     echo.uthread().call(String::from("hi")).unwrap()
/// });
/// assert_eq!(reply, "HI");
/// ```
pub use percore_lwkt::Message;

/// Wait for the next message on the calling uthread's port
/// ([`lwkt::wait_msg`](crate::lwkt::wait_msg)).
///
/// ```
/// use std::time::Duration;
/// let r = percore::run(|| percore::sync::wait_msg(Some(Duration::from_millis(1))).map(|_| ()));
/// assert!(matches!(r, Err(percore::Error::TimedOut)));
/// ```
pub use percore_lwkt::wait_msg;

/// A multi-producer, multi-consumer FIFO of [`Event`]s that uthreads block on
/// ([`evq::EventQueue`](crate::evq::EventQueue)).
///
/// ```
/// use percore::sync::{Event, EventQueue};
/// let q = EventQueue::new();
/// q.post(Event::new(1, 99)).unwrap();
/// let got = percore::run(move || q.recv(None).unwrap());
/// assert_eq!(got, Event::new(1, 99));
/// ```
pub use percore_evq::EventQueue;

/// One small message on an event queue: a kind and a payload
/// ([`evq::Event`](crate::evq::Event)).
///
/// ```
/// let e = percore::sync::Event::new(3, 7);
/// assert_eq!((e.kind, e.payload), (3, 7));
/// ```
pub use percore_evq::Event;

/// A coalescing event queue: one slot per id, posts to a pending id merge
/// ([`evq::Ceq`](crate::evq::Ceq)).
///
/// ```
/// use percore::sync::{Ceq, Coalesce, Event};
/// let q = Ceq::new(4, Coalesce::Or);
/// q.post(2, 0b01).unwrap();
/// q.post(2, 0b10).unwrap(); // merged into the pending event of id 2
/// let got = percore::run(move || q.recv(None).unwrap());
/// assert_eq!(got, Event::new(2, 0b11));
/// ```
pub use percore_evq::Ceq;

/// How a [`Ceq`] merges a post into a pending one ([`evq::Coalesce`](crate::evq::Coalesce)).
pub use percore_evq::Coalesce;

/// Block on several queues at once; returns the event and its queue's index
/// ([`evq::wait_any`](crate::evq::wait_any)).
///
/// ```
/// use percore::sync::{wait_any, Event, EventQueue};
/// use std::time::Duration;
/// let (a, b) = (EventQueue::new(), EventQueue::new());
/// b.post(Event::new(0, 5)).unwrap();
/// let got = percore::run(move || wait_any(&[&a, &b], Some(Duration::from_secs(10))).unwrap());
/// assert_eq!(got, (Event::new(0, 5), 1));
/// ```
pub use percore_evq::wait_any;

/// What [`wait_any`] accepts: [`EventQueue`] and [`Ceq`] (sealed;
/// [`evq::Queue`](crate::evq::Queue)).
pub use percore_evq::Queue;

/// The error of event queues, alarms and `Epoll` ([`evq::Error`](crate::evq::Error)).
///
/// ```
/// use percore::sync::{EventQueue, QueueError};
/// use std::time::Duration;
/// let q = EventQueue::new();
/// let e = percore::run(move || q.recv(Some(Duration::from_millis(1))).unwrap_err());
/// assert!(matches!(e, QueueError::TimedOut));
/// ```
pub use percore_evq::Error as QueueError;

/// One wait over event queues, uthreads' ends, cancellation tokens and a
/// timeout ([`evq::Select`](crate::evq::Select)).
///
/// ```
/// use percore::sync::{CancellationToken, EventQueue, Select, Selected};
/// use std::time::Duration;
///
/// let stop = CancellationToken::new();
/// let got = percore::run(move || {
///     let work = percore::spawn(|| 6 * 7).unwrap();
///     let idle = EventQueue::new();
///     let mut sel = Select::new();
///     sel.recv(&idle);
///     let done = sel.join(&work);
///     sel.cancelled(&stop);
///     let r = sel.wait(Some(Duration::from_secs(10))).unwrap();
///     assert_eq!(r, Selected::Ready { index: done });
///     drop(sel);
///     work.join().unwrap()
/// });
/// assert_eq!(got, 42);
/// ```
pub use percore_evq::Select;

/// What a [`Select`] found ([`evq::Selected`](crate::evq::Selected)).
pub use percore_evq::Selected;

/// A flag that, cancelled once, ends every wait on it: a [`Select`] source,
/// a `Future`, a blocking wait ([`evq::CancellationToken`](crate::evq::CancellationToken)).
///
/// ```
/// let t = percore::sync::CancellationToken::new();
/// assert!(t.cancel() && t.is_cancelled());
/// percore::run(move || t.wait(None)).unwrap();
/// ```
pub use percore_evq::CancellationToken;
