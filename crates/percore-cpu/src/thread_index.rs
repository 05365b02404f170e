//! A small dense index per OS thread, reused after the thread exits.

use std::cell::Cell;
use std::sync::Mutex;

/// Indices released by exited threads, handed out again before new ones.
static FREE: Mutex<(usize, Vec<usize>)> = Mutex::new((0, Vec::new()));

struct Index(usize);

impl Drop for Index {
    fn drop(&mut self) {
        // A poisoned lock only means another thread panicked while holding
        // it; the free list itself is always consistent.
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        free.1.push(self.0);
    }
}

fn allocate() -> usize {
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = free.1.pop() {
        return i;
    }
    let i = free.0;
    free.0 += 1;
    i
}

thread_local! {
    static CACHED: Cell<usize> = const { Cell::new(usize::MAX) };
    static OWNED: Index = Index(allocate());
}

/// A small integer naming the calling thread, unique among live threads.
///
/// Indices are dense: they start at 0 and an exited thread's index is given
/// to the next new thread, so `thread_index() % n` spreads live threads over
/// `n` shards. The first call on a thread takes a lock; later calls are one
/// thread-local load.
///
/// ```
/// let me = percore_cpu::thread_index();
/// assert_eq!(me, percore_cpu::thread_index());
/// let other = std::thread::spawn(percore_cpu::thread_index).join().unwrap();
/// assert_ne!(me, other);
/// ```
#[inline]
pub fn thread_index() -> usize {
    let i = CACHED.with(Cell::get);
    if i != usize::MAX {
        return i;
    }
    thread_index_slow()
}

#[cold]
fn thread_index_slow() -> usize {
    // During thread teardown OWNED may already be gone; such a late caller
    // shares index 0 with somebody, which is harmless for sharding.
    let i = OWNED.try_with(|o| o.0).unwrap_or(0);
    let _ = CACHED.try_with(|c| c.set(i));
    i
}
