//! Issue 13: there was no way to stop a blocked `accept` from another
//! uthread.
//!
//! Scenario: a server uthread blocks in `TcpListener::accept` on a listener
//! it shares (an `Arc`) with another uthread, which wants the server to stop.
//! Before the change nothing but a connection or the accept timeout ended
//! the wait (dropping the listener is impossible while the server borrows
//! it). Now `close` on any handle wakes every call blocked on the socket,
//! and it and every later call fail at once with an `io::Error` of kind
//! `Other` wrapping `percore_evq::Error::Closed`; the same for a read
//! blocked on a stream and a receive on a UDP socket.
//!
//! The waits here have no timeout, so a close that does not wake its
//! waiter leaves it blocked for ever; the watchdog turns that into a failure
//! with a message instead of a hang (checked: without the wake-ups in
//! `Source::close` the first test fails so).
mod common;
use common::watchdog;
use percore_evq::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use percore_evq::Error;
use percore_lwkt::Runtime;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

fn is_closed(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && matches!(e.get_ref().and_then(|e| e.downcast_ref()), Some(Error::Closed))
}

/// Yield until `flag` is set, then once more: on a one-worker runtime the
/// other uthread has then run up to its first block.
fn until(flag: &AtomicBool) {
    while !flag.load(SeqCst) {
        percore_lwkt::yield_now();
    }
    percore_lwkt::yield_now();
}

#[test]
fn close_from_another_uthread_wakes_a_blocked_accept() {
    watchdog(60, "close wakes accept", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let started = Arc::new(AtomicBool::new(false));
            let (l2, s2) = (l.clone(), started.clone());
            let server = percore_lwkt::spawn(move || {
                s2.store(true, SeqCst);
                l2.accept().map(|_| ())
            })
            .unwrap();
            until(&started);
            assert!(!server.is_finished(), "accept returned with nobody connecting");
            l.close();
            let e = server.join().unwrap().unwrap_err();
            assert!(is_closed(&e), "{e:?}");
            assert_eq!(e.to_string(), "closed (by a call to `close`)");
            // Later calls fail at once too, even with a connection queued.
            let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            assert!(is_closed(&l.accept().unwrap_err()));
            l.close(); // idempotent
        })
        .unwrap();
    });
}

#[test]
fn close_wakes_a_blocked_stream_read_and_a_udp_receive() {
    watchdog(60, "close wakes read", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let (a, b) = UnixStream::pair().unwrap();
            let (a, u) = (Arc::new(a), Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap()));
            let started = Arc::new(AtomicBool::new(false));
            let (a2, u2, s2) = (a.clone(), u.clone(), started.clone());
            let reader = percore_lwkt::spawn(move || {
                s2.store(true, SeqCst);
                (&*a2).read(&mut [0u8; 8]).unwrap_err()
            })
            .unwrap();
            let started2 = Arc::new(AtomicBool::new(false));
            let s3 = started2.clone();
            let receiver = percore_lwkt::spawn(move || {
                s3.store(true, SeqCst);
                u2.recv_from(&mut [0u8; 8]).unwrap_err()
            })
            .unwrap();
            until(&started);
            until(&started2);
            a.close();
            u.close();
            assert!(is_closed(&reader.join().unwrap()));
            assert!(is_closed(&receiver.join().unwrap()));
            drop(b);
        })
        .unwrap();
    });
}

#[test]
fn close_wakes_a_foreign_thread_blocked_in_accept() {
    watchdog(60, "close wakes a foreign accept", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let l = Arc::new(rt.block_on(|| TcpListener::bind("127.0.0.1:0").unwrap()).unwrap());
        let l2 = l.clone();
        let t = std::thread::spawn(move || l2.accept().map(|_| ()));
        let h = rt.spawn(move || l.close()).unwrap();
        h.join().unwrap();
        assert!(is_closed(&t.join().unwrap().unwrap_err()));
    });
}

/// Bounded stress: closes racing many acceptors and readers on two workers,
/// at every point of their way into the wait. A lost wake-up is a hang the
/// watchdog reports.
#[test]
fn stress_close_against_waiters_entering() {
    watchdog(120, "close stress", String::new, || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            for round in 0..50 {
                let l = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
                let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (s, _) = l.accept().unwrap();
                let s = Arc::new(s);
                let mut hs = Vec::new();
                for i in 0..4 {
                    let (l, s) = (l.clone(), s.clone());
                    hs.push(
                        percore_lwkt::spawn(move || {
                            if i % 2 == 0 {
                                l.accept().map(|_| ()).unwrap_err()
                            } else {
                                (&*s).read(&mut [0u8; 8]).unwrap_err()
                            }
                        })
                        .unwrap(),
                    );
                }
                for _ in 0..round % 4 {
                    percore_lwkt::yield_now();
                }
                l.close();
                s.close();
                for h in hs {
                    let e = h.join().unwrap();
                    assert!(is_closed(&e), "round {round}: {e:?}");
                }
                drop(c);
            }
        })
        .unwrap();
    });
}
