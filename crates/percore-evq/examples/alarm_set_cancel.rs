//! Microbenchmark: set + cancel pairs of one alarm on a uthread, with
//! `pending` other alarms armed on the same worker (the timer set's size).
//!
//! `cargo run --release -p percore-evq --example alarm_set_cancel [pending...]`

use percore_evq::Alarm;
use std::time::{Duration, Instant};

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let sizes = if sizes.is_empty() { vec![0, 1_000, 100_000] } else { sizes };
    let rt = percore_lwkt::Runtime::builder().workers(1).build().expect("runtime");
    for pending in sizes {
        let ns = rt
            .block_on(move || {
                let mut others: Vec<Alarm> = (0..pending).map(|_| Alarm::new().unwrap()).collect();
                for (i, a) in others.iter_mut().enumerate() {
                    a.set_after(Duration::from_secs(60) + Duration::from_micros(i as u64 * 37 % 1_000_000)).unwrap();
                }
                let mut a = Alarm::new().unwrap();
                const N: u32 = 1_000_000;
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t0 = Instant::now();
                    for i in 0..N {
                        a.set_after(Duration::from_millis(10 + u64::from(i % 1000))).unwrap();
                        assert!(a.cancel());
                    }
                    best = best.min(t0.elapsed().as_nanos() as f64 / f64::from(N));
                }
                best
            })
            .unwrap();
        println!("pending {pending:>7}: {ns:.1} ns per set+cancel (best of 3 x 1,000,000)");
    }
}
