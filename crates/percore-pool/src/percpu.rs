//! `PerCpuPool`: one pool per CPU, its threads pinned there
//! (`threadpool_percpu`).
//!
//! Shared per priority and reference counted like unbound pools, through a
//! registry of its own. The CPUs are those of the process's affinity mask
//! when the pool is created ([`percore_cpu::allowed_cpus`]).

use crate::pool::{Builder, Registry, ThreadPool};
use crate::priority::label;
use crate::Error;
use std::sync::Arc;

pub(crate) struct PerCpuInner {
    /// `(cpu, pool)`, ascending by CPU.
    pools: Vec<(usize, ThreadPool)>,
}

static PERCPU: Registry<PerCpuInner> = Registry::new();

struct Handle {
    inner: Arc<PerCpuInner>,
    shared: Option<i32>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(pri) = self.shared {
            PERCPU.put(pri, &self.inner);
        }
    }
}

/// A pool per CPU; each pool's overseer and workers are pinned to its CPU.
///
/// ```
/// use percore_pool::{PerCpuPool, PRI_NONE};
///
/// let pools = PerCpuPool::get(PRI_NONE).unwrap();
/// let cpu = percore_cpu::allowed_cpus().unwrap()[0];
/// let where_ran = pools.on(cpu).unwrap().spawn(percore_cpu::current_cpu).join().unwrap();
/// assert_eq!(where_ran, Some(cpu));
/// let _mine = pools.current(); // the pool of the CPU this thread runs on
/// assert!(pools.on(usize::MAX).is_err());
/// ```
#[derive(Clone)]
pub struct PerCpuPool {
    handle: Arc<Handle>,
}

impl PerCpuPool {
    /// A reference to the shared per-CPU pool of priority `pri`
    /// (`threadpool_percpu_get`); [`Error::InvalidPriority`] as for
    /// [`ThreadPool::get`].
    pub fn get(pri: i32) -> Result<PerCpuPool, Error> {
        let builder = Builder::new().priority(pri).name(format!("p@{}", label(pri)));
        builder.validated()?;
        let inner = PERCPU.get(pri, || create(&builder))?;
        inner.pools.iter().for_each(|(_, p)| p.publish());
        Ok(PerCpuPool { handle: Arc::new(Handle { inner, shared: Some(pri) }) })
    }

    pub(crate) fn from_builder(builder: &Builder) -> Result<PerCpuPool, Error> {
        builder.validated()?;
        let inner = Arc::new(create(builder)?);
        inner.pools.iter().for_each(|(_, p)| p.publish());
        Ok(PerCpuPool { handle: Arc::new(Handle { inner, shared: None }) })
    }

    /// The pool of the CPU the calling thread runs on now
    /// (`threadpool_percpu_ref`). Unless the caller is pinned it may move at
    /// once; that is harmless, the job just runs on the pool it was given.
    /// Where the CPU cannot be told, the first CPU's pool.
    pub fn current(&self) -> &ThreadPool {
        let pools = &self.handle.inner.pools;
        let here = percore_cpu::current_cpu();
        let i = here.and_then(|c| pools.iter().position(|(cpu, _)| *cpu == c)).unwrap_or(0);
        &pools[i].1
    }

    /// The pool of `cpu` (`threadpool_percpu_ref_remote`);
    /// [`Error::NoSuchCpu`] if it is not in the affinity mask.
    pub fn on(&self, cpu: usize) -> Result<&ThreadPool, Error> {
        self.handle.inner.pools.iter().find(|(c, _)| *c == cpu).map(|(_, p)| p).ok_or(Error::NoSuchCpu(cpu))
    }

    /// Every CPU's pool, ascending by CPU.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ThreadPool)> {
        self.handle.inner.pools.iter().map(|(c, p)| (*c, p))
    }

    /// [`ThreadPool::drain`] on every CPU's pool.
    pub fn drain(&self) -> Result<(), Error> {
        self.iter().try_for_each(|(_, p)| p.drain())
    }
}

impl std::fmt::Debug for PerCpuPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|(c, _)| c)).finish()
    }
}

/// One pinned pool per allowed CPU. On failure the pools made so far are
/// destroyed (dropped) before the error is returned.
fn create(builder: &Builder) -> Result<PerCpuInner, Error> {
    let cpus = percore_cpu::allowed_cpus()?;
    let mut pools = Vec::with_capacity(cpus.len());
    for cpu in cpus {
        let b = builder.clone().name(format!("{}-c{cpu}", builder.base_name())).on_cpu(cpu);
        pools.push((cpu, ThreadPool::from_pool(b.start()?)));
    }
    Ok(PerCpuInner { pools })
}

impl Builder {
    /// Create a private per-CPU pool with these settings: one pool per CPU
    /// in the affinity mask, its threads pinned there, each named
    /// `<name>-c<cpu>`.
    pub fn build_per_cpu(&self) -> Result<PerCpuPool, Error> {
        PerCpuPool::from_builder(self)
    }
}
