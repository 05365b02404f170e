//! Defaults and limits of runtimes and uthreads, and the configuration a
//! runtime's workers read ([`Config`]). A leaf: it names nothing else of the
//! crate, so that every layer may read it.

use std::time::Duration;

/// Default usable stack size of a uthread: 256 KiB, reserved, not
/// committed.
///
/// Stacks are `MAP_NORESERVE` mappings: a uthread costs only the pages it
/// touched, so this default does not raise the memory of a parked uthread
/// (percore-bench's `lwkt_parked_memory` measures touched pages, a few KiB
/// per uthread whatever the reserved size). It costs address space (10,000
/// uthreads reserve 2.5 GiB of the 128 TiB user space) and page-table setup
/// only when touched. It was 64 KiB, which a 64 KiB local array, or a debug
/// build's formatting and panic machinery a few calls deep, overflowed; it
/// stays well below 2 MiB so that transparent huge pages never back a whole
/// stack. Cached stacks keep the pages their last uthread touched (at most
/// [`DEFAULT_STACK_CACHE`] per worker).
///
/// An overflow hits the guard page below the stack and the runtime reports
/// it on stderr (`uthread '<name>' on worker N overflowed its stack (size
/// S)`) before aborting the process; see [`RuntimeBuilder::guard_pages`](crate::RuntimeBuilder::guard_pages).
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// How long dropping a [`Runtime`](crate::Runtime) waits for its workers to stop before it
/// reports the uthreads that keep them and detaches them (see
/// [`RuntimeBuilder::shutdown_timeout`](crate::RuntimeBuilder::shutdown_timeout)).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest uthread stack, 1 GiB: a larger [`Builder::stack_size`](crate::Builder::stack_size) or
/// [`RuntimeBuilder::stack_size`](crate::RuntimeBuilder::stack_size) makes `spawn` / `build` fail with
/// [`Error::StackSize`](crate::Error::StackSize) (never an arithmetic overflow).
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// The smallest uthread stack, 16 KiB: smaller sizes are raised to it.
const MIN_STACK_SIZE: usize = 16 * 1024;

/// `bytes` rounded up to pages, at least [`MIN_STACK_SIZE`]; `None` above
/// [`MAX_STACK_SIZE`].
pub(crate) fn stack_bytes(bytes: usize) -> Option<usize> {
    (bytes <= MAX_STACK_SIZE).then(|| bytes.max(MIN_STACK_SIZE).next_multiple_of(4096))
}

/// Default bound of a uthread's message port: 65,536 messages
/// ([`RuntimeBuilder::port_capacity`](crate::RuntimeBuilder::port_capacity)).
pub const DEFAULT_PORT_CAPACITY: usize = 65_536;
/// Default number of cached stacks per worker.
pub const DEFAULT_STACK_CACHE: usize = 64;
/// The highest priority (`0` is the lowest).
pub const MAX_PRIORITY: u8 = 31;
/// The priority uthreads get unless told otherwise.
pub const DEFAULT_PRIORITY: u8 = 16;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) stack_size: usize,
    pub(crate) guard: bool,
    pub(crate) stack_cache: usize,
    /// What `Drop for Runtime` waits.
    pub(crate) shutdown_timeout: Duration,
    /// Messages a uthread's port holds at most (`port.rs`).
    pub(crate) port_capacity: usize,
}
