//! Platform code for CPU affinity. One module per concern; nothing outside
//! `sys/` issues a syscall.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{allowed_cpus, current_cpu, pin_current};

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub(crate) use other::{allowed_cpus, current_cpu, pin_current};
