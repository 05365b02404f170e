//! Issue 16, item 1: a `Participant` kept across `migrate()` must not use
//! its old worker's slot from the new worker's OS thread.
//!
//! Scenario: uthread A registers with an SMR domain on worker 0 (getting a
//! `Participant` bound to worker 0's OS thread), migrates to worker 1, and
//! enters a section through the participant. It used to enter through
//! worker 0's slot from worker 1's thread: a data race on the slot's
//! non-atomic nesting cell with worker 0's uthreads; meanwhile uthread B on
//! worker 0, in no section at all, saw `in_section()` and was refused from
//! blocking, while A on worker 1 was not seen in a section (so it could
//! block inside its section). Now a participant used on another thread than
//! its own enters through that thread's slot, as `Smr::enter` does.

mod common;
use common::watchdog;
use percore_lwkt::Runtime;
use percore_smr::Smr;
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_participant_kept_across_migrate_enters_on_the_new_thread() {
    watchdog("participant across migrate", || {
        let rt = Runtime::builder().name("issue16-participant").workers(2).build().unwrap();
        let smr = Smr::new("issue16-participant").unwrap();
        // 0: start, 1: A is in its section on worker 1, 2: B checked.
        let step = Arc::new(AtomicU8::new(0));
        let a = {
            let (smr, step) = (smr.clone(), step.clone());
            percore_lwkt::Builder::new()
                .worker(0)
                .spawn_on(rt.handle(), move || {
                    let me = smr.register(); // worker 0's OS thread
                                             // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                    unsafe { percore_lwkt::migrate(1) }.unwrap();
                    assert_eq!(percore_lwkt::worker_index(), Some(1));
                    let g = me.enter();
                    let seen_here = smr.in_section() && percore_lwkt::in_critical();
                    step.store(1, SeqCst);
                    while step.load(SeqCst) != 2 {
                        std::hint::spin_loop();
                    }
                    drop(g);
                    seen_here
                })
                .unwrap()
        };
        let b = {
            let (smr, step) = (smr.clone(), step.clone());
            percore_lwkt::Builder::new()
                .worker(0)
                .spawn_on(rt.handle(), move || {
                    while step.load(SeqCst) != 1 {
                        percore_lwkt::yield_now();
                    }
                    let clean = !smr.in_section() && percore_lwkt::sleep(Duration::from_millis(1)).is_ok();
                    step.store(2, SeqCst);
                    clean
                })
                .unwrap()
        };
        assert!(b.join().unwrap(), "worker 0 was put in a section it never entered");
        assert!(a.join().unwrap(), "A's section was not seen on the worker it ran on");
        smr.synchronize().unwrap(); // nothing stays published
    });
}
