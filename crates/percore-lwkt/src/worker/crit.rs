//! Critical sections (`crit_enter` / `crit_exit`): the worker's count of
//! nested sections; `README.md` says what they hold off.

use super::current_worker;
use std::marker::PhantomData;

/// Enter a critical section (`crit_enter`): until the matching
/// [`crit_exit`], the worker does not switch away from the caller, IPIs wait,
/// and blocking calls are refused. Nests. On a foreign thread there is no
/// scheduler to hold off and it has no effect.
///
/// The section belongs to the calling uthread. A uthread that exits inside
/// one (no matching `crit_exit`, or a [`critical`] guard passed to
/// `mem::forget`) leaks nothing into its worker: the depth is reset when it
/// exits, and the leak is counted as `lwkt.<name>.w<i>.crit_leaks` in the
/// stats tree.
///
/// ```
/// percore_lwkt::crit_enter();
/// percore_lwkt::crit_exit();
/// ```
pub fn crit_enter() {
    if let Some(w) = current_worker() {
        w.crit.set(w.crit.get() + 1);
    }
}

/// Leave a critical section (`crit_exit`); the outermost exit runs the IPIs
/// that arrived meanwhile. An unmatched exit is ignored (and asserts in debug).
///
/// ```
/// percore_lwkt::crit_enter();
/// percore_lwkt::crit_exit();
/// ```
pub fn crit_exit() {
    let Some(w) = current_worker() else { return };
    let c = w.crit.get();
    debug_assert!(c > 0, "percore_lwkt::crit_exit without crit_enter");
    if c == 0 {
        return;
    }
    w.crit.set(c - 1);
    if c == 1 {
        w.poll_ipis();
    }
}

/// Whether the caller is inside a critical section (or an SMR read section,
/// which counts as one).
///
/// ```
/// assert!(!percore_lwkt::in_critical());
/// ```
pub fn in_critical() -> bool {
    current_worker().is_some_and(|w| w.crit.get() > 0) || percore_smr::in_section()
}

/// A critical section as a guard: [`crit_enter`] now, [`crit_exit`] on drop.
///
/// ```
/// let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.block_on(|| {
///     let _c = percore_lwkt::critical();
///     percore_lwkt::sleep(std::time::Duration::from_millis(1)) // refused
/// });
/// assert!(matches!(r.unwrap(), Err(percore_lwkt::Error::InCritical)));
/// ```
pub fn critical() -> CritGuard {
    crit_enter();
    CritGuard { _not_send: PhantomData }
}

/// See [`critical`]. Not `Send`: the section belongs to its worker.
#[derive(Debug)]
pub struct CritGuard {
    _not_send: PhantomData<*const ()>,
}

impl Drop for CritGuard {
    fn drop(&mut self) {
        crit_exit();
    }
}
