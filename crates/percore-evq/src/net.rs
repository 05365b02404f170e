//! # Sockets for uthreads
//!
//! Blocking-style sockets whose blocking parks only the calling uthread:
//! underneath every socket is non-blocking and registered, edge triggered,
//! on the epoll instance of the worker that created it (`io.rs`). A call
//! tries the system call; on `EAGAIN` the uthread waits for readiness (or
//! its timeout) while the worker runs others, then retries.
//!
//! Errors are `std::io::Error` values with the usual kinds: `TimedOut` after
//! a read / write / accept / connect timeout, `ConnectionReset`,
//! `ConnectionRefused`, `BrokenPipe`, `UnexpectedEof` from `read_exact`...
//! Reads and writes may be partial, as with `std::net`; `write_all` and
//! `read_exact` (from `std::io::{Read, Write}`) loop.
//!
//! Sockets may be used from foreign threads too (they then block the OS
//! thread, still without busy waiting) and moved between uthreads; their
//! readiness keeps arriving through the worker that created them.
//!
//! A socket outlives its runtime only as a dead end: once the runtime is
//! dropped nothing reports readiness, so every read, write, accept, connect
//! or peek fails at once with an `io::Error` of kind
//! [`Other`](std::io::ErrorKind::Other) whose inner error is
//! [`Error::Shutdown`] (`e.get_ref()` downcasts to it), including a call
//! that is already waiting (a foreign thread notices within 50 ms). Closing
//! (dropping) it still works. `NotConnected` was not chosen: it would claim
//! something about the peer, which may well still be there.
//!
//! ```
//! use percore_evq::{net::UnixStream, Error};
//! use std::io::Read;
//!
//! let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
//! let (mut a, _b) = rt.block_on(|| UnixStream::pair().unwrap()).unwrap();
//! drop(rt);
//! let e = a.read(&mut [0u8; 8]).unwrap_err();
//! assert!(matches!(e.get_ref().and_then(|e| e.downcast_ref()), Some(Error::Shutdown)));
//! ```
//!
//! ```
//! use percore_evq::net::{TcpListener, TcpStream};
//! use std::io::{Read, Write};
//!
//! let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
//! let echoed = rt.block_on(|| {
//!     let l = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = l.local_addr().unwrap();
//!     let server = percore_lwkt::spawn(move || {
//!         let (mut s, _) = l.accept().unwrap();
//!         let mut buf = [0u8; 5];
//!         s.read_exact(&mut buf).unwrap();
//!         s.write_all(&buf).unwrap();
//!     }).unwrap();
//!     let mut c = TcpStream::connect(addr).unwrap();
//!     c.write_all(b"hello").unwrap();
//!     let mut back = [0u8; 5];
//!     c.read_exact(&mut back).unwrap();
//!     server.join().unwrap();
//!     back
//! }).unwrap();
//! assert_eq!(&echoed, b"hello");
//! ```

use crate::error::Error;
use crate::io::{Dir, Registration};
use crate::sys::{epoll, socket};
use percore_lwkt::Handle;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const INTEREST: u32 = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::PRI;

fn handle() -> io::Result<Handle> {
    Handle::current().ok_or_else(|| Error::NoRuntime.into())
}

/// A timeout setting: nanoseconds, 0 for none.
#[derive(Default)]
struct Timeout(AtomicU64);

impl Timeout {
    fn set(&self, t: Option<Duration>) -> io::Result<()> {
        match t {
            Some(d) if d.is_zero() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero timeout is not allowed (use None for no limit)",
            )),
            _ => {
                // ORDERING: relaxed: a setting, read by later calls.
                self.0.store(t.map_or(0, |d| d.as_nanos().clamp(1, u64::MAX as u128) as u64), Relaxed);
                Ok(())
            }
        }
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        crate::waiter::deadline(self.get())
    }
}

/// A registered, non-blocking socket `S` with read and write timeouts.
// NOTE: field order is drop order: deregister before the socket closes.
struct Sock<S: AsRawFd> {
    reg: Registration,
    sock: S,
    read_to: Timeout,
    write_to: Timeout,
}

impl<S: AsRawFd> Sock<S> {
    fn new(handle: &Handle, sock: S, set_nonblocking: impl FnOnce(&S) -> io::Result<()>) -> io::Result<Sock<S>> {
        set_nonblocking(&sock)?;
        let reg = Registration::new(handle, sock.as_raw_fd(), INTEREST, None)?;
        Ok(Sock { reg, sock, read_to: Timeout::default(), write_to: Timeout::default() })
    }

    /// A read-direction operation that may wait (`read_to` applies).
    fn read_with<R>(&self, mut op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.reg.io(Dir::Read, self.read_to.deadline(), |_| false, || op(&self.sock))
    }

    /// A write-direction operation that may wait (`write_to` applies).
    fn write_with<R>(&self, mut op: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.reg.io(Dir::Write, self.write_to.deadline(), |_| false, || op(&self.sock))
    }

    /// A stream read of `want` bytes: a short, non-empty read means the
    /// socket is drained (an empty one is the end of the stream).
    fn read_stream(&self, want: usize, mut op: impl FnMut(&S) -> io::Result<usize>) -> io::Result<usize> {
        self.reg.io(Dir::Read, self.read_to.deadline(), |&n| n > 0 && n < want, || op(&self.sock))
    }

    /// A stream write of `want` bytes: a short write means the send buffer
    /// is full.
    fn write_stream(&self, want: usize, mut op: impl FnMut(&S) -> io::Result<usize>) -> io::Result<usize> {
        self.reg.io(Dir::Write, self.write_to.deadline(), |&n| n < want, || op(&self.sock))
    }
}

/// Start a non-blocking connect of `sock` to `addr` and wait for it.
fn connect_socket(
    handle: &Handle,
    sock: socket2::Socket,
    addr: &socket2::SockAddr,
    timeout: Option<Duration>,
) -> io::Result<Sock<socket2::Socket>> {
    sock.set_nonblocking(true)?;
    // NOTE: register only once the connect is under way: an unconnected
    // socket polls as hung up, which would be recorded as readiness.
    let pending = socket::connect_start(&sock, addr)?;
    let s = Sock::new(handle, sock, |_| Ok(()))?;
    if !pending {
        return Ok(s);
    }
    let deadline = crate::waiter::deadline(timeout);
    // NOTE: the socket becomes writable (or reports an error) when the
    // connect completes; `SO_ERROR` says which.
    s.reg.io(Dir::Write, deadline, |_| false, || socket::connect_result(&s.sock))?;
    Ok(s)
}

macro_rules! fd_traits {
    ($t:ty) => {
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.0.sock.as_raw_fd()
            }
        }
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.sock.as_fd()
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t)).field("fd", &self.as_raw_fd()).finish()
            }
        }
    };
}

macro_rules! stream_io {
    ($t:ty) => {
        impl Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }
        impl Read for &$t {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0.read_stream(buf.len(), |mut s| s.read(buf))
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                let want = bufs.iter().map(|b| b.len()).sum();
                self.0.read_stream(want, |mut s| s.read_vectored(bufs))
            }
        }
        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Write for &$t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write_stream(buf.len(), |mut s| s.write(buf))
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                let want = bufs.iter().map(|b| b.len()).sum();
                self.0.write_stream(want, |mut s| s.write_vectored(bufs))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl $t {
            /// Limit how long one read waits (`None`: no limit, the default);
            /// a read that waits longer fails with `TimedOut`. A zero
            /// duration is `InvalidInput`.
            pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                self.0.read_to.set(t)
            }
            /// Limit how long one write waits (see `set_read_timeout`).
            pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                self.0.write_to.set(t)
            }
            /// The read timeout.
            pub fn read_timeout(&self) -> Option<Duration> {
                self.0.read_to.get()
            }
            /// The write timeout.
            pub fn write_timeout(&self) -> Option<Duration> {
                self.0.write_to.get()
            }
            /// Shut down the read half, the write half, or both.
            pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                self.0.sock.shutdown(how)
            }
        }
    };
}

/// A TCP listener for uthreads.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let l = percore_evq::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     l.set_accept_timeout(Some(std::time::Duration::from_millis(5))).unwrap();
///     assert_eq!(l.accept().unwrap_err().kind(), std::io::ErrorKind::TimedOut);
/// }).unwrap();
/// ```
pub struct TcpListener(Sock<std::net::TcpListener>);
fd_traits!(TcpListener);

impl TcpListener {
    /// Bind to `addr` (the first address that works) on the calling
    /// uthread's runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::from_std_in(&handle()?, std::net::TcpListener::bind(addr)?)
    }

    /// Adopt a std listener on `handle`'s runtime (it is made non-blocking).
    pub fn from_std_in(handle: &Handle, l: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener(Sock::new(handle, l, |l| l.set_nonblocking(true))?))
    }

    /// Wait for a connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let h = self.0.reg.handle().clone();
        let (s, a) = self.0.read_with(|l| l.accept())?;
        Ok((TcpStream(Sock::new(&h, s, |s| s.set_nonblocking(true))?), a))
    }

    /// Limit how long `accept` waits (`None`: no limit).
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.read_to.set(t)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock.local_addr()
    }
}

/// A TCP connection for uthreads; `Read` and `Write` are implemented for it
/// and for `&TcpStream` (one reader and one writer may work at once).
pub struct TcpStream(Sock<std::net::TcpStream>);
fd_traits!(TcpStream);
stream_io!(TcpStream);

impl TcpStream {
    /// Connect to `addr` (each resolved address in turn) from the calling
    /// uthread's runtime.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let h = handle()?;
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
        for a in addr.to_socket_addrs()? {
            match Self::connect_in(&h, &a, None) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connect to `addr` on `handle`'s runtime, giving up after `timeout`
    /// (`TimedOut`).
    ///
    /// ```
    /// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let a = l.local_addr().unwrap();
    /// drop(l); // nobody listens any more
    /// let e = percore_evq::net::TcpStream::connect_in(rt.handle(), &a, Some(std::time::Duration::from_secs(5))).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    pub fn connect_in(handle: &Handle, addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let sock = socket2::Socket::new(socket2::Domain::for_address(*addr), socket2::Type::STREAM.cloexec(), None)?;
        let s = connect_socket(handle, sock, &(*addr).into(), timeout)?;
        let Sock { reg, sock, read_to, write_to } = s;
        Ok(TcpStream(Sock { reg, sock: sock.into(), read_to, write_to }))
    }

    /// Adopt a connected std stream on `handle`'s runtime.
    pub fn from_std_in(handle: &Handle, s: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream(Sock::new(handle, s, |s| s.set_nonblocking(true))?))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock.local_addr()
    }

    /// Read without consuming (waits like `read`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_with(|s| s.peek(buf))
    }

    /// Set `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.0.sock.set_nodelay(on)
    }
}

/// A UDP socket for uthreads.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let a = percore_evq::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = percore_evq::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     b.send_to(b"ping", a.local_addr().unwrap()).unwrap();
///     let mut buf = [0u8; 8];
///     let (n, from) = a.recv_from(&mut buf).unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], b.local_addr().unwrap()));
/// }).unwrap();
/// ```
pub struct UdpSocket(Sock<std::net::UdpSocket>);
fd_traits!(UdpSocket);

impl UdpSocket {
    /// Bind to `addr` on the calling uthread's runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Self::from_std_in(&handle()?, std::net::UdpSocket::bind(addr)?)
    }

    /// Adopt a std socket on `handle`'s runtime.
    pub fn from_std_in(handle: &Handle, s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket(Sock::new(handle, s, |s| s.set_nonblocking(true))?))
    }

    /// Receive one datagram (truncated to `buf`) and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.read_with(|s| s.recv_from(buf))
    }

    /// Send one datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let a = addr.to_socket_addrs()?.next().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.0.write_with(|s| s.send_to(buf, a))
    }

    /// Set the default peer for `send` / `recv`.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.0.sock.connect(addr)
    }

    /// Send to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_with(|s| s.send(buf))
    }

    /// Receive from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_with(|s| s.recv(buf))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.sock.local_addr()
    }

    /// Limit how long a receive waits (`None`: no limit).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.read_to.set(t)
    }

    /// Limit how long a send waits (`None`: no limit).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.write_to.set(t)
    }
}

/// A Unix stream socket for uthreads.
///
/// ```
/// use std::io::{Read, Write};
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let (mut a, mut b) = percore_evq::net::UnixStream::pair().unwrap();
///     a.write_all(b"hi").unwrap();
///     let mut buf = [0u8; 2];
///     b.read_exact(&mut buf).unwrap();
///     assert_eq!(&buf, b"hi");
///     drop(a);
///     assert_eq!(b.read(&mut buf).unwrap(), 0); // end of stream
/// }).unwrap();
/// ```
pub struct UnixStream(Sock<std::os::unix::net::UnixStream>);
fd_traits!(UnixStream);
stream_io!(UnixStream);

impl UnixStream {
    /// Connect to the socket at `path` from the calling uthread's runtime.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let h = handle()?;
        let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM.cloexec(), None)?;
        let s = connect_socket(&h, sock, &socket2::SockAddr::unix(path)?, None)?;
        let Sock { reg, sock, read_to, write_to } = s;
        Ok(UnixStream(Sock {
            reg,
            sock: std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(sock)),
            read_to,
            write_to,
        }))
    }

    /// A connected pair on the calling uthread's runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let h = handle()?;
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((Self::from_std_in(&h, a)?, Self::from_std_in(&h, b)?))
    }

    /// Adopt a connected std stream on `handle`'s runtime.
    pub fn from_std_in(handle: &Handle, s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream(Sock::new(handle, s, |s| s.set_nonblocking(true))?))
    }
}

/// A Unix stream listener for uthreads.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let dir = std::env::temp_dir().join(format!("percore-evq-doc-{}", std::process::id()));
/// let _ = std::fs::remove_file(&dir);
/// let p = dir.clone();
/// rt.block_on(move || {
///     let l = percore_evq::net::UnixListener::bind(&p).unwrap();
///     let c = percore_evq::net::UnixStream::connect(&p).unwrap();
///     let (_s, _) = l.accept().unwrap();
///     drop(c);
/// }).unwrap();
/// std::fs::remove_file(&dir).unwrap();
/// ```
pub struct UnixListener(Sock<std::os::unix::net::UnixListener>);
fd_traits!(UnixListener);

impl UnixListener {
    /// Bind to `path` on the calling uthread's runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Self::from_std_in(&handle()?, std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Adopt a std listener on `handle`'s runtime.
    pub fn from_std_in(handle: &Handle, l: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener(Sock::new(handle, l, |l| l.set_nonblocking(true))?))
    }

    /// Wait for a connection.
    pub fn accept(&self) -> io::Result<(UnixStream, std::os::unix::net::SocketAddr)> {
        let h = self.0.reg.handle().clone();
        let (s, a) = self.0.read_with(|l| l.accept())?;
        Ok((UnixStream(Sock::new(&h, s, |s| s.set_nonblocking(true))?), a))
    }

    /// Limit how long `accept` waits (`None`: no limit).
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.read_to.set(t)
    }
}
