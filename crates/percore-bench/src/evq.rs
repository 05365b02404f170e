//! Event queues, alarms and sockets: percore-evq against tokio, in the same
//! run (issue 6, "Measured against the peers").
//!
//! * `evq_handoff` (ns per hand-off): two uthreads ping-pong an event over
//!   two [`EventQueue`]s, each blocked in `recv(None)` until the other posts;
//!   one hand-off is one post that wakes a blocked receiver, until it runs.
//!   tokio: the same ping-pong over two bounded `mpsc` channels (capacity 1)
//!   between two tasks. `workers=1`: both on one worker (tokio
//!   current_thread, the ping side in `block_on`). `workers=2`: percore pins
//!   the two uthreads to workers 0 and 1 (every hand-off crosses workers);
//!   `tokio` runs each side in its own current_thread runtime on its own
//!   thread (the same shape), `tokio-multi_thread` runs both as tasks of a
//!   2-worker multi_thread runtime, placed as tokio likes (its scheduler may
//!   keep both on one worker, so no cross-thread wake at all).
//! * `evq_timers` (ns per set-and-cancel, or per re-arm), one worker,
//!   deadlines 1 s ahead (never reached):
//!   `mode=one`: one alarm set and cancelled in a loop. percore:
//!   `Alarm::set_after` then `cancel` on a uthread; `tokio`: a `sleep`
//!   created, polled once (that registers it in the timer wheel) and dropped
//!   (that deregisters it); `tokio-reset`: one pinned `Sleep`, `reset` to
//!   now + 1 s and polled once per operation (re-arming without a cancel:
//!   tokio only moves the deadline forward in place); `percore-rearm`, the
//!   same shape: one `Alarm`, `set_after` again and again with no cancel
//!   in between (each deadline later than the last, so `set` moves the
//!   arming in place without touching the wheel; the worker puts it back
//!   when the old deadline comes up, which here it never does).
//!   `mode=batch`: 10,000 alarms armed at once with spread deadlines, then
//!   all cancelled, repeated; percore re-arms the same 10,000 `Alarm`
//!   objects, tokio creates, polls and drops 10,000 boxed `sleep`s.
//!   1,000,000 operations per repetition in a full run.
//! * `evq_echo` (`req_per_s`, `p99_us`, and to read them by: `p50_us` and
//!   `cpu_us_per_req`, the whole process's CPU time (server, generator,
//!   idle spinning) over the window per request; fields `conns` = 50 and
//!   500, `workers` = 2, under `--scale` also powers of two up to the CPU
//!   count): 64-byte request / response over loopback. percore server: a
//!   runtime of `workers` workers; an accept loop (`evq::net::TcpListener`) on worker 0
//!   hands connection k to a new uthread on worker k mod `workers`, which
//!   registers the socket on its own worker's epoll instance
//!   (`TcpStream::into_std`, then `from_std_in` there) and
//!   loops `read_exact(64)` / `write_all(64)`. tokio server: a multi_thread
//!   runtime with the same number of workers, an accept task spawning one
//!   task per connection doing the same. Both face the *same* load
//!   generator: `workers` OS threads, each driving its share of `conns`
//!   connections closed-loop from its own epoll instance (send 64 bytes,
//!   wait for the 64 back, record the latency, send again), for a bounded
//!   time (10 s full, 1 s under `--quick`, after a warm-up of a tenth of
//!   that), then drained for at most 1 s so that closing resets nothing; a
//!   stalled run gives up after 5 s without progress. On a small
//!   machine the generator competes with the server for the CPUs; both
//!   servers get the same competition. Each server has a fresh runtime,
//!   built before and dropped after its run; percore runs first, then tokio.

use crate::report::{Better, Report, Row};
use crate::util::{ns_per_iter, process_cpu_time};
use crate::Budget;
use percore::evq::net::{TcpListener, TcpStream};
use percore::evq::{Alarm, Event, EventQueue};
use percore::lwkt::{self, Builder, Handle, JoinHandle, Runtime};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Request and response size of `evq_echo`.
const MSG: usize = 64;

pub(crate) fn run(budget: Budget, report: &mut Report) {
    handoff(budget, report);
    timers(budget, report);
    let fds = raise_fd_limit();
    for conns in [50, 500] {
        // NOTE: client end, server end and the server's duplicate per
        // connection, plus the runtimes' own: skip (and say so) rather than
        // fail half-way on a machine with a low descriptor limit.
        let need = conns as u64 * 4 + 256;
        if fds < need {
            eprintln!("  evq_echo conns={conns}: skipped, needs about {need} descriptors, the limit is {fds}");
            continue;
        }
        for w in budget.threads(&[2]) {
            echo(budget, report, conns, w);
        }
    }
}

// ---------------------------------------------------------------------------
// evq_handoff

fn handoff(budget: Budget, report: &mut Report) {
    let target = budget.millis(400);
    let reps = if budget.quick { 2 } else { 5 };
    let row = |imp, ns, w: usize| Row::new("evq_handoff", imp, "ns", ns, "ns", Better::Lower).field("workers", w);
    for workers in [1usize, 2] {
        let rt = Runtime::builder().workers(workers).name("bench-evq").build().expect("runtime");
        let peer_worker = workers - 1;
        let ns = ns_per_iter(target, reps, |iters| evq_ping_pong(rt.handle(), peer_worker, iters));
        report.push(row("percore", ns, workers));
        drop(rt);
        if workers == 1 {
            let trt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
            let ns = ns_per_iter(target, reps, |iters| trt.block_on(mpsc_ping_pong(iters)));
            report.push(row("tokio", ns, workers));
        } else {
            // The same shape as percore's: each side alone on its own
            // thread (a current_thread runtime each).
            let ns = ns_per_iter(target, reps, mpsc_ping_pong_2threads);
            report.push(row("tokio", ns, workers));
            // tokio's own placement: both sides are tasks of a 2-worker
            // multi_thread runtime (block_on's future runs outside the
            // workers), wherever its scheduler puts them.
            let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).build().expect("tokio");
            let ns = ns_per_iter(target, reps, |iters| {
                trt.block_on(async move { tokio::spawn(mpsc_ping_pong(iters)).await.expect("join") })
            });
            report.push(row("tokio-multi_thread", ns, workers));
        }
    }
}

/// `iters` hand-offs between a uthread on worker 0 and one on `peer_worker`.
fn evq_ping_pong(h: &Handle, peer_worker: usize, iters: u64) -> Duration {
    let rounds = iters / 2;
    Builder::new()
        .worker(0)
        .spawn_on(h, move || {
            let (ping, pong) = (EventQueue::new(), EventQueue::new());
            let (pi, po) = (ping.clone(), pong.clone());
            let peer = Builder::new()
                .worker(peer_worker)
                .spawn(move || {
                    for _ in 0..rounds {
                        let e = pi.recv(None).expect("recv");
                        po.post(e).expect("post");
                    }
                })
                .expect("spawn");
            let t = Instant::now();
            for i in 0..rounds {
                ping.post(Event::new(1, i)).expect("post");
                pong.recv(None).expect("recv");
            }
            let d = t.elapsed();
            peer.join().expect("join");
            d
        })
        .expect("spawn")
        .join()
        .expect("join")
}

/// `iters` hand-offs between two current_thread runtimes on two threads.
fn mpsc_ping_pong_2threads(iters: u64) -> Duration {
    let rounds = iters / 2;
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let peer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        rt.block_on(async move {
            for _ in 0..rounds {
                let v = ping_rx.recv().await.expect("recv");
                pong_tx.send(v).await.expect("send");
            }
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
    let d = rt.block_on(async move {
        let t = Instant::now();
        for i in 0..rounds {
            ping_tx.send(i).await.expect("send");
            pong_rx.recv().await.expect("recv");
        }
        t.elapsed()
    });
    peer.join().expect("peer thread");
    d
}

/// `iters` hand-offs between this task and a spawned one over two channels.
async fn mpsc_ping_pong(iters: u64) -> Duration {
    let rounds = iters / 2;
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let peer = tokio::spawn(async move {
        for _ in 0..rounds {
            let v = ping_rx.recv().await.expect("recv");
            pong_tx.send(v).await.expect("send");
        }
    });
    let t = Instant::now();
    for i in 0..rounds {
        ping_tx.send(i).await.expect("send");
        pong_rx.recv().await.expect("recv");
    }
    let d = t.elapsed();
    peer.await.expect("join");
    d
}

// ---------------------------------------------------------------------------
// evq_timers

/// Alarms armed at once in `mode=batch`.
const BATCH: usize = 10_000;

fn timers(budget: Budget, report: &mut Report) {
    let n = budget.scale(1_000_000);
    let reps = if budget.quick { 2 } else { 3 };
    let ahead = Duration::from_secs(1);
    let row = |imp, mode, ns| Row::new("evq_timers", imp, "ns_per_op", ns, "ns", Better::Lower).field("mode", mode);
    let best = |f: &mut dyn FnMut() -> Duration| (0..reps).map(|_| f()).min().expect("reps > 0");
    let per_op = |d: Duration, ops: u64| d.as_nanos() as f64 / ops as f64;

    let rt = Runtime::builder().workers(1).name("bench-alarm").build().expect("runtime");
    let d = best(&mut || {
        rt.block_on(move || {
            let mut a = Alarm::new().expect("alarm");
            let t = Instant::now();
            for _ in 0..n {
                a.set_after(ahead).expect("set");
                let stopped = a.cancel();
                debug_assert!(stopped);
            }
            t.elapsed()
        })
        .expect("block_on")
    });
    report.push(row("percore", "one", per_op(d, n)));
    let d = best(&mut || {
        rt.block_on(move || {
            let mut a = Alarm::new().expect("alarm");
            a.set_after(ahead).expect("set");
            let t = Instant::now();
            for _ in 0..n {
                // Later than the current deadline: moved in place.
                a.set_after(ahead).expect("set");
            }
            let elapsed = t.elapsed();
            let stopped = a.cancel();
            debug_assert!(stopped);
            elapsed
        })
        .expect("block_on")
    });
    report.push(row("percore-rearm", "one", per_op(d, n)));
    let rounds = (n as usize).div_ceil(BATCH);
    let d = best(&mut || {
        rt.block_on(move || {
            let mut alarms: Vec<Alarm> = (0..BATCH).map(|_| Alarm::new().expect("alarm")).collect();
            let t = Instant::now();
            for _ in 0..rounds {
                for (i, a) in alarms.iter_mut().enumerate() {
                    a.set_after(ahead + Duration::from_micros(i as u64 * 37)).expect("set");
                }
                for a in &mut alarms {
                    a.cancel();
                }
            }
            t.elapsed()
        })
        .expect("block_on")
    });
    report.push(row("percore", "batch", per_op(d, (rounds * BATCH) as u64)));
    drop(rt);

    let trt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio");
    let d = best(&mut || {
        trt.block_on(async move {
            let t = Instant::now();
            for _ in 0..n {
                let s = std::pin::pin!(tokio::time::sleep(ahead));
                poll_once(s).await; // registers it in the wheel
            } // dropped: deregistered
            t.elapsed()
        })
    });
    report.push(row("tokio", "one", per_op(d, n)));
    let d = best(&mut || {
        trt.block_on(async move {
            let mut s = std::pin::pin!(tokio::time::sleep(ahead));
            poll_once(s.as_mut()).await;
            let t = Instant::now();
            for _ in 0..n {
                s.as_mut().reset(tokio::time::Instant::now() + ahead);
                poll_once(s.as_mut()).await;
            }
            t.elapsed()
        })
    });
    report.push(row("tokio-reset", "one", per_op(d, n)));
    let d = best(&mut || {
        trt.block_on(async move {
            let mut v: Vec<Pin<Box<tokio::time::Sleep>>> = Vec::with_capacity(BATCH);
            let t = Instant::now();
            for _ in 0..rounds {
                for i in 0..BATCH {
                    let mut s = Box::pin(tokio::time::sleep(ahead + Duration::from_micros(i as u64 * 37)));
                    poll_once(s.as_mut()).await;
                    v.push(s);
                }
                v.clear();
            }
            t.elapsed()
        })
    });
    report.push(row("tokio", "batch", per_op(d, (rounds * BATCH) as u64)));
}

/// Poll `f` once, ignoring the outcome.
async fn poll_once<F: Future>(mut f: Pin<&mut F>) {
    std::future::poll_fn(|cx| {
        let _ = f.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await
}

// ---------------------------------------------------------------------------
// evq_echo

fn echo(budget: Budget, report: &mut Report, conns: usize, workers: usize) {
    let dur = budget.millis(10_000);
    let push = |report: &mut Report, imp, load: Load| {
        let req_s = load.done as f64 / load.window.as_secs_f64();
        let f = |r: Row| r.field("conns", conns).field("workers", workers);
        report.push(f(Row::new("evq_echo", imp, "req_per_s", req_s, "req/s", Better::Higher)));
        report.push(f(Row::new("evq_echo", imp, "p50_us", load.p50_us, "us", Better::Lower)));
        report.push(f(Row::new("evq_echo", imp, "p99_us", load.p99_us, "us", Better::Lower)));
        let cpu_us = load.cpu.as_secs_f64() * 1e6 / load.done.max(1) as f64;
        report.push(f(Row::new("evq_echo", imp, "cpu_us_per_req", cpu_us, "us", Better::Lower)));
        if load.errors > 0 {
            eprintln!("  evq_echo / {imp}: {} connection errors", load.errors);
        }
    };

    // percore
    let rt = Runtime::builder().workers(workers).name("bench-echo").build().expect("runtime");
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let acceptor =
        Builder::new().worker(0).spawn_on(rt.handle(), move || percore_accept(l, workers, &st)).expect("spawn");
    let load = generate(addr, conns, workers, dur);
    stop.store(true, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !acceptor.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if acceptor.is_finished() {
        let failed = acceptor.join().expect("acceptor");
        if failed > 0 {
            eprintln!("  evq_echo / percore: {failed} server connections ended with an error");
        }
    } else {
        eprintln!("  evq_echo / percore: server did not finish in 10 s");
    }
    drop(rt);
    push(report, "percore", load);

    // tokio
    let trt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("tokio");
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    let addr = l.local_addr().expect("addr");
    trt.spawn(tokio_accept(l));
    let load = generate(addr, conns, workers, dur);
    trt.shutdown_timeout(Duration::from_secs(5));
    push(report, "tokio", load);
}

/// 500 connections need about 1,000 descriptors (both ends) at once; a
/// soft limit of 1024 is common: raise it to the hard limit.
/// Returns the soft limit in force afterwards.
pub(crate) fn raise_fd_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `r` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    r.rlim_cur
}

/// percore's accept loop (worker 0): connection k goes to a new uthread on
/// worker k mod `workers`. Returns how many connections ended in an error.
fn percore_accept(l: std::net::TcpListener, workers: usize, stop: &AtomicBool) -> usize {
    let h = Handle::current().expect("on a uthread");
    let l = TcpListener::from_std_in(&h, l).expect("listener");
    l.set_accept_timeout(Some(Duration::from_millis(20))).expect("timeout");
    let mut served: Vec<JoinHandle<bool>> = Vec::new();
    let mut k = 0;
    while !stop.load(SeqCst) {
        let s = match l.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
            Err(e) => panic!("accept: {e}"),
        };
        let target = k % workers;
        k += 1;
        let h = if target == 0 {
            lwkt::spawn(move || serve(s))
        } else {
            // NOTE: an accepted stream is registered on the accepting
            // worker's epoll instance; taken off it and adopted on the
            // target worker, it gets its readiness there instead.
            let s = s.into_std();
            Builder::new().worker(target).spawn(move || {
                let h = Handle::current().expect("on a uthread");
                TcpStream::from_std_in(&h, s).is_ok_and(serve)
            })
        };
        served.push(h.expect("spawn"));
    }
    served.into_iter().map(|h| h.join().unwrap_or(false)).filter(|ok| !ok).count()
}

/// Echo 64-byte messages until the peer closes; `true` on a clean close.
fn serve(mut s: TcpStream) -> bool {
    let _ = s.set_nodelay(true);
    let mut buf = [0u8; MSG];
    loop {
        match s.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) => return e.kind() == io::ErrorKind::UnexpectedEof,
        }
        if s.write_all(&buf).is_err() {
            return false;
        }
    }
}

async fn tokio_accept(l: std::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::from_std(l).expect("listener");
    loop {
        let Ok((mut s, _)) = l.accept().await else { continue };
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; MSG];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// What the load generator saw.
struct Load {
    /// Requests completed inside the measuring window.
    done: u64,
    window: Duration,
    p50_us: f64,
    p99_us: f64,
    /// CPU time of the whole process during the window.
    cpu: Duration,
    /// Connections that failed (reset, closed, or a short write).
    errors: u64,
}

/// The load generator: `conns` connections to `addr` split over `threads`
/// OS threads, closed loop, for a warm-up of `dur / 10` and then `dur`.
fn generate(addr: SocketAddr, conns: usize, threads: usize, dur: Duration) -> Load {
    let mut socks: Vec<std::net::TcpStream> = (0..conns)
        .map(|_| {
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let warm = dur / 10;
    let t0 = Instant::now();
    let (from, to) = (t0 + warm, t0 + warm + dur);
    let per = conns.div_ceil(threads);
    let mut done = 0;
    let mut errors = 0;
    let mut lat: Vec<u32> = Vec::new();
    let mut cpu = Duration::ZERO;
    std::thread::scope(|sc| {
        let mut hs = Vec::new();
        while !socks.is_empty() {
            let chunk: Vec<_> = socks.drain(..per.min(socks.len())).collect();
            hs.push(sc.spawn(move || drive(chunk, from, to)));
        }
        // The process's CPU time over the window (generator and server
        // alike: the generator's share is the same work for both servers).
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let c0 = process_cpu_time();
        std::thread::sleep(to.saturating_duration_since(Instant::now()));
        cpu = process_cpu_time().saturating_sub(c0);
        for h in hs {
            let (d, e, l) = h.join().expect("generator thread");
            done += d;
            errors += e;
            lat.extend(l);
        }
    });
    lat.sort_unstable();
    let at = |q: usize| if lat.is_empty() { f64::NAN } else { lat[(lat.len() - 1) * q / 100] as f64 / 1000.0 };
    Load { done, window: dur, p50_us: at(50), p99_us: at(99), cpu, errors }
}

/// One generator thread: drive `socks` closed loop until `to`; count and
/// time the requests that complete in `[from, to)`. Returns (requests,
/// errors, latencies in ns).
fn drive(socks: Vec<std::net::TcpStream>, from: Instant, to: Instant) -> (u64, u64, Vec<u32>) {
    // SAFETY: plain system call; the result is checked below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1: {}", io::Error::last_os_error());
    // SAFETY: `ep` is a fresh descriptor that nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let msg = [7u8; MSG];
    let mut conns: Vec<Option<(std::net::TcpStream, Instant, usize)>> = Vec::with_capacity(socks.len());
    let mut errors = 0;
    for (i, mut s) in socks.into_iter().enumerate() {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
        // SAFETY: valid descriptors and a valid event for the call.
        let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        assert_eq!(rc, 0, "epoll_ctl: {}", io::Error::last_os_error());
        if s.write(&msg).ok() == Some(MSG) {
            conns.push(Some((s, Instant::now(), 0)));
        } else {
            errors += 1;
            conns.push(None);
        }
    }
    let mut done = 0;
    let mut lat = Vec::with_capacity(1 << 20);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; MSG];
    let mut progress = Instant::now();
    // Requests in flight; after `to` no new ones go out, and the loop drains
    // these (for up to a second) so that closing never discards a response
    // (which would reset the connection under the server).
    let mut in_flight = conns.iter().flatten().count();
    loop {
        let now = Instant::now();
        let drained = now >= to && (in_flight == 0 || now >= to + Duration::from_secs(1));
        if drained || now.duration_since(progress) > Duration::from_secs(5) {
            break;
        }
        // SAFETY: `events` is valid for `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 100) };
        if n < 0 {
            assert_eq!(io::Error::last_os_error().kind(), io::ErrorKind::Interrupted, "epoll_wait");
            continue;
        }
        for ev in &events[..n as usize] {
            let i = ev.u64 as usize;
            let Some((s, sent, got)) = &mut conns[i] else { continue };
            match s.read(&mut buf[..MSG - *got]) {
                Ok(0) => {
                    errors += 1;
                    in_flight -= 1;
                    conns[i] = None;
                    continue;
                }
                Ok(k) => *got += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => {
                    errors += 1;
                    in_flight -= 1;
                    conns[i] = None;
                    continue;
                }
            }
            if *got < MSG {
                continue;
            }
            let now = Instant::now();
            progress = now;
            if now >= from && now < to {
                done += 1;
                lat.push(now.duration_since(*sent).as_nanos().min(u32::MAX as u128) as u32);
            }
            *got = 0;
            *sent = now;
            if now >= to {
                in_flight -= 1;
            } else if s.write(&msg).ok() != Some(MSG) {
                in_flight -= 1;
                errors += 1;
                conns[i] = None;
            }
        }
    }
    // Dropping the sockets closes them: the server sees end of file.
    (done, errors, lat)
}
