//! What the abuse_* tests share: a std client over loopback, bounded reads,
//! the process's resident set, and bounded waits. Every wait here ends.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use percore_kv::config::Settings;
use percore_kv::server::Server;

/// A server on a free loopback port with two workers (the CI machines have
/// two CPUs).
pub(crate) fn settings() -> Settings {
    Settings { port: 0, threads: 2, ..Settings::default() }
}

/// A client connection with a 10 s read timeout and `TCP_NODELAY`.
pub(crate) fn connect(server: &Server) -> TcpStream {
    connect_to(server.local_addr())
}

/// [`connect`] by address.
pub(crate) fn connect_to(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until what was read ends with `end`; panics on a close or after the
/// read timeout.
pub(crate) fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(end) {
        let n = s.read(&mut buf).unwrap_or_else(|e| panic!("{e}; got {:?}", String::from_utf8_lossy(&out)));
        assert!(n > 0, "closed early; got {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Reads exactly `n` bytes.
pub(crate) fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    s.read_exact(&mut out).unwrap();
    out
}

/// Writes `req` and reads until the reply ends with `end`.
pub(crate) fn roundtrip(s: &mut TcpStream, req: &[u8], end: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    read_until(s, end)
}

/// What the peer sent until it closed (a reset counts as a close), and
/// whether it closed before the read timeout.
pub(crate) fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// The process's resident set in bytes (`VmRSS`).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Waits up to `secs` for `cond`, panicking with `what` after that.
pub(crate) fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `curr_connections` as the server counts it.
pub(crate) fn curr_connections(server: &Server) -> u64 {
    server.context().stats.curr_connections.load(std::sync::atomic::Ordering::Relaxed)
}

/// Checks the server still answers a fresh client.
pub(crate) fn assert_serving(server: &Server) {
    let mut c = connect(server);
    assert_eq!(roundtrip(&mut c, b"mn\r\n", b"\r\n"), b"MN\r\n");
}

/// An environment variable as a number, or `default`.
pub(crate) fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Mebibytes, for messages.
pub(crate) fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// A 24-byte binary request header followed by `body`.
pub(crate) fn binary(opcode: u8, keylen: u16, extlen: u8, bodylen: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, opcode];
    v.extend_from_slice(&keylen.to_be_bytes());
    v.push(extlen);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&bodylen.to_be_bytes());
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(body);
    v
}

/// Runs `f(i)` for `i in 0..n` on `threads` threads, `i` spread round-robin.
pub(crate) fn parallel(threads: usize, n: usize, f: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let f = &f;
            s.spawn(move || {
                let mut i = t;
                while i < n {
                    f(i);
                    i += threads;
                }
            });
        }
    });
}
