//! SIGINT and SIGTERM, turned into a call on a thread of our own.
//!
//! [`block`] masks both signals in the calling thread before any other
//! thread exists, so every thread inherits the mask and none is ever
//! interrupted by them; [`spawn_watcher`] starts a thread that takes them
//! with `sigwait(3)` and calls back. A second signal while stopping ends
//! the process at once (exit code 1), as an impatient operator expects.

use crate::Error;

fn set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    set
}

/// Blocks SIGINT and SIGTERM in the calling thread (call it before any
/// thread is started, so that all inherit the mask).
pub fn block() -> Result<(), Error> {
    let set = set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Error::io("pthread_sigmask", std::io::Error::from_raw_os_error(rc)));
    }
    Ok(())
}

/// Starts a thread that calls `on_signal(signal number)` on the first
/// SIGINT or SIGTERM and exits the process on the second.
pub fn spawn_watcher(on_signal: impl Fn(i32) + Send + 'static) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("kv-signals".into())
        .spawn(move || {
            let set = set();
            let mut seen = 0;
            loop {
                let mut sig = 0;
                // SAFETY: `set` is initialised and `sig` writable.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                seen += 1;
                if seen > 1 {
                    eprintln!("percore-kv: second signal {sig}: exiting now");
                    std::process::exit(1);
                }
                on_signal(sig);
            }
        })
        .map(|_| ())
        .map_err(|e| Error::io("spawn the signal thread", e))
}
