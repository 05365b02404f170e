//! Linux `membarrier(2)`.

const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no
    // memory of ours; an unknown command fails with EINVAL.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long, 0 as libc::c_long) }
}

/// Ask the kernel for private expedited membarrier. Returns whether it is
/// usable; registration is per process and idempotent.
pub(super) fn register_private_expedited() -> bool {
    let supported = membarrier(MEMBARRIER_CMD_QUERY);
    if supported < 0 || supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED == 0 {
        return false;
    }
    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
}

/// Every running thread of this process executes a full memory barrier
/// before this returns.
pub(super) fn private_expedited() {
    let rc = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    // NOTE: after a successful registration this command cannot fail (the
    // kernel documents no transient errors for it). If it ever did, readers
    // would be unprotected, so we refuse to continue rather than risk a
    // use-after-free.
    assert!(rc == 0, "membarrier(PRIVATE_EXPEDITED) failed after registration: {}", std::io::Error::last_os_error());
}
