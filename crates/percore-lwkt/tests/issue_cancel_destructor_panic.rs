//! Issue 16 (also seen): dropping the runtime while a cancelled uthread holds
//! a value whose destructor panics.
//!
//! Scenario: a uthread parks for ever holding a `Bomb` whose `Drop` panics;
//! the runtime is dropped. Shutdown cancels the uthread by unwinding its
//! stack (the only way to run the destructors of what lives on it), so
//! `Bomb::drop` panics *during an unwind*, and Rust aborts the process on a
//! panic during unwinding ("panic in a destructor during cleanup"); no
//! library can catch that. The documented behaviour (on `Runtime`'s docs,
//! "Shutdown and destructors") is this loud abort with the destructor's own
//! panic message first, never a hang, a silent exit or undefined behaviour.
//! A destructor that does not panic runs normally at shutdown (second
//! scenario). The abort kills a process, so the test runs itself as a child.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD: &str = "PERCORE_LWKT_CANCEL_DROP_CHILD";

struct Bomb(bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 {
            panic!("Bomb::drop panics on purpose");
        }
        eprintln!("quiet destructor ran");
    }
}

fn run_child(scenario: &str) -> (String, std::process::ExitStatus) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, scenario)
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stderr).into_owned(), out.status)
}

/// The child side: does nothing unless `CHILD` names a scenario.
#[test]
fn child() {
    let Ok(what) = std::env::var(CHILD) else { return };
    let loud = what == "panicking";
    let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _h = rt
        .spawn(move || {
            let _bomb = Bomb(loud);
            tx.send(()).unwrap();
            loop {
                if percore_lwkt::park().is_err() {
                    // NOTE: the shutdown's wake-up; keep holding the bomb
                    // until the runtime unwinds this stack.
                    percore_lwkt::yield_now();
                }
            }
        })
        .unwrap();
    rx.recv().unwrap();
    drop(rt);
    eprintln!("runtime dropped");
}

#[test]
fn a_panicking_destructor_at_shutdown_aborts_loudly() {
    let (err, status) = run_child("panicking");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "status {status:?}, stderr:\n{err}");
    assert!(err.contains("Bomb::drop panics on purpose"), "stderr:\n{err}");
    assert!(!err.contains("runtime dropped"), "the drop returned after an abort?\n{err}");
}

#[test]
fn a_quiet_destructor_runs_at_shutdown() {
    let (err, status) = run_child("quiet");
    assert!(status.success(), "status {status:?}, stderr:\n{err}");
    assert!(err.contains("quiet destructor ran"), "stderr:\n{err}");
    assert!(err.contains("runtime dropped"), "stderr:\n{err}");
}
