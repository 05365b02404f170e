//! loom model of the port slot (`uthread/portslot.rs`): senders open a
//! uthread's port on first use while its worker closes it at the uthread's
//! exit. Checked in every interleaving:
//!
//! * no message is stranded: a sender that delivers does so into the port
//!   the closer then closes (the port's own lock and flag order the rest),
//!   so after both sides are done every port reachable from the slot is
//!   closed, and none is opened after the close;
//! * at most one port is ever published (two openers racing: the loser's
//!   box is freed, it uses the winner's), and the contents of the published
//!   one are visible to every thread that gets it (loom checks the cell).
//!
//! Tried: with `close` a plain store of `CLOSED` (no compare-exchange), the
//! model fails (a port opened just before is lost, left open).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p percore-lwkt
//! --release --test loom_portslot` (ci/loom.sh).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};
use loom::thread;
use percore_lwkt::__loom::PortSlot;

/// A port: its opener's mark (a plain cell, published by the slot only),
/// and the queue's state under its lock.
struct Port {
    opener: UnsafeCell<usize>,
    q: Mutex<(bool, usize)>,
}

fn open(id: usize) -> Port {
    let p = Port { opener: UnsafeCell::new(0), q: Mutex::new((false, 0)) };
    // SAFETY: not shared yet.
    p.opener.with_mut(|o| unsafe { *o = id });
    p
}

/// A sender: open the port if needed and queue one message unless closed.
/// Returns whether the message was queued.
fn send(slot: &PortSlot<Port>, id: usize) -> bool {
    let Some(p) = slot.get_or_init(|| open(id)) else { return false };
    // SAFETY: loom checks this read against the opener's write.
    p.opener.with(|o| assert_ne!(unsafe { *o }, 0));
    let mut q = p.q.lock().unwrap();
    if q.0 {
        return false;
    }
    q.1 += 1;
    true
}

/// The worker at the uthread's exit: close the slot, then the port if one
/// was opened (dropping what is queued). Returns the messages dropped.
fn exit(slot: &PortSlot<Port>) -> usize {
    match slot.close() {
        Some(p) => {
            let mut q = p.q.lock().unwrap();
            q.0 = true;
            std::mem::take(&mut q.1)
        }
        None => 0,
    }
}

fn check_after(slot: &PortSlot<Port>) {
    if let Some(p) = slot.get_or_init(|| open(99)) {
        let q = p.q.lock().unwrap();
        assert!(q.0, "a port reachable after the close is open");
        assert_eq!(q.1, 0, "a message stranded in a closed port");
    }
}

#[test]
fn a_sender_racing_the_exit() {
    loom::model(|| {
        let slot = Arc::new(PortSlot::<Port>::new());
        let s = slot.clone();
        let t = thread::spawn(move || send(&s, 1));
        let dropped = exit(&slot);
        let queued = t.join().unwrap();
        // A queued message was dropped by the close (the sender's reply
        // slot then answers `NoReply`); none is left behind.
        assert_eq!(usize::from(queued), dropped);
        check_after(&slot);
    });
}

#[test]
fn two_openers_and_the_exit() {
    loom::model(|| {
        let slot = Arc::new(PortSlot::<Port>::new());
        let senders: Vec<_> = (1..=2)
            .map(|id| {
                let s = slot.clone();
                thread::spawn(move || send(&s, id))
            })
            .collect();
        let dropped = exit(&slot);
        let queued = senders.into_iter().map(|t| t.join().unwrap()).filter(|&q| q).count();
        assert_eq!(queued, dropped);
        check_after(&slot);
    });
}
