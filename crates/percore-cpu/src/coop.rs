//! Cooperative waiting for crates below the scheduler.
//!
//! A crate low in the stack (percore-zone) sometimes has to wait: a zone at
//! its item limit waits for a free. Blocking the OS thread is right on a
//! plain thread, and wrong on a uthread of percore-lwkt: it would stall the
//! whole worker, including the uthread that would free the item (issue 16).
//! The lower crate cannot call the scheduler (arrows point down, DESIGN.md
//! section 3), so the scheduler installs a hook here once, and waiters ask
//! it first:
//!
//! * [`install`] (the scheduler, once per process): a query "is the caller
//!   a context that must not block its OS thread?" and a nap "wait about
//!   this long, letting other work run";
//! * [`can_nap`] / [`nap`] (the waiter): when `can_nap` says yes, poll the
//!   condition between naps instead of blocking on an OS primitive.
//!
//! Without a hook (no scheduler in the process), `can_nap` is false and
//! waiters block as before.

use std::sync::OnceLock;
use std::time::Duration;

/// The scheduler's two functions (see the module docs).
struct Hook {
    can_nap: fn() -> bool,
    nap: fn(Duration) -> bool,
}

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Install the scheduler's hook: `can_nap` says whether the caller must not
/// block its OS thread (it runs on a uthread), `nap` waits about `d` that
/// way and returns false if it could not (the caller then blocks its OS
/// thread). The first installation wins; later calls return false.
///
/// ```
/// // What percore-lwkt installs, in spirit:
/// fn on_uthread() -> bool { false }
/// fn nap(d: std::time::Duration) -> bool { std::thread::sleep(d); true }
/// let _ = percore_cpu::coop::install(on_uthread, nap);
/// ```
pub fn install(can_nap: fn() -> bool, nap: fn(Duration) -> bool) -> bool {
    HOOK.set(Hook { can_nap, nap }).is_ok()
}

/// Whether the caller should wait by [`nap`]ping instead of blocking its
/// OS thread.
///
/// ```
/// if percore_cpu::coop::can_nap() {
///     percore_cpu::coop::nap(std::time::Duration::from_millis(1));
/// }
/// ```
#[inline]
pub fn can_nap() -> bool {
    HOOK.get().is_some_and(|h| (h.can_nap)())
}

/// Wait about `d` cooperatively; false if that was not possible (no hook,
/// or the scheduler refused, for example inside a critical section).
pub fn nap(d: Duration) -> bool {
    HOOK.get().is_some_and(|h| (h.nap)(d))
}
