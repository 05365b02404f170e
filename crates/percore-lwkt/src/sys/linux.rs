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

pub(super) fn page_size() -> usize {
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
    /// Tells valgrind the mapping is a stack, so that it follows the
    /// switches onto it instead of reporting every access ("client switching
    /// stacks?"); a no-op instruction sequence elsewhere (issue 16).
    /// Deregistered (dropped) before the mapping goes.
    valgrind: std::mem::ManuallyDrop<corosensei::stack::valgrind::ValgrindStackRegistration>,
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
        let valgrind = corosensei::stack::valgrind::ValgrindStackRegistration::new(p.cast::<u8>(), len);
        let s = Stack { base: p as usize + len, len, usable, valgrind: std::mem::ManuallyDrop::new(valgrind) };
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

    /// The guard page's address range `[lo, hi)`; empty when unguarded.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        let lo = self.base - self.len;
        (lo, lo + (self.len - self.usable))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, before the mapping it names goes.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.valgrind) };
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

/// A worker's kernel epoll instance and the eventfd that kicks it out of
/// `epoll_wait` (the `Notified::Poller` wake-up of the idle protocol).
#[derive(Debug)]
pub(crate) struct Poller {
    epfd: std::os::fd::OwnedFd,
    kick: std::os::fd::OwnedFd,
}

/// The epoll token of the kick eventfd; drivers may not use it.
pub(crate) const KICK_TOKEN: u64 = u64::MAX;

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain system calls; the results are checked and owned.
        let (epfd, kick) = unsafe {
            let e = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if e < 0 {
                return Err(io::Error::last_os_error());
            }
            let epfd = std::os::fd::OwnedFd::from_raw_fd(e);
            let k = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if k < 0 {
                return Err(io::Error::last_os_error());
            }
            (epfd, std::os::fd::OwnedFd::from_raw_fd(k))
        };
        let p = Poller { epfd, kick };
        use std::os::fd::AsRawFd;
        p.ctl(libc::EPOLL_CTL_ADD, p.kick.as_raw_fd(), libc::EPOLLIN as u32, KICK_TOKEN)?;
        Ok(p)
    }

    /// `epoll_ctl(op, fd, events, token)`.
    pub(crate) fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` outlives the call; the kernel validates `fd`.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Wait at most `timeout` (`None`: forever) for events; fills `buf` and
    /// returns how many. The kick eventfd is reset here and reported with
    /// [`KICK_TOKEN`]. Interrupted waits return 0.
    pub(crate) fn wait(&self, buf: &mut [libc::epoll_event], timeout: Option<Duration>) -> usize {
        use std::os::fd::AsRawFd;
        let ms = match timeout {
            None => -1,
            // NOTE: round up, so a 0.3 ms deadline is not a busy poll.
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        // SAFETY: `buf` is valid for `buf.len()` events.
        let n = unsafe { libc::epoll_wait(self.epfd.as_raw_fd(), buf.as_mut_ptr(), buf.len() as i32, ms) };
        if n <= 0 {
            return 0;
        }
        let n = n as usize;
        if buf[..n].iter().any(|e| e.u64 == KICK_TOKEN) {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into `v`; a nonblocking eventfd.
            unsafe { libc::read(self.kick.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
        n
    }

    /// Wake a thread blocked in [`Poller::wait`].
    pub(crate) fn kick(&self) {
        use std::os::fd::AsRawFd;
        let v = 1u64;
        // SAFETY: writes 8 bytes from `v`; EAGAIN (counter full) means a kick
        // is pending already.
        unsafe { libc::write(self.kick.as_raw_fd(), (&v as *const u64).cast(), 8) };
    }
}
