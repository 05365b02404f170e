//! An echo server on uthreads over loopback: hundreds of connections served
//! at once by a two-worker runtime, each checked byte for byte. Bounded in
//! count (connections x rounds) and in time (socket timeouts).

use percore_evq::net::{TcpListener, TcpStream};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

const CONNS: usize = 300;
const ROUNDS: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(30);

fn serve(l: TcpListener, served: Arc<AtomicUsize>) {
    for _ in 0..CONNS {
        let (s, _) = l.accept().expect("accept");
        let served = served.clone();
        percore_lwkt::spawn(move || {
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.set_write_timeout(Some(TIMEOUT)).unwrap();
            let mut buf = [0u8; 64];
            loop {
                match (&s).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => (&s).write_all(&buf[..n]).expect("echo write"),
                    Err(e) => panic!("server read: {e}"),
                }
            }
            served.fetch_add(1, SeqCst);
        })
        .expect("spawn");
    }
}

#[test]
fn echo_hundreds_of_connections() {
    let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let s2 = served.clone();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server = rt
        .spawn(move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_accept_timeout(Some(TIMEOUT)).unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            serve(l, s2);
        })
        .unwrap();
    let addr = addr_rx.recv().unwrap();
    // Clients are uthreads too: all connections open at once.
    let clients: Vec<_> = (0..CONNS)
        .map(|c| {
            rt.spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                for r in 0..ROUNDS {
                    let msg = [(c * 31 + r) as u8; 64];
                    s.write_all(&msg).expect("client write");
                    let mut back = [0u8; 64];
                    s.read_exact(&mut back).expect("client read");
                    assert_eq!(back, msg, "connection {c} round {r}");
                    if r % 4 == 0 {
                        percore_lwkt::yield_now();
                    }
                }
            })
            .unwrap()
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
    let end = std::time::Instant::now() + TIMEOUT;
    while served.load(SeqCst) < CONNS {
        assert!(std::time::Instant::now() < end, "server uthreads did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn foreign_thread_clients() {
    // Clients on plain OS threads (std sockets), the server on uthreads.
    let rt = percore_lwkt::Runtime::builder().workers(2).build().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let l = TcpListener::from_std_in(rt.handle(), l).unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let s2 = served.clone();
    let server = rt.spawn(move || serve_n(l, s2, 8)).unwrap();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                let msg = [i as u8; 64];
                for _ in 0..10 {
                    s.write_all(&msg).unwrap();
                    let mut back = [0u8; 64];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
}

fn serve_n(l: TcpListener, served: Arc<AtomicUsize>, n: usize) {
    for _ in 0..n {
        let (mut s, _) = l.accept().unwrap();
        let served = served.clone();
        percore_lwkt::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match s.read(&mut buf).unwrap() {
                    0 => break,
                    k => s.write_all(&buf[..k]).unwrap(),
                }
            }
            served.fetch_add(1, SeqCst);
        })
        .unwrap();
    }
}
