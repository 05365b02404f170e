//! Platform code: the futex the idle protocol sleeps on, uthread stacks,
//! the stack-overflow handler (`overflow.rs`), and what the kernel's
//! scheduler says about a worker thread (`sched.rs`, for the watchdog).
//!
//! Only this module issues system calls. Under `--cfg loom` the futex is
//! emulated with a loom mutex and condition variable, which is exactly the
//! kernel's contract: `wait` compares the word and queues the caller
//! atomically with respect to `wake`.

#[cfg(all(not(loom), target_os = "linux"))]
mod linux;
#[cfg(all(not(loom), target_os = "linux"))]
pub(crate) use linux::*;
#[cfg(all(not(loom), target_os = "linux"))]
pub(crate) mod overflow;
#[cfg(all(not(loom), target_os = "linux"))]
pub(crate) mod sched;

#[cfg(loom)]
mod loom_futex;
#[cfg(loom)]
pub(crate) use loom_futex::Futex;
