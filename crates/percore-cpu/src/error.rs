use std::io;

/// Errors from topology queries and pinning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The affinity mask could not be read.
    #[error("cannot read the CPU affinity mask: {0}")]
    Affinity(#[source] io::Error),
    /// The CPU is not in the process's affinity mask.
    #[error("CPU {cpu} is not in this process's affinity mask (allowed: {allowed:?})")]
    CpuNotAllowed {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs the process may run on.
        allowed: Vec<usize>,
    },
    /// The operating system refused to pin the thread.
    #[error("cannot pin the current thread to CPU {cpu}: {source}")]
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}
