//! Issue 16, item 5: the `retire(Box<T>)` pattern was undefined behaviour.
//!
//! Scenario: a reader enters a section, loads the shared pointer and keeps a
//! `&T` to the object. Meanwhile a writer swaps a new object in and retires
//! the old one. With the old signature the writer had to write
//! `smr.retire(unsafe { Box::from_raw(old) })`: that materialises a unique
//! `Box` (a retag asserting exclusive access) while the reader still reads
//! through its shared reference. Miri reported a data race on the retag (and,
//! under Stacked Borrows, a protector error on `retire`'s argument).
//!
//! The fixed `unsafe fn retire(*mut T)` keeps the raw pointer until the grace
//! period has ended and only then rebuilds and drops the `Box`. Run it under
//! Miri with `ci/miri.sh`; natively it is an ordinary smoke test.

use percore_smr::Smr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

#[test]
fn retire_while_a_reader_holds_a_shared_reference() {
    let smr = Smr::builder("issue-retire-box").batch_size(1).max_pending(4).build().unwrap();
    let shared = Arc::new(AtomicPtr::new(Box::into_raw(Box::new([7u64; 4]))));
    let loaded = Arc::new(AtomicBool::new(false));
    let retired = Arc::new(AtomicBool::new(false));
    let reader = {
        let (smr, shared, loaded, retired) = (smr.clone(), shared.clone(), loaded.clone(), retired.clone());
        std::thread::spawn(move || {
            let _g = smr.enter();
            // SAFETY: loaded inside a section; the writer retires through `smr`.
            let r: &[u64; 4] = unsafe { &*shared.load(Ordering::Acquire) };
            loaded.store(true, Ordering::Release);
            while !retired.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            // Still inside the section: the retired object must be intact.
            assert_eq!(r.iter().sum::<u64>(), 28);
        })
    };
    while !loaded.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let old = shared.swap(Box::into_raw(Box::new([1u64; 4])), Ordering::AcqRel);
    // SAFETY: `old` was unlinked by the swap above, came from
    // `Box::into_raw`, and is retired once.
    unsafe { smr.retire(old) };
    retired.store(true, Ordering::Release);
    reader.join().unwrap();
    smr.flush().unwrap();
    assert_eq!(smr.pending(), 0);
    // SAFETY: no reader is left and the pointer came from Box::into_raw.
    drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
}
