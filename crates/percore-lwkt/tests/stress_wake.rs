//! Bounded stress of the idle path after a kick (issue 15): a worker that
//! woke a sleeping peer spins for the answer before it sleeps
//! (`worker/io.rs`, `reply_window`). Round trips across two workers with
//! gaps from none to 1 ms (so the peer has gone to sleep, or is still
//! spinning), interleaved with one-way bursts whose sender then sleeps on
//! its timer right after kicking (so the reply spin fails and the sleep
//! must still honour the timer), with and without an I/O driver's epoll
//! sleep. Every message must arrive and the runtime must shut down; a lost
//! wake-up or a sleep that forgets its deadline hangs, which the watchdog
//! turns into a failure (tried: ignoring the timeout after a failed reply
//! spin hangs the one-way phase).
mod common;
use common::{scaled, watchdog};
use percore_lwkt::{self as lwkt, Builder, Runtime};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

const GAPS_US: [u64; 6] = [0, 3, 20, 80, 300, 1000];

fn run(rt: &Runtime) {
    let rounds = scaled(600) as u64;
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    Builder::new()
        .worker(0)
        .spawn_on(rt.handle(), move || {
            let me = lwkt::current().unwrap();
            let peer = Builder::new()
                .worker(1)
                .spawn(move || loop {
                    let mut m = lwkt::wait_msg(None).unwrap();
                    match m.take::<(u64, bool)>() {
                        Some((v, _)) if v == u64::MAX => break,
                        Some((v, true)) => me.send(v),
                        Some((_, false)) => {
                            g.fetch_add(1, SeqCst);
                        }
                        None => panic!("unexpected message"),
                    }
                })
                .unwrap();
            let to = peer.uthread().clone();
            for i in 0..rounds {
                let gap = Duration::from_micros(GAPS_US[(i % GAPS_US.len() as u64) as usize]);
                if i % 7 == 3 {
                    // One way: kick, then sleep on the timer at once.
                    to.send((i, false));
                    lwkt::sleep(gap).unwrap();
                    continue;
                }
                if !gap.is_zero() {
                    lwkt::sleep(gap).unwrap();
                }
                to.send((i, true));
                let mut r = lwkt::wait_msg(Some(Duration::from_secs(60))).expect("the answer");
                assert_eq!(r.take::<u64>(), Some(i));
            }
            to.send((u64::MAX, true));
            peer.join().unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
    let one_way = (0..rounds).filter(|i| i % 7 == 3).count() as u64;
    assert_eq!(got.load(SeqCst), one_way, "every one-way message arrived");
}

#[test]
fn round_trips_and_one_way_bursts_after_idle() {
    watchdog("wake_futex", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        run(&rt);
    });
}

/// A driver with nothing to do: its presence makes idle workers sleep in
/// `epoll_wait` (woken through their eventfd) instead of on the futex.
struct Quiet;

impl percore_lwkt::Driver for Quiet {
    fn poll(&self, _worker: usize) -> Option<std::time::Instant> {
        None
    }
    fn ready(&self, _worker: usize, _events: &[percore_lwkt::IoEvent]) {}
}

#[test]
fn round_trips_and_one_way_bursts_after_idle_in_epoll() {
    watchdog("wake_epoll", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.handle().driver(|| Quiet).unwrap();
        run(&rt);
    });
}
