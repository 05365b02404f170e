//! Issue 13, "async interop, both ways".
//!
//! * A uthread waits on any `Future` with `block_on_future`: its waker
//!   unparks the uthread, so the worker runs its other uthreads meanwhile
//!   (one worker here: a neighbour keeps counting while the future is
//!   pending, woken from a foreign OS thread).
//! * A `JoinHandle` is a `Future`: async code (here polled by a foreign
//!   thread's `block_on_future`) awaits a uthread's result; a handle polled
//!   once and then joined does not hang on the stale registration.

use percore_lwkt::{block_on_future, JoinError, Runtime};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A future completed by another OS thread after `after`.
#[derive(Default)]
struct Flag {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct FlagFuture(Arc<Flag>);

impl Future for FlagFuture {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.done.load(SeqCst) {
            Poll::Ready(42)
        } else {
            Poll::Pending
        }
    }
}

fn complete_later(flag: Arc<Flag>, after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        flag.done.store(true, SeqCst);
        if let Some(w) = flag.waker.lock().unwrap().take() {
            w.wake();
        }
    });
}

#[test]
fn a_uthread_awaits_a_future_without_blocking_its_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (t, s) = (ticks.clone(), stop.clone());
    let neighbour = rt
        .spawn(move || {
            while !s.load(SeqCst) {
                t.fetch_add(1, SeqCst);
                percore_lwkt::sleep(Duration::from_millis(1)).unwrap();
            }
        })
        .unwrap();
    let t = ticks.clone();
    let (v, during) = rt
        .block_on(move || {
            let flag = Arc::new(Flag::default());
            complete_later(flag.clone(), Duration::from_millis(100));
            let before = t.load(SeqCst);
            let v = block_on_future(FlagFuture(flag)).unwrap();
            (v, t.load(SeqCst) - before)
        })
        .unwrap();
    stop.store(true, SeqCst);
    neighbour.join().unwrap();
    assert_eq!(v, 42);
    assert!(during >= 10, "the neighbour ran only {during} times while the future was pending");
}

#[test]
fn a_foreign_thread_awaits_a_future() {
    let flag = Arc::new(Flag::default());
    complete_later(flag.clone(), Duration::from_millis(10));
    assert_eq!(block_on_future(FlagFuture(flag)).unwrap(), 42);
}

#[test]
fn a_join_handle_is_a_future() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt
        .spawn(|| {
            percore_lwkt::sleep(Duration::from_millis(20)).unwrap();
            7u32
        })
        .unwrap();
    // Awaited by async code (here: a foreign thread's executor).
    assert_eq!(block_on_future(h).unwrap().unwrap(), 7);
    // A panic comes back as the join error.
    let h = rt.spawn(|| -> u32 { panic!("async boom") }).unwrap();
    let e: JoinError = block_on_future(h).unwrap().unwrap_err();
    assert_eq!(e.panic_message(), Some("async boom"));
    // From a uthread: awaiting a neighbour's handle.
    let v = rt
        .block_on(|| {
            let h = percore_lwkt::spawn(|| {
                percore_lwkt::sleep(Duration::from_millis(5)).unwrap();
                5u32
            })
            .unwrap();
            block_on_future(h).unwrap().unwrap()
        })
        .unwrap();
    assert_eq!(v, 5);
}

#[test]
fn polled_then_joined_does_not_hang() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let mut h = rt
        .spawn(move || {
            while !g.load(SeqCst) {
                percore_lwkt::sleep(Duration::from_millis(1)).unwrap();
            }
            3u32
        })
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
    // Polled again with another waker: the registration is replaced.
    assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
    gate.store(true, SeqCst);
    assert_eq!(h.join().unwrap(), 3);
}
