//! Memory pressure: writing 10x `-m` worth of self-checking values keeps the
//! resident set within `-m` plus a fixed overhead, evicts, counts the
//! evictions in `stats`, and never returns a torn or wrong value.
//!
//! Each value embeds its key, a version and a checksum of the rest; each key
//! has one writer, so a hit must be exactly the last version written (an
//! older one means a lost update, anything else a torn or foreign value).
//!
//! The fixed overhead allowed on top of `-m` is [`OVERHEAD`]: the runtime's
//! workers and uthread stacks, the connections' buffers, the allocator's
//! slack and the test's own bookkeeping (measured with the engine: see the
//! printed numbers).

mod abuse_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};

use abuse_support::*;
use percore_kv::config::Settings;
use percore_kv::server::Server;

/// `-m` for this test.
const LIMIT: usize = 16 << 20;
/// What the process may hold beyond `-m` (see the module docs).
const OVERHEAD: u64 = 32 << 20;
const VALUE: usize = 8 << 10;
const THREADS: usize = 4;

fn value(key: &str, version: u64) -> Vec<u8> {
    let head = format!("{key}|{version}|");
    let mut v = head.clone().into_bytes();
    let mut x = version.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.len() as u64;
    while v.len() < VALUE - 9 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    let sum = v.iter().fold(0u32, |h, &b| h.rotate_left(5) ^ u32::from(b));
    v.extend_from_slice(format!("|{sum:08x}").as_bytes());
    v
}

#[test]
fn ten_times_the_memory_limit_evicts_and_never_corrupts() {
    let server = Server::start(Settings { memory_limit: LIMIT, ..settings() }).unwrap();
    let addr = server.local_addr();
    let rss0 = rss_bytes();
    let total = 10 * LIMIT / VALUE;
    let keys_per_thread = total / THREADS / 4;
    let (mut hits, mut misses) = (0u64, 0u64);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let c = connect_to(addr);
                    let mut r = BufReader::new(c.try_clone().unwrap());
                    let mut w = c;
                    let mut latest: HashMap<usize, u64> = HashMap::new();
                    let (mut hits, mut misses) = (0u64, 0u64);
                    for i in 0..total / THREADS {
                        let k = i % keys_per_thread;
                        let key = format!("m{t}.{k}");
                        let version = latest.get(&k).map_or(0, |v| v + 1);
                        let v = value(&key, version);
                        w.write_all(format!("set {key} 0 0 {}\r\n", v.len()).as_bytes()).unwrap();
                        w.write_all(&v).unwrap();
                        w.write_all(b"\r\n").unwrap();
                        let mut l = String::new();
                        r.read_line(&mut l).unwrap();
                        assert_eq!(l, "STORED\r\n");
                        latest.insert(k, version);
                        // Read back an older key of this thread's.
                        let back = (i * 7919) % keys_per_thread;
                        let Some(&want) = latest.get(&back) else { continue };
                        let bkey = format!("m{t}.{back}");
                        w.write_all(format!("get {bkey}\r\n").as_bytes()).unwrap();
                        let mut l = String::new();
                        r.read_line(&mut l).unwrap();
                        if l == "END\r\n" {
                            misses += 1;
                            continue;
                        }
                        assert_eq!(l, format!("VALUE {bkey} 0 {}\r\n", VALUE));
                        let mut got = vec![0u8; VALUE + 7];
                        r.read_exact(&mut got).unwrap();
                        assert!(got.ends_with(b"\r\nEND\r\n"), "{bkey}: not framed");
                        assert!(got[..VALUE] == value(&bkey, want)[..], "{bkey}: torn, stale or foreign value");
                        hits += 1;
                    }
                    (hits, misses)
                })
            })
            .collect();
        for h in handles {
            let (a, b) = h.join().unwrap();
            hits += a;
            misses += b;
        }
    });
    let rss1 = rss_bytes();
    let st = server.context().store.stats();
    let mut c = connect(&server);
    let stats = String::from_utf8(roundtrip(&mut c, b"stats\r\n", b"END\r\n")).unwrap();
    let evictions: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT evictions "))
        .and_then(|n| n.trim().parse().ok())
        .expect("stats has evictions");
    println!(
        "wrote {:.0} MiB into -m {} MiB: RSS +{:.1} MiB (limit + {} MiB overhead), store holds {:.1} MiB of {:.1} MiB, \
         {evictions} evictions, read-backs {hits} hits {misses} misses",
        mib((total * VALUE) as u64),
        LIMIT >> 20,
        mib(rss1.saturating_sub(rss0)),
        OVERHEAD >> 20,
        mib(st.used_bytes),
        mib(st.limit_bytes)
    );
    assert!(evictions > 0, "10x -m was written and nothing was evicted");
    assert_eq!(evictions, st.evictions);
    assert!(
        st.used_bytes <= st.limit_bytes,
        "the store holds {} bytes over a limit of {}",
        st.used_bytes,
        st.limit_bytes
    );
    assert!(
        rss1.saturating_sub(rss0) <= LIMIT as u64 + OVERHEAD,
        "RSS grew by {:.1} MiB writing 10x -m {} MiB",
        mib(rss1 - rss0),
        LIMIT >> 20
    );
    assert!(server.shutdown());
}
