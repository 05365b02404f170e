//! Eviction: writing ten times the memory limit keeps the store within its
//! limit, counts every eviction, never answers NoMemory while something can
//! be evicted, and what it still holds reads back intact; dead bytes from
//! overwrites are compacted away without evicting live items.
#![cfg(not(feature = "loom"))]

use percore_kv::store::{Config, DeleteReq, GetReq, Mode, Store, StoreOutcome, StoreReq};

const LIMIT: usize = 8 << 20;

fn value(k: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (k as usize * 31 + i) as u8).collect()
}

#[test]
fn ten_times_the_limit() {
    let s = Store::new(Config { memory_limit: LIMIT, max_item_size: 64 << 10, writers: 1 }).unwrap();
    let mut written = 0usize;
    let mut k = 0u32;
    while written < 10 * LIMIT {
        let len = 100 + (k as usize * 7919) % 3000;
        let out = s.store(&StoreReq::new(Mode::Set, format!("key{k}").as_bytes(), &value(k, len), k, 0));
        assert!(matches!(out, StoreOutcome::Stored { .. }), "{out:?} at {written}");
        written += len;
        k += 1;
        if k.is_multiple_of(512) {
            let st = s.stats();
            assert!(st.used_bytes <= LIMIT as u64, "{st:?}");
        }
    }
    let st = s.stats();
    assert!(st.used_bytes <= LIMIT as u64);
    assert!(st.evictions > 0);
    assert_eq!(st.curr_items + st.evictions, u64::from(k), "{st:?}");
    assert!(st.bytes < LIMIT as u64);
    // Whatever is still there is intact; the newest items are there.
    let mut present = 0;
    for i in 0..k {
        let len = 100 + (i as usize * 7919) % 3000;
        if let Some(ok) = s.get(format!("key{i}").as_bytes(), &GetReq::default(), |h| {
            h.value == value(i, len).as_slice() && h.flags == i
        }) {
            assert!(ok, "key{i} corrupted");
            present += 1;
        }
    }
    assert_eq!(present, st.curr_items);
    for i in k - 100..k {
        assert!(s.get(format!("key{i}").as_bytes(), &GetReq::default(), |_| ()).is_some(), "key{i} missing");
    }
}

#[test]
fn deletes_and_overwrites_do_not_evict_live_items() {
    let s = Store::new(Config { memory_limit: LIMIT, max_item_size: 64 << 10, writers: 1 }).unwrap();
    // 2 MB live, rewritten (and half of it deleted and re-added) 40 times.
    for round in 0..40u32 {
        for k in 0..2000u32 {
            let key = format!("key{k}");
            if round % 2 == 1 && k % 2 == 0 {
                s.delete(key.as_bytes(), &DeleteReq::default());
            }
            let out = s.store(&StoreReq::new(Mode::Set, key.as_bytes(), &value(k + round, 1000), round, 0));
            assert!(matches!(out, StoreOutcome::Stored { .. }));
        }
    }
    let st = s.stats();
    assert_eq!(st.evictions, 0, "{st:?}");
    assert_eq!(st.curr_items, 2000);
    for k in 0..2000u32 {
        let ok = s.get(format!("key{k}").as_bytes(), &GetReq::default(), |h| h.value == value(k + 39, 1000).as_slice());
        assert_eq!(ok, Some(true));
    }
}

#[test]
fn no_memory_when_nothing_can_be_evicted() {
    // Four writer heads with open segments, a cleaner segment and two more:
    // items the size of a segment fill them; the store must evict or say
    // NoMemory, never panic or exceed its limit.
    let cfg = Config { memory_limit: 1 << 20, max_item_size: 128 << 10, writers: 4 };
    let s = Store::new(cfg).unwrap();
    let big = vec![7u8; (128 << 10) - 400];
    std::thread::scope(|sc| {
        for t in 0..4u8 {
            let (s, big) = (&s, &big);
            sc.spawn(move || {
                for i in 0..50u32 {
                    let key = format!("t{t}-{i}");
                    let out = s.store(&StoreReq::new(Mode::Set, key.as_bytes(), big, 0, 0));
                    assert!(matches!(out, StoreOutcome::Stored { .. } | StoreOutcome::NoMemory), "{out:?}");
                }
            });
        }
    });
    let st = s.stats();
    assert!(st.used_bytes <= st.limit_bytes, "{st:?}");
}
