//! Issue 13, "one coherent API": `Epoll::add`, `modify` and `delete`
//! returned `io::Result` while `Epoll::wait` returned `percore_evq::Error`,
//! so one function using both needed two error paths; and `Interest` printed
//! as `Interest(8193)`. Now all four return `percore_evq::Error`, and
//! `Interest` (a `bitflags` type) prints its flag names.

use percore_evq::{Epoll, EpollEvent, Error, Interest};
use std::io::ErrorKind;
use std::time::Duration;

#[test]
fn add_and_wait_share_one_error_type() {
    let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    let r: Result<usize, Error> = rt
        .block_on(|| {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let ep = Epoll::new()?;
            // One `?` path for every operation of the set.
            ep.add(&a, Interest::READABLE, 1)?;
            ep.modify(&a, Interest::READABLE | Interest::EDGE, 2)?;
            let n = ep.wait(&mut [EpollEvent::default(); 4], Some(Duration::from_millis(1)))?;
            ep.delete(&a)?;
            match ep.delete(&a) {
                Err(Error::Io(e)) if e.kind() == ErrorKind::NotFound => {}
                other => panic!("{other:?}"),
            }
            Ok(n)
        })
        .unwrap();
    assert_eq!(r.unwrap(), 0);
}

#[test]
fn interest_prints_its_flag_names() {
    let i = Interest::READABLE | Interest::EDGE;
    assert_eq!(format!("{i:?}"), "Interest(READABLE | EDGE)");
    assert_eq!(i.to_string(), "READABLE | EDGE");
    assert_eq!(Interest::empty().to_string(), "");
    // Bits the kernel reports that have no name stay visible.
    let raw = Interest::from_bits_retain(Interest::HANGUP.bits() | 0x4000_0000);
    assert!(format!("{raw:?}").contains("HANGUP"), "{raw:?}");
}
