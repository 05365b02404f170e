//! Which CPUs the process may use, and pinning threads to them.

use crate::{sys, Error};

/// The CPUs in the process's affinity mask, in ascending order.
///
/// This is the set a runtime may pin its workers to: under `taskset` or a
/// container's cpuset it is smaller than the machine. It is the mask of the
/// process's main thread, so a thread that pinned itself still sees all of
/// them.
///
/// ```
/// let cpus = percore_cpu::allowed_cpus().unwrap();
/// assert!(!cpus.is_empty());
/// assert!(cpus.windows(2).all(|w| w[0] < w[1]));
/// ```
pub fn allowed_cpus() -> Result<Vec<usize>, Error> {
    let cpus = sys::allowed_cpus().map_err(Error::Affinity)?;
    if cpus.is_empty() {
        return Err(Error::Affinity(std::io::Error::other("the affinity mask is empty")));
    }
    Ok(cpus)
}

/// Restrict the calling thread to run on `cpu` only.
///
/// `cpu` must be in [`allowed_cpus`]; otherwise [`Error::CpuNotAllowed`] is
/// returned and the thread's affinity is unchanged.
///
/// ```
/// let first = percore_cpu::allowed_cpus().unwrap()[0];
/// std::thread::spawn(move || {
///     percore_cpu::pin_current(first).unwrap();
///     assert_eq!(percore_cpu::current_cpu(), Some(first));
/// })
/// .join()
/// .unwrap();
/// assert!(percore_cpu::pin_current(usize::MAX).is_err());
/// ```
pub fn pin_current(cpu: usize) -> Result<(), Error> {
    let allowed = allowed_cpus()?;
    if !allowed.contains(&cpu) {
        return Err(Error::CpuNotAllowed { cpu, allowed });
    }
    sys::pin_current(cpu).map_err(|source| Error::Pin { cpu, source })
}

/// The CPU the calling thread is running on at this instant, if the platform
/// can tell. Unless the thread is pinned, the answer may be stale at once.
#[inline]
pub fn current_cpu() -> Option<usize> {
    sys::current_cpu()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_every_allowed_cpu_sticks() {
        let cpus = allowed_cpus().unwrap();
        std::thread::spawn(move || {
            for &cpu in &cpus {
                pin_current(cpu).unwrap();
                assert_eq!(current_cpu(), Some(cpu));
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn pinning_outside_the_mask_is_an_error() {
        let err = pin_current(100_000).unwrap_err();
        assert!(matches!(err, Error::CpuNotAllowed { cpu: 100_000, .. }), "{err}");
        assert!(err.to_string().contains("100000"));
    }
}
