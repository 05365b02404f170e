//! Issue 13: IPI rings grew with the square of the worker count: every
//! (sender, target) pair had its 256-slot ring allocated at start-up, so a
//! 256-worker runtime cost 293 MB of RSS before running anything.
//!
//! Scenario: build a 256-worker runtime (unpinned), measure the RSS growth,
//! run a uthread on every worker that wakes one on the next worker (so some
//! rings are used), and check the runtime still works. Rings are now
//! allocated on their first push: the start-up growth is the per-worker
//! cost (threads, epoll instances, 256 empty ring headers each), not 65,536
//! rings of slots. Alone in its binary: RSS is process-wide.
mod common;
use common::watchdog;
use percore_lwkt::{Builder, Runtime};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn start_up_memory_is_not_quadratic() {
    watchdog("ipi_ring_memory", || {
        const N: usize = 256;
        let before = rss_kib();
        let rt = Runtime::builder().workers(N).pin(false).watchdog(None).build().unwrap();
        let grown = rss_kib().saturating_sub(before);
        eprintln!("RSS growth at start-up with {N} workers: {} KiB", grown);
        let hs: Vec<_> = (0..N)
            .map(|i| {
                Builder::new()
                    .worker(i)
                    .spawn_on(rt.handle(), move || {
                        let next = (i + 1) % N;
                        let h = Builder::new().worker(next).spawn(percore_lwkt::worker_index).unwrap();
                        h.join().unwrap()
                    })
                    .unwrap()
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), Some((i + 1) % N));
        }
        assert!(grown < 96 * 1024, "start-up RSS grew by {grown} KiB with {N} workers");
    });
}
