//! `percore-bench smr`: percore-smr against crossbeam-epoch, seize and
//! haphazard.
//!
//! * `smr_read_section` (`ns_per_op`): enter + one pointer load + exit, on
//!   1 and 2 threads (`threads`).
//! * `smr_read_mostly` (`reader_mops`): two readers look values up in a
//!   1024-slot table while a writer replaces slots and retires the old nodes.
//! * `smr_retire` (`retires_per_s`): one writer allocates and retires nodes
//!   as fast as it can while a reader enters and exits in a loop.
//! * `smr_stalled_reader` (`pending_mib`): a reader stays in one section for
//!   1 s while a writer retires; retired-but-unfreed memory at the end.

use crate::report::{Better, Report, Row};
use crate::util::ns_per_iter;
use crate::Budget;
use crossbeam_epoch as epoch;
use percore::smr::Smr;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A 64-byte node whose destructor is counted (pending-memory accounting).
#[repr(align(64))]
struct Node {
    value: u64,
    _pad: [u64; 7],
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

impl Node {
    fn new(value: u64) -> Node {
        Node { value, _pad: [0; 7] }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

const IMPLS: [&str; 4] = ["percore", "crossbeam-epoch", "seize", "haphazard"];
const TABLE: usize = 1024;

pub(crate) fn run(budget: Budget, report: &mut Report) {
    read_section(budget, report);
    read_mostly(budget, report);
    retire(budget, report);
    stalled_reader(budget, report);
}

/// Run `op(iters)` on `threads` threads at once; mean ns per op.
fn on_threads(threads: usize, budget: Budget, op: impl Fn(u64) -> Duration + Sync) -> f64 {
    let target = budget.millis(400);
    if threads == 1 {
        return ns_per_iter(target, 5, &op);
    }
    let barrier = Barrier::new(threads);
    let results: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    ns_per_iter(target, 5, &op)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("bench thread")).collect()
    });
    results.iter().sum::<f64>() / results.len() as f64
}

fn read_section(budget: Budget, report: &mut Report) {
    for threads in budget.threads(&[1, 2]) {
        let row =
            |imp, v| Row::new("smr_read_section", imp, "ns_per_op", v, "ns", Better::Lower).field("threads", threads);

        let smr = Smr::new("bench-read").expect("domain");
        let p = AtomicPtr::new(Box::into_raw(Box::new(Node::new(7))));
        // The loop and the load alone, unprotected: what every row pays
        // besides its section.
        let ns = on_threads(threads, budget, |iters| {
            let t = Instant::now();
            for _ in 0..iters {
                // SAFETY: `p` is never freed while the bench runs.
                black_box(unsafe { (*p.load(Ordering::Acquire)).value });
            }
            t.elapsed()
        });
        report.push(row("none (load only)", ns));
        let ns = on_threads(threads, budget, |iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let g = smr.enter();
                // SAFETY: `p` is never freed while the bench runs.
                black_box(unsafe { (*p.load(Ordering::Acquire)).value });
                drop(g);
            }
            t.elapsed()
        });
        report.push(row("percore", ns));

        let ns = on_threads(threads, budget, |iters| {
            let outer = smr.enter();
            let t = Instant::now();
            for _ in 0..iters {
                let g = smr.enter();
                // SAFETY: as above.
                black_box(unsafe { (*p.load(Ordering::Acquire)).value });
                drop(g);
            }
            let e = t.elapsed();
            drop(outer);
            e
        });
        report.push(row("percore-nested", ns));

        let ns = on_threads(threads, budget, |iters| {
            let me = smr.register();
            let t = Instant::now();
            for _ in 0..iters {
                let g = me.enter();
                // SAFETY: as above.
                black_box(unsafe { (*p.load(Ordering::Acquire)).value });
                drop(g);
            }
            t.elapsed()
        });
        report.push(row("percore-participant", ns));
        // SAFETY: readers are done; `p` came from Box::into_raw.
        drop(unsafe { Box::from_raw(p.load(Ordering::Relaxed)) });

        let a = epoch::Atomic::new(Node::new(7));
        let ns = on_threads(threads, budget, |iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let g = epoch::pin();
                // SAFETY: the node is never freed while the bench runs.
                black_box(unsafe { a.load(Ordering::Acquire, &g).deref().value });
                drop(g);
            }
            t.elapsed()
        });
        report.push(row("crossbeam-epoch", ns));
        // SAFETY: no other thread uses `a` any more.
        drop(unsafe { a.into_owned() });

        let collector = seize::Collector::new();
        let p = AtomicPtr::new(Box::into_raw(Box::new(Node::new(7))));
        let ns = on_threads(threads, budget, |iters| {
            use seize::Guard as _;
            let t = Instant::now();
            for _ in 0..iters {
                let g = collector.enter();
                // SAFETY: never freed while the bench runs.
                black_box(unsafe { (*g.protect(&p, Ordering::Acquire)).value });
                drop(g);
            }
            t.elapsed()
        });
        report.push(row("seize", ns));
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(p.load(Ordering::Relaxed)) });

        let hp_ptr = haphazard::AtomicPtr::from(Box::new(Node::new(7)));
        let ns = on_threads(threads, budget, |iters| {
            let mut h = haphazard::HazardPointer::new();
            let t = Instant::now();
            for _ in 0..iters {
                black_box(hp_ptr.safe_load(&mut h).expect("non-null").value);
                h.reset_protection();
            }
            t.elapsed()
        });
        report.push(row("haphazard", ns));
        // SAFETY: readers are done; the node came from a Box.
        drop(unsafe { Box::from_raw(hp_ptr.load_ptr()) });
    }
}

/// One reclamation scheme behind the two operations the other benches need.
trait Scheme: Sync {
    /// Look up slot `i` inside a read section; returns the value.
    fn read(&self, i: usize) -> u64;
    /// Replace slot `i` with a fresh node and retire the old one.
    fn replace(&self, i: usize, value: u64);
    /// Retire a fresh node (no table).
    fn retire_fresh(&self, value: u64);
    /// Enter and exit a section, doing nothing inside.
    fn touch(&self);
    /// Run `f` inside one read section.
    fn stall(&self, f: &dyn Fn());
    /// Free everything still pending, if the scheme can.
    fn settle(&self);
}

struct Percore {
    smr: Smr,
    table: Vec<AtomicPtr<Node>>,
}

impl Percore {
    fn new(smr: Smr) -> Percore {
        Percore {
            smr,
            table: (0..TABLE).map(|i| AtomicPtr::new(Box::into_raw(Box::new(Node::new(i as u64))))).collect(),
        }
    }
}

impl Scheme for Percore {
    fn read(&self, i: usize) -> u64 {
        let _g = self.smr.enter();
        // SAFETY: nodes are retired through `smr` after being unlinked.
        unsafe { (*self.table[i].load(Ordering::Acquire)).value }
    }
    fn replace(&self, i: usize, value: u64) {
        let old = self.table[i].swap(Box::into_raw(Box::new(Node::new(value))), Ordering::AcqRel);
        // SAFETY: `old` is unlinked, came from Box::into_raw, retired once.
        unsafe { self.smr.retire(old) };
    }
    fn retire_fresh(&self, value: u64) {
        // SAFETY: a fresh Box::into_raw that nobody else can reach.
        unsafe { self.smr.retire(Box::into_raw(Box::new(Node::new(value)))) };
    }
    fn touch(&self) {
        drop(self.smr.enter());
    }
    fn stall(&self, f: &dyn Fn()) {
        let _g = self.smr.enter();
        f();
    }
    fn settle(&self) {
        self.smr.flush().expect("not in a section");
    }
}

impl Drop for Percore {
    fn drop(&mut self) {
        for p in &self.table {
            // SAFETY: no reader is left; each slot holds a live Box.
            drop(unsafe { Box::from_raw(p.load(Ordering::Relaxed)) });
        }
    }
}

struct Crossbeam {
    table: Vec<epoch::Atomic<Node>>,
}

impl Scheme for Crossbeam {
    fn read(&self, i: usize) -> u64 {
        let g = epoch::pin();
        // SAFETY: nodes are destroyed through `defer_destroy` after unlinking.
        unsafe { self.table[i].load(Ordering::Acquire, &g).deref().value }
    }
    fn replace(&self, i: usize, value: u64) {
        let g = epoch::pin();
        let old = self.table[i].swap(epoch::Owned::new(Node::new(value)), Ordering::AcqRel, &g);
        // SAFETY: `old` is unlinked.
        unsafe { g.defer_destroy(old) };
    }
    fn retire_fresh(&self, value: u64) {
        let g = epoch::pin();
        let p = epoch::Owned::new(Node::new(value)).into_shared(&g);
        // SAFETY: `p` was never shared.
        unsafe { g.defer_destroy(p) };
    }
    fn touch(&self) {
        drop(epoch::pin());
    }
    fn stall(&self, f: &dyn Fn()) {
        let _g = epoch::pin();
        f();
    }
    fn settle(&self) {
        // NOTE: everything this bench retired goes to crossbeam's global
        // collector, which later benches (zone_smr_free) share. A `flush`
        // frees at most 8 bags (512 nodes); a stalled-reader run leaves
        // hundreds of thousands behind, which the next user of `pin` would
        // pay for. Flush until 64 flushes in a row free nothing (or 10 s).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut idle = 0;
        while idle < 64 && Instant::now() < deadline {
            let before = DROPPED.load(Ordering::Relaxed);
            epoch::pin().flush();
            idle = if DROPPED.load(Ordering::Relaxed) == before { idle + 1 } else { 0 };
        }
    }
}

impl Drop for Crossbeam {
    fn drop(&mut self) {
        for a in self.table.drain(..) {
            // SAFETY: no reader is left.
            drop(unsafe { a.into_owned() });
        }
    }
}

struct Seize {
    collector: seize::Collector,
    table: Vec<AtomicPtr<Node>>,
}

impl Scheme for Seize {
    fn read(&self, i: usize) -> u64 {
        use seize::Guard as _;
        let g = self.collector.enter();
        // SAFETY: nodes are retired through the collector after unlinking.
        unsafe { (*g.protect(&self.table[i], Ordering::Acquire)).value }
    }
    fn replace(&self, i: usize, value: u64) {
        let old = self.table[i].swap(Box::into_raw(Box::new(Node::new(value))), Ordering::AcqRel);
        // SAFETY: `old` is unlinked and came from Box::into_raw.
        unsafe { self.collector.retire(old, seize::reclaim::boxed) };
    }
    fn retire_fresh(&self, value: u64) {
        // SAFETY: never shared; came from Box::into_raw.
        unsafe { self.collector.retire(Box::into_raw(Box::new(Node::new(value))), seize::reclaim::boxed) };
    }
    fn touch(&self) {
        drop(self.collector.enter());
    }
    fn stall(&self, f: &dyn Fn()) {
        let _g = self.collector.enter();
        f();
    }
    fn settle(&self) {}
}

impl Drop for Seize {
    fn drop(&mut self) {
        for p in &self.table {
            // SAFETY: no reader is left; each slot holds a live Box.
            drop(unsafe { Box::from_raw(p.load(Ordering::Relaxed)) });
        }
    }
}

struct Haphazard {
    table: Vec<haphazard::AtomicPtr<Node>>,
}

thread_local! {
    static HP: std::cell::RefCell<haphazard::HazardPointer<'static>> = std::cell::RefCell::new(haphazard::HazardPointer::new());
}

impl Scheme for Haphazard {
    fn read(&self, i: usize) -> u64 {
        HP.with(|h| {
            let mut h = h.borrow_mut();
            let v = self.table[i].safe_load(&mut h).expect("non-null").value;
            h.reset_protection();
            v
        })
    }
    fn replace(&self, i: usize, value: u64) {
        if let Some(old) = self.table[i].swap(Box::new(Node::new(value))) {
            // SAFETY: `old` is unlinked and no new hazard pointer can find it.
            unsafe { old.retire() };
        }
    }
    fn retire_fresh(&self, value: u64) {
        let p = Box::into_raw(Box::new(Node::new(value)));
        // SAFETY: `p` was never shared and came from Box::into_raw.
        unsafe { haphazard::Domain::global().retire_ptr::<Node, Box<Node>>(p) };
    }
    fn touch(&self) {
        HP.with(|h| h.borrow_mut().reset_protection());
    }
    fn stall(&self, f: &dyn Fn()) {
        // A hazard pointer protects one object: the stalled reader holds one.
        HP.with(|h| {
            let mut h = h.borrow_mut();
            let _held = self.table[0].safe_load(&mut h);
            f();
        });
    }
    fn settle(&self) {
        haphazard::Domain::global().eager_reclaim();
    }
}

impl Drop for Haphazard {
    fn drop(&mut self) {
        for p in &self.table {
            // SAFETY: no reader is left; each slot holds a live Box.
            drop(unsafe { Box::from_raw(p.load_ptr()) });
        }
    }
}

fn make(imp: &str, smr: impl FnOnce() -> Smr) -> Box<dyn Scheme> {
    let nodes = || (0..TABLE).map(|i| Box::new(Node::new(i as u64)));
    match imp {
        "percore" => Box::new(Percore::new(smr())),
        "crossbeam-epoch" => {
            Box::new(Crossbeam { table: nodes().map(|b| epoch::Atomic::from(epoch::Owned::from(b))).collect() })
        }
        "seize" => Box::new(Seize {
            collector: seize::Collector::new(),
            table: nodes().map(|b| AtomicPtr::new(Box::into_raw(b))).collect(),
        }),
        _ => Box::new(Haphazard { table: nodes().map(haphazard::AtomicPtr::from).collect() }),
    }
}

fn xorshift(x: &mut u64) -> usize {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x % TABLE as u64) as usize
}

fn read_mostly(budget: Budget, report: &mut Report) {
    let dur = budget.millis(1000);
    for readers in budget.threads(&[2]) {
        for imp in IMPLS {
            read_mostly_one(imp, readers, dur, report);
        }
    }
}

fn read_mostly_one(imp: &'static str, readers: usize, dur: Duration, report: &mut Report) {
    {
        let scheme = make(imp, || Smr::new("bench-read-mostly").expect("domain"));
        let stop = AtomicBool::new(false);
        let reads = AtomicU64::new(0);
        let writes = AtomicU64::new(0);
        let start = Barrier::new(readers + 2);
        std::thread::scope(|s| {
            for r in 0..readers as u64 {
                let (scheme, stop, reads, start) = (&scheme, &stop, &reads, &start);
                s.spawn(move || {
                    let mut x = 0x9E37_79B9 + r;
                    let mut n = 0u64;
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            black_box(scheme.read(xorshift(&mut x)));
                        }
                        n += 64;
                    }
                    reads.fetch_add(n, Ordering::Relaxed);
                });
            }
            let (scheme, stop, start, writes) = (&scheme, &stop, &start, &writes);
            s.spawn(move || {
                let mut x = 0x1234_5678;
                start.wait();
                let mut v = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Read-mostly: bursts of 16 replacements, then a nap (a
                    // sleeping writer leaves both CPUs to the readers).
                    for _ in 0..16 {
                        scheme.replace(xorshift(&mut x), v);
                        v += 1;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
                writes.fetch_add(v, Ordering::Relaxed);
            });
            start.wait();
            std::thread::sleep(dur);
            stop.store(true, Ordering::Relaxed);
        });
        let mops = reads.load(Ordering::Relaxed) as f64 / dur.as_secs_f64() / 1e6;
        report.push(
            Row::new("smr_read_mostly", imp, "reader_mops", mops, "Mops/s", Better::Higher).field("readers", readers),
        );
        // The writer's pace, for context: a slower reclamation scheme also
        // slows the writer, which keeps the readers' caches hotter.
        let kops = writes.load(Ordering::Relaxed) as f64 / dur.as_secs_f64() / 1e3;
        report.push(
            Row::new("smr_read_mostly", imp, "writer_kops", kops, "Kops/s", Better::Higher).field("readers", readers),
        );
        scheme.settle();
    }
}

fn retire(budget: Budget, report: &mut Report) {
    let dur = budget.millis(1000);
    for imp in IMPLS {
        let scheme = make(imp, || Smr::new("bench-retire").expect("domain"));
        let stop = AtomicBool::new(false);
        let mut retired = 0u64;
        let mut elapsed = Duration::ZERO;
        std::thread::scope(|s| {
            let (sch, st) = (&scheme, &stop);
            s.spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    sch.touch();
                }
            });
            let t = Instant::now();
            while t.elapsed() < dur {
                for i in 0..256 {
                    scheme.retire_fresh(i);
                }
                retired += 256;
            }
            elapsed = t.elapsed();
            stop.store(true, Ordering::Relaxed);
        });
        report.push(Row::new(
            "smr_retire",
            imp,
            "retires_per_s",
            retired as f64 / elapsed.as_secs_f64(),
            "1/s",
            Better::Higher,
        ));
        scheme.settle();
    }
}

/// Objects pending reclamation under percore's cap in this bench.
const CAP_OBJECTS: usize = 65_536;

fn stalled_reader(budget: Budget, report: &mut Report) {
    let stall = budget.millis(1000);
    for imp in IMPLS {
        let scheme = make(imp, || Smr::builder("bench-stalled").max_pending(CAP_OBJECTS).build().expect("domain"));
        let stalled = AtomicBool::new(false);
        let release = AtomicBool::new(false);
        let stop = AtomicBool::new(false);
        let allocated = AtomicUsize::new(0);
        let dropped_before = DROPPED.load(Ordering::SeqCst);
        let mut pending = 0usize;
        std::thread::scope(|s| {
            let (sch, stalled, release) = (&scheme, &stalled, &release);
            s.spawn(move || {
                sch.stall(&|| {
                    stalled.store(true, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
            });
            while !stalled.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let (sch, stop, allocated) = (&scheme, &stop, &allocated);
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    sch.retire_fresh(1);
                    allocated.fetch_add(1, Ordering::Relaxed);
                }
            });
            std::thread::sleep(stall);
            // Sample while the reader is still stalled.
            let freed = DROPPED.load(Ordering::SeqCst) - dropped_before;
            pending = allocated.load(Ordering::SeqCst).saturating_sub(freed);
            stop.store(true, Ordering::SeqCst);
            release.store(true, Ordering::SeqCst);
        });
        let mib = (pending * std::mem::size_of::<Node>()) as f64 / (1024.0 * 1024.0);
        let cap = if imp == "percore" {
            format!("{}", CAP_OBJECTS * std::mem::size_of::<Node>() / (1 << 20))
        } else {
            "none".into()
        };
        report
            .push(Row::new("smr_stalled_reader", imp, "pending_mib", mib, "MiB", Better::Lower).field("cap_mib", cap));
        scheme.settle();
        drop(scheme);
    }
}
