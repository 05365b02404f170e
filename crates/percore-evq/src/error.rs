//! The crate's error type.

use std::io;

/// Why an operation of this crate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call needs a runtime: make it from a uthread, or use the
    /// `*_in(&Handle)` variant.
    #[error("not called from a uthread of a percore runtime (use the `_in(&Handle)` variant)")]
    NoRuntime,
    /// The timeout passed first.
    #[error("timed out")]
    TimedOut,
    /// The queue was closed, or the socket was closed with its `close`
    /// (for a socket: inside an `io::Error` of kind `Other`).
    #[error("closed (by a call to `close`)")]
    Closed,
    /// The runtime the alarm or epoll set belongs to has shut down: nothing
    /// would ever fire or wake the wait.
    #[error("the runtime has shut down")]
    Shutdown,
    /// An argument is out of range; the message says which.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The scheduler refused (for example: blocking inside a critical
    /// section, or the runtime shut down).
    #[error(transparent)]
    Lwkt(#[from] percore_lwkt::Error),
    /// The alarm zone is at its limit or out of memory.
    #[error(transparent)]
    Zone(#[from] percore_zone::Error),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::TimedOut => io::Error::new(io::ErrorKind::TimedOut, "timed out"),
            Error::Invalid(m) => io::Error::new(io::ErrorKind::InvalidInput, m),
            e => io::Error::other(e),
        }
    }
}
