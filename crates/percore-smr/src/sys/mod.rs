//! The asymmetric fence: light on the read side, heavy on the write side.
//!
//! A reader publishes "I am in a section since sequence S" with a store, then
//! loads shared pointers. A writer unlinks an object, advances the sequence,
//! and scans the readers' published values. This is the store-buffering
//! pattern: without a full fence between the reader's store and its loads,
//! the CPU may perform the loads first, and the writer may miss a reader that
//! already holds the old pointer.
//!
//! Instead of paying that fence in every read section, we move it to the
//! writer. Linux `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` makes every
//! CPU that runs one of this process's threads execute a full barrier before
//! the call returns. Issued by the writer between the unlink and the scan, it
//! guarantees, for each reader, one of:
//!
//! * the reader's barrier point came after its published store: the writer's
//!   scan sees the store, and waits for that reader;
//! * the barrier point came before the store: then everything the reader
//!   loads afterwards also comes after the writer's unlink, so it cannot
//!   reach the unlinked object.
//!
//! The reader side then only needs the *compiler* not to reorder its store
//! and loads (a `compiler_fence(SeqCst)`, zero instructions).
//!
//! Where membarrier is unavailable (old kernels, seccomp filters, non-Linux),
//! the reader publishes with a locked read-modify-write (`xchg`), which is a
//! full barrier on x86-64, and the writer uses an ordinary fence. We never
//! use `mfence` on the read side: it measured 4x slower than a locked RMW.
//! Which flavour is active is process-wide, fixed at the first domain's
//! creation, and reported in the stats tree (`smr.fence.membarrier`).
//!
//! `PERCORE_SMR_FENCE=rmw` in the environment forces the fallback (tests and
//! benchmarks of the fallback path).

// NOTE: Miri cannot run `membarrier(2)`; there the fallback is the only flavour.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod linux;

use percore_cpu::loom::fence;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// How readers and writers fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Readers: compiler fence. Writers: `membarrier` before a scan.
    Membarrier,
    /// Readers: locked RMW. Writers: `fence(SeqCst)` before a scan.
    Rmw,
}

static FLAVOUR: OnceLock<Flavour> = OnceLock::new();

/// The process's fence flavour, chosen (and membarrier registered) once.
pub(crate) fn flavour() -> Flavour {
    *FLAVOUR.get_or_init(choose)
}

fn choose() -> Flavour {
    if std::env::var_os("PERCORE_SMR_FENCE").is_some_and(|v| v == "rmw") {
        return Flavour::Rmw;
    }
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    if linux::register_private_expedited() {
        return Flavour::Membarrier;
    }
    Flavour::Rmw
}

/// The writer's heavy fence, issued after its unlinks and `advance`, before
/// it reads any reader's published sequence.
#[inline]
pub(crate) fn heavy_fence(flavour: Flavour) {
    match flavour {
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        Flavour::Membarrier => linux::private_expedited(),
        // Under loom (and on platforms that never pick Membarrier) the
        // reader's light fence is itself a full fence; a SeqCst fence here
        // completes the store-buffering pair.
        _ => fence(Ordering::SeqCst),
    }
}

/// The fallback flavour's reader side: publish `seq` with a full barrier
/// between the store and the section's loads.
#[inline]
pub(crate) fn publish_with_full_fence(c_seq: &percore_cpu::loom::AtomicU32, seq: u32) {
    // NOTE: Miri checks the language model, not x86-64's: it takes the
    // portable store-and-fence path below.
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    {
        // ORDERING: a locked RMW (`xchg`) is a full barrier on x86-64 (Intel
        // SDM vol. 3, 8.2.2), so later loads cannot pass this store. The
        // language model alone would not promise that for an RMW followed by
        // non-SeqCst loads, hence the fence on other targets; the writer's
        // SeqCst fence before its scan completes the pair.
        c_seq.swap(seq, Ordering::SeqCst);
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    {
        // ORDERING: store, then a full fence, pairing with the writer's.
        c_seq.store(seq, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }
}
