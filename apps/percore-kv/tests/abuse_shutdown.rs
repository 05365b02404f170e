//! Shutdown under load: [`Server::shutdown`] while 500 clients have requests
//! in flight returns within a bounded time, and every client got whole
//! replies only (each request answered, or the connection closed before its
//! reply started), never a reply cut in the middle.
//!
//! `ci/kv-abuse.sh` does the same to the binary with SIGTERM.

mod abuse_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use abuse_support::*;
use percore_kv::server::Server;

const CLIENTS: usize = 500;
const THREADS: usize = 10;
/// Requests pipelined per round on each connection.
const DEPTH: usize = 4;

fn reply() -> Vec<u8> {
    let mut r = b"VALUE k 0 100\r\n".to_vec();
    r.extend_from_slice(&[b'v'; 100]);
    r.extend_from_slice(b"\r\nEND\r\n");
    r
}

/// One client: everything it received, and whether the server closed it.
struct Client {
    s: TcpStream,
    got: Vec<u8>,
    closed: bool,
}

impl Client {
    /// Reads until `DEPTH` more replies arrived or the peer closed.
    fn read_round(&mut self, want: usize, buf: &mut [u8]) {
        while self.got.len() < want {
            match self.s.read(buf) {
                Ok(0) | Err(_) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
            }
        }
    }
}

#[test]
fn shutdown_under_load_cuts_no_reply() {
    let server = Server::start(settings()).unwrap();
    let mut c = connect(&server);
    let mut set = b"set k 0 0 100\r\n".to_vec();
    set.extend_from_slice(&[b'v'; 100]);
    set.extend_from_slice(b"\r\n");
    roundtrip(&mut c, &set, b"STORED\r\n");
    drop(c);
    let one = reply();
    let gets = b"get k\r\n".repeat(DEPTH);
    let rounds = AtomicU64::new(0);
    let addr = server.local_addr();
    let (took, clean, results) = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..THREADS {
            let (one, gets, rounds) = (&one, &gets, &rounds);
            handles.push(s.spawn(move || {
                let mut clients: Vec<Client> = (0..CLIENTS / THREADS)
                    .map(|_| Client { s: connect_to(addr), got: Vec::new(), closed: false })
                    .collect();
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = vec![0usize; clients.len()];
                while clients.iter().any(|c| !c.closed) {
                    for (c, sent) in clients.iter_mut().zip(&mut sent) {
                        if !c.closed {
                            if c.s.write_all(gets).is_err() {
                                c.closed = true;
                            } else {
                                *sent += DEPTH;
                            }
                        }
                    }
                    for (c, sent) in clients.iter_mut().zip(&sent) {
                        if !c.closed {
                            c.read_round(sent * one.len(), &mut buf);
                        }
                    }
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
                // Whatever is still in flight after a close.
                for c in &mut clients {
                    let _ = c.s.set_read_timeout(Some(Duration::from_secs(2)));
                    let (rest, _) = read_to_close(&mut c.s);
                    c.got.extend_from_slice(&rest);
                }
                clients.into_iter().map(|c| c.got).collect::<Vec<_>>()
            }));
        }
        // Let the load run, then stop the server under it.
        wait_for("load to start", 30, || rounds.load(Ordering::Relaxed) >= 20 * THREADS as u64);
        let started = Instant::now();
        let clean = server.shutdown();
        let took = started.elapsed();
        let results: Vec<Vec<u8>> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        (took, clean, results)
    });
    let answered: usize = results.iter().map(|g| g.len() / one.len()).sum();
    println!("shutdown with {CLIENTS} clients under load took {took:?}; {answered} replies received, all whole");
    assert!(clean, "connections did not finish within the server's wait");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    for (i, got) in results.iter().enumerate() {
        assert!(
            got.len() % one.len() == 0 && got.chunks(one.len()).all(|r| r == &one[..]),
            "client {i}: a cut or wrong reply ({} bytes, tail {:?})",
            got.len(),
            String::from_utf8_lossy(&got[got.len().saturating_sub(60)..])
        );
    }
}
