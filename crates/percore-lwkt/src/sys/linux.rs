//! Linux: `futex(2)` for the idle sleep, `mmap(2)` for uthread stacks.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// The futex queue of one word. The kernel keeps the queue; this type only
/// names the calls (under loom it owns an emulated queue instead).
#[derive(Debug, Default)]
pub(crate) struct Futex;

impl Futex {
    pub(crate) fn new() -> Self {
        Futex
    }

    /// Sleep while `*word == expected`, at most `timeout`. Returns on a wake,
    /// a timeout, a signal or a value mismatch: callers re-check their state.
    pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of
        // the call; the timespec (if any) outlives it. FUTEX_WAIT only reads.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, tsp);
        }
    }

    /// Wake every sleeper on `word`.
    pub(crate) fn wake(&self, word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only uses the address as a key.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

/// A uthread stack: one anonymous mapping, optionally with a `PROT_NONE`
/// guard page at its low end. Memory is committed lazily by the kernel
/// (`MAP_NORESERVE`), so a parked uthread costs only the pages it touched.
///
/// A guarded stack is two kernel mappings (VMAs); the process limit
/// `vm.max_map_count` (65,530 by default) therefore caps guarded stacks at
/// about 32,700. Unguarded stacks are one mapping each and adjacent ones
/// usually merge, at the price of silent memory corruption on overflow.
#[derive(Debug)]
pub(crate) struct Stack {
    base: usize,
    len: usize,
    usable: usize,
}

// SAFETY: a stack is plain memory owned by this value; it may be freed on any
// thread.
unsafe impl Send for Stack {}

impl Stack {
    /// Map a stack with at least `size` usable bytes.
    pub(crate) fn new(size: usize, guard: bool) -> io::Result<Stack> {
        let page = page_size();
        let usable = size.max(16 * 1024).checked_add(page - 1).ok_or(io::ErrorKind::InvalidInput)? & !(page - 1);
        let len = usable + if guard { page } else { 0 };
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let s = Stack { base: p as usize + len, len, usable };
        if guard {
            // SAFETY: the first page lies inside the mapping just created.
            if unsafe { libc::mprotect(p, page, libc::PROT_NONE) } != 0 {
                return Err(io::Error::last_os_error()); // `s` unmaps
            }
        }
        Ok(s)
    }

    /// Usable bytes (without the guard page).
    pub(crate) fn usable(&self) -> usize {
        self.usable
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: we own the mapping [base - len, base) and nothing uses it:
        // a coroutine gives its stack back only once it has finished.
        unsafe {
            libc::munmap((self.base - self.len) as *mut libc::c_void, self.len);
        }
    }
}

// SAFETY: `base` is the page-aligned (hence 16-byte aligned) top of a mapping
// this value owns, `limit` its bottom including the guard page; the memory
// stays mapped until the value is dropped.
unsafe impl corosensei::stack::Stack for Stack {
    #[inline]
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.base).expect("mapping is not at address 0")
    }

    #[inline]
    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.base - self.len).expect("mapping is not at address 0")
    }
}
