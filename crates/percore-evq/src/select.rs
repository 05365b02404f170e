//! # `Select`: one wait over queues, sockets, joins, cancellation and a timeout
//!
//! Akaros blocks a uthread on several event queues at once
//! ([`wait_any`](crate::wait_any)); every other kind of notification is
//! meant to arrive *as* an event. [`Select`] keeps that shape and adds the
//! sources that are not queues: a uthread's end ([`JoinHandle`]), a
//! [`CancellationToken`], and a socket's readiness ([`Select::readable`],
//! [`writable`](Select::writable), [`acceptable`](Select::acceptable)). Each of those is given a [`Waker`] that posts its
//! index to a coalescing queue private to the select (a [`Ceq`] with one id
//! per source), and the select then waits on the user's queues and that one
//! queue together, with the timeout:
//!
//! ```text
//!  wait(timeout):
//!    loop {
//!      for each queue that is closed:       its last events, then Closed(i)
//!      for each watched source i:           poll it with waker(i); Ready -> Ready(i)
//!      wait_any([queue 0, queue 1, .., private ceq], time left)
//!        an event on queue i             -> Event(i, ev)
//!        an event on the ceq             -> a watched source woke: loop (re-poll)
//!        the timeout                     -> Err(TimedOut)
//!    }
//! ```
//!
//! A wake-up is never lost: a source registers its waker before the select
//! sleeps, and a waker that fires in between leaves its id pending in the
//! ceq, so the wait returns at once. Spurious wake-ups (a waker left from an
//! earlier round, a source polled `Ready` and then reset) are harmless: the
//! loop polls again. The ceq coalesces by id, so however often a source
//! wakes, it holds at most one event per source. Dropping the select takes
//! its wakers out of the tokens and closes the ceq, so a waker that fires
//! later (a join slot keeps the last one) posts nowhere.
//!
//! A socket's waker is linked into its readiness wait-list
//! (`io/source.rs`, `Source::poll_ready`) like a blocked reader or
//! writer, so the next edge or `close` wakes it, and taken out when the
//! select returns for another reason or is dropped. The socket's cached
//! readiness bits only say "maybe": before a socket is reported, the
//! kernel is asked (`poll(2)`, zero timeout), and stale bits are cleared,
//! so a select does not report a socket whose read would wait.
//!
//! Sources are checked in the order they were added, queues' closure first:
//! with several ready, the first added wins (as with `wait_any`).
//!
//! A queue that is closed while the select sleeps is reported at once:
//! `close` wakes every waiter, and the select's wait (unlike
//! [`wait_any`](crate::wait_any), which keeps waiting while any of its queues
//! is open) returns on the first queue it finds closed and empty.

use crate::cancel::CancellationToken;
use crate::error::Error;
use crate::io::source::Dir;
use crate::net::AsSocket;
use crate::queue::{wait_any_inner, Ceq, Coalesce, Event, Found, Queue};
use percore_lwkt::JoinHandle;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// What a [`Select::wait`] found. Every variant names the source by the
/// index its `Select::recv`/`join`/`cancelled` call returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// An event taken from the queue `index`.
    Event {
        /// The queue's index.
        index: usize,
        /// The event (delivered to this wait only).
        event: Event,
    },
    /// The queue `index` is closed and empty.
    Closed {
        /// The queue's index.
        index: usize,
    },
    /// The source `index` is ready: the uthread has finished (its
    /// [`JoinHandle::join`] returns at once), the token is cancelled, or
    /// the socket is ready in the direction watched (or closed).
    Ready {
        /// The source's index.
        index: usize,
    },
}

impl Selected {
    /// The index of the source that was selected.
    pub fn index(&self) -> usize {
        match *self {
            Selected::Event { index, .. } | Selected::Closed { index } | Selected::Ready { index } => index,
        }
    }
}

/// A uthread's end, for any value type.
trait Finished {
    fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl<T> Finished for JoinHandle<T> {
    fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<()> {
        JoinHandle::poll_finished(self, cx)
    }
}

enum Source<'a> {
    Queue(&'a dyn Queue),
    Join(&'a dyn Finished),
    /// The token, and its registration's key while one is held.
    Cancel(&'a CancellationToken, Option<u64>),
    /// A socket's readiness in one direction, its descriptor, and the
    /// ticket of its waker in the readiness wait-list while one is linked.
    Io(&'a crate::io::source::Source, std::os::fd::RawFd, Dir, Option<u64>),
}

/// The waker of watched source `id`: posts `id` to the select's ceq.
struct Notify {
    ceq: Ceq,
    id: u32,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // NOTE: fails only once the select is gone and closed its ceq:
        // nobody waits for this wake-up any more.
        let _ = self.ceq.post(self.id, 1);
    }
}

/// A wait over several sources at once: event queues, uthreads' ends,
/// cancellation tokens, and a timeout. Add sources (each call returns the
/// source's index), then [`wait`](Select::wait) as often as needed.
///
/// ```
/// use percore_evq::{CancellationToken, Event, EventQueue, Select, Selected};
/// use std::time::Duration;
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let (jobs, stop) = (EventQueue::new(), CancellationToken::new());
/// let (j, s) = (jobs.clone(), stop.clone());
/// let server = rt.spawn(move || {
///     let mut sel = Select::new();
///     let job = sel.recv(&j);
///     let quit = sel.cancelled(&s);
///     let mut done = 0;
///     loop {
///         match sel.wait(Some(Duration::from_secs(30))).unwrap() {
///             Selected::Event { index, event } if index == job => done += event.payload,
///             Selected::Ready { index } if index == quit => return done,
///             other => panic!("unexpected {other:?}"),
///         }
///     }
/// }).unwrap();
/// jobs.post(Event::new(0, 2)).unwrap();
/// jobs.post(Event::new(0, 3)).unwrap();
/// while !jobs.is_empty() { std::thread::yield_now() }
/// stop.cancel();
/// assert_eq!(server.join().unwrap(), 5);
/// ```
pub struct Select<'a> {
    sources: Vec<Source<'a>>,
    /// The private queue the watched sources' wakers post to, with its
    /// wakers (one per source; `None` for queues). Built at the first wait
    /// (and again if sources were added since).
    notify: Option<(Ceq, Vec<Option<Waker>>)>,
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("sources", &self.sources.len()).finish()
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Select<'a> {
    /// A select with no sources (a wait on it only times out).
    pub fn new() -> Select<'a> {
        Select { sources: Vec::new(), notify: None }
    }

    /// Watch an event queue ([`EventQueue`](crate::EventQueue) or
    /// [`Ceq`]): a wait takes at most one event from it. Returns the
    /// source's index.
    pub fn recv(&mut self, queue: &'a dyn Queue) -> usize {
        self.push(Source::Queue(queue))
    }

    /// Watch a uthread's end: selected as [`Selected::Ready`] once it has
    /// finished; the handle is not consumed ([`JoinHandle::join`] then
    /// returns at once). Returns the source's index.
    pub fn join<T>(&mut self, handle: &'a JoinHandle<T>) -> usize {
        self.push(Source::Join(handle))
    }

    /// Watch a cancellation token: selected as [`Selected::Ready`] once it
    /// is cancelled (at every wait from then on). Returns the source's index.
    pub fn cancelled(&mut self, token: &'a CancellationToken) -> usize {
        self.push(Source::Cancel(token, None))
    }

    /// Watch a socket for reading (or receiving): selected as
    /// [`Selected::Ready`] once data is there, the peer hung up, an error
    /// is pending, or the socket was [`close`d](crate::net::TcpStream::close);
    /// the next read then does not wait (unless another reader took the
    /// data first). Returns the source's index.
    pub fn readable(&mut self, socket: &'a impl AsSocket) -> usize {
        self.push(Source::Io(socket.io_source(), socket.as_raw_fd(), Dir::Read, None))
    }

    /// Watch a socket for writing (or sending): selected as
    /// [`Selected::Ready`] once there is room in its send buffer (or an
    /// error, a hang-up, a close). Returns the source's index.
    pub fn writable(&mut self, socket: &'a impl AsSocket) -> usize {
        self.push(Source::Io(socket.io_source(), socket.as_raw_fd(), Dir::Write, None))
    }

    /// Watch a listener ([`TcpListener`](crate::net::TcpListener),
    /// [`UnixListener`](crate::net::UnixListener)): selected as
    /// [`Selected::Ready`] once a connection is waiting (its `accept` then
    /// does not wait, unless another uthread took it first) or the
    /// listener was closed. [`readable`](Select::readable) under the name
    /// a listener's readers look for. Returns the source's index.
    pub fn acceptable(&mut self, listener: &'a impl AsSocket) -> usize {
        self.readable(listener)
    }

    fn push(&mut self, s: Source<'a>) -> usize {
        self.sources.push(s);
        self.sources.len() - 1
    }

    /// Wait until one source is selected (see [`Selected`]), or
    /// [`Error::TimedOut`] after `timeout` (`None`: no limit; zero: only
    /// look). With several sources ready, the first added wins. Parks the
    /// calling uthread only; works on foreign threads too (they block).
    ///
    /// # Errors
    ///
    /// [`Error::TimedOut`]; [`Error::Invalid`] with more than `u32::MAX`
    /// sources; the refusals of [`wait_any`](crate::wait_any) (inside a
    /// critical or SMR section, a runtime shut down).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Selected, Error> {
        // NOTE: a deadline past `Instant`'s range is no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let n = self.sources.len();
        if self.notify.as_ref().is_none_or(|(_, w)| w.len() != n) {
            self.notify = Some(self.build_notify()?);
        }
        let Select { sources, notify } = self;
        let Some((ceq, wakers)) = notify.as_ref() else { unreachable!("built above") };
        // One allocation per wait: the user's queues, then the private ceq.
        let mut list: Vec<&dyn Queue> = Vec::with_capacity(n + 1);
        list.extend(sources.iter().filter_map(|s| if let Source::Queue(q) = s { Some(*q) } else { None }));
        let queues = list.len();
        list.push(ceq);
        loop {
            for (index, s) in sources.iter_mut().enumerate() {
                let ready = match s {
                    Source::Queue(q) => {
                        if q.is_closed() {
                            return Ok(match q.try_recv() {
                                Some(event) => Selected::Event { index, event },
                                None => Selected::Closed { index },
                            });
                        }
                        continue;
                    }
                    Source::Join(h) => {
                        let w = wakers[index].as_ref().expect("a watched source has a waker");
                        h.poll_finished(&mut Context::from_waker(w)).is_ready()
                    }
                    Source::Cancel(t, key) => {
                        let w = wakers[index].as_ref().expect("a watched source has a waker");
                        t.register(key, w).is_ready()
                    }
                    Source::Io(src, fd, dir, key) => {
                        let w = wakers[index].as_ref().expect("a watched source has a waker");
                        let (fd, read) = (*fd, *dir == Dir::Read);
                        src.poll_ready(*dir, key, w, || crate::sys::socket::ready_now(fd, read)).is_ready()
                    }
                };
                if ready {
                    return Ok(Selected::Ready { index });
                }
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // The `i`-th queue source's index among all sources.
            let index_of = |i: usize| (0..n).filter(|&j| matches!(sources[j], Source::Queue(_))).nth(i).unwrap_or(i);
            match wait_any_inner(&list, left, true) {
                Ok(Found::Event(event, i)) if i < queues => {
                    return Ok(Selected::Event { index: index_of(i), event });
                }
                Ok(Found::Closed(i)) if i < queues => return Ok(Selected::Closed { index: index_of(i) }),
                // A watched source woke: poll them again.
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn build_notify(&self) -> Result<(Ceq, Vec<Option<Waker>>), Error> {
        let n = self.sources.len();
        let ids =
            u32::try_from(n).map_err(|_| Error::Invalid(format!("{n} sources in one select (at most 2^32 - 1)")))?;
        let ceq = Ceq::try_new(n.max(1), Coalesce::Or)?;
        let wakers = (0..ids)
            .map(|id| match self.sources[id as usize] {
                Source::Queue(_) => None,
                _ => Some(Waker::from(Arc::new(Notify { ceq: ceq.clone(), id }))),
            })
            .collect();
        Ok((ceq, wakers))
    }
}

impl Drop for Select<'_> {
    fn drop(&mut self) {
        for s in &mut self.sources {
            match s {
                Source::Cancel(t, key) => t.deregister(key),
                Source::Io(src, _, dir, key) => src.forget(*dir, key),
                _ => {}
            }
        }
        if let Some((ceq, _)) = &self.notify {
            ceq.close();
        }
    }
}
