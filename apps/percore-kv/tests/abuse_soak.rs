//! A bounded soak: many clients doing set/append/get/delete, gets/cas and
//! incr on overlapping keys, every reply checked against what the clients
//! did:
//!
//! * every value read is made of fragments some client wrote to that key
//!   (each fragment carries the writer, its sequence number, the key and a
//!   checksum: a torn, mixed-up or invented value fails);
//! * CAS never lets two writers win with the same unique, and a counter
//!   advanced only by CAS ends at exactly the number of wins;
//! * incr from every client sums exactly, and each client sees its
//!   increments of a key rise.
//!
//! `PERCORE_KV_SOAK_SECS` sets the duration (20 s by default; `ci/kv-abuse.sh`
//! runs 60 s in release), `PERCORE_KV_SOAK_CLIENTS` the clients (8).

mod abuse_support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use abuse_support::*;
use percore_kv::server::Server;

const RKEYS: usize = 8;
const CKEYS: usize = 4;
const NKEYS: usize = 4;

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let w = connect_to(addr);
        Client { r: BufReader::new(w.try_clone().unwrap()), w }
    }

    fn send(&mut self, req: &[u8]) {
        self.w.write_all(req).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        assert!(l.ends_with("\r\n"), "cut reply line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    /// A `get`/`gets` reply for one key: `(value, cas)` or a miss.
    fn value(&mut self, key: &str) -> Option<(Vec<u8>, u64)> {
        let l = self.line();
        if l == "END" {
            return None;
        }
        let f: Vec<&str> = l.split(' ').collect();
        assert!(f.len() >= 4 && f[0] == "VALUE" && f[1] == key, "bad header {l:?} for {key}");
        let len: usize = f[3].parse().unwrap();
        let cas = f.get(4).map_or(0, |c| c.parse().unwrap());
        let mut v = vec![0u8; len + 2];
        self.r.read_exact(&mut v).unwrap();
        assert!(v.ends_with(b"\r\n"), "value of {key} not framed");
        v.truncate(len);
        assert_eq!(self.line(), "END");
        Some((v, cas))
    }
}

/// FNV-1a, 32 bits.
fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &c| (h ^ u32::from(c)).wrapping_mul(0x0100_0193))
}

fn fragment(client: usize, seq: u64, key: &str) -> String {
    let body = format!("{client}.{seq}.{key}");
    format!("{body}.{:08x};", fnv(body.as_bytes()))
}

/// Checks a value of `key` fragment by fragment; its length.
fn check_value(v: &[u8], key: &str, issued: &[AtomicU64]) -> usize {
    let s = std::str::from_utf8(v).unwrap_or_else(|_| panic!("{key}: not UTF-8: {v:?}"));
    assert!(s.ends_with(';'), "{key}: torn value {s:?}");
    for f in s[..s.len() - 1].split(';') {
        let (body, sum) = f.rsplit_once('.').unwrap_or_else(|| panic!("{key}: bad fragment {f:?} in {s:?}"));
        assert_eq!(format!("{:08x}", fnv(body.as_bytes())), sum, "{key}: corrupt fragment {f:?}");
        let p: Vec<&str> = body.split('.').collect();
        assert_eq!(p.len(), 3, "{key}: bad fragment {f:?}");
        assert_eq!(p[2], key, "{key}: holds a fragment written to {}", p[2]);
        let (c, seq): (usize, u64) = (p[0].parse().unwrap(), p[1].parse().unwrap());
        // ORDERING: the writer publishes its sequence before sending; this
        // reply came after that send.
        assert!(seq <= issued[c].load(Ordering::Acquire), "{key}: fragment {f:?} was never written");
    }
    v.len()
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    ops: u64,
    cas_wins: [u64; CKEYS],
    incr_sum: [u64; NKEYS],
    gets: u64,
    hits: u64,
}

#[test]
fn soak_loses_and_corrupts_nothing() {
    let secs = env_or("PERCORE_KV_SOAK_SECS", 20);
    let clients = env_or("PERCORE_KV_SOAK_CLIENTS", 8) as usize;
    let server = Server::start(settings()).unwrap();
    let addr = server.local_addr();
    let mut admin = Client::new(addr);
    for k in 0..NKEYS {
        admin.send(format!("set n{k} 0 0 1\r\n0\r\n").as_bytes());
        assert_eq!(admin.line(), "STORED");
    }
    let issued: Vec<AtomicU64> = (0..clients).map(|_| AtomicU64::new(0)).collect();
    let cas_winners: Mutex<HashSet<(usize, u64)>> = Mutex::new(HashSet::new());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|me| {
                let (issued, cas_winners) = (&issued, &cas_winners);
                s.spawn(move || {
                    let mut c = Client::new(addr);
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (me as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1));
                    let mut t = Tally::default();
                    let mut seq = 0u64;
                    let mut last_incr: HashMap<usize, u64> = HashMap::new();
                    let mut too_long = [false; RKEYS];
                    let mut next_fragment = |key: &str| {
                        seq += 1;
                        // ORDERING: pairs with the acquire load in `check_value`.
                        issued[me].store(seq, Ordering::Release);
                        fragment(me, seq, key)
                    };
                    while Instant::now() < deadline {
                        t.ops += 1;
                        let op = rng.below(100);
                        if op < 45 {
                            let k = rng.below(RKEYS as u64) as usize;
                            let key = format!("r{k}");
                            match op % 5 {
                                0 | 1 if !too_long[k] && op % 5 == 1 => {
                                    let f = next_fragment(&key);
                                    c.send(format!("append {key} 0 0 {}\r\n{f}\r\n", f.len()).as_bytes());
                                    let l = c.line();
                                    assert!(l == "STORED" || l == "NOT_STORED", "append: {l}");
                                }
                                0 | 1 => {
                                    let v: String = (0..1 + rng.below(3)).map(|_| next_fragment(&key)).collect();
                                    c.send(format!("set {key} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes());
                                    assert_eq!(c.line(), "STORED");
                                    too_long[k] = false;
                                }
                                2 => {
                                    c.send(format!("delete {key}\r\n").as_bytes());
                                    let l = c.line();
                                    assert!(l == "DELETED" || l == "NOT_FOUND", "delete: {l}");
                                }
                                _ => {
                                    c.send(format!("get {key}\r\n").as_bytes());
                                    t.gets += 1;
                                    if let Some((v, _)) = c.value(&key) {
                                        t.hits += 1;
                                        too_long[k] = check_value(&v, &key, issued) > 2000;
                                    }
                                }
                            }
                        } else if op < 75 {
                            let k = rng.below(CKEYS as u64) as usize;
                            let key = format!("c{k}");
                            c.send(format!("gets {key}\r\n").as_bytes());
                            match c.value(&key) {
                                None => {
                                    c.send(format!("add {key} 0 0 1\r\n0\r\n").as_bytes());
                                    let l = c.line();
                                    assert!(l == "STORED" || l == "NOT_STORED", "add: {l}");
                                }
                                Some((v, cas)) => {
                                    let n: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                                    let next = (n + 1).to_string();
                                    c.send(format!("cas {key} 0 0 {} {cas}\r\n{next}\r\n", next.len()).as_bytes());
                                    match c.line().as_str() {
                                        "STORED" => {
                                            t.cas_wins[k] += 1;
                                            let fresh = cas_winners.lock().unwrap().insert((k, cas));
                                            assert!(fresh, "two writers won CAS {cas} on {key}");
                                        }
                                        "EXISTS" => {}
                                        l => panic!("cas: {l}"),
                                    }
                                }
                            }
                        } else {
                            let k = rng.below(NKEYS as u64) as usize;
                            let d = 1 + rng.below(1000);
                            c.send(format!("incr n{k} {d}\r\n").as_bytes());
                            let l = c.line();
                            let v: u64 = l.trim_end().parse().unwrap_or_else(|_| panic!("incr: {l:?}"));
                            let prev = last_incr.insert(k, v).unwrap_or(0);
                            assert!(v >= prev + d, "n{k}: incr by {d} went from {prev} to {v}");
                            t.incr_sum[k] += d;
                        }
                    }
                    t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ops: u64 = tallies.iter().map(|t| t.ops).sum();
    let (gets, hits): (u64, u64) = (tallies.iter().map(|t| t.gets).sum(), tallies.iter().map(|t| t.hits).sum());
    for k in 0..NKEYS {
        let want: u64 = tallies.iter().map(|t| t.incr_sum[k]).sum();
        admin.send(format!("get n{k}\r\n").as_bytes());
        let (v, _) = admin.value(&format!("n{k}")).expect("a counter vanished");
        assert_eq!(std::str::from_utf8(&v).unwrap().trim_end().parse::<u64>().unwrap(), want, "n{k}: increments lost");
    }
    let mut wins = 0;
    for k in 0..CKEYS {
        let want: u64 = tallies.iter().map(|t| t.cas_wins[k]).sum();
        wins += want;
        admin.send(format!("get c{k}\r\n").as_bytes());
        let got = admin.value(&format!("c{k}")).map_or(0, |(v, _)| std::str::from_utf8(&v).unwrap().parse().unwrap());
        assert_eq!(got, want, "c{k}: the CAS counter disagrees with the number of CAS wins");
    }
    println!("soak {secs}s, {clients} clients: {ops} operations, {gets} gets ({hits} hits) checked, {wins} CAS wins");
    assert!(server.shutdown());
}
