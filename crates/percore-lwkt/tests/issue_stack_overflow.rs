//! Issue 13: a uthread that overflows its stack must say so before the
//! process dies, instead of a bare SIGSEGV.
//!
//! Scenario: a uthread named `deep` recurses without bound (each frame keeps
//! a 1 KiB array alive through `black_box`) on a 64 KiB stack. Its frames
//! walk into the guard page below the stack. Before the fix the process died
//! of SIGSEGV with nothing on stderr (std's handler only knows the OS
//! thread's own guard page); now the runtime's SIGSEGV handler recognises
//! the uthread's guard page, writes
//! `uthread 'deep' on worker 0 overflowed its stack (size 65536); raise it
//! with Builder::stack_size or RuntimeBuilder::stack_size` and aborts.
//!
//! The overflow must kill a process, so the test runs itself as a child
//! (`std::process::Command` on this test binary, with `CHILD` selecting the
//! scenario) and checks the child's stderr and exit.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD: &str = "PERCORE_LWKT_OVERFLOW_CHILD";

#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let buf = black_box([n as u8; 1024]);
    black_box(recurse(n + 1)) + buf[(n % 1024) as usize] as u64
}

/// Run the named child scenario; returns (stderr, status).
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
    match what.as_str() {
        "uthread" => {
            let rt = percore_lwkt::Runtime::builder().workers(1).stack_size(64 * 1024).build().unwrap();
            let h = percore_lwkt::Builder::new().name("deep").spawn_on(rt.handle(), || recurse(0)).unwrap();
            let _ = h.join();
            unreachable!("the overflow returned");
        }
        "segv" => {
            // A fault that is no uthread's overflow keeps its usual death
            // (the handler chains to the previous action).
            let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
            let h = rt
                .spawn(|| {
                    // SAFETY: none: the point is to fault (address 64 is never mapped).
                    unsafe { std::ptr::read_volatile(64 as *const u64) }
                })
                .unwrap();
            let _ = h.join();
            unreachable!("the fault returned");
        }
        _ => panic!("unknown scenario {what}"),
    }
}

#[test]
fn uthread_overflow_is_reported() {
    let (stderr, status) = run_child("uthread");
    assert!(!status.success(), "the child survived an overflow: {stderr}");
    assert!(
        stderr.contains(
            "uthread 'deep' on worker 0 overflowed its stack (size 65536); \
             raise it with Builder::stack_size or RuntimeBuilder::stack_size"
        ),
        "no diagnostic; the child's stderr:\n{stderr}"
    );
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}: {stderr}");
}

#[test]
fn other_faults_keep_their_default_action() {
    let (stderr, status) = run_child("segv");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status:?}: {stderr}");
    assert!(!stderr.contains("overflowed its stack"), "{stderr}");
}

/// The default stack (256 KiB, was 64 KiB) holds a 64 KiB local array.
#[test]
fn default_stack_holds_a_64k_array() {
    let rt = percore_lwkt::Runtime::builder().workers(1).build().unwrap();
    let v = rt
        .block_on(|| {
            let a = black_box([7u8; 64 * 1024]);
            a.iter().map(|&b| b as u64).sum::<u64>()
        })
        .unwrap();
    assert_eq!(v, 7 * 64 * 1024);
}
