//! loom models of the GUS core protocol: enter / advance / poll, the stale
//! `c_seq` race of `smr_poll_cpu`, nested sections whose outer guard ends
//! first, and deferred reclamation.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p
//! percore-smr --release --test loom_smr` (ci/loom.sh). Under loom the
//! sequence starts below the wrap point with huge steps (seq.rs), segments
//! hold two slots, and the reader's compiler fence is modelled as the full
//! fence that the writer's membarrier makes of it.
//!
//! "Freeing" a node poisons it; the readers assert they never read poison.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use percore_smr::Smr;

const POISON: usize = usize::MAX;

struct World {
    smr: Smr,
    /// Index of the current node.
    head: AtomicUsize,
    nodes: [AtomicUsize; 3],
}

impl World {
    fn new(smr: Smr) -> Arc<World> {
        Arc::new(World {
            smr,
            head: AtomicUsize::new(0),
            nodes: [AtomicUsize::new(10), AtomicUsize::new(11), AtomicUsize::new(12)],
        })
    }

    fn read(&self) {
        let _g = self.smr.enter();
        let i = self.head.load(Ordering::Acquire);
        let v = self.nodes[i].load(Ordering::Relaxed);
        assert_ne!(v, POISON, "reader saw freed node {i}");
    }

    /// Replace node `from` with `to`; free `from` if a non-blocking poll
    /// says the goal expired.
    fn replace(&self, from: usize, to: usize) -> bool {
        let old = self.head.swap(to, Ordering::AcqRel);
        assert_eq!(old, from);
        let goal = self.smr.advance();
        if self.smr.poll(goal, false) {
            self.nodes[from].store(POISON, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

#[test]
fn enter_advance_poll_never_frees_under_a_reader() {
    loom::model(|| {
        let w = World::new(Smr::new("loom-basic").unwrap());
        let r = w.clone();
        let reader = thread::spawn(move || r.read());
        w.replace(0, 1);
        reader.join().unwrap();
    });
}

#[test]
fn a_stale_c_seq_is_pinned_to_rd_seq() {
    // The reader may load wr_seq, then the writer advances and polls
    // without seeing the reader (moving rd_seq past the reader's value),
    // and only then the reader publishes its stale value. The second
    // replace must still not free the node the reader may hold.
    loom::model(|| {
        let w = World::new(Smr::new("loom-stale").unwrap());
        let r = w.clone();
        let reader = thread::spawn(move || r.read());
        w.replace(0, 1);
        w.replace(1, 2);
        reader.join().unwrap();
    });
}

#[test]
fn a_nested_section_keeps_protecting_after_its_outer_guard_ends() {
    // The exit fast path unpublishes only when the nesting word is 0: the
    // outer guard's drop (inner still alive) must leave `c_seq` published,
    // so the node read after it is never freed under the reader.
    loom::model(|| {
        let w = World::new(Smr::new("loom-nest").unwrap());
        let r = w.clone();
        let reader = thread::spawn(move || {
            let outer = r.smr.enter();
            let inner = r.smr.enter();
            drop(outer);
            let i = r.head.load(Ordering::Acquire);
            let v = r.nodes[i].load(Ordering::Relaxed);
            assert_ne!(v, POISON, "reader saw freed node {i}");
            drop(inner);
        });
        w.replace(0, 1);
        reader.join().unwrap();
    });
}

#[test]
fn blocking_wait_returns_only_after_the_reader_left() {
    loom::model(|| {
        let w = World::new(Smr::new("loom-wait").unwrap());
        let r = w.clone();
        let reader = thread::spawn(move || r.read());
        let old = w.head.swap(1, Ordering::AcqRel);
        let goal = w.smr.advance();
        w.smr.wait(goal).unwrap();
        w.nodes[old].store(POISON, Ordering::Relaxed);
        reader.join().unwrap();
    });
}

#[test]
fn deferred_reclamation_runs_after_readers() {
    loom::model(|| {
        let smr = Smr::builder("loom-defer").batch_size(1).max_pending(1).build().unwrap();
        let w = World::new(smr);
        let r = w.clone();
        let reader = thread::spawn(move || r.read());
        let old = w.head.swap(1, Ordering::AcqRel);
        let w2 = w.clone();
        w.smr.defer(move || w2.nodes[old].store(POISON, Ordering::Relaxed));
        reader.join().unwrap();
        w.smr.flush().unwrap();
        assert_eq!(w.nodes[old].load(Ordering::Relaxed), POISON, "flush ran the destructor");
    });
}
