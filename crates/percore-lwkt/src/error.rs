pub use percore_pool::PanicPayload;
use std::io;

/// Errors of the LWKT runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A runtime needs at least one worker.
    #[error("a runtime needs at least one worker")]
    NoWorkers,
    /// Reading the affinity mask or pinning a worker failed.
    #[error("worker CPU setup failed: {0}")]
    Cpu(#[from] percore_cpu::Error),
    /// The OS refused a worker thread.
    #[error("cannot start worker thread: {0}")]
    WorkerThread(#[source] io::Error),
    /// The OS refused a new uthread stack: the mapping limit
    /// (`vm.max_map_count`, about two mappings per guarded stack) or memory.
    #[error(
        "the OS refused a {size}-byte uthread stack ({source}); too many uthreads for vm.max_map_count? \
         RuntimeBuilder::guard_pages(false) halves the mappings per stack"
    )]
    StackExhausted {
        /// The stack size asked for.
        size: usize,
        /// What `mmap` said.
        #[source]
        source: io::Error,
    },
    /// A stack size above [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE)
    /// ([`Builder::stack_size`](crate::Builder::stack_size),
    /// [`RuntimeBuilder::stack_size`](crate::RuntimeBuilder::stack_size)).
    #[error("stack size {size} is above the maximum {max}", max = crate::MAX_STACK_SIZE)]
    StackSize {
        /// The size asked for.
        size: usize,
    },
    /// A worker index outside `0..workers`.
    #[error("worker {worker} does not exist (the runtime has {workers})")]
    NoSuchWorker {
        /// The index asked for.
        worker: usize,
        /// How many workers there are.
        workers: usize,
    },
    /// A priority above [`MAX_PRIORITY`](crate::MAX_PRIORITY).
    #[error("priority {0} is above the maximum {max}", max = crate::MAX_PRIORITY)]
    BadPriority(u8),
    /// The operation needs the calling code to run on a uthread.
    #[error("not called from a uthread")]
    NotUthread,
    /// The operation would block (switch away) inside a critical section.
    #[error("cannot block inside a critical section")]
    InCritical,
    /// The operation would block inside an SMR read section (which counts as
    /// a critical section).
    #[error("cannot block inside an SMR read section")]
    InSmrSection,
    /// A function run on a worker by [`cpusync`](crate::Runtime::cpusync)
    /// panicked (the worker caught it and goes on).
    #[error("a cpusync function panicked on a worker")]
    IpiPanicked,
    /// The timeout passed before a wake-up.
    #[error("timed out")]
    TimedOut,
    /// The thread pool of [`block_in_pool`](crate::block_in_pool) could not
    /// be set up.
    #[error("blocking pool: {0}")]
    Pool(#[from] percore_pool::Error),
    /// The uthread is running, not yet started on its worker, or in flight
    /// between workers, so it cannot be given away
    /// ([`Uthread::give_to`](crate::Uthread::give_to)); these states pass.
    #[error("the uthread is not descheduled (running, starting or migrating)")]
    NotDescheduled,
    /// The uthread's message port holds its capacity of messages
    /// ([`RuntimeBuilder::port_capacity`](crate::RuntimeBuilder::port_capacity);
    /// [`Uthread::try_send`](crate::Uthread::try_send)).
    #[error("the uthread's message port is full")]
    Full,
    /// The uthread has returned.
    #[error("the uthread has exited")]
    Exited,
    /// The runtime is shutting down or gone.
    #[error("the runtime is shut down")]
    Shutdown,
    /// A [`call`](crate::Uthread::call) got no reply of the expected type (the
    /// message was dropped, or answered with another type).
    #[error("no reply (message dropped or answered with another type)")]
    NoReply,
    /// An exclusive token was asked for by a uthread holding it shared only.
    #[error("cannot upgrade a shared token to exclusive")]
    TokenUpgrade,
    /// A uthread tried to join its own [`JoinHandle`](crate::JoinHandle):
    /// it would wait for itself for ever.
    #[error("a uthread cannot join itself")]
    SelfJoin,
    /// [`Handle::driver`](crate::Handle::driver) asked for a driver of another
    /// type than the one already installed.
    #[error("the runtime already has a driver of another type")]
    DriverMismatch,
    /// A worker's epoll instance or its eventfd could not be created.
    #[error("cannot create a worker's epoll instance: {0}")]
    Poller(#[source] io::Error),
}

/// Why [`JoinHandle::join`](crate::JoinHandle::join) or
/// [`block_in_pool`](crate::block_in_pool) returned no value: the one join
/// error of percore (`percore_pool::JoinError`), whose `Wait` variant here
/// carries the scheduler's refusal to wait (for example from inside a
/// critical section). [`is_panic`](percore_pool::JoinError::is_panic),
/// [`is_cancelled`](percore_pool::JoinError::is_cancelled) (the runtime shut
/// down before the uthread finished, its stack unwound; from
/// `block_in_pool`: the pool shut down before the closure ran),
/// [`panic_message`](percore_pool::JoinError::panic_message), and
/// [`into_panic`](percore_pool::JoinError::into_panic) to resume the panic on
/// the joining thread. The payload sits in a [`PanicPayload`], whose lock
/// makes the error `Sync`: `?` carries it into `Box<dyn Error + Send + Sync>`
/// or anyhow.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let e = rt.block_on(|| -> u32 { std::panic::panic_any(7u32) }).unwrap_err();
/// assert!(e.is_panic() && !e.is_cancelled());
/// assert_eq!(e.panic_message(), None); // not a string
/// let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
/// let e = boxed.downcast::<percore_lwkt::JoinError>().unwrap();
/// assert_eq!(*e.into_panic().downcast::<u32>().unwrap(), 7);
/// ```
pub type JoinError = percore_pool::JoinError<Error>;
