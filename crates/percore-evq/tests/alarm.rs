//! `Alarm` and `sleep`: set / cancel / re-arm, never early, cancel of a
//! fired alarm, many alarms on many uthreads, alarms of foreign threads,
//! recycled alarm objects, and a bounded stress test of cancels racing the
//! firing worker (uthreads migrate between the two workers, so the cancel
//! runs on one worker while the alarm fires on the other).

mod common;

use common::{stat, watchdog};
use percore_evq::{Alarm, Error, Queue, ALARM_EVENT};
use percore_lwkt::Runtime;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime")
}

#[test]
fn set_wait_fires_not_early() {
    let rt = rt(2);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        assert!(!a.is_armed());
        for ms in [0, 1, 3, 7] {
            let d = Duration::from_millis(ms);
            let t0 = Instant::now();
            a.set_after(d).unwrap();
            a.wait(None).unwrap();
            assert!(t0.elapsed() >= d, "fired after {:?}, set for {d:?}", t0.elapsed());
            assert!(!a.is_armed());
            assert!(a.queue().is_empty(), "wait took the event");
        }
    })
    .unwrap();
}

#[test]
fn cancel_before_firing_returns_true_and_posts_nothing() {
    let rt = rt(1);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        assert!(!a.cancel(), "not armed");
        a.set_after(Duration::from_secs(60)).unwrap();
        assert!(a.is_armed());
        assert!(a.cancel());
        assert!(!a.is_armed());
        assert!(!a.cancel(), "cancelled already");
        assert!(matches!(a.wait(Some(Duration::from_millis(2))), Err(Error::TimedOut)));
        assert!(a.queue().is_empty());
    })
    .unwrap();
}

#[test]
fn cancel_of_a_fired_alarm_returns_false_and_keeps_its_event() {
    let rt = rt(1);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        a.set_after(Duration::from_millis(1)).unwrap();
        // Wait on the queue, not `wait`, so the event stays for the check.
        while a.queue().is_empty() {
            percore_evq::sleep(Duration::from_millis(1)).unwrap();
        }
        assert!(!a.cancel());
        assert_eq!(a.queue().len(), 1);
        assert_eq!(a.queue().try_recv().unwrap().kind, ALARM_EVENT);
    })
    .unwrap();
}

#[test]
fn rearm_replaces_the_previous_arming() {
    let rt = rt(1);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        a.set_after(Duration::from_secs(60)).unwrap();
        let t0 = Instant::now();
        a.set_after(Duration::from_millis(2)).unwrap(); // cancels the first
        a.wait(None).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(2));
        // A fired alarm's event left in the queue is dropped by the next set.
        a.set_after(Duration::ZERO).unwrap();
        // NOTE: block, not spin on `yield_now`: a uthread alone on its
        // worker that yields never lets the worker's timer pass run.
        let first = a.queue().recv(None).unwrap();
        a.queue().post(first).unwrap(); // put it back, untaken
        a.set_after(Duration::from_secs(60)).unwrap();
        assert!(a.queue().is_empty(), "set dropped the earlier firing's event");
        assert!(a.cancel());
        // Generations: each firing's payload is its own.
        a.set_after(Duration::ZERO).unwrap();
        let e = a.queue().recv(None).unwrap();
        assert_eq!(e.kind, ALARM_EVENT);
        assert!(e.payload > first.payload);
    })
    .unwrap();
}

#[test]
fn an_instant_already_past_fires_at_the_next_pass() {
    let rt = rt(1);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        a.set(Instant::now()).unwrap();
        a.wait(Some(Duration::from_secs(30))).unwrap();
    })
    .unwrap();
}

#[test]
fn outside_a_runtime() {
    assert!(matches!(Alarm::new(), Err(Error::NoRuntime)));
    // `sleep` works everywhere: a foreign thread sleeps its OS thread
    // (issue 16; see tests/issue_dead_runtime.rs).
    assert!(percore_evq::sleep(Duration::ZERO).is_ok());
}

#[test]
fn alarm_of_a_foreign_thread() {
    let rt = rt(2);
    let mut a = Alarm::new_in(rt.handle()).unwrap();
    let t0 = Instant::now();
    a.set_after(Duration::from_millis(3)).unwrap();
    a.wait(None).unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(3));
    a.set_after(Duration::from_secs(60)).unwrap();
    assert!(a.cancel());
    // Made here, armed and fired on a uthread, then back here.
    a = rt
        .block_on(move || {
            a.set_after(Duration::from_millis(1)).unwrap();
            a.wait(None).unwrap();
            a
        })
        .unwrap();
    a.set_after(Duration::from_millis(1)).unwrap();
    a.wait(None).unwrap();
}

/// 200 uthreads on 2 workers sleep for different times; each wakes, none
/// early; armed alarms dropped without firing leave the objects reusable.
#[test]
fn many_alarms_on_many_uthreads() {
    let rt = rt(2);
    watchdog(60, "many alarms", String::new, move || {
        let hs: Vec<_> = (0..200u64)
            .map(|i| {
                rt.spawn(move || {
                    let d = Duration::from_micros(i * 97 % 20_000);
                    let t0 = Instant::now();
                    percore_evq::sleep(d).unwrap();
                    assert!(t0.elapsed() >= d);
                    // Dropped armed: cancelled on drop, never fires.
                    let mut a = Alarm::new().unwrap();
                    a.set_after(Duration::from_secs(60)).unwrap();
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // One uthread, many alarms at once; they fire in deadline order.
        rt.block_on(|| {
            let mut alarms: Vec<_> = (0..50).map(|_| Alarm::new().unwrap()).collect();
            let t0 = Instant::now();
            for (i, a) in alarms.iter_mut().enumerate() {
                a.set(t0 + Duration::from_micros(((i * 37) % 50) as u64 * 100)).unwrap();
            }
            for (i, a) in alarms.iter_mut().enumerate() {
                a.wait(None).unwrap();
                assert!(t0.elapsed() >= Duration::from_micros(((i * 37) % 50) as u64 * 100));
            }
        })
        .unwrap();
    });
}

/// Cancels racing the firing worker. Each uthread arms an alarm due now or
/// within 60 µs on its current worker, sometimes migrates to the other
/// worker (which then cancels while the first one fires), and cancels:
/// `true` means nothing was or will be posted; `false` means the event is
/// in the queue already (the cancel waited for a firing in flight). Bounded:
/// 8 uthreads x 2000 rounds.
#[test]
fn stress_cancel_races_firing_across_workers() {
    const U: u64 = 8;
    const ROUNDS: u64 = 2000;
    let rt = rt(2);
    let stopped = Arc::new(AtomicU64::new(0));
    let fired = Arc::new(AtomicU64::new(0));
    let (s2, f2) = (stopped.clone(), fired.clone());
    let waits0 = stat("alarms_cancel_waits");
    watchdog(60, "alarm cancel stress", move || format!("{} stopped, {} fired", s2.load(SeqCst), f2.load(SeqCst)), {
        let (stopped, fired) = (stopped.clone(), fired.clone());
        move || {
            let hs: Vec<_> = (0..U)
                .map(|u| {
                    let (stopped, fired) = (stopped.clone(), fired.clone());
                    rt.spawn(move || {
                        let mut a = Alarm::new().unwrap();
                        for r in 0..ROUNDS {
                            a.set(Instant::now() + Duration::from_micros((r * 13 + u * 7) % 60)).unwrap();
                            match (r + u) % 4 {
                                0 => {}
                                1 => percore_lwkt::yield_now(),
                                _ => {
                                    let w = percore_lwkt::worker_index().unwrap();
                                    // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                                    unsafe { percore_lwkt::migrate(1 - w) }.unwrap();
                                }
                            }
                            if a.cancel() {
                                assert!(a.queue().is_empty(), "cancelled, yet an event was posted");
                                stopped.fetch_add(1, SeqCst);
                            } else {
                                assert_eq!(a.queue().len(), 1, "cancel returned before the event was posted");
                                a.wait(Some(Duration::ZERO)).unwrap();
                                fired.fetch_add(1, SeqCst);
                            }
                            assert!(!a.is_armed());
                        }
                    })
                    .unwrap()
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
    });
    let (s, f) = (stopped.load(SeqCst), fired.load(SeqCst));
    assert_eq!(s + f, U * ROUNDS);
    eprintln!("stopped {s}, fired {f}, cancels that waited for a firing: {}", stat("alarms_cancel_waits") - waits0);
}

/// `set` to a later deadline while armed moves the arming in place (its
/// wheel entry stays at the old deadline, and the worker puts it back when
/// that comes up): it never fires at the old deadline, and fires once, at or
/// after the last one.
#[test]
fn rearm_later_never_fires_at_the_old_deadline() {
    let rt = rt(1);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        a.set_after(Duration::from_millis(2)).unwrap();
        let last = Instant::now() + Duration::from_millis(30);
        a.set(last).unwrap();
        // The old deadline (and its tick) passes; nothing may be posted.
        assert!(matches!(a.queue().recv(Some(Duration::from_millis(10))), Err(Error::TimedOut)));
        assert!(a.is_armed());
        a.wait(None).unwrap();
        assert!(Instant::now() >= last, "fired before the moved deadline");
        assert!(a.queue().is_empty());
        // Pushed on many times, each before the previous one comes up (a
        // keep-alive): one firing, at or after the last deadline.
        let mut last = Instant::now();
        for _ in 0..20 {
            last = Instant::now() + Duration::from_millis(20);
            a.set(last).unwrap();
            percore_evq::sleep(Duration::from_micros(500)).unwrap();
            // NOTE: a sleep stretched past `last` (a loaded machine) lets it
            // fire, rightly.
            assert!(a.queue().is_empty() || Instant::now() >= last, "fired at an old deadline");
        }
        a.wait(None).unwrap();
        assert!(Instant::now() >= last);
        assert!(matches!(a.queue().recv(Some(Duration::from_millis(5))), Err(Error::TimedOut)), "fired twice");
        // Moved, then cancelled: nothing fires, at either deadline.
        a.set_after(Duration::from_millis(1)).unwrap();
        a.set_after(Duration::from_millis(4)).unwrap();
        assert!(a.cancel());
        assert!(matches!(a.queue().recv(Some(Duration::from_millis(8))), Err(Error::TimedOut)));
    })
    .unwrap();
}

/// `set` to an earlier deadline while armed cancels and arms afresh: it
/// fires by the earlier deadline, not the first one.
#[test]
fn rearm_earlier_fires_early_enough() {
    let rt = rt(1);
    rt.block_on(|| {
        let mut a = Alarm::new().unwrap();
        a.set_after(Duration::from_secs(60)).unwrap();
        a.set_after(Duration::from_secs(30)).unwrap();
        let t0 = Instant::now();
        a.set_after(Duration::from_millis(2)).unwrap();
        a.wait(Some(Duration::from_secs(10))).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(2));
        assert!(!a.is_armed());
        // Moved later in place, then earlier: the earlier one wins.
        a.set_after(Duration::from_millis(1)).unwrap();
        a.set_after(Duration::from_secs(60)).unwrap();
        a.set_after(Duration::from_millis(2)).unwrap();
        a.wait(Some(Duration::from_secs(10))).unwrap();
        assert!(a.queue().is_empty());
    })
    .unwrap();
}

/// Moves racing the firing worker: each uthread arms an alarm due within
/// 400 µs, sometimes migrates to the other worker, moves it later (which
/// races the firing of the first deadline, and the worker putting the moved
/// arming back), and then cancels or waits. A cancel that returns `true`
/// leaves nothing posted; `false` means exactly one event, of the current
/// arming; a wait returns at or after the last deadline. Bounded: 8
/// uthreads x 1500 rounds.
#[test]
fn stress_rearm_races_firing_across_workers() {
    const U: u64 = 8;
    const ROUNDS: u64 = 1500;
    let rt = rt(2);
    let done = Arc::new(AtomicU64::new(0));
    let d2 = done.clone();
    watchdog(
        60,
        "alarm re-arm stress",
        move || format!("{} rounds done", d2.load(SeqCst)),
        move || {
            let hs: Vec<_> = (0..U)
                .map(|u| {
                    let done = done.clone();
                    rt.spawn(move || {
                        let mut a = Alarm::new().unwrap();
                        for r in 0..ROUNDS {
                            a.set(Instant::now() + Duration::from_micros((r * 13 + u * 7) % 400)).unwrap();
                            match (r + u) % 3 {
                                0 => {}
                                1 => percore_lwkt::yield_now(),
                                _ => {
                                    let w = percore_lwkt::worker_index().unwrap();
                                    // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                                    unsafe { percore_lwkt::migrate(1 - w) }.unwrap();
                                }
                            }
                            let last = Instant::now() + Duration::from_micros(100 + (r * 7 + u) % 2500);
                            a.set(last).unwrap();
                            if (r + u) % 2 == 0 {
                                a.wait(Some(Duration::from_secs(10))).unwrap();
                                assert!(Instant::now() >= last, "fired before the moved deadline");
                                // NOTE: the event is posted before the firing
                                // completes (on the other worker, maybe): a
                                // cancel waits for that.
                                assert!(!a.cancel());
                                assert!(a.queue().is_empty(), "an extra event");
                            } else if a.cancel() {
                                assert!(a.queue().is_empty(), "cancelled, yet an event was posted");
                            } else {
                                assert_eq!(a.queue().len(), 1, "cancel returned before the event was posted");
                                a.wait(Some(Duration::ZERO)).unwrap();
                            }
                            assert!(!a.is_armed());
                            done.fetch_add(1, SeqCst);
                        }
                    })
                    .unwrap()
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        },
    );
}
