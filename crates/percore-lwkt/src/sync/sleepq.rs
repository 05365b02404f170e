//! # `tsleep` / `wakeup`: address-keyed wait channels
//!
//! Any address can be a channel. Sleepers are kept in a fixed table of
//! mutex-protected buckets hashed by address, shared by every runtime and by
//! foreign threads (which may sleep and wake too). A sleeper links an entry
//! carrying its [`Waiter`] and a pointer to a `woken` flag on its own stack;
//! a waker unlinks matching entries and sets their flag *under the bucket
//! lock*, then wakes them after unlocking. A sleeper that times out (or is
//! refused, or unwound) unlinks its own entry under the lock unless the flag
//! says a waker already did: so the flag's memory is never touched after its
//! owner returns, and a wake-up racing a timeout is reported as a wake-up.
//!
//! The condition a sleeper waits for must be checked and the sleep entered
//! without a window in which a wake-up can pass unseen: protect it with a
//! [`Token`](crate::Token) (released only once the sleeper is linked, when it
//! switches out), or re-check it in a loop with a timeout.

use crate::error::Error;
use crate::uthread::block::wait_once;
use crate::uthread::waiter::Waiter;
use crossbeam_utils::CachePadded;
use percore_cpu::loom::Ordering::{Acquire, Release};
use percore_cpu::loom::{AtomicBool, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const BUCKETS: usize = 128;

struct Entry {
    chan: usize,
    waiter: Waiter,
    woken: *const AtomicBool,
}

// SAFETY: `woken` is only dereferenced under the bucket lock while the entry
// is linked, and the sleeper owning it does not return before unlinking it
// (or seeing it unlinked).
unsafe impl Send for Entry {}

static TABLE: [CachePadded<Mutex<Vec<Entry>>>; BUCKETS] = [const { CachePadded::new(Mutex::new(Vec::new())) }; BUCKETS];

fn bucket(chan: usize) -> MutexGuard<'static, Vec<Entry>> {
    let h = (chan >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57;
    TABLE[h % BUCKETS].lock()
}

fn key<T: ?Sized>(chan: &T) -> usize {
    chan as *const T as *const () as usize
}

struct Unlink<'a> {
    chan: usize,
    woken: &'a AtomicBool,
}

impl Unlink<'_> {
    /// Unlink our entry unless a waker did. Returns whether we were woken.
    fn finish(&self) -> bool {
        let mut b = bucket(self.chan);
        if self.woken.load(Acquire) {
            return true;
        }
        let me: *const AtomicBool = self.woken;
        b.retain(|e| e.woken != me);
        false
    }
}

impl Drop for Unlink<'_> {
    fn drop(&mut self) {
        // ORDERING: acquire pairs with the waker's release store; `true` means
        // the waker already unlinked us and will not touch the entry again.
        if !self.woken.load(Acquire) {
            self.finish();
        }
    }
}

/// Sleep on the wait channel `chan` until [`wakeup`] / [`wakeup_one`] on the
/// same address, or until `timeout` passes ([`Error::TimedOut`]).
///
/// Works on uthreads (the worker runs others meanwhile) and on foreign
/// threads. Refused inside a critical or SMR section.
///
/// ```
/// use percore_lwkt::{tsleep, wakeup, Runtime};
/// use std::time::Duration;
/// static CHAN: u8 = 0;
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let s = rt.spawn(|| tsleep(&CHAN, Some(Duration::from_secs(30)))).unwrap();
/// while wakeup(&CHAN) == 0 { percore_lwkt::sleep(Duration::from_millis(1)).unwrap(); }
/// assert!(s.join().unwrap().is_ok());
/// assert_eq!(tsleep(&CHAN, Some(Duration::from_millis(1))).unwrap_err().to_string(), "timed out");
/// ```
pub fn tsleep<T: ?Sized>(chan: &T, timeout: Option<Duration>) -> Result<(), Error> {
    crate::uthread::block::check_may_block()?;
    let chan = key(chan);
    let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
    let woken = AtomicBool::new(false);
    bucket(chan).push(Entry { chan, waiter: Waiter::current(), woken: &woken });
    let link = Unlink { chan, woken: &woken };
    loop {
        wait_once(deadline);
        // ORDERING: acquire pairs with the waker's release store (made under
        // the bucket lock) so its prior writes are visible.
        if woken.load(Acquire) {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return if link.finish() { Ok(()) } else { Err(Error::TimedOut) };
        }
    }
}

fn wake(chan: usize, max: usize) -> usize {
    // NOTE: most wake-ups find one sleeper: no allocation for up to 4.
    let mut woken = Woken::default();
    {
        let mut b = bucket(chan);
        let mut i = 0;
        while i < b.len() && woken.len() < max {
            if b[i].chan == chan {
                let e = b.remove(i);
                // SAFETY: the entry was linked until now and we hold the
                // bucket lock, so its sleeper has not returned.
                unsafe { &*e.woken }.store(true, Release);
                woken.push(e.waiter);
            } else {
                i += 1;
            }
        }
    }
    woken.wake_all()
}

#[derive(Default)]
struct Woken {
    inline: [Option<Waiter>; 4],
    n: usize,
    more: Vec<Waiter>,
}

impl Woken {
    fn push(&mut self, w: Waiter) {
        if self.n < self.inline.len() {
            self.inline[self.n] = Some(w);
        } else {
            self.more.push(w);
        }
        self.n += 1;
    }

    fn len(&self) -> usize {
        self.n
    }

    fn wake_all(self) -> usize {
        let n = self.n;
        for w in self.inline.into_iter().flatten().chain(self.more) {
            w.wake();
        }
        n
    }
}

/// Wake every sleeper on `chan`; returns how many were woken.
///
/// ```
/// static CHAN: u32 = 0;
/// assert_eq!(percore_lwkt::wakeup(&CHAN), 0); // nobody sleeps
/// ```
pub fn wakeup<T: ?Sized>(chan: &T) -> usize {
    wake(key(chan), usize::MAX)
}

/// Wake the longest-sleeping sleeper on `chan`, if any; returns how many
/// (0 or 1) were woken.
///
/// ```
/// static CHAN: u32 = 0;
/// assert_eq!(percore_lwkt::wakeup_one(&CHAN), 0);
/// ```
pub fn wakeup_one<T: ?Sized>(chan: &T) -> usize {
    wake(key(chan), 1)
}
