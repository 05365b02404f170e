//! Object-cache benchmarks: `percore-zone` against `Box` with the system
//! allocator, `Box` with mimalloc (in a child process, see
//! `bin/percore-bench-mimalloc.rs`), `sharded-slab` and `object-pool`; and an
//! SMR zone's alloc + deferred free against crossbeam-epoch's
//! `defer_destroy` of a `Box`.
//!
//! Every object is 64 bytes (`[u64; 8]`); every loop writes one word of it,
//! so that no implementation can skip touching the object. `Box` and
//! `sharded-slab` also initialise the whole object on every allocation (they
//! must); zones and pools keep the constructed object across reuse, which is
//! the point of an object cache.
//!
//! | bench | metric | what |
//! | --- | --- | --- |
//! | `zone_alloc_free` | `ns_per_pair` | alloc then free, on 1 and 2 threads at once (`threads`) |
//! | `zone_cross_thread` | `ns_per_pair` | one thread allocates, another frees (batches of 256 through a channel) |
//! | `zone_smr_free` | `ns_per_pair` | alloc + SMR-deferred free, one thread |

use crate::report::{Better, Report, Row};
use crate::zone_peer::{self, alloc_free, box_alloc, cross, ns_per_iter, Obj};
use crate::Budget;
use percore::smr::Smr;
use percore::zone::{SmrZone, ZBox, Zone};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn row(bench: &'static str, imp: &'static str, threads: usize, ns: f64) -> Row {
    Row::new(bench, imp, "ns_per_pair", ns, "ns", Better::Lower).field("threads", threads)
}

pub(crate) fn run(budget: Budget, report: &mut Report) {
    let target = budget.millis(200);
    let reps = if budget.quick { 2 } else { 3 };
    let zone = Zone::new("bench.zone", || [0u64; 8]).expect("a zone with a valid name");
    let slab = sharded_slab::Slab::<Obj>::new();
    let pool = object_pool::Pool::new(1024, || [0u64; 8]);

    let z_alloc = |i: u64| {
        let mut b = zone.try_alloc().expect("the zone has no limit");
        b[0] = i;
        b
    };
    let z_free = |b: ZBox<'_, Obj>| drop(b);
    let s_alloc = |i: u64| {
        let mut o = [0u64; 8];
        o[0] = i;
        slab.insert(o).expect("the slab has room")
    };
    let s_free = |k: usize| {
        std::hint::black_box(slab.take(k));
    };
    let p_alloc = |i: u64| {
        let mut r = pool.pull(|| [0u64; 8]);
        r[0] = i;
        r
    };
    let p_free = |r: object_pool::Reusable<'_, Obj>| drop(r);
    let b_free = |b: Box<Obj>| drop(b);

    for threads in [1, 2] {
        let m = |f: &mut dyn FnMut(u64) -> Duration| ns_per_iter(target, reps, f);
        let bench = "zone_alloc_free";
        report.push(row(bench, "percore", threads, m(&mut |n| alloc_free(threads, n, &z_alloc, &z_free))));
        report.push(row(bench, "box-system", threads, m(&mut |n| alloc_free(threads, n, &box_alloc, &b_free))));
        report.push(row(bench, "sharded-slab", threads, m(&mut |n| alloc_free(threads, n, &s_alloc, &s_free))));
        report.push(row(bench, "object-pool", threads, m(&mut |n| alloc_free(threads, n, &p_alloc, &p_free))));
    }
    let bench = "zone_cross_thread";
    report.push(row(bench, "percore", 2, ns_per_iter(target, reps, |n| cross(n, &z_alloc, &z_free))));
    report.push(row(bench, "box-system", 2, ns_per_iter(target, reps, |n| cross(n, &box_alloc, &b_free))));
    report.push(row(bench, "sharded-slab", 2, ns_per_iter(target, reps, |n| cross(n, &s_alloc, &s_free))));
    report.push(row(bench, "object-pool", 2, ns_per_iter(target, reps, |n| cross(n, &p_alloc, &p_free))));

    for (bench, threads, ns) in mimalloc_suite(target, reps) {
        report.push(row(bench, "mimalloc", threads, ns));
    }

    smr_free(target, reps, report);
}

/// `zone_smr_free`: alloc + deferred free through an SMR zone, against
/// crossbeam-epoch (`pin` per operation, the usual writer pattern, and with
/// one guard held across 64 operations, its best case).
fn smr_free(target: Duration, reps: usize, report: &mut Report) {
    let smr = Smr::new("bench.zone").expect("a valid SMR domain");
    let zone = SmrZone::new("bench.zone.smr", &smr, || std::array::from_fn::<AtomicU64, 8, _>(|_| AtomicU64::new(0)))
        .expect("a zone with a valid name");
    let bench = "zone_smr_free";
    let ns = ns_per_iter(target, reps, |n| {
        zone_peer::alloc_free(
            1,
            n,
            &|i| {
                let p = zone.alloc_raw().expect("the zone has no limit");
                // SAFETY: an allocated, constructed item.
                let item = unsafe { p.as_ref() };
                item[0].store(i, Ordering::Relaxed);
                p
            },
            &|p| {
                // SAFETY: allocated above, never published, freed once.
                unsafe { zone.free_raw(p) }
            },
        )
    });
    report.push(row(bench, "percore", 1, ns));

    let ns = ns_per_iter(target, reps, |n| {
        alloc_free(
            1,
            n,
            &|i| {
                let guard = crossbeam_epoch::pin();
                let mut o = crossbeam_epoch::Owned::new([0u64; 8]);
                o[0] = i;
                let shared = o.into_shared(&guard);
                // SAFETY: never published: no other thread can hold it.
                unsafe { guard.defer_destroy(shared) };
            },
            &|()| {},
        )
    });
    report.push(row(bench, "crossbeam-epoch", 1, ns));

    // NOTE: one guard across 64 deferrals must be flushed before it is
    // dropped. crossbeam collects (at most 8 bags of 64 objects) only every
    // 128th pin or on `flush`; a pin per 64 operations without `flush` seals
    // 128 bags per collection and frees 8: garbage grows without bound and
    // every allocation takes fresh memory (240-390 ns per pair in quick
    // mode before issue 15, slower than a pin per operation). `flush` is
    // crossbeam's documented way to hand the bag over and collect.
    let ns = ns_per_iter(target, reps, |n| {
        alloc_free(
            1,
            n.div_ceil(64),
            &|i| {
                let guard = crossbeam_epoch::pin();
                for j in 0..64 {
                    let mut o = crossbeam_epoch::Owned::new([0u64; 8]);
                    o[0] = i + j;
                    let shared = o.into_shared(&guard);
                    // SAFETY: as above.
                    unsafe { guard.defer_destroy(shared) };
                }
                guard.flush();
            },
            &|()| {},
        )
    });
    report.push(row(bench, "crossbeam-epoch-pin64", 1, ns));
}

/// Run the mimalloc helper binary and parse its lines. With `cargo run`
/// (which sets `CARGO`) the helper is built first, so it is never stale.
fn mimalloc_suite(target: Duration, reps: usize) -> Vec<(&'static str, usize, f64)> {
    let Ok(me) = std::env::current_exe() else { return Vec::new() };
    let helper = me.with_file_name(format!("percore-bench-mimalloc{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "percore-bench", "--bin", "percore-bench-mimalloc"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        if !cmd.status().is_ok_and(|s| s.success()) {
            eprintln!("zone: could not build percore-bench-mimalloc; skipping the mimalloc rows");
        }
    }
    let out = match Command::new(&helper).arg(target.as_millis().to_string()).arg(reps.to_string()).output() {
        Ok(o) if o.status.success() => o,
        _ => {
            eprintln!(
                "zone: {} did not run; skipping the mimalloc rows (cargo build --release -p percore-bench)",
                helper.display()
            );
            return Vec::new();
        }
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let bench = match it.next()? {
                "zone_alloc_free" => "zone_alloc_free",
                "zone_cross_thread" => "zone_cross_thread",
                _ => return None,
            };
            Some((bench, it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}
