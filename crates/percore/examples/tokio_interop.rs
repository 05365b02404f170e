//! Calling into a tokio runtime from a uthread, and awaiting a uthread from
//! tokio (issue 13, "async interop, both ways"). Bounded: it checks its
//! results and exits.
//!
//! * **uthread -> tokio.** A future that needs tokio's reactor (its timers,
//!   sockets, channels) must run on tokio: spawn it there with a
//!   `tokio::runtime::Handle` and wait for the `tokio::task::JoinHandle`
//!   with [`percore::block_on_future`]. The uthread parks (its worker runs
//!   other uthreads) and tokio's waker unparks it when the task ends.
//! * **tokio -> uthread.** A [`percore::JoinHandle`] is a `Future`: an async
//!   task spawns a uthread through a [`percore::Handle`] and `.await`s it,
//!   without blocking tokio's worker thread.
//!
//! Neither runtime's threads block on the other's; the two exchange wakers.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let percore_rt = percore::Runtime::builder().workers(2).build().unwrap();

    // uthread -> tokio: spawn onto tokio, await with block_on_future. One
    // worker's neighbour keeps counting meanwhile: the worker is not blocked.
    let tokio = tokio_rt.handle().clone();
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let (sum, ticked) = percore_rt
        .block_on(move || {
            let me = percore::lwkt::worker_index().unwrap();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s = stop.clone();
            let neighbour = percore::Builder::new()
                .worker(me)
                .spawn(move || {
                    while !s.load(SeqCst) {
                        t.fetch_add(1, SeqCst);
                        percore::time::sleep(Duration::from_millis(1)).unwrap();
                    }
                })
                .unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(8);
            let producer = tokio.spawn(async move {
                for i in 1..=10 {
                    tokio::time::sleep(Duration::from_millis(5)).await; // tokio's timer
                    tx.send(i).await.unwrap();
                }
            });
            let consumer = tokio.spawn(async move {
                let mut sum = 0;
                while let Some(i) = rx.recv().await {
                    sum += i;
                }
                sum
            });
            let sum = percore::block_on_future(consumer).unwrap().unwrap();
            percore::block_on_future(producer).unwrap().unwrap();
            stop.store(true, SeqCst);
            neighbour.join().unwrap();
            (sum, ticks.load(SeqCst))
        })
        .unwrap();
    assert_eq!(sum, 55);
    assert!(ticked >= 5, "the neighbour uthread ran {ticked} times while tokio worked");
    println!("uthread -> tokio: sum {sum}, neighbour ran {ticked} times meanwhile");

    // tokio -> uthread: a task awaits a uthread's JoinHandle.
    let percore = percore_rt.handle().clone();
    let v = tokio_rt.block_on(async move {
        let h = percore
            .spawn(|| {
                percore::time::sleep(Duration::from_millis(10)).unwrap(); // parks the uthread
                6 * 7
            })
            .unwrap();
        let (v, ()) = tokio::join!(h, tokio::time::sleep(Duration::from_millis(1)));
        v.unwrap()
    });
    assert_eq!(v, 42);
    // A uthread's panic reaches the task as its JoinError.
    let percore = percore_rt.handle().clone();
    let e = tokio_rt.block_on(async move { percore.spawn(|| -> u32 { panic!("uthread boom") }).unwrap().await });
    assert_eq!(e.unwrap_err().panic_message(), Some("uthread boom"));
    println!("tokio -> uthread: {v}");
}
