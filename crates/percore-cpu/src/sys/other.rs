//! Platforms without an affinity API: one logical CPU per available
//! parallelism unit, and pinning is refused with `Unsupported`.

use std::io;

pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    let n = std::thread::available_parallelism()?.get();
    Ok((0..n).collect())
}

pub(crate) fn pin_current(_cpu: usize) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "thread pinning is not supported on this platform"))
}

pub(crate) fn current_cpu() -> Option<usize> {
    None
}
