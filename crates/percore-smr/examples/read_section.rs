//! A read-section loop for instruction counts (`valgrind --tool=callgrind`)
//! and disassembly (`objdump -d`) of the read-side fast path.
//!
//! `cargo run --release -p percore-smr --example read_section -- [ITERS]`
//! enters and leaves `ITERS` sections (default 10,000,000), each around one
//! pointer load, and prints the mean time per section. The loop is in a
//! function of its own (`sections`) so that its code is easy to find.

use percore_smr::Smr;
use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Instant;

#[inline(never)]
fn sections(smr: &Smr, p: &AtomicPtr<u64>, iters: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..iters {
        let g = smr.enter();
        // SAFETY: `p` points at a live Box for the whole run (freed in main
        // after the loop).
        sum = sum.wrapping_add(black_box(unsafe { *p.load(Ordering::Acquire) }));
        drop(g);
    }
    sum
}

fn main() {
    let iters: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let smr = Smr::new("read-section-example").expect("domain");
    let p = AtomicPtr::new(Box::into_raw(Box::new(7u64)));
    sections(&smr, &p, 1000); // claim the slot outside the timed loop
    let t = Instant::now();
    let sum = sections(&smr, &p, iters);
    let ns = t.elapsed().as_nanos() as f64 / iters.max(1) as f64;
    println!("{iters} sections, {ns:.3} ns each (sum {sum})");
    // SAFETY: no reader is left; the pointer came from Box::into_raw.
    drop(unsafe { Box::from_raw(p.load(Ordering::Relaxed)) });
}
