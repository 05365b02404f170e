//! The operations of [`Store`](super::Store): each one a loop of passes
//! under the key's shard lock inside an SMR section, with reservations made
//! between passes (see `engine.rs` for the design and its invariants). The
//! plain `get` hit takes no lock: `Store::get`'s fast path.

use super::engine::{Dead, NoMemory, Resv, Store};
use super::segment::{opt_for, Item, Loc, NewItem, ACCESSED};
use super::sync::Guard;
use super::table::{Locked, Pos};
use super::{
    counter_bytes, parse_counter, ArithOutcome, ArithReq, Clock, DeleteOutcome, DeleteReq, GetReq, Hit, HitCas, Mode,
    StoreOutcome, StoreReq, ITEM_UPDATE_INTERVAL,
};

/// What one pass under the shard lock decided.
enum Step<R> {
    /// The operation is over.
    Done(R),
    /// It needs a reservation of this many bytes; run the pass again.
    Need(usize),
}

/// One pass of an operation: inside an SMR section, with the key's shard
/// locked.
struct Pass<'s, 'r> {
    st: &'s Store,
    sh: Locked<'s>,
    h: u64,
    key: &'s [u8],
    now: u32,
    resv: &'r mut Option<Resv>,
}

impl<'s> Pass<'s, '_> {
    #[inline]
    fn item(&self, loc: Loc) -> Item<'s> {
        // SAFETY: `loc` comes from the table under the shard lock, inside the
        // pass's SMR section (invariants 1 and 2).
        unsafe { self.st.arena.item(loc) }
    }

    /// memcached's `do_item_get` liveness check: the live item of the key,
    /// after unlinking (and counting) an expired or flushed one.
    fn live(&mut self) -> Option<(Pos, Loc)> {
        let st = self.st;
        let key = self.key;
        let (pos, loc) = self.sh.find(self.h, |l| {
            // SAFETY: as in `item`.
            unsafe { st.arena.item(l) }.key() == key
        })?;
        let it = self.item(loc);
        match st.dead(&it, loc, self.now) {
            None => Some((pos, loc)),
            Some(why) => {
                if why == Dead::Flushed {
                    st.stats.get_flushed.inc();
                } else {
                    st.stats.get_expired.inc();
                    // ORDERING: a statistic.
                    if it.recency().1 == 0 {
                        st.stats.expired_unfetched.inc();
                    }
                    st.stats.reclaimed.inc();
                }
                st.unlink(&mut self.sh, self.h, pos, loc);
                None
            }
        }
    }

    /// The CAS unique of the item at `loc` (found under the lock).
    #[inline]
    fn cas(&self, loc: Loc) -> u64 {
        self.st.arena.cas(loc, &self.item(loc))
    }

    /// Writes a new item of this key into the reservation (if it has
    /// exactly the size needed), its CAS unique derived from where it lies
    /// (a head's segment: see `segment.rs`), and links it in place of
    /// `old`. `Err(size)`: reserve `size` bytes and run the pass again.
    fn publish(
        &mut self,
        old: Option<(Pos, Loc)>,
        mut hdr: NewItem,
        parts: &[&[u8]],
        total: bool,
    ) -> Result<u64, usize> {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        hdr.cas = None;
        let size = self.st.arena.item_size(self.key.len(), vlen, hdr.opt());
        let r = match self.resv.take() {
            Some(r) if r.len == size => r,
            other => {
                *self.resv = other;
                return Err(size);
            }
        };
        // SAFETY: `r` is this operation's reservation of exactly `size` bytes.
        unsafe { self.st.arena.write(r.loc, &hdr, self.key, parts) };
        // SAFETY: written just above, still ours; the segment is not reused
        // while the reservation is in flight.
        let cas = self.st.arena.cas(r.loc, &unsafe { self.st.arena.item(r.loc) });
        self.st.link(&mut self.sh, self.h, old, r.loc);
        self.st.finish(r);
        if total {
            self.st.stats.total_items.inc();
        }
        Ok(cas)
    }
}

/// A hit's recency update, from the hints `(atime, fetched)` it loaded:
/// `fetched` becomes [`ACCESSED`] and the access time moves to `now` if it
/// is older than [`ITEM_UPDATE_INTERVAL`]; one plain store of the hint word,
/// and only when one of them changes.
#[inline]
fn bump(it: &Item<'_>, (atime, fetched): (u32, u8), now: u32) {
    let old = atime < now.saturating_sub(ITEM_UPDATE_INTERVAL);
    if old || fetched != ACCESSED {
        it.set_recency(if old { now } else { atime }, ACCESSED);
    }
}

impl Store {
    /// Runs `pass` under `key`'s shard lock until it is done, reserving
    /// what it asks for in between (outside the section: reserving may wait
    /// for a grace period). `pre`: reserve this much before the first pass.
    fn run<R>(
        &self,
        key: &[u8],
        h: u64,
        pre: Option<usize>,
        mut pass: impl FnMut(&mut Pass<'_, '_>) -> Step<R>,
    ) -> Result<R, NoMemory> {
        let mut resv = match pre {
            Some(n) => Some(self.reserve(n)?),
            None => None,
        };
        loop {
            let step = {
                let _section: Guard<'_> = self.smr.enter();
                let mut p = Pass { st: self, sh: self.table.lock(h), h, key, now: self.clock.now(), resv: &mut resv };
                pass(&mut p)
            };
            if let Some(r) = resv.take() {
                self.abandon(r);
            }
            match step {
                Step::Done(r) => return Ok(r),
                Step::Need(n) => resv = Some(self.reserve(n)?),
            }
        }
    }

    /// Looks `key` up; on a hit calls `f` with the item and returns its
    /// result, on a miss returns `None` (or, with `req.vivify`, creates a
    /// stub and reports it as a hit that won its token).
    ///
    /// `f` runs inside an SMR section (and, for touch, recache, stale items
    /// and vivify, under the shard lock): it must copy what it needs and
    /// return, without blocking or calling the store.
    #[inline]
    pub fn get<R>(&self, key: &[u8], req: &GetReq, f: impl FnOnce(&Hit<'_>) -> R) -> Option<R> {
        let now = self.clock.now();
        let h = self.hash(key);
        if req.touch.is_none() && req.recache.is_none() {
            let _section = self.smr.enter();
            let found = self.table.find(&_section, h, |loc| {
                // SAFETY: `loc` was loaded with Acquire from the table inside
                // this section (invariants 1 and 2).
                unsafe { self.arena.item(loc) }.key() == key
            });
            match found {
                Some(loc) => {
                    // SAFETY: as above.
                    let it = unsafe { self.arena.item(loc) };
                    if !it.stale() && self.dead(&it, loc, now).is_none() {
                        return Some(f(&self.hit_fast(key, loc, &it, req, now)));
                    }
                }
                None if req.vivify.is_none() => return None,
                None => {}
            }
        }
        self.get_slow(key, h, req, f)
    }

    /// The hit of a plain get: loads, and the two rate-limited stores.
    #[inline]
    fn hit_fast<'a>(&'a self, key: &'a [u8], loc: Loc, it: &Item<'a>, req: &GetReq, now: u32) -> Hit<'a> {
        // NOTE: recency hints and a token flag written under the shard
        // lock, all Relaxed loads (see `segment.rs`).
        let (atime, fetched) = it.recency();
        let exp = it.exp();
        let token = it.token();
        if !req.no_bump {
            bump(it, (atime, fetched), now);
        }
        Hit {
            key,
            value: it.value(),
            flags: it.flags(),
            // NOTE: derived only if the caller asks (`Hit::cas`).
            cas: HitCas::At { arena: &self.arena, loc, item: *it },
            ttl: Clock::ttl(exp, now),
            last_access: now.saturating_sub(atime),
            fetched: fetched != 0,
            stale: false,
            win: false,
            token_taken: token,
        }
    }

    #[cold]
    fn get_slow<R>(&self, key: &[u8], h: u64, req: &GetReq, f: impl FnOnce(&Hit<'_>) -> R) -> Option<R> {
        let mut f = Some(f);
        let out = self.run(key, h, None, |p| {
            let now = p.now;
            match p.live() {
                Some((_, loc)) => {
                    let it = p.item(loc);
                    // NOTE: under the shard lock, which orders every writer
                    // of `exp` and the token; the hints as in `hit_fast`.
                    let (atime, fetched) = it.recency();
                    if let Some(t) = req.touch {
                        it.set_exp(self.clock.rel_exptime(t));
                    }
                    let exp = it.exp();
                    let ttl = Clock::ttl(exp, now);
                    let sent = it.token();
                    let wants = it.stale() || matches!(req.recache, Some(r) if exp != 0 && ttl < i64::from(r));
                    let win = wants && !sent;
                    if win {
                        it.set_token();
                    }
                    if !req.no_bump {
                        bump(&it, (atime, fetched), now);
                    }
                    let hit = Hit {
                        key,
                        value: it.value(),
                        flags: it.flags(),
                        cas: HitCas::At { arena: &self.arena, loc, item: it },
                        ttl,
                        last_access: now.saturating_sub(atime),
                        fetched: fetched != 0,
                        stale: it.stale(),
                        win,
                        token_taken: sent && !win,
                    };
                    Step::Done(f.take().map(|f| f(&hit)))
                }
                None => {
                    let Some(ttl) = req.vivify else { return Step::Done(None) };
                    let exp = self.clock.rel_exptime(ttl);
                    let hdr = NewItem { cas: None, exp, atime: now, flags: 0, fetched: 0, token: 1, stale: 0 };
                    match p.publish(None, hdr, &[], true) {
                        Ok(cas) => {
                            let hit = Hit {
                                key,
                                value: &[],
                                flags: 0,
                                cas: HitCas::Known(cas),
                                ttl: Clock::ttl(exp, now),
                                last_access: 0,
                                fetched: false,
                                stale: false,
                                win: true,
                                token_taken: false,
                            };
                            Step::Done(f.take().map(|f| f(&hit)))
                        }
                        Err(n) => Step::Need(n),
                    }
                }
            }
        });
        out.ok().flatten()
    }

    /// Stores, replaces, appends or prepends (see [`StoreReq`]).
    pub fn store(&self, req: &StoreReq<'_>) -> StoreOutcome {
        let h = self.hash(req.key);
        if !self.cfg.fits(req.key.len(), req.value.len()) {
            if req.mode == Mode::Set {
                let _ = self.run(req.key, h, None, |p| {
                    let st = p.st;
                    if let Some((pos, loc)) = p.sh.find(h, |l| {
                        // SAFETY: as in `Pass::item`.
                        unsafe { st.arena.item(l) }.key() == req.key
                    }) {
                        st.unlink(&mut p.sh, h, pos, loc);
                    }
                    Step::Done(())
                });
            }
            return StoreOutcome::TooLarge;
        }
        let pre = (req.mode == Mode::Set && req.cas.is_none())
            .then(|| self.arena.item_size(req.key.len(), req.value.len(), opt_for(req.flags, false)));
        let out = self.run(req.key, h, pre, |p| {
            let now = p.now;
            let old = p.live();
            let mut stale = 0;
            if let Some(c) = req.cas {
                match old {
                    None => return Step::Done(StoreOutcome::NotFound),
                    Some((_, loc)) => {
                        let cas = p.cas(loc);
                        if cas == c {
                        } else if req.invalidate && c < cas {
                            stale = 1;
                        } else {
                            return Step::Done(StoreOutcome::Exists);
                        }
                    }
                }
            }
            let fresh = |flags, exp| NewItem { cas: None, exp, atime: now, flags, fetched: 0, token: 0, stale };
            let stored = |r: Result<u64, usize>| match r {
                Ok(cas) => Step::Done(StoreOutcome::Stored { cas }),
                Err(n) => Step::Need(n),
            };
            match (req.mode, old) {
                (Mode::Set, _) | (Mode::Add, None) | (Mode::Replace, Some(_)) => {
                    let hdr = fresh(req.flags, self.clock.rel_exptime(req.exptime));
                    stored(p.publish(old, hdr, &[req.value], true))
                }
                (Mode::Add, Some((_, loc))) => {
                    let it = p.item(loc);
                    let (atime, fetched) = it.recency();
                    if atime < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
                        it.set_recency(now, fetched);
                    }
                    Step::Done(StoreOutcome::NotStored)
                }
                (Mode::Append | Mode::Prepend, None) => match req.vivify {
                    Some(ttl) => {
                        stored(p.publish(None, fresh(req.flags, self.clock.rel_exptime(ttl)), &[req.value], true))
                    }
                    None => Step::Done(StoreOutcome::NotStored),
                },
                (Mode::Replace, None) => Step::Done(StoreOutcome::NotStored),
                (mode, Some((pos, loc))) => {
                    let it = p.item(loc);
                    let old_value = it.value();
                    if !self.cfg.fits(req.key.len(), old_value.len() + req.value.len()) {
                        return Step::Done(StoreOutcome::NotStored);
                    }
                    let hdr = fresh(it.flags(), it.exp());
                    let parts: [&[u8]; 2] =
                        if mode == Mode::Append { [old_value, req.value] } else { [req.value, old_value] };
                    stored(p.publish(Some((pos, loc)), hdr, &parts, true))
                }
            }
        });
        out.unwrap_or(StoreOutcome::NoMemory)
    }

    /// Deletes, or with `req.invalidate` marks stale (see [`DeleteReq`]).
    pub fn delete(&self, key: &[u8], req: &DeleteReq) -> DeleteOutcome {
        let h = self.hash(key);
        let out = self.run(key, h, None, |p| {
            let Some((pos, loc)) = p.live() else { return Step::Done(DeleteOutcome::NotFound) };
            let it = p.item(loc);
            if matches!(req.cas, Some(c) if c != p.cas(loc)) {
                return Step::Done(DeleteOutcome::Exists);
            }
            if req.invalidate {
                let mut hdr = it.snapshot();
                hdr.stale = 1;
                hdr.token = 0;
                if let Some(t) = req.ttl {
                    hdr.exp = self.clock.rel_exptime(t);
                }
                match p.publish(Some((pos, loc)), hdr, &[it.value()], false) {
                    Ok(_) => Step::Done(DeleteOutcome::Deleted),
                    Err(n) => Step::Need(n),
                }
            } else {
                p.st.unlink(&mut p.sh, h, pos, loc);
                Step::Done(DeleteOutcome::Deleted)
            }
        });
        match out {
            Ok(o) => o,
            // XXX: no memory for the stale copy: remove the item instead
            // (a client asking to invalidate accepts a miss).
            Err(NoMemory) => self.delete(key, &DeleteReq { invalidate: false, ..*req }),
        }
    }

    /// Increments or decrements a decimal value (see [`ArithReq`]).
    pub fn arith(&self, req: &ArithReq<'_>) -> ArithOutcome {
        let h = self.hash(req.key);
        let out = self.run(req.key, h, None, |p| {
            let now = p.now;
            let Some((pos, loc)) = p.live() else {
                let Some((initial, exptime)) = req.vivify else { return Step::Done(ArithOutcome::NotFound) };
                let exp = self.clock.rel_exptime(exptime);
                let hdr = NewItem { cas: None, exp, atime: now, flags: 0, fetched: 0, token: 0, stale: 0 };
                let digits = initial.to_string();
                return match p.publish(None, hdr, &[digits.as_bytes()], true) {
                    Ok(cas) => Step::Done(ArithOutcome::Value { value: initial, cas, ttl: Clock::ttl(exp, now) }),
                    Err(n) => Step::Need(n),
                };
            };
            let it = p.item(loc);
            if matches!(req.cas, Some(c) if c != p.cas(loc)) {
                return Step::Done(ArithOutcome::Exists);
            }
            let Some(n) = parse_counter(it.value()) else { return Step::Done(ArithOutcome::NonNumeric) };
            let value = if req.incr { n.wrapping_add(req.delta) } else { n.saturating_sub(req.delta) };
            let bytes = counter_bytes(value, it.value().len());
            let mut hdr = it.snapshot();
            hdr.atime = now;
            if let Some(t) = req.ttl {
                hdr.exp = self.clock.rel_exptime(t);
            }
            match p.publish(Some((pos, loc)), hdr, &[&bytes], false) {
                Ok(cas) => Step::Done(ArithOutcome::Value { value, cas, ttl: Clock::ttl(hdr.exp, now) }),
                Err(n) => Step::Need(n),
            }
        });
        out.unwrap_or(ArithOutcome::NoMemory)
    }

    /// Sets a live item's expiry; `false` if there is none.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        let h = self.hash(key);
        let out = self.run(key, h, None, |p| match p.live() {
            Some((_, loc)) => {
                // NOTE: under the shard lock (see `get_slow`).
                p.item(loc).set_exp(self.clock.rel_exptime(exptime));
                Step::Done(true)
            }
            None => Step::Done(false),
        });
        out.unwrap_or(false)
    }
}
