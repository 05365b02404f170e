//! Listeners, a uthread per connection, shutdown.
//!
//! # Shape
//!
//! The server runs on a percore [`Runtime`] with one worker per `-t`, each
//! pinned to its own CPU only with `-o pin_workers=1`. Every worker has its own
//! listening socket on the same port (`SO_REUSEPORT`): the kernel spreads
//! new connections over the listeners by a hash of the connection's
//! addresses, so accepting needs no lock shared between workers. A
//! connection's uthread, its socket registration and the store's
//! per-writer state all stay on the worker that serves it, which is the
//! accepting one unless placement (below) chose another.
//!
//! The hash does not balance small numbers of connections: 50 connections
//! opened at once landed 20/30, 21/29, 23/27, 24/26, 25/25 and 27/23 on two
//! listeners (six tries, 2026-12-03, counted in each worker's epoll
//! instance), and the worker with 30 then serves half as many again as the
//! other. memcached's single acceptor
//! deals connections round robin and never has this skew. So the acceptor
//! only decides where a connection is served (`Placement`, counted per worker and read by
//! [`Server::worker_connections`]): on its own
//! worker unless another one has fewer open connections, in which case the
//! socket is taken off this worker's epoll instance
//! ([`TcpStream::into_std`]) and the connection's uthread starts on that
//! worker, which registers it there. Only the skew costs a hand-off; a
//! connection never moves after it starts.
//!
//! A connection is one uthread running blocking-style code over a
//! percore-evq [`TcpStream`]: read what the socket has, let the protocol
//! [`Session`] answer every complete request in it, write all the replies
//! with one `write`, repeat. The uthread parks (its worker runs others) when
//! the socket has nothing to read or no room to write; it never reads more
//! while replies are unwritten, so a client that never reads stops being
//! read once the kernel's buffers are full, and the server buffers at most
//! one batch of replies for it.
//!
//! With `-U <port>` every worker also serves memcached's UDP protocol on
//! its own socket of that port (see [`crate::udp`]).
//!
//! Expired items are removed lazily when touched, and by a sweep that runs
//! once a second as a percore-pool job (never on a worker).
//!
//! # Limits
//!
//! * `-c`: past the limit a new connection gets memcached's
//!   `ERROR Too many open connections` and is closed; `rejected_connections`
//!   counts it.
//! * `-o idle_timeout=N`: a connection that completes no request for N
//!   seconds is closed (`idle_kicks` counts it). As memcached, the clock
//!   runs from the last request, not the last byte: a client that trickles a
//!   byte at a time without ever finishing a request (or a value that takes
//!   longer than N seconds to arrive) is closed too. Each read waits at most
//!   what is left of the N seconds (the socket's read timeout).
//!
//! # Shutdown
//!
//! [`Server::shutdown`] (SIGINT, SIGTERM, or the `shutdown` command with
//! `-A`) stops accepting (`shutdown(2)` on each listener wakes its blocked
//! `accept`), then shuts the read side of every open connection: each one
//! answers the requests it has already read, writes the replies, and closes.
//! The runtime is dropped once every connection uthread has finished, or
//! after a bounded wait.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use percore::evq::net::{TcpListener, TcpStream};
use percore::lwkt::{Builder, Runtime};
use percore::pool::{Job, ThreadPool, PRI_NONE};

use crate::config::Settings;
use crate::context::{ConnInfo, Context};
use crate::proto::Session;
use crate::Error;

/// Bytes read from a socket at a time (and the initial input buffer).
const READ_CHUNK: usize = 16 * 1024;

/// How long [`Server::shutdown`] waits for connections to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// A uthread's stack: generous, since only touched pages cost memory.
const STACK_SIZE: usize = 256 * 1024;

/// How often the expiry sweep runs, and how many items it looks at a run.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_BUDGET: usize = 200_000;

/// memcached's reply to a connection past `-c`.
const TOO_MANY: &[u8] = b"ERROR Too many open connections\r\n";

/// Open TCP connections per worker: where the acceptors place new ones.
///
/// Each acceptor places a connection on its own worker unless another has
/// fewer open connections (ties stay home), so with N connections no
/// worker has more than one above the others beyond what concurrent
/// accepts on several workers race for (each sees the others' counts a
/// moment late: at most one connection per acceptor in flight).
#[derive(Debug)]
struct Placement {
    open: Box<[AtomicUsize]>,
}

impl Placement {
    fn new(workers: usize) -> Placement {
        Placement { open: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect() }
    }

    /// The worker to serve a connection accepted on worker `home`; counts it
    /// there until [`leave`](Placement::leave).
    fn place(&self, home: usize) -> usize {
        // ORDERING: relaxed: a placement hint; nothing is published through
        // the counts, and a stale one costs at most one connection of skew.
        let count = |w: usize| self.open[w].load(Ordering::Relaxed);
        let home = home.min(self.open.len() - 1);
        let mut best = home;
        for w in 0..self.open.len() {
            if count(w) < count(best) {
                best = w;
            }
        }
        self.open[best].fetch_add(1, Ordering::Relaxed);
        best
    }

    fn leave(&self, worker: usize) {
        self.open[worker].fetch_sub(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<usize> {
        self.open.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Counts live connection uthreads so shutdown can wait for them.
#[derive(Debug, Default)]
struct Live {
    n: Mutex<usize>,
    zero: Condvar,
}

impl Live {
    fn enter(&self) {
        *self.n.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn leave(&self) {
        let mut n = self.n.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            self.zero.notify_all();
        }
    }

    /// Waits until no uthread is live; `false` on timeout.
    fn wait_zero(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = self.n.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self.zero.wait_timeout(n, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

/// A running server (see the module docs).
///
/// ```no_run
/// use percore_kv::{config::Settings, server::Server};
///
/// let server = Server::start(Settings { port: 0, ..Settings::default() }).unwrap();
/// println!("listening on {}", server.local_addr());
/// server.wait(); // until `shutdown` or a signal asks
/// server.shutdown();
/// ```
pub struct Server {
    ctx: Arc<Context>,
    rt: Option<Runtime>,
    addr: SocketAddr,
    /// The listeners' descriptors, for `shutdown(2)`.
    listen_fds: Vec<i32>,
    live: Arc<Live>,
    placement: Arc<Placement>,
    /// The expiry sweep: a percore-pool job that re-arms itself.
    sweep: Option<(ThreadPool, Job)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    // NOTE: memcached's default backlog (-b) is 1024.
    s.listen(1024)?;
    Ok(s.into())
}

fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Raises the soft descriptor limit towards the hard one so `-c`
/// connections (plus listeners and slack) fit; returns the soft limit now.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < want {
        let new = libc::rlimit { rlim_cur: want.min(lim.rlim_max), rlim_max: lim.rlim_max };
        // SAFETY: `new` is a valid rlimit no higher than the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            lim.rlim_cur = new.rlim_cur;
        }
    }
    lim.rlim_cur
}

impl Server {
    /// Binds, starts the workers and their acceptors, and returns at once.
    /// Port 0 picks a free port ([`Server::local_addr`] says which).
    pub fn start(settings: Settings) -> Result<Server, Error> {
        raise_fd_limit(settings.conn_limit as u64 + 64);
        let threads = settings.threads;
        let pin = settings.pin_workers;
        let want = SocketAddr::new(settings.listen, settings.port);
        let failed = |e| Error::io(format!("failed to listen on TCP port {}", want.port()), e);
        // NOTE: SO_REUSEPORT would let a second server share a port that is
        // in use; a probe bound without it fails as memcached's bind does
        // (and picks the port when 0 was asked for).
        let addr = std::net::TcpListener::bind(want).and_then(|p| p.local_addr()).map_err(failed)?;
        let mut listeners = Vec::with_capacity(threads);
        for _ in 0..threads {
            listeners.push(listener(addr).map_err(failed)?);
        }
        let mut udp = Vec::new();
        if settings.udp_port != 0 {
            let ua = SocketAddr::new(settings.listen, settings.udp_port);
            let failed = |e| Error::io(format!("failed to listen on UDP port {}", ua.port()), e);
            let ua = std::net::UdpSocket::bind(ua).and_then(|p| p.local_addr()).map_err(failed)?;
            for _ in 0..threads {
                udp.push(udp_socket(ua).map_err(failed)?);
            }
        }
        let mut listen_fds: Vec<i32> = listeners.iter().map(|l| l.as_raw_fd()).collect();
        listen_fds.extend(udp.iter().map(|u| u.as_raw_fd()));
        let ctx = Context::new(settings)?;
        let rt = Runtime::builder()
            .name("kv")
            .workers(threads)
            .pin(pin)
            .stack_size(STACK_SIZE)
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let live = Arc::new(Live::default());
        let placement = Arc::new(Placement::new(threads));
        for (i, l) in listeners.into_iter().enumerate() {
            let ctx = ctx.clone();
            let live = live.clone();
            let placement = placement.clone();
            live.enter();
            Builder::new()
                .name(format!("accept{i}"))
                .worker(i)
                .spawn_on(rt.handle(), move || {
                    accept_loop(&ctx, &live, &placement, i, l);
                    live.leave();
                })
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        for (i, u) in udp.into_iter().enumerate() {
            let ctx = ctx.clone();
            let live = live.clone();
            live.enter();
            Builder::new()
                .name(format!("udp{i}"))
                .worker(i)
                .spawn_on(rt.handle(), move || {
                    crate::udp::serve(&ctx, u);
                    live.leave();
                })
                .map_err(|e| Error::Runtime(e.to_string()))?;
        }
        let sweep = start_sweep(&ctx)?;
        Ok(Server { ctx, rt: Some(rt), addr, listen_fds, live, placement, sweep: Some(sweep) })
    }

    /// Open TCP connections per worker (index: worker), as the acceptors
    /// count them to place new ones.
    ///
    /// ```no_run
    /// # use percore_kv::{config::Settings, server::Server};
    /// let server = Server::start(Settings { port: 0, threads: 2, ..Settings::default() }).unwrap();
    /// assert_eq!(server.worker_connections(), vec![0, 0]);
    /// # server.shutdown();
    /// ```
    pub fn worker_connections(&self) -> Vec<usize> {
        self.placement.snapshot()
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (settings, store, counters).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Blocks until a stop is asked for ([`Context::request_shutdown`]: the
    /// `shutdown` command, a signal handler, another thread).
    pub fn wait(&self) {
        self.ctx.wait_for_shutdown();
    }

    /// Stops accepting, lets every connection answer what it has read,
    /// closes them, and stops the workers. Returns whether every connection
    /// finished within the bounded wait.
    pub fn shutdown(mut self) -> bool {
        self.ctx.request_shutdown();
        for &fd in &self.listen_fds {
            // SAFETY: the listeners are open until their acceptor uthreads
            // end, and those wait for this wake-up; shutdown(2) on a
            // descriptor has no memory effects.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        // NOTE: connections register before they start reading and
        // unregister before their socket closes, under the registry's lock,
        // so every fd seen here is still the connection's.
        self.ctx.for_each_conn(|info| {
            // SAFETY: see the note above; SHUT_RD only ends further reads.
            unsafe { libc::shutdown(info.fd, libc::SHUT_RD) };
        });
        let clean = self.live.wait_zero(SHUTDOWN_WAIT);
        self.stop_sweep();
        drop(self.rt.take());
        clean
    }

    fn stop_sweep(&mut self) {
        if let Some((_pool, job)) = self.sweep.take() {
            // NOTE: waits for a run in progress; the job does not re-arm
            // once the server is stopping.
            let _ = job.cancel_timeout(SHUTDOWN_WAIT);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.rt.is_some() {
            self.ctx.request_shutdown();
            for &fd in &self.listen_fds {
                // SAFETY: as in `shutdown`.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
            self.ctx.for_each_conn(|info| {
                // SAFETY: as in `shutdown`.
                unsafe { libc::shutdown(info.fd, libc::SHUT_RD) };
            });
            self.live.wait_zero(SHUTDOWN_WAIT);
        }
        self.stop_sweep();
    }
}

/// Schedules the expiry sweep ([`Store::sweep`](crate::store::Store::sweep))
/// on the shared percore-pool pool: it frees expired items without blocking
/// the workers, a budget of items per run, once a second.
fn start_sweep(ctx: &Arc<Context>) -> Result<(ThreadPool, Job), Error> {
    let pool = ThreadPool::get(PRI_NONE).map_err(|e| Error::Runtime(e.to_string()))?;
    let weak = Arc::downgrade(ctx);
    let job = Job::new("kv-sweep", (), move |run| {
        let g = run.lock();
        match weak.upgrade() {
            Some(ctx) if !ctx.shutting_down() => {
                ctx.store.sweep(SWEEP_BUDGET);
                g.rearm_after(SWEEP_EVERY)
            }
            _ => g.done(),
        }
    });
    pool.schedule_after(&job, SWEEP_EVERY);
    Ok((pool, job))
}

fn accept_loop(
    ctx: &Arc<Context>,
    live: &Arc<Live>,
    placement: &Arc<Placement>,
    home: usize,
    l: std::net::TcpListener,
) {
    let Some(handle) = percore::lwkt::Handle::current() else { return };
    let listen_addr = l.local_addr().map(|a| format!("tcp:{a}")).unwrap_or_default();
    let l = match TcpListener::from_std_in(&handle, l) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("percore-kv: cannot register a listener: {e}");
            return;
        }
    };
    let conns_in_use = &ctx.stats.curr_connections;
    while !ctx.shutting_down() {
        let (stream, peer) = match l.accept() {
            Ok(c) => c,
            Err(e) if ctx.shutting_down() => {
                let _ = e;
                break;
            }
            Err(e) => {
                // NOTE: EMFILE and friends: memcached stops accepting for a
                // while; here the uthread backs off briefly.
                if ctx.verbosity.load(Ordering::Relaxed) > 0 {
                    eprintln!("percore-kv: accept: {e}");
                }
                let _ = percore::lwkt::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // ORDERING: a gauge; the limit is approximate by nature (memcached's
        // is too), and nothing else is published through it.
        if conns_in_use.load(Ordering::Relaxed) as usize >= ctx.settings.conn_limit {
            ctx.stats.rejected_connections.inc();
            let _ = (&stream).write_all(TOO_MANY);
            continue;
        }
        conns_in_use.fetch_add(1, Ordering::Relaxed);
        ctx.stats.total_connections.inc();
        let info = Arc::new(ConnInfo::new(stream.as_raw_fd(), format!("tcp:{peer}"), listen_addr.clone()));
        let ctx2 = ctx.clone();
        let live2 = live.clone();
        let placement2 = placement.clone();
        let at = placement.place(home);
        live.enter();
        let done = move |ctx: &Context| {
            ctx.stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
            placement2.leave(at);
            live2.leave();
        };
        let spawned = if at == home {
            Builder::new().spawn(move || {
                serve(&ctx2, stream, info);
                done(&ctx2);
            })
        } else {
            // NOTE: off this worker's epoll instance before it starts on
            // `at`, which registers it on its own (see the module docs).
            let moved = stream.into_std();
            let h = handle.clone();
            Builder::new().worker(at).spawn_on(&handle, move || {
                match TcpStream::from_std_in(&h, moved) {
                    Ok(stream) => serve(&ctx2, stream, info),
                    Err(e) => {
                        if ctx2.verbosity.load(Ordering::Relaxed) > 0 {
                            eprintln!("percore-kv: cannot register a connection: {e}");
                        }
                    }
                }
                done(&ctx2);
            })
        };
        if spawned.is_err() {
            // NOTE: the closure (and the stream) was dropped unrun.
            conns_in_use.fetch_sub(1, Ordering::Relaxed);
            placement.leave(at);
            live.leave();
        }
    }
}

/// Serves one connection until it closes, errs, idles out or the server
/// stops.
fn serve(ctx: &Context, stream: TcpStream, info: Arc<ConnInfo>) {
    let verbose = ctx.verbosity.load(Ordering::Relaxed);
    if verbose > 1 {
        eprintln!("<{} new client connection from {}", info.fd, info.addr);
    }
    let _ = stream.set_nodelay(true);
    ctx.register_conn(info.clone());
    if !ctx.shutting_down() {
        conn_loop(ctx, &stream, &info);
    }
    // NOTE: unregister before the socket closes (see `Server::shutdown`).
    ctx.unregister_conn(info.fd);
    if ctx.shutting_down() {
        drain_before_close(&stream);
    }
    if verbose > 1 {
        eprintln!("<{} connection closed.", info.fd);
    }
    drop(stream);
}

/// How long a stopping server waits for a connection's last replies to be
/// acknowledged before closing it.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Closing a socket whose input was not all read sends a reset, and a reset
/// throws away replies still in the send queue (a client that pipelined
/// more requests than the server answered before stopping would see its
/// last reply cut). So, when stopping, wait (bounded, parking only this
/// uthread) until the peer has acknowledged every byte before the
/// descriptor is closed: what it acknowledged is in its receive queue, which
/// a reset does not discard.
///
/// NOTE: no `shutdown(SHUT_WR)` first: with the read side already shut (the
/// stop's wake-up), Linux answers data arriving after our FIN with a reset
/// at once (`TCPAbortOnData`), cutting the replies it meant to protect.
fn drain_before_close(stream: &TcpStream) {
    let deadline = Instant::now() + DRAIN_WAIT;
    while Instant::now() < deadline {
        let mut unacked: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int (bytes not yet acknowledged) to a
        // valid pointer; the descriptor is the stream's, open until drop.
        let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unacked) };
        if rc != 0 || unacked == 0 {
            return;
        }
        let _ = percore::lwkt::sleep(Duration::from_millis(5));
    }
}

fn conn_loop(ctx: &Context, stream: &TcpStream, info: &ConnInfo) {
    let mut session = Session::new();
    let mut buf: Vec<u8> = vec![0; READ_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut want = 0usize;
    let idle_timeout = ctx.settings.idle_timeout;
    // When the last request was completed (for `idle_timeout`).
    let mut last_request = Instant::now();
    loop {
        // Make room: drop what was consumed, then grow to what the next
        // request needs (once, not step by step) or by a chunk.
        if start == end {
            (start, end) = (0, 0);
        } else if start > 0 && (buf.len() - end < READ_CHUNK / 4 || want > buf.len() - start) {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        let need = (start + want).max(end + READ_CHUNK / 4);
        if need > buf.len() {
            buf.resize(need.max(end + READ_CHUNK), 0);
        } else if buf.len() > 4 * READ_CHUNK && end - start < READ_CHUNK && want == 0 {
            // NOTE: a large value came and went: give its buffer back.
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
            buf.truncate(READ_CHUNK);
            buf.shrink_to_fit();
        }
        if let Some(t) = idle_timeout {
            // NOTE: the read waits only for what is left of the timeout, so
            // bytes that complete no request do not keep the connection.
            let left = t.saturating_sub(last_request.elapsed());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                ctx.stats.idle_kicks.inc();
                return;
            }
        }
        let n = match (&*stream).read(&mut buf[end..]) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                ctx.stats.idle_kicks.inc();
                return;
            }
            Err(_) => return,
        };
        end += n;
        info.counts.bytes_read.add(n as u64);
        // NOTE: `Session::process` records the time in `info.last_cmd`.
        // Answer every complete request, one batch of replies per write (a
        // session stops early once its replies pass a high-water mark, so a
        // client that pipelines without reading is not buffered for).
        loop {
            let p = session.process(ctx, info, &buf[start..end], &mut out);
            start += p.consumed;
            want = p.want;
            if p.consumed > 0 && idle_timeout.is_some() {
                last_request = Instant::now();
            }
            if !out.is_empty() {
                if (&*stream).write_all(&out).is_err() {
                    return;
                }
                info.counts.bytes_written.add(out.len() as u64);
                out.clear();
                if out.capacity() > 4 * READ_CHUNK {
                    out.shrink_to(READ_CHUNK);
                }
            }
            if p.close || ctx.shutting_down() {
                return;
            }
            if p.consumed == 0 || start == end {
                break;
            }
        }
    }
}

/// How many connections [`Server::shutdown`] has left to wait for (tests).
pub fn live_connections(server: &Server) -> usize {
    *server.live.n.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a server from `settings`, prints where it listens, waits for
/// SIGINT, SIGTERM or `shutdown`, then stops it. The binary's `main`.
pub fn run(settings: Settings) -> Result<(), Error> {
    crate::signals::block()?;
    let server = Server::start(settings)?;
    let s = &server.context().settings;
    let addr = server.local_addr();
    println!(
        "percore-kv {} listening on {addr} ({} workers, {} MB, {} connections, {} KiB max item); try: printf 'set k 0 0 2\\r\\nhi\\r\\nget k\\r\\n' | nc -q1 {} {}",
        env!("CARGO_PKG_VERSION"),
        s.threads,
        s.memory_limit >> 20,
        s.conn_limit,
        s.max_item_size >> 10,
        addr.ip(),
        addr.port(),
    );
    let ctx = server.context().clone();
    crate::signals::spawn_watcher(move |sig| {
        if ctx.verbosity.load(Ordering::Relaxed) > 0 {
            eprintln!("percore-kv: signal {sig}: shutting down");
        }
        ctx.request_shutdown();
    })?;
    server.wait();
    if !server.shutdown() {
        eprintln!("percore-kv: some connections did not finish within {}s", SHUTDOWN_WAIT.as_secs());
    }
    Ok(())
}
