//! Probe for issue 11: does io_uring cut a server's CPU per request on
//! loopback? A one-thread server answers 40-byte requests with 140-byte
//! replies (a memcached get's sizes), either with epoll (one `recv` and one
//! `send` per request, as percore-kv and memcached do) or with io_uring (a
//! `Recv` kept armed per connection, a `Send` per reply, one
//! `submit_and_wait` per batch). The client keeps one request in flight per
//! connection on two threads and prints requests per second and the
//! server's user+system CPU time per request from `/proc/<pid>/stat`.
//!
//! An experiment, not part of the workspace: `run.sh MODE PORT CONNS SECS`
//! (see `docs/BENCHMARKS.md`, kv section, "io_uring probe"). The server
//! trusts the client (no error handling beyond what the probe needs).
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

const REQ: usize = 40;
const RESP: usize = 140;

fn cpu_of(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn server_epoll(l: TcpListener) {
    unsafe {
        let ep = libc::epoll_create1(0);
        let lfd = l.as_raw_fd();
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: u64::MAX };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, lfd, &mut ev);
        let mut conns: Vec<TcpStream> = Vec::new();
        let resp = [b'x'; RESP];
        let mut buf = [0u8; 4096];
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        loop {
            let n = libc::epoll_wait(ep, evs.as_mut_ptr(), 256, -1);
            for e in &evs[..n.max(0) as usize] {
                if e.u64 == u64::MAX {
                    let (s, _) = l.accept().unwrap();
                    s.set_nodelay(true).unwrap();
                    s.set_nonblocking(true).unwrap();
                    let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: conns.len() as u64 };
                    libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev);
                    conns.push(s);
                    continue;
                }
                let fd = conns[e.u64 as usize].as_raw_fd();
                let r = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                if r > 0 {
                    libc::send(fd, resp.as_ptr().cast(), RESP, 0);
                }
            }
        }
    }
}

fn server_uring(l: TcpListener, conns_expected: usize) {
    use io_uring::{opcode, types, IoUring};
    let mut conns: Vec<TcpStream> = Vec::new();
    for _ in 0..conns_expected {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        conns.push(s);
    }
    let mut ring = IoUring::new(1024).unwrap();
    let resp = vec![b'x'; RESP];
    let mut bufs = vec![[0u8; 4096]; conns.len()];
    let fds: Vec<RawFd> = conns.iter().map(|c| c.as_raw_fd()).collect();
    let push_recv = |ring: &mut IoUring, i: usize, bufs: &mut Vec<[u8; 4096]>| {
        let e = opcode::Recv::new(types::Fd(fds[i]), bufs[i].as_mut_ptr(), 4096).build().user_data(i as u64);
        unsafe { ring.submission().push(&e).unwrap() };
    };
    for i in 0..conns.len() {
        push_recv(&mut ring, i, &mut bufs);
    }
    loop {
        match ring.submit_and_wait(1) { Ok(_) => {} Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue, Err(e) => panic!("{e}") }
        let done: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (ud, res) in done {
            if ud & (1 << 63) != 0 {
                continue; // a send
            }
            let i = ud as usize;
            if res <= 0 {
                continue;
            }
            let s = opcode::Send::new(types::Fd(fds[i]), resp.as_ptr(), RESP as u32).build().user_data(1 << 63);
            unsafe { ring.submission().push(&s).unwrap() };
            push_recv(&mut ring, i, &mut bufs);
        }
    }
}

fn client(port: u16, conns: usize, secs: u64, pid: u32) {
    let mut cs: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let threads = 2;
    let per = conns / threads;
    let mut hs = Vec::new();
    let c0 = cpu_of(pid);
    let t0 = Instant::now();
    for _ in 0..threads {
        let mine: Vec<TcpStream> = cs.drain(..per.min(cs.len())).collect();
        hs.push(std::thread::spawn(move || unsafe {
            let ep = libc::epoll_create1(0);
            for (i, s) in mine.iter().enumerate() {
                s.set_nonblocking(true).unwrap();
                let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev);
            }
            let req = [b'g'; REQ];
            let mut got = vec![0usize; mine.len()];
            for s in &mine {
                libc::send(s.as_raw_fd(), req.as_ptr().cast(), REQ, 0);
            }
            let mut n = 0u64;
            let mut buf = [0u8; 4096];
            let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                let k = libc::epoll_wait(ep, evs.as_mut_ptr(), 256, 100);
                for e in &evs[..k.max(0) as usize] {
                    let i = e.u64 as usize;
                    let fd = mine[i].as_raw_fd();
                    let r = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                    if r > 0 {
                        got[i] += r as usize;
                        while got[i] >= RESP {
                            got[i] -= RESP;
                            n += 1;
                            libc::send(fd, req.as_ptr().cast(), REQ, 0);
                        }
                    }
                }
            }
            n
        }));
    }
    let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let el = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(pid) - c0;
    println!(
        "{:.0} req/s, server cpu {:.2} us/req ({:.2} s over {:.2} s)",
        total as f64 / el,
        cpu * 1e6 / total as f64,
        cpu,
        el
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a[1].as_str() {
        "server" => {
            let l = TcpListener::bind(("127.0.0.1", a[3].parse::<u16>().unwrap())).unwrap();
            match a[2].as_str() {
                "epoll" => server_epoll(l),
                _ => server_uring(l, a[4].parse().unwrap()),
            }
        }
        _ => client(a[2].parse().unwrap(), a[3].parse().unwrap(), a[4].parse().unwrap(), a[5].parse().unwrap()),
    }
}
