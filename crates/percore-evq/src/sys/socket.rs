//! The socket calls that `std::net` and `socket2` leave to the caller: a
//! connect that does not wait, and asking how it ended.

use std::io;

/// Start connecting `sock` (already non-blocking) to `addr`: `Ok(true)` if
/// the connect is under way (`EINPROGRESS`), `Ok(false)` if it completed at
/// once (as a Unix socket's may).
pub(crate) fn connect_start(sock: &socket2::Socket, addr: &socket2::SockAddr) -> io::Result<bool> {
    match sock.connect(addr) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(e),
    }
}

/// How a connect under way stands: `Ok` once connected, its error
/// (`SO_ERROR`) if it failed, `WouldBlock` while still under way.
pub(crate) fn connect_result(sock: &socket2::Socket) -> io::Result<()> {
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

/// Whether `fd` is ready now for reading (`read`) or writing, without
/// waiting: `poll(2)` with a zero timeout. Errors and hang-ups count as
/// ready (the next call reports them), and so does a failed `poll`.
pub(crate) fn ready_now(fd: std::os::fd::RawFd, read: bool) -> bool {
    let events = if read { libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP } else { libc::POLLOUT };
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0
}
