//! Bounded stress test: readers traverse the example map (examples/rcu_map.rs)
//! while writers replace and remove nodes and retire them through SMR.
//!
//! Every value carries a magic word that its destructor overwrites, and the
//! allocator reuses freed chunks at once (glibc writes its free-list links
//! over the first words), so a reader that touched a reclaimed node would
//! read a wrong magic or key and fail the test.

#[path = "../examples/rcu_map.rs"]
#[allow(dead_code, unreachable_pub)]
mod rcu_map;

use percore_smr::{Mode, Smr};
use rcu_map::RcuMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const ALIVE: u64 = 0xA11C_E5A1_1CE5_A11C;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

struct Checked {
    magic: AtomicU64,
    key: u64,
    payload: [u64; 4],
}

impl Checked {
    fn new(key: u64) -> Checked {
        Checked { magic: AtomicU64::new(ALIVE), key, payload: [key; 4] }
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        self.magic.store(DEAD, Ordering::SeqCst);
        self.payload = [u64::MAX; 4];
    }
}

const KEYS: u64 = 256;

fn scale(n: u64) -> u64 {
    if cfg!(debug_assertions) {
        n / 10
    } else {
        n
    }
}

fn run(smr: Smr, readers: usize, writers: usize) {
    let map = Arc::new(RcuMap::new(smr.clone(), 32));
    for k in 0..KEYS {
        map.insert(k, Checked::new(k));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for r in 0..readers {
            let (map, stop, lookups) = (map.clone(), stop.clone(), lookups.clone());
            s.spawn(move || {
                let mut i = r as u64;
                let mut n = 0u64;
                // Bounded by count, and stopped early once writers finish.
                while n < scale(3_000_000) && (!stop.load(Ordering::Relaxed) || n < 1000) {
                    // Hold references for a whole section, check them at its
                    // end: a node reclaimed meanwhile shows up here.
                    let g = map.smr().enter();
                    let mut held: Vec<(u64, &Checked)> = Vec::with_capacity(32);
                    for _ in 0..32 {
                        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let key = (i >> 33) % KEYS;
                        if let Some(v) = map.get(key, &g) {
                            held.push((key, v));
                        }
                        n += 1;
                    }
                    for &(key, v) in &held {
                        let magic = v.magic.load(Ordering::SeqCst);
                        assert_eq!(magic, ALIVE, "use after free: key {key} magic {magic:#x}");
                        assert_eq!(v.key, key);
                        assert_eq!(v.payload, [key; 4]);
                    }
                    drop(held);
                    drop(g);
                }
                lookups.fetch_add(n, Ordering::Relaxed);
            });
        }
        let mut ws = Vec::new();
        for w in 0..writers {
            let map = map.clone();
            ws.push(s.spawn(move || {
                for round in 0..scale(200_000) {
                    let key = (round * 7 + w as u64 * 13) % KEYS;
                    if round % 5 == 0 {
                        map.remove(key);
                    }
                    map.insert(key, Checked::new(key));
                }
            }));
        }
        for w in ws {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(lookups.load(Ordering::Relaxed) > 0);
    drop(map);
    smr.flush().unwrap();
    assert_eq!(smr.pending(), 0, "everything retired was reclaimed");
    let retired = percore_cpu::stats::get(&format!("smr.{}.retired", smr.name())).unwrap();
    let reclaimed = percore_cpu::stats::get(&format!("smr.{}.reclaimed", smr.name())).unwrap();
    assert_eq!(retired, reclaimed);
    assert!(retired >= scale(200_000) * writers as u64, "retired {retired}");
}

#[test]
fn readers_never_see_reclaimed_nodes_default_mode() {
    run(Smr::builder("stress-default").batch_size(1).build().unwrap(), 2, 1);
}

#[test]
fn readers_never_see_reclaimed_nodes_two_writers_small_cap() {
    run(Smr::builder("stress-cap").batch_size(4).max_pending(64).build().unwrap(), 2, 2);
}

#[test]
fn readers_never_see_reclaimed_nodes_deferred_mode() {
    let smr = Smr::builder("stress-deferred").mode(Mode::Deferred { limit: 4 }).batch_size(2).build().unwrap();
    run(smr, 2, 1);
}

#[test]
fn readers_never_see_reclaimed_nodes_lazy_mode() {
    let smr = Smr::builder("stress-lazy")
        .mode(Mode::Lazy { tick: std::time::Duration::from_micros(200) })
        .batch_size(8)
        .max_pending(4096)
        .build()
        .unwrap();
    run(smr, 2, 1);
}
