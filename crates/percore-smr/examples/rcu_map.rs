//! A read-mostly concurrent hash map whose readers never lock, never write a
//! shared cache line and never fence, built on percore-smr.
//!
//! Readers walk bucket lists inside an SMR read section. Writers take a
//! mutex (one writer at a time, as RCU-protected kernel lists do), publish a
//! copy of the node they change with a Release store, and retire the old
//! node: it is freed only once every reader that could have loaded it has
//! left its section.
//!
//! Run it: `cargo run --release -p percore-smr --example rcu_map`.

use percore_smr::{Guard, Smr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

struct Node<V> {
    key: u64,
    value: V,
    next: AtomicPtr<Node<V>>,
}

/// A fixed-size hash map of `u64` keys with lock-free readers.
pub struct RcuMap<V: Send + Sync + 'static> {
    smr: Smr,
    buckets: Box<[AtomicPtr<Node<V>>]>,
    writer: Mutex<()>,
}

impl<V: Send + Sync + 'static> RcuMap<V> {
    /// A map with `buckets` buckets, reclaiming through `smr`.
    pub fn new(smr: Smr, buckets: usize) -> Self {
        let buckets = (0..buckets.max(1)).map(|_| AtomicPtr::new(ptr::null_mut())).collect();
        RcuMap { smr, buckets, writer: Mutex::new(()) }
    }

    /// The domain readers must enter.
    pub fn smr(&self) -> &Smr {
        &self.smr
    }

    fn bucket(&self, key: u64) -> &AtomicPtr<Node<V>> {
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.buckets[h as usize % self.buckets.len()]
    }

    /// Look `key` up. The reference lives as long as the read section.
    pub fn get<'g>(&self, key: u64, _guard: &'g Guard<'_>) -> Option<&'g V> {
        let mut p = self.bucket(key).load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: `p` was loaded inside the guard's section from a list
            // link; nodes are retired through `self.smr` only after being
            // unlinked, so it stays allocated until the section ends.
            let node = unsafe { &*p };
            if node.key == key {
                return Some(&node.value);
            }
            p = node.next.load(Ordering::Acquire);
        }
        None
    }

    /// Insert or replace; returns whether the key was present.
    pub fn insert(&self, key: u64, value: V) -> bool {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut link = self.bucket(key);
        loop {
            let p = link.load(Ordering::Acquire);
            if p.is_null() {
                let node = Box::new(Node { key, value, next: AtomicPtr::new(ptr::null_mut()) });
                link.store(Box::into_raw(node), Ordering::Release);
                return false;
            }
            // SAFETY: we hold the writer lock: nobody unlinks or frees nodes
            // reachable from the bucket meanwhile.
            let node = unsafe { &*p };
            if node.key == key {
                let next = node.next.load(Ordering::Acquire);
                let fresh = Box::new(Node { key, value, next: AtomicPtr::new(next) });
                link.store(Box::into_raw(fresh), Ordering::Release);
                // SAFETY: `p` is now unlinked, came from Box::into_raw, and
                // is retired once (under the writer lock).
                unsafe { self.smr.retire(p) };
                return true;
            }
            link = &node.next;
        }
    }

    /// Remove `key`; returns whether it was present.
    pub fn remove(&self, key: u64) -> bool {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut link = self.bucket(key);
        loop {
            let p = link.load(Ordering::Acquire);
            if p.is_null() {
                return false;
            }
            // SAFETY: as in `insert`.
            let node = unsafe { &*p };
            if node.key == key {
                link.store(node.next.load(Ordering::Acquire), Ordering::Release);
                // SAFETY: as in `insert`. Readers already on `p` can still
                // follow its `next`, which stays valid until they leave.
                unsafe { self.smr.retire(p) };
                return true;
            }
            link = &node.next;
        }
    }
}

impl<V: Send + Sync + 'static> Drop for RcuMap<V> {
    fn drop(&mut self) {
        for b in self.buckets.iter() {
            let mut p = b.load(Ordering::Acquire);
            while !p.is_null() {
                // SAFETY: `&mut self`: no reader or writer is left; every
                // linked node came from Box::into_raw and is freed once.
                let node = unsafe { Box::from_raw(p) };
                p = node.next.load(Ordering::Acquire);
            }
        }
    }
}

#[allow(dead_code)]
fn main() {
    let smr = Smr::new("rcu-map-example").expect("domain");
    let map = RcuMap::new(smr.clone(), 64);
    for k in 0..100 {
        map.insert(k, format!("v{k}"));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..1000u64 {
                map.insert(round % 100, format!("v{}", round % 100));
                if round % 10 == 0 {
                    map.remove(round % 100);
                    map.insert(round % 100, format!("v{}", round % 100));
                }
            }
        });
        s.spawn(|| {
            let mut hits = 0;
            for i in 0..100_000u64 {
                let g = map.smr().enter();
                if let Some(v) = map.get(i % 100, &g) {
                    assert_eq!(*v, format!("v{}", i % 100));
                    hits += 1;
                }
            }
            println!("reader: {hits} hits out of 100000 lookups");
        });
    });
    smr.flush().expect("not in a section");
    let retired = percore_cpu::stats::get("smr.rcu-map-example.retired").unwrap_or(0);
    println!("retired {retired} nodes; all reclaimed: {}", smr.pending() == 0);
}
