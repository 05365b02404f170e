//! Cross-worker wake-up, leg by leg, for profiling the idle path (issue 15).
//!
//! ```text
//! cargo run --release -p percore-lwkt --example wake -- [gap_us] [trips] [pin|nopin] [idle_ms]
//! ```
//!
//! A uthread on worker 0 sends a `u64` to one on worker 1 through its port
//! and waits for the echo, like `percore-bench`'s `lwkt_pingpong`; before
//! each round trip it sleeps `gap_us` (default 1000) so that both workers go
//! idle. Each round trip is split at the moment the echo side received the
//! message (one monotonic clock for both threads): `there` is the wake-up of
//! worker 1, `back` the reply's way to worker 0. Prints the medians and p90s
//! of both legs and of the whole; run it under `strace -f -c` or
//! `perf stat -e context-switches` to count what a round trip costs. With
//! `idle_ms`, the runtime then sits idle that long and the process's CPU
//! time over that window is printed (an idle runtime must not spin). With
//! `WAKE_ONEWAY=1` nobody answers: the sender only sends, then sleeps its
//! gap, and the process CPU over the whole run is printed (what a worker
//! that kicks a peer pays when no answer comes).
use percore_lwkt::{self as lwkt, Builder, Runtime};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

static CPU1: AtomicU64 = AtomicU64::new(0);
static SAME: AtomicU64 = AtomicU64::new(0);

/// The process's CPU time (user + system).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn q(v: &mut [u64], f: f64) -> f64 {
    v.sort_unstable();
    let r = ((f * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[r - 1] as f64 / 1e3
}

fn main() {
    let mut args = std::env::args().skip(1);
    let gap = Duration::from_micros(args.next().and_then(|s| s.parse().ok()).unwrap_or(1000));
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let pin = args.next().as_deref() != Some("nopin");
    let idle_ms: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let rt = Runtime::builder().workers(2).pin(pin).build().unwrap();
    let oneway = std::env::var_os("WAKE_ONEWAY").is_some();
    let cpu0 = cpu_time();
    let epoch = Instant::now();
    let (there, back) = rt
        .block_on(move || {
            Builder::new()
                .worker(0)
                .spawn(move || {
                    let me = lwkt::current().unwrap();
                    let seen = Arc::new(AtomicU64::new(0));
                    let s = seen.clone();
                    let peer = Builder::new()
                        .worker(1)
                        .spawn(move || loop {
                            let mut m = lwkt::wait_msg(None).unwrap();
                            s.store(epoch.elapsed().as_nanos() as u64, Relaxed);
                            // SAFETY: sched_getcpu has no preconditions.
                            CPU1.store(unsafe { libc::sched_getcpu() } as u64, Relaxed);
                            match m.take::<u64>() {
                                Some(v) if v != u64::MAX => {
                                    if !oneway {
                                        me.send(v)
                                    }
                                }
                                _ => break,
                            }
                        })
                        .unwrap();
                    let to = peer.uthread().clone();
                    let (mut there, mut back) = (Vec::with_capacity(n), Vec::with_capacity(n));
                    for i in 0..n + 20 {
                        if !gap.is_zero() {
                            let _ = lwkt::sleep(gap);
                        }
                        let t0 = epoch.elapsed().as_nanos() as u64;
                        to.send(i as u64);
                        if oneway {
                            continue;
                        }
                        drop(lwkt::wait_msg(None).unwrap());
                        let t2 = epoch.elapsed().as_nanos() as u64;
                        let t1 = seen.load(Relaxed);
                        // SAFETY: as above.
                        let c0 = unsafe { libc::sched_getcpu() } as u64;
                        if i >= 20 && c0 == CPU1.load(Relaxed) {
                            SAME.fetch_add(1, Relaxed);
                        }
                        if i >= 20 {
                            there.push(t1 - t0);
                            back.push(t2 - t1);
                        }
                    }
                    to.send(u64::MAX);
                    peer.join().unwrap();
                    (there, back)
                })
                .unwrap()
                .join()
                .unwrap()
        })
        .unwrap();
    if oneway {
        drop(rt);
        println!(
            "one way, gap {} us, {} sends: {:.3} ms process CPU",
            gap.as_micros(),
            n,
            (cpu_time() - cpu0).as_secs_f64() * 1e3
        );
        return;
    }
    if idle_ms > 0 {
        // The runtime sits idle: how much CPU does the process burn?
        let before = cpu_time();
        std::thread::sleep(Duration::from_millis(idle_ms));
        println!("idle {} ms after the round trips: {:.3} ms CPU", idle_ms, (cpu_time() - before).as_secs_f64() * 1e3);
    }
    drop(rt);
    let mut all: Vec<u64> = there.iter().zip(&back).map(|(a, b)| a + b).collect();
    let (mut there, mut back) = (there, back);
    println!(
        "gap {} us, {} trips, pin {}: there median {:.2} p90 {:.2} us; back median {:.2} p90 {:.2} us; round trip median {:.2} p90 {:.2} us; same CPU {}",
        gap.as_micros(),
        n,
        pin,
        q(&mut there, 0.5),
        q(&mut there, 0.9),
        q(&mut back, 0.5),
        q(&mut back, 0.9),
        q(&mut all, 0.5),
        q(&mut all, 0.9),
        SAME.load(Relaxed)
    );
}
