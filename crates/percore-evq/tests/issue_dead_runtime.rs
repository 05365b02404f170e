//! Issue 16, item 2: waits must not outlive their runtime or their deadline.
//!
//! Scenarios:
//! * after the runtime is dropped (a `Handle` clone kept), `Alarm::new_in`
//!   and `Epoll::new_in` used to succeed, `set_after(1 ms)` returned `Ok`
//!   and never fired, and `Epoll::wait(.., Some(200 ms))` and
//!   `Alarm::wait(None)` never returned. Each now fails at once with
//!   `Error::Shutdown`;
//! * on a live runtime, a foreign thread's `Epoll::wait` with a 10 ms
//!   timeout returned only after 1.5 s while the only worker was busy (its
//!   alarm is fired by that worker). It now returns by its deadline;
//! * `percore_evq::sleep` on a foreign thread returned `NoRuntime` although
//!   its doc says it works there; it now sleeps the OS thread.

mod common;

use common::watchdog;
use percore_evq::{Alarm, Epoll, EpollEvent, Error};
use percore_lwkt::Runtime;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn shutdown(r: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::Shutdown))
}

#[test]
fn everything_on_a_dropped_runtime_fails_with_shutdown() {
    watchdog(60, "dead runtime", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let h = rt.handle().clone();
        let mut alarm = Alarm::new_in(&h).unwrap();
        let epoll = Epoll::new_in(&h).unwrap();
        drop(rt);
        assert!(shutdown(Alarm::new_in(&h)), "Alarm::new_in");
        assert!(shutdown(Epoll::new_in(&h)), "Epoll::new_in");
        assert!(shutdown(alarm.set_after(Duration::from_millis(1))), "set_after");
        assert!(shutdown(alarm.wait(None)), "Alarm::wait(None)");
        let mut evs = [EpollEvent::default(); 4];
        let t = Instant::now();
        assert!(shutdown(epoll.wait(&mut evs, Some(Duration::from_millis(200)))), "Epoll::wait");
        assert!(t.elapsed() < Duration::from_millis(200), "failed at once, not at the timeout");
    });
}

#[test]
fn an_alarm_waiter_on_a_foreign_thread_learns_of_the_shutdown() {
    watchdog(60, "shutdown while waiting", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let mut alarm = Alarm::new_in(rt.handle()).unwrap();
        alarm.set_after(Duration::from_secs(3600)).unwrap();
        let waiter = std::thread::spawn(move || alarm.wait(None));
        std::thread::sleep(Duration::from_millis(50));
        drop(rt);
        assert!(shutdown(waiter.join().unwrap()));
    });
}

#[test]
fn a_foreign_timed_epoll_wait_returns_by_its_deadline_while_the_worker_is_busy() {
    watchdog(60, "busy worker", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let epoll = Epoll::new_in(rt.handle()).unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        // Keep the only worker busy without a scheduling point.
        let busy = rt
            .spawn(move || {
                s.store(true, SeqCst);
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(1500) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        while !started.load(SeqCst) {
            std::thread::yield_now();
        }
        let mut evs = [EpollEvent::default(); 4];
        let t = Instant::now();
        assert_eq!(epoll.wait(&mut evs, Some(Duration::from_millis(10))).unwrap(), 0);
        let took = t.elapsed();
        assert!(took < Duration::from_millis(500), "a 10 ms wait took {took:?}");
        busy.join().unwrap();
    });
}

#[test]
fn sleep_works_on_a_foreign_thread() {
    let t = Instant::now();
    percore_evq::sleep(Duration::from_millis(5)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(5));
}
