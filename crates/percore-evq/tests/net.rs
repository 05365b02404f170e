//! Sockets: timeouts, resets, partial I/O and errors surface as
//! `std::io::Error` kinds; blocking parks the uthread, not the worker.

mod common;
use percore_evq::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

fn rt(workers: usize) -> percore_lwkt::Runtime {
    percore_lwkt::Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn read_timeout_is_timed_out_and_worker_keeps_running() {
    let rt = rt(1);
    rt.block_on(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        // Another uthread on the same (only) worker runs while we wait.
        let other = percore_lwkt::spawn(|| 5).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!((&a).read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        assert_eq!(other.join().unwrap(), 5);
        assert!(a.set_read_timeout(Some(Duration::ZERO)).is_err());
        assert_eq!(a.read_timeout(), Some(Duration::from_millis(20)));
    })
    .unwrap();
}

#[test]
fn reset_by_peer() {
    let rt = rt(2);
    rt.block_on(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (s, _) = l.accept().unwrap();
        // SO_LINGER 0: close sends RST instead of FIN.
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
        let mut buf = [0u8; 8];
        let e = loop {
            match (&c).read(&mut buf) {
                Err(e) => break e,
                Ok(0) => panic!("expected a reset, got end of stream"),
                Ok(_) => {}
            }
        };
        assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    })
    .unwrap();
}

#[test]
fn partial_writes_then_timeout_when_peer_does_not_read() {
    let rt = rt(1);
    rt.block_on(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_write_timeout(Some(Duration::from_millis(20))).unwrap();
        let chunk = vec![0u8; 1 << 16];
        let mut total = 0usize;
        let e = loop {
            match (&a).write(&chunk) {
                Ok(n) => {
                    assert!(n > 0 && n <= chunk.len());
                    total += n;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(total > 0, "some bytes fit in the socket buffer first");
    })
    .unwrap();
}

#[test]
fn broken_pipe_and_eof() {
    let rt = rt(1);
    rt.block_on(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        drop(b);
        let e = loop {
            if let Err(e) = a.write(b"data") {
                break e;
            }
        };
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
        assert_eq!(a.read_exact(&mut buf).unwrap_err().kind(), ErrorKind::UnexpectedEof);
    })
    .unwrap();
}

#[test]
fn connect_refused_and_no_runtime() {
    let rt = rt(1);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = rt.block_on(move || TcpStream::connect(addr).unwrap_err()).unwrap();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    // Outside a runtime the constructors say so.
    let e = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(e.to_string().contains("not called from a uthread"), "{e}");
}

#[test]
fn udp_timeout_and_connected_send() {
    let rt = rt(2);
    rt.block_on(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(a.recv_from(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        b.connect(a.local_addr().unwrap()).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.send(b"abc").unwrap();
        assert_eq!(a.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    })
    .unwrap();
}

#[test]
fn many_readers_one_socket_each_byte_once() {
    // Two uthreads read the same stream until its end; every byte is
    // delivered to exactly one of them.
    let rt = rt(2);
    rt.block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let a = std::sync::Arc::new(a);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                percore_lwkt::Builder::new()
                    .rotate()
                    .spawn(move || {
                        let mut got = 0;
                        let mut buf = [0u8; 7];
                        loop {
                            match (&*a).read(&mut buf).unwrap() {
                                0 => return got,
                                n => got += n,
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        for _ in 0..1000 {
            (&b).write_all(b"z").unwrap();
            percore_lwkt::maybe_yield();
        }
        drop(b);
        let total: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(total, 1000);
    })
    .unwrap();
}

#[test]
fn short_read_then_end_of_stream_does_not_hang() {
    // The peer sends 10 bytes and closes: the first read is short (which
    // clears read readiness), the second must still see the end of stream.
    let rt = rt(1);
    rt.block_on(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        b.write_all(&[7u8; 10]).unwrap();
        drop(b);
        let mut buf = [0u8; 64];
        assert_eq!(a.read(&mut buf).unwrap(), 10);
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        assert_eq!(a.read(&mut buf).unwrap(), 0);
    })
    .unwrap();
}

#[test]
fn short_reads_keep_flowing() {
    // Many short reads in a row, each followed by more data later.
    let rt = rt(2);
    rt.block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let w = percore_lwkt::Builder::new()
            .worker(1)
            .spawn(move || {
                for i in 0..200u8 {
                    (&b).write_all(&[i; 3]).unwrap();
                    percore_lwkt::yield_now();
                }
            })
            .unwrap();
        let mut got = 0;
        let mut buf = [0u8; 64];
        while got < 600 {
            got += (&a).read(&mut buf).unwrap();
        }
        w.join().unwrap();
        assert_eq!(got, 600);
    })
    .unwrap();
}

/// One edge wakes every waiter of its direction, however many: twenty
/// readers (more than `on_ready` takes per lock section) block on one
/// stream, the peer shuts its writing half once, and each reads the end of
/// the stream. A reader left unwoken would block for ever (the read has no
/// timeout): the watchdog reports it.
#[test]
fn one_edge_wakes_more_waiters_than_a_batch() {
    common::watchdog(60, "one edge wakes twenty readers", String::new, || {
        let rt = rt(2);
        rt.block_on(|| {
            let (a, b) = UnixStream::pair().unwrap();
            let a = std::sync::Arc::new(a);
            let readers: Vec<_> = (0..20)
                .map(|_| {
                    let a = a.clone();
                    percore_lwkt::spawn(move || (&*a).read(&mut [0u8; 4]).unwrap()).unwrap()
                })
                .collect();
            for _ in 0..4 {
                percore_lwkt::yield_now();
            }
            b.shutdown(Shutdown::Write).unwrap();
            for r in readers {
                assert_eq!(r.join().unwrap(), 0);
            }
        })
        .unwrap();
    });
}

/// `into_std` hands a stream to another worker: once adopted there, its
/// readiness is reported by that worker's epoll instance, not the first's.
#[test]
fn into_std_moves_readiness_to_the_adopting_worker() {
    let rt = percore_lwkt::Runtime::builder().name("handover").workers(2).build().unwrap();
    let events = |w: usize| {
        let key = format!("lwkt.handover.w{w}.io_events");
        let all = percore_cpu::stats::with_prefix("lwkt.handover");
        all.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).expect("the worker's io_events stat")
    };
    let h = rt.handle().clone();
    // Worker 0 listens, says where, and accepts one connection, which it
    // takes off its epoll instance.
    let (tx, rx) = std::sync::mpsc::channel();
    let acceptor = percore_lwkt::Builder::new()
        .worker(0)
        .spawn_on(&h, move || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            l.accept().unwrap().0.into_std()
        })
        .unwrap();
    let addr = rx.recv().unwrap();
    // A plain thread as the client: no uthread's socket on either worker.
    let client = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let mut r = [0; 4];
        c.read_exact(&mut r).unwrap(); // "go": the server side moved
        c.write_all(b"ping").unwrap();
        c.read_exact(&mut r).unwrap();
        r
    });
    let moved = acceptor.join().unwrap();
    let (w0, w1) = (events(0), events(1));
    let h2 = h.clone();
    let served = percore_lwkt::Builder::new()
        .worker(1)
        .spawn_on(&h, move || {
            let mut s = TcpStream::from_std_in(&h2, moved).unwrap();
            s.write_all(b"go!!").unwrap();
            let mut b = [0; 4];
            s.read_exact(&mut b).unwrap();
            s.write_all(b"pong").unwrap();
            (b, s)
        })
        .unwrap();
    // NOTE: the stream stays registered (on worker 1) until the end. Its
    // registration alone queues a writable edge on worker 1's epoll
    // instance, so worker 1 reports at least one event, either while the
    // server waits or at its next epoll wait once idle, whichever way the
    // reads and writes above interleave with the client's.
    let (b, stream) = served.join().unwrap();
    assert_eq!(&b, b"ping");
    assert_eq!(&client.join().unwrap(), b"pong");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while events(1) == w1 {
        assert!(std::time::Instant::now() < deadline, "worker 1 never reported the stream's readiness");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(events(0), w0, "worker 0 no longer hears of the stream");
    drop(stream);
}
