//! The measurement loops of the zone benchmarks, generic over how an object
//! is allocated and freed. Pure `std`: the mimalloc helper binary
//! (`bin/percore-bench-mimalloc.rs`) includes this file too, so `Box` under
//! mimalloc runs exactly the loops `Box` under the system allocator runs.

use std::hint::black_box;
use std::sync::mpsc::sync_channel;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The 64-byte object of every zone benchmark.
pub(crate) type Obj = [u64; 8];

/// Objects moved per message in the cross-thread benchmark.
const BATCH: usize = 256;

/// Nanoseconds per iteration: grow `iters` until one call of `f` takes a
/// quarter of `target`, then the best of `reps` calls. Every bench uses this one (`util` re-exports it).
pub(crate) fn ns_per_iter(target: Duration, reps: usize, mut f: impl FnMut(u64) -> Duration) -> f64 {
    let mut iters = 1_000u64;
    loop {
        let t = f(iters);
        if t >= target / 4 || iters >= 1 << 34 {
            break;
        }
        iters *= 4;
    }
    (0..reps.max(1)).map(|_| f(iters).as_nanos() as f64 / iters as f64).fold(f64::INFINITY, f64::min)
}

/// `threads` threads each run `iters` alloc+free pairs at once; returns the
/// wall time from the first thread's start to the last one's finish.
///
/// NOTE: each thread reads the clock itself, right before and after its
/// loop. Timing from the coordinating thread (as this did until issue 15)
/// undercounts: on a loaded 2-CPU machine the coordinator, released by the
/// same barrier as the workers, can be preempted before it reads the clock
/// while the workers run most of their loop, and the best-of-N selection
/// then keeps exactly that sample (0.3-0.6 ns "per pair" in quick mode).
pub(crate) fn alloc_free<H>(
    threads: usize,
    iters: u64,
    alloc: &(impl Fn(u64) -> H + Sync),
    free: &(impl Fn(H) + Sync),
) -> Duration {
    let start = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let t0 = Instant::now();
                    for i in 0..black_box(iters) {
                        let h = alloc(i);
                        free(black_box(h));
                    }
                    (t0, Instant::now())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("threads > 0");
    let last = spans.iter().map(|s| s.1).max().expect("threads > 0");
    last - first
}

/// One thread allocates `iters` objects and hands them over in batches of
/// `BATCH`; another frees them. Returns the wall time for all of them.
pub(crate) fn cross<H: Send>(iters: u64, alloc: &(impl Fn(u64) -> H + Sync), free: &(impl Fn(H) + Sync)) -> Duration {
    let (full_tx, full_rx) = sync_channel::<Vec<H>>(4);
    let (empty_tx, empty_rx) = sync_channel::<Vec<H>>(8);
    for _ in 0..6 {
        empty_tx.send(Vec::with_capacity(BATCH)).expect("receiver alive");
    }
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for batch in full_rx {
                let mut batch = batch;
                for h in batch.drain(..) {
                    free(black_box(h));
                }
                // The producer may be done already; then the Vec just drops.
                let _ = empty_tx.send(batch);
            }
        });
        let mut left = iters;
        let mut i = 0;
        while left > 0 {
            let mut batch = empty_rx.recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
            let n = (left as usize).min(BATCH);
            for _ in 0..n {
                batch.push(alloc(i));
                i += 1;
            }
            left -= n as u64;
            full_tx.send(batch).expect("consumer alive");
        }
        drop(full_tx);
    });
    t.elapsed()
}

/// `Box` with whatever the global allocator is: the object is initialised
/// (as `Box::new` must) and one word written, like the zone loops do.
pub(crate) fn box_alloc(i: u64) -> Box<Obj> {
    let mut b = Box::new([0u64; 8]);
    b[0] = i;
    b
}

/// The `Box` peer's three measurements: alloc+free on 1 and 2 threads, and
/// cross-thread; `(bench, threads, ns_per_pair)`. Used by the mimalloc helper.
#[allow(dead_code)]
pub(crate) fn box_suite(target: Duration, reps: usize) -> Vec<(&'static str, usize, f64)> {
    let free = |b: Box<Obj>| drop(b);
    let mut out = Vec::new();
    for threads in [1, 2] {
        let ns = ns_per_iter(target, reps, |n| alloc_free(threads, n, &box_alloc, &free));
        out.push(("zone_alloc_free", threads, ns));
    }
    let ns = ns_per_iter(target, reps, |n| cross(n, &box_alloc, &free));
    out.push(("zone_cross_thread", 2, ns));
    out
}
