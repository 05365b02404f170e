//! Fast-path check: alloc+free pairs on one thread.
fn main() {
    let zone = percore_zone::Zone::new("hot", || [0u64; 8]).unwrap();
    for round in 0..3 {
        let n = 20_000_000u64;
        let t = std::time::Instant::now();
        for i in 0..n {
            let mut b = zone.try_alloc().unwrap();
            b[0] = i;
            drop(std::hint::black_box(b));
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!("round {round}: {ns:.2} ns/pair; {:?}", zone.stats());
    }
}
