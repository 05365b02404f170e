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

/// The payload of a panic inside a job, with its message extracted.
///
/// ```
/// let pool = percore_pool::ThreadPool::get(percore_pool::PRI_NONE).unwrap();
/// let h = pool.spawn(|| -> u32 { panic!("boom") });
/// match h.join() {
///     Err(percore_pool::Error::Panicked(p)) => assert_eq!(p.message(), "boom"),
///     other => panic!("{other:?}"),
/// }
/// ```
pub struct PanicPayload {
    message: String,
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(non-string panic payload)".to_string()
        };
        PanicPayload { message, payload: Mutex::new(Some(payload)) }
    }

    /// The panic message, or `"(non-string panic payload)"`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original payload, to re-raise with `std::panic::resume_unwind`.
    /// `None` if it was taken before.
    pub fn take(&self) -> Option<Box<dyn Any + Send>> {
        self.payload.lock().unwrap_or_else(|e| e.into_inner()).take()
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
