//! tsleep / wakeup, tokens and message ports.
mod common;
use common::{scaled, watchdog};
use percore_lwkt::{Builder, Error, Runtime, Token};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// 10,000 sleepers with timeouts, across two workers: half are woken by
/// `wakeup`, half by their own timeout; every one returns.
#[test]
fn ten_thousand_sleepers_all_woken() {
    watchdog("10k_sleepers", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        static WOKEN_CHAN: u8 = 0;
        static TIMEOUT_CHAN: u8 = 0;
        let n = 10_000;
        let asleep = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let asleep = asleep.clone();
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        asleep.fetch_add(1, SeqCst);
                        if i % 2 == 0 {
                            percore_lwkt::tsleep(&WOKEN_CHAN, Some(Duration::from_secs(100)))
                        } else {
                            percore_lwkt::tsleep(&TIMEOUT_CHAN, Some(Duration::from_millis(1 + (i % 50) as u64)))
                        }
                    })
                    .unwrap()
            })
            .collect();
        let mut woken = 0;
        while woken < n / 2 {
            woken += percore_lwkt::wakeup(&WOKEN_CHAN);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(woken, n / 2);
        let (mut ok, mut timed_out) = (0, 0);
        for h in hs {
            match h.join().unwrap() {
                Ok(()) => ok += 1,
                Err(Error::TimedOut) => timed_out += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((ok, timed_out), (n / 2, n / 2));
        assert_eq!(asleep.load(SeqCst), n);
    });
}

#[test]
fn wakeup_one_wakes_in_fifo_order() {
    watchdog("wakeup_one", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        static CHAN: u8 = 0;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let o = order.clone();
                rt.spawn(move || {
                    percore_lwkt::tsleep(&CHAN, None).unwrap();
                    o.lock().unwrap().push(i);
                })
                .unwrap()
            })
            .collect();
        let mut done = 0;
        while done < 5 {
            if percore_lwkt::wakeup_one(&CHAN) == 1 {
                done += 1;
                // Wait until the woken one has logged before waking the next.
                while order.lock().unwrap().len() < done {
                    std::thread::yield_now();
                }
            } else {
                std::thread::yield_now();
            }
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    });
}

/// A counter protected by a token, with blocking (yield and sleep) inside
/// the section. The token is released while its owner is switched out, so
/// each uninterrupted stretch is exclusive: no update is lost, and no one
/// else is ever inside at the same time.
#[test]
fn token_counter_with_blocking_inside() {
    watchdog("token_counter", || {
        static TOKEN: Token = Token::new();
        let rt = Runtime::builder().workers(2).build().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let inside = Arc::new(AtomicBool::new(false));
        let per = scaled(2_000) as u64;
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let (count, inside) = (count.clone(), inside.clone());
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        let bump = || {
                            assert!(!inside.swap(true, SeqCst), "two holders of an exclusive token");
                            let v = count.load(SeqCst);
                            std::hint::spin_loop();
                            count.store(v + 1, SeqCst);
                            inside.store(false, SeqCst);
                        };
                        for k in 0..per {
                            let _g = TOKEN.lock().unwrap();
                            bump();
                            if k % 3 == 0 {
                                percore_lwkt::yield_now();
                            } else if k % 50 == 1 {
                                percore_lwkt::sleep(Duration::from_micros(50)).unwrap();
                            }
                            bump(); // re-taken by the scheduler before we ran again
                            if i % 2 == 0 && k % 97 == 0 {
                                // SAFETY: the moved uthread keeps nothing `!Send` across the move.
                                unsafe { percore_lwkt::migrate((percore_lwkt::worker_index().unwrap() + 1) % 2) }
                                    .unwrap();
                                bump();
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let migrations: u64 = 4 * per.div_ceil(97);
        assert_eq!(count.load(SeqCst), 8 * 2 * per + migrations);
        assert!(!TOKEN.is_locked());
    });
}

#[test]
fn shared_tokens_and_recursion() {
    watchdog("shared_tokens", || {
        static T: Token = Token::new();
        let rt = Runtime::builder().workers(2).build().unwrap();
        let readers = Arc::new(AtomicUsize::new(0));
        let max_readers = Arc::new(AtomicUsize::new(0));
        // NOTE: a start gate, so that each worker's two uthreads are both in
        // their loops and alternate at every yield: overlap is then certain,
        // not a matter of timing.
        let started = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (r, m, st) = (readers.clone(), max_readers.clone(), started.clone());
                Builder::new()
                    .rotate()
                    .spawn_on(rt.handle(), move || {
                        st.fetch_add(1, SeqCst);
                        while st.load(SeqCst) < 4 {
                            percore_lwkt::yield_now();
                        }
                        for _ in 0..scaled(500) {
                            let _g = T.lock_shared().unwrap();
                            let _again = T.lock_shared().unwrap(); // recursive
                            let now = r.fetch_add(1, SeqCst) + 1;
                            m.fetch_max(now, SeqCst);
                            percore_lwkt::yield_now();
                            r.fetch_sub(1, SeqCst);
                        }
                    })
                    .unwrap()
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(max_readers.load(SeqCst) >= 2, "shared holders never overlapped");
        assert!(!T.is_locked());
        rt.block_on(|| {
            let _e = T.lock().unwrap();
            let _s = T.lock_shared().unwrap(); // shared under exclusive: recursive
            drop(_e); // out of order: the shared reference inherits the hold
            assert!(T.is_locked());
        })
        .unwrap();
        assert!(!T.is_locked());
        let e = rt
            .block_on(|| {
                let _s = T.lock_shared().unwrap();
                T.lock().map(|_| ())
            })
            .unwrap();
        assert!(matches!(e, Err(Error::TokenUpgrade)));
        assert!(matches!(T.lock(), Err(Error::NotUthread)));
    });
}

#[test]
fn ports_send_call_reply() {
    watchdog("ports", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let server = Builder::new()
            .worker(1)
            .spawn_on(rt.handle(), || {
                let mut served = 0;
                loop {
                    let mut m = percore_lwkt::wait_msg(None).unwrap();
                    if let Some(x) = m.take::<u64>() {
                        m.reply(x * 2);
                        served += 1;
                    } else if m.get::<&str>() == Some(&"drop me") {
                        drop(m); // the caller gets NoReply
                    } else if m.get::<&str>() == Some(&"stop") {
                        return served;
                    }
                }
            })
            .unwrap();
        let s = server.uthread().clone();
        let s2 = s.clone();
        let sum = Builder::new()
            .worker(0)
            .spawn_on(rt.handle(), move || (0..100u64).map(|i| s2.call::<_, u64>(i).unwrap()).sum::<u64>())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(sum, 9900);
        assert_eq!(s.call::<_, u64>(5u64).unwrap(), 10); // from a foreign thread
        assert!(matches!(s.call::<_, u64>("drop me"), Err(Error::NoReply)));
        assert!(matches!(s.call::<_, String>(1u64), Err(Error::NoReply)));
        s.send("stop");
        assert_eq!(server.join().unwrap(), 102);
    });
}

/// A caller never waits forever on a uthread that exits without answering.
#[test]
fn call_to_an_exited_uthread_gets_no_reply() {
    watchdog("port_closed", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let quitter = rt.spawn(|| percore_lwkt::sleep(Duration::from_millis(5)).unwrap()).unwrap();
        let u = quitter.uthread().clone();
        // Queued before the exit, or posted after: either way NoReply.
        let caller = std::thread::spawn(move || u.call::<_, u32>(1u32));
        quitter.join().unwrap();
        assert!(matches!(caller.join().unwrap(), Err(Error::NoReply)));
        let u = rt.spawn(|| ()).unwrap();
        let t = u.uthread().clone();
        u.join().unwrap();
        assert!(matches!(t.call::<_, u32>(2u32), Err(Error::NoReply)));
    });
}
