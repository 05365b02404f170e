//! UDP over the socket core: [`UdpSocket`].

use super::socket::{handle, Socket};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

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
pub struct UdpSocket(Socket<std::net::UdpSocket>);
socket_type!(UdpSocket, std::net::UdpSocket);
timeouts!(UdpSocket);

impl UdpSocket {
    /// Bind to `addr` on the calling uthread's runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Self::from_std_in(&handle()?, std::net::UdpSocket::bind(addr)?)
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
}
