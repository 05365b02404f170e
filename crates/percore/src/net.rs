//! # Sockets for uthreads
//!
//! The `std::net` shapes (`bind`, `accept`, `connect`, `Read`, `Write`,
//! timeouts, `shutdown`), but a call that would block parks only the calling
//! uthread: the socket is non-blocking underneath and registered on its
//! worker's own kernel epoll instance, so the worker runs other uthreads
//! until it is ready. These are [`evq::net`](crate::evq::net)'s sockets; its
//! docs say how readiness and errors work. [`Epoll`] waits on any file
//! descriptors, from many uthreads at once, each with its own timeout.
//!
//! A socket may be used from a foreign thread too (it then blocks that OS
//! thread, without busy waiting). Creating one needs a runtime: from a
//! uthread, or through the `*_in(&Handle)` constructors.
//!
//! ```
//! use percore::net::{TcpListener, TcpStream, UdpSocket};
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! percore::run(|| {
//!     // TCP: a listener, one connection, a bounded read.
//!     let l = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = l.local_addr().unwrap();
//!     let peer = percore::spawn(move || {
//!         let mut c = TcpStream::connect(addr).unwrap();
//!         c.write_all(b"hi").unwrap();
//!     })
//!     .unwrap();
//!     let (mut s, _) = l.accept().unwrap();
//!     s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
//!     let mut buf = [0u8; 2];
//!     s.read_exact(&mut buf).unwrap();
//!     assert_eq!(&buf, b"hi");
//!     peer.join().unwrap();
//!
//!     // UDP: a datagram to ourselves.
//!     let u = UdpSocket::bind("127.0.0.1:0").unwrap();
//!     u.send_to(b"d", u.local_addr().unwrap()).unwrap();
//!     let (n, _) = u.recv_from(&mut buf).unwrap();
//!     assert_eq!(&buf[..n], b"d");
//! });
//! ```

/// Re-exported from [`evq::net`](crate::evq::net).
#[doc(inline)]
pub use percore_evq::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

/// A socket of this module, for [`sync::Select`](crate::sync::Select)'s
/// `readable`, `writable` and `acceptable` (sealed; [`evq::net::AsSocket`](crate::evq::net::AsSocket)).
pub use percore_evq::net::AsSocket;

/// Epoll for uthreads: an interest set waited on by many uthreads at once,
/// each with its own timeout alarm ([`evq::Epoll`](crate::evq::Epoll)).
///
/// ```
/// use percore::net::{Epoll, EpollEvent, Interest};
/// use std::io::Write;
/// use std::time::Duration;
///
/// percore::run(|| {
///     // Any descriptor: here a std socket pair.
///     let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
///     let ep = Epoll::new().unwrap();
///     ep.add(&a, Interest::READABLE, 7).unwrap();
///     b.write_all(b"x").unwrap();
///     let mut evs = [EpollEvent::default(); 4];
///     let n = ep.wait(&mut evs, Some(Duration::from_secs(10))).unwrap();
///     assert_eq!((n, evs[0].data), (1, 7));
/// });
/// ```
pub use percore_evq::Epoll;

/// One readiness report of [`Epoll::wait`] ([`evq::EpollEvent`](crate::evq::EpollEvent)).
pub use percore_evq::EpollEvent;

/// What an [`Epoll`] waits for on a descriptor ([`evq::Interest`](crate::evq::Interest)).
///
/// ```
/// use percore::net::Interest;
/// let i = Interest::READABLE | Interest::WRITABLE;
/// assert!(i.contains(Interest::READABLE) && !i.contains(Interest::EDGE));
/// ```
pub use percore_evq::Interest;

/// The argument of `shutdown` on streams, from `std::net`.
///
/// ```
/// use percore::net::{Shutdown, UnixStream};
/// use std::io::Read;
///
/// percore::run(|| {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     a.shutdown(Shutdown::Write).unwrap();
///     assert_eq!(b.read(&mut [0u8; 1]).unwrap(), 0); // end of stream
/// });
/// ```
pub use std::net::Shutdown;
