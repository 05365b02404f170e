//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

/// Run `f` on its own thread and return its result; fail with a clear
/// message, instead of hanging the test run, if it takes longer than `secs`
/// (a lost wake-up, a waiter that never returns). `progress` is printed on
/// a hang.
pub(crate) fn watchdog<T: Send + 'static>(
    secs: u64,
    what: &str,
    progress: impl Fn() -> String,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn the watched thread");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => {
            t.join().expect("watched thread");
            v
        }
        // The thread panicked: re-raise its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sent nothing, yet returned"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "{what}: still running after {secs} s (a lost wake-up or a waiter that never returns); {}",
                progress()
            )
        }
    }
}

/// The process-wide evq counter `evq.<name>` (0 before first use).
pub(crate) fn stat(name: &str) -> u64 {
    percore_cpu::stats::get(&format!("evq.{name}")).unwrap_or(0)
}

/// A non-blocking eventfd.
pub(crate) fn eventfd() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain system call; the result is checked and owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Add `v` to an eventfd's counter.
pub(crate) fn efd_write(fd: &impl std::os::fd::AsRawFd, v: u64) {
    // SAFETY: 8 bytes from a live u64.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&v as *const u64).cast(), 8) };
    assert_eq!(n, 8, "eventfd write: {}", std::io::Error::last_os_error());
}

/// Take an eventfd's counter (`None`: it was zero).
pub(crate) fn efd_read(fd: &impl std::os::fd::AsRawFd) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: 8 bytes into a live u64.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
        return None;
    }
    assert_eq!(n, 8, "eventfd read: {}", std::io::Error::last_os_error());
    Some(v)
}
