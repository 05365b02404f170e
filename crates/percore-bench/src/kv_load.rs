//! The in-tree memcached text-protocol load generator of `percore-bench kv`
//! (issue 11): the key space, the value every key must hold, a Zipf
//! sampler, pipelined preloading, and the closed-loop driver that checks
//! every reply.
//!
//! # Keys and values
//!
//! Key `i` of an `n`-key space is the 32 bytes `kv-bench:` followed by `i`
//! in 23 zero-padded decimal digits. Its value at version `v` is 100 bytes:
//! `v` in 16 hex digits, then 84 characters drawn from a SplitMix64 stream
//! seeded with `(i, v)`; its flags are a hash of `i`. A reply is therefore
//! checkable without knowing which of the concurrent writers won: read the
//! version from the value's head, regenerate the value for (key, version),
//! compare all 100 bytes, and check the version is one that was ever issued
//! (preloading writes version 0; every later set takes the next number of a
//! shared counter).
//!
//! ```text
//! key   kv-bench:00000000000000000012345            (32 bytes)
//! value 000000000000002a Qx9f...84 chars of (i, v)  (100 bytes)
//! ```
//!
//! # The driver
//!
//! Each loader thread owns its share of the connections and one epoll
//! instance (level-triggered, readable only). Every connection has exactly
//! one request in flight: when its reply is complete and checked, the
//! latency is recorded if it finished inside the measuring window, and the
//! next request goes out at once (closed loop). After the window no new
//! request goes out and the thread drains the ones in flight, so a server
//! never sees a reset connection. A reply that is malformed, unexpected,
//! carries the wrong bytes, or has bytes trailing it is a protocol error
//! and ends the run with a message naming the request and the reply; so do
//! a closed connection and 5 s without any reply.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Key length in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// Value length in bytes.
pub(crate) const VALUE_LEN: usize = 100;
/// A reply that grows past this without completing is a protocol error
/// (the longest legal one, a 100-byte hit, is about 160 bytes).
const MAX_REPLY: usize = 512;
/// No reply at all for this long: the server is stalled.
const STALL: Duration = Duration::from_secs(5);

/// Which requests a row sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mix {
    /// 90% get, 10% set.
    Get90,
    /// Sets only.
    Set,
}

impl Mix {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mix::Get90 => "get90",
            Mix::Set => "set",
        }
    }
}

/// How keys are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent 0.99 (YCSB's, memaslap's hot set).
    Zipf,
}

impl Dist {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Zipf => "zipf",
        }
    }
}

/// SplitMix64: a small, fast, well-mixed generator (Steele, Lea, Flood,
/// "Fast splittable pseudorandom number generators", OOPSLA 2014).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; bias below 2^-40 for our `n`).
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf(s) over ranks `0..n` by inversion of the exact cumulative
/// distribution (a table of `n` doubles, binary-searched). No crate needed:
/// the table is a dozen lines, exact, and costs ~17 probes per draw, noise
/// next to a round trip through the kernel.
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// A rank: 0 is the most popular.
    #[inline]
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

/// Key `i`.
pub(crate) fn key(i: usize) -> [u8; KEY_LEN] {
    let mut k = *b"kv-bench:00000000000000000000000";
    let mut x = i;
    for b in k[9..].iter_mut().rev() {
        *b = b'0' + (x % 10) as u8;
        x /= 10;
    }
    k
}

/// The flags key `i` is stored with.
pub(crate) fn flags(i: usize) -> u32 {
    ((i as u32).wrapping_mul(2_654_435_761)) >> 16
}

const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// The value of key `i` at `version`.
pub(crate) fn value(i: usize, version: u64) -> [u8; VALUE_LEN] {
    let mut v = [0u8; VALUE_LEN];
    for (j, b) in v[..16].iter_mut().enumerate() {
        *b = b"0123456789abcdef"[((version >> (60 - 4 * j)) & 15) as usize];
    }
    let mut rng = Rng::new((i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ version.rotate_left(29));
    for chunk in v[16..].chunks_mut(10) {
        let x = rng.next_u64();
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = ALPHABET[((x >> (6 * j)) & 63) as usize];
        }
    }
    v
}

/// The version a value claims, if its head is 16 hex digits.
fn version_of(v: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(v.get(..16)?).ok()?, 16).ok()
}

/// The preloaded key space and the version counter its writers share.
pub(crate) struct Keyspace {
    keys: Vec<[u8; KEY_LEN]>,
    zipf: Zipf,
    /// Versions issued so far; a value's version must be below this.
    /// Written by every loader thread (one `fetch_add` per set).
    issued: AtomicU64,
}

impl Keyspace {
    pub(crate) fn new(n: usize) -> Keyspace {
        Keyspace { keys: (0..n).map(key).collect(), zipf: Zipf::new(n, 0.99), issued: AtomicU64::new(1) }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Versions issued so far (0, preloading's, included).
    #[cfg(test)]
    pub(crate) fn issued(&self) -> u64 {
        self.issued.load(Relaxed)
    }

    /// A key index drawn from `dist`. Zipf ranks are scattered over the
    /// key space by a multiplicative bijection, so hot keys are not
    /// neighbours.
    #[inline]
    fn draw(&self, dist: Dist, rng: &mut Rng) -> usize {
        let n = self.keys.len();
        match dist {
            Dist::Uniform => rng.below(n),
            // NOTE: 1_000_003 is prime and larger than any n used here, so
            // it is coprime to n and `rank * P mod n` is a permutation.
            Dist::Zipf => ((self.zipf.sample(rng) as u64 * 1_000_003) % n as u64) as usize,
        }
    }
}

/// One request: what was asked, so the reply can be checked.
#[derive(Clone, Copy, Debug)]
enum Op {
    Get(usize),
    Set(usize),
}

/// Appends the request for `op` to `out`.
fn encode(out: &mut Vec<u8>, op: Op, version: u64) {
    match op {
        Op::Get(i) => {
            out.extend_from_slice(b"get ");
            out.extend_from_slice(&key(i));
            out.extend_from_slice(b"\r\n");
        }
        Op::Set(i) => {
            out.extend_from_slice(b"set ");
            out.extend_from_slice(&key(i));
            write!(out, " {} 0 {VALUE_LEN}\r\n", flags(i)).expect("writing to a Vec cannot fail");
            out.extend_from_slice(&value(i, version));
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A complete, checked reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Hit,
    Miss,
    Stored,
}

/// Checks `buf` against the reply `op` expects. `Ok(None)`: incomplete,
/// read more. `issued`: versions below it may appear in values.
fn parse(buf: &[u8], op: Op, issued: u64) -> Result<Option<Reply>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= MAX_REPLY { Err("no end of line in 512 bytes".into()) } else { Ok(None) };
    };
    let line = &buf[..eol];
    let rest = &buf[eol + 2..];
    let exactly = |reply, rest: &[u8]| {
        if rest.is_empty() {
            Ok(Some(reply))
        } else {
            Err(format!("{} unexpected bytes after the reply", rest.len()))
        }
    };
    match op {
        Op::Set(_) if line == b"STORED" => exactly(Reply::Stored, rest),
        Op::Get(_) if line == b"END" => exactly(Reply::Miss, rest),
        Op::Get(i) if line.starts_with(b"VALUE ") => {
            let mut it = line[6..].split(|&b| b == b' ');
            let (k, f, n) = (it.next(), it.next(), it.next());
            if k != Some(&key(i)[..]) {
                return Err("VALUE for another key".into());
            }
            let num = |t: Option<&[u8]>| t.and_then(|t| std::str::from_utf8(t).ok()?.parse::<u64>().ok());
            if num(f) != Some(u64::from(flags(i))) {
                return Err(format!("flags are not {}", flags(i)));
            }
            if num(n) != Some(VALUE_LEN as u64) || it.next().is_some() {
                return Err(format!("VALUE header is not `VALUE <key> <flags> {VALUE_LEN}`"));
            }
            let need = VALUE_LEN + 2 + 5;
            if rest.len() < need {
                return Ok(None);
            }
            let data = &rest[..VALUE_LEN];
            match version_of(data) {
                Some(v) if v < issued && data == value(i, v) => {}
                Some(v) if v >= issued => return Err(format!("value claims version {v}, never written")),
                _ => return Err("value bytes are not what was stored for this key".into()),
            }
            if &rest[VALUE_LEN..need] != b"\r\nEND\r\n" {
                return Err("value not followed by \\r\\nEND\\r\\n".into());
            }
            exactly(Reply::Hit, &rest[need..])
        }
        _ => Err("unexpected reply".into()),
    }
}

/// `bytes` for an error message: printable ASCII as is, the rest escaped,
/// at most 200 bytes.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut s: String = bytes.iter().take(200).flat_map(|&b| std::ascii::escape_default(b)).map(char::from).collect();
    if bytes.len() > 200 {
        s.push_str("...");
    }
    s
}

fn describe(op: Op) -> String {
    match op {
        Op::Get(i) => format!("get {}", escape(&key(i))),
        Op::Set(i) => format!("set {} {} 0 {VALUE_LEN}", escape(&key(i)), flags(i)),
    }
}

/// Writes all of `bytes` to a non-blocking socket, waiting (up to 5 s) for
/// room when the send buffer is full.
fn send(s: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match s.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => bytes = &bytes[k..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut p = libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                // SAFETY: `p` is one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, 5000) } == 0 {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A blocking request/reply round trip on `s` (probes and spot checks).
fn round_trip(s: &mut TcpStream, ks_issued: u64, op: Op, version: u64) -> Result<Reply, String> {
    let mut req = Vec::new();
    encode(&mut req, op, version);
    s.write_all(&req).map_err(|e| format!("{}: write: {e}", describe(op)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; MAX_REPLY];
    loop {
        match parse(&buf, op, ks_issued) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => return Err(format!("reply to `{}`: {e}: `{}`", describe(op), escape(&buf))),
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("`{}`: connection closed; got `{}`", describe(op), escape(&buf))),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) => return Err(format!("`{}`: read: {e}; got `{}`", describe(op), escape(&buf))),
        }
    }
}

fn connect_blocking(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    s.set_read_timeout(Some(STALL)).map_err(|e| format!("timeout: {e}"))?;
    Ok(s)
}

/// Why a server cannot be measured.
pub(crate) enum ProbeError {
    /// It answers `ERROR` (unknown command) to set or get: it does not
    /// speak the storage commands yet. Skip it.
    Unsupported(String),
    /// Anything else: a broken server. Fail the run.
    Broken(String),
}

/// One set and one get of key 0, checked: does the server speak get/set?
pub(crate) fn probe(addr: SocketAddr) -> Result<(), ProbeError> {
    let mut s = connect_blocking(addr).map_err(ProbeError::Broken)?;
    for op in [Op::Set(0), Op::Get(0)] {
        match round_trip(&mut s, 1, op, 0) {
            Ok(Reply::Stored | Reply::Hit) => {}
            Ok(Reply::Miss) => return Err(ProbeError::Broken("a get right after a set of the same key missed".into())),
            // An unknown command: `ERROR`, and for a set a second one for
            // the data line, which the server took for another command.
            Err(e) if e.contains("unexpected reply: `ERROR\\r\\n") => return Err(ProbeError::Unsupported(e)),
            Err(e) => return Err(ProbeError::Broken(e)),
        }
    }
    Ok(())
}

/// Stores keys `range` at version 0 over `conns` connections in parallel,
/// each pipelining batches of 100 sets and checking every `STORED`.
pub(crate) fn preload(addr: SocketAddr, range: Range<usize>, conns: usize) -> Result<(), String> {
    const BATCH: usize = 100;
    let per = range.len().div_ceil(conns.max(1)).max(1);
    let parts: Vec<Range<usize>> =
        (range.start..range.end).step_by(per).map(|lo| lo..(lo + per).min(range.end)).collect();
    std::thread::scope(|sc| {
        let hs: Vec<_> = parts
            .into_iter()
            .map(|part| {
                sc.spawn(move || -> Result<(), String> {
                    let mut s = connect_blocking(addr)?;
                    let mut req = Vec::with_capacity(BATCH * 160);
                    let mut buf = Vec::with_capacity(BATCH * 8 + MAX_REPLY);
                    let mut chunk = [0u8; 4096];
                    let mut lo = part.start;
                    while lo < part.end {
                        let hi = (lo + BATCH).min(part.end);
                        req.clear();
                        (lo..hi).for_each(|i| encode(&mut req, Op::Set(i), 0));
                        s.write_all(&req).map_err(|e| format!("preload: write: {e}"))?;
                        let mut stored = 0;
                        buf.clear();
                        while stored < hi - lo {
                            while let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") {
                                if &buf[..eol] != b"STORED" {
                                    return Err(format!("preload: set {}: `{}`", lo + stored, escape(&buf)));
                                }
                                buf.drain(..eol + 2);
                                stored += 1;
                            }
                            if stored == hi - lo {
                                break;
                            }
                            match s.read(&mut chunk) {
                                Ok(0) => return Err("preload: connection closed".into()),
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                                Err(e) => return Err(format!("preload: read: {e}")),
                            }
                        }
                        if !buf.is_empty() {
                            return Err(format!("preload: unexpected bytes `{}`", escape(&buf)));
                        }
                        lo = hi;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().expect("preload thread"))
    })
}

/// Gets `count` keys spread over `0..n` one by one and checks them (values
/// of versions below `issued` pass); returns how many missed.
pub(crate) fn spot_check(addr: SocketAddr, n: usize, count: usize, issued: u64) -> Result<usize, String> {
    let mut s = connect_blocking(addr)?;
    let mut misses = 0;
    for j in 0..count {
        if round_trip(&mut s, issued, Op::Get(j * n / count), 0)? == Reply::Miss {
            misses += 1;
        }
    }
    Ok(misses)
}

/// `n` connections to `addr`, non-blocking, no Nagle.
pub(crate) fn connect(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>, String> {
    (0..n)
        .map(|_| {
            let s = connect_blocking(addr)?;
            s.set_nonblocking(true).map_err(|e| format!("nonblocking: {e}"))?;
            Ok(s)
        })
        .collect()
}

/// What one driving thread does.
pub(crate) struct Plan<'a> {
    pub(crate) ks: &'a Keyspace,
    pub(crate) mix: Mix,
    pub(crate) dist: Dist,
    /// The measuring window: replies completing in `[from, to)` count.
    pub(crate) from: Instant,
    pub(crate) to: Instant,
    /// Set by a thread that failed, so the others stop early.
    pub(crate) abort: &'a AtomicBool,
    /// Pin the thread to this CPU first.
    pub(crate) cpu: Option<usize>,
}

/// What one driving thread saw inside the window.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) ops: u64,
    pub(crate) misses: u64,
    /// Latency of every operation, ns.
    pub(crate) lat_ns: Vec<u32>,
    /// Replies inside the window, per connection of this thread.
    pub(crate) per_conn: Vec<u64>,
}

struct Conn {
    sock: TcpStream,
    op: Op,
    sent: Instant,
    buf: [u8; MAX_REPLY],
    len: usize,
    /// A request is in flight.
    busy: bool,
}

/// Drives `socks` closed loop under `plan` until the window ends and every
/// reply is in; every reply is checked.
pub(crate) fn drive(socks: Vec<TcpStream>, plan: &Plan<'_>, seed: u64) -> Result<Tally, String> {
    let r = drive_inner(socks, plan, seed);
    if r.is_err() {
        plan.abort.store(true, Relaxed);
    }
    r
}

fn drive_inner(socks: Vec<TcpStream>, plan: &Plan<'_>, seed: u64) -> Result<Tally, String> {
    if let Some(cpu) = plan.cpu {
        percore::cpu::pin_current(cpu).map_err(|e| format!("pinning the loader to CPU {cpu}: {e}"))?;
    }
    // SAFETY: plain system call; the result is checked below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll_create1: {}", io::Error::last_os_error()));
    }
    // SAFETY: `ep` is a fresh descriptor that nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut rng = Rng::new(seed);
    let mut req = Vec::with_capacity(256);
    let mut conns = Vec::with_capacity(socks.len());
    let next = |rng: &mut Rng, req: &mut Vec<u8>| {
        let i = plan.ks.draw(plan.dist, rng);
        req.clear();
        if plan.mix == Mix::Set || rng.below(100) < 10 {
            // ORDERING: Relaxed. A reader checks `v < issued` after the
            // value went out through our socket and came back through its
            // own: the system calls in between order the two in practice.
            let v = plan.ks.issued.fetch_add(1, Relaxed);
            encode(req, Op::Set(i), v);
            Op::Set(i)
        } else {
            encode(req, Op::Get(i), 0);
            Op::Get(i)
        }
    };
    for (c, mut sock) in socks.into_iter().enumerate() {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: c as u64 };
        // SAFETY: valid descriptors and a valid event for the call.
        let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, sock.as_raw_fd(), &mut ev) };
        if rc != 0 {
            return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
        let op = next(&mut rng, &mut req);
        send(&mut sock, &req).map_err(|e| format!("connection {c}: `{}`: write: {e}", describe(op)))?;
        conns.push(Conn { sock, op, sent: Instant::now(), buf: [0; MAX_REPLY], len: 0, busy: true });
    }
    let mut tally = Tally { lat_ns: Vec::with_capacity(1 << 20), per_conn: vec![0; conns.len()], ..Tally::default() };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut in_flight = conns.len();
    let mut progress = Instant::now();
    while in_flight > 0 {
        if plan.abort.load(Relaxed) {
            return Err("stopped: another loader thread failed".into());
        }
        if progress.elapsed() > STALL {
            return Err(format!("no reply for {} s ({in_flight} requests outstanding)", STALL.as_secs()));
        }
        // SAFETY: `events` is valid for `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 100) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        for ev in &events[..n as usize] {
            let c = ev.u64 as usize;
            let conn = &mut conns[c];
            let what = |conn: &Conn, e: &dyn std::fmt::Display| {
                format!("connection {c}: reply to `{}`: {e}: `{}`", describe(conn.op), escape(&conn.buf[..conn.len]))
            };
            if !conn.busy {
                return Err(what(conn, &"bytes arrived with no request in flight"));
            }
            match conn.sock.read(&mut conn.buf[conn.len..]) {
                Ok(0) => return Err(what(conn, &"the server closed the connection")),
                Ok(k) => conn.len += k,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                Err(e) => return Err(what(conn, &e)),
            }
            let reply = match parse(&conn.buf[..conn.len], conn.op, plan.ks.issued.load(Relaxed)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return Err(what(conn, &e)),
            };
            let now = Instant::now();
            progress = now;
            if now >= plan.from && now < plan.to {
                tally.ops += 1;
                tally.per_conn[c] += 1;
                tally.misses += u64::from(reply == Reply::Miss);
                tally.lat_ns.push(now.duration_since(conn.sent).as_nanos().min(u32::MAX as u128) as u32);
            }
            conn.len = 0;
            if now >= plan.to {
                conn.busy = false;
                in_flight -= 1;
                continue;
            }
            conn.op = next(&mut rng, &mut req);
            conn.sent = Instant::now();
            send(&mut conn.sock, &req).map_err(|e| format!("connection {c}: `{}`: write: {e}", describe(conn.op)))?;
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_have_the_documented_shape() {
        assert_eq!(&key(12345), b"kv-bench:00000000000000000012345");
        let v = value(7, 42);
        assert_eq!(&v[..16], b"000000000000002a");
        assert_eq!(version_of(&v), Some(42));
        assert_ne!(value(7, 42), value(8, 42));
        assert_ne!(value(7, 42), value(7, 43));
        assert!(v.iter().all(|b| b.is_ascii_graphic()));
    }

    fn hit(i: usize, v: u64) -> Vec<u8> {
        let mut r = format!("VALUE {} {} {VALUE_LEN}\r\n", escape(&key(i)), flags(i)).into_bytes();
        r.extend_from_slice(&value(i, v));
        r.extend_from_slice(b"\r\nEND\r\n");
        r
    }

    #[test]
    fn replies_are_checked() {
        let h = hit(3, 5);
        assert_eq!(parse(&h, Op::Get(3), 6), Ok(Some(Reply::Hit)));
        for cut in 0..h.len() {
            assert_eq!(parse(&h[..cut], Op::Get(3), 6), Ok(None), "cut at {cut}");
        }
        assert!(parse(&h, Op::Get(3), 5).is_err(), "a version never issued");
        assert!(parse(&h, Op::Get(4), 6).is_err(), "another key");
        let mut bad = h.clone();
        bad[60] ^= 1;
        assert!(parse(&bad, Op::Get(3), 6).is_err(), "a flipped value byte");
        let mut long = h.clone();
        long.extend_from_slice(b"END\r\n");
        assert!(parse(&long, Op::Get(3), 6).is_err(), "trailing bytes");
        assert_eq!(parse(b"END\r\n", Op::Get(3), 6), Ok(Some(Reply::Miss)));
        assert_eq!(parse(b"STORED\r\n", Op::Set(3), 6), Ok(Some(Reply::Stored)));
        assert!(parse(b"STORED\r\n", Op::Get(3), 6).is_err());
        assert!(parse(b"ERROR\r\n", Op::Set(3), 6).is_err());
        assert!(parse(b"SERVER_ERROR out of memory\r\n", Op::Set(3), 6).is_err());
        assert!(parse(&[b'x'; MAX_REPLY], Op::Set(3), 6).is_err());
    }

    #[test]
    fn requests_are_well_formed() {
        let mut r = Vec::new();
        encode(&mut r, Op::Set(9), 1);
        let head = format!("set kv-bench:00000000000000000000009 {} 0 100\r\n", flags(9));
        assert!(r.starts_with(head.as_bytes()));
        assert_eq!(r.len(), head.len() + VALUE_LEN + 2);
        r.clear();
        encode(&mut r, Op::Get(9), 0);
        assert_eq!(&r, b"get kv-bench:00000000000000000000009\r\n");
    }

    #[test]
    fn zipf_puts_the_expected_mass_on_the_top_rank() {
        let n = 100_000;
        let z = Zipf::new(n, 0.99);
        let h: f64 = (1..=n).map(|k| 1.0 / (k as f64).powf(0.99)).sum();
        let mut rng = Rng::new(1);
        let draws = 200_000;
        let top = (0..draws).filter(|_| z.sample(&mut rng) == 0).count();
        let expect = draws as f64 / h;
        assert!((top as f64 - expect).abs() < expect * 0.1, "{top} vs {expect}");
        assert!((0..1000).all(|_| z.sample(&mut rng) < n));
    }

    #[test]
    fn zipf_scatter_is_a_permutation() {
        let n = 100_000;
        let mut seen = vec![false; n];
        for r in 0..n {
            let i = ((r as u64 * 1_000_003) % n as u64) as usize;
            assert!(!seen[i]);
            seen[i] = true;
        }
    }
}
