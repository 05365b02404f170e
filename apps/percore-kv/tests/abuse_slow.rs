//! Slow and idle clients.
//!
//! * 1,000 connections trickling a byte per second do not hold up a normal
//!   client: every one of its requests is answered, correctly, within 1 s.
//!   The strict criterion (its p99 with the crowd within 2x its p99 alone)
//!   is a timing threshold, so it is measured and printed here, not asserted
//!   (`percore-bench` is where timing goals are judged).
//! * `-o idle_timeout` closes connections that complete no request within
//!   the timeout: idle ones, and ones that trickle bytes without ever
//!   finishing a request (as memcached, which measures from the last command,
//!   not the last byte), while a client with requests is left alone.

mod abuse_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use abuse_support::*;
use percore_kv::config::Settings;
use percore_kv::server::Server;

/// Timing is per process: the tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs set/get round trips for `dur`, checking every reply; the latencies.
fn normal_client(c: &mut TcpStream, dur: Duration) -> Vec<Duration> {
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < dur {
        let v = format!("{i:08}");
        let t = Instant::now();
        let set = roundtrip(c, format!("set normal 0 0 8\r\n{v}\r\n").as_bytes(), b"\r\n");
        let get = roundtrip(c, b"get normal\r\n", b"END\r\n");
        lat.push(t.elapsed());
        assert_eq!(set, b"STORED\r\n");
        assert_eq!(get, format!("VALUE normal 0 8\r\n{v}\r\nEND\r\n").as_bytes());
        i += 1;
    }
    lat
}

fn p99(lat: &mut [Duration]) -> Duration {
    lat.sort();
    lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
}

#[test]
fn a_trickling_crowd_does_not_hold_up_a_normal_client() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let crowd = env_or("PERCORE_KV_TRICKLE_CONNS", 1000) as usize;
    let secs = env_or("PERCORE_KV_TRICKLE_SECS", 6);
    let server = Server::start(settings()).unwrap();
    let mut normal = connect(&server);
    let mut alone = normal_client(&mut normal, Duration::from_secs(2));
    let p99_alone = p99(&mut alone);

    let stop = AtomicBool::new(false);
    let addr = server.local_addr();
    let threads = 4;
    let (mut crowded, replies) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let stop = &stop;
                s.spawn(move || {
                    let mut socks: Vec<TcpStream> = (0..crowd / threads).map(|_| connect_to(addr)).collect();
                    // One byte per connection per second, spread evenly.
                    let gap = Duration::from_secs(1) / socks.len().max(1) as u32;
                    let mut sent = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        for s in &mut socks {
                            s.write_all(&[b"mn\r\n"[sent % 4]]).unwrap();
                            std::thread::sleep(gap);
                        }
                        sent += 1;
                    }
                    // Every request a trickler finished was answered.
                    let whole = sent / 4;
                    for s in &mut socks {
                        assert_eq!(read_exact(s, whole * 4), b"MN\r\n".repeat(whole));
                    }
                    whole * socks.len()
                })
            })
            .collect();
        // Let every trickler connect and start.
        std::thread::sleep(Duration::from_secs(2));
        let lat = normal_client(&mut normal, Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        let replies: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (lat, replies)
    });
    let worst = *crowded.iter().max().unwrap();
    let p99_crowd = p99(&mut crowded);
    println!(
        "normal client p99: alone {p99_alone:?} ({} requests), with {crowd} tricklers {p99_crowd:?} ({} requests, \
         worst {worst:?}); ratio {:.2} (goal <= 2); tricklers got {replies} whole replies",
        alone.len(),
        crowded.len(),
        p99_crowd.as_secs_f64() / p99_alone.as_secs_f64()
    );
    assert!(worst < Duration::from_secs(1), "a normal request took {worst:?} with {crowd} tricklers");
    assert!(server.shutdown());
}

#[test]
fn idle_timeout_closes_idle_and_trickling_connections() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let timeout = Duration::from_secs(2);
    let server = Server::start(Settings { idle_timeout: Some(timeout), ..settings() }).unwrap();
    let idle: Vec<TcpStream> = (0..200).map(|_| connect(&server)).collect();
    // Tricklers that never finish a request: an endless line, a value that
    // never completes.
    let mut trick: Vec<TcpStream> = (0..100).map(|_| connect(&server)).collect();
    for (i, t) in trick.iter_mut().enumerate() {
        let start: &[u8] = if i % 2 == 0 { b"get k" } else { b"set k 0 0 100\r\nab" };
        t.write_all(start).unwrap();
    }
    for t in &trick {
        t.set_nonblocking(true).unwrap();
    }
    let mut normal = connect(&server);
    let started = Instant::now();
    // Three timeouts long: the normal client asks every 250 ms, the
    // tricklers send a byte every 250 ms; each trickler must be closed while
    // it trickles.
    let mut closed_at: Vec<Option<Duration>> = vec![None; trick.len()];
    while started.elapsed() < 3 * timeout {
        assert_eq!(roundtrip(&mut normal, b"mn\r\n", b"\r\n"), b"MN\r\n");
        for (t, at) in trick.iter_mut().zip(&mut closed_at) {
            if at.is_some() {
                continue;
            }
            let mut buf = [0u8; 64];
            match t.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = t.write_all(b"k");
                }
                Ok(0) | Err(_) => *at = Some(started.elapsed()),
                Ok(n) => panic!("a trickler got a reply: {:?}", &buf[..n]),
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let still_open = closed_at.iter().filter(|a| a.is_none()).count();
    assert_eq!(still_open, 0, "{still_open} trickling connections outlived idle_timeout {timeout:?} threefold");
    let last = closed_at.iter().flatten().max().unwrap();
    let mut closed = trick.len();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (got, was_closed) = read_to_close(&mut s);
        assert!(was_closed && got.is_empty(), "still open after {:?}: {got:?}", started.elapsed());
        closed += 1;
    }
    let kicks = server.context().stats.idle_kicks.sum();
    println!(
        "idle_timeout {timeout:?}: {closed} idle or trickling connections closed (the last trickler after {last:?}), \
         idle_kicks {kicks}"
    );
    // NOTE: the normal client goes idle once the loop ends and may be
    // kicked too by now.
    assert!(kicks >= 300, "idle_kicks {kicks}");
    assert!(server.shutdown());
}
