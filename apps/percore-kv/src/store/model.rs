//! The reference model of the store: memcached's item semantics over a
//! `Mutex<HashMap>`, with no eviction and no memory limit (only the item size
//! limit). Differential tests run the same operations against it and against
//! the engine.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{
    counter_bytes, parse_counter, ArithOutcome, ArithReq, Clock, Config, DeleteOutcome, DeleteReq, GetReq, Hit, Mode,
    StoreOutcome, StoreReq, StoreStats, ITEM_UPDATE_INTERVAL, SIZE_CHECK_HEADER,
};

#[derive(Clone, Debug)]
struct Item {
    value: Vec<u8>,
    flags: u32,
    exp: u32,
    cas: u64,
    /// Last access (bumped at most once per interval) or store time.
    time: u32,
    fetched: bool,
    stale: bool,
    token_sent: bool,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Vec<u8>, Item>,
    next_cas: u64,
    oldest_live: u32,
    oldest_cas: u64,
    stats: StoreStats,
}

impl Inner {
    fn next_cas(&mut self) -> u64 {
        self.next_cas += 1;
        self.next_cas
    }

    /// The live item under `key`, removing it if it expired or was flushed.
    fn live(&mut self, key: &[u8], now: u32) -> Option<&mut Item> {
        let it = self.map.get(key)?;
        let flushed = self.oldest_live != 0
            && self.oldest_live <= now
            && (it.time <= self.oldest_live || (self.oldest_cas != 0 && it.cas < self.oldest_cas));
        let expired = it.exp != 0 && it.exp <= now;
        if flushed || expired {
            if flushed {
                self.stats.get_flushed += 1;
            } else {
                self.stats.get_expired += 1;
                if !it.fetched {
                    self.stats.expired_unfetched += 1;
                }
                self.stats.reclaimed += 1;
            }
            self.map.remove(key);
            return None;
        }
        self.map.get_mut(key)
    }

    fn insert(&mut self, key: &[u8], value: Vec<u8>, flags: u32, exp: u32, now: u32, stale: bool) -> u64 {
        let cas = self.next_cas();
        let item = Item { value, flags, exp, cas, time: now, fetched: false, stale, token_sent: false };
        self.map.insert(key.to_vec(), item);
        self.stats.total_items += 1;
        cas
    }
}

/// The reference model (see the module docs).
#[derive(Debug)]
pub struct ModelStore {
    cfg: Config,
    clock: Clock,
    inner: Mutex<Inner>,
}

impl ModelStore {
    /// A model with these limits (only `max_item_size` is enforced).
    pub fn new(cfg: Config) -> Result<Self, super::super::Error> {
        Ok(ModelStore { cfg, clock: Clock::new(), inner: Mutex::new(Inner::default()) })
    }

    /// The limits it was made with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Its clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks `key` up; on a hit calls `f` with the item and returns its
    /// result, on a miss returns `None` (or, with `req.vivify`, creates a
    /// stub and reports it as a hit that won its token).
    pub fn get<R>(&self, key: &[u8], req: &GetReq, f: impl FnOnce(&Hit<'_>) -> R) -> Option<R> {
        let now = self.clock.now();
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.live(key, now).is_none() {
            let ttl = req.vivify?;
            let exp = self.clock.rel_exptime(ttl);
            let cas = inner.insert(key, Vec::new(), 0, exp, now, false);
            if let Some(it) = inner.map.get_mut(key) {
                it.token_sent = true;
            }
            let hit = Hit {
                key,
                value: &[],
                flags: 0,
                cas: super::HitCas::Known(cas),
                ttl: Clock::ttl(exp, now),
                last_access: 0,
                fetched: false,
                stale: false,
                win: true,
                token_taken: false,
            };
            return Some(f(&hit));
        }
        let it = inner.live(key, now)?;
        let fetched = it.fetched;
        let last_access = now.saturating_sub(it.time);
        if let Some(t) = req.touch {
            it.exp = self.clock.rel_exptime(t);
        }
        let ttl = Clock::ttl(it.exp, now);
        let mut win = false;
        let wants_token = it.stale || matches!(req.recache, Some(r) if it.exp != 0 && ttl < i64::from(r));
        if wants_token && !it.token_sent {
            win = true;
            it.token_sent = true;
        }
        let token_taken = it.token_sent && !win;
        if !req.no_bump {
            it.fetched = true;
            if it.time < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
                it.time = now;
            }
        }
        let hit = Hit {
            key,
            value: &it.value,
            flags: it.flags,
            cas: super::HitCas::Known(it.cas),
            ttl,
            last_access,
            fetched,
            stale: it.stale,
            win,
            token_taken,
        };
        Some(f(&hit))
    }

    /// Stores, replaces, appends or prepends (see [`StoreReq`]).
    pub fn store(&self, req: &StoreReq<'_>) -> StoreOutcome {
        let now = self.clock.now();
        let mut g = self.lock();
        let inner = &mut *g;
        if !self.cfg.fits(req.key.len(), req.value.len()) {
            if req.mode == Mode::Set {
                inner.map.remove(req.key);
            }
            return StoreOutcome::TooLarge;
        }
        let mut stale = false;
        let old = inner.live(req.key, now).map(|it| (it.value.clone(), it.flags, it.exp, it.cas));
        if let Some(c) = req.cas {
            match &old {
                None => return StoreOutcome::NotFound,
                Some((_, _, _, cas)) if *cas == c => {}
                Some((_, _, _, cas)) if req.invalidate && c < *cas => stale = true,
                Some(_) => return StoreOutcome::Exists,
            }
        }
        let (value, flags, exp) = match (req.mode, old) {
            (Mode::Set, _) => (req.value.to_vec(), req.flags, self.clock.rel_exptime(req.exptime)),
            (Mode::Add, Some(_)) => {
                if let Some(it) = inner.map.get_mut(req.key) {
                    if it.time < now.saturating_sub(ITEM_UPDATE_INTERVAL) {
                        it.time = now;
                    }
                }
                return StoreOutcome::NotStored;
            }
            (Mode::Add, None) | (Mode::Replace, Some(_)) => {
                (req.value.to_vec(), req.flags, self.clock.rel_exptime(req.exptime))
            }
            (Mode::Append | Mode::Prepend, None) => match req.vivify {
                Some(ttl) => (req.value.to_vec(), req.flags, self.clock.rel_exptime(ttl)),
                None => return StoreOutcome::NotStored,
            },
            (Mode::Replace, None) => return StoreOutcome::NotStored,
            (mode, Some((old_value, flags, exp, _))) => {
                if !self.cfg.fits(req.key.len(), old_value.len() + req.value.len()) {
                    return StoreOutcome::NotStored;
                }
                let mut v = Vec::with_capacity(old_value.len() + req.value.len());
                if mode == Mode::Append {
                    v.extend_from_slice(&old_value);
                    v.extend_from_slice(req.value);
                } else {
                    v.extend_from_slice(req.value);
                    v.extend_from_slice(&old_value);
                }
                (v, flags, exp)
            }
        };
        let cas = inner.insert(req.key, value, flags, exp, now, stale);
        StoreOutcome::Stored { cas }
    }

    /// Deletes, or with `req.invalidate` marks stale (see [`DeleteReq`]).
    pub fn delete(&self, key: &[u8], req: &DeleteReq) -> DeleteOutcome {
        let now = self.clock.now();
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(it) = inner.live(key, now) else {
            return DeleteOutcome::NotFound;
        };
        if matches!(req.cas, Some(c) if c != it.cas) {
            return DeleteOutcome::Exists;
        }
        if req.invalidate {
            it.stale = true;
            it.token_sent = false;
            if let Some(t) = req.ttl {
                it.exp = self.clock.rel_exptime(t);
            }
            let cas = inner.next_cas();
            if let Some(it) = inner.map.get_mut(key) {
                it.cas = cas;
            }
        } else {
            inner.map.remove(key);
        }
        DeleteOutcome::Deleted
    }

    /// Increments or decrements a decimal value (see [`ArithReq`]).
    pub fn arith(&self, req: &ArithReq<'_>) -> ArithOutcome {
        let now = self.clock.now();
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(it) = inner.live(req.key, now) else {
            let Some((initial, exptime)) = req.vivify else {
                return ArithOutcome::NotFound;
            };
            let exp = self.clock.rel_exptime(exptime);
            let cas = inner.insert(req.key, initial.to_string().into_bytes(), 0, exp, now, false);
            return ArithOutcome::Value { value: initial, cas, ttl: Clock::ttl(exp, now) };
        };
        if matches!(req.cas, Some(c) if c != it.cas) {
            return ArithOutcome::Exists;
        }
        let Some(n) = parse_counter(&it.value) else {
            return ArithOutcome::NonNumeric;
        };
        let value = if req.incr { n.wrapping_add(req.delta) } else { n.saturating_sub(req.delta) };
        it.value = counter_bytes(value, it.value.len());
        if let Some(t) = req.ttl {
            it.exp = self.clock.rel_exptime(t);
        }
        it.time = now;
        let exp = it.exp;
        let cas = inner.next_cas();
        if let Some(it) = inner.map.get_mut(req.key) {
            it.cas = cas;
        }
        ArithOutcome::Value { value, cas, ttl: Clock::ttl(exp, now) }
    }

    /// Sets a live item's expiry; `false` if there is none.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        let now = self.clock.now();
        let mut g = self.lock();
        match g.live(key, now) {
            Some(it) => {
                it.exp = self.clock.rel_exptime(exptime);
                true
            }
            None => false,
        }
    }

    /// `flush_all [delay]`: every item stored before the moment `delay`
    /// (client form; `0` = now) becomes invalid at that moment, as
    /// memcached's `oldest_live` / `oldest_cas`.
    pub fn flush_all(&self, delay: i64) {
        let now = self.clock.now();
        let new_oldest = if delay > 0 { self.clock.rel_exptime(delay) } else { now };
        let mut g = self.lock();
        g.oldest_live = new_oldest.saturating_sub(1).max(1);
        if g.oldest_live <= now {
            g.oldest_cas = g.next_cas + 1;
        }
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let g = self.lock();
        let mut s = g.stats;
        s.curr_items = g.map.len() as u64;
        s.bytes = g.map.iter().map(|(k, v)| (SIZE_CHECK_HEADER + k.len() + 1 + v.value.len() + 2) as u64).sum();
        s.used_bytes = s.bytes;
        s.limit_bytes = self.cfg.memory_limit as u64;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelStore {
        ModelStore::new(Config::default()).unwrap()
    }

    fn value(s: &ModelStore, k: &[u8]) -> Option<Vec<u8>> {
        s.get(k, &GetReq::default(), |h| h.value.to_vec())
    }

    #[test]
    fn modes() {
        let s = model();
        assert_eq!(s.store(&StoreReq::new(Mode::Replace, b"k", b"v", 0, 0)), StoreOutcome::NotStored);
        assert!(matches!(s.store(&StoreReq::new(Mode::Add, b"k", b"v", 0, 0)), StoreOutcome::Stored { .. }));
        assert_eq!(s.store(&StoreReq::new(Mode::Add, b"k", b"w", 0, 0)), StoreOutcome::NotStored);
        assert!(matches!(s.store(&StoreReq::new(Mode::Append, b"k", b"2", 0, 0)), StoreOutcome::Stored { .. }));
        assert!(matches!(s.store(&StoreReq::new(Mode::Prepend, b"k", b"1", 0, 0)), StoreOutcome::Stored { .. }));
        assert_eq!(value(&s, b"k").unwrap(), b"1v2");
    }

    #[test]
    fn cas_and_invalidate() {
        let s = model();
        let StoreOutcome::Stored { cas } = s.store(&StoreReq::new(Mode::Set, b"k", b"v", 0, 0)) else { panic!() };
        let mut r = StoreReq::new(Mode::Set, b"k", b"w", 0, 0);
        r.cas = Some(cas + 100);
        assert_eq!(s.store(&r), StoreOutcome::Exists);
        r.cas = Some(cas);
        assert!(matches!(s.store(&r), StoreOutcome::Stored { .. }));
        r.cas = Some(cas);
        r.invalidate = true;
        assert!(matches!(s.store(&r), StoreOutcome::Stored { .. }));
        let (stale, win) = s.get(b"k", &GetReq::default(), |h| (h.stale, h.win)).unwrap();
        assert!(stale && win);
        let taken = s.get(b"k", &GetReq::default(), |h| h.token_taken).unwrap();
        assert!(taken);
        r.key = b"missing";
        assert_eq!(s.store(&r), StoreOutcome::NotFound);
    }

    #[test]
    fn arith_pads_and_wraps() {
        let s = model();
        s.store(&StoreReq::new(Mode::Set, b"n", b"10", 0, 0));
        assert!(matches!(s.arith(&ArithReq::new(b"n", false, 1)), ArithOutcome::Value { value: 9, .. }));
        assert_eq!(value(&s, b"n").unwrap(), b"9 ");
        s.store(&StoreReq::new(Mode::Set, b"n", b"18446744073709551615", 0, 0));
        assert!(matches!(s.arith(&ArithReq::new(b"n", true, 1)), ArithOutcome::Value { value: 0, .. }));
        assert!(matches!(s.arith(&ArithReq::new(b"n", false, 5)), ArithOutcome::Value { value: 0, .. }));
        s.store(&StoreReq::new(Mode::Set, b"x", b"abc", 0, 0));
        assert_eq!(s.arith(&ArithReq::new(b"x", true, 1)), ArithOutcome::NonNumeric);
        assert_eq!(s.arith(&ArithReq::new(b"y", true, 1)), ArithOutcome::NotFound);
    }

    #[test]
    fn expiry_and_flush() {
        let s = model();
        s.store(&StoreReq::new(Mode::Set, b"a", b"1", 0, 2));
        s.store(&StoreReq::new(Mode::Set, b"b", b"1", 0, -1));
        assert!(value(&s, b"b").is_none());
        assert!(value(&s, b"a").is_some());
        s.clock().advance(3);
        assert!(value(&s, b"a").is_none());
        s.store(&StoreReq::new(Mode::Set, b"c", b"1", 0, 0));
        s.flush_all(0);
        assert!(value(&s, b"c").is_none());
        s.store(&StoreReq::new(Mode::Set, b"d", b"1", 0, 0));
        assert!(value(&s, b"d").is_some());
        s.flush_all(10);
        assert!(value(&s, b"d").is_some());
        s.clock().advance(11);
        assert!(value(&s, b"d").is_none());
    }

    #[test]
    fn too_large_set_removes_the_old_item() {
        let s = ModelStore::new(Config { max_item_size: 1024, ..Config::default() }).unwrap();
        s.store(&StoreReq::new(Mode::Set, b"k", b"v", 0, 0));
        assert_eq!(s.store(&StoreReq::new(Mode::Set, b"k", &[0; 1024], 0, 0)), StoreOutcome::TooLarge);
        assert!(value(&s, b"k").is_none());
    }

    #[test]
    fn vivify_wins_once() {
        let s = model();
        let req = GetReq { vivify: Some(30), ..GetReq::default() };
        let (win, len) = s.get(b"v", &req, |h| (h.win, h.value.len())).unwrap();
        assert!(win);
        assert_eq!(len, 0);
        let (win, taken) = s.get(b"v", &req, |h| (h.win, h.token_taken)).unwrap();
        assert!(!win && taken);
    }
}
