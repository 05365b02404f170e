//! Synchronisation for uthreads, built on the park word and the scheduler:
//! tokens (`token/`), address-keyed wait channels (`sleepq.rs`), message
//! ports (`port.rs`), blocking work handed to a thread pool
//! (`blocking.rs`), and awaiting a future from a uthread (`future.rs`).

pub(crate) mod blocking;
pub(crate) mod future;
pub(crate) mod port;
pub(crate) mod sleepq;
pub(crate) mod token;
