//! TCP over the socket core: [`TcpListener`] and [`TcpStream`].

use super::socket::{self, handle, Socket};
use percore_lwkt::Handle;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A TCP listener for uthreads.
///
/// [`accept`](TcpListener::accept) parks the calling uthread until a
/// connection comes, its timeout passes, or the listener is closed: another
/// uthread (or thread) that holds it, in an `Arc` for instance, stops every
/// blocked `accept` with [`close`](TcpListener::close), which fails them
/// with [`Error::Closed`](crate::Error::Closed) inside an `io::Error`.
///
/// ```
/// use percore_evq::{net::TcpListener, Error};
/// use std::sync::Arc;
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(|| {
///     let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
///     let l2 = l.clone();
///     let server = percore_lwkt::spawn(move || l2.accept().map(|_| ())).unwrap();
///     l.close(); // from another uthread: the server's accept returns
///     let e = server.join().unwrap().unwrap_err();
///     assert!(matches!(e.get_ref().and_then(|e| e.downcast_ref()), Some(Error::Closed)));
/// }).unwrap();
/// ```
///
/// A timeout:
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(|| {
///     let l = percore_evq::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     l.set_accept_timeout(Some(std::time::Duration::from_millis(5))).unwrap();
///     assert_eq!(l.accept().unwrap_err().kind(), std::io::ErrorKind::TimedOut);
/// }).unwrap();
/// ```
pub struct TcpListener(Socket<std::net::TcpListener>);
socket_type!(TcpListener, std::net::TcpListener);

impl TcpListener {
    /// Bind to `addr` (the first address that works) on the calling
    /// uthread's runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::from_std_in(&handle()?, std::net::TcpListener::bind(addr)?)
    }

    /// Wait for a connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self.0.accept(|l| l.accept())?;
        Ok((TcpStream(s), a))
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
///
/// A stream is registered on the epoll instance of the worker that made it
/// (accepted, connected or adopted it). To serve it on another worker, hand
/// it over with [`into_std`](TcpStream::into_std) and adopt it there:
///
/// ```
/// use percore_evq::net::{TcpListener, TcpStream};
/// use std::io::{Read, Write};
///
/// let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
/// let h = rt.handle().clone();
/// rt.block_on(move || {
///     let l = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = l.local_addr().unwrap();
///     let client = percore_lwkt::spawn(move || {
///         let mut c = TcpStream::connect(addr).unwrap();
///         c.write_all(b"ping").unwrap();
///         let mut r = [0; 4];
///         c.read_exact(&mut r).unwrap();
///         r
///     })
///     .unwrap();
///     let (s, _) = l.accept().unwrap();
///     let s = s.into_std(); // off this worker's epoll instance
///     let h2 = h.clone();
///     let server = percore_lwkt::Builder::new()
///         .worker(1)
///         .spawn_on(&h, move || {
///             let mut s = TcpStream::from_std_in(&h2, s).unwrap(); // on worker 1's
///             let mut b = [0; 4];
///             s.read_exact(&mut b).unwrap();
///             s.write_all(b"pong").unwrap();
///         })
///         .unwrap();
///     server.join().unwrap();
///     assert_eq!(&client.join().unwrap(), b"pong");
/// })
/// .unwrap();
/// ```
pub struct TcpStream(Socket<std::net::TcpStream>);
socket_type!(TcpStream, std::net::TcpStream);
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
        let domain = socket2::Domain::for_address(*addr);
        socket::connect(handle, domain, &(*addr).into(), timeout, std::net::TcpStream::from).map(TcpStream)
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
