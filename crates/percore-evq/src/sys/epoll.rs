//! epoll(7): the event bits, and the calls on an epoll instance that
//! [`Epoll`](crate::Epoll) owns (its *inner* instance).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Readable (`EPOLLIN`).
pub(crate) const IN: u32 = libc::EPOLLIN as u32;
/// Writable (`EPOLLOUT`).
pub(crate) const OUT: u32 = libc::EPOLLOUT as u32;
/// Urgent data (`EPOLLPRI`).
pub(crate) const PRI: u32 = libc::EPOLLPRI as u32;
/// The peer shut down its writing half (`EPOLLRDHUP`).
pub(crate) const RDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Hang-up (`EPOLLHUP`), reported without being asked for.
pub(crate) const HUP: u32 = libc::EPOLLHUP as u32;
/// Error (`EPOLLERR`), reported without being asked for.
pub(crate) const ERR: u32 = libc::EPOLLERR as u32;
/// Edge triggered (`EPOLLET`).
pub(crate) const ET: u32 = libc::EPOLLET as u32;
/// One-shot (`EPOLLONESHOT`).
pub(crate) const ONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// What [`ctl`] does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ctl {
    /// `EPOLL_CTL_ADD`.
    Add,
    /// `EPOLL_CTL_MOD`.
    Modify,
    /// `EPOLL_CTL_DEL` (interest and data are ignored).
    Delete,
}

/// One event as the kernel reports it: the bits and the caller's data.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Event {
    pub(crate) events: u32,
    pub(crate) data: u64,
}

/// A new epoll instance, close-on-exec.
pub(crate) fn create() -> io::Result<OwnedFd> {
    // SAFETY: a plain system call with no pointer arguments.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(ep, op, fd, {events, data})`.
pub(crate) fn ctl(ep: &OwnedFd, op: Ctl, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    let op = match op {
        Ctl::Add => libc::EPOLL_CTL_ADD,
        Ctl::Modify => libc::EPOLL_CTL_MOD,
        Ctl::Delete => libc::EPOLL_CTL_DEL,
    };
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is valid for the whole call; the kernel checks `fd`.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `e` says the descriptor was not (or no longer) in the set, or
/// is closed: what a delete after a close gets.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADF) | Some(libc::ENOENT))
}

/// The most events one [`poll`] takes.
pub(crate) const POLL_MAX: usize = 64;

/// Take up to `out.len()` (at most [`POLL_MAX`]) ready events without
/// blocking; returns how many were written to the front of `out`.
pub(crate) fn poll(ep: &OwnedFd, out: &mut [Event]) -> io::Result<usize> {
    let mut buf = [libc::epoll_event { events: 0, u64: 0 }; POLL_MAX];
    let max = out.len().min(POLL_MAX);
    // SAFETY: `buf` has room for `max` events and outlives the call.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), buf.as_mut_ptr(), max as i32, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for (o, e) in out.iter_mut().zip(&buf[..n]) {
        *o = Event { events: e.events, data: e.u64 };
    }
    Ok(n)
}
