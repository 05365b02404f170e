//! Issue 13: sockets that outlive their runtime went deaf.
//!
//! Scenario: a TCP listener and a connected pair of streams are made on a
//! runtime and handed out of it; the runtime is dropped. Before the fix a
//! read waited for ever (its readiness would have come from a worker that
//! is gone), even when data arrived after the drop, and a foreign thread
//! already blocked in `read` when the runtime went never returned. Now every
//! read, write and accept fails at once with an `io::Error` of kind `Other`
//! wrapping `percore_evq::Error::Shutdown`, and the blocked reader wakes with
//! it within its 50 ms slice.
mod common;
use common::watchdog;
use percore_evq::net::{TcpListener, TcpStream};
use percore_evq::Error;
use percore_lwkt::Runtime;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn is_shutdown(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && matches!(e.get_ref().and_then(|e| e.downcast_ref()), Some(Error::Shutdown))
}

fn setup(rt: &Runtime) -> (TcpListener, TcpStream, TcpStream) {
    rt.block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (l, c, s)
    })
    .unwrap()
}

#[test]
fn io_after_the_runtime_fails_with_shutdown() {
    watchdog(60, "sockets after runtime", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (l, mut c, mut s) = setup(&rt);
        drop(rt);
        let t0 = Instant::now();
        let e = s.read(&mut [0u8; 8]).unwrap_err();
        assert!(is_shutdown(&e), "read: {e:?}");
        c.write_all(b"late").map(|_| ()).unwrap_or_else(|e| assert!(is_shutdown(&e), "write: {e:?}"));
        let e = c.write(b"late").unwrap_err();
        assert!(is_shutdown(&e), "write: {e:?}");
        let e = s.read(&mut [0u8; 8]).unwrap_err(); // data or not, the same
        assert!(is_shutdown(&e), "read after data: {e:?}");
        let e = l.accept().unwrap_err();
        assert!(is_shutdown(&e), "accept: {e:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    });
}

#[test]
fn a_blocked_foreign_reader_wakes_with_shutdown() {
    watchdog(60, "blocked reader", String::new, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (_l, _c, mut s) = setup(&rt);
        let reader = std::thread::spawn(move || s.read(&mut [0u8; 8]));
        std::thread::sleep(Duration::from_millis(50)); // let it block
        drop(rt);
        let e = reader.join().unwrap().unwrap_err();
        assert!(is_shutdown(&e), "{e:?}");
    });
}
