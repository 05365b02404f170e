//! Regression test for seed 004 (Akaros, "epoll: Give every waiter their own
//! event queue").
//!
//! Scenario: many uthreads call `epoll_wait` on one epoll set, each with its
//! own short timeout, while producers make the set's descriptors ready. In
//! Akaros the timed waiters shared one alarm queue: a waiter could be woken
//! by *another* waiter's timeout (returning 0 early), and a waiter woken by a
//! real event, cancelling its alarm, could have its alarm's completion
//! message taken by someone else and then sleep for an undetermined time.
//!
//! Here: a runtime with 2 workers; 64 uthreads loop in `Epoll::wait` on one
//! shared `Epoll` with timeouts of 1 to 10 ms; 16 descriptors (8 Unix stream
//! pairs added `READABLE | ONESHOT` and re-armed with `modify`, 8 eventfds
//! added `READABLE | EDGE`) are made ready 50 times each by producers (half
//! uthreads, half foreign threads), one unique token at a time: the next token
//! is written only once the previous one was taken. Checked, none by timing:
//! * every readiness is delivered exactly once: each delivery reads exactly
//!   one token, the expected next one of its descriptor, and no other waiter
//!   gets that descriptor while one holds it (one-shot or edge triggered);
//!   each descriptor has exactly 50 deliveries;
//! * no waiter takes another's timeout: a wait that returns 0 returned no
//!   earlier than its own timeout (an alarm never fires early);
//! * every waiter returns, then a last wait of each times out (0): the whole
//!   test runs under a watchdog that fails it instead of hanging;
//! * every alarm set was either fired or cancelled (stats), both happened,
//!   and a waiter woken by a real event cancelled its alarm.

mod common;

use common::{efd_read, efd_write, eventfd, stat, watchdog};
use percore_evq::{Epoll, EpollEvent, Interest};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAITERS: usize = 64;
const PAIRS: usize = 8;
const EVENTFDS: usize = 8;
const FDS: usize = PAIRS + EVENTFDS;
const TOKENS: u64 = 50;

enum Reader {
    /// Added `READABLE | ONESHOT`; re-armed after each token.
    Unix(UnixStream),
    /// Added `READABLE | EDGE`.
    Event(OwnedFd),
}

enum Writer {
    Unix(UnixStream),
    Event(Arc<OwnedFd>),
}

struct Shared {
    ep: Epoll,
    readers: Vec<Reader>,
    /// Kept open to the end: a closed writer would make its reader ready
    /// (end of file) once more.
    writers: Vec<Writer>,
    /// A waiter is handling descriptor `i`.
    busy: Vec<AtomicBool>,
    /// Tokens of descriptor `i` taken so far (= the next one expected).
    taken: Vec<AtomicU64>,
    /// Deliveries of descriptor `i`.
    deliveries: Vec<AtomicU64>,
    total: AtomicU64,
    returned: AtomicUsize,
    timeouts: AtomicU64,
    /// Some uthread or thread panicked: everyone stops, the test fails
    /// with that panic instead of at the watchdog.
    failed: AtomicBool,
}

/// Sets `failed` if dropped while panicking.
struct FailFast<'a>(&'a AtomicBool);

impl Drop for FailFast<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, SeqCst);
        }
    }
}

fn token(i: usize, k: u64) -> u64 {
    ((i as u64) << 32) | (k + 1)
}

impl Shared {
    /// Handle one event of descriptor `i`: take exactly one token.
    fn deliver(&self, e: &EpollEvent) {
        let i = e.data as usize;
        assert!(e.events.contains(Interest::READABLE), "fd {i}: event {:?} without READABLE", e.events);
        assert!(!self.busy[i].swap(true, SeqCst), "fd {i}: delivered to two waiters at once");
        let k = self.taken[i].load(SeqCst);
        let got = match &self.readers[i] {
            Reader::Unix(s) => {
                let mut b = [0u8; 8];
                match (&*s).read(&mut b) {
                    Ok(8) => Some(u64::from_le_bytes(b)),
                    Ok(n) => panic!("fd {i}: read {n} bytes of a token"),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                    Err(e) => panic!("fd {i}: {e}"),
                }
            }
            Reader::Event(fd) => efd_read(fd),
        };
        assert_eq!(got, Some(token(i, k)), "fd {i}: delivery {k} without its token (spurious or duplicate readiness)");
        self.deliveries[i].fetch_add(1, SeqCst);
        self.busy[i].store(false, SeqCst);
        // The producer writes the next token once it sees this.
        self.taken[i].store(k + 1, SeqCst);
        self.total.fetch_add(1, SeqCst);
        if let Reader::Unix(s) = &self.readers[i] {
            self.ep.modify(s, Interest::READABLE | Interest::ONESHOT, i as u64).expect("re-arm");
        }
    }
}

fn waiter(sh: Arc<Shared>, j: usize) {
    let _f = FailFast(&sh.failed);
    let timeout = Duration::from_millis(1 + (j % 10) as u64);
    let mut evs = [EpollEvent::default(); 4];
    let target = FDS as u64 * TOKENS;
    while sh.total.load(SeqCst) < target && !sh.failed.load(SeqCst) {
        let t0 = Instant::now();
        let n = sh.ep.wait(&mut evs, Some(timeout)).expect("Epoll::wait");
        if n == 0 {
            assert!(
                t0.elapsed() >= timeout,
                "waiter {j}: returned 0 after {:?}, before its own {timeout:?}",
                t0.elapsed()
            );
            sh.timeouts.fetch_add(1, SeqCst);
        }
        for e in &evs[..n] {
            sh.deliver(e);
        }
    }
    if sh.failed.load(SeqCst) {
        return;
    }
    // Nothing is ready any more: this one must time out, on its own alarm.
    let t0 = Instant::now();
    assert_eq!(sh.ep.wait(&mut evs, Some(timeout)).expect("Epoll::wait"), 0, "waiter {j}: an event after the end");
    assert!(t0.elapsed() >= timeout, "waiter {j}: last wait returned early");
    sh.returned.fetch_add(1, SeqCst);
}

fn produce(sh: &Shared, i: usize, pause: impl Fn()) {
    let _f = FailFast(&sh.failed);
    for k in 0..TOKENS {
        match &sh.writers[i] {
            Writer::Unix(s) => (&*s).write_all(&token(i, k).to_le_bytes()).expect("write a token"),
            Writer::Event(fd) => efd_write(&**fd, token(i, k)),
        }
        while sh.taken[i].load(SeqCst) <= k && !sh.failed.load(SeqCst) {
            pause();
        }
    }
}

fn scenario() -> (u64, u64) {
    let rt = Arc::new(percore_lwkt::Runtime::builder().workers(2).build().expect("runtime"));
    let ep = Epoll::new_in(rt.handle()).expect("epoll");
    let (mut readers, mut writers) = (Vec::new(), Vec::new());
    for i in 0..FDS {
        if i < PAIRS {
            let (r, w) = UnixStream::pair().expect("socketpair");
            r.set_nonblocking(true).expect("nonblocking");
            ep.add(&r, Interest::READABLE | Interest::ONESHOT, i as u64).expect("add");
            readers.push(Reader::Unix(r));
            writers.push(Writer::Unix(w));
        } else {
            let fd = Arc::new(eventfd());
            ep.add(&*fd, Interest::READABLE | Interest::EDGE, i as u64).expect("add");
            // NOTE: the reader and the writer share the eventfd.
            readers.push(Reader::Event(fd.try_clone().expect("dup")));
            writers.push(Writer::Event(fd));
        }
    }
    let sh = Arc::new(Shared {
        ep,
        readers,
        writers,
        busy: (0..FDS).map(|_| AtomicBool::new(false)).collect(),
        taken: (0..FDS).map(|_| AtomicU64::new(0)).collect(),
        deliveries: (0..FDS).map(|_| AtomicU64::new(0)).collect(),
        total: AtomicU64::new(0),
        returned: AtomicUsize::new(0),
        timeouts: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    });
    let p = sh.clone();
    let progress = move || {
        format!(
            "{} of {} tokens taken, {} of {WAITERS} waiters returned",
            p.total.load(SeqCst),
            FDS as u64 * TOKENS,
            p.returned.load(SeqCst)
        )
    };
    let sh2 = sh.clone();
    watchdog(60, "seed 004 scenario", progress, move || {
        let sh = sh2;
        let waiters: Vec<_> = (0..WAITERS)
            .map(|j| {
                let sh = sh.clone();
                rt.spawn(move || waiter(sh, j)).expect("spawn waiter")
            })
            .collect();
        let mut producers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..FDS {
            let sh = sh.clone();
            if i % 2 == 0 {
                let pause = || percore_evq::sleep(Duration::from_micros(200)).expect("sleep");
                producers.push(rt.spawn(move || produce(&sh, i, pause)).expect("spawn producer"));
            } else {
                let pause = || std::thread::sleep(Duration::from_micros(200));
                threads.push(std::thread::spawn(move || produce(&sh, i, pause)));
            }
        }
        for h in producers.into_iter().chain(waiters) {
            h.join().expect("uthread");
        }
        for t in threads {
            t.join().expect("producer thread");
        }
    });
    for i in 0..FDS {
        assert_eq!(sh.deliveries[i].load(SeqCst), TOKENS, "fd {i}: every readiness delivered exactly once");
        assert_eq!(sh.taken[i].load(SeqCst), TOKENS);
    }
    assert_eq!(sh.returned.load(SeqCst), WAITERS);
    assert!(sh.ep.as_raw_fd() >= 0);
    (sh.timeouts.load(SeqCst), sh.total.load(SeqCst))
}

/// A waiter blocked with a long timeout, woken by a real event: its alarm is
/// cancelled before firing. Retried until the wait really armed its alarm
/// (it may find the event already there), at most 100 rounds.
fn woken_waiter_cancels_its_alarm() {
    let rt = percore_lwkt::Runtime::builder().workers(2).build().expect("runtime");
    let ep = Arc::new(Epoll::new_in(rt.handle()).expect("epoll"));
    let fd = Arc::new(eventfd());
    ep.add(&*fd, Interest::READABLE | Interest::EDGE, 9).expect("add");
    for _ in 0..100 {
        let (set, cancelled) = (stat("alarms_set"), stat("alarms_cancelled"));
        let (ep2, fd2) = (ep.clone(), fd.clone());
        let h = rt
            .spawn(move || {
                let mut evs = [EpollEvent::default(); 1];
                let n = ep2.wait(&mut evs, Some(Duration::from_secs(60))).expect("wait");
                assert_eq!((n, evs[0].data), (1, 9));
                efd_read(&*fd2).expect("the token");
            })
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(2));
        efd_write(&*fd, 1);
        h.join().expect("waiter");
        if stat("alarms_set") > set {
            assert!(stat("alarms_cancelled") > cancelled, "the woken waiter's alarm was not cancelled");
            return;
        }
    }
    panic!("the waiter never blocked in 100 rounds");
}

#[test]
fn many_timed_waiters_on_one_epoll() {
    let progress = || String::new();
    let (timeouts, total) = watchdog(90, "issue_epoll_waiter_alarms", progress, || {
        let r = scenario();
        woken_waiter_cancels_its_alarm();
        r
    });
    assert_eq!(total, FDS as u64 * TOKENS);
    // Every alarm ever set here ended fired or cancelled (the runtimes are
    // gone; this file's only test).
    let (set, fired, cancelled) = (stat("alarms_set"), stat("alarms_fired"), stat("alarms_cancelled"));
    eprintln!(
        "alarms set {set}, fired {fired}, cancelled {cancelled}, cancel waits {}; epoll waits {}, timeouts {timeouts}",
        stat("alarms_cancel_waits"),
        stat("epoll_waits")
    );
    assert_eq!(set, fired + cancelled, "an alarm neither fired nor cancelled");
    assert!(fired >= WAITERS as u64, "every waiter's last wait timed out");
    assert!(cancelled > 0);
}
