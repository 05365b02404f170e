//! Linux: `pthread_setname_np(3)` and `setpriority(2)` on the thread's tid.

use std::ffi::CStr;
use std::io;

/// Set the calling thread's OS name (what `ps -L`, `top -H` and debuggers
/// show). `name` must be at most 15 bytes.
pub(crate) fn set_thread_name(name: &CStr) -> io::Result<()> {
    // SAFETY: pthread_self has no preconditions; `name` is a valid
    // NUL-terminated string that outlives the call, and the kernel copies it.
    let rc = unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Set the calling thread's nice value. On Linux the nice value is per
/// thread when addressed by tid (`setpriority(PRIO_PROCESS, tid, nice)`).
/// Raising priority (a lower nice than now) needs `CAP_SYS_NICE` or an
/// `RLIMIT_NICE`; without it this fails with `EACCES`/`EPERM`.
pub(crate) fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let tid = libc::id_t::try_from(tid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: setpriority only reads its integer arguments.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
