//! # Uthread stack overflow: recognising a guard-page hit
//!
//! A uthread that runs off the bottom of its stack touches the `PROT_NONE`
//! guard page below it and the kernel sends its worker thread `SIGSEGV`
//! (or `SIGBUS`). std's own handler only knows the OS thread's guard page,
//! so without help the process dies with a bare "Segmentation fault". As
//! std does for OS threads, this module:
//!
//! 1. installs, once per process, a `SIGSEGV` and a `SIGBUS` handler
//!    (`SA_SIGINFO | SA_ONSTACK`), remembering the previous actions;
//! 2. gives every worker thread an alternate signal stack (`sigaltstack`),
//!    unless it has one already (std gives its threads one when its own
//!    handler is installed), since the faulting stack has no room left;
//! 3. keeps, per worker, a [`GuardRecord`]: the guard range, usable size and
//!    name of the uthread it is running. The worker writes it before each
//!    resume and clears it after; the handler, on the same OS thread, reads
//!    it through a thread-local pointer.
//!
//! A fault inside the running uthread's guard range writes
//! `uthread '<name>' on worker N overflowed its stack (size S); raise it
//! with Builder::stack_size or RuntimeBuilder::stack_size` with `write(2)`
//! and aborts. Any other fault goes to the previous handler, or, when that
//! was the default action (or ignore), the default action is restored and
//! the faulting instruction re-runs and takes it.
//!
//! ## Async-signal safety
//!
//! The handler allocates nothing, takes no lock and calls only `write`,
//! `abort` and `sigaction`. The record is plain atomics; its name is a
//! pointer and length into the running uthread's `Box<str>`, which lives as
//! long as the worker's `Arc<Thread>` (held across the resume). The
//! thread-local is `const`-initialised with no destructor, as std's own
//! guard-page thread-local is.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{compiler_fence, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

/// What the overflow handler knows about one worker and the uthread it runs.
/// Written by the worker's OS thread only, read by its signal handler.
#[derive(Debug)]
pub(crate) struct GuardRecord {
    worker: usize,
    /// The running uthread's guard range `[lo, hi)`; `lo == hi`: none.
    lo: AtomicUsize,
    hi: AtomicUsize,
    /// Its usable stack size.
    usable: AtomicUsize,
    /// Its name (null: unnamed).
    name: AtomicPtr<u8>,
    name_len: AtomicUsize,
}

impl GuardRecord {
    pub(crate) fn new(worker: usize) -> GuardRecord {
        GuardRecord {
            worker,
            lo: AtomicUsize::new(0),
            hi: AtomicUsize::new(0),
            usable: AtomicUsize::new(0),
            name: AtomicPtr::new(std::ptr::null_mut()),
            name_len: AtomicUsize::new(0),
        }
    }

    /// About to resume a uthread with guard range `guard`, `usable` bytes of
    /// stack and `name` (which must outlive the matching [`clear`](Self::clear)).
    #[inline]
    pub(crate) fn set(&self, guard: (usize, usize), usable: usize, name: Option<&str>) {
        // ORDERING: relaxed stores read by a signal handler on this same OS
        // thread; the compiler fence keeps them before the resume (a fault
        // can only come after it).
        let (p, n) = name.map_or((std::ptr::null_mut(), 0), |s| (s.as_ptr() as *mut u8, s.len()));
        self.name.store(p, Relaxed);
        self.name_len.store(n, Relaxed);
        self.usable.store(usable, Relaxed);
        self.lo.store(guard.0, Relaxed);
        self.hi.store(guard.1, Relaxed);
        compiler_fence(Ordering::SeqCst);
    }

    /// The uthread switched out.
    #[inline]
    pub(crate) fn clear(&self) {
        // ORDERING: as in `set`: the handler runs on this OS thread, so
        // program order is all it sees; the fence keeps the stores after the
        // switch-out. `hi` goes first: between the two stores `lo < hi` is
        // already false, so no half-cleared range can match a fault.
        compiler_fence(Ordering::SeqCst);
        self.hi.store(0, Relaxed);
        self.lo.store(0, Relaxed);
    }
}

thread_local! {
    /// This worker thread's record (null on other threads).
    static RECORD: Cell<*const GuardRecord> = const { Cell::new(std::ptr::null()) };
}

/// The signals a guard-page hit raises, and the actions found before ours.
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

struct Previous(std::cell::UnsafeCell<[std::mem::MaybeUninit<libc::sigaction>; 2]>);
// SAFETY: written once inside `INSTALL` before our handler can run, read only
// afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(std::cell::UnsafeCell::new([std::mem::MaybeUninit::uninit(); 2]));
static INSTALL: Once = Once::new();

/// An alternate signal stack this module mapped for a worker thread.
#[derive(Debug)]
pub(crate) struct AltStack {
    /// `(mapping, len)` when we mapped one; `None` when the thread had one.
    map: Option<(usize, usize)>,
}

/// Bytes of the alternate signal stack (plus a guard page below).
const ALT_SIZE: usize = 64 * 1024;

/// Make the calling OS thread a worker for the handler: install the
/// handlers (once per process), give the thread an alternate signal stack
/// if it has none, and point the thread-local at `record` (which must stay
/// put until [`leave_worker`]).
pub(crate) fn enter_worker(record: &GuardRecord) -> AltStack {
    INSTALL.call_once(install);
    RECORD.with(|r| r.set(record));
    // SAFETY: querying only; `old` is written by the kernel.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries.
    let has = unsafe { libc::sigaltstack(std::ptr::null(), &mut old) } == 0 && old.ss_flags & libc::SS_DISABLE == 0;
    if has {
        return AltStack { map: None };
    }
    let page = super::page_size();
    let len = ALT_SIZE + page;
    // SAFETY: a fresh private anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return AltStack { map: None }; // no diagnostic, the usual SIGSEGV
    }
    // SAFETY: the first page lies inside the fresh mapping: it becomes the
    // alternate stack's own guard page.
    unsafe { libc::mprotect(p, page, libc::PROT_NONE) };
    let st = libc::stack_t { ss_sp: (p as usize + page) as *mut libc::c_void, ss_flags: 0, ss_size: ALT_SIZE };
    // SAFETY: `st` names memory that stays mapped until `leave_worker`
    // disables it.
    unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) };
    AltStack { map: Some((p as usize, len)) }
}

/// Undo [`enter_worker`] on the same thread.
pub(crate) fn leave_worker(alt: AltStack) {
    RECORD.with(|r| r.set(std::ptr::null()));
    if let Some((p, len)) = alt.map {
        let st = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: disables the alternate stack before its memory goes; we
        // are not running on it (no handler is active).
        unsafe {
            libc::sigaltstack(&st, std::ptr::null_mut());
            libc::munmap(p as *mut libc::c_void, len);
        }
    }
}

fn install() {
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: `PREVIOUS` is written here only, before the handler is
        // installed, under `INSTALL`; `sigaction` with a null new action
        // only queries.
        unsafe {
            let prev = (*PREVIOUS.0.get())[i].as_mut_ptr();
            if libc::sigaction(sig, std::ptr::null(), prev) != 0 {
                std::ptr::write_bytes(prev, 0, 1); // SIG_DFL
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let rec = RECORD.with(|r| r.get());
    // SAFETY: a non-null record is this worker's, alive while it runs.
    if let Some(rec) = unsafe { rec.as_ref() } {
        // ORDERING: relaxed: written by this same OS thread (`set`/`clear`),
        // which the signal interrupted; a fault inside the guard range can
        // only come from the uthread, after `set`'s compiler fence, so the
        // whole record is visible. Any other interruption point sees
        // `lo >= hi` or a range the address is outside of.
        let (lo, hi) = (rec.lo.load(Relaxed), rec.hi.load(Relaxed));
        if lo < hi && (lo..hi).contains(&addr) {
            report(rec);
            // SAFETY: async-signal-safe.
            unsafe { libc::abort() };
        }
    }
    let i = if sig == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: written before the handler was installed (see `install`).
    let prev = unsafe { (*PREVIOUS.0.get())[i].assume_init_ref() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and takes it (a core dump, as without us).
        // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed as a 3-argument one.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous handler was installed as a 1-argument one.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// Write the diagnostic with `write(2)` only.
fn report(rec: &GuardRecord) {
    // ORDERING: relaxed, as in `handler`: `report` runs only after a fault in
    // the range that `set` published last, after its name, length and size.
    let name_p = rec.name.load(Relaxed);
    let name: &[u8] = if name_p.is_null() {
        b"<unnamed>"
    } else {
        // SAFETY: pointer and length of the running uthread's name, alive
        // across the resume (see the module doc).
        // ORDERING: relaxed, as above.
        unsafe { std::slice::from_raw_parts(name_p, rec.name_len.load(Relaxed)) }
    };
    let mut w = [0u8; 20];
    let mut s = [0u8; 20];
    let parts: [&[u8]; 7] = [
        b"uthread '",
        name,
        b"' on worker ",
        fmt_usize(rec.worker, &mut w),
        b" overflowed its stack (size ",
        // ORDERING: relaxed, as above.
        fmt_usize(rec.usable.load(Relaxed), &mut s),
        b"); raise it with Builder::stack_size or RuntimeBuilder::stack_size\n",
    ];
    for p in parts {
        write_all(p);
    }
}

fn write_all(mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: `b` is valid for `b.len()` bytes; write(2) is
        // async-signal-safe.
        let n = unsafe { libc::write(libc::STDERR_FILENO, b.as_ptr().cast(), b.len()) };
        if n <= 0 {
            return;
        }
        b = &b[n as usize..];
    }
}

/// `v` in decimal, into `buf`, without allocating.
fn fmt_usize(mut v: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal() {
        let mut b = [0; 20];
        assert_eq!(super::fmt_usize(0, &mut b), b"0");
        assert_eq!(super::fmt_usize(65536, &mut b), b"65536");
        assert_eq!(super::fmt_usize(usize::MAX, &mut b), usize::MAX.to_string().as_bytes());
    }
}
