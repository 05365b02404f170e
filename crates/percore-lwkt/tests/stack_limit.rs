//! Spawning until the OS refuses more stacks gives a clear error, never a
//! panic or an abort. Alone in its binary: while the mapping limit is hit,
//! every other allocation by mmap in the process could fail too.
mod common;
use common::watchdog;
use percore_lwkt::{Error, Runtime};
use std::time::Duration;

#[test]
fn spawn_until_the_mapping_limit() {
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if limit > 200_000 {
        eprintln!("vm.max_map_count = {limit}: too high to reach in a test, skipped");
        return;
    }
    watchdog("stack_limit", move || {
        static CHAN: u8 = 0;
        let rt = Runtime::builder().workers(2).stack_size(16 * 1024).build().unwrap();
        let mut hs = Vec::new();
        let err = loop {
            match rt.spawn(|| percore_lwkt::tsleep(&CHAN, Some(Duration::from_secs(300)))) {
                Ok(h) => hs.push(h),
                Err(e) => break e,
            }
            assert!(hs.len() <= limit, "the mapping limit was never hit");
        };
        assert!(matches!(err, Error::StackExhausted { .. }), "{err}");
        assert!(err.to_string().contains("vm.max_map_count"), "{err}");
        let spawned = hs.len();
        assert!(spawned > limit / 4, "only {spawned} uthreads before the limit");
        let mut woken = 0;
        while woken < spawned {
            woken += percore_lwkt::wakeup(&CHAN);
            std::thread::sleep(Duration::from_millis(1));
        }
        for h in hs {
            h.join().unwrap().unwrap();
        }
        // Usable again afterwards.
        assert_eq!(rt.block_on(|| 1).unwrap(), 1);
        eprintln!("{spawned} guarded uthreads before: {err}");
    });
}
