//! # percore-smr: safe memory reclamation after FreeBSD's GUS
//!
//! Lock-free readers need a way to know when memory they might still be
//! reading can be freed. This crate is FreeBSD's *Global Unbounded
//! Sequences* (`sys/kern/subr_smr.c`, Jeff Roberson 2019-2020) in userspace
//! Rust, with one change that matters: **readers pay no fence**.
//!
//! ## The mechanism
//!
//! A domain keeps two hands on a 32-bit clock. Writers move the *write*
//! sequence (`wr_seq`) forward with [`Smr::advance`], which returns a *goal*:
//! the sequence number that marks "everything I unlinked so far". Readers
//! entering a section ([`Smr::enter`]) copy the current `wr_seq` into their
//! own slot (`c_seq`) and clear it at exit. A poller ([`Smr::poll`]) scans the
//! slots: the smallest published `c_seq` is the oldest sequence any reader may
//! still be acting on, and it becomes the *read* sequence (`rd_seq`). A goal
//! at or before `rd_seq` has expired: nothing unlinked before it is reachable.
//!
//! ```text
//! 0                                                          u32::MAX
//! | -------------------- sequence number space ------------------- |
//!              ^ rd_seq                           ^ wr_seq
//!              | ---- valid sequence numbers ---- |
//!                ^reader A  ^reader C
//! | -- free -- | -------- deferred frees -------- | ---- free ---- |
//! ```
//!
//! Reader A has the oldest sequence, so a poll can move `rd_seq` up to it.
//! Reader B is not in a section (its slot holds 0, which no valid, always odd
//! sequence equals). Advancing is decoupled from detecting expiry: a writer
//! tags a batch of frees with one `advance` and polls much later, when the
//! answer is almost always "expired" without a scan.
//!
//! ## Fence-free readers
//!
//! FreeBSD readers execute a full fence after publishing `c_seq`, so that the
//! store is visible before they load shared pointers. Here that fence moves to
//! the writer: before every scan, the poller calls Linux
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a full barrier on
//! every CPU currently executing one of our threads. The reader keeps only a
//! compiler fence. Scans are rare (one per batch of retired objects at most),
//! so the writer's syscall is amortised while every read section saves a
//! locked instruction. Without membarrier the reader falls back to a locked
//! read-modify-write, never `mfence`. The argument is spelled out in
//! `src/sys/mod.rs`; the active flavour is in the stats tree as
//! `smr.fence.membarrier`.
//!
//! ## Deferred reclamation and bounded memory
//!
//! [`Smr::retire`] and [`Smr::defer`] collect objects into a per-thread batch.
//! A full batch is tagged with one `advance` and queued; it is freed when a
//! later non-blocking poll finds the tag expired. A configurable cap
//! ([`Builder::max_pending`]) bounds the queue: when a writer would exceed it,
//! it waits for readers (back-pressure), so a stalled reader cannot make
//! memory grow without bound. Dropping the last handle to a domain runs every
//! pending destructor.
//!
//! ## Modes
//!
//! [`Mode::Default`] bumps `wr_seq` on every advance. [`Mode::Deferred`] bumps
//! only every `limit` advances per participant. [`Mode::Lazy`] lets `wr_seq`
//! follow a clock, with goals two ticks ahead (ticks from 1 us up to
//! [`MAX_LAZY_TICK`], 1 s, so that a blocking wait always ends).
//!
//! ## Wrapping
//!
//! Sequences are 32-bit and wrap; [`Seq`] compares them by signed distance and
//! does not implement `PartialOrd`. `advance` never lets `wr_seq - rd_seq`
//! reach a quarter of the circle (it waits for readers instead, counted as
//! `advance_wait`). The `wrap-test` feature starts every domain 100,000 below
//! the wrap point with giant steps and a delta of only 32 steps, as FreeBSD's
//! INVARIANTS kernels do; CI runs the whole suite that way too.
//!
//! ## Participants
//!
//! A thread's first use of a domain claims a slot, released when the thread
//! exits (its untagged batch is queued, not lost). Long-lived workers can
//! [`Smr::register`] once and enter through the returned [`Participant`]
//! without the thread-local lookup. [`in_section`] tells whether the calling
//! thread is inside any section: a scheduler must not switch away from it.
//!
//! ## Counters
//!
//! Each domain registers `smr.<name>.{advance, advance_wait, poll, poll_scan,
//! poll_fail, retired, reclaimed, pending, pending_bytes, backpressure_waits,
//! cap_overruns, participants}` in the stats tree (`percore_cpu::stats`).
//!
//! ## Example
//!
//! ```
//! use percore_smr::Smr;
//!
//! let smr = Smr::new("example").unwrap();
//! let goal = {
//!     let _reader = smr.enter();
//!     // ... load and use shared pointers ...
//!     smr.advance() // a writer could do this meanwhile
//! };
//! assert!(smr.poll(goal, true)); // the reader left: the goal expired
//! smr.defer(|| println!("runs once no reader can see what was unlinked"));
//! smr.flush().unwrap();
//! ```
//!
//! See `examples/rcu_map.rs` for a lock-free read-mostly map built on this crate.

#![warn(missing_docs)]

mod domain;
mod error;
mod reclaim;
mod seq;
mod slots;
mod smr;
mod sys;

pub use domain::{Mode, MAX_LAZY_TICK};
pub use error::Error;
pub use seq::Seq;
pub use smr::{in_section, Builder, Guard, Participant, Smr, DEFAULT_BATCH, DEFAULT_MAX_PENDING};

#[cfg(test)]
mod tests;

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
