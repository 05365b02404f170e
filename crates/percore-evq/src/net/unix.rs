//! Unix stream sockets over the socket core: [`UnixListener`] and
//! [`UnixStream`].

use super::socket::{self, handle, Socket};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net;
use std::path::Path;
use std::time::Duration;

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
pub struct UnixStream(Socket<net::UnixStream>);
socket_type!(UnixStream, net::UnixStream);
stream_io!(UnixStream);

impl UnixStream {
    /// Connect to the socket at `path` from the calling uthread's runtime.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = socket2::SockAddr::unix(path)?;
        let into = |s: socket2::Socket| net::UnixStream::from(OwnedFd::from(s));
        socket::connect(&handle()?, socket2::Domain::UNIX, &addr, None, into).map(UnixStream)
    }

    /// A connected pair on the calling uthread's runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let h = handle()?;
        let (a, b) = net::UnixStream::pair()?;
        Ok((Self::from_std_in(&h, a)?, Self::from_std_in(&h, b)?))
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
pub struct UnixListener(Socket<net::UnixListener>);
socket_type!(UnixListener, net::UnixListener);

impl UnixListener {
    /// Bind to `path` on the calling uthread's runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Self::from_std_in(&handle()?, net::UnixListener::bind(path)?)
    }

    /// Wait for a connection.
    pub fn accept(&self) -> io::Result<(UnixStream, net::SocketAddr)> {
        let (s, a) = self.0.accept(|l| l.accept())?;
        Ok((UnixStream(s), a))
    }

    /// Limit how long `accept` waits (`None`: no limit).
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.0.read_to.set(t)
    }
}
