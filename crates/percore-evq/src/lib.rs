//! # percore-evq: event queues, alarms, epoll for uthreads, sockets
//!
//! After Akaros: every asynchronous notification is a small message on an
//! event queue, and a uthread blocks on one or several queues at once. On top
//! of that, an epoll for uthreads in which *every timed waiter has its own
//! alarm and its own queue for it* (seed 004): no waiter can take another's
//! event or timeout.
//!
//! | Akaros | here |
//! | --- | --- |
//! | `event_queue`, `uth_blockon_evqs` | [`EventQueue`], [`wait_any`] |
//! | CEQ (coalescing event queue) | [`Ceq`], [`Coalesce`] |
//! | alarms, `ep_alarm` from a `kmem_cache` | [`Alarm`]: per-worker timer sets, objects from one SMR zone per runtime |
//! | epoll on CEQs | [`Epoll`] |
//! | (the rest as events too) | [`Select`]: queues, uthreads' ends, a [`CancellationToken`], a timeout |
//! | blocking sockets over async syscalls | [`net`]: `TcpListener`, `TcpStream`, `UdpSocket`, `UnixStream`, `UnixListener` |
//!
//! Everything runs on the runtime's workers (percore-lwkt): alarms fire and
//! I/O readiness is collected in each worker's scheduler loop, through its
//! own kernel epoll instance; there are no extra threads.
//!
//! ```
//! use percore_evq::{wait_any, Alarm, Event, EventQueue};
//! use std::time::Duration;
//!
//! let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
//! let q = EventQueue::new();
//! let q2 = q.clone();
//! let got = rt.spawn(move || {
//!     // Wait for an event on `q`, with our own alarm as the timeout.
//!     let mut alarm = Alarm::new().unwrap();
//!     alarm.set_after(Duration::from_secs(30)).unwrap();
//!     let r = wait_any(&[&q2, alarm.queue()], None).unwrap();
//!     alarm.cancel(); // waits for a firing in flight, if any
//!     r
//! }).unwrap();
//! q.post(Event::new(7, 1)).unwrap();
//! assert_eq!(got.join().unwrap(), (Event::new(7, 1), 0));
//! ```

#![warn(missing_docs)]

#[cfg(not(loom))]
mod alarm;
// Under loom only the alarm's state machine is compiled (`alarm/state.rs`).
#[cfg(loom)]
mod alarm {
    // NOTE: `pub` items inside are reached by the loom model only (`__loom`).
    #[allow(unreachable_pub)]
    pub(crate) mod state;
}
mod cancel;
#[cfg(not(loom))]
mod driver;
#[cfg(not(loom))]
mod epoll;
mod error;
#[cfg(not(loom))]
mod io;
// Under loom only an I/O source's readiness and wait protocol is compiled
// (`io/source.rs`).
#[cfg(loom)]
mod io {
    // NOTE: `pub` items inside are reached by the loom model only (`__loom`).
    #[allow(unreachable_pub)]
    pub(crate) mod source;
}
#[cfg(not(loom))]
pub mod net;
// NOTE: under loom, the parts only the alarm uses are left unused.
#[cfg_attr(loom, allow(dead_code))]
mod queue;
#[cfg(not(loom))]
mod select;
mod stats;
// NOTE: under loom, only the `EPOLL*` bits are used (by `io/source.rs`).
#[cfg_attr(loom, allow(dead_code))]
mod sys;
mod wait;

#[cfg(not(loom))]
pub use alarm::{Alarm, ALARM_EVENT};
pub use cancel::{CancellationToken, Cancelled};
#[cfg(not(loom))]
pub use epoll::{Epoll, EpollEvent, Interest};
pub use error::Error;
/// Block the caller for a duration: percore-lwkt's `sleep`,
/// re-exported (one sleep for the whole runtime, on the worker's timing
/// wheel; it returns [`percore_lwkt::Error`]).
#[cfg(not(loom))]
pub use percore_lwkt::sleep;
#[cfg(not(loom))]
pub use queue::{wait_any, Ceq, Coalesce, Event, EventQueue, Queue};
#[cfg(not(loom))]
pub use select::{Select, Selected};

/// The crate README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The protocol cores, exposed to the loom models in `tests/loom_alarm.rs`,
/// `tests/loom_queue.rs` and `tests/loom_io.rs` only.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::alarm::state::{AlarmState, Cancel, Fire, Park};
    pub use crate::cancel::CancellationToken;
    pub use crate::io::source::{Dir, Source};
    pub use crate::queue::{wait_any, Ceq, Coalesce, Event, EventQueue, Queue};
}
