//! loom model of LWKT tokens (`sync/token/word.rs`): the token word and a
//! uthread's all-or-nothing token list, as the scheduler uses them
//! (`acquire_all` before a resume, `release_all` at the switch-out; a
//! uthread whose tokens are contended is retried at the next pass).
//!
//! * mutual exclusion: what an exclusive holder writes is never touched by
//!   another holder at the same time (a loom `UnsafeCell`: loom reports a
//!   concurrent access), and shared holders exclude an exclusive one;
//! * hand-over: the next holder sees the previous holder's writes (the
//!   cell's accesses are ordered only by the token's release/acquire);
//! * no lost waiter, no deadlock: two uthreads asking for the same two
//!   tokens in opposite orders both get them (all or nothing, so neither
//!   holds one while it waits for the other).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_token` (ci/loom.sh).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use percore_lwkt::__loom::{Mode, TokenList, TokenWord};

/// A token and the data it protects.
struct Guarded {
    tok: TokenWord,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is only touched under `tok` (and loom checks it).
unsafe impl Sync for Guarded {}

impl Guarded {
    fn new() -> Arc<Guarded> {
        Arc::new(Guarded { tok: TokenWord::new(), data: UnsafeCell::new(0) })
    }
}

/// A uthread's scheduling passes: retry until all its tokens are taken.
fn run_with(list: &mut TokenList, body: impl FnOnce()) {
    while !list.acquire_all() {
        thread::yield_now(); // contended: the worker tries the next pass
    }
    body();
    list.release_all();
}

#[test]
fn exclusive_holders_exclude_each_other_and_hand_over() {
    loom::model(|| {
        let g = Guarded::new();
        let ths: Vec<_> = (0..2)
            .map(|_| {
                let g = g.clone();
                thread::spawn(move || {
                    let mut list = TokenList::default();
                    list.push(&g.tok, Mode::Excl, false);
                    // SAFETY: under the token.
                    run_with(&mut list, || g.data.with_mut(|p| unsafe { *p += 1 }));
                })
            })
            .collect();
        for t in ths {
            t.join().unwrap();
        }
        // SAFETY: every holder is joined.
        assert_eq!(g.data.with(|p| unsafe { *p }), 2);
        assert!(!g.tok.is_locked());
    });
}

#[test]
fn shared_holders_exclude_an_exclusive_one() {
    loom::model(|| {
        let g = Guarded::new();
        let r = g.clone();
        let reader = thread::spawn(move || {
            let mut list = TokenList::default();
            list.push(&r.tok, Mode::Shared, false);
            let mut seen = 0;
            // SAFETY: under the token, shared: reads only.
            run_with(&mut list, || seen = r.data.with(|p| unsafe { *p }));
            seen
        });
        let mut list = TokenList::default();
        list.push(&g.tok, Mode::Excl, false);
        // SAFETY: under the token, exclusive.
        run_with(&mut list, || g.data.with_mut(|p| unsafe { *p = 7 }));
        let seen = reader.join().unwrap();
        assert!(seen == 0 || seen == 7);
        assert!(!g.tok.is_locked());
    });
}

#[test]
fn opposite_orders_never_deadlock() {
    loom::model(|| {
        let (a, b) = (Guarded::new(), Guarded::new());
        let (a2, b2) = (a.clone(), b.clone());
        let other = thread::spawn(move || {
            let mut list = TokenList::default();
            list.push(&b2.tok, Mode::Excl, false);
            list.push(&a2.tok, Mode::Excl, false);
            // SAFETY: under both tokens.
            run_with(&mut list, || {
                a2.data.with_mut(|p| unsafe { *p += 1 });
                b2.data.with_mut(|p| unsafe { *p += 1 });
            });
        });
        let mut list = TokenList::default();
        list.push(&a.tok, Mode::Excl, false);
        list.push(&b.tok, Mode::Excl, false);
        // SAFETY: under both tokens.
        run_with(&mut list, || {
            a.data.with_mut(|p| unsafe { *p += 1 });
            b.data.with_mut(|p| unsafe { *p += 1 });
        });
        other.join().unwrap();
        // SAFETY: both are joined.
        assert_eq!(a.data.with(|p| unsafe { *p }) + b.data.with(|p| unsafe { *p }), 4);
        assert!(!a.tok.is_locked() && !b.tok.is_locked());
    });
}
