//! Issue 13: message ports were unbounded (2,000,000 messages, 222 MB,
//! accepted with no back-pressure).
//!
//! Scenario: a receiver that does not read. With the default bound
//! (`DEFAULT_PORT_CAPACITY`, 65,536) the 65,537th `try_send` fails with
//! `Error::Full`; with `port_capacity(4)`, a `send` beyond the bound waits
//! until the receiver takes a message, and a `send` where the sender may
//! not block (a critical section) drops the message and counts it.
mod common;
use common::{stat, watchdog};
use percore_lwkt::{Error, Runtime, DEFAULT_PORT_CAPACITY};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn default_bound_and_full() {
    watchdog("port_default_bound", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let rx = rt.spawn(|| while percore_lwkt::park().is_ok() {}).unwrap();
        for i in 0..DEFAULT_PORT_CAPACITY {
            rx.uthread().try_send(i as u32).unwrap();
        }
        assert!(matches!(rx.uthread().try_send(0u32), Err(Error::Full)));
    });
}

#[test]
fn send_waits_for_room() {
    watchdog("port_backpressure", || {
        let rt = Runtime::builder().workers(2).name("port-bound").port_capacity(4).build().unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let rx = rt
            .spawn(move || {
                while !g.load(SeqCst) {
                    percore_lwkt::sleep(Duration::from_millis(1)).unwrap();
                }
                (0..6).map(|_| percore_lwkt::wait_msg(None).unwrap().take::<u32>().unwrap()).collect::<Vec<_>>()
            })
            .unwrap();
        let to = rx.uthread().clone();
        for i in 0..4u32 {
            to.try_send(i).unwrap();
        }
        assert!(matches!(to.try_send(99u32), Err(Error::Full)));
        // Where it may not wait, `send` drops and counts.
        let t = to.clone();
        rt.block_on(move || {
            let _c = percore_lwkt::critical();
            t.send(98u32);
        })
        .unwrap();
        assert_eq!(stat("lwkt.port-bound.port_full_drops"), 1);
        // A uthread and a foreign thread wait for room.
        let t = to.clone();
        let u = rt.spawn(move || t.send(4u32)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!u.is_finished(), "send did not wait for room");
        go.store(true, SeqCst);
        u.join().unwrap();
        to.send(5u32);
        assert_eq!(rx.join().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    });
}
