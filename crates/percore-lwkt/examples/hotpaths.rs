//! Hot paths of the scheduler, one at a time, for profiling (`perf record`)
//! and for A/B comparisons between two builds on a shared machine.
//!
//! ```text
//! cargo run --release -p percore-lwkt --example hotpaths -- yield   [iters]
//! cargo run --release -p percore-lwkt --example hotpaths -- handoff [iters]
//! cargo run --release -p percore-lwkt --example hotpaths -- spawn   [iters]
//! ```
//!
//! The loops are those of `percore-bench lwkt` (`lwkt_yield`,
//! `lwkt_handoff` with park/unpark, `lwkt_spawn_join`) on one worker, but
//! timed with the worker thread's CPU clock instead of the wall clock: on a
//! machine shared with other jobs the worker is preempted now and then, and
//! CPU time leaves those gaps out. Compare builds by running both
//! interleaved; `percore-bench` remains the reference against the peers.
use percore_lwkt::{self as lwkt, Builder, Runtime};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// The calling thread's CPU clock, with the two methods the loops use.
#[derive(Clone, Copy)]
struct Instant(Duration);
impl Instant {
    fn now() -> Instant {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec owned by this frame.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Instant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    fn elapsed(&self) -> Duration {
        Instant::now().0 - self.0
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "yield".into());
    let n: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(20_000_000);
    let rt = Runtime::builder().workers(1).build().unwrap();
    let d = rt
        .block_on(move || match what.as_str() {
            "yield" => {
                let go = Arc::new(AtomicBool::new(false));
                let g = go.clone();
                let peer = lwkt::spawn(move || {
                    while !g.load(SeqCst) {
                        lwkt::yield_now();
                    }
                })
                .unwrap();
                lwkt::yield_now();
                let t = Instant::now();
                for _ in 0..n / 2 {
                    lwkt::yield_now();
                }
                let d = t.elapsed();
                go.store(true, SeqCst);
                peer.join().unwrap();
                d
            }
            "handoff" => {
                let rounds = n / 2;
                let turn = Arc::new(AtomicBool::new(false));
                let me = lwkt::current().unwrap();
                let tp = turn.clone();
                let peer = lwkt::spawn(move || {
                    for _ in 0..rounds {
                        while !tp.load(SeqCst) {
                            let _ = lwkt::park();
                        }
                        tp.store(false, SeqCst);
                        me.unpark();
                    }
                })
                .unwrap();
                let pu = peer.uthread().clone();
                let t = Instant::now();
                for _ in 0..rounds {
                    turn.store(true, SeqCst);
                    pu.unpark();
                    while turn.load(SeqCst) {
                        let _ = lwkt::park();
                    }
                }
                let d = t.elapsed();
                peer.join().unwrap();
                d
            }
            "spawn" => {
                let t = Instant::now();
                for _ in 0..n {
                    Builder::new().spawn(|| ()).unwrap().join().unwrap();
                }
                t.elapsed()
            }
            other => panic!("unknown hot path {other:?}: yield, handoff or spawn"),
        })
        .unwrap();
    println!("{:.1} ns/iter", d.as_nanos() as f64 / n as f64);
}
