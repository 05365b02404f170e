//! `PerCpuPool`: one pinned pool per CPU.

mod common;

use common::LONG;
use percore_pool::{Error, PerCpuPool, ThreadPool, PRI_NONE};

#[test]
fn each_cpu_pool_runs_on_its_cpu() {
    let pools = PerCpuPool::get(PRI_NONE).unwrap();
    let cpus = percore_cpu::allowed_cpus().unwrap();
    assert_eq!(pools.iter().count(), cpus.len());
    for &cpu in &cpus {
        let pool = pools.on(cpu).unwrap();
        assert_eq!(pool.cpu(), Some(cpu));
        for _ in 0..3 {
            assert_eq!(pool.spawn(percore_cpu::current_cpu).join().unwrap(), Some(cpu));
        }
        assert_eq!(pool.stats().pin_errors, 0);
    }
    assert!(pools.current().cpu().is_some());
    pools.drain().unwrap();
}

#[test]
fn current_is_the_pool_of_the_calling_cpu() {
    let pools = PerCpuPool::get(PRI_NONE).unwrap();
    let cpu = percore_cpu::allowed_cpus().unwrap()[0];
    let p = pools.clone();
    let got = std::thread::spawn(move || {
        percore_cpu::pin_current(cpu).unwrap();
        p.current().cpu()
    })
    .join()
    .unwrap();
    assert_eq!(got, Some(cpu));
}

#[test]
fn unknown_cpus_are_errors() {
    let pools = ThreadPool::builder().name("percpu-private").build_per_cpu().unwrap();
    assert!(matches!(pools.on(100_000), Err(Error::NoSuchCpu(100_000))));
    let first = pools.iter().next().unwrap().1;
    assert_eq!(first.spawn(|| 1).join().unwrap(), 1);
    first.drain_timeout(LONG).unwrap();
    assert!(format!("{pools:?}").starts_with('['));
}
