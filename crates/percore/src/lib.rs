//! # percore
//!
//! A kernel-grade concurrency runtime for userspace Rust: BSD kernel
//! mechanisms, re-created in userspace and joined into one design. This is the
//! facade crate: depend on it alone. It offers the everyday surface under the
//! names other runtimes use, and re-exports each subsystem whole for the rest.
//!
//! ## The everyday surface
//!
//! | item | what |
//! | --- | --- |
//! | [`run`] | start a runtime with the defaults, run a closure on a uthread, return its value |
//! | [`spawn`], [`Builder`], [`JoinHandle`] | start a uthread (a stackful light-weight thread) and join it (or `.await` it) |
//! | [`block_on_future`] | wait on any `Future` from a uthread without blocking its worker |
//! | [`Runtime`], [`RuntimeBuilder`], [`Handle`] | a runtime with chosen workers, stacks and pinning |
//! | [`net`] | TCP, UDP and Unix sockets whose blocking parks the uthread, not the worker; `Epoll` |
//! | [`time`] | [`time::sleep`], [`time::timeout`], [`time::Alarm`] |
//! | [`sync`] | tokens, wait channels (`tsleep`/`wakeup`), message ports, event queues |
//! | [`stats`] | every counter of every subsystem, in one list |
//!
//! ```
//! use percore::net::{TcpListener, TcpStream};
//! use std::io::{Read, Write};
//!
//! let echoed = percore::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = percore::spawn(move || {
//!         let (mut conn, _) = listener.accept().unwrap();
//!         let mut buf = [0u8; 4];
//!         conn.read_exact(&mut buf).unwrap(); // parks this uthread only
//!         conn.write_all(&buf).unwrap();
//!     })
//!     .unwrap();
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.write_all(b"ping").unwrap();
//!     let mut back = [0u8; 4];
//!     client.read_exact(&mut back).unwrap();
//!     server.join().unwrap();
//!     back
//! });
//! assert_eq!(&echoed, b"ping");
//! ```
//!
//! ## The subsystems
//!
//! | module | what | after |
//! | --- | --- | --- |
//! | [`cpu`] | topology, pinning, per-CPU storage, sharded counters, stats tree | `counter(9)`, `zpcpu` |
//! | [`smr`] | safe memory reclamation with fence-free readers | FreeBSD GUS, `smr(9)` |
//! | [`zone`] | object caches with per-thread buckets, slabs, limits; type-stable SMR zones | UMA, `kmem_cache`, `UMA_ZONE_SMR` |
//! | [`pool`] | thread pools and jobs, per-CPU pools, spawn, delayed jobs | NetBSD `threadpool(9)` |
//! | [`lwkt`] | per-CPU workers, stackful light-weight threads, IPIs, tokens, `tsleep`/`wakeup`, ports | DragonFly LWKT |
//! | [`evq`] | event queues, coalescing queues, per-worker alarms, epoll for uthreads, sockets | Akaros event queues and epoll |
//!
//! The memcached-compatible server built on all of this, percore-kv, lives
//! in the repository's `apps/percore-kv`; the design map is
//! `docs/DESIGN.md`.
//!
//! ## Never block the worker
//!
//! A uthread runs on its worker's OS thread and scheduling is cooperative:
//! the worker switches to another uthread only when the running one reaches
//! a *scheduling point* (a percore blocking call, [`lwkt::yield_now`],
//! [`lwkt::maybe_yield`], or its return). Code that blocks the OS thread
//! instead stalls every uthread of that worker for as long as it blocks:
//!
//! * `std::thread::sleep` (use [`time::sleep`]);
//! * `std::net` sockets and other blocking system calls (use [`net`], or
//!   move the call to a thread pool with [`lwkt::block_in_pool`]);
//! * a `std::sync::Mutex` or `Condvar` held across a scheduling point:
//!   another uthread that then waits for it blocks its worker's OS thread,
//!   and if the holder belongs to that same worker it can never run to
//!   release it, a deadlock (use a [`sync::Token`], which is released
//!   whenever its holder blocks);
//! * a long computation without [`lwkt::maybe_yield`] in its loop.
//!
//! ## Choices
//!
//! * **`run`, not `#[percore::main]`.** A uthread's body is an ordinary
//!   closure, not a future, so there is nothing for an attribute to rewrite:
//!   tokio needs `#[tokio::main]` because `main` cannot be `async`, percore
//!   does not. A plain function keeps the entry point visible (what it
//!   starts, what it returns, where a panic goes), costs no proc-macro crate
//!   (no `syn`/`quote` in every user's build) and composes:
//!   `fn main() -> Result<..> { percore::run(|| ...) }`.
//! * **No prelude.** A prelude earns its place when many traits must be in
//!   scope for methods to resolve. Here the only traits a user needs are
//!   `std::io::{Read, Write}` (for the sockets), which std owns; everything
//!   else is a type or a function one path away.
//!
//! ```
//! use percore::smr::Smr;
//!
//! let smr = Smr::new("doc").unwrap();
//! {
//!     let _guard = smr.enter(); // readers pay no fence
//! }
//! let unlinked = Box::into_raw(Box::new(42u64));
//! // SAFETY: from Box::into_raw, reachable by no reader, retired once.
//! unsafe { smr.retire(unlinked) }; // freed once no reader can still see it
//! smr.flush().unwrap();
//! assert!(percore::stats().iter().any(|(name, _)| name.starts_with("smr.doc.")));
//! ```

pub use percore_cpu as cpu;
pub use percore_evq as evq;
pub use percore_lwkt as lwkt;
pub use percore_pool as pool;
pub use percore_smr as smr;
pub use percore_zone as zone;

pub mod net;
pub mod sync;
pub mod time;

/// The runtime: per-CPU workers running uthreads ([`lwkt::Runtime`]).
///
/// ```
/// let rt = percore::Runtime::builder().workers(1).build().unwrap();
/// assert_eq!(rt.block_on(|| 40 + 2).unwrap(), 42);
/// ```
pub use percore_lwkt::Runtime;

/// Configures a [`Runtime`]: workers, pinning, stack size, guard pages
/// ([`lwkt::RuntimeBuilder`]).
///
/// ```
/// let builder: percore::RuntimeBuilder = percore::Runtime::builder().workers(2).stack_size(128 * 1024);
/// let rt = builder.build().unwrap();
/// assert_eq!(rt.workers(), 2);
/// ```
pub use percore_lwkt::RuntimeBuilder;

/// A cloneable reference to a [`Runtime`], usable from any thread
/// ([`lwkt::Handle`]).
///
/// ```
/// let rt = percore::Runtime::builder().workers(1).build().unwrap();
/// let handle = rt.handle().clone();
/// let v = std::thread::spawn(move || handle.spawn(|| 7).unwrap().join().unwrap());
/// assert_eq!(v.join().unwrap(), 7);
/// ```
pub use percore_lwkt::Handle;

/// Options for one uthread: name, priority, worker, stack size
/// ([`lwkt::Builder`]; the runtime's options are on [`RuntimeBuilder`]).
///
/// ```
/// let name = percore::run(|| {
///     percore::Builder::new()
///         .name("worker-a")
///         .spawn(|| percore::lwkt::current().unwrap().name().map(String::from))
///         .unwrap()
///         .join()
///         .unwrap()
/// });
/// assert_eq!(name.as_deref(), Some("worker-a"));
/// ```
pub use percore_lwkt::Builder;

/// Permission to wait for a uthread and take its value
/// ([`lwkt::JoinHandle`]); dropping it detaches the uthread.
///
/// ```
/// let v = percore::run(|| {
///     let h: percore::JoinHandle<u32> = percore::spawn(|| 6 * 7).unwrap();
///     h.join().unwrap()
/// });
/// assert_eq!(v, 42);
/// ```
pub use percore_lwkt::JoinHandle;

/// A handle on a running uthread: its name, worker, priority, and its
/// message port ([`Uthread::send`], [`Uthread::call`]; see [`sync`]).
///
/// ```
/// let id = percore::run(|| percore::lwkt::current().unwrap().id());
/// assert_ne!(id, 0);
/// ```
pub use percore_lwkt::Uthread;

/// Why a uthread gave no value: it panicked, was cancelled by shutdown, or
/// could not be waited for ([`lwkt::JoinError`]).
///
/// ```
/// let rt = percore::Runtime::builder().workers(1).build().unwrap();
/// let e = rt.block_on(|| -> () { panic!("boom") }).unwrap_err();
/// assert_eq!(e.panic_message(), Some("boom"));
/// ```
pub use percore_lwkt::JoinError;

/// Errors of the runtime: spawning, blocking where it is refused, shutdown
/// ([`lwkt::Error`]).
///
/// ```
/// // Not on a uthread: there is no runtime to spawn on.
/// let e = percore::spawn(|| ()).unwrap_err();
/// assert!(matches!(e, percore::Error::NotUthread));
/// ```
pub use percore_lwkt::Error;

/// Start a uthread on the caller's runtime (the caller must be a uthread:
/// [`Error::NotUthread`] otherwise; from a foreign thread use
/// [`Runtime::spawn`] or [`Handle::spawn`]). It starts on the caller's
/// worker; [`Builder`] picks another, a name, a priority or a stack size.
///
/// The closure runs on a worker's OS thread, shared with every other
/// uthread of that worker: **it must not block that thread** (no
/// `std::thread::sleep`, no `std::net` socket, no `std::sync::Mutex` held
/// across a blocking call; see [the crate docs](crate#never-block-the-worker)
/// for what to use instead).
///
/// ```
/// let total = percore::run(|| {
///     let hs: Vec<_> = (1..=4u64).map(|i| percore::spawn(move || i * 10).unwrap()).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(total, 100);
/// ```
#[inline]
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    percore_lwkt::spawn(f)
}

/// Wait on any `Future` from a uthread without blocking its worker: the
/// uthread parks while the future is pending and its waker unparks it
/// ([`lwkt::block_on_future`]; on a foreign thread it parks the thread).
/// The other way round, a [`JoinHandle`] is a `Future`: async code awaits a
/// uthread's result. `examples/tokio_interop.rs` shows both with tokio.
///
/// ```
/// let v = percore::run(|| {
///     let h = percore::spawn(|| 6 * 7).unwrap();
///     percore::block_on_future(async move { h.await.unwrap() + 1 }).unwrap()
/// });
/// assert_eq!(v, 43);
/// ```
pub use percore_lwkt::block_on_future;

/// Start a runtime with the defaults (one pinned worker per allowed CPU,
/// see [`Runtime::builder`]), run `f` on one of its uthreads, wait for it,
/// shut the runtime down and return `f`'s value: the entry point of a
/// percore program.
///
/// ```
/// fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     percore::run(|| {
///         percore::time::sleep(std::time::Duration::from_millis(1))?;
///         Ok(())
///     })
/// }
/// ```
///
/// When `f` returns, uthreads it started and did not join are cancelled
/// (their stacks unwound, see [`Runtime`]); join what must finish. For
/// other settings, or to handle a start-up failure as an error, build the
/// runtime yourself: `Runtime::builder().workers(4).build()?.block_on(f)`.
///
/// # Panics
///
/// If the runtime cannot start (the message says why), and with `f`'s own
/// panic, resumed on the calling thread, when `f` panics.
///
/// ```should_panic
/// percore::run(|| panic!("resumed on the caller"));
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("percore::run: cannot start the runtime: {e}"),
    };
    match rt.block_on(f) {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("percore::run: {e}"),
    }
}

/// Every counter of every percore subsystem in this process, as
/// `("subsystem.instance.counter", value)` pairs ordered by name.
///
/// This is the stats tree of [`cpu::stats`]; see there for how subsystems
/// register.
///
/// ```
/// let pool = percore::pool::ThreadPool::builder().name("stats-doc").build().unwrap();
/// pool.spawn(|| ()).join().unwrap();
/// assert!(percore::stats().iter().any(|(name, _)| name.starts_with("pool.stats-doc.")));
/// ```
pub fn stats() -> Vec<(String, u64)> {
    cpu::stats::snapshot()
}

/// The repository README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The crate README's example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;
