//! The kernel interface of this crate, one small module per concern: the
//! algorithm files (`io.rs`, `epoll.rs`, `net/`) call the safe wrappers here,
//! which return `io::Result`, and never name `libc` themselves.
//!
//! * [`epoll`]: the `EPOLL*` bits and an epoll instance's own calls
//!   (`epoll_create1`, `epoll_ctl`, a non-blocking `epoll_wait`). A worker's
//!   own instance belongs to percore-lwkt (`Handle::io_register`).
//! * [`socket`]: the socket calls that `std::net` and `socket2` leave to
//!   the caller: a non-blocking connect and asking how it ended, and
//!   whether a socket is ready now (a select's check).
//!
//! Linux only, as the rest of the runtime (epoll, futex, membarrier).

pub(crate) mod epoll;
pub(crate) mod socket;
