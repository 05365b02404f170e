//! # Sockets for uthreads
//!
//! Blocking-style sockets whose blocking parks only the calling uthread:
//! underneath every socket is non-blocking and registered, edge triggered,
//! on the epoll instance of the worker that created it (`io.rs`). A call
//! tries the system call; on `EAGAIN` the uthread waits for readiness (or
//! its timeout) while the worker runs others, then retries.
//!
//! ## Layout
//!
//! One socket core, `socket.rs`: a descriptor, its registration and its
//! read and write timeouts, with the one retry-or-wait loop every
//! operation goes through, the non-blocking connect and accept, and the
//! trait impls every socket shares. Each public type is that core around
//! one std socket: [`TcpListener`] and [`TcpStream`] in `tcp.rs`,
//! [`UdpSocket`] in `udp.rs`, [`UnixListener`] and [`UnixStream`] in
//! `unix.rs`. The system calls themselves are std's and socket2's, and
//! `sys/socket.rs`'s for the connect.
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
//! [`Error::Shutdown`](crate::Error::Shutdown) (`e.get_ref()` downcasts to it), including a call
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

// NOTE: first, so that its macros are in scope in the modules after it.
#[macro_use]
mod socket;
mod tcp;
mod udp;
mod unix;

/// A socket of this module, for [`Select::readable`](crate::Select::readable),
/// [`writable`](crate::Select::writable) and
/// [`acceptable`](crate::Select::acceptable): every socket type here
/// implements it (and only they: it is sealed).
pub trait AsSocket: sealed::Sealed + std::os::fd::AsRawFd {}

pub(crate) mod sealed {
    /// What a select needs of a socket: its readiness.
    pub trait Sealed {
        /// The descriptor's readiness and waiters.
        fn io_source(&self) -> &crate::io::source::Source;
    }
}

pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
