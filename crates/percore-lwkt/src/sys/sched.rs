//! Linux: what the kernel's scheduler says about one thread of this
//! process, for the watchdog (`worker/watchdog.rs`): its kernel thread id
//! (`gettid(2)`), the CPU time it has used, and whether it is blocked in
//! the kernel now.

use std::io::Read;

/// The calling thread's kernel thread id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: `gettid` has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// One reading of a thread's scheduler state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadSample {
    /// CPU time used so far, in ns (`schedstat`'s first field: updated at
    /// every tick and switch, so at most a tick behind).
    pub(crate) run_ns: u64,
    /// Whether it is blocked in the kernel (`stat`'s state `S` or `D`:
    /// sleeping, waiting for I/O or a lock) rather than running or waiting
    /// on a run queue (`R`).
    pub(crate) blocked: bool,
}

/// Read `/proc/self/task/<tid>/schedstat` and `.../stat`; `None` if either
/// cannot be read or parsed (no procfs, a kernel without schedstats).
pub(crate) fn thread_sample(tid: i32, buf: &mut String) -> Option<ThreadSample> {
    read(&format!("/proc/self/task/{tid}/schedstat"), buf)?;
    let run_ns = buf.split_ascii_whitespace().next()?.parse().ok()?;
    read(&format!("/proc/self/task/{tid}/stat"), buf)?;
    // `pid (comm) state ...`: the name may hold spaces and parentheses,
    // the state follows the last `)`.
    let state = buf.rsplit_once(')')?.1.split_ascii_whitespace().next()?;
    Some(ThreadSample { run_ns, blocked: matches!(state, "S" | "D") })
}

fn read(path: &str, buf: &mut String) -> Option<()> {
    buf.clear();
    std::fs::File::open(path).ok()?.read_to_string(buf).ok()?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's CPU time, exact (`CLOCK_THREAD_CPUTIME_ID`).
    fn cpu_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid out-pointer for the call.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    #[test]
    fn reads_its_own_thread() {
        let tid = gettid();
        assert!(tid > 0);
        let mut buf = String::new();
        let a = thread_sample(tid, &mut buf).expect("procfs with schedstat");
        assert!(!a.blocked, "the caller is running");
        // Use 50 ms of CPU (however long that takes on a loaded machine):
        // `run_ns` lags the exact figure by at most a tick (10 ms at
        // HZ=100), so it must have grown by more than 30 ms.
        let c0 = cpu_ns();
        while cpu_ns() - c0 < 50_000_000 {
            std::hint::spin_loop();
        }
        let b = thread_sample(tid, &mut buf).unwrap();
        assert!(b.run_ns - a.run_ns > 30_000_000, "{a:?} -> {b:?}");
    }

    #[test]
    fn a_sleeping_thread_is_blocked() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            let _ = done_rx.recv(); // blocks in the kernel until dropped
        });
        let tid = rx.recv().unwrap();
        let mut buf = String::new();
        // NOTE: it blocks right after sending; loop until it has (no
        // timing threshold: it gets there eventually).
        while !thread_sample(tid, &mut buf).unwrap().blocked {
            std::thread::yield_now();
        }
        drop(done_tx);
        h.join().unwrap();
    }
}
