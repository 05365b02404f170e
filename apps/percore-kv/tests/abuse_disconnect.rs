//! Abrupt disconnects, 10,000 of them: mid-command, mid-value (small, large,
//! refused as too large), mid binary header and body, with replies still
//! being written, and by reset (`SO_LINGER` 0). Afterwards
//! `curr_connections` is back to its baseline, every connection uthread has
//! ended, the resident set is where it was (no read buffer, output buffer or
//! uthread stack leaked per connection) and no cut value was stored.

mod abuse_support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use abuse_support::*;
use percore_kv::server::{live_connections, Server};

/// How the `i`th connection dies.
fn die(addr: std::net::SocketAddr, i: usize) {
    let mut c = TcpStream::connect(addr).unwrap();
    let _ = match i % 8 {
        0 => c.write_all(b"get ke"),
        1 => c.write_all(&[format!("set cut{} 0 0 1000\r\n", i % 100).as_bytes(), &[b'v'; 500]].concat()),
        // A large value: the server grows its buffer for it, then loses it.
        2 => c.write_all(&[format!("set cut{} 0 0 200000\r\n", i % 100).as_bytes(), &[b'v'; 100_000]].concat()),
        3 => c.write_all(&binary(0x01, 3, 8, 1000, b"")[..10]),
        4 => c.write_all(&binary(0x01, 3, 8, 1000, &[0u8; 100])),
        // Replies being written when the client goes.
        5 => c.write_all(&b"get ten_k\r\n".repeat(50)),
        // A reset instead of a FIN, mid-value.
        6 => {
            socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
            c.write_all(&[format!("set cut{} 0 0 1000\r\n", i % 100).as_bytes(), &[b'v'; 10]].concat())
        }
        // A refused value being swallowed.
        _ => c.write_all(&[&b"set huge 0 0 2000000\r\n"[..], &[b'v'; 100_000]].concat()),
    };
    drop(c);
}

#[test]
fn ten_thousand_abrupt_disconnects_leak_nothing() {
    let n = env_or("PERCORE_KV_ABUSE_CONNS", 10_000) as usize;
    let server = Server::start(settings()).unwrap();
    let addr = server.local_addr();
    let baseline_live = live_connections(&server);
    let mut probe = connect(&server);
    let mut set = b"set ten_k 0 0 10000\r\n".to_vec();
    set.extend_from_slice(&[b'x'; 10_000]);
    set.extend_from_slice(b"\r\n");
    roundtrip(&mut probe, &set, b"STORED\r\n");
    let settle = || {
        wait_for("curr_connections back to the probe alone", 60, || curr_connections(&server) == 1);
        wait_for("connection uthreads to end", 60, || live_connections(&server) == baseline_live + 1);
    };
    parallel(4, 1000, |i| die(addr, i));
    settle();
    let before = rss_bytes();
    let started = std::time::Instant::now();
    parallel(4, n, |i| die(addr, i));
    let took = started.elapsed();
    settle();
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "{n} abrupt disconnects in {took:?}: RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB), live uthreads back to {}",
        mib(before),
        mib(after),
        mib(grown),
        live_connections(&server)
    );
    assert!(grown < 32 << 20, "RSS grew by {:.1} MiB over {n} disconnects", mib(grown));
    // The server's own count, as a client sees it.
    let stats = String::from_utf8(roundtrip(&mut probe, b"stats\r\n", b"END\r\n")).unwrap();
    assert!(stats.contains("STAT curr_connections 1\r\n"), "{stats}");
    // No value cut by a disconnect was stored.
    let mut gets = Vec::new();
    for k in 0..100 {
        gets.extend_from_slice(format!("get cut{k}\r\n").as_bytes());
    }
    gets.extend_from_slice(b"get huge\r\nmn\r\n");
    assert_eq!(roundtrip(&mut probe, &gets, b"MN\r\n"), [&b"END\r\n".repeat(101)[..], b"MN\r\n"].concat());
    assert_serving(&server);
    assert!(server.shutdown());
}
