//! The shared state of a domain and the GUS protocol on it: `advance`,
//! `poll`, the scan, and the queue of tagged batches.
//!
//! Fields and who touches them:
//!
//! | field | written by | read by |
//! | --- | --- | --- |
//! | `wr` (`s_wr`: seq low 32 bits, lazy ticks high 32) | `advance`, lazy clock | readers on entry, pollers |
//! | `rd_seq` (`s_rd_seq`) | pollers, CAS forward only | pollers' fast path |
//! | `slots[i].c_seq` | slot owner | pollers' scan |
//! | `queue` | retirers, reclaimers, thread exit, teardown (all under its lock) | same |
//!
//! Invariants (FreeBSD's, kept as is):
//! * `rd_seq` never passes `wr_seq`; everything retired with a goal at or
//!   before `rd_seq` is unreachable by every reader.
//! * `wr_seq - rd_seq < MAX_DELTA` (a writer that would break it waits), so
//!   wrap-safe comparisons of live values are always right.
//! * A slot's `c_seq` is `INVALID` or a sequence that was current when its
//!   section began; a stale one (below `rd_seq`, see `poll_slot`) is treated
//!   as `rd_seq`.

use crate::reclaim::{Batch, Tagged};
use crate::seq::{Seq, INCR, INIT, INVALID, LAZY_GRACE, LAZY_INCR, MAX_ADVANCE, MAX_DELTA, SEQ_ADVANCE};
use crate::slots::{Slot, Slots};
use crate::sys::{self, Flavour};
use crossbeam_utils::CachePadded;
use percore_cpu::loom::{fence, AtomicU32, AtomicU64, AtomicUsize, Mutex, MutexGuard};
use percore_cpu::Counter;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How a domain advances its write sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Every `advance` bumps the shared write sequence.
    Default,
    /// `advance` bumps the shared sequence only every `limit` calls on a
    /// participant, returning a goal one step ahead otherwise
    /// (`SMR_DEFERRED`). Fewer writes to the shared line; longer
    /// free-to-reuse latency, and a non-blocking `poll` of a deferred goal
    /// fails until somebody bumps.
    Deferred {
        /// Bump every `limit` advances (at least 1).
        limit: u32,
    },
    /// The write sequence follows a clock of period `tick` (`SMR_LAZY`):
    /// `advance` writes nothing shared unless a tick passed, and goals lie
    /// two ticks ahead. Meant for callers that only poll without waiting;
    /// a blocking wait sleeps tick by tick until the clock gets there.
    Lazy {
        /// The clock period: at least 1 microsecond, at most
        /// [`MAX_LAZY_TICK`] (a blocking wait takes about two ticks).
        tick: Duration,
    },
}

/// The longest [`Mode::Lazy`] tick a domain accepts (1 s). A grace period
/// of a lazy domain lasts about two ticks, and `synchronize` sleeps that
/// long: a longer tick (`Duration::MAX` used to be accepted) would make it
/// wait for ever in practice (issue 16).
pub const MAX_LAZY_TICK: Duration = Duration::from_secs(1);

percore_cpu::stats_struct! {
    /// The domain's counters in the stats tree (`smr.<name>.*`).
    #[derive(Default)]
    pub(crate) struct DomainCounters {
        /// Sequence advances (`smr_advance`, and the lazy clock's steps).
        pub(crate) advance: Counter,
        /// Advances that waited for readers because the write sequence was
        /// too far ahead of `rd_seq`.
        pub(crate) advance_wait: Counter,
        /// Polls.
        pub(crate) poll: Counter,
        /// Polls that scanned the slots.
        pub(crate) poll_scan: Counter,
        /// Polls whose goal had not expired.
        pub(crate) poll_fail: Counter,
        /// Objects retired.
        pub(crate) retired: Counter,
        /// Objects reclaimed.
        pub(crate) reclaimed: Counter,
        /// Retirers that waited because more than the cap was pending.
        pub(crate) backpressure: Counter => "backpressure_waits",
        /// Retires that found the pending cap exceeded but could not wait
        /// (inside a section, or from a path that must not block).
        pub(crate) cap_overrun: Counter => "cap_overruns",
    }
}

/// The domain's source in the stats tree: its counters and its gauges.
impl percore_cpu::stats::Emit for Domain {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        self.counters.emit(emit);
        // ORDERING: statistics.
        emit("pending", self.pending.load(Ordering::Relaxed) as u64);
        emit("pending_bytes", self.pending_bytes.load(Ordering::Relaxed) as u64);
        emit("participants", self.participants());
    }
}

pub(crate) struct Queue {
    pub(crate) batches: VecDeque<Tagged>,
    /// Set at teardown: nobody holds a handle any more.
    pub(crate) dead: bool,
}

/// The protocol state of one SMR domain (FreeBSD's `smr_shared`), shared by
/// every handle and slot; the table at the top says who touches each field.
pub(crate) struct Domain {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) flavour: Flavour,
    epoch: Instant,
    tick_ns: u64,
    wr: CachePadded<AtomicU64>,
    rd_seq: CachePadded<AtomicU32>,
    pub(crate) slots: Slots,
    // NOTE: the fields written by writers (queue, pending counts) are
    // padded so that they never share a line with the read-only fields a
    // reader loads on entry (`id`, `flavour`): false sharing there measured
    // 25% of read-mostly throughput.
    pub(crate) queue: CachePadded<Mutex<Queue>>,
    /// Held while popped batches run, so that `flush` can wait for batches
    /// another thread popped but has not finished running.
    runner: Mutex<()>,
    /// Objects in queued (tagged) batches.
    pub(crate) pending: CachePadded<AtomicUsize>,
    pub(crate) pending_bytes: CachePadded<AtomicUsize>,
    pub(crate) max_pending: usize,
    pub(crate) batch_size: usize,
    pub(crate) counters: DomainCounters,
}

percore_cpu::loom_thread_local! {
    /// This thread is running popped batches (see `pop_expired`).
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Holds `runner` (the field is only held, never read) and marks the thread
/// as running batches.
struct Running<'a>(#[allow(dead_code)] MutexGuard<'a, ()>);

impl<'a> Running<'a> {
    fn enter(runner: &'a Mutex<()>) -> Running<'a> {
        // The guarded data is `()`: the shim's lock ignores poisoning.
        let g = runner.lock();
        RUNNING.with(|r| r.set(true));
        Running(g)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(false));
    }
}

/// Batches that may wait before a retirer scans for expired ones.
const RECLAIM_SLACK: usize = 4;

#[inline]
fn seq_of(pair: u64) -> Seq {
    Seq(pair as u32)
}

impl Domain {
    pub(crate) fn new(id: u64, name: String, mode: Mode, max_pending: usize, batch_size: usize) -> Domain {
        let tick_ns = match mode {
            Mode::Lazy { tick } => tick.as_nanos().clamp(1_000, u64::MAX as u128) as u64,
            _ => 1,
        };
        Domain {
            id,
            name,
            mode,
            flavour: sys::flavour(),
            epoch: Instant::now(),
            tick_ns,
            wr: CachePadded::new(AtomicU64::new(INIT as u64)),
            rd_seq: CachePadded::new(AtomicU32::new(INIT)),
            slots: Slots::new(),
            queue: CachePadded::new(Mutex::new(Queue { batches: VecDeque::new(), dead: false })),
            runner: Mutex::new(()),
            pending: CachePadded::new(AtomicUsize::new(0)),
            pending_bytes: CachePadded::new(AtomicUsize::new(0)),
            max_pending,
            batch_size,
            counters: DomainCounters::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding this lock except allocation failure;
        // the queue is consistent after every single push or pop.
        self.queue.lock()
    }

    /// The current write sequence (`smr_shared_current`).
    #[inline]
    pub(crate) fn current(&self) -> Seq {
        // ORDERING: Acquire pairs with the AcqRel bump in `shared_advance`
        // (and the lazy CAS): whoever sees a goal's sequence also sees every
        // write made before the advance that produced it.
        seq_of(self.wr.load(Ordering::Acquire))
    }

    pub(crate) fn rd_seq(&self) -> Seq {
        // ORDERING: pairs with the AcqRel CAS in `scan`.
        Seq(self.rd_seq.load(Ordering::Acquire))
    }

    /// Publish that `slot`'s owner enters a section (outermost entry).
    #[inline]
    pub(crate) fn publish(&self, slot: &Slot) {
        let seq = self.current().0;
        if slot.rmw.get() {
            sys::publish_with_full_fence(&slot.c_seq, seq);
        } else {
            self.store_light(slot, seq);
        }
    }

    /// `publish` for a slot known to use the membarrier flavour
    /// (`!slot.rmw`): `Smr::enter`'s fast path.
    #[inline]
    pub(crate) fn publish_light(&self, slot: &Slot) {
        self.store_light(slot, self.current().0);
    }

    #[inline]
    fn store_light(&self, slot: &Slot, seq: u32) {
        // ORDERING: Relaxed store + compiler fence. The writer's membarrier
        // (sys::heavy_fence) upgrades this to a full fence whenever it
        // matters; see sys/mod.rs for the argument.
        slot.c_seq.store(seq, Ordering::Relaxed);
        percore_cpu::loom::compiler_fence(Ordering::SeqCst);
    }

    /// Bump the shared write sequence by one step (`smr_shared_advance`).
    fn shared_advance(&self) -> Seq {
        // ORDERING: Release publishes the caller's unlinks to anyone who
        // acquires this sequence (readers on entry, pollers); Acquire keeps
        // the caller's later reads after the bump. A carry out of the low 32
        // bits lands in the lazy tick field, which only lazy domains use,
        // and they never bump this way.
        seq_of(self.wr.fetch_add(INCR as u64, Ordering::AcqRel)).add(INCR)
    }

    /// `smr_default_advance`. `may_wait` is false when the caller is in a
    /// section of this domain: waiting could then never end.
    pub(crate) fn default_advance(&self, may_wait: bool) -> Seq {
        // Load rd_seq before bumping so that it is always < goal.
        let rd = self.rd_seq();
        if !may_wait {
            let cur = self.current();
            let next = cur.add(INCR);
            if next.delta(rd) >= MAX_DELTA as i32 {
                // Cannot wait for readers from inside a section, and bumping
                // would break the delta invariant. Return a deferred goal one
                // step ahead without bumping; `poll` bumps when it must wait.
                self.counters.advance.inc();
                return next;
            }
        }
        let goal = self.shared_advance();
        if goal.delta(rd) >= MAX_DELTA as i32 && may_wait {
            self.counters.advance_wait.inc();
            self.poll(goal.sub(MAX_ADVANCE), true);
        }
        self.counters.advance.inc();
        goal
    }

    /// `smr_deferred_advance`: a real bump every `limit` calls on `slot`.
    pub(crate) fn deferred_advance(&self, slot: &Slot, limit: u32, may_wait: bool) -> Seq {
        let n = slot.local.deferred.get() + 1;
        if n < limit {
            slot.local.deferred.set(n);
            return self.current().add(INCR);
        }
        slot.local.deferred.set(0);
        self.default_advance(may_wait)
    }

    fn ticks(&self) -> u32 {
        (self.epoch.elapsed().as_nanos() / self.tick_ns as u128) as u32
    }

    /// `smr_lazy_advance`: move the sequence with the clock; the goal is two
    /// ticks ahead.
    pub(crate) fn lazy_advance(&self) -> Seq {
        // ORDERING: Acquire, as in `current`.
        let old = self.wr.load(Ordering::Acquire);
        let (seq, then) = (seq_of(old), (old >> 32) as u32);
        let now = self.ticks();
        let d = now.wrapping_sub(then) as i32;
        if d == 0 {
            return seq.add(LAZY_INCR);
        }
        // Cap the rate of advancement and handle long idle periods.
        let d = if !(0..=LAZY_GRACE as i32).contains(&d) { LAZY_GRACE } else { d as u32 };
        let seq = seq.add(d * INCR);
        let new = ((now as u64) << 32) | seq.0 as u64;
        // ORDERING: as `shared_advance`. Failure means another thread moved
        // the clock for us, which is just as good.
        let _ = self.wr.compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed);
        self.counters.advance.inc();
        seq.add(LAZY_INCR)
    }

    /// `smr_poll`. The caller has already refused `wait` inside a section.
    pub(crate) fn poll(&self, goal: Seq, wait: bool) -> bool {
        self.counters.poll.inc();
        if matches!(self.mode, Mode::Lazy { .. }) {
            self.lazy_advance();
        }
        let success = 'out: {
            let s_rd = self.rd_seq();
            // Most polls end here: somebody already saw the goal expire.
            if goal.le(s_rd) {
                break 'out true;
            }
            // wr_seq is loaded before any c_seq, so a stale c_seq can only
            // name a time after this wr_seq.
            let mut s_wr = self.current();
            let mut delta = goal.delta(s_wr);
            // A goal slightly in the future comes from a deferred or lazy
            // advance (or an advance from inside a section): valid, but not
            // reached yet. NOTE: FreeBSD checks this only for deferred and
            // lazy domains; we also produce such goals from inside sections.
            if delta > 0 && delta <= SEQ_ADVANCE as i32 {
                if !wait {
                    break 'out false;
                }
                s_wr = self.shared_advance();
                delta = 0;
            }
            // Beyond that, the caller kept a goal across a wrap: it expired
            // long ago.
            if delta > 0 {
                break 'out true;
            }
            let rd = self.scan(s_rd, s_wr, goal, wait);
            goal.le(rd)
        };
        if !success {
            self.counters.poll_fail.inc();
        }
        // ORDERING: serialize with the readers' Release exits observed by
        // the scan: the caller may now free what `goal` protected.
        fence(Ordering::Acquire);
        success
    }

    /// `smr_poll_scan`: the lowest sequence any reader may still observe,
    /// waiting for each reader to reach `goal` if `wait`.
    fn scan(&self, s_rd: Seq, s_wr: Seq, goal: Seq, wait: bool) -> Seq {
        self.counters.poll_scan.inc();
        sys::heavy_fence(self.flavour);
        // The read sequence can be no larger than the write sequence at the
        // start of the poll.
        let mut rd = s_wr;
        for slot in self.slots.iter() {
            let c = poll_slot(slot, s_rd, goal, wait);
            if c != INVALID {
                rd = rd.min(Seq(c));
            }
        }
        // Move rd_seq forward to `rd` unless somebody moved it further.
        // NOTE: FreeBSD tries the compare-and-set once; a concurrent scan
        // with an older snapshot can then win and leave rd_seq below what we
        // proved, so a batch we just waited for would not be popped. We
        // retry until rd_seq is at least `rd`: it only ever moves forward.
        let mut cur = self.rd_seq();
        while rd.gt(cur) {
            // ORDERING: AcqRel; pairs with the Acquire loads in `rd_seq`.
            match self.rd_seq.compare_exchange_weak(cur.0, rd.0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return rd,
                Err(now) => cur = Seq(now),
            }
        }
        cur
    }

    /// Queue a tagged batch. After teardown (only thread exit can get here
    /// then) there are no readers, so the batch runs at once.
    pub(crate) fn enqueue(&self, tagged: Tagged) {
        let n = tagged.batch.len();
        if n == 0 {
            return;
        }
        let bytes = tagged.batch.bytes;
        let mut q = self.lock();
        if q.dead {
            drop(q);
            drop(tagged);
            return;
        }
        q.batches.push_back(tagged);
        // ORDERING: statistics and the soft cap; exactness comes from the
        // queue lock, these only steer back-pressure.
        self.pending.fetch_add(n, Ordering::Relaxed);
        self.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
        drop(q);
        self.counters.retired.add(n as u64);
    }

    /// Pop every batch at the head of the queue whose tag has expired and
    /// run it (outside the lock). Returns how many objects ran.
    fn pop_expired(&self) -> usize {
        // A destructor that retires (or flushes) must not run batches
        // itself: it would take `runner` twice. Its objects wait for the
        // next reclaim.
        if RUNNING.with(Cell::get) {
            return 0;
        }
        let _running = Running::enter(&self.runner);
        let rd = self.rd_seq();
        let mut ready: Vec<Batch> = Vec::new();
        {
            let mut q = self.lock();
            while q.batches.front().is_some_and(|t| t.tag.le(rd)) {
                let t = q.batches.pop_front().expect("front exists");
                ready.push(t.batch);
            }
        }
        let (n, bytes) = ready.iter().fold((0, 0), |(n, b), x| (n + x.len(), b + x.bytes));
        // ORDERING: see `enqueue`.
        self.pending.fetch_sub(n, Ordering::Relaxed);
        self.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.counters.reclaimed.add(n as u64);
        drop(ready); // runs every destructor, even if one of them panics
        n
    }

    /// Wait until no other thread is running batches it popped: after this,
    /// everything popped before has run (`flush`'s promise).
    fn wait_for_runners(&self) {
        if !RUNNING.with(Cell::get) {
            drop(Running::enter(&self.runner));
        }
    }

    fn front_tag(&self) -> Option<Seq> {
        self.lock().batches.front().map(|t| t.tag)
    }

    /// Reclaim what has expired; if `may_wait` and the queue is over the cap,
    /// wait for readers until it is not (back-pressure).
    ///
    /// A scan costs a heavy fence (9 us for `membarrier` on a small VM), so
    /// we do not scan for every batch: batches accumulate until
    /// `RECLAIM_SLACK` of them wait, and then one scan (which moves `rd_seq`
    /// up to the oldest active reader) typically frees all but the newest.
    /// Batches that an earlier scan already expired are freed at once.
    pub(crate) fn reclaim(&self, may_wait: bool) {
        if RUNNING.with(Cell::get) {
            // Called from a destructor we are running: leave the queue to
            // the next reclaim (see `pop_expired`).
            return;
        }
        while let Some(tag) = self.front_tag() {
            if tag.le(self.rd_seq()) {
                self.pop_expired();
                continue;
            }
            // ORDERING: see `enqueue`.
            let pending = self.pending.load(Ordering::Relaxed);
            if pending < RECLAIM_SLACK * self.batch_size && pending <= self.max_pending {
                return;
            }
            if self.poll(tag, false) {
                self.pop_expired();
                continue;
            }
            if pending <= self.max_pending {
                return;
            }
            if !may_wait {
                self.counters.cap_overrun.inc();
                return;
            }
            self.counters.backpressure.inc();
            self.wait(tag);
            self.pop_expired();
        }
    }

    /// Wait until `goal` expired; the caller is not in a section.
    pub(crate) fn wait(&self, goal: Seq) {
        match self.mode {
            Mode::Lazy { .. } => {
                // The lazy clock moves with time, not with writers: sleep
                // tick by tick instead of bumping the sequence.
                let nap = Duration::from_nanos(self.tick_ns.min(1_000_000));
                while !self.poll(goal, false) {
                    percore_cpu::loom::sleep(nap);
                }
            }
            _ => {
                self.poll(goal, true);
            }
        }
    }

    /// Wait for and run every batch queued now.
    ///
    /// Every tag lies at most `SEQ_ADVANCE` past `wr_seq`, so waiting for
    /// the newest one expires them all; batches queued later sit behind
    /// them, so popping from the head gets every one of ours.
    pub(crate) fn drain_queue(&self) {
        let newest = self.lock().batches.iter().map(|t| t.tag).reduce(Seq::max);
        if let Some(goal) = newest {
            self.wait(goal);
            self.pop_expired();
        }
        // Batches another thread popped just before us may still be running.
        self.wait_for_runners();
    }

    /// Teardown: the last handle is gone, so no reader is in a section and
    /// nobody can retire. Run everything still pending.
    pub(crate) fn teardown(&self) {
        let mut all: Vec<Batch> = Vec::new();
        {
            let mut q = self.lock();
            q.dead = true;
            all.extend(q.batches.drain(..).map(|t| t.batch));
            for slot in self.slots.iter() {
                // SAFETY: no handle to the domain exists, so no owner can be
                // touching its batch except through `release_participant`,
                // which holds this lock too.
                all.push(unsafe { (*slot.local.batch.get()).take() });
            }
        }
        let n: usize = all.iter().map(Batch::len).sum();
        self.counters.reclaimed.add(n as u64);
        // ORDERING: statistics.
        self.pending.store(0, Ordering::Relaxed);
        self.pending_bytes.store(0, Ordering::Relaxed);
        drop(all);
    }

    /// The calling thread exits (or gives up its explicit registration):
    /// queue its untagged batch and free its slot.
    pub(crate) fn release_participant(&self, slot: &Slot) {
        let batch = {
            let q = self.lock();
            if q.dead {
                // Teardown already ran our batch; the slot dies with the
                // domain.
                return;
            }
            // SAFETY: we are the owner, and hold the queue lock against
            // teardown.
            let batch = unsafe { (*slot.local.batch.get()).take() };
            slot.release();
            batch
        };
        if batch.len() > 0 {
            let tag = self.default_advance(true);
            self.enqueue(Tagged { tag, batch });
        }
    }

    pub(crate) fn participants(&self) -> u64 {
        self.slots.iter().filter(|s| s.in_use()).count() as u64
    }
}

/// `smr_poll_cpu`: the sequence slot `slot` observes, spinning until it
/// reaches `goal` when `wait`.
fn poll_slot(slot: &Slot, s_rd: Seq, goal: Seq, wait: bool) -> u32 {
    let mut spins = 0u32;
    loop {
        // ORDERING: Acquire pairs with the Release store of INVALID at
        // section exit: the reader's loads are done before we free.
        let c = slot.c_seq.load(Ordering::Acquire);
        if c == INVALID {
            return INVALID;
        }
        // The race of smr.h's smr_enter: a reader loaded wr_seq, was delayed,
        // and published it after a poll (that did not see it) moved rd_seq
        // past it. Its data loads come after that poll's fence, so it cannot
        // see anything older than rd_seq: treat it as rd_seq, which keeps
        // rd_seq from advancing until that section ends.
        let c = if Seq(c).lt(s_rd) { s_rd } else { Seq(c) };
        if goal.le(c) || !wait {
            return c.0;
        }
        backoff(&mut spins);
    }
}

/// Spin briefly, then yield: unlike a CPU in the kernel, the reader we wait
/// for may be descheduled, and spinning would keep it from running.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        percore_cpu::loom::spin_loop();
    } else if *spins < 1024 {
        percore_cpu::loom::yield_now();
    } else {
        percore_cpu::loom::sleep(Duration::from_micros(50));
    }
}
