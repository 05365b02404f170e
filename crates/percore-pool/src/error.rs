//! Errors and panic payloads.

use std::any::Any;
use std::fmt;
use std::sync::Mutex;

/// Everything that can go wrong in `percore-pool`. The library never panics
/// on bad input; it returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The priority is neither [`PRI_NONE`](crate::PRI_NONE) nor within
    /// [`PRI_MIN`](crate::PRI_MIN)`..=`[`PRI_MAX`](crate::PRI_MAX).
    #[error("invalid thread pool priority {0} (valid: -1 for none, or 0..=39)")]
    InvalidPriority(i32),
    /// A [`Builder`](crate::Builder) setting is out of range.
    #[error("invalid thread pool configuration: {0}")]
    InvalidConfig(&'static str),
    /// The operating system refused to create the pool's overseer thread.
    #[error("cannot create the pool's overseer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// Topology or pinning failed (per-CPU pools).
    #[error(transparent)]
    Cpu(#[from] percore_cpu::Error),
    /// The CPU has no pool in this per-CPU pool (it is not in the process's
    /// affinity mask).
    #[error("CPU {0} has no pool (not in the process's affinity mask)")]
    NoSuchCpu(usize),
    /// The work was cancelled before it started (by `cancel`, or because its
    /// pool shut down before its delay expired).
    #[error("the job was cancelled before it ran")]
    Cancelled,
    /// The work panicked; the payload is inside.
    #[error("the job panicked: {0}")]
    Panicked(PanicPayload),
    /// A bounded wait ran out of time; the work itself goes on.
    #[error("timed out waiting for the pool")]
    Timeout,
    /// The call would wait for the calling thread itself (a job cancelling,
    /// joining or draining what it is part of).
    #[error("this wait would deadlock: the caller is the job or worker waited for")]
    WouldDeadlock,
}

/// Why a join returned no value: the one shape of this crate's
/// [`JoinHandle::join`](crate::JoinHandle::join) and of
/// `percore_lwkt::JoinHandle::join` (issue 13). [`is_panic`],
/// [`is_cancelled`], [`panic_message`], and [`into_panic`] to resume the
/// panic on the joining thread (tokio's shape). `Send + Sync + 'static`, so
/// `?` carries it into `Box<dyn Error + Send + Sync>`; it converts into
/// [`Error`] too.
///
/// `W` is why *waiting* can be refused: nothing here (`Infallible`, the
/// default: a pool join always waits), the scheduler's error in
/// percore-lwkt (`percore_lwkt::JoinError` is `JoinError<percore_lwkt::Error>`,
/// since a uthread may not block inside a critical section).
///
/// [`is_panic`]: JoinError::is_panic
/// [`is_cancelled`]: JoinError::is_cancelled
/// [`panic_message`]: JoinError::panic_message
/// [`into_panic`]: JoinError::into_panic
///
/// ```
/// let pool = percore_pool::ThreadPool::get(percore_pool::PRI_NONE).unwrap();
/// let e = pool.spawn(|| -> u32 { panic!("boom") }).join().unwrap_err();
/// assert!(e.is_panic() && !e.is_cancelled());
/// assert_eq!(e.panic_message(), Some("boom"));
/// let r = std::panic::catch_unwind(move || std::panic::resume_unwind(e.into_panic()));
/// assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"boom"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError<W = std::convert::Infallible> {
    /// The work panicked; the payload is inside.
    #[error("panicked: {0}")]
    Panicked(PanicPayload),
    /// The work was cancelled before it finished: a pool closure before it
    /// ran ([`JoinHandle::cancel`](crate::JoinHandle::cancel), or its pool
    /// shut down first); a uthread by its runtime's shutdown.
    #[error("cancelled before it finished")]
    Cancelled,
    /// Waiting was refused (never for a pool join).
    #[error("cannot wait: {0}")]
    Wait(W),
}

impl<W> JoinError<W> {
    /// A panic caught with `catch_unwind`.
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        JoinError::Panicked(PanicPayload::new(payload))
    }

    /// Whether the work panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// Whether the work was cancelled before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// The panic message, when it panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panicked(p) => p.is_str().then(|| p.message()),
            _ => None,
        }
    }

    /// The panic payload, to resume with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the error is not a panic ([`is_panic`](JoinError::is_panic) is
    /// false); [`try_into_panic`](JoinError::try_into_panic) does not.
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send> {
        match self.try_into_panic() {
            Ok(p) => p,
            Err(_) => panic!("`JoinError::into_panic` on an error that is not a panic"),
        }
    }

    /// The panic payload, or the error itself when it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send>, Self> {
        match self {
            JoinError::Panicked(p) => Ok(p.into_inner()),
            e => Err(e),
        }
    }
}

impl From<JoinError> for Error {
    fn from(e: JoinError) -> Error {
        match e {
            JoinError::Panicked(p) => Error::Panicked(p),
            JoinError::Cancelled => Error::Cancelled,
            JoinError::Wait(never) => match never {},
        }
    }
}

/// The payload of a panic inside a job, with its message extracted.
///
/// ```
/// let pool = percore_pool::ThreadPool::get(percore_pool::PRI_NONE).unwrap();
/// let h = pool.spawn(|| -> u32 { panic!("boom") });
/// match h.join() {
///     Err(percore_pool::JoinError::Panicked(p)) => assert_eq!(p.message(), "boom"),
///     other => panic!("{other:?}"),
/// }
/// ```
pub struct PanicPayload {
    message: String,
    /// The payload was a `&str` or `String`.
    is_str: bool,
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl PanicPayload {
    /// Wrap a payload caught with `std::panic::catch_unwind`, extracting its
    /// message (percore-lwkt wraps a uthread's panic in one too).
    ///
    /// ```
    /// let p = percore_pool::PanicPayload::new(Box::new("boom"));
    /// assert_eq!(p.message(), "boom");
    /// ```
    pub fn new(payload: Box<dyn Any + Send>) -> Self {
        let (message, is_str) = if let Some(s) = payload.downcast_ref::<&'static str>() {
            ((*s).to_string(), true)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            (s.clone(), true)
        } else {
            ("(non-string panic payload)".to_string(), false)
        };
        PanicPayload { message, is_str, payload: Mutex::new(Some(payload)) }
    }

    /// The panic message, or `"(non-string panic payload)"`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the panic's payload was a string (its message is real).
    pub fn is_str(&self) -> bool {
        self.is_str
    }

    /// The original payload, to re-raise with `std::panic::resume_unwind`.
    /// `None` if it was taken before.
    pub fn take(&self) -> Option<Box<dyn Any + Send>> {
        self.payload.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The original payload, for `std::panic::resume_unwind`; if it was
    /// [`take`](PanicPayload::take)n before, the message as a `String`.
    pub fn into_inner(self) -> Box<dyn Any + Send> {
        let p = self.payload.into_inner().unwrap_or_else(|e| e.into_inner());
        p.unwrap_or_else(|| Box::new(self.message))
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PanicPayload").field(&self.message).finish()
    }
}

impl fmt::Display for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Run user code `f`, catching a panic (under loom too: loom's threads
/// propagate panics, but a job that panics inside a model must be caught
/// exactly as outside one).
pub(crate) fn catch_unwind<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// Drop a caught panic's payload without letting a panicking payload
/// destructor escape (a payload whose `Drop` panics is leaked instead).
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(move || drop(payload)) {
        std::mem::forget(again);
    }
}
