//! # The socket core: one registered descriptor, its timeouts, its waits
//!
//! Every public socket type of [`net`](super) is a [`Socket`] around one
//! std socket `S`. The core owns what they all share:
//!
//! * the registration on a worker's epoll instance (`io.rs`), made when the
//!   socket is adopted, after it was made non-blocking ([`Nonblocking`]);
//! * the read and write timeouts ([`Timeout`]), turned into a deadline at
//!   the start of each call;
//! * the operations, each one a retry-or-wait loop through
//!   `Registration::io`: `read_with` / `write_with` for one call that may
//!   wait, `read_stream` / `write_stream` for stream transfers (a short one
//!   shows the socket drained), [`accept`](Socket::accept) (the new
//!   connection is adopted on the listener's runtime), [`connect`] (start,
//!   register, wait for writability, ask how it ended);
//! * closing to its users ([`close`](Socket::close): every waiting and
//!   later call fails with `Error::Closed`; `io.rs` has the protocol);
//! * the trait impls and methods every socket type has, as macros:
//!   `socket_type!` (`from_std_in`, `close`, `AsRawFd`, `AsFd`, `Debug`), `timeouts!` (read and write
//!   timeouts), `stream_io!` (`Read` and `Write` for the type and for a
//!   shared reference to it, and `shutdown`).
//!
//! Dropping a core deregisters the descriptor before closing it (field
//! order), so no event names a closed descriptor's source after the
//! registration's grace period.

use crate::error::Error;
use crate::io::{Dir, Registration};
use crate::sys::{epoll, socket};
use percore_lwkt::Handle;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What every socket is registered for (hang-ups and errors come anyway).
const INTEREST: u32 = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::PRI;

/// The calling uthread's runtime, or the error that says a socket needs one.
pub(super) fn handle() -> io::Result<Handle> {
    Handle::current().ok_or_else(|| Error::NoRuntime.into())
}

/// A timeout setting: nanoseconds, 0 for none. Any thread may set it at any
/// time; it applies to the calls that start afterwards.
#[derive(Default)]
pub(super) struct Timeout(AtomicU64);

impl Timeout {
    pub(super) fn set(&self, t: Option<Duration>) -> io::Result<()> {
        match t {
            Some(d) if d.is_zero() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero timeout is not allowed (use None for no limit)",
            )),
            _ => {
                // ORDERING: relaxed: a setting that orders nothing else; a
                // call that starts after the store (on any thread) reads it.
                self.0.store(t.map_or(0, |d| d.as_nanos().clamp(1, u64::MAX as u128) as u64), Relaxed);
                Ok(())
            }
        }
    }

    pub(super) fn get(&self) -> Option<Duration> {
        // ORDERING: relaxed: pairs with the relaxed store in `set`.
        match self.0.load(Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        crate::wait::deadline(self.get())
    }
}

/// A socket type that can be switched to non-blocking mode before it is
/// registered.
pub(super) trait Nonblocking: AsRawFd {
    fn set_nonblocking(&self) -> io::Result<()>;
}

macro_rules! nonblocking {
    ($($t:ty),*) => {$(
        impl Nonblocking for $t {
            fn set_nonblocking(&self) -> io::Result<()> {
                <$t>::set_nonblocking(self, true)
            }
        }
    )*};
}

nonblocking!(
    std::net::TcpListener,
    std::net::TcpStream,
    std::net::UdpSocket,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixStream,
    socket2::Socket
);

/// A registered, non-blocking socket `S` with read and write timeouts (see
/// the module docs).
// NOTE: field order is drop order: deregister before the socket closes.
pub(super) struct Socket<S: AsRawFd> {
    /// The descriptor's registration: made in `adopt`, dropped first. Any
    /// thread that holds the socket waits on it, through the methods below.
    reg: Registration,
    /// The std socket: non-blocking from `adopt` on, closed on drop. Any
    /// thread calls it through `&` (the kernel serialises).
    pub(super) sock: S,
    /// How long one read-direction call (read, receive, accept) may wait.
    pub(super) read_to: Timeout,
    /// How long one write-direction call (write, send) may wait.
    pub(super) write_to: Timeout,
}

impl<S: Nonblocking> Socket<S> {
    /// Make `sock` non-blocking and register it on `handle`'s runtime (on
    /// the calling uthread's worker; worker 0 from elsewhere).
    pub(super) fn adopt(handle: &Handle, sock: S) -> io::Result<Socket<S>> {
        sock.set_nonblocking()?;
        Self::register(handle, sock)
    }
}

impl<S: AsRawFd> Socket<S> {
    /// Deregister and give back the std socket (still non-blocking). By
    /// value, so nobody waits on the registration any more.
    pub(super) fn into_std(self) -> S {
        let Socket { reg, sock, .. } = self;
        // NOTE: deregister before the socket changes hands: a later
        // registration of the same descriptor (on another worker) must not
        // find this one still in the epoll instance.
        drop(reg);
        sock
    }

    /// Register `sock`, which is non-blocking already.
    fn register(handle: &Handle, sock: S) -> io::Result<Socket<S>> {
        let reg = Registration::new(handle, sock.as_raw_fd(), INTEREST, None)?;
        Ok(Socket { reg, sock, read_to: Timeout::default(), write_to: Timeout::default() })
    }

    /// A read-direction operation that may wait (`read_to` applies).
    pub(super) fn read_with<R>(&self, mut op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.reg.io(Dir::Read, self.read_to.deadline(), |_| false, || op(&self.sock))
    }

    /// A write-direction operation that may wait (`write_to` applies).
    pub(super) fn write_with<R>(&self, mut op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.reg.io(Dir::Write, self.write_to.deadline(), |_| false, || op(&self.sock))
    }

    /// A stream read of `want` bytes: a short, non-empty read means the
    /// socket is drained (an empty one is the end of the stream).
    pub(super) fn read_stream(&self, want: usize, mut op: impl FnMut(&S) -> io::Result<usize>) -> io::Result<usize> {
        self.reg.io(Dir::Read, self.read_to.deadline(), |&n| n > 0 && n < want, || op(&self.sock))
    }

    /// A stream write of `want` bytes: a short write means the send buffer
    /// is full.
    pub(super) fn write_stream(&self, want: usize, mut op: impl FnMut(&S) -> io::Result<usize>) -> io::Result<usize> {
        self.reg.io(Dir::Write, self.write_to.deadline(), |&n| n < want, || op(&self.sock))
    }

    /// Close the socket to its users (see `close` in `socket_type!`).
    pub(super) fn close(&self) {
        self.reg.close();
    }

    /// The readiness and waiters of the descriptor (a select's source).
    pub(super) fn source(&self) -> &crate::io::source::Source {
        self.reg.source()
    }

    /// Wait for a connection (`accept` on the listener `S`, `read_to`
    /// applies) and adopt it on the listener's runtime.
    pub(super) fn accept<T: Nonblocking, A>(
        &self,
        mut op: impl FnMut(&S) -> io::Result<(T, A)>,
    ) -> io::Result<(Socket<T>, A)> {
        let (s, a) = self.read_with(&mut op)?;
        Ok((Socket::adopt(self.reg.handle(), s)?, a))
    }
}

/// Connect a new socket of `domain` to `addr` on `handle`'s runtime, giving
/// up after `timeout` (`TimedOut`); `into` turns it into the std type.
pub(super) fn connect<T: AsRawFd>(
    handle: &Handle,
    domain: socket2::Domain,
    addr: &socket2::SockAddr,
    timeout: Option<Duration>,
    into: impl FnOnce(socket2::Socket) -> T,
) -> io::Result<Socket<T>> {
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM.cloexec(), None)?;
    sock.set_nonblocking(true)?;
    // NOTE: register only once the connect is under way: an unconnected
    // socket polls as hung up, which would be recorded as readiness.
    let pending = socket::connect_start(&sock, addr)?;
    let s = Socket::register(handle, sock)?;
    if pending {
        let deadline = crate::wait::deadline(timeout);
        // NOTE: the socket becomes writable (or reports an error) when the
        // connect completes; `SO_ERROR` says which.
        s.reg.io(Dir::Write, deadline, |_| false, || socket::connect_result(&s.sock))?;
    }
    let Socket { reg, sock, read_to, write_to } = s;
    Ok(Socket { reg, sock: into(sock), read_to, write_to })
}

/// `from_std_in`, `AsRawFd`, `AsFd` and `Debug` for a socket type
/// `$t(Socket<$std>)`.
macro_rules! socket_type {
    ($t:ident, $std:ty) => {
        impl $t {
            /// Adopt a std socket of this kind (bound, listening or
            /// connected) on `handle`'s runtime; it is made non-blocking.
            pub fn from_std_in(handle: &percore_lwkt::Handle, s: $std) -> std::io::Result<$t> {
                $crate::net::socket::Socket::adopt(handle, s).map($t)
            }

            /// Close the socket to its users, from any uthread or thread:
            /// every call waiting on it now (an `accept`, a read, a write,
            /// a receive...) wakes, and it and every later call fail at once
            /// with an `io::Error` of kind
            /// [`Other`](std::io::ErrorKind::Other) whose inner error is
            /// [`Error::Closed`](crate::Error::Closed) (`e.get_ref()`
            /// downcasts to it). The way to stop a uthread blocked in
            /// `accept` (see [`TcpListener`](crate::net::TcpListener)).
            /// Idempotent.
            ///
            /// The descriptor itself stays open until the value is dropped,
            /// so its number cannot be reused under a waiter: only then is a
            /// listener's port released, and does a stream's peer see the
            /// end of the stream (`shutdown` tells the peer at once).
            pub fn close(&self) {
                self.0.close()
            }

            /// Deregister the socket from its worker's epoll instance and
            /// give back the std socket, still non-blocking. The way to
            /// hand a socket to another worker (which adopts it with
            /// `from_std_in`, so that its readiness is reported there, with
            /// no cross-worker wake-up per event) or to another library. A
            /// socket [`close`d](Self::close) here comes back open: only the
            /// users of this value saw it closed.
            pub fn into_std(self) -> $std {
                self.0.into_std()
            }
        }
        impl $crate::net::AsSocket for $t {}
        impl $crate::net::sealed::Sealed for $t {
            fn io_source(&self) -> &$crate::io::source::Source {
                self.0.source()
            }
        }
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.0.sock.as_raw_fd()
            }
        }
        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.0.sock.as_fd()
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                use std::os::fd::AsRawFd;
                f.debug_struct(stringify!($t)).field("fd", &self.as_raw_fd()).finish()
            }
        }
    };
}

/// The read and write timeouts of a socket type `$t(Socket<_>)`.
macro_rules! timeouts {
    ($t:ty) => {
        impl $t {
            /// Limit how long one read (or receive) waits (`None`: no limit,
            /// the default); a call that waits longer fails with `TimedOut`.
            /// A zero duration is `InvalidInput`.
            pub fn set_read_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
                self.0.read_to.set(t)
            }
            /// Limit how long one write (or send) waits (see
            /// `set_read_timeout`).
            pub fn set_write_timeout(&self, t: Option<std::time::Duration>) -> std::io::Result<()> {
                self.0.write_to.set(t)
            }
            /// The read timeout.
            pub fn read_timeout(&self) -> Option<std::time::Duration> {
                self.0.read_to.get()
            }
            /// The write timeout.
            pub fn write_timeout(&self) -> Option<std::time::Duration> {
                self.0.write_to.get()
            }
        }
    };
}

/// `Read` and `Write` for a stream type `$t(Socket<_>)` and for `&$t`, its
/// timeouts, and `shutdown`.
macro_rules! stream_io {
    ($t:ty) => {
        timeouts!($t);
        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }
        impl std::io::Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0.read_stream(buf.len(), |mut s| s.read(buf))
            }
            fn read_vectored(&mut self, bufs: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
                let want = bufs.iter().map(|b| b.len()).sum();
                self.0.read_stream(want, |mut s| s.read_vectored(bufs))
            }
        }
        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl std::io::Write for &$t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.write_stream(buf.len(), |mut s| s.write(buf))
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                let want = bufs.iter().map(|b| b.len()).sum();
                self.0.write_stream(want, |mut s| s.write_vectored(bufs))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl $t {
            /// Shut down the read half, the write half, or both (the
            /// kernel's `shutdown(2)`: a read waiting here then returns the
            /// end of the stream, a write `BrokenPipe`).
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.0.sock.shutdown(how)
            }
        }
    };
}
