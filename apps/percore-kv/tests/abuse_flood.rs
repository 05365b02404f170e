//! Connection floods: as many concurrent connections as `-c` allows are all
//! served; past `-c` new connections get memcached's refusal
//! (`ERROR Too many open connections`, then a close) and the server keeps
//! serving the ones it has.
//!
//! 10,000 connections by default. Client and server share this process, so
//! each connection costs two descriptors: the test raises the soft
//! descriptor limit to the hard one (and says so), scales the count down to
//! what fits (and says so), and skips below 1,000. `ci/kv-abuse.sh` floods
//! the binary, in its own process, with the full 10,000.

mod abuse_support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Mutex;

use abuse_support::*;
use percore_kv::config::Settings;
use percore_kv::server::{raise_fd_limit, Server};

#[test]
fn ten_thousand_connections_are_served_and_more_are_refused() {
    let want = env_or("PERCORE_KV_FLOOD_CONNS", 10_000) as usize;
    let limit = raise_fd_limit(u64::MAX) as usize;
    println!("raised the soft descriptor limit to {limit} (the hard limit)");
    // Two descriptors a connection, plus the runtime's, the listeners' and
    // the test harness's.
    let n = want.min(limit.saturating_sub(1000) / 2);
    if n < 1000 {
        println!("SKIPPED: a hard descriptor limit of {limit} leaves room for {n} connections in one process");
        return;
    }
    if n < want {
        println!("{want} connections need {} descriptors here; flooding with {n}", 2 * want + 1000);
    }
    let server = Server::start(Settings { conn_limit: n, ..settings() }).unwrap();
    let addr = server.local_addr();
    let threads = 4;
    let started = std::time::Instant::now();
    let conns: Vec<Mutex<Vec<TcpStream>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    std::thread::scope(|s| {
        for (t, mine) in conns.iter().enumerate() {
            s.spawn(move || {
                let mut v = mine.lock().unwrap();
                for _ in (t..n).step_by(threads) {
                    let mut c = connect_to(addr);
                    assert_eq!(roundtrip(&mut c, b"mn\r\n", b"\r\n"), b"MN\r\n");
                    v.push(c);
                }
            });
        }
    });
    let opened = started.elapsed();
    assert_eq!(curr_connections(&server), n as u64);
    // Past the limit: memcached's refusal, then a close.
    for _ in 0..20 {
        let mut c = connect_to(addr);
        let (got, closed) = read_to_close(&mut c);
        assert!(closed);
        assert_eq!(got, b"ERROR Too many open connections\r\n");
    }
    assert_eq!(server.context().stats.rejected_connections.sum(), 20);
    // Every connection held is still served: a request on all at once.
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for mine in &conns {
            s.spawn(move || {
                let mut v = mine.lock().unwrap();
                for c in v.iter_mut() {
                    c.write_all(b"mn\r\n").unwrap();
                }
                for c in v.iter_mut() {
                    assert_eq!(read_until(c, b"\r\n"), b"MN\r\n");
                }
            });
        }
    });
    println!(
        "{n} concurrent connections opened and served in {opened:?}; 20 past -c refused; a request on each: {:?}",
        started.elapsed()
    );
    drop(conns);
    wait_for("connections to close", 30, || curr_connections(&server) == 0);
    assert_serving(&server);
    assert!(server.shutdown());
}
