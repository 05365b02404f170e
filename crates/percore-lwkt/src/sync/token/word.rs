//! # The token word and a uthread's token list: the lock-free half of tokens
//!
//! What the scheduler does with tokens, without the scheduler: the word's
//! transitions ([`TokenWord::try_take`], [`TokenWord::give`]) and the
//! all-or-nothing acquisition of a uthread's list ([`TokenList::acquire_all`],
//! [`TokenList::release_all`]) that `worker/run.rs` runs before it resumes a
//! uthread and after it switches out. Compiled under `--cfg loom` for
//! `tests/loom_token.rs`; `mod.rs` (the `Token` API) is not, since it
//! switches stacks.
//!
//! | bits | meaning |
//! | --- | --- |
//! | bit 0 (`EXCL`) | held exclusively |
//! | bits 1.. | number of shared holders |
//!
//! Invariants: `EXCL` set means no shared holder (the word is exactly
//! `EXCL`); a holder's writes under the token happen-before the next
//! holder's reads (release in `give`, acquire in `try_take`).

// NOTE: `pub` items here are reached by the loom models (`crate::__loom`).
#![allow(unreachable_pub)]

use percore_cpu::loom::AtomicUsize;
use percore_cpu::loom::Ordering::{Acquire, Relaxed, Release};

const EXCL: usize = 1;
const ONE_SHARED: usize = 2;

/// How a reference holds its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Alone (`lwkt_gettoken`).
    Excl,
    /// With other shared holders (`lwkt_gettoken_shared`).
    Shared,
    /// A second reference of a uthread that holds the token already: it
    /// touches no atomic.
    Recursive,
}

/// The word of one token (see the module documentation).
#[derive(Debug, Default)]
pub struct TokenWord(AtomicUsize);

impl TokenWord {
    /// A free token.
    #[cfg(not(loom))]
    pub const fn new() -> TokenWord {
        TokenWord(AtomicUsize::new(0))
    }

    /// A free token.
    #[cfg(loom)]
    pub fn new() -> TokenWord {
        TokenWord(AtomicUsize::new(0))
    }

    /// Whether anyone holds it now (a racy hint).
    pub fn is_locked(&self) -> bool {
        // ORDERING: relaxed: a hint, it orders nothing.
        self.0.load(Relaxed) != 0
    }

    /// Take it in `mode` if that is possible now.
    pub fn try_take(&self, mode: Mode) -> bool {
        match mode {
            // ORDERING: acquire pairs with the release in `give`: the previous
            // holder's writes are visible to us.
            Mode::Excl => self.0.compare_exchange(0, EXCL, Acquire, Relaxed).is_ok(),
            Mode::Shared => {
                // ORDERING: relaxed: only a first guess for the CAS below.
                let mut s = self.0.load(Relaxed);
                loop {
                    if s & EXCL != 0 {
                        return false;
                    }
                    // ORDERING: as above.
                    match self.0.compare_exchange_weak(s, s + ONE_SHARED, Acquire, Relaxed) {
                        Ok(_) => return true,
                        Err(x) => s = x,
                    }
                }
            }
            Mode::Recursive => true,
        }
    }

    /// Give back a hold taken in `mode`.
    pub fn give(&self, mode: Mode) {
        match mode {
            // ORDERING: release publishes the holder's writes to the next
            // acquirer (`try_take`).
            Mode::Excl => self.0.fetch_sub(EXCL, Release),
            Mode::Shared => self.0.fetch_sub(ONE_SHARED, Release),
            Mode::Recursive => 0,
        };
    }
}

/// One reference of a uthread to a token.
#[derive(Debug)]
pub struct TokRef {
    /// The token; alive while the reference is (its guard borrows it).
    pub tok: *const TokenWord,
    /// How it is held.
    pub mode: Mode,
    /// Whether the word is taken for it now (released at every switch-out).
    pub held: bool,
    /// The guard's identity within the list.
    pub id: u64,
}

/// A uthread's token references (`td_toks_array`). Touched only by the
/// worker that owns the uthread (the uthread itself, or its scheduler).
#[derive(Debug, Default)]
pub struct TokenList {
    /// In acquisition order.
    pub refs: Vec<TokRef>,
    /// The next reference's `id`.
    pub next_id: u64,
}

impl TokenList {
    /// Whether the uthread asked for no token.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Record a reference to `tok` in `mode`, already taken (`held`) or
    /// not; returns its id.
    pub fn push(&mut self, tok: *const TokenWord, mode: Mode, held: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.refs.push(TokRef { tok, mode, held, id });
        id
    }

    /// Take every token not held, all or nothing (`lwkt_getalltokens`).
    pub fn acquire_all(&mut self) -> bool {
        for i in 0..self.refs.len() {
            let r = &self.refs[i];
            if r.held || r.mode == Mode::Recursive {
                continue;
            }
            // SAFETY: a reference lives while its guard does, and the guard
            // borrows the token.
            if unsafe { &*r.tok }.try_take(r.mode) {
                self.refs[i].held = true;
            } else {
                self.release_all();
                return false;
            }
        }
        true
    }

    /// Release every held token (`lwkt_relalltokens`).
    pub fn release_all(&mut self) {
        for r in self.refs.iter_mut().rev() {
            if r.held {
                r.held = false;
                // SAFETY: as in `acquire_all`.
                unsafe { &*r.tok }.give(r.mode);
            }
        }
    }
}
