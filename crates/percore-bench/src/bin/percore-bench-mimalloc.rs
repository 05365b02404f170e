//! Helper of `percore-bench zone`: the `Box` loops with mimalloc as the
//! global allocator, in a process of its own so that mimalloc never sits
//! behind the other measurements.
//!
//! ```text
//! percore-bench-mimalloc TARGET_MS REPS
//! ```
//!
//! Prints one line per measurement: `BENCH THREADS NS_PER_PAIR`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../zone_peer.rs"]
#[allow(dead_code)]
mod zone_peer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target_ms = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let reps = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    for (bench, threads, ns) in zone_peer::box_suite(std::time::Duration::from_millis(target_ms), reps) {
        println!("{bench} {threads} {ns}");
    }
}
