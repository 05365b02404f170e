//! Platforms without per-thread names or priorities: both are refused with
//! `Unsupported`, and the pool works without them (its stats say so).

use std::ffi::CStr;
use std::io;

pub(crate) fn set_thread_name(_name: &CStr) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "thread names are not supported on this platform"))
}

pub(crate) fn set_nice(_nice: i32) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "thread priorities are not supported on this platform"))
}
