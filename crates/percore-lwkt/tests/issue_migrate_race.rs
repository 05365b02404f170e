//! Issue 16, item 7: `migrate(to)` must return on `to`, even when a
//! `give_to` races it.
//!
//! Scenario: one uthread migrates back and forth between two workers while
//! a foreign thread keeps giving it away (`Uthread::give_to`) to the other
//! worker. A give-away could catch the uthread after its migration reached
//! `to` but before it ran there (queued, so "descheduled"), and move it on:
//! `migrate()` then returned `Ok` on the wrong worker (about 2% of calls
//! under load in the run). Now a uthread inside `migrate` cannot be
//! given away (`NotDescheduled`, which the caller retries) until it has run
//! on its target, so the promise "when this returns it runs there" holds.

mod common;
use common::watchdog;
use percore_lwkt::{Builder, Runtime};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

#[test]
fn migrate_returns_on_its_target_despite_racing_give_to() {
    watchdog("migrate vs give_to", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let gives = Arc::new(AtomicU64::new(0));
        let s = stop.clone();
        let h = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                let mut wrong = 0u64;
                for i in 0..20_000usize {
                    let to = i % 2;
                    // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                    unsafe { percore_lwkt::migrate(to) }.unwrap();
                    if percore_lwkt::worker_index() != Some(to) {
                        wrong += 1;
                    }
                    // Queued here, outside `migrate`: a give-away may move
                    // it now, which is allowed.
                    percore_lwkt::yield_now();
                }
                s.store(true, SeqCst);
                wrong
            })
            .unwrap();
        let u = h.uthread().clone();
        let g = gives.clone();
        let giver = std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                if unsafe { u.give_to(1 - u.worker()) }.is_ok() {
                    g.fetch_add(1, SeqCst);
                }
            }
        });
        let wrong = h.join().unwrap();
        giver.join().unwrap();
        assert_eq!(wrong, 0, "migrate returned on the wrong worker ({} give-aways succeeded)", gives.load(SeqCst));
    });
}
