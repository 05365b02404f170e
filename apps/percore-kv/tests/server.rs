//! The server over loopback with a plain std client: connections, limits,
//! pipelining, large values, shutdown. Every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use percore_kv::config::Settings;
use percore_kv::server::Server;

fn settings() -> Settings {
    Settings { port: 0, threads: 2, ..Settings::default() }
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until `out` ends with `end` (or fails after the read timeout).
fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(end) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early; got {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Reads until the peer closes; what it sent.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn roundtrip(s: &mut TcpStream, req: &[u8], end: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    read_until(s, end)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn set_and_get_over_loopback() {
    let server = Server::start(settings()).unwrap();
    let mut c = connect(&server);
    assert_eq!(roundtrip(&mut c, b"set k 7 0 5\r\nhello\r\n", b"\r\n"), b"STORED\r\n");
    assert_eq!(roundtrip(&mut c, b"get k\r\n", b"END\r\n"), b"VALUE k 7 5\r\nhello\r\nEND\r\n");
    assert!(server.shutdown());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(settings()).unwrap();
    let mut c = connect(&server);
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..500 {
        req.extend_from_slice(format!("set k{i} 0 0 {}\r\n{i}\r\nget k{i}\r\n", i.to_string().len()).as_bytes());
        want.extend_from_slice(format!("STORED\r\nVALUE k{i} 0 {}\r\n{i}\r\nEND\r\n", i.to_string().len()).as_bytes());
    }
    req.extend_from_slice(b"mn\r\n");
    want.extend_from_slice(b"MN\r\n");
    assert_eq!(roundtrip(&mut c, &req, b"MN\r\n"), want);
    assert!(server.shutdown());
}

#[test]
fn large_values_round_trip() {
    let server = Server::start(settings()).unwrap();
    let mut c = connect(&server);
    let value: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    // NOTE: sent in pieces, so the server sees the value arrive over many reads.
    for part in req.chunks(7919) {
        c.write_all(part).unwrap();
    }
    assert_eq!(read_until(&mut c, b"\r\n"), b"STORED\r\n");
    let got = roundtrip(&mut c, b"get big\r\n", b"END\r\n");
    let header = format!("VALUE big 0 {}\r\n", value.len());
    assert!(got.starts_with(header.as_bytes()));
    assert_eq!(&got[header.len()..got.len() - 7], &value[..]);
    assert!(server.shutdown());
}

#[test]
fn connections_past_the_limit_get_memcached_refusal() {
    let server = Server::start(Settings { conn_limit: 2, ..settings() }).unwrap();
    let mut a = connect(&server);
    let mut b = connect(&server);
    roundtrip(&mut a, b"version\r\n", b"\r\n");
    roundtrip(&mut b, b"version\r\n", b"\r\n");
    let mut c = connect(&server);
    assert_eq!(read_to_close(&mut c), b"ERROR Too many open connections\r\n");
    assert_eq!(server.context().stats.rejected_connections.sum(), 1);
    drop(a);
    let stats = &server.context().stats;
    wait_for("a connection to close", || stats.curr_connections.load(Ordering::Relaxed) == 1);
    let mut d = connect(&server);
    assert!(roundtrip(&mut d, b"version\r\n", b"\r\n").starts_with(b"VERSION "));
    // The others are still served.
    assert!(roundtrip(&mut b, b"version\r\n", b"\r\n").starts_with(b"VERSION "));
    assert!(server.shutdown());
}

#[test]
fn idle_connections_are_closed() {
    let server = Server::start(Settings { idle_timeout: Some(Duration::from_secs(1)), ..settings() }).unwrap();
    let mut idle = connect(&server);
    roundtrip(&mut idle, b"version\r\n", b"\r\n");
    let started = Instant::now();
    assert_eq!(read_to_close(&mut idle), b"");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after {:?}", started.elapsed());
    assert_eq!(server.context().stats.idle_kicks.sum(), 1);
    let mut busy = connect(&server);
    assert!(roundtrip(&mut busy, b"version\r\n", b"\r\n").starts_with(b"VERSION "));
    assert!(server.shutdown());
}

#[test]
fn shutdown_answers_what_was_read_then_closes() {
    let server = Server::start(settings()).unwrap();
    let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(&server)).collect();
    for c in &mut clients {
        roundtrip(c, b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    }
    // Requests in flight when the stop comes: every one is answered whole or
    // its connection closes; no reply is cut.
    for c in &mut clients {
        c.write_all(b"get k\r\nget k\r\n").unwrap();
    }
    let ctx = server.context().clone();
    let stopper = std::thread::spawn(move || server.shutdown());
    for c in &mut clients {
        let got = read_to_close(c);
        let one: &[u8] = b"VALUE k 0 1\r\nx\r\nEND\r\n";
        assert!(got.len().is_multiple_of(one.len()) && got.chunks(one.len()).all(|r| r == one), "cut reply: {got:?}");
    }
    assert!(stopper.join().unwrap(), "connections did not finish");
    assert_eq!(ctx.stats.curr_connections.load(Ordering::Relaxed), 0);
}

#[test]
fn a_client_that_never_reads_is_not_buffered_without_bound() {
    let server = Server::start(settings()).unwrap();
    let mut c = connect(&server);
    let value = vec![b'v'; 100_000];
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    roundtrip(&mut c, &req, b"STORED\r\n");
    // 20,000 gets of a 100 kB value: 2 GB of replies if the server kept
    // reading. A writer thread pushes them; nobody reads for a while.
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let gets = b"get big\r\n".repeat(1000);
        for _ in 0..20 {
            if w.write_all(&gets).is_err() {
                break;
            }
        }
    });
    let before = rss_bytes();
    std::thread::sleep(Duration::from_millis(1500));
    // NOTE: one read of requests (16 kB) asks for 180 MB of replies; the
    // server must hold at most a batch of them while the client is not
    // reading (other tests in this process allocate a few MB at most).
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes while the client did not read");
    // Now drain everything and check it is all there.
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut total = 0usize;
    let one = 100_000 + "VALUE big 0 100000\r\n\r\nEND\r\n".len();
    let mut buf = vec![0u8; 1 << 20];
    while total < 20_000 * one {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        total += n;
    }
    writer.join().unwrap();
    assert_eq!(total, 20_000 * one);
    assert!(server.shutdown());
}

#[test]
fn dropping_a_server_with_open_connections_returns() {
    let server = Server::start(settings()).unwrap();
    let mut c = connect(&server);
    roundtrip(&mut c, b"version\r\n", b"\r\n");
    drop(server);
    assert_eq!(read_to_close(&mut c), b"");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let server = Server::start(settings()).unwrap();
    let port = server.local_addr().port();
    let err = Server::start(Settings { port, ..settings() }).unwrap_err();
    assert!(err.to_string().contains(&format!("failed to listen on TCP port {port}")), "{err}");
    assert!(server.shutdown());
}

#[test]
fn udp_requests_are_framed_as_memcached_frames_them() {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = Server::start(Settings { udp_port: port, ..settings() }).unwrap();
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0];
    req.extend_from_slice(b"version\r\n");
    c.send_to(&req, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 2048];
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..8], &[0x12, 0x34, 0, 0, 0, 1, 0, 0]);
    assert!(buf[8..n].starts_with(b"VERSION "), "{:?}", &buf[..n]);
    // A multi-datagram request is dropped, and the server goes on.
    let mut bad = vec![0, 1, 0, 0, 0, 2, 0, 0];
    bad.extend_from_slice(b"version\r\n");
    c.send_to(&bad, ("127.0.0.1", port)).unwrap();
    c.send_to(&req, ("127.0.0.1", port)).unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0x12, 0x34]);
    assert!(buf[8..n].starts_with(b"VERSION "));
    assert!(server.shutdown());
}

#[test]
fn shutdown_never_cuts_a_large_reply() {
    // Clients have pipelined gets of a 200 kB value and are not reading when
    // the stop comes: replies are still queued in the kernel when each
    // connection closes. Every reply that arrives must be whole.
    let server = Server::start(settings()).unwrap();
    let value = vec![b'v'; 200_000];
    let mut set = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    let mut clients: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
    roundtrip(&mut clients[0], &set, b"STORED\r\n");
    // Writers keep sending, so the server's input is never all read when
    // it closes (closing with unread input sends a reset).
    let writers: Vec<_> = clients
        .iter()
        .map(|c| {
            let mut w = c.try_clone().unwrap();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    if w.write_all(b"get big\r\n").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let stopper = std::thread::spawn(move || server.shutdown());
    let one = format!("VALUE big 0 {}\r\n", value.len()).len() + value.len() + "\r\nEND\r\n".len();
    for c in &mut clients {
        let got = read_to_close(c);
        assert!(got.len().is_multiple_of(one), "a cut reply: {} bytes, replies of {one}", got.len());
        assert!(got.len() >= one, "nothing answered");
    }
    for w in writers {
        w.join().unwrap();
    }
    assert!(stopper.join().unwrap());
}

#[test]
fn the_shutdown_command_wakes_a_waiting_server() {
    let server = Server::start(Settings { enable_shutdown: true, ..settings() }).unwrap();
    let mut c = connect(&server);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        server.wait();
        tx.send(()).unwrap();
        server.shutdown()
    });
    c.write_all(b"shutdown\r\n").unwrap();
    rx.recv_timeout(Duration::from_secs(10)).expect("wait() did not return after `shutdown`");
    assert!(waiter.join().unwrap());
}

/// The kernel's `SO_REUSEPORT` hash splits 50 connections as unevenly as
/// 20/30 over two listeners; the acceptors place each connection on the
/// worker with the fewest open ones, so opened one after another they
/// differ by at most one, and every connection (moved or not) is served.
#[test]
fn connections_are_spread_evenly_over_the_workers() {
    let server = Server::start(Settings { threads: 3, ..settings() }).unwrap();
    let mut conns = Vec::new();
    for i in 0..50 {
        let mut c = connect(&server);
        let set = format!("set k{i} 0 0 1\r\n{}\r\n", i % 10);
        assert_eq!(roundtrip(&mut c, set.as_bytes(), b"\r\n"), b"STORED\r\n");
        conns.push(c);
        let per = server.worker_connections();
        assert_eq!(per.iter().sum::<usize>(), i + 1, "{per:?}");
        assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1, "after {} connections: {per:?}", i + 1);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let get = format!("get k{i}\r\n");
        let want = format!("VALUE k{i} 0 1\r\n{}\r\nEND\r\n", i % 10);
        assert_eq!(roundtrip(c, get.as_bytes(), b"END\r\n"), want.as_bytes());
    }
    drop(conns);
    wait_for("every connection to end", || server.worker_connections().iter().sum::<usize>() == 0);
    server.shutdown();
}
