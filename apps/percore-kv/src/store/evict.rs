//! Where segments come from and go: reservations from a head's open segment,
//! sealing, reuse after a grace period, cleaning (compaction or FIFO
//! eviction with a second chance) and the background sweep. The policy and
//! its reasons are in `engine.rs`'s essay.
//!
//! # A segment's life
//!
//! ```text
//! fresh ──> open (a head, or the cleaner's dest) ──seal──> sealed ──clean/sweep──> cleaned
//!              ^                                                                     |
//!              └──────────── reused once the goal taken at cleaning expired ─────────┘
//! ```
//!
//! Who touches what: a head's `Head` and its open segment's bump pointer
//! belong to the head's mutex; the sealed list and the free list to their
//! mutexes; a sealed segment's *items* are walked only by the holder of the
//! cleaner mutex (cleaning and sweeping), which is also the only one that
//! removes segments from the sealed list.

use std::sync::atomic::Ordering;

use super::engine::{lock, Dead, NoMemory, Resv, Store};
use super::segment::{Item, Loc, ACCESSED, FETCHED};

/// A sealed segment at most this live (numerator over 8) is compacted
/// instead of evicting the oldest one.
const COMPACT_EIGHTHS: usize = 4;
/// In eviction mode, at most this share of a segment (over 8) is copied
/// forward as second chances.
const SECOND_CHANCE_EIGHTHS: usize = 2;

/// How often a writer retries when every sealed segment is busy.
const BUSY_RETRIES: u32 = 1000;

/// What [`Store::clean_one`] did.
pub(super) enum Clean {
    /// A segment was cleaned.
    Done,
    /// Every sealed segment has a reservation in flight.
    Busy,
    /// No segment is sealed.
    Nothing,
}

impl Store {
    /// Hands out `size` bytes from the calling thread's head, getting the
    /// head a new segment (and cleaning one if need be) when it is full.
    ///
    /// Must be called outside an SMR section of the store: getting a
    /// segment may wait for a grace period.
    pub(super) fn reserve(&self, size: usize) -> Result<Resv, NoMemory> {
        debug_assert!(!self.smr.in_section(), "reserve inside a section could wait for itself");
        if size > self.arena.size {
            // Unreachable while callers check `Config::fits` (segments are at
            // least the item size limit); never loop on it.
            return Err(NoMemory);
        }
        let head = &self.heads[percore::cpu::thread_index() % self.heads.len()];
        let mut hd = lock(head);
        loop {
            if let Some(seg) = hd.seg {
                let flushed = self.flushed_gen(hd.gen);
                if flushed && hd.off == 0 {
                    // Nothing handed out yet: a new generation suffices.
                    self.open_gen(&mut hd, seg);
                    continue;
                }
                if !flushed && hd.off + size <= self.arena.size {
                    let off = hd.off;
                    hd.off += size;
                    let m = &self.arena.meta[seg as usize];
                    // ORDERING: the bump pointer and the reservation count
                    // reach the cleaner through the head and sealed-list
                    // mutexes (the segment is sealed after this, under the
                    // head mutex, and cleaned after it is sealed).
                    m.used.store(hd.off, Ordering::Relaxed);
                    // ORDERING: as above.
                    m.inflight.fetch_add(1, Ordering::Relaxed);
                    return Ok(Resv { loc: self.arena.loc(seg, off), len: size });
                }
                lock(&self.sealed).push_back(seg);
                hd.seg = None;
            }
            let seg = self.acquire(true)?;
            hd.seg = Some(seg);
            hd.off = 0;
            self.open_gen(&mut hd, seg);
        }
    }

    /// A segment to write into: a cleaned one whose grace period is over, a
    /// fresh one while the budget allows, a cleaned one after waiting for
    /// its grace period, or (with `may_clean`) one cleaned now.
    fn acquire(&self, may_clean: bool) -> Result<u32, NoMemory> {
        let want = self.table.wants();
        if want > 0 && may_clean {
            self.give_to_index(want);
        }
        let mut busy = 0;
        loop {
            {
                let mut free = lock(&self.free);
                if let Some(&(seg, goal)) = free.cleaned.front() {
                    if self.smr.poll(goal, false) {
                        free.cleaned.pop_front();
                        return Ok(self.reset(seg));
                    }
                }
                if (free.fresh < self.arena.count || !free.returned.is_empty())
                    && self.budget.try_reserve(self.arena.size)
                {
                    let seg = free.returned.pop().unwrap_or_else(|| {
                        free.fresh += 1;
                        free.fresh as u32 - 1
                    });
                    return Ok(self.reset(seg));
                }
            }
            let waiting = lock(&self.free).cleaned.pop_front();
            if let Some((seg, goal)) = waiting {
                if self.smr.poll(goal, true) {
                    return Ok(self.reset(seg));
                }
                // Inside a section the wait cannot finish; put it back.
                lock(&self.free).cleaned.push_front((seg, goal));
                return Err(NoMemory);
            }
            if !may_clean {
                return Err(NoMemory);
            }
            match self.clean_one() {
                Clean::Done => {}
                // Every sealed segment has a reservation in flight: those
                // end within a pass (no one blocks holding one), so wait.
                Clean::Busy if busy < BUSY_RETRIES => {
                    busy += 1;
                    std::thread::yield_now();
                }
                Clean::Busy | Clean::Nothing => return Err(NoMemory),
            }
        }
    }

    /// A grow of the index was refused for want of `want` bytes: moves
    /// cleaned segments' bytes (cleaning some if need be) to the index's
    /// reserve and their pages back to the system, until that much is there.
    /// A returned segment is handed out again only when the budget has room
    /// (for instance after the index's old arrays were freed).
    #[cold]
    fn give_to_index(&self, want: usize) {
        let mut given = 0;
        for _ in 0..want.div_ceil(self.arena.size) + 4 {
            if given >= want {
                break;
            }
            let next = lock(&self.free).cleaned.pop_front();
            let Some((seg, goal)) = next else {
                if matches!(self.clean_one(), Clean::Done) {
                    continue;
                }
                break;
            };
            if !self.smr.poll(goal, true) {
                lock(&self.free).cleaned.push_front((seg, goal));
                break;
            }
            self.arena.discard(seg);
            lock(&self.free).returned.push(seg);
            // The bytes stay charged: they move to the index's reserve, so
            // that no writer takes them back for a segment first.
            self.table.add_reserve(self.arena.size);
            given += self.arena.size;
        }
        self.table.clear_wants();
    }

    fn reset(&self, seg: u32) -> u32 {
        let m = &self.arena.meta[seg as usize];
        // ORDERING: the segment is ours alone now (it left the free list
        // under its mutex).
        debug_assert_eq!(m.live.load(Ordering::Relaxed), 0);
        // ORDERING: as above.
        m.used.store(0, Ordering::Relaxed);
        seg
    }

    /// Retires a segment that no slot names any more.
    fn retire(&self, seg: u32) {
        // ORDERING: see `reset`; every unlink of its items happened before
        // (under shard locks this thread took, or counted before them).
        debug_assert_eq!(self.arena.meta[seg as usize].live.load(Ordering::Relaxed), 0);
        let goal = self.smr.advance();
        lock(&self.free).cleaned.push_back((seg, goal));
    }

    /// Whether nobody is still writing into sealed segment `seg`.
    fn quiet(&self, seg: u32) -> bool {
        // ORDERING: Acquire pairs with the Release decrement in
        // `Store::finish`: every reservation's bytes and link are visible.
        self.arena.meta[seg as usize].inflight.load(Ordering::Acquire) == 0
    }

    /// The item at `loc` of a sealed, quiet segment.
    fn walk_item(&self, loc: Loc) -> Item<'_> {
        // SAFETY: invariant 3 of `engine.rs`: the segment is sealed and
        // quiet (checked by the caller, who holds the cleaner mutex, so it
        // cannot be freed meanwhile), so every byte up to its bump pointer
        // is a written item or filler.
        unsafe { self.arena.item(loc) }
    }

    /// Cleans one sealed segment (see the essay).
    pub(super) fn clean_one(&self) -> Clean {
        let mut cl = lock(&self.cleaner);
        let size = self.arena.size;
        let (victim, compact) = {
            let mut sealed = lock(&self.sealed);
            let mut oldest = None;
            let mut emptiest: Option<(usize, usize)> = None;
            for (i, &seg) in sealed.iter().enumerate() {
                if !self.quiet(seg) {
                    continue;
                }
                oldest.get_or_insert(i);
                // ORDERING: a heuristic; unlinks only lower it.
                let live = self.arena.meta[seg as usize].live.load(Ordering::Relaxed);
                if emptiest.is_none_or(|(_, l)| live < l) {
                    emptiest = Some((i, live));
                }
            }
            match (emptiest, oldest) {
                (Some((i, live)), _) if live * 8 <= size * COMPACT_EIGHTHS => (sealed.remove(i), true),
                (_, Some(i)) => (sealed.remove(i), false),
                _ if sealed.is_empty() => return Clean::Nothing,
                _ => return Clean::Busy,
            }
        };
        let Some(victim) = victim else { return Clean::Nothing };
        // ORDERING: as above.
        let live = self.arena.meta[victim as usize].live.load(Ordering::Relaxed);
        let budget = if compact { live } else { size * SECOND_CHANCE_EIGHTHS / 8 };
        let room = if cl.dest.is_some() { size - cl.off } else { 0 };
        let mut budget = budget.min(room);
        // ORDERING: final since the segment was sealed (see `reserve`).
        let used = self.arena.meta[victim as usize].used.load(Ordering::Relaxed);
        let mut off = 0;
        while off < used {
            let loc = self.arena.loc(victim, off);
            let it = self.walk_item(loc);
            off += it.size();
            if !it.is_filler() {
                self.clean_item(&mut cl, loc, &it, compact, &mut budget);
            }
        }
        // A destination less than half empty is sealed and the victim takes
        // its place once no reader can see its old items: the cleaner never
        // competes with writers for free segments (it started with one of
        // its own, see `Store::new`), and every compaction finds room for a
        // segment that is at most half live.
        if size - cl.off < size / 2 {
            let goal = self.smr.advance();
            if self.smr.poll(goal, true) {
                if let Some(d) = cl.dest.replace(self.reset(victim)) {
                    lock(&self.sealed).push_back(d);
                }
                cl.off = 0;
                return Clean::Done;
            }
        }
        self.retire(victim);
        Clean::Done
    }

    /// Copies forward or unlinks one item of a segment being cleaned.
    fn clean_item(&self, cl: &mut super::engine::Cleaner, loc: Loc, it: &Item<'_>, compact: bool, budget: &mut usize) {
        let h = self.hash(it.key());
        let mut sh = self.table.lock(h);
        let Some((pos, _)) = sh.find(h, |l| l == loc) else { return };
        let fetched = it.recency().1;
        match self.dead(it, loc, self.clock().now()) {
            Some(why) => {
                if why == Dead::Expired {
                    self.stats.reclaimed.inc();
                    if fetched == 0 {
                        self.stats.expired_unfetched.inc();
                    }
                }
                self.unlink(&mut sh, h, pos, loc);
            }
            // NOTE: the copy stores the item's CAS unique (its old location
            // derived it), so it takes `kept_size`, which is also what the
            // segments' `live` counts for it.
            None if (compact || fetched == ACCESSED) && it.kept_size() <= *budget => {
                let dest = cl.dest.expect("a copy budget implies a destination");
                let mut hdr = it.snapshot();
                hdr.cas = Some(self.arena.cas(loc, it));
                if !compact && hdr.fetched == ACCESSED {
                    hdr.fetched = FETCHED;
                }
                let new = self.arena.loc(dest, cl.off);
                // SAFETY: `new` is the cleaner's own, unpublished space in its
                // destination segment (the budget is at most its room).
                unsafe { self.arena.write(new, &hdr, it.key(), &[it.value()]) };
                let n = it.kept_size();
                cl.off += n;
                *budget -= n;
                let dm = &self.arena.meta[dest as usize];
                // ORDERING: the destination reaches other cleaners through
                // the cleaner and sealed-list mutexes.
                dm.used.store(cl.off, Ordering::Relaxed);
                // ORDERING: see `Store::unlink`.
                dm.live.fetch_add(n, Ordering::Relaxed);
                // ORDERING: as above.
                self.arena.meta[self.arena.seg_of(loc) as usize].live.fetch_sub(n, Ordering::Relaxed);
                sh.replace(pos, new);
            }
            None => {
                self.stats.evictions.inc();
                if fetched == 0 {
                    self.stats.evicted_unfetched.inc();
                }
                self.unlink(&mut sh, h, pos, loc);
            }
        }
    }

    /// Background expiry: walks sealed segments from where the last sweep
    /// stopped, unlinks items that expired or were flushed, and frees
    /// segments with nothing live left. Stops after the segment in which
    /// `budget` items have been examined (whole segments). Also frees the
    /// table arrays whose grace period is over. Returns how many items it
    /// unlinked.
    ///
    /// Readers are never blocked: it takes shard locks one item at a time.
    /// Writers that need a segment wait for it while it holds the cleaner.
    ///
    /// ```
    /// use percore_kv::store::{Config, Mode, Store, StoreReq};
    ///
    /// let cfg = Config { memory_limit: 4 << 20, max_item_size: 16 << 10, writers: 1 };
    /// let store = Store::new(cfg).unwrap();
    /// for i in 0..2000u32 {
    ///     store.store(&StoreReq::new(Mode::Set, &i.to_le_bytes(), &[0; 500], 0, 10));
    /// }
    /// store.clock().advance(11);
    /// let freed = store.sweep(usize::MAX);
    /// assert!(freed > 0); // items in segments still open are left for later
    /// assert_eq!(store.stats().reclaimed, freed as u64);
    /// ```
    pub fn sweep(&self, budget: usize) -> usize {
        self.table.reclaim();
        let mut cl = lock(&self.cleaner);
        let segs: Vec<u32> = lock(&self.sealed).iter().copied().collect();
        let (mut examined, mut freed) = (0, 0);
        let mut done = 0;
        while done < segs.len() && examined < budget.max(1) {
            let seg = segs[(cl.cursor + done) % segs.len()];
            done += 1;
            if !self.quiet(seg) {
                continue;
            }
            // ORDERING: see `clean_one`.
            let used = self.arena.meta[seg as usize].used.load(Ordering::Relaxed);
            let mut off = 0;
            while off < used {
                let loc = self.arena.loc(seg, off);
                let it = self.walk_item(loc);
                off += it.size();
                if it.is_filler() {
                    continue;
                }
                examined += 1;
                let Some(why) = self.dead(&it, loc, self.clock().now()) else { continue };
                let h = self.hash(it.key());
                let mut sh = self.table.lock(h);
                let Some((pos, _)) = sh.find(h, |l| l == loc) else { continue };
                if why == Dead::Expired {
                    self.stats.reclaimed.inc();
                    // ORDERING: a statistic.
                    if it.recency().1 == 0 {
                        self.stats.expired_unfetched.inc();
                    }
                }
                self.unlink(&mut sh, h, pos, loc);
                freed += 1;
            }
            // ORDERING: under the cleaner mutex no copy can move items into
            // a sealed segment; unlinks only lower the count.
            if self.arena.meta[seg as usize].live.load(Ordering::Relaxed) == 0 {
                let mut sealed = lock(&self.sealed);
                if let Some(i) = sealed.iter().position(|&s| s == seg) {
                    sealed.remove(i);
                    drop(sealed);
                    self.retire(seg);
                }
            }
        }
        cl.cursor = (cl.cursor + done) % segs.len().max(1);
        freed
    }
}
