//! # The join slot: a uthread's result, in its record
//!
//! A uthread's result goes from the uthread (its one completer) to its
//! [`JoinHandle`](crate::JoinHandle) (its one waiter). It used to travel in
//! an `Arc<Oneshot<Result<T, JoinError>>>` allocated per spawn, about 170
//! instructions of a 1,670-instruction spawn+join with its reference
//! counts (issue 15). The slot now lives in the uthread's record, which is
//! recycled per worker, so a spawn allocates nothing for it. The record is
//! not generic, so the value is type-erased: stored inline when
//! `Result<T, JoinError>` fits [`INLINE`] bytes (a `T` of a few words
//! does), boxed otherwise; the typed code at both ends (the spawn's body and
//! the handle, both `T`-generic from one `spawn` call) writes and reads it.
//!
//! The protocol is [`SlotCore`]'s (`slotcore.rs`, the state word and the
//! waiter, checked by `tests/loom_join.rs`); the value follows its rule:
//!
//! * written only by the uthread's body, once, before `publish`
//!   ([`JoinSlot::complete`]);
//! * read only by the handle (there is one; `join` consumes it, `poll`
//!   borrows it mutably), after it saw `DONE` with acquire
//!   ([`JoinSlot::take`]);
//! * cancelled by the owning worker when it drops the coroutine unfinished
//!   at shutdown (`DONE` with no value: `JoinError::Cancelled`), which it
//!   does after the body can no longer run;
//! * dropped, if never taken, through `&mut` only: when the record is
//!   recycled (`Worker::recycle`, after `Arc::get_mut`) or freed.
//!
//! A record is recycled only once nothing else references it, so no handle
//! of an earlier life can read a value of a later one's type.

use crate::uthread::slotcore::SlotCore;
use percore_cpu::loom::UnsafeCell;
use std::mem::MaybeUninit;

/// Bytes of a value stored inline; a larger (or more aligned) one is boxed.
/// `JoinError` alone is 64 bytes (x86-64), and `Result<T, JoinError>` for a
/// `T` of up to a few words (`()`, integers, `String`, `Vec`) no more.
pub(crate) const INLINE: usize = 64;

/// The inline storage.
#[repr(C, align(16))]
struct Buf([MaybeUninit<u8>; INLINE]);

/// The value half: the bytes and what they hold.
struct Value {
    buf: Buf,
    /// Drops the stored value: `Some` while one is stored.
    drop: Option<unsafe fn(*mut Buf)>,
    /// The value was taken (a later `take` answers `Gone`).
    taken: bool,
}

/// What [`JoinSlot::take`] found.
pub(crate) enum Taken<V> {
    /// The uthread's result.
    Value(V),
    /// Published without a value: the uthread was cancelled unfinished.
    Cancelled,
    /// Taken already.
    Gone,
}

/// A uthread's join slot (see the module doc).
pub(crate) struct JoinSlot {
    core: SlotCore,
    value: UnsafeCell<Value>,
}

/// Whether a `V` is stored inline.
const fn inline<V>() -> bool {
    size_of::<V>() <= INLINE && align_of::<V>() <= align_of::<Buf>()
}

/// # Safety
///
/// `b` holds a `V` written by `put::<V>`, dropped or read at most once.
unsafe fn drop_value<V>(b: *mut Buf) {
    if inline::<V>() {
        // SAFETY: the caller's promise; inline, so the `V` is at `b`.
        unsafe { std::ptr::drop_in_place(b.cast::<V>()) };
    } else {
        // SAFETY: the caller's promise; boxed, so `b` holds its pointer.
        drop(unsafe { Box::from_raw(b.cast::<*mut V>().read()) });
    }
}

impl Value {
    /// Store `v`.
    ///
    /// # Safety
    ///
    /// Nothing is stored (`drop` is `None`).
    unsafe fn put<V>(&mut self, v: V) {
        let b = std::ptr::addr_of_mut!(self.buf);
        if inline::<V>() {
            // SAFETY: `Buf` is large and aligned enough for a `V` (checked
            // by `inline`), and holds nothing (the caller's promise).
            unsafe { b.cast::<V>().write(v) };
        } else {
            // SAFETY: a pointer fits `Buf` (64 bytes, aligned 16).
            unsafe { b.cast::<*mut V>().write(Box::into_raw(Box::new(v))) };
        }
        self.drop = Some(drop_value::<V>);
    }

    /// Take the stored value out.
    ///
    /// # Safety
    ///
    /// What is stored, if anything, is a `V`.
    unsafe fn take<V>(&mut self) -> Taken<V> {
        if self.drop.take().is_none() {
            return if self.taken { Taken::Gone } else { Taken::Cancelled };
        }
        self.taken = true;
        let b = std::ptr::addr_of_mut!(self.buf);
        if inline::<V>() {
            // SAFETY: a `V` is stored inline (the caller's promise, `drop`
            // was `Some`); `drop` is now `None`, so it is read only once.
            Taken::Value(unsafe { b.cast::<V>().read() })
        } else {
            // SAFETY: as above, boxed.
            Taken::Value(*unsafe { Box::from_raw(b.cast::<*mut V>().read()) })
        }
    }

    /// Drop what is stored, if anything, and forget it was ever taken.
    #[inline]
    fn clear(&mut self) {
        if let Some(d) = self.drop.take() {
            // SAFETY: `d` was set by `put` with the stored value's type;
            // `drop` is `None` now, so the value is dropped once.
            unsafe { d(std::ptr::addr_of_mut!(self.buf)) };
        }
        self.taken = false;
    }
}

// SAFETY: the value is moved in by the completer and out by the handle,
// both `T: Send` (`spawn`'s bounds); the slot hands it between threads
// under the core's protocol, never shares it.
unsafe impl Send for JoinSlot {}
// SAFETY: as above.
unsafe impl Sync for JoinSlot {}

impl JoinSlot {
    /// Empty, open.
    pub(crate) fn new() -> JoinSlot {
        JoinSlot {
            core: SlotCore::new(),
            value: UnsafeCell::new(Value { buf: Buf([MaybeUninit::uninit(); INLINE]), drop: None, taken: false }),
        }
    }

    /// Whether the uthread finished (its value, or its cancellation, is
    /// published).
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.core.is_done()
    }

    /// Store the uthread's result and wake its joiner.
    ///
    /// # Safety
    ///
    /// Called by the uthread's body only, at most once per life of the
    /// slot, with the type its handle takes (`Result<T, JoinError>`).
    #[inline]
    pub(crate) unsafe fn complete<V>(&self, v: V) {
        // SAFETY: the one completer writes before `publish` (nobody reads
        // before `DONE`), and only once, so nothing is stored yet.
        self.value.with_mut(|p| unsafe { (*p).put(v) });
        self.core.publish();
    }

    /// The owner dropped the coroutine unfinished (shutdown): publish
    /// `DONE` without a value, if the body did not complete.
    ///
    /// # Safety
    ///
    /// The body can no longer run (its coroutine is gone), and the caller is
    /// the owning worker (the body's thread, so its writes are ordered
    /// before this).
    pub(crate) unsafe fn cancel(&self) {
        if !self.core.is_done() {
            self.core.publish();
        }
    }

    /// Wait until done (see `SlotCore::wait_done`, whose `current` and
    /// `wait_once` the caller passes: this file, which the record reaches,
    /// names nothing of the scheduler).
    #[inline]
    pub(crate) fn wait_done(&self, current: impl Fn() -> std::task::Waker, wait_once: impl Fn()) {
        self.core.wait_done(current, wait_once);
    }

    /// `Ready` once done (see `SlotCore::poll_done`).
    #[inline]
    pub(crate) fn poll_done(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.core.poll_done(cx)
    }

    /// Take the value.
    ///
    /// # Safety
    ///
    /// The caller is the uthread's one handle, saw the slot done (through
    /// `is_done`, `wait_done` or `poll_done`, with acquire), and `V` is its
    /// value type (`Result<T, JoinError>`).
    #[inline]
    pub(crate) unsafe fn take<V>(&self) -> Taken<V> {
        // SAFETY: after `DONE` the completer no longer touches the value
        // and the one handle (the caller) is its only reader; `V` is its
        // type (the caller's promise).
        self.value.with_mut(|p| unsafe { (*p).take() })
    }

    /// Make it a new uthread's slot: drop a value never taken, open the
    /// core again.
    #[inline]
    pub(crate) fn reset(&mut self) {
        // SAFETY: `&mut self`: nobody else can reach the cell.
        self.value.with_mut(|p| unsafe { (*p).clear() });
        self.core.reset();
    }
}

impl Drop for JoinSlot {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else can reach the cell.
        self.value.with_mut(|p| unsafe { (*p).clear() });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted<const N: usize>([u8; N]);
    impl<const N: usize> Drop for Counted<N> {
        fn drop(&mut self) {
            DROPS.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn values_inline_and_boxed_are_taken_once_and_dropped_once() {
        assert!(inline::<Counted<8>>() && !inline::<Counted<200>>());
        assert!(inline::<Result<(), crate::JoinError>>() && inline::<Result<String, crate::JoinError>>());
        let mut s = JoinSlot::new();
        // SAFETY: one completer, one taker, one type per life.
        unsafe {
            s.complete(Counted::<8>([7; 8]));
            assert!(s.is_done());
            let Taken::Value(v) = s.take::<Counted<8>>() else { panic!("no value") };
            assert_eq!(v.0, [7; 8]);
            assert!(matches!(s.take::<Counted<8>>(), Taken::Gone));
        }
        assert_eq!(DROPS.swap(0, SeqCst), 1); // `v`, only
        s.reset();
        // SAFETY: as above, a new life with another type.
        unsafe { s.complete(Counted::<200>([1; 200])) };
        s.reset(); // never taken: dropped here
        assert_eq!(DROPS.swap(0, SeqCst), 1);
        // SAFETY: as above.
        unsafe {
            s.cancel();
            assert!(s.is_done());
            assert!(matches!(s.take::<Counted<200>>(), Taken::Cancelled));
        }
        // SAFETY: as above; dropped with the slot.
        unsafe { JoinSlot::new().complete(Counted::<200>([2; 200])) };
        assert_eq!(DROPS.swap(0, SeqCst), 1);
    }
}
