//! loom model of the worker sleep / wake-up protocol (`idle.rs`): senders
//! push IPIs and notify; the worker drains, and sleeps on the (emulated)
//! futex when it found nothing. A lost wake-up leaves the worker asleep
//! forever, which loom reports as a deadlock.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_idle` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use percore_lwkt::__loom::{Idle, Ring};

struct Target {
    idle: Idle,
    rings: [Ring<u32>; 2],
}

fn worker_receives(target: &Target, expect: usize) -> Vec<u32> {
    let mut got = Vec::new();
    loop {
        if target.idle.take_pending() {
            for r in &target.rings {
                // SAFETY: this thread is the only consumer of every ring.
                while let Some(v) = unsafe { r.pop() } {
                    got.push(v);
                }
            }
        }
        if got.len() == expect {
            return got;
        }
        target.idle.sleep(None);
    }
}

#[test]
fn one_sender_no_lost_wakeup() {
    loom::model(|| {
        let t = Arc::new(Target { idle: Idle::new(), rings: [Ring::new(), Ring::new()] });
        let s = t.clone();
        let sender = thread::spawn(move || {
            // SAFETY: the only producer on ring 0.
            unsafe { s.rings[0].push(7) }.unwrap();
            s.idle.notify();
        });
        assert_eq!(worker_receives(&t, 1), vec![7]);
        sender.join().unwrap();
    });
}

#[test]
fn two_senders_two_messages_each() {
    loom::model(|| {
        let t = Arc::new(Target { idle: Idle::new(), rings: [Ring::new(), Ring::new()] });
        let senders: Vec<_> = (0..2u32)
            .map(|i| {
                let s = t.clone();
                thread::spawn(move || {
                    for k in 0..2 {
                        // SAFETY: sender `i` is the only producer on ring `i`.
                        unsafe { s.rings[i as usize].push(i * 10 + k) }.unwrap();
                        s.idle.notify();
                    }
                })
            })
            .collect();
        let mut got = worker_receives(&t, 4);
        for s in senders {
            s.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![0, 1, 10, 11]);
    });
}

/// An eventfd for the model: a counter under a mutex; `wait` blocks until it
/// is non-zero and resets it (`epoll_wait` on the kick eventfd, then `read`).
#[derive(Default)]
struct Kick {
    count: loom::sync::Mutex<u32>,
    cv: loom::sync::Condvar,
}

impl Kick {
    fn kick(&self) {
        *self.count.lock().unwrap() += 1;
        self.cv.notify_all();
    }

    fn wait(&self) {
        let mut c = self.count.lock().unwrap();
        while *c == 0 {
            c = self.cv.wait(c).unwrap();
        }
        *c = 0;
    }
}

/// The driver mode: the worker sleeps in its poller, senders kick it when
/// `notify` says so. A lost kick leaves the worker blocked: a loom deadlock.
#[test]
fn polling_worker_no_lost_wakeup() {
    use percore_lwkt::__loom::Notified;
    loom::model(|| {
        let t = Arc::new((Target { idle: Idle::new(), rings: [Ring::new(), Ring::new()] }, Kick::default()));
        let senders: Vec<_> = (0..2u32)
            .map(|i| {
                let s = t.clone();
                thread::spawn(move || {
                    // SAFETY: sender `i` is the only producer on ring `i`.
                    unsafe { s.0.rings[i as usize].push(i) }.unwrap();
                    if s.0.idle.notify() == Notified::Poller {
                        s.1.kick();
                    }
                })
            })
            .collect();
        let (target, kick) = &*t;
        let mut got = Vec::new();
        loop {
            if target.idle.take_pending() {
                for r in &target.rings {
                    // SAFETY: this thread is the only consumer of every ring.
                    while let Some(v) = unsafe { r.pop() } {
                        got.push(v);
                    }
                }
            }
            if got.len() == 2 {
                break;
            }
            target.idle.sleep_polling(|| kick.wait());
        }
        for s in senders {
            s.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![0, 1]);
    });
}
