//! Differential test: long random sequences of every store operation, run
//! against the engine ([`Store`]) and the reference model ([`ModelStore`])
//! with a memory limit large enough that nothing is evicted. Every outcome,
//! every field of every hit and the counters after every step must be
//! identical, CAS uniques through a map: the engine derives its uniques
//! from where items lie (its own numbers), so every unique it hands out is
//! paired with the model's for the same event ([`Uniques`]), one to one,
//! and a request's CAS is sent to each side in its own numbers.
//!
//! Both clocks are frozen and advanced together, so expiry, TTLs, access
//! times and delayed flushes are compared exactly too.
#![cfg(not(feature = "loom"))]

use percore_kv::store::model::ModelStore;
use percore_kv::store::{
    ArithOutcome, ArithReq, Config, DeleteOutcome, DeleteReq, GetReq, Mode, Store, StoreOutcome, StoreReq, StoreStats,
};
use proptest::prelude::*;

const KEYS: [&[u8]; 6] = [b"a", b"b", b"counter", b"k-with-a-longer-name", b"n", b"z"];

#[derive(Clone, Debug)]
enum Op {
    Store {
        mode: Mode,
        key: usize,
        value: Vec<u8>,
        flags: u32,
        exp: i64,
        cas: Option<i64>,
        invalidate: bool,
        vivify: Option<i64>,
    },
    Get {
        key: usize,
        touch: Option<i64>,
        vivify: Option<i64>,
        recache: Option<u32>,
        no_bump: bool,
    },
    Delete {
        key: usize,
        cas: Option<i64>,
        invalidate: bool,
        ttl: Option<i64>,
    },
    Arith {
        key: usize,
        incr: bool,
        delta: u64,
        cas: Option<i64>,
        vivify: Option<(u64, i64)>,
        ttl: Option<i64>,
    },
    Touch {
        key: usize,
        exp: i64,
    },
    Flush {
        delay: i64,
    },
    Advance {
        secs: u32,
    },
}

fn exptime() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(0i64), 2 => 1..5i64, 1 => Just(-1i64), 1 => 60..200i64]
}

/// A CAS relative to the key's last known one (`-1`: that one, `-2`: one
/// older, others: literal).
fn cas() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![4 => Just(None), 3 => Just(Some(-1i64)), 1 => Just(Some(-2i64)), 1 => (0..50i64).prop_map(Some)]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        (0..u64::MAX).prop_map(|n| n.to_string().into_bytes()),
        (0..100u64).prop_map(|n| format!("{n}  ").into_bytes()),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        4 => Just(Mode::Set),
        1 => Just(Mode::Add),
        1 => Just(Mode::Replace),
        1 => Just(Mode::Append),
        1 => Just(Mode::Prepend)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        6 => (mode(), key.clone(), value(), any::<u32>(), exptime(), cas(), any::<bool>(), proptest::option::weighted(0.2, exptime()))
            .prop_map(|(mode, key, value, flags, exp, cas, invalidate, vivify)| Op::Store {
                mode, key, value, flags, exp, cas, invalidate, vivify
            }),
        6 => (key.clone(), proptest::option::weighted(0.15, exptime()), proptest::option::weighted(0.15, exptime()),
              proptest::option::weighted(0.15, 0..100u32), any::<bool>())
            .prop_map(|(key, touch, vivify, recache, no_bump)| Op::Get { key, touch, vivify, recache, no_bump }),
        2 => (key.clone(), cas(), any::<bool>(), proptest::option::weighted(0.5, exptime()))
            .prop_map(|(key, cas, invalidate, ttl)| Op::Delete { key, cas, invalidate, ttl }),
        3 => (key.clone(), any::<bool>(), prop_oneof![0..10u64, Just(u64::MAX)], cas(),
              proptest::option::weighted(0.3, (0..1000u64, exptime())), proptest::option::weighted(0.2, exptime()))
            .prop_map(|(key, incr, delta, cas, vivify, ttl)| Op::Arith { key, incr, delta, cas, vivify, ttl }),
        1 => (key, exptime()).prop_map(|(key, exp)| Op::Touch { key, exp }),
        1 => prop_oneof![Just(0i64), 1..4i64].prop_map(|delay| Op::Flush { delay }),
        2 => prop_oneof![1..3u32, Just(61u32)].prop_map(|secs| Op::Advance { secs }),
    ]
}

/// Everything a hit reports, owned.
type HitView = (Vec<u8>, Vec<u8>, u32, u64, i64, u32, bool, bool, bool, bool);

fn view(h: &percore_kv::store::Hit<'_>) -> HitView {
    (h.key.to_vec(), h.value.to_vec(), h.flags, h.cas(), h.ttl, h.last_access, h.fetched, h.stale, h.win, h.token_taken)
}

fn comparable(mut s: StoreStats) -> StoreStats {
    s.used_bytes = 0;
    s
}

/// The engine's CAS uniques paired with the model's: both hand out one at
/// the same events, in the same order (one writer: a head's uniques grow
/// with its offset and its segments' generations).
#[derive(Default)]
struct Uniques {
    to_model: std::collections::HashMap<u64, u64>,
    to_engine: std::collections::BTreeMap<u64, u64>,
}

impl Uniques {
    /// Pairs the engine's `e` with the model's `m` (each one to one) and
    /// returns `m`.
    fn learn(&mut self, e: u64, m: u64) -> u64 {
        assert_ne!(e, 0, "the engine handed out 0");
        assert_eq!(*self.to_model.entry(e).or_insert(m), m, "engine unique {e} stands for two");
        assert_eq!(*self.to_engine.entry(m).or_insert(e), e, "model unique {m} was handed out as two");
        m
    }

    /// The model's unique `m` in the engine's numbers: its pair, or (for
    /// one never handed out) a number just above the pair of the largest
    /// unique below it, which is never an engine unique (two of them are at
    /// least an item apart) and compares with every engine unique as `m`
    /// with the model's.
    fn engine(&self, m: u64) -> u64 {
        if m == 0 {
            return 0;
        }
        match self.to_engine.get(&m) {
            Some(&e) => e,
            None => self.to_engine.range(..m).next_back().map_or(1, |(_, &e)| e + 1),
        }
    }

    fn store(&mut self, a: StoreOutcome, b: StoreOutcome) -> StoreOutcome {
        match (a, b) {
            (StoreOutcome::Stored { cas: e }, StoreOutcome::Stored { cas: m }) => {
                StoreOutcome::Stored { cas: self.learn(e, m) }
            }
            _ => a,
        }
    }

    fn arith(&mut self, a: ArithOutcome, b: ArithOutcome) -> ArithOutcome {
        match (a, b) {
            (ArithOutcome::Value { value, cas: e, ttl }, ArithOutcome::Value { cas: m, .. }) => {
                ArithOutcome::Value { value, cas: self.learn(e, m), ttl }
            }
            _ => a,
        }
    }

    fn hit(&mut self, a: Option<HitView>, b: &Option<HitView>) -> Option<HitView> {
        match (a, b) {
            (Some(mut h), Some(m)) => {
                h.3 = self.learn(h.3, m.3);
                Some(h)
            }
            (a, _) => a,
        }
    }
}

struct Pair {
    engine: Store,
    model: ModelStore,
    /// The last CAS seen per key (the model's).
    last_cas: [u64; KEYS.len()],
    uniques: Uniques,
}

impl Pair {
    fn new() -> Pair {
        let cfg = Config { memory_limit: 8 << 20, max_item_size: 64 << 10, writers: 1 };
        // NOTE: the two clocks are made one after the other; a second may
        // tick in between. Make pairs until both read the same (a tick is
        // rare, two in a row are not possible within a few attempts).
        for _ in 0..5 {
            let engine = Store::new(cfg.clone()).unwrap();
            let model = ModelStore::new(cfg.clone()).unwrap();
            engine.clock().freeze();
            model.clock().freeze();
            if engine.clock().now() == model.clock().now()
                && engine.clock().started_unix() == model.clock().started_unix()
            {
                return Pair { engine, model, last_cas: [0; KEYS.len()], uniques: Uniques::default() };
            }
        }
        panic!("could not make two stores whose clocks agree");
    }

    /// A request's CAS in the model's numbers and in the engine's.
    fn cas(&self, key: usize, c: Option<i64>) -> (Option<u64>, Option<u64>) {
        let m = c.map(|c| match c {
            -1 => self.last_cas[key],
            -2 => self.last_cas[key].saturating_sub(1),
            c => c as u64,
        });
        (m, m.map(|m| self.uniques.engine(m)))
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Store { mode, key, ref value, flags, exp, cas, invalidate, vivify } => {
                let mut r = StoreReq::new(mode, KEYS[key], value, flags, exp);
                let (m, e) = self.cas(key, cas);
                r.invalidate = invalidate;
                r.vivify = vivify;
                let a = self.engine.store(&StoreReq { cas: e, ..r });
                let b = self.model.store(&StoreReq { cas: m, ..r });
                let a = self.uniques.store(a, b);
                assert_eq!(a, b, "{op:?}");
                if let StoreOutcome::Stored { cas } = a {
                    self.last_cas[key] = cas;
                }
            }
            Op::Get { key, touch, vivify, recache, no_bump } => {
                let req = GetReq { touch, vivify, recache, no_bump };
                let a = self.engine.get(KEYS[key], &req, view);
                let b = self.model.get(KEYS[key], &req, view);
                let a = self.uniques.hit(a, &b);
                assert_eq!(a, b, "{op:?}");
                if let Some(h) = a {
                    self.last_cas[key] = h.3;
                }
            }
            Op::Delete { key, cas, invalidate, ttl } => {
                let (m, e) = self.cas(key, cas);
                let req = DeleteReq { cas: m, invalidate, ttl };
                let a = self.engine.delete(KEYS[key], &DeleteReq { cas: e, ..req });
                let b = self.model.delete(KEYS[key], &req);
                assert_eq!(a, b, "{op:?}");
                if a == DeleteOutcome::Deleted && invalidate {
                    // Learn the stale item's new CAS (a get, on both).
                    let req = GetReq { no_bump: true, ..GetReq::default() };
                    let a = self.engine.get(KEYS[key], &req, view);
                    let b = self.model.get(KEYS[key], &req, view);
                    let a = self.uniques.hit(a, &b);
                    assert_eq!(a, b, "get after {op:?}");
                    if let Some(h) = a {
                        self.last_cas[key] = h.3;
                    }
                }
            }
            Op::Arith { key, incr, delta, cas, vivify, ttl } => {
                let mut r = ArithReq::new(KEYS[key], incr, delta);
                let (m, e) = self.cas(key, cas);
                r.vivify = vivify;
                r.ttl = ttl;
                let a = self.engine.arith(&ArithReq { cas: e, ..r });
                let b = self.model.arith(&ArithReq { cas: m, ..r });
                let a = self.uniques.arith(a, b);
                assert_eq!(a, b, "{op:?}");
                if let ArithOutcome::Value { cas, .. } = a {
                    self.last_cas[key] = cas;
                }
            }
            Op::Touch { key, exp } => {
                assert_eq!(self.engine.touch(KEYS[key], exp), self.model.touch(KEYS[key], exp), "{op:?}");
            }
            Op::Flush { delay } => {
                self.engine.flush_all(delay);
                self.model.flush_all(delay);
            }
            Op::Advance { secs } => {
                self.engine.clock().advance(secs);
                self.model.clock().advance(secs);
            }
        }
        assert_eq!(comparable(self.engine.stats()), comparable(self.model.stats()), "after {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_answers_like_the_model(ops in proptest::collection::vec(op(), 1..300)) {
        let mut pair = Pair::new();
        for op in &ops {
            pair.step(op);
        }
        // Finally every key reads back the same.
        for key in KEYS {
            let req = GetReq { no_bump: true, ..GetReq::default() };
            let b = pair.model.get(key, &req, view);
            let a = pair.uniques.hit(pair.engine.get(key, &req, view), &b);
            prop_assert_eq!(a, b);
        }
        let st = pair.engine.stats();
        prop_assert!(st.used_bytes <= st.limit_bytes);
        prop_assert_eq!(st.evictions, 0);
    }
}

/// A longer fixed-seed run over more keys, where tables grow and segments
/// fill and are sealed (still without eviction).
#[test]
fn many_keys_many_segments() {
    let cfg = Config { memory_limit: 32 << 20, max_item_size: 64 << 10, writers: 1 };
    let engine = Store::new(cfg.clone()).unwrap();
    let model = ModelStore::new(cfg).unwrap();
    engine.clock().freeze();
    model.clock().freeze();
    let mut uniques = Uniques::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..60_000u64 {
        let r = next();
        let key = format!("key:{}", r % 5000);
        let value = vec![b'a' + (r % 26) as u8; (r >> 8) as usize % 300];
        match r >> 60 {
            0..=9 => {
                let req = StoreReq::new(Mode::Set, key.as_bytes(), &value, i as u32, 0);
                let b = model.store(&req);
                assert_eq!(uniques.store(engine.store(&req), b), b);
            }
            10 | 11 => {
                let req = StoreReq::new(Mode::Append, key.as_bytes(), b"+", 0, 0);
                let b = model.store(&req);
                assert_eq!(uniques.store(engine.store(&req), b), b);
            }
            12 => assert_eq!(
                engine.delete(key.as_bytes(), &DeleteReq::default()),
                model.delete(key.as_bytes(), &DeleteReq::default())
            ),
            _ => {
                let b = model.get(key.as_bytes(), &GetReq::default(), view);
                assert_eq!(uniques.hit(engine.get(key.as_bytes(), &GetReq::default(), view), &b), b);
            }
        }
    }
    assert_eq!(comparable(engine.stats()), comparable(model.stats()));
    assert_eq!(engine.stats().evictions, 0);
}
