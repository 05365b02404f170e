//! loom model of an I/O source's readiness protocol (`src/io/source.rs`:
//! the readiness word with its tick, `try_io`'s clear-only-if-no-event,
//! `wait`'s re-check under the lock, `on_ready`'s batched wake-ups and
//! `close`), the same code production runs, with `percore_cpu::loom`'s
//! atomics and lock and loom threads as waiters (`percore_lwkt::Waiter` in its loom form). The
//! kernel is a mock: a locked "bytes available" (a socket buffer) that the
//! system call takes, filled before the event is reported, as the kernel
//! does. NOTE: a lock rather than an atomic: with an `AtomicUsize` and
//! `swap`, loom 0.7 showed a thread's load missing its own earlier store
//! (a two-thread store/swap model printed it), which made this model
//! report a deadlock the protocol does not have.
//!
//! What each model checks (a waiter nobody wakes is a loom deadlock):
//! * an edge that arrives while an operation is between its snapshot, its
//!   failed system call and its wait is never lost;
//! * `close` wakes an operation at every point of its way into the wait,
//!   and it returns `Error::Closed`;
//! * one edge wakes every waiter of its direction, across wake-up batches
//!   (`WAKE_BATCH` is 1 under loom).
//! * a select's `poll_ready` (a task waker) racing an edge, with stale
//!   "maybe ready" bits: the poll is ready, or its waker is woken and the
//!   next poll is ready (fails when `link` stops re-checking the bits under
//!   the lock: tried).
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2
//! cargo test -p percore-evq --release --test loom_io` (ci/loom.sh).
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;
use percore_evq::__loom::{Dir, Source};
use percore_evq::Error;
use std::io;

const IN: u32 = libc::EPOLLIN as u32;
const RDHUP: u32 = libc::EPOLLRDHUP as u32;

/// Run one operation on `src` to completion, as `Registration::io` does
/// (no deadline, no runtime).
fn run<R>(src: &Source, dir: Dir, mut op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
    loop {
        if let Some(r) = src.try_io(dir, &|_| false, &mut op) {
            return r;
        }
        src.wait(dir, None).unwrap();
    }
}

/// A read of the mock socket: takes what is there, or `WouldBlock`.
fn read(bytes: &Mutex<usize>) -> io::Result<usize> {
    match std::mem::take(&mut *bytes.lock().unwrap()) {
        0 => Err(io::ErrorKind::WouldBlock.into()),
        n => Ok(n),
    }
}

/// A fresh source and mock socket, and a thread that puts 3 bytes in the
/// socket and reports their edge.
fn data_arrives() -> (Arc<Source>, Arc<Mutex<usize>>, thread::JoinHandle<()>) {
    let src = Arc::new(Source::new(None));
    let bytes = Arc::new(Mutex::new(0));
    let (s, b) = (src.clone(), bytes.clone());
    let kernel = thread::spawn(move || {
        *b.lock().unwrap() = 3;
        s.on_ready(IN);
    });
    (src, bytes, kernel)
}

/// Data arrives (and its edge is reported) while a reader is on its way
/// from its first try into its wait: the reader gets it.
#[test]
fn an_edge_racing_an_operation_is_not_lost() {
    loom::model(|| {
        let (src, bytes, kernel) = data_arrives();
        assert_eq!(run(&src, Dir::Read, || read(&bytes)).unwrap(), 3);
        kernel.join().unwrap();
    });
}

/// A close from another thread ends an operation that finds nothing to
/// read, wherever it is on its way into the wait.
#[test]
fn close_wakes_an_operation() {
    loom::model(|| {
        let src = Arc::new(Source::new(None));
        let s = src.clone();
        let closer = thread::spawn(move || s.close());
        let bytes = Mutex::new(0);
        let e = run(&src, Dir::Read, || read(&bytes)).unwrap_err();
        assert!(matches!(e.get_ref().and_then(|e| e.downcast_ref()), Some(Error::Closed)), "{e:?}");
        closer.join().unwrap();
        assert!(src.is_closed());
    });
}

/// Two readers wait for the end of the stream; the peer's hang-up is one
/// edge, whose waiters are woken one batch (of one) at a time: both read it.
#[test]
fn one_edge_wakes_every_waiter_across_batches() {
    loom::model(|| {
        let src = Arc::new(Source::new(None));
        let eof = Arc::new(Mutex::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, e) = (src.clone(), eof.clone());
                thread::spawn(move || {
                    run(
                        &s,
                        Dir::Read,
                        || if *e.lock().unwrap() { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) },
                    )
                })
            })
            .collect();
        *eof.lock().unwrap() = true;
        src.on_ready(IN | RDHUP);
        for r in readers {
            assert_eq!(r.join().unwrap().unwrap(), 0);
        }
    });
}

/// A task's waker that counts its wake-ups (a select's source).
struct Flag(loom::sync::atomic::AtomicUsize);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A select's poll of a fresh source (its "maybe ready" bits stale: the
/// mock kernel has nothing) racing data's arrival and edge: the poll is
/// `Ready`, or its waker is woken and the next poll is `Ready`; never
/// neither (the select would sleep through the data).
#[test]
fn a_select_poll_racing_an_edge_is_woken_or_ready() {
    loom::model(|| {
        let (src, bytes, kernel) = data_arrives();
        let flag = std::sync::Arc::new(Flag(loom::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(flag.clone());
        let ready_now = || *bytes.lock().unwrap() > 0;
        let mut key = None;
        let first = src.poll_ready(Dir::Read, &mut key, &waker, ready_now);
        kernel.join().unwrap();
        if first.is_pending() {
            assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst) > 0, "a pending select was never woken");
            assert!(src.poll_ready(Dir::Read, &mut key, &waker, ready_now).is_ready());
        }
        assert_eq!(key, None, "a ready poll holds no registration");
    });
}
