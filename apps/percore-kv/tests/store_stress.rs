//! Bounded stress tests of the engine: threads doing set / get / cas / incr /
//! append / delete on overlapping keys.
//!
//! * Every value a get returns is one some thread stored: values carry a
//!   checksum over their bytes, so a torn or reused-memory read fails it.
//! * incr from every thread sums exactly.
//! * A CAS token wins at most once (two writers never both succeed with the
//!   same unique).
//! * Appends are never lost or torn: a value is a whole number of records.
//!
//! The second test runs the same mix in a store small enough that segments
//! are cleaned (evicted and compacted) while readers read them.
#![cfg(not(feature = "loom"))]

use std::collections::HashSet;
use std::sync::Mutex;

use percore_kv::store::{ArithOutcome, ArithReq, Config, DeleteReq, GetReq, Mode, Store, StoreOutcome, StoreReq};

const THREADS: usize = 4;

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
}

/// `[thread, seq (8 bytes), filler...] ++ checksum (8 bytes)`.
fn make_value(thread: usize, seq: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 17);
    v.push(thread as u8);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend((0..len).map(|i| (i as u64 ^ seq) as u8));
    let c = checksum(&v);
    v.extend_from_slice(&c.to_le_bytes());
    v
}

fn check_value(v: &[u8]) {
    assert!(v.len() >= 17, "short value {v:?}");
    let (body, c) = v.split_at(v.len() - 8);
    assert_eq!(checksum(body), u64::from_le_bytes(c.try_into().unwrap()), "torn value");
    assert!((body[0] as usize) < THREADS);
}

/// Append records: 8 bytes, the last one a checksum of the first seven.
fn record(thread: usize, seq: u64) -> [u8; 8] {
    let mut r = [0u8; 8];
    r[0] = thread as u8;
    r[1..7].copy_from_slice(&seq.to_le_bytes()[..6]);
    r[7] = r[..7].iter().fold(0x5a, |a, &b| a ^ b.rotate_left(3));
    r
}

fn check_records(v: &[u8]) {
    assert_eq!(v.len() % 8, 0, "append torn: {} bytes", v.len());
    for r in v.chunks(8) {
        assert_eq!(r[7], r[..7].iter().fold(0x5a, |a, &b| a ^ b.rotate_left(3)), "bad record");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run(store: &Store, ops: usize, keys: u64, exact: bool) {
    let wins = Mutex::new(HashSet::new());
    let incrs_per_thread = 500u64;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let wins = &wins;
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + t as u64 * 0x9e37_79b9);
                let mut incrs = 0;
                for i in 0..ops as u64 {
                    let r = rng.next();
                    let key = format!("k{}", r % keys);
                    match (r >> 32) % 10 {
                        0..=2 => {
                            let v = make_value(t, i, (r >> 40) as usize % 600);
                            let out = store.store(&StoreReq::new(Mode::Set, key.as_bytes(), &v, t as u32, 0));
                            assert!(matches!(out, StoreOutcome::Stored { .. }), "{out:?}");
                        }
                        3..=5 => {
                            if let Some(v) = store.get(key.as_bytes(), &GetReq::default(), |h| {
                                check_value(h.value);
                                h.value.len()
                            }) {
                                assert!(v >= 17);
                            }
                        }
                        6 => {
                            let Some(cas) = store.get(key.as_bytes(), &GetReq::default(), |h| {
                                check_value(h.value);
                                h.cas()
                            }) else {
                                continue;
                            };
                            let v = make_value(t, i, 40);
                            let mut req = StoreReq::new(Mode::Set, key.as_bytes(), &v, 0, 0);
                            req.cas = Some(cas);
                            if let StoreOutcome::Stored { .. } = store.store(&req) {
                                assert!(wins.lock().unwrap().insert((key.clone(), cas)), "CAS {cas} won twice");
                            }
                        }
                        7 => {
                            if incrs < incrs_per_thread {
                                let ctr = format!("ctr{}", r % 4);
                                let mut req = ArithReq::new(ctr.as_bytes(), true, 1);
                                req.vivify = Some((0, 0));
                                match store.arith(&req) {
                                    ArithOutcome::Value { .. } => {}
                                    o => panic!("{o:?}"),
                                }
                                incrs += 1;
                            }
                        }
                        8 => {
                            let akey = format!("app{}", r % 4);
                            let rec = record(t, i);
                            let mut req = StoreReq::new(Mode::Append, akey.as_bytes(), &rec, 0, 0);
                            req.vivify = Some(0);
                            let _ = store.store(&req);
                            store.get(akey.as_bytes(), &GetReq::default(), |h| check_records(h.value));
                            if (r >> 50).is_multiple_of(64) {
                                store.delete(akey.as_bytes(), &DeleteReq::default());
                            }
                        }
                        _ => {
                            if (r >> 45).is_multiple_of(8) {
                                store.delete(key.as_bytes(), &DeleteReq::default());
                            }
                        }
                    }
                }
                // Finish this thread's incrs so the total is known.
                while incrs < incrs_per_thread {
                    let mut req = ArithReq::new(b"ctr0", true, 1);
                    req.vivify = Some((0, 0));
                    assert!(matches!(store.arith(&req), ArithOutcome::Value { .. }));
                    incrs += 1;
                }
            });
        }
    });
    let st = store.stats();
    assert!(st.used_bytes <= st.limit_bytes, "{st:?}");
    if exact {
        // The counters were created at value 0 by vivify (which does not
        // apply the delta): every incr but the first on each counter counts.
        let total: u64 = (0..4)
            .map(|c| {
                let k = format!("ctr{c}");
                store
                    .get(k.as_bytes(), &GetReq::default(), |h| percore_kv::store::parse_counter(h.value).unwrap() + 1)
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(total, THREADS as u64 * incrs_per_thread);
        assert_eq!(st.evictions, 0);
    }
}

#[test]
fn overlapping_writers_and_readers() {
    let store = Store::new(Config { memory_limit: 64 << 20, max_item_size: 64 << 10, writers: THREADS }).unwrap();
    run(&store, 20_000, 64, true);
}

#[test]
fn readers_survive_cleaning() {
    // ~2.5 MB of segments for ~3 MB of live data: constant eviction and
    // compaction under the readers' feet.
    let store = Store::new(Config { memory_limit: 3 << 20, max_item_size: 16 << 10, writers: 2 }).unwrap();
    run(&store, 20_000, 20_000, false);
    assert!(store.stats().evictions > 0);
}
