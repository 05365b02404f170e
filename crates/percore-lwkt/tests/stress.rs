//! Bounded stress: 100,000 uthreads ping-ponging across two workers (10,000
//! in debug builds), migration under load, give-aways racing with
//! wake-ups, timed parks and sleeps racing with unparks, and the per-worker
//! record cache raced by spawns, joins and detached exits on three workers,
//! port calls racing their receiver's exit, and results handed across
//! workers through the join slot in the recycled record.
mod common;
use common::{scaled, stat, watchdog};
use percore_lwkt::{Builder, Error, Runtime};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

/// Pairs of uthreads, one on each worker, bounce a message `ROUNDS` times
/// through their ports (every round trip is two cross-worker IPIs and two
/// block / wake-ups). Waves of 1,000 pairs keep the number of live stacks
/// far below the mapping limit.
#[test]
fn hundred_thousand_uthreads_ping_pong() {
    watchdog("ping_pong", || {
        const ROUNDS: u64 = 4;
        let rt = Runtime::builder().workers(2).build().unwrap();
        let total = scaled(100_000);
        let wave = 2_000.min(total);
        let mut spawned = 0;
        let sum = Arc::new(AtomicU64::new(0));
        while spawned < total {
            let mut joins = Vec::new();
            for _ in 0..wave / 2 {
                let pong = Builder::new()
                    .worker(1)
                    .spawn_on(rt.handle(), || {
                        for _ in 0..ROUNDS {
                            let mut m = percore_lwkt::wait_msg(None).unwrap();
                            let x = m.take::<u64>().unwrap();
                            m.reply(x + 1);
                        }
                    })
                    .unwrap();
                let peer = pong.uthread().clone();
                let s = sum.clone();
                let ping = Builder::new()
                    .worker(0)
                    .spawn_on(rt.handle(), move || {
                        let mut x = 0u64;
                        for _ in 0..ROUNDS {
                            x = peer.call::<_, u64>(x).unwrap();
                        }
                        s.fetch_add(x, SeqCst);
                    })
                    .unwrap();
                joins.push(pong);
                joins.push(ping);
            }
            spawned += joins.len();
            for j in joins {
                j.join().unwrap();
            }
        }
        assert_eq!(sum.load(SeqCst), (spawned as u64 / 2) * ROUNDS);
        let stats = percore_cpu::stats::snapshot();
        let sent: u64 = stats.iter().filter(|(n, _)| n.ends_with("ipis_sent")).map(|(_, v)| *v).sum();
        assert!(sent > 0);
    });
}

/// Half the uthreads hop between workers while the other half yield and
/// sleep; every hop lands where asked and no uthread is lost.
#[test]
fn migration_under_load() {
    watchdog("migration_under_load", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let hops = Arc::new(AtomicU64::new(0));
        let n = scaled(2_000);
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let hops = hops.clone();
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        for k in 0..20usize {
                            if i % 2 == 0 {
                                let to = (i + k) % 2;
                                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                                unsafe { percore_lwkt::migrate(to) }.unwrap();
                                assert_eq!(percore_lwkt::worker_index(), Some(to));
                                hops.fetch_add(1, SeqCst);
                            } else if k % 5 == 0 {
                                percore_lwkt::sleep(std::time::Duration::from_micros(10)).unwrap();
                            } else {
                                percore_lwkt::yield_now();
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(hops.load(SeqCst), n.div_ceil(2) as u64 * 20);
    });
}

/// N uthreads count wake-ups in a park loop; one foreign thread keeps giving
/// them to the other worker (`Uthread::give_to`), another keeps unparking
/// them. Every uthread must reach its count (no wake-up lost to a hand-over),
/// each must run on the worker that owns it, and the workers' `given_away`
/// counters must add up to the successful give-aways.
#[test]
fn give_away_against_concurrent_unparks() {
    watchdog("give_away_against_concurrent_unparks", || {
        const N: usize = 8;
        let rounds = scaled(3_000) as u64;
        let rt = Runtime::builder().workers(2).name("giveaway-stress").build().unwrap();
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let (c, stop) = (counts.clone(), stop.clone());
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        let me = percore_lwkt::current().unwrap();
                        while !stop.load(SeqCst) {
                            percore_lwkt::park().unwrap();
                            assert_eq!(Some(me.worker()), percore_lwkt::worker_index());
                            c[i].fetch_add(1, SeqCst);
                        }
                    })
                    .unwrap()
            })
            .collect();
        let us: Vec<_> = hs.iter().map(|h| h.uthread().clone()).collect();
        let moved = Arc::new(AtomicU64::new(0));
        let (us2, stop2, moved2) = (us.clone(), stop.clone(), moved.clone());
        let giver = std::thread::spawn(move || {
            let mut x = 1u64;
            while !stop2.load(SeqCst) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = &us2[(x >> 33) as usize % N];
                // Only this thread moves them: the other worker is a real move.
                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                match unsafe { u.give_to(1 - u.worker()) } {
                    Ok(()) => drop(moved2.fetch_add(1, SeqCst)),
                    Err(Error::NotDescheduled) | Err(Error::Exited) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        // Unpark until every uthread has counted `rounds` wake-ups and some
        // give-aways succeeded (the uthreads are parked most of the time).
        while !(counts.iter().all(|c| c.load(SeqCst) >= rounds) && moved.load(SeqCst) >= 20) {
            for u in &us {
                u.unpark();
            }
            std::thread::yield_now();
        }
        stop.store(true, SeqCst);
        for u in &us {
            u.unpark();
        }
        for h in hs {
            h.join().unwrap();
        }
        giver.join().unwrap();
        let s = percore_cpu::stats::with_prefix("lwkt.giveaway-stress.");
        let given: u64 = s.iter().filter(|(n, _)| n.ends_with(".given_away")).map(|(_, v)| *v).sum();
        assert_eq!(given, moved.load(SeqCst), "{s:?}");
    });
}

/// Timed parks and sleeps on the timer wheel against concurrent unparks
/// (from another worker and from a foreign thread): every uthread finishes
/// (no lost wake-up, no entry left firing into a finished uthread), no
/// `sleep` returns before its duration, and the wheel entries cancelled by
/// early wake-ups leave nothing behind that keeps the runtime from shutting
/// down.
#[test]
fn timeouts_race_unparks() {
    watchdog("timeouts_race_unparks", timeouts_race_unparks_body);
}

fn timeouts_race_unparks_body() {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};
    let rt = Runtime::builder().workers(2).build().unwrap();
    let early = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..64u64)
        .map(|i| {
            let early = early.clone();
            Builder::new()
                .worker((i % 2) as usize)
                .spawn_on(rt.handle(), move || {
                    for k in 0..40u64 {
                        let d = Duration::from_micros((i * 7 + k * 13) % 400);
                        if k % 3 == 0 {
                            let t0 = Instant::now();
                            percore_lwkt::sleep(d).unwrap();
                            if t0.elapsed() < d {
                                early.fetch_add(1, SeqCst);
                            }
                        } else {
                            percore_lwkt::park_timeout(d).unwrap();
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    let us: Vec<_> = hs.iter().map(|h| h.uthread().clone()).collect();
    let u2 = us.clone();
    let unparker = rt
        .handle()
        .spawn(move || {
            for r in 0..2000usize {
                u2[(r * 31) % u2.len()].unpark();
                if r % 16 == 0 {
                    percore_lwkt::yield_now();
                }
            }
        })
        .unwrap();
    let foreign = std::thread::spawn(move || {
        for r in 0..2000usize {
            us[(r * 17) % us.len()].unpark();
        }
    });
    for h in hs {
        h.join().unwrap();
    }
    unparker.join().unwrap();
    foreign.join().unwrap();
    assert_eq!(early.load(SeqCst), 0, "a sleep returned before its duration");
    rt.shutdown_timeout(Duration::from_secs(30)).unwrap();
}

/// Issue 15: records of exited uthreads are recycled per worker (by the
/// joiner's worker, or by the owner when nobody holds a handle). One
/// spawner per worker spawns children on every worker in turn, with names
/// and priorities that vary; a third of them detached. Each child checks
/// that its record says what it was spawned with (a stale name, priority,
/// owner or id from the record's previous life is a mismatch) and carries a
/// value whose drops are counted: every child runs once, every value is
/// dropped once, ids never repeat, and the cache was used.
#[test]
fn record_cache_raced_by_spawns_on_many_workers() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static DROPS: AtomicU64 = AtomicU64::new(0);
    struct Tracked;
    impl Drop for Tracked {
        fn drop(&mut self) {
            DROPS.fetch_add(1, SeqCst);
        }
    }
    watchdog("record_cache", || {
        const WORKERS: usize = 3;
        let per_spawner = scaled(30_000) as u64;
        let rt = Runtime::builder().workers(WORKERS).pin(false).name("record-cache").build().unwrap();
        let runs = Arc::new(AtomicU64::new(0));
        let mismatches = Arc::new(AtomicU64::new(0));
        let ids = Arc::new(Mutex::new(HashSet::new()));
        let spawners: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (runs, mismatches, ids) = (runs.clone(), mismatches.clone(), ids.clone());
                Builder::new()
                    .worker(w)
                    .spawn_on(rt.handle(), move || {
                        let mut mine = Vec::new();
                        for k in 0..per_spawner {
                            let to = (w + k as usize) % WORKERS;
                            let pri = (k % 3) as u8 * 5;
                            let named = k % 2 == 0;
                            let mut b = Builder::new().worker(to).priority(pri);
                            if named {
                                b = b.name(format!("c{w}-{k}"));
                            }
                            let (r, m) = (runs.clone(), mismatches.clone());
                            let v = Tracked;
                            let h = b
                                .spawn(move || {
                                    let _v = v;
                                    r.fetch_add(1, SeqCst);
                                    let me = percore_lwkt::current().unwrap();
                                    let want = named.then(|| format!("c{w}-{k}"));
                                    if me.name() != want.as_deref() || me.priority() != pri || me.worker() != to {
                                        m.fetch_add(1, SeqCst);
                                    }
                                    if k % 7 == 0 {
                                        percore_lwkt::yield_now();
                                    }
                                    me.id()
                                })
                                .unwrap();
                            if k % 3 == 2 {
                                drop(h); // detached: its owner recycles the record
                            } else {
                                mine.push(h);
                            }
                            if mine.len() >= 16 {
                                for h in mine.drain(..) {
                                    // NOTE: joined before the std lock is taken: a
                                    // guard held across a block stalls the worker.
                                    let id = h.join().unwrap();
                                    assert!(ids.lock().unwrap().insert(id), "an id repeated");
                                }
                            }
                        }
                        for h in mine {
                            let id = h.join().unwrap();
                            assert!(ids.lock().unwrap().insert(id), "an id repeated");
                        }
                    })
                    .unwrap()
            })
            .collect();
        for s in spawners {
            s.join().unwrap();
        }
        let total = per_spawner * WORKERS as u64;
        // The detached children may still be running: wait for them.
        while runs.load(SeqCst) < total {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let reused: u64 = (0..WORKERS).map(|w| stat(&format!("lwkt.record-cache.w{w}.reused_records"))).sum();
        drop(rt);
        assert_eq!(runs.load(SeqCst), total);
        assert_eq!(mismatches.load(SeqCst), 0);
        assert_eq!(DROPS.load(SeqCst), total);
        let joined = (0..per_spawner).filter(|k| k % 3 != 2).count() as u64 * WORKERS as u64;
        assert_eq!(ids.lock().unwrap().len() as u64, joined);
        assert!(reused > 0, "no record was recycled");
    });
}

/// Calls racing their receiver's exit (the port slot, `uthread/portslot.rs`):
/// each receiver on worker 1 yields a few times, serves at most one message
/// without waiting, and exits (its port is closed then, or marked closed if
/// it was never opened). A caller on worker 0 and a foreign thread call it
/// at the same time: every call ends, with the reply or `NoReply` (never a
/// hang: a message stranded in a port opened after the close would wait for
/// ever), each reply is one a receiver sent, and the foreign thread's
/// `try_send` after the join finds the port closed.
#[test]
fn port_calls_race_the_exit() {
    watchdog("port_exit", || {
        let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
        let rounds = scaled(20_000) as u64;
        let (mut served, mut refused, mut took_all) = (0u64, 0u64, 0u64);
        for k in 0..rounds {
            let rx = Builder::new()
                .worker(1)
                .spawn_on(rt.handle(), move || {
                    for _ in 0..k % 3 {
                        percore_lwkt::yield_now();
                    }
                    match percore_lwkt::wait_msg(Some(std::time::Duration::ZERO)) {
                        Ok(mut m) => {
                            let x = m.take::<u64>().unwrap();
                            m.reply(x + 1);
                            1u64
                        }
                        Err(_) => 0,
                    }
                })
                .unwrap();
            let u = rx.uthread().clone();
            let caller = Builder::new().worker(0).spawn_on(rt.handle(), move || u.call::<u64, u64>(k)).unwrap();
            let outside = rx.uthread().call::<u64, u64>(k);
            let inside = caller.join().unwrap();
            let n = rx.uthread().clone();
            let took = rx.join().unwrap();
            for r in [inside, outside] {
                match r {
                    Ok(v) => {
                        assert_eq!(v, k + 1);
                        served += 1;
                    }
                    Err(Error::NoReply) => refused += 1,
                    Err(e) => panic!("call ended with {e:?}"),
                }
            }
            assert_eq!(served + refused, 2 * (k + 1));
            assert!(took <= 1);
            took_all += took;
            assert!(matches!(n.try_send(0u64), Err(Error::Exited)), "a port opened after the exit");
        }
        // Every reply came from a receiver that took its message.
        assert_eq!(served, took_all);
    });
}

/// The join slot in the record (`uthread/joinslot.rs`): results, inline
/// (`Result<(u64, Tracked), _>`) and boxed (`[u64; 32]` with a `Tracked`),
/// travel from uthreads on one worker to joiners on the other (blocking
/// joins, joins after `is_finished`, `.await`ed ones from a foreign
/// thread), some uthreads panic, some
/// are detached with their result never taken, and records are recycled
/// between all of these. Every result is taken once with its own value,
/// every value is dropped exactly once (a detached one when its record is
/// recycled or freed), panics arrive as `Panicked`.
#[test]
fn join_slot_results_across_workers() {
    static DROPS: AtomicU64 = AtomicU64::new(0);
    #[derive(Debug)]
    struct Tracked(u64);
    impl Drop for Tracked {
        fn drop(&mut self) {
            DROPS.fetch_add(1, SeqCst);
        }
    }
    watchdog("join_slot", || {
        let rounds = scaled(20_000) as u64;
        let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
        let made = Arc::new(AtomicU64::new(0));
        let m = made.clone();
        let joiner = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || {
                let (mut joined, mut panics) = (0u64, 0u64);
                for k in 0..rounds {
                    let m = m.clone();
                    match k % 4 {
                        0 => {
                            let h = Builder::new()
                                .worker(1)
                                .spawn(move || {
                                    m.fetch_add(1, SeqCst);
                                    (k, Tracked(k))
                                })
                                .unwrap();
                            let (v, t) = h.join().unwrap();
                            assert_eq!((v, t.0), (k, k));
                            joined += 1;
                        }
                        1 => {
                            let h = Builder::new()
                                .worker(1)
                                .spawn(move || {
                                    m.fetch_add(1, SeqCst);
                                    percore_lwkt::yield_now();
                                    ([k; 32], Tracked(k))
                                })
                                .unwrap();
                            let (v, t) = h.join().unwrap();
                            assert!(v == [k; 32] && t.0 == k);
                            joined += 1;
                        }
                        // NOTE: one in ten, so the panic messages stay few.
                        2 if k % 40 == 2 => {
                            let h = Builder::new()
                                .worker(1)
                                .spawn(move || -> Tracked {
                                    m.fetch_add(1, SeqCst);
                                    panic!("on purpose {k}")
                                })
                                .unwrap();
                            assert!(h.join().unwrap_err().is_panic());
                            panics += 1;
                        }
                        2 => {
                            let h = Builder::new()
                                .worker(1)
                                .spawn(move || {
                                    m.fetch_add(1, SeqCst);
                                    Tracked(k)
                                })
                                .unwrap();
                            while !h.is_finished() {
                                percore_lwkt::yield_now();
                            }
                            assert_eq!(h.join().unwrap().0, k);
                            joined += 1;
                        }
                        _ => {
                            // Detached: the result is never taken.
                            drop(
                                Builder::new()
                                    .worker(1)
                                    .spawn(move || {
                                        m.fetch_add(1, SeqCst);
                                        ([k; 32], Tracked(k))
                                    })
                                    .unwrap(),
                            );
                        }
                    }
                }
                (joined, panics)
            })
            .unwrap();
        // A foreign thread awaits uthreads on both workers meanwhile.
        let mut awaited = 0u64;
        for k in 0..rounds / 10 {
            let h = Builder::new().worker((k % 2) as usize).spawn_on(rt.handle(), move || Tracked(k)).unwrap();
            assert_eq!(percore_lwkt::block_on_future(h).unwrap().unwrap().0, k);
            awaited += 1;
        }
        let (joined, panics) = joiner.join().unwrap();
        assert_eq!(joined + panics, rounds - rounds / 4);
        // Detached uthreads may still be running: wait for them, then for
        // the runtime's drop (records freed with their workers).
        while made.load(SeqCst) < rounds {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(rt);
        // One `Tracked` per round but the panicking ones, joined or
        // detached, and one per awaited uthread: each dropped once.
        assert_eq!(panics, (0..rounds).filter(|k| k % 40 == 2).count() as u64);
        assert_eq!(DROPS.load(SeqCst), rounds - panics + awaited);
    });
}
