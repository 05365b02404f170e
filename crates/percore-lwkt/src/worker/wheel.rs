//! # A hierarchical timing wheel: O(1) insert and remove, never early
//!
//! The timer set of one worker: each lwkt worker keeps one for its
//! uthreads' timeouts (`timer.rs`), and percore-evq keeps one per worker
//! for its alarms (`alarm.rs` there, behind a mutex). Almost every alarm is cancelled long before it is due (a timed
//! waiter woken by a real event), so insert and remove are the hot path and
//! firing is the rare one; an ordered map pays `O(log n)` and node churn on
//! both. This is the hashed hierarchical wheel of Varghese & Lauck
//! ("Hashed and Hierarchical Timing Wheels", SOSP 1987, scheme 7), laid out
//! as tokio's time driver lays out its own (`tokio/src/runtime/time/wheel/`:
//! six levels of 64 slots, an occupancy word per level, the level chosen by
//! the highest bit in which a deadline differs from the wheel's time).
//!
//! ## Time
//!
//! Time is counted in *ticks* of `2^TICK_SHIFT` ns (about 262 µs) since the
//! owner's epoch. A deadline of `t` ns becomes the tick `ceil(t / tick)`, so
//! the start of that tick is at or after `t`: firing an entry once the
//! clock's tick (`floor(now / tick)`) reaches its tick is never early, and at
//! most one tick late (plus however late the worker's pass comes).
//!
//! ## Layout
//!
//! ```text
//!  level 5 | 64 slots of 2^30 ticks |  a slot: doubly-linked list of
//!  level 4 | 64 slots of 2^24 ticks |  entries (indices into the slab),
//!   ...                                 `occupied[level]` bit `slot` set
//!  level 0 | 64 slots of 1 tick     |  iff the list is non-empty
//!  due     | one list: taken from a slot, not yet handed out by `pop_due`
//!
//!  slab: Vec<Entry> = [ entry | entry | free -> free -> ... ]
//!        an entry: deadline tick, generation, prev, next, its list, value
//! ```
//!
//! An entry due at tick `when` lives at level `L`, the 6-bit group of the
//! highest bit in which `when` and `elapsed` (the wheel's time) differ, in
//! slot `(when >> 6L) & 63`: level 0 holds the ticks of `elapsed`'s current
//! 64-tick block, level 1 the rest of its 4096-tick block, and so on. A
//! deadline 2^36 ticks (about 208 days) or more away is parked in the top
//! level's slot farthest from `elapsed` (whose start is still before it) and
//! placed again when that slot comes up.
//!
//! A slot's *start* is the first tick it covers (computed from `elapsed`, the
//! level and the slot, one level's span later if the slot lies behind
//! `elapsed`'s position, which only the parked far entries do). Invariants:
//!
//! 1. Every entry's slot starts at or before the entry's tick, and at or
//!    after `elapsed` (so the slot is found again where it was put).
//! 2. `elapsed` only grows, and never past the start of a non-empty slot:
//!    `pop_due` moves it to the earliest start, takes that slot, hands its
//!    entries due by then to the due list and places the others again (at
//!    lower levels: a *cascade*); only when no slot starts at or before
//!    `now` does it move `elapsed` up to `now`.
//! 3. `next` is the earliest slot start (or `elapsed` while the due list is
//!    non-empty, `u64::MAX` when empty): never later than the earliest
//!    entry's tick, so a worker that sleeps until it misses nothing. It may
//!    be earlier (a slot of a higher level starts before its entries are
//!    due): the worker then wakes to cascade, and fires nothing early.
//!
//! Finding the earliest slot start is one rotate and trailing-zeros count
//! per level; insert and remove are a few list-link writes. A [`Key`] names
//! a slab index and that entry's generation, bumped when it is freed, so a
//! stale key (its entry already handed out by `pop_due`, maybe reused)
//! removes nothing. The slab never shrinks: a burst of timers leaves its
//! memory, but the map's allocation churn on every empty/non-empty switch
//! is gone.

/// log2 of a tick in nanoseconds: 2^18 ns, about 262 µs.
///
/// NOTE: finer than tokio's 1 ms: rounding a deadline up to a tick adds to
/// the worker's millisecond sleep (`epoll_wait`), and a finer tick costs
/// insert and remove nothing (at most a third of a level more cascading).
pub const TICK_SHIFT: u32 = 18;
/// log2 of the slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels.
const LEVELS: usize = 6;
/// Ticks covered by the whole wheel: farther deadlines are parked.
const SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);
/// The list index of the due list (after the wheel's slots).
const DUE: u16 = (LEVELS * SLOTS) as u16;
/// The list index of a free slab entry.
const FREE: u16 = u16::MAX;
/// No entry.
const NIL: u32 = u32::MAX;

/// The tick containing `nanos` (the clock's tick).
#[inline]
pub fn tick_floor(nanos: u64) -> u64 {
    nanos >> TICK_SHIFT
}

/// The first tick starting at or after `nanos` (a deadline's tick).
#[inline]
pub fn tick_ceil(nanos: u64) -> u64 {
    (nanos >> TICK_SHIFT) + u64::from(nanos & ((1 << TICK_SHIFT) - 1) != 0)
}

/// The start of `tick` in nanoseconds (saturating).
#[inline]
pub fn tick_start(tick: u64) -> u64 {
    tick.saturating_mul(1 << TICK_SHIFT)
}

/// Names an entry for [`Wheel::remove`]; stale once the entry left the wheel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    idx: u32,
    gen: u64,
}

struct Entry<T> {
    /// Deadline tick.
    when: u64,
    /// Bumped when the entry is freed (stale keys).
    gen: u64,
    prev: u32,
    /// Next in its list, or in the free list.
    next: u32,
    /// `level * SLOTS + slot`, [`DUE`] or [`FREE`].
    list: u16,
    value: Option<T>,
}

/// A hierarchical timing wheel of values `T`; see the module docs. Not
/// thread-safe by itself: its owner keeps it on one thread (an lwkt worker)
/// or behind a lock (percore-evq's alarms).
///
/// Times are ticks of `2^TICK_SHIFT` ns since an epoch the owner picks:
/// [`tick_ceil`] a deadline, [`tick_floor`] the clock.
///
/// ```
/// use percore_lwkt::wheel::{tick_ceil, tick_floor, tick_start, Wheel};
///
/// let mut w = Wheel::new();
/// let (_, earlier) = w.insert(tick_ceil(1_000_000), "1 ms");
/// assert!(earlier);
/// let (late, _) = w.insert(tick_ceil(5_000_000), "5 ms");
/// // Never early: at 0.9 ms nothing is due; from the deadline's tick on, it is.
/// assert_eq!(w.pop_due(tick_floor(900_000)), None);
/// let at = tick_start(w.next_deadline().unwrap());
/// assert!(at >= 1_000_000 && at < 1_000_000 + (1 << percore_lwkt::wheel::TICK_SHIFT));
/// assert_eq!(w.pop_due(tick_floor(at)), Some("1 ms"));
/// assert_eq!(w.remove(late).map(|(v, _)| v), Some("5 ms")); // cancelled
/// assert!(w.next_deadline().is_none());
/// ```
pub struct Wheel<T> {
    /// Entries and free entries; indices are `u32` (NOTE: 2^32 entries would
    /// be about 200 GiB; the allocation fails long before).
    slab: Vec<Entry<T>>,
    /// Head of the free list through `Entry::next`.
    free: u32,
    /// Heads of the slot lists, then of the due list.
    heads: [u32; LEVELS * SLOTS + 1],
    /// Bit `s` of `occupied[l]`: slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS],
    /// The wheel's time in ticks (invariant 2).
    elapsed: u64,
    /// The earliest slot start (invariant 3).
    next: u64,
    len: usize,
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Wheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        Wheel {
            slab: Vec::new(),
            free: NIL,
            heads: [NIL; LEVELS * SLOTS + 1],
            occupied: [0; LEVELS],
            elapsed: 0,
            next: u64::MAX,
            len: 0,
        }
    }

    /// Entries in the wheel (due ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest tick at which [`pop_due_keyed`](Wheel::pop_due_keyed) may hand out
    /// something, never later than the earliest entry's deadline tick;
    /// `None` when empty.
    #[inline]
    pub fn next_deadline(&self) -> Option<u64> {
        (self.next != u64::MAX).then_some(self.next)
    }

    /// Where an entry due at `when` goes now: `(level, slot)`.
    #[inline]
    fn place(&self, when: u64) -> (usize, usize) {
        let when = when.max(self.elapsed);
        let diff = (self.elapsed ^ when) | (SLOTS as u64 - 1);
        if diff >= SPAN {
            // Parked: the top level's slot farthest from `elapsed`; its start
            // (`elapsed`'s 2^36 block + 63 slots, or the next block's first
            // slot when `elapsed` is in slot 63) is before `when`, which lies
            // in a later 2^36 block.
            let pos = (self.elapsed >> (SLOT_BITS as usize * (LEVELS - 1))) as usize & (SLOTS - 1);
            return (LEVELS - 1, if pos == SLOTS - 1 { 0 } else { SLOTS - 1 });
        }
        let level = (63 - diff.leading_zeros()) as usize / SLOT_BITS as usize;
        (level, (when >> (SLOT_BITS as usize * level)) as usize & (SLOTS - 1))
    }

    /// The first tick of `slot` of `level`, as seen from `elapsed`.
    #[inline]
    fn slot_start(&self, level: usize, slot: usize) -> u64 {
        let shift = SLOT_BITS as usize * level;
        let level_span = 1u64 << (shift + SLOT_BITS as usize);
        let pos = (self.elapsed >> shift) as usize & (SLOTS - 1);
        let start = (self.elapsed & !(level_span - 1)) + ((slot as u64) << shift);
        // NOTE: only a parked far entry's slot lies behind `pos` (invariant
        // 1); it starts in the next block of this level.
        if slot < pos {
            start + level_span
        } else {
            start
        }
    }

    /// The earliest non-empty slot: `(start, level, slot)`.
    fn earliest_slot(&self) -> Option<(u64, usize, usize)> {
        let mut best: Option<(u64, usize, usize)> = None;
        for (level, &occ) in self.occupied.iter().enumerate() {
            if occ == 0 {
                continue;
            }
            let pos = (self.elapsed >> (SLOT_BITS as usize * level)) as u32 & (SLOTS as u32 - 1);
            let slot = (pos + occ.rotate_right(pos).trailing_zeros()) as usize & (SLOTS - 1);
            let start = self.slot_start(level, slot);
            if best.is_none_or(|b| start < b.0) {
                best = Some((start, level, slot));
            }
        }
        best
    }

    fn recompute_next(&mut self) {
        self.next =
            if self.heads[DUE as usize] != NIL { self.elapsed } else { self.earliest_slot().map_or(u64::MAX, |b| b.0) };
    }

    /// Link entry `i` at the head of list `list`.
    #[inline]
    fn link(&mut self, i: u32, list: u16) {
        let head = self.heads[list as usize];
        {
            let e = &mut self.slab[i as usize];
            e.list = list;
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.slab[head as usize].prev = i;
        }
        self.heads[list as usize] = i;
        if list != DUE {
            self.occupied[list as usize / SLOTS] |= 1 << (list as usize % SLOTS);
        }
    }

    /// Unlink entry `i` from its list; returns whether the list is now empty.
    #[inline]
    fn unlink(&mut self, i: u32) -> bool {
        let (prev, next, list) = {
            let e = &self.slab[i as usize];
            (e.prev, e.next, e.list)
        };
        if prev == NIL {
            self.heads[list as usize] = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next != NIL {
            self.slab[next as usize].prev = prev;
        }
        let empty = self.heads[list as usize] == NIL;
        if empty && list != DUE {
            self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
        }
        empty
    }

    /// Put an entry due at `when` in its slot (or the due list if due by
    /// `elapsed`); returns the start of the list's next firing.
    #[inline]
    fn place_entry(&mut self, i: u32, when: u64) -> u64 {
        let (level, slot) = self.place(when);
        self.link(i, (level * SLOTS + slot) as u16);
        self.slot_start(level, slot)
    }

    /// Add `value`, due at tick `when` (a past tick: due at the next
    /// [`pop_due_keyed`](Wheel::pop_due_keyed)). Returns its key and whether
    /// [`next_deadline`](Wheel::next_deadline) moved earlier.
    #[inline]
    pub fn insert(&mut self, when: u64, value: T) -> (Key, bool) {
        let i = if self.free != NIL {
            let i = self.free;
            let e = &mut self.slab[i as usize];
            self.free = e.next;
            e.when = when;
            e.value = Some(value);
            i
        } else {
            debug_assert!(self.slab.len() < NIL as usize);
            self.slab.push(Entry { when, gen: 0, prev: NIL, next: NIL, list: FREE, value: Some(value) });
            (self.slab.len() - 1) as u32
        };
        self.len += 1;
        let start = self.place_entry(i, when);
        let earlier = start < self.next;
        if earlier {
            self.next = start;
        }
        (Key { idx: i, gen: self.slab[i as usize].gen }, earlier)
    }

    /// Free entry `i` (unlinked) and return its value.
    #[inline]
    fn release(&mut self, i: u32) -> Option<T> {
        let free = self.free;
        let e = &mut self.slab[i as usize];
        e.gen = e.gen.wrapping_add(1);
        e.list = FREE;
        e.next = free;
        self.free = i;
        self.len -= 1;
        e.value.take()
    }

    /// Take out the entry of `key`: `None` if it already left (stale key).
    /// Returns the value and whether `next_deadline` changed.
    #[inline]
    pub fn remove(&mut self, key: Key) -> Option<(T, bool)> {
        let e = self.slab.get(key.idx as usize)?;
        if e.gen != key.gen || e.list == FREE {
            return None;
        }
        let list = e.list;
        let emptied = self.unlink(key.idx);
        let old = self.next;
        if emptied {
            // Only an emptied list can move the earliest start.
            if list == DUE || self.slot_start(list as usize / SLOTS, list as usize % SLOTS) == old {
                self.recompute_next();
            }
        }
        let value = self.release(key.idx)?;
        Some((value, self.next != old))
    }

    /// [`pop_due_keyed`](Wheel::pop_due_keyed) without the key.
    #[inline]
    pub fn pop_due(&mut self, now: u64) -> Option<T> {
        self.pop_due_keyed(now).map(|(_, v)| v)
    }

    /// Hand out one entry due by tick `now` (its deadline tick `<= now`), or
    /// `None` when none is left, in which case the wheel's time moves to
    /// `now`. Cascades higher-level slots on the way. With the value comes
    /// the key the entry had (stale from now on): the firer compares it with
    /// the key the alarm's record holds, which tells the live entry of an
    /// alarm re-armed in place from a stale one (percore-evq's
    /// `alarm/state.rs`).
    pub fn pop_due_keyed(&mut self, now: u64) -> Option<(Key, T)> {
        loop {
            let head = self.heads[DUE as usize];
            if head != NIL {
                if self.unlink(head) {
                    self.recompute_next();
                }
                let key = Key { idx: head, gen: self.slab[head as usize].gen };
                return self.release(head).map(|v| (key, v));
            }
            match self.earliest_slot() {
                Some((start, level, slot)) if start <= now => {
                    // Invariant 2: `start >= elapsed`.
                    self.elapsed = start;
                    let list = level * SLOTS + slot;
                    let mut i = std::mem::replace(&mut self.heads[list], NIL);
                    self.occupied[level] &= !(1 << slot);
                    while i != NIL {
                        let (next, when) = {
                            let e = &self.slab[i as usize];
                            (e.next, e.when)
                        };
                        if when <= start {
                            self.link(i, DUE);
                        } else {
                            self.place_entry(i, when);
                        }
                        i = next;
                    }
                    self.recompute_next();
                }
                _ => {
                    self.elapsed = self.elapsed.max(now);
                    self.recompute_next();
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ticks_round_deadlines_up() {
        assert_eq!(tick_ceil(0), 0);
        assert_eq!(tick_ceil(1), 1);
        assert_eq!(tick_ceil(1 << TICK_SHIFT), 1);
        assert_eq!(tick_ceil((1 << TICK_SHIFT) + 1), 2);
        assert_eq!(tick_floor((2 << TICK_SHIFT) - 1), 1);
        assert_eq!(tick_ceil(u64::MAX), (u64::MAX >> TICK_SHIFT) + 1);
        assert_eq!(tick_start(u64::MAX), u64::MAX);
        for t in [1u64, 999_999, 1 << 20, 123_456_789_012] {
            assert!(tick_start(tick_ceil(t)) >= t);
            assert!(tick_start(tick_ceil(t)) - t < 1 << TICK_SHIFT);
        }
    }

    #[test]
    fn insert_remove_next_deadline() {
        let mut w = Wheel::new();
        assert_eq!(w.next_deadline(), None);
        let (a, earlier) = w.insert(10, 'a');
        assert!(earlier);
        assert_eq!(w.next_deadline(), Some(10));
        let (b, earlier) = w.insert(5, 'b');
        assert!(earlier);
        assert_eq!(w.next_deadline(), Some(5));
        let (c, earlier) = w.insert(7, 'c');
        assert!(!earlier);
        assert_eq!(w.remove(b), Some(('b', true)));
        assert_eq!(w.next_deadline(), Some(7));
        assert_eq!(w.remove(b), None, "stale key");
        assert_eq!(w.remove(a), Some(('a', false)));
        assert_eq!(w.remove(c), Some(('c', true)));
        assert_eq!(w.next_deadline(), None);
        assert_eq!(w.len(), 0);
        // The freed entries are reused; old keys stay stale.
        let (d, _) = w.insert(3, 'd');
        assert!([a, b, c].iter().all(|k| w.remove(*k).is_none()));
        assert_eq!(w.remove(d), Some(('d', true)));
    }

    #[test]
    fn pops_in_tick_order_never_early() {
        let mut w = Wheel::new();
        for (t, v) in [(3u64, 'c'), (1, 'a'), (2, 'b'), (2, 'B')] {
            w.insert(t, v);
        }
        assert_eq!(w.pop_due(0), None);
        assert_eq!(w.pop_due(1), Some('a'));
        assert_eq!(w.pop_due(1), None);
        let mut two = [w.pop_due(2), w.pop_due(2)];
        two.sort();
        assert_eq!(two, [Some('B'), Some('b')]);
        assert_eq!(w.pop_due(2), None);
        assert_eq!(w.next_deadline(), Some(3));
        assert_eq!(w.pop_due(100), Some('c'));
        assert_eq!(w.pop_due(100), None);
        // A deadline already past is due at once.
        w.insert(50, 'p');
        assert_eq!(w.next_deadline(), Some(100));
        assert_eq!(w.pop_due(100), Some('p'));
    }

    #[test]
    fn cascades_across_levels() {
        let mut w = Wheel::new();
        let whens = [63u64, 64, 65, 4095, 4096, 4097, 64 * 64 * 64 + 7, (1 << 30) + 3, (1 << 35) + 12345];
        for &t in &whens {
            w.insert(t, t);
        }
        for &t in &whens {
            // The next deadline is never after the entry, may be before it
            // (a higher level's slot to cascade), and nothing fires early.
            let next = w.next_deadline().unwrap();
            assert!(next <= t, "next {next} after deadline {t}");
            assert_eq!(w.pop_due(t - 1), None, "{t} fired early");
            // Cascaded down to its own tick.
            assert_eq!(w.next_deadline(), Some(t));
            assert_eq!(w.pop_due(t), Some(t));
            assert_eq!(w.pop_due(t), None);
        }
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn far_future_beyond_the_top_level() {
        let mut w = Wheel::new();
        let far = [SPAN, SPAN + 1, 3 * SPAN + 17, 100 * SPAN, u64::MAX >> TICK_SHIFT];
        for &t in &far {
            w.insert(t, t);
        }
        w.insert(SPAN - 1, SPAN - 1);
        let mut fired = Vec::new();
        let mut now = 0;
        let mut wakes = 0;
        while let Some(next) = w.next_deadline() {
            assert!(next >= now || w.heads[DUE as usize] != NIL);
            assert!(far.iter().chain([&(SPAN - 1)]).filter(|t| !fired.contains(*t)).all(|&t| next <= t));
            now = next.max(now);
            while let Some(t) = w.pop_due(now) {
                assert!(t <= now, "{t} fired early at {now}");
                fired.push(t);
            }
            wakes += 1;
            assert!(wakes < 10_000, "no progress");
        }
        let mut want = far.to_vec();
        want.push(SPAN - 1);
        want.sort();
        assert_eq!(fired, want);
    }

    #[test]
    fn matches_a_sorted_model() {
        // Random inserts, removes and clock steps against a BTreeMap.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut w = Wheel::new();
        let mut model: BTreeMap<(u64, u32), Key> = BTreeMap::new();
        let mut now = 0u64;
        let mut id = 0u32;
        for round in 0..20_000 {
            match rand() % 8 {
                0..=3 => {
                    let span = [4u64, 64, 5000, 300_000, 1 << 25, 1 << 37][(rand() % 6) as usize];
                    let when = (now + rand() % span).saturating_sub(2);
                    id += 1;
                    let (k, _) = w.insert(when, (when, id));
                    model.insert((when, id), k);
                }
                4 | 5 if !model.is_empty() => {
                    let nth = (rand() as usize) % model.len();
                    let (&mk, &k) = model.iter().nth(nth).unwrap();
                    assert_eq!(w.remove(k).map(|v| v.0), Some(mk));
                    assert!(w.remove(k).is_none());
                    model.remove(&mk);
                }
                _ => {
                    let step = [1u64, 10, 100, 70_000, 1 << 31][(rand() % 5) as usize];
                    now += rand() % step;
                    while let Some((when, id)) = w.pop_due(now) {
                        assert!(when <= now, "round {round}: {when} fired early at {now}");
                        assert!(model.remove(&(when, id)).is_some());
                    }
                    // Everything due is out.
                    assert!(model.keys().next().is_none_or(|k| k.0 > now), "round {round}: late");
                }
            }
            assert_eq!(w.len(), model.len());
            match (w.next_deadline(), model.keys().next()) {
                (None, None) => {}
                (Some(n), Some(k)) => assert!(n <= k.0.max(now), "round {round}: next {n} after {}", k.0),
                (n, k) => panic!("round {round}: {n:?} vs {k:?}"),
            }
        }
    }
}
