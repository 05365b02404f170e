//! Unit tests of the engine: the model's scenarios, then what only the
//! engine has (segments, eviction, compaction, sweeping, limits).

use super::*;
use crate::store::{
    ArithOutcome, ArithReq, DeleteOutcome, DeleteReq, GetReq, Mode, StoreOutcome, StoreReq, ITEM_UPDATE_INTERVAL,
};

fn store() -> Store {
    Store::new(Config::default()).unwrap()
}

fn value(s: &Store, k: &[u8]) -> Option<Vec<u8>> {
    s.get(k, &GetReq::default(), |h| h.value.to_vec())
}

fn set(s: &Store, k: &[u8], v: &[u8]) -> StoreOutcome {
    s.store(&StoreReq::new(Mode::Set, k, v, 0, 0))
}

#[test]
fn modes() {
    let s = store();
    assert_eq!(s.store(&StoreReq::new(Mode::Replace, b"k", b"v", 0, 0)), StoreOutcome::NotStored);
    assert!(matches!(s.store(&StoreReq::new(Mode::Add, b"k", b"v", 0, 0)), StoreOutcome::Stored { .. }));
    assert_eq!(s.store(&StoreReq::new(Mode::Add, b"k", b"w", 0, 0)), StoreOutcome::NotStored);
    assert!(matches!(s.store(&StoreReq::new(Mode::Append, b"k", b"2", 0, 0)), StoreOutcome::Stored { .. }));
    assert!(matches!(s.store(&StoreReq::new(Mode::Prepend, b"k", b"1", 0, 0)), StoreOutcome::Stored { .. }));
    assert_eq!(value(&s, b"k").unwrap(), b"1v2");
    assert_eq!(s.stats().curr_items, 1);
    assert_eq!(s.stats().total_items, 3);
}

#[test]
fn cas_and_invalidate() {
    let s = store();
    let StoreOutcome::Stored { cas } = set(&s, b"k", b"v") else { panic!() };
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
fn delete_invalidate_keeps_the_value_with_a_new_cas() {
    let s = store();
    let StoreOutcome::Stored { cas } = set(&s, b"k", b"v") else { panic!() };
    let req = DeleteReq { cas: Some(cas), invalidate: true, ttl: Some(30) };
    assert_eq!(s.delete(b"k", &req), DeleteOutcome::Deleted);
    let (v, c, stale, ttl) = s.get(b"k", &GetReq::default(), |h| (h.value.to_vec(), h.cas(), h.stale, h.ttl)).unwrap();
    assert_eq!((v.as_slice(), stale, ttl), (&b"v"[..], true, 30));
    assert!(c > cas);
    assert_eq!(s.delete(b"k", &DeleteReq { cas: Some(cas), ..DeleteReq::default() }), DeleteOutcome::Exists);
    assert_eq!(s.delete(b"k", &DeleteReq::default()), DeleteOutcome::Deleted);
    assert_eq!(s.delete(b"k", &DeleteReq::default()), DeleteOutcome::NotFound);
    assert_eq!(s.stats().curr_items, 0);
    assert_eq!(s.stats().bytes, 0);
}

#[test]
fn arith_pads_and_wraps() {
    let s = store();
    set(&s, b"n", b"10");
    assert!(matches!(s.arith(&ArithReq::new(b"n", false, 1)), ArithOutcome::Value { value: 9, .. }));
    assert_eq!(value(&s, b"n").unwrap(), b"9 ");
    set(&s, b"n", b"18446744073709551615");
    assert!(matches!(s.arith(&ArithReq::new(b"n", true, 1)), ArithOutcome::Value { value: 0, .. }));
    assert!(matches!(s.arith(&ArithReq::new(b"n", false, 5)), ArithOutcome::Value { value: 0, .. }));
    set(&s, b"x", b"abc");
    assert_eq!(s.arith(&ArithReq::new(b"x", true, 1)), ArithOutcome::NonNumeric);
    assert_eq!(s.arith(&ArithReq::new(b"y", true, 1)), ArithOutcome::NotFound);
    let mut v = ArithReq::new(b"y", true, 1);
    v.vivify = Some((5, 0));
    assert!(matches!(s.arith(&v), ArithOutcome::Value { value: 5, ttl: -1, .. }));
    assert_eq!(value(&s, b"y").unwrap(), b"5");
}

#[test]
fn expiry_and_flush() {
    let s = store();
    s.store(&StoreReq::new(Mode::Set, b"a", b"1", 0, 2));
    s.store(&StoreReq::new(Mode::Set, b"b", b"1", 0, -1));
    assert!(value(&s, b"b").is_none());
    assert!(value(&s, b"a").is_some());
    s.clock().advance(3);
    assert!(value(&s, b"a").is_none());
    assert_eq!(s.stats().get_expired, 2);
    s.store(&StoreReq::new(Mode::Set, b"c", b"1", 0, 0));
    s.flush_all(0);
    assert!(value(&s, b"c").is_none());
    assert_eq!(s.stats().get_flushed, 1);
    s.store(&StoreReq::new(Mode::Set, b"d", b"1", 0, 0));
    assert!(value(&s, b"d").is_some());
    s.flush_all(10);
    assert!(value(&s, b"d").is_some());
    s.clock().advance(11);
    assert!(value(&s, b"d").is_none());
}

#[test]
fn touch_and_gat() {
    let s = store();
    set(&s, b"k", b"v");
    assert!(s.touch(b"k", 100));
    assert!(!s.touch(b"nope", 100));
    let ttl = s.get(b"k", &GetReq::default(), |h| h.ttl).unwrap();
    assert_eq!(ttl, 100);
    let req = GetReq { touch: Some(-1), ..GetReq::default() };
    assert!(s.get(b"k", &req, |h| h.ttl).is_some());
    assert!(value(&s, b"k").is_none());
}

#[test]
fn too_large_set_removes_the_old_item() {
    let s = Store::new(Config { max_item_size: 1024, ..Config::default() }).unwrap();
    set(&s, b"k", b"v");
    assert_eq!(s.store(&StoreReq::new(Mode::Set, b"k", &[0; 1024], 0, 0)), StoreOutcome::TooLarge);
    assert!(value(&s, b"k").is_none());
}

#[test]
fn vivify_wins_once() {
    let s = store();
    let req = GetReq { vivify: Some(30), ..GetReq::default() };
    let (win, len) = s.get(b"v", &req, |h| (h.win, h.value.len())).unwrap();
    assert!(win);
    assert_eq!(len, 0);
    let (win, taken) = s.get(b"v", &req, |h| (h.win, h.token_taken)).unwrap();
    assert!(!win && taken);
}

#[test]
fn recency_hints_are_rate_limited() {
    let s = store();
    set(&s, b"k", b"v");
    let (fetched, la) = s.get(b"k", &GetReq::default(), |h| (h.fetched, h.last_access)).unwrap();
    assert!(!fetched);
    assert_eq!(la, 0);
    s.clock().advance(10);
    let (fetched, la) = s.get(b"k", &GetReq::default(), |h| (h.fetched, h.last_access)).unwrap();
    assert!(fetched);
    assert_eq!(la, 10, "not bumped within the interval");
    s.clock().advance(ITEM_UPDATE_INTERVAL);
    assert_eq!(s.get(b"k", &GetReq::default(), |h| h.last_access).unwrap(), 10 + ITEM_UPDATE_INTERVAL);
    assert_eq!(s.get(b"k", &GetReq::default(), |h| h.last_access).unwrap(), 0, "bumped once the interval passed");
}

#[test]
fn too_little_memory_is_a_config_error() {
    let e = Store::new(Config { memory_limit: 1 << 20, max_item_size: 1 << 20, writers: 4 }).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

fn small() -> Store {
    Store::new(Config { memory_limit: 4 << 20, max_item_size: 16 << 10, writers: 1 }).unwrap()
}

#[test]
fn overwrites_are_compacted_not_evicted() {
    let s = small();
    let v = [7u8; 1000];
    // 200 live items (~200 KB) rewritten 100 times: 20x the memory.
    for round in 0..100u32 {
        for k in 0..200u32 {
            let mut val = v;
            val[..4].copy_from_slice(&round.to_le_bytes());
            assert!(matches!(set(&s, &k.to_le_bytes(), &val), StoreOutcome::Stored { .. }));
        }
    }
    let st = s.stats();
    assert_eq!(st.evictions, 0, "{st:?}");
    assert_eq!(st.curr_items, 200);
    assert!(st.used_bytes <= st.limit_bytes);
    for k in 0..200u32 {
        assert_eq!(value(&s, &k.to_le_bytes()).unwrap()[..4], 99u32.to_le_bytes());
    }
}

#[test]
fn a_full_store_evicts_and_stays_in_budget() {
    let s = small();
    let mut stored = 0u64;
    for k in 0..20_000u32 {
        let val = [k as u8; 1000];
        assert!(matches!(set(&s, &k.to_le_bytes(), &val), StoreOutcome::Stored { .. }));
        stored += 1;
        assert!(s.stats().used_bytes <= 4 << 20);
    }
    let st = s.stats();
    assert!(st.evictions > 0);
    assert_eq!(st.evictions + st.curr_items, stored, "{st:?}");
    assert_eq!(st.evicted_unfetched, st.evictions);
    for k in 19_000..20_000u32 {
        assert_eq!(value(&s, &k.to_le_bytes()).unwrap(), [k as u8; 1000]);
    }
}

#[test]
fn read_items_get_a_second_chance() {
    let s = small();
    set(&s, b"hot", b"value");
    for k in 0..20_000u32 {
        let _ = value(&s, b"hot");
        set(&s, &k.to_le_bytes(), &[1; 500]);
    }
    assert_eq!(value(&s, b"hot").unwrap(), b"value");
}

#[test]
fn sweep_frees_expired_segments() {
    let s = small();
    for k in 0..3000u32 {
        s.store(&StoreReq::new(Mode::Set, &k.to_le_bytes(), &[1; 1000], 0, 5));
    }
    s.clock().advance(6);
    let mut freed = 0;
    for _ in 0..100 {
        freed += s.sweep(10_000);
    }
    let st = s.stats();
    // Items in open segments are not swept.
    assert!(freed > 2000, "{freed} {st:?}");
    assert_eq!(st.reclaimed as usize, freed);
    assert_eq!(st.curr_items as usize, 3000 - freed);
    assert!(!s.lock_free_is_empty());
}

impl Store {
    fn lock_free_is_empty(&self) -> bool {
        lock(&self.free).cleaned.is_empty()
    }
}

#[test]
fn the_table_grows_past_its_first_size() {
    let s = Store::new(Config { memory_limit: 8 << 20, ..Config::default() }).unwrap();
    let before = s.table.buckets();
    for k in 0..50_000u32 {
        assert!(matches!(set(&s, &k.to_le_bytes(), b"x"), StoreOutcome::Stored { .. }));
    }
    assert!(s.table.buckets() * LOAD_PER_BUCKET >= 50_000 && s.table.buckets() > before);
    assert!(s.stats().used_bytes <= 8 << 20);
    assert_eq!(s.stats().evictions, 0);
    assert_eq!(s.table.len(), 50_000);
    for k in 0..50_000u32 {
        assert_eq!(value(&s, &k.to_le_bytes()).unwrap(), b"x");
    }
}

#[test]
fn counters_are_in_the_stats_tree() {
    let s = store();
    set(&s, b"k", b"v");
    let tree = percore::stats();
    assert!(tree.iter().any(|(name, v)| name.starts_with("kv.store") && name.ends_with(".used_bytes") && *v > 0));
}

#[test]
fn the_store_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
}

#[test]
fn small_items_get_the_index_they_need() {
    // Large items fill the memory first (the index stays small, segments
    // take the budget); then 9-byte keys with 1-byte values, 40 bytes an
    // item, need an index far beyond its reserve: segments are given back
    // to it instead of capping the store at what the index holds.
    let s = Store::new(Config { memory_limit: 8 << 20, max_item_size: 16 << 10, writers: 1 }).unwrap();
    for k in 0..20_000u32 {
        set(&s, format!("large{k}").as_bytes(), &[0; 1000]);
    }
    for k in 0..300_000u32 {
        let key = format!("{k:09}");
        assert!(matches!(set(&s, key.as_bytes(), b"v"), StoreOutcome::Stored { .. }));
    }
    let st = s.stats();
    assert!(st.used_bytes <= 8 << 20, "{st:?}");
    assert!(st.curr_items > 100_000, "{st:?}");
    assert_eq!(st.curr_items + st.evictions, 320_000);
    for k in 299_000..300_000u32 {
        assert_eq!(value(&s, format!("{k:09}").as_bytes()).unwrap(), b"v");
    }
}

fn cas_of(out: StoreOutcome) -> u64 {
    match out {
        StoreOutcome::Stored { cas } => cas,
        other => panic!("not stored: {other:?}"),
    }
}

/// A hit's CAS unique and where the item lies.
fn cas_loc(s: &Store, k: &[u8]) -> Option<(u64, Loc)> {
    s.get(k, &GetReq { no_bump: true, ..GetReq::default() }, |h| match h.cas {
        crate::store::HitCas::At { loc, .. } => (h.cas(), loc),
        crate::store::HitCas::Known(_) => panic!("an engine hit derives its CAS"),
    })
}

/// Derived uniques: three threads (three heads) store far more than the
/// memory limit into a small store, so segments are cleaned and reopened
/// under new generations; no unique handed out repeats, none is 0, and the
/// live items' uniques (as `gets` reads them, moved items included) are
/// distinct too.
#[test]
fn derived_cas_uniques_never_repeat_and_are_never_zero() {
    let s = Store::new(Config { memory_limit: 4 << 20, max_item_size: 16 << 10, writers: 3 }).unwrap();
    let all: Vec<Vec<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3u32)
            .map(|t| {
                let s = &s;
                sc.spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..20_000u32 {
                        let k = format!("{t}:{}", i % 700);
                        // Some items with flags, some read (second chances:
                        // moved copies store their unique).
                        got.push(cas_of(s.store(&StoreReq::new(Mode::Set, k.as_bytes(), &[t as u8; 300], i % 3, 0))));
                        if i % 5 == 0 {
                            let _ = value(s, k.as_bytes());
                        }
                    }
                    got
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = std::collections::HashSet::new();
    for cas in all.into_iter().flatten() {
        assert_ne!(cas, 0);
        assert!(seen.insert(cas), "unique {cas} handed out twice");
    }
    // Segments were reused: more generations than segments.
    assert!(s.gens.peek() as usize > s.arena.count, "no segment was reopened");
    let mut live = std::collections::HashSet::new();
    for t in 0..3 {
        for i in 0..700 {
            if let Some((cas, _)) = cas_loc(&s, format!("{t}:{i}").as_bytes()) {
                assert_ne!(cas, 0);
                assert!(seen.contains(&cas), "a live unique that was never handed out");
                assert!(live.insert(cas), "two live items share {cas}");
            }
        }
    }
    assert_eq!(live.len() as u64, s.stats().curr_items);
}

/// The cleaner's copy keeps the CAS unique (memcached keeps it across its
/// slab mover): an item compacted away from where it was written reads the
/// same unique, stores it, and still wins a CAS store with it; a flush
/// kills it like any item stored before the flush.
#[test]
fn cas_is_kept_across_a_compaction() {
    let s = small();
    let StoreOutcome::Stored { cas } = s.store(&StoreReq::new(Mode::Set, b"keep", b"kept value", 77, 0)) else {
        panic!()
    };
    let (before, loc) = cas_loc(&s, b"keep").unwrap();
    assert_eq!(before, cas);
    // SAFETY: no other thread uses the store; `loc` is linked.
    assert_eq!(unsafe { s.arena.item(loc) }.stored_cas(), None);
    // Overwrites of ten keys fill a few segments with dead items; the
    // cleaner compacts the emptiest sealed segment first, so within a few
    // cleanings it reaches the one holding "keep" (sealed, nearly dead).
    for i in 0..300u32 {
        set(&s, &(i % 10).to_le_bytes(), &[i as u8; 1000]);
    }
    // SAFETY: no other thread uses the store; the location is linked.
    let stored = |s: &Store| unsafe { s.arena.item(cas_loc(s, b"keep").unwrap().1) }.stored_cas();
    for _ in 0..50 {
        if stored(&s).is_some() {
            break;
        }
        assert!(matches!(s.clean_one(), super::super::evict::Clean::Done));
    }
    assert_eq!(s.stats().evictions, 0);
    let (after, moved) = cas_loc(&s, b"keep").unwrap();
    assert_eq!(after, before);
    // Only the cleaner's copies store their unique.
    // SAFETY: as above.
    let it = unsafe { s.arena.item(moved) };
    assert_eq!((it.stored_cas(), it.flags(), it.key(), it.value()), (Some(cas), 77, &b"keep"[..], &b"kept value"[..]));
    // A moved item stored before a flush is flushed.
    s.flush_all(0);
    assert!(value(&s, b"keep").is_none());
    // One stored after it lives, and a CAS store with the moved unique
    // no longer matches anything.
    let new = cas_of(set(&s, b"keep", b"again"));
    assert!(new > cas);
    let mut r = StoreReq::new(Mode::Set, b"keep", b"new", 0, 0);
    r.cas = Some(cas);
    assert_eq!(s.store(&r), StoreOutcome::Exists);
    r.cas = Some(new);
    assert!(cas_of(s.store(&r)) > new);
}

/// Client flags are stored only when non-zero (4 bytes less an item
/// without them), and read back either way, also after a move.
#[test]
fn flags_round_trip_present_or_absent() {
    let s = store();
    for (k, flags) in [(&b"zero"[..], 0), (b"one", 1), (b"max", u32::MAX)] {
        s.store(&StoreReq::new(Mode::Set, k, b"value", flags, 0));
        assert_eq!(s.get(k, &GetReq::default(), |h| (h.flags, h.value.to_vec())), Some((flags, b"value".to_vec())));
        let (_, loc) = cas_loc(&s, k).unwrap();
        // SAFETY: no other thread uses the store; `loc` is linked.
        let it = unsafe { s.arena.item(loc) };
        let opt = if flags == 0 { 0 } else { HAS_FLAGS };
        assert_eq!(it.size(), s.arena.item_size(k.len(), 5, opt));
        assert_eq!(it.stored_cas(), None);
    }
    // Append keeps the flags (present or not).
    s.store(&StoreReq::new(Mode::Append, b"max", b"+", 0, 0));
    s.store(&StoreReq::new(Mode::Append, b"zero", b"+", 9, 0));
    assert_eq!(s.get(b"max", &GetReq::default(), |h| h.flags), Some(u32::MAX));
    assert_eq!(s.get(b"zero", &GetReq::default(), |h| h.flags), Some(0));
}

/// `flush_all` against derived uniques: items stored before it are gone,
/// from every head (each with a segment still open); items stored after it
/// returned live, from the same heads (which open a newer generation
/// first), also after a second flush that found a head's new segment
/// empty.
#[test]
fn a_flush_kills_what_was_before_and_spares_what_came_after() {
    let s = Store::new(Config { memory_limit: 16 << 20, max_item_size: 16 << 10, writers: 3 }).unwrap();
    let on_three = |tag: &str| {
        std::thread::scope(|sc| {
            for t in 0..3 {
                let s = &s;
                sc.spawn(move || {
                    for i in 0..50 {
                        set(s, format!("{tag}{t}:{i}").as_bytes(), b"v");
                    }
                });
            }
        })
    };
    let alive = |tag: &str| (0..3).all(|t| (0..50).all(|i| value(&s, format!("{tag}{t}:{i}").as_bytes()).is_some()));
    let dead = |tag: &str| (0..3).all(|t| (0..50).all(|i| value(&s, format!("{tag}{t}:{i}").as_bytes()).is_none()));
    on_three("before");
    s.flush_all(0);
    assert!(dead("before"));
    on_three("after");
    assert!(alive("after"));
    let before = cas_of(set(&s, b"x", b"1"));
    s.flush_all(0);
    s.flush_all(0);
    let after = cas_of(set(&s, b"x", b"2"));
    assert!(after > before && value(&s, b"x").is_some());
    assert!(dead("after"));
}

/// A store racing with `flush_all` may live or die (as in memcached), but
/// one that began after the flush returned always lives.
#[test]
fn a_store_racing_a_flush_goes_either_way_one_after_it_lives() {
    use std::sync::atomic::AtomicBool;
    let s = Store::new(Config { memory_limit: 16 << 20, max_item_size: 16 << 10, writers: 2 }).unwrap();
    let flushed = AtomicBool::new(false);
    let after: Vec<u32> = std::thread::scope(|sc| {
        let storer = sc.spawn(|| {
            let mut after = Vec::new();
            for i in 0..5_000u32 {
                // ORDERING: pairs with the Release store below: a store that
                // saw it began after `flush_all` returned.
                let late = flushed.load(Ordering::Acquire);
                set(&s, &i.to_le_bytes(), b"v");
                if late {
                    after.push(i);
                }
            }
            after
        });
        for i in 0..200u32 {
            set(&s, &(1_000_000 + i).to_le_bytes(), b"w");
        }
        s.flush_all(0);
        // ORDERING: see the Acquire load above.
        flushed.store(true, Ordering::Release);
        storer.join().unwrap()
    });
    for i in 0..200u32 {
        assert!(value(&s, &(1_000_000 + i).to_le_bytes()).is_none());
    }
    for i in after {
        assert!(value(&s, &i.to_le_bytes()).is_some(), "{i} was stored after the flush");
    }
}

/// A memory limit past 16 GiB is planned with a coarser location unit, not
/// refused; segments that are not a power of two (`-I` of 1.5 MiB and a
/// bit) are addressed too. Only the plans and the arenas' geometry are
/// built: nothing of this size is allocated.
#[test]
fn large_memory_limits_get_a_coarser_unit() {
    use crate::store::segment::Geometry;
    const MIB: usize = 1 << 20;
    for (m, item, unit) in [
        (1024 * MIB, MIB, 4),
        (16 * 1024 * MIB, MIB, 4),
        (24 * 1024 * MIB, MIB, 8),
        (64 * 1024 * MIB, 1536 * 1024 + 8, 16),
        (1024 * 1024 * MIB, MIB, 256),
    ] {
        let cfg = Config { memory_limit: m, max_item_size: item, writers: 4 };
        let p = Plan::new(&cfg).unwrap();
        let g = Geometry::new(p.seg_size, p.count).unwrap();
        assert_eq!(g.unit(), unit, "-m {}", m / MIB);
        assert!(p.seg_size * p.count <= m);
        let (seg, off) = (p.count as u32 - 1, p.seg_size - unit);
        let last = g.loc(seg, off);
        assert_eq!((g.seg_of(last), g.off_of(last)), (seg, off));
        // The largest item the limit lets through fits a segment.
        assert!(cfg.fits(KEY_MAX, item - 51 - KEY_MAX) && !cfg.fits(KEY_MAX, item - 50 - KEY_MAX));
        assert!(g.item_size(KEY_MAX, item - 51 - KEY_MAX, HAS_FLAGS | HAS_CAS) <= p.seg_size);
    }
}
