//! # percore-kv: a memcached-compatible cache server on percore
//!
//! The parts, each testable on its own:
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | the command line, in memcached's spelling |
//! | [`store`] | the items: table, memory, eviction, expiry |
//! | [`proto`] | the text, meta and binary protocols over the store |
//! | [`context`] | what connections share: settings, store, counters |
//! | [`server`] | listeners, a uthread per connection, shutdown |

pub mod config;
pub mod context;
mod error;
pub mod proto;
pub mod server;
pub mod signals;
pub mod store;
pub mod udp;

pub use error::Error;

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
