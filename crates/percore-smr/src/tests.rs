//! Unit tests of the protocol through the public API (integration tests
//! live in `tests/`).

use crate::seq::{INCR, INIT, MAX_DELTA};
use crate::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

/// Retire a fresh object (nobody else ever sees it).
fn retire_new<T: Send + 'static>(smr: &Smr, value: T) {
    // SAFETY: a fresh `Box::into_raw`, reachable by nobody, retired once.
    unsafe { smr.retire(Box::into_raw(Box::new(value))) };
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_fresh_domain_starts_at_init_and_goals_expire_without_readers() {
    let smr = Smr::new("t-fresh").unwrap();
    assert_eq!(smr.current(), Seq::from_raw(INIT));
    let goal = smr.advance();
    assert_eq!(goal, Seq::from_raw(INIT).add(INCR));
    assert!(smr.poll(goal, false));
    assert!(smr.poll(goal, true));
}

#[test]
fn sections_nest_and_only_the_outermost_publishes() {
    let smr = Smr::new("t-nest").unwrap();
    assert!(!smr.in_section());
    let a = smr.enter();
    let b = smr.enter();
    assert!(smr.in_section() && in_section());
    drop(a);
    assert!(smr.in_section());
    drop(b);
    assert!(!smr.in_section() && !in_section());
}

#[test]
fn a_reader_blocks_goals_after_its_entry_until_it_exits() {
    let smr = Smr::new("t-block").unwrap();
    let (to_reader, rx) = mpsc::channel::<()>();
    let (tx, entered) = mpsc::channel::<()>();
    let s = smr.clone();
    let reader = std::thread::spawn(move || {
        let g = s.enter();
        tx.send(()).unwrap();
        rx.recv().unwrap();
        drop(g);
        tx.send(()).unwrap();
    });
    entered.recv().unwrap();
    let goal = smr.advance();
    assert!(!smr.poll(goal, false), "the reader entered before the advance");
    assert!(!smr.poll(goal, false));
    to_reader.send(()).unwrap();
    entered.recv().unwrap();
    assert!(smr.poll(goal, false), "the reader left");
    reader.join().unwrap();
}

#[test]
fn a_reader_that_entered_after_the_advance_does_not_block_it() {
    let smr = Smr::new("t-late").unwrap();
    let goal = smr.advance();
    let _g = smr.enter(); // this thread, after the advance
    assert!(smr.poll(goal, false));
    let later = smr.advance();
    assert!(!smr.poll(later, false));
}

#[test]
fn blocking_inside_a_section_is_an_error_not_a_hang() {
    let smr = Smr::new("t-insection").unwrap();
    let g = smr.enter();
    let goal = smr.advance();
    assert!(!smr.poll(goal, true), "wait is ignored inside a section");
    let err = smr.wait(goal).unwrap_err();
    assert!(matches!(err, Error::InSection { .. }));
    assert!(err.to_string().contains("t-insection"));
    assert!(matches!(smr.synchronize(), Err(Error::InSection { .. })));
    assert!(matches!(smr.flush(), Err(Error::InSection { .. })));
    drop(g);
    smr.wait(goal).unwrap();
    smr.synchronize().unwrap();
    smr.flush().unwrap();
}

#[test]
fn a_section_of_another_domain_does_not_count() {
    let a = Smr::new("t-other-a").unwrap();
    let b = Smr::new("t-other-b").unwrap();
    let _g = a.enter();
    assert!(!b.in_section());
    b.synchronize().unwrap();
}

#[test]
fn retired_objects_run_after_flush_and_not_before_readers_leave() {
    let smr = Smr::builder("t-retire").batch_size(4).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (go, wait_go) = mpsc::channel::<()>();
    let (ready, is_ready) = mpsc::channel::<()>();
    let s = smr.clone();
    let reader = std::thread::spawn(move || {
        let g = s.enter();
        ready.send(()).unwrap();
        wait_go.recv().unwrap();
        drop(g);
    });
    is_ready.recv().unwrap();
    for _ in 0..10 {
        retire_new(&smr, CountDrop(dropped.clone()));
    }
    // Two full batches were tagged while the reader was inside.
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    assert_eq!(smr.pending(), 8);
    go.send(()).unwrap();
    reader.join().unwrap();
    smr.flush().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
    assert_eq!(smr.pending(), 0);
    assert_eq!(smr.pending_bytes(), 0);
}

#[test]
fn defer_runs_closures() {
    let smr = Smr::new("t-defer").unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let h = hits.clone();
        smr.defer(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
    }
    smr.flush().unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[test]
fn dropping_the_last_handle_runs_everything_pending() {
    let dropped = Arc::new(AtomicUsize::new(0));
    {
        let smr = Smr::builder("t-drop").batch_size(2).build().unwrap();
        let other = smr.clone();
        for _ in 0..5 {
            retire_new(&smr, CountDrop(dropped.clone()));
        }
        drop(smr);
        assert_eq!(dropped.load(Ordering::SeqCst), 4.min(dropped.load(Ordering::SeqCst)));
        drop(other);
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 5);
}

#[test]
fn a_thread_exit_queues_its_batch_and_frees_its_slot() {
    let smr = Smr::builder("t-exit").batch_size(1000).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let s = smr.clone();
    let d = dropped.clone();
    std::thread::spawn(move || {
        let _g = s.enter();
        drop(_g);
        for _ in 0..7 {
            retire_new(&s, CountDrop(d.clone()));
        }
    })
    .join()
    .unwrap();
    assert_eq!(smr.pending(), 7, "the exiting thread's batch was queued");
    let used = percore_cpu::stats::get("smr.t-exit.participants");
    assert_eq!(used, Some(0));
    smr.flush().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 7);
    // The freed slot is reused by the next thread.
    let s = smr.clone();
    std::thread::spawn(move || drop(s.enter())).join().unwrap();
    // Only this thread (registered by `flush`) holds a slot now.
    assert_eq!(percore_cpu::stats::get("smr.t-exit.participants"), Some(1));
}

#[test]
fn many_threads_get_distinct_slots() {
    let smr = Smr::new("t-many").unwrap();
    let n = 80; // more than one segment
    let barrier = Arc::new(Barrier::new(n + 1));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let s = smr.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                let g = s.enter();
                b.wait();
                b.wait();
                drop(g);
            })
        })
        .collect();
    barrier.wait();
    assert_eq!(percore_cpu::stats::get("smr.t-many.participants"), Some(n as u64));
    let goal = smr.advance();
    assert!(!smr.poll(goal, false));
    barrier.wait();
    for h in handles {
        h.join().unwrap();
    }
    assert!(smr.poll(goal, true));
}

#[test]
fn the_cap_makes_writers_wait_for_a_stalled_reader() {
    let cap = 64;
    let smr = Smr::builder("t-cap").batch_size(16).max_pending(cap).build().unwrap();
    let (release, stalled) = mpsc::channel::<()>();
    let (ready, is_ready) = mpsc::channel::<()>();
    let s = smr.clone();
    let reader = std::thread::spawn(move || {
        let g = s.enter();
        ready.send(()).unwrap();
        stalled.recv().unwrap();
        drop(g);
    });
    is_ready.recv().unwrap();
    let s = smr.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..1000u64 {
            retire_new(&s, i);
            assert!(s.pending() <= cap + 16, "pending {} over cap", s.pending());
        }
    });
    // The writer must get stuck on the cap: wait until it has waited.
    let t0 = std::time::Instant::now();
    while percore_cpu::stats::get("smr.t-cap.backpressure_waits").unwrap_or(0) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "writer never hit the cap");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(smr.pending() <= cap + 16);
    release.send(()).unwrap();
    reader.join().unwrap();
    writer.join().unwrap();
    smr.flush().unwrap();
    assert_eq!(smr.pending(), 0);
}

#[test]
fn retire_inside_a_section_never_waits_for_itself() {
    let smr = Smr::builder("t-cap-self").batch_size(4).max_pending(8).build().unwrap();
    let g = smr.enter();
    for i in 0..100u64 {
        retire_new(&smr, i); // over the cap, but must not deadlock
    }
    assert!(percore_cpu::stats::get("smr.t-cap-self.cap_overruns").unwrap() > 0);
    drop(g);
    smr.flush().unwrap();
    assert_eq!(smr.pending(), 0);
}

#[test]
fn deferred_mode_bumps_every_limit_advances() {
    let smr = Smr::builder("t-deferred").mode(Mode::Deferred { limit: 4 }).build().unwrap();
    let start = smr.current();
    let g1 = smr.advance();
    assert_eq!(g1, start.add(INCR), "a deferred goal is one step ahead");
    assert_eq!(smr.current(), start, "but the shared sequence did not move");
    assert!(!smr.poll(g1, false), "not reached until somebody bumps");
    smr.advance();
    smr.advance();
    let g4 = smr.advance();
    assert_eq!(smr.current(), start.add(INCR), "the fourth advance bumps");
    assert!(smr.poll(g1, false));
    assert!(smr.poll(g4, false));
    // A blocking poll of a deferred goal bumps the sequence itself.
    let g5 = smr.advance();
    assert!(smr.poll(g5, true));
    smr.synchronize().unwrap();
}

#[test]
fn lazy_mode_follows_the_clock() {
    let tick = Duration::from_millis(1);
    let smr = Smr::builder("t-lazy").mode(Mode::Lazy { tick }).build().unwrap();
    let goal = smr.advance();
    assert!(goal.gt(smr.current()), "lazy goals lie ahead");
    // Without readers, the goal expires once the clock passes it.
    let t0 = std::time::Instant::now();
    while !smr.poll(goal, false) {
        assert!(t0.elapsed() < Duration::from_secs(60), "lazy clock never reached the goal");
        std::thread::sleep(tick);
    }
    let g2 = smr.advance();
    assert!(smr.poll(g2, true), "a blocking poll sleeps until the clock gets there");
    retire_new(&smr, 5u32);
    smr.flush().unwrap();
    assert_eq!(smr.pending(), 0);
}

#[test]
fn bad_configurations_are_errors() {
    let e = |b: Builder| b.build().unwrap_err();
    assert!(matches!(e(Smr::builder("x").batch_size(0)), Error::InvalidConfig { .. }));
    assert!(matches!(e(Smr::builder("x").max_pending(1).batch_size(2)), Error::InvalidConfig { .. }));
    assert!(matches!(e(Smr::builder("x").mode(Mode::Deferred { limit: 0 })), Error::InvalidConfig { .. }));
    assert!(matches!(e(Smr::builder("x").mode(Mode::Lazy { tick: Duration::ZERO })), Error::InvalidConfig { .. }));
    let msg = e(Smr::builder("named").batch_size(0)).to_string();
    assert!(msg.contains("named") && msg.contains("batch_size"), "{msg}");
}

#[test]
fn advance_waits_when_readers_fall_too_far_behind() {
    // MAX_DELTA / INCR advances with a reader stuck at the start would break
    // the wrap arithmetic; advance must wait for the reader instead.
    let steps = (MAX_DELTA / INCR) as u64 + 8;
    // Unit tests use the wrap-test constants, so this is 40 advances.
    assert!(steps < 1_000, "unit tests must run with the wrap-test constants");
    let smr = Smr::new("t-maxdelta").unwrap();
    let (release, stalled) = mpsc::channel::<()>();
    let (ready, is_ready) = mpsc::channel::<()>();
    let s = smr.clone();
    let reader = std::thread::spawn(move || {
        let g = s.enter();
        ready.send(()).unwrap();
        stalled.recv().unwrap();
        drop(g);
    });
    is_ready.recv().unwrap();
    let s = smr.clone();
    let writer = std::thread::spawn(move || {
        for _ in 0..steps {
            let goal = s.advance();
            let rd = s.domain().rd_seq();
            assert!(goal.delta(rd) < (MAX_DELTA + INCR) as i32, "delta invariant broken");
        }
    });
    let t0 = std::time::Instant::now();
    while percore_cpu::stats::get("smr.t-maxdelta.advance_wait").unwrap_or(0) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "advance never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    release.send(()).unwrap();
    reader.join().unwrap();
    writer.join().unwrap();
}

#[test]
fn stats_are_registered_under_the_domain_name() {
    let smr = Smr::new("t-stats").unwrap();
    let g = smr.advance();
    smr.poll(g, false);
    let names: Vec<String> = percore_cpu::stats::with_prefix("smr.t-stats.").into_iter().map(|(n, _)| n).collect();
    for key in ["advance", "advance_wait", "poll", "poll_scan", "poll_fail", "retired", "reclaimed", "pending"] {
        assert!(names.contains(&format!("smr.t-stats.{key}")), "{key} missing from {names:?}");
    }
    assert!(percore_cpu::stats::get("smr.t-stats.advance").unwrap() >= 1);
    let m = percore_cpu::stats::get("smr.fence.membarrier").unwrap();
    let r = percore_cpu::stats::get("smr.fence.locked_rmw").unwrap();
    assert_eq!(m + r, 1);
    if std::env::var_os("PERCORE_SMR_FENCE").is_some_and(|v| v == "rmw") {
        assert_eq!(r, 1);
    }
    drop(smr);
    assert_eq!(percore_cpu::stats::get("smr.t-stats.advance"), None);
}

#[test]
fn a_forgotten_guard_is_cleared_when_its_thread_exits() {
    let smr = Smr::new("t-forget").unwrap();
    let s = smr.clone();
    std::thread::spawn(move || std::mem::forget(s.enter())).join().unwrap();
    smr.synchronize().unwrap();
}

#[test]
fn the_sequence_wraps_and_goals_across_the_wrap_still_compare_right() {
    // Unit tests run with the INVARIANTS-style constants: a handful of
    // advances crosses u32::MAX.
    let smr = Smr::new("t-wrap").unwrap();
    let start = smr.current();
    let mut wrapped = false;
    let mut prev = start;
    for _ in 0..(MAX_DELTA / INCR) * 3 {
        let goal = smr.advance();
        assert!(goal.gt(prev), "{goal:?} must come after {prev:?}");
        wrapped |= goal.raw() < prev.raw();
        assert!(smr.poll(goal, false), "no readers: every goal expires");
        assert!(smr.poll(prev, false), "older goals stay expired");
        prev = goal;
    }
    assert!(wrapped, "the sequence never crossed the wrap point");
    // Past the wrap, a reader still blocks the goals that follow its entry.
    let g = smr.enter();
    let (tx, rx) = mpsc::channel();
    let s = smr.clone();
    std::thread::spawn(move || tx.send(s.poll(s.advance(), false)).unwrap());
    assert!(!rx.recv().unwrap());
    drop(g);
    smr.synchronize().unwrap();
}

#[test]
fn sections_and_retires_in_late_thread_local_destructors_work() {
    // A thread-local registered before the thread's first SMR use is
    // destroyed after the SMR registry (destructors run in reverse order),
    // so its destructor takes the ephemeral-slot path.
    struct Late(Option<(Smr, Arc<AtomicUsize>)>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some((smr, dropped)) = self.0.take() {
                let g = smr.enter();
                assert!(smr.in_section());
                drop(g);
                retire_new(&smr, CountDrop(dropped));
                let goal = smr.advance();
                assert!(smr.poll(goal, true));
            }
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<Late> = const { std::cell::RefCell::new(Late(None)) };
    }
    let smr = Smr::new("t-late-tls").unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (s, d) = (smr.clone(), dropped.clone());
    std::thread::spawn(move || {
        LATE.with(|l| l.borrow_mut().0 = Some((s.clone(), d)));
        drop(s.enter()); // registers the SMR thread-locals after LATE
    })
    .join()
    .unwrap();
    smr.flush().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(percore_cpu::stats::get("smr.t-late-tls.participants"), Some(1), "only this thread keeps a slot");
}

#[test]
fn concurrent_flushes_each_run_everything_queued_before_them() {
    let smr = Smr::builder("t-flush-race").batch_size(3).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stop the reader even when a writer's assertion fails, so that a
    // failure fails the test instead of hanging the scope.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop_reader = StopOnDrop(&stop);
        let (reader_smr, stop) = (smr.clone(), &stop);
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _g = reader_smr.enter();
                std::hint::spin_loop();
            }
        });
        let mut writers = Vec::new();
        for _ in 0..4 {
            let (smr, dropped) = (smr.clone(), dropped.clone());
            writers.push(s.spawn(move || {
                for round in 0..200 {
                    let before = dropped.load(Ordering::SeqCst);
                    for _ in 0..7 {
                        retire_new(&smr, CountDrop(dropped.clone()));
                    }
                    if round % 3 == 0 {
                        drop(smr.enter());
                    }
                    smr.flush().unwrap();
                    // Our seven ran, whatever the other threads did.
                    assert!(dropped.load(Ordering::SeqCst) >= before + 7);
                }
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
    });
    smr.flush().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 4 * 200 * 7);
    assert_eq!(smr.pending(), 0);
}

#[test]
fn destructors_may_retire_into_the_same_domain() {
    let smr = Smr::builder("t-reentrant").batch_size(2).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let (s, d) = (smr.clone(), dropped.clone());
        smr.defer(move || retire_new(&s, CountDrop(d)));
    }
    smr.flush().unwrap(); // runs the closures, which retire more
    smr.flush().unwrap(); // runs what they retired
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
}

#[test]
fn in_section_sees_every_domain_not_only_the_cached_one() {
    let a = Smr::new("in-section-a").unwrap();
    let b = Smr::new("in-section-b").unwrap();
    assert!(!crate::in_section());
    {
        let _ga = a.enter(); // `a` is cached now
        assert!(crate::in_section());
    }
    {
        let _gb = b.enter(); // `b` replaces it in the cache
        assert!(crate::in_section());
        drop(a.enter()); // `a` cached again while `b`'s section is open
        assert!(crate::in_section(), "b's open section must still count");
    }
    assert!(!crate::in_section());
}

/// `in_section` reads a thread's first `MIRROR` slots from `FAST` and
/// scans `OWNED` beyond that: every domain counts on both sides of the
/// boundary, including after dead domains' slots were dropped from `OWNED`
/// (which rewrites the mirror) and when the cached domain is not the one
/// in a section.
#[test]
fn in_section_sees_each_of_many_domains_through_mirror_and_scan() {
    std::thread::spawn(|| {
        for n in 1..=crate::smr::MIRROR + 3 {
            let ds: Vec<Smr> = (0..n).map(|i| Smr::new(&format!("mirror-{n}-{i}")).unwrap()).collect();
            for d in &ds {
                drop(d.enter()); // claim a slot in each
            }
            for (i, d) in ds.iter().enumerate() {
                let g = d.enter();
                // Another domain becomes the cached one meanwhile.
                drop(ds[(i + 1) % n].enter());
                assert!(crate::in_section(), "{n} domains: domain {i}'s section");
                drop(g);
                assert!(!crate::in_section(), "{n} domains: none open after {i}");
            }
            // These domains die; the next round's first claim drops their
            // slots from `OWNED` and rewrites the mirror.
        }
    })
    .join()
    .unwrap();
}

#[test]
fn nested_sections_on_a_teardown_time_slot_end_in_any_order_and_free_it() {
    // As in `sections_and_retires_in_late_thread_local_destructors_work`,
    // but nested and dropped outer first: the last guard (not the first)
    // must unpublish and give the ephemeral slot back.
    /// In a section after the outer drop, after the inner drop; the poll.
    type Seen = (bool, bool, bool);
    struct Late(Option<(Smr, mpsc::Sender<Seen>)>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some((smr, tx)) = self.0.take() {
                let outer = smr.enter();
                let inner = smr.enter();
                drop(outer);
                let after_outer = smr.in_section();
                drop(inner);
                let after_inner = smr.in_section();
                // The slot was released: a blocking poll cannot see it.
                let goal = smr.advance();
                tx.send((after_outer, after_inner, smr.poll(goal, true))).unwrap();
            }
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<Late> = const { std::cell::RefCell::new(Late(None)) };
    }
    let smr = Smr::new("t-late-nest").unwrap();
    let (tx, rx) = mpsc::channel();
    let s = smr.clone();
    std::thread::spawn(move || {
        LATE.with(|l| l.borrow_mut().0 = Some((s.clone(), tx)));
        drop(s.enter()); // registers the SMR thread-locals after LATE
    })
    .join()
    .unwrap();
    assert_eq!(rx.recv().unwrap(), (true, false, true));
    assert_eq!(
        percore_cpu::stats::get("smr.t-late-nest.participants"),
        Some(0),
        "both of the thread's slots were given back"
    );
}

#[test]
fn a_saturated_nesting_count_keeps_the_section_open() {
    use crate::slots::NEST_MASK;
    let smr = Smr::new("t-saturate").unwrap();
    let s = smr.clone();
    std::thread::spawn(move || {
        let outer = s.enter();
        let slot = s.test_slot();
        // As if 2^31 - 2 guards had been forgotten.
        slot.local.nesting.set(NEST_MASK - 1);
        let a = s.enter();
        let b = s.enter(); // saturates: no wrap into the flag bit
        assert_eq!(slot.local.nesting.get(), NEST_MASK);
        assert!(!slot.ephemeral());
        drop(b);
        drop(a);
        drop(outer);
        assert!(s.in_section(), "a saturated count never reaches zero");
        assert_eq!(slot.local.nesting.get(), NEST_MASK);
    })
    .join()
    .unwrap();
    // The thread's exit released its slot, section and all.
    assert!(smr.poll(smr.advance(), false));
}
