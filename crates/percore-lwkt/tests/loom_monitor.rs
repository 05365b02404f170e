//! loom model of the running slot (`monitor.rs`): a reader (the watchdog,
//! or `Runtime::shutdown_timeout`) takes a strong reference to the uthread a
//! worker runs, while the worker resumes it, switches out (`leave`: a
//! release store only) and later gives up its own reference (`quiesce`,
//! then drop). The worker "frees" the uthread (writes its cell) only if it
//! saw itself holding the last reference after `quiesce`; a reader that
//! got the uthread reads the cell. If a reader could take its reference
//! after the worker dropped the last one, loom's `Arc::from_raw` panics (the
//! object is gone); if after the worker decided to free, loom reports the
//! unsynchronised accesses or the assertion fails. Tried: without either
//! side's `SeqCst` fence both models fail.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_monitor` (ci/loom.sh).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use percore_lwkt::__loom::RunningSlot;

struct Uthread {
    freed: UnsafeCell<bool>,
}

fn read(slot: &RunningSlot<Uthread>) {
    if let Some(u) = slot.running() {
        // SAFETY: loom checks that this read is ordered with the worker's
        // write (that is the property under test).
        u.freed.with(|f| assert!(!unsafe { *f }, "the reader got a freed uthread"));
    }
}

fn worker(slot: &RunningSlot<Uthread>, u: Arc<Uthread>, runs: usize) {
    for _ in 0..runs {
        slot.enter(&u);
        slot.leave();
    }
    slot.quiesce();
    if Arc::strong_count(&u) == 1 {
        // SAFETY: loom checks this write against the reader's read.
        u.freed.with_mut(|f| unsafe { *f = true });
    }
    drop(u);
}

#[test]
fn a_reader_never_gets_a_freed_uthread() {
    loom::model(|| {
        let slot = Arc::new(RunningSlot::<Uthread>::default());
        let u = Arc::new(Uthread { freed: UnsafeCell::new(false) });
        let s = slot.clone();
        let r = thread::spawn(move || read(&s));
        worker(&slot, u, 1);
        r.join().unwrap();
    });
}

#[test]
fn two_resumes_two_readers() {
    loom::model(|| {
        let slot = Arc::new(RunningSlot::<Uthread>::default());
        let u = Arc::new(Uthread { freed: UnsafeCell::new(false) });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let s = slot.clone();
                thread::spawn(move || read(&s))
            })
            .collect();
        worker(&slot, u, 2);
        for r in readers {
            r.join().unwrap();
        }
    });
}
