//! What every connection shares: settings, the store, counters, the
//! connection registry and the shutdown switch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use percore::cpu::Counter;

use crate::config::Settings;
use crate::store::{Config, Store, StoreStats};

/// A sharded counter that `stats reset` can zero.
///
/// Increments go to a [`Counter`] (a line of the calling thread's own);
/// [`StatCounter::reset`] records the current total as a baseline that
/// [`StatCounter::sum`] subtracts, so a reset writes no shard.
#[derive(Debug, Default)]
pub struct StatCounter {
    count: Counter,
    base: AtomicU64,
}

impl StatCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.count.add(n);
    }

    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.count.add(1);
    }

    /// The total since start or the last reset.
    pub fn sum(&self) -> u64 {
        self.sum_plus(0)
    }

    /// The total since start or the last reset when `extra` more were
    /// counted elsewhere (open connections' [`ConnCounts`]).
    pub fn sum_plus(&self, extra: u64) -> u64 {
        // ORDERING: a statistic; the baseline orders nothing.
        self.count.sum().wrapping_add(extra).wrapping_sub(self.base.load(Ordering::Relaxed))
    }

    /// Zero it (`stats reset`).
    pub fn reset(&self) {
        self.reset_plus(0);
    }

    /// Zero it while `extra` more are counted elsewhere.
    pub fn reset_plus(&self, extra: u64) {
        // ORDERING: see `sum`; increments racing a reset may land on either
        // side of it, as in memcached.
        self.base.store(self.count.sum().wrapping_add(extra), Ordering::Relaxed);
    }
}

/// A count with one writer: the uthread of the connection it belongs to.
///
/// An increment is a load and a store (two plain `mov`s), not a locked RMW:
/// with one writer no increment is lost. Readers (`stats` on another
/// connection) see each count as some value it had.
#[derive(Debug, Default)]
pub struct OwnedCount(AtomicU64);

impl OwnedCount {
    /// Adds `n`. Only the owning connection's uthread calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        // ORDERING: a statistic, with one writer (see the type): the load
        // sees the writer's own last store.
        let v = self.0.load(Ordering::Relaxed);
        // ORDERING: as above.
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    /// The count now.
    #[inline]
    pub fn get(&self) -> u64 {
        // ORDERING: a statistic.
        self.0.load(Ordering::Relaxed)
    }

    /// Returns the count and zeroes it; only the owner, or anyone once the
    /// owner stopped counting.
    fn take(&self) -> u64 {
        // ORDERING: as in `add`.
        let v = self.0.load(Ordering::Relaxed);
        // ORDERING: as above.
        self.0.store(0, Ordering::Relaxed);
        v
    }
}

/// What a connection counts on every text request without touching a shared
/// line: bytes both ways, `cmd_get` with its hits and misses, `cmd_set`.
///
/// `stats` adds the open connections' counts (under the registry's lock) to
/// the [`ServerStats`] counters of the same name; a connection that closes
/// folds its counts into them under the same lock, so no total jumps. A
/// connection that is not registered (UDP, tests) folds after every
/// [`Session::process`](crate::proto::Session::process).
#[derive(Debug, Default)]
pub struct ConnCounts {
    /// `bytes_read`.
    pub bytes_read: OwnedCount,
    /// `bytes_written`.
    pub bytes_written: OwnedCount,
    /// `cmd_get`.
    pub cmd_get: OwnedCount,
    /// `get_hits`.
    pub get_hits: OwnedCount,
    /// `get_misses`.
    pub get_misses: OwnedCount,
    /// `cmd_set`.
    pub cmd_set: OwnedCount,
}

impl ConnCounts {
    fn all(&self) -> [&OwnedCount; 6] {
        [&self.bytes_read, &self.bytes_written, &self.cmd_get, &self.get_hits, &self.get_misses, &self.cmd_set]
    }

    /// Counts one plain retrieval (not a touching one: those go to
    /// [`ServerStats::count_retrieval`]).
    #[inline]
    pub fn count_get(&self, hit: bool) {
        self.cmd_get.add(1);
        if hit {
            self.get_hits.add(1);
        } else {
            self.get_misses.add(1);
        }
    }
}

/// The [`ServerStats`] totals that open connections add to, as `stats`
/// prints them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// `bytes_read`.
    pub bytes_read: u64,
    /// `bytes_written`.
    pub bytes_written: u64,
    /// `cmd_get`.
    pub cmd_get: u64,
    /// `get_hits`.
    pub get_hits: u64,
    /// `get_misses`.
    pub get_misses: u64,
    /// `cmd_set`.
    pub cmd_set: u64,
}

/// Server-wide counters that are not the store's (memcached's `stats`).
///
/// Counters are sharded ([`StatCounter`]): an increment writes a line of the
/// calling thread's own. Gauges are plain atomics. The protocol layer
/// (`proto`) counts commands; the connection loop counts connections and
/// bytes. What a text request counts every time (`bytes_read`,
/// `bytes_written`, `cmd_get`, `get_hits`, `get_misses`, `cmd_set`) goes to
/// the connection's own [`ConnCounts`] instead, with no locked instruction;
/// read those six through [`Context::counted`].
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Open client connections (`curr_connections`).
    pub curr_connections: AtomicU64,
    /// Connections accepted since start (`total_connections`).
    pub total_connections: StatCounter,
    /// Connections refused because of `-c` (`rejected_connections`).
    pub rejected_connections: StatCounter,
    /// Connections closed by `idle_timeout` (`idle_kicks`).
    pub idle_kicks: StatCounter,
    /// Bytes read from clients (`bytes_read`).
    pub bytes_read: StatCounter,
    /// Bytes written to clients (`bytes_written`).
    pub bytes_written: StatCounter,
    /// Keys looked up by retrievals, hit or miss (`cmd_get`).
    pub cmd_get: StatCounter,
    /// Store commands whose data was read (`cmd_set`).
    pub cmd_set: StatCounter,
    /// `flush_all` commands, allowed or not (`cmd_flush`).
    pub cmd_flush: StatCounter,
    /// Touches: `touch`, `gat`, `mg T`, binary touch/gat (`cmd_touch`).
    pub cmd_touch: StatCounter,
    /// `me` commands (`cmd_meta`, as memcached counts it).
    pub cmd_meta: StatCounter,
    /// Retrieval hits (`get_hits`).
    pub get_hits: StatCounter,
    /// Retrieval misses (`get_misses`).
    pub get_misses: StatCounter,
    /// Deletes that found no item (`delete_misses`).
    pub delete_misses: StatCounter,
    /// Deletes that removed an item (`delete_hits`).
    pub delete_hits: StatCounter,
    /// Increments of a missing item (`incr_misses`).
    pub incr_misses: StatCounter,
    /// Increments done (`incr_hits`).
    pub incr_hits: StatCounter,
    /// Decrements of a missing item (`decr_misses`).
    pub decr_misses: StatCounter,
    /// Decrements done (`decr_hits`).
    pub decr_hits: StatCounter,
    /// CAS stores of a missing item (`cas_misses`).
    pub cas_misses: StatCounter,
    /// CAS stores that matched (`cas_hits`).
    pub cas_hits: StatCounter,
    /// CAS stores that did not match (`cas_badval`).
    pub cas_badval: StatCounter,
    /// Touches that found the item (`touch_hits`).
    pub touch_hits: StatCounter,
    /// Touches that did not (`touch_misses`).
    pub touch_misses: StatCounter,
    /// Stores refused as over the item size limit (`store_too_large`).
    pub store_too_large: StatCounter,
    /// Stores refused for lack of memory (`store_no_memory`).
    pub store_no_memory: StatCounter,
    /// The store's counters at the last `stats reset` (subtracted from the
    /// cumulative ones when printed). Written only by `stats reset`.
    pub store_base: Mutex<StoreStats>,
}

impl ServerStats {
    /// The counters [`ConnCounts`] adds to, in `ConnCounts::all`'s order.
    fn conn_counted(&self) -> [&StatCounter; 6] {
        [&self.bytes_read, &self.bytes_written, &self.cmd_get, &self.get_hits, &self.get_misses, &self.cmd_set]
    }

    /// Adds a connection's counts to the totals and zeroes them.
    fn fold(&self, c: &ConnCounts) {
        for (total, own) in self.conn_counted().into_iter().zip(c.all()) {
            let n = own.take();
            if n > 0 {
                total.add(n);
            }
        }
    }

    /// Counts one retrieval as memcached does: a touching one (`gat`,
    /// binary touch/gat) under `cmd_touch` and `touch_hits`/`touch_misses`,
    /// any other under `cmd_get` and `get_hits`/`get_misses`.
    #[inline]
    pub fn count_retrieval(&self, touch: bool, hit: bool) {
        let (cmd, hits, misses) = if touch {
            (&self.cmd_touch, &self.touch_hits, &self.touch_misses)
        } else {
            (&self.cmd_get, &self.get_hits, &self.get_misses)
        };
        cmd.inc();
        if hit {
            hits.inc()
        } else {
            misses.inc()
        }
    }

    /// `stats reset` of everything but what open connections count
    /// ([`Context::reset_stats`] does both): zeroes what memcached zeroes
    /// (command and connection counters, bytes, and the store's cumulative
    /// counters; not gauges).
    fn reset(&self, store_now: StoreStats) {
        for c in [
            &self.total_connections,
            &self.rejected_connections,
            &self.idle_kicks,
            &self.cmd_flush,
            &self.cmd_touch,
            &self.cmd_meta,
            &self.delete_misses,
            &self.delete_hits,
            &self.incr_misses,
            &self.incr_hits,
            &self.decr_misses,
            &self.decr_hits,
            &self.cas_misses,
            &self.cas_hits,
            &self.cas_badval,
            &self.touch_hits,
            &self.touch_misses,
            &self.store_too_large,
            &self.store_no_memory,
        ] {
            c.reset();
        }
        *self.store_base.lock().unwrap_or_else(|e| e.into_inner()) = store_now;
    }

    /// The store's counters as `stats` prints them: cumulative ones minus
    /// their value at the last reset, gauges as they are.
    pub fn store_view(&self, now: StoreStats) -> StoreStats {
        let b = *self.store_base.lock().unwrap_or_else(|e| e.into_inner());
        StoreStats {
            total_items: now.total_items.saturating_sub(b.total_items),
            evictions: now.evictions.saturating_sub(b.evictions),
            reclaimed: now.reclaimed.saturating_sub(b.reclaimed),
            evicted_unfetched: now.evicted_unfetched.saturating_sub(b.evicted_unfetched),
            expired_unfetched: now.expired_unfetched.saturating_sub(b.expired_unfetched),
            get_expired: now.get_expired.saturating_sub(b.get_expired),
            get_flushed: now.get_flushed.saturating_sub(b.get_flushed),
            ..now
        }
    }
}

/// One open connection, as `stats conns` reports it.
#[derive(Debug)]
pub struct ConnInfo {
    /// The descriptor (memcached keys `stats conns` by it).
    pub fd: i32,
    /// `tcp:<peer>` or `udp:<peer>`.
    pub addr: String,
    /// The listening address, `tcp:<addr>`.
    pub listen_addr: String,
    /// Relative time (the store's clock) of the last command.
    pub last_cmd: AtomicU32,
    /// Its per-request counters (written only by the connection's uthread).
    pub counts: ConnCounts,
    /// Whether it is in the registry (`stats` sees its counts there);
    /// written by [`Context::register_conn`] and `unregister_conn`.
    pub registered: AtomicBool,
}

impl ConnInfo {
    /// A connection's record, not registered, with nothing counted.
    pub fn new(fd: i32, addr: String, listen_addr: String) -> ConnInfo {
        ConnInfo {
            fd,
            addr,
            listen_addr,
            last_cmd: AtomicU32::new(0),
            counts: ConnCounts::default(),
            registered: AtomicBool::new(false),
        }
    }
}

/// The shared state of one server.
#[derive(Debug)]
pub struct Context {
    /// The settings it was started with.
    pub settings: Settings,
    /// The items.
    pub store: Store,
    /// Server counters.
    pub stats: ServerStats,
    /// Current verbosity (`verbosity` changes it).
    pub verbosity: AtomicU8,
    shutdown: AtomicBool,
    /// Wakes [`Context::wait_for_shutdown`]; the flag itself is `shutdown`.
    stop_mx: Mutex<()>,
    stop_cv: std::sync::Condvar,
    conns: Mutex<BTreeMap<i32, Arc<ConnInfo>>>,
    started_unix: AtomicU64,
}

impl Context {
    /// A context for these settings, with a new store.
    pub fn new(settings: Settings) -> Result<Arc<Context>, crate::Error> {
        let store = Store::new(Config {
            memory_limit: settings.memory_limit,
            max_item_size: settings.max_item_size,
            writers: settings.threads,
        })?;
        let verbosity = AtomicU8::new(settings.verbose);
        let started = store.clock().started_unix().max(0) as u64;
        Ok(Arc::new(Context {
            settings,
            store,
            stats: ServerStats::default(),
            verbosity,
            shutdown: AtomicBool::new(false),
            stop_mx: Mutex::new(()),
            stop_cv: std::sync::Condvar::new(),
            conns: Mutex::new(BTreeMap::new()),
            started_unix: AtomicU64::new(started),
        }))
    }

    /// Seconds since the server started (memcached's `uptime`).
    pub fn uptime(&self) -> u64 {
        // ORDERING: written once before the context is shared.
        let started = self.started_unix.load(Ordering::Relaxed) as i64;
        (self.store.clock().unix_now() - started).max(0) as u64 - u64::from(crate::store::ITEM_UPDATE_INTERVAL + 2)
    }

    /// Asks the server to stop (`shutdown`, SIGINT, SIGTERM).
    pub fn request_shutdown(&self) {
        // ORDERING: pairs with the acquire load in `shutting_down`; what was
        // written before the request is visible to whoever acts on it.
        self.shutdown.store(true, Ordering::Release);
        // NOTE: taking the lock orders the store with a waiter's check, so
        // the notification cannot fall between its check and its sleep. The
        // lock is held for no switch point (it is safe on a uthread).
        let _g = self.stop_mx.lock().unwrap_or_else(|e| e.into_inner());
        self.stop_cv.notify_all();
    }

    /// Blocks the calling OS thread until a stop is asked for (no polling).
    /// Not for uthreads: it would block their worker.
    pub fn wait_for_shutdown(&self) {
        let mut g = self.stop_mx.lock().unwrap_or_else(|e| e.into_inner());
        while !self.shutting_down() {
            g = self.stop_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether a stop was asked for.
    pub fn shutting_down(&self) -> bool {
        // ORDERING: pairs with the release store in `request_shutdown`.
        self.shutdown.load(Ordering::Acquire)
    }

    /// Registers an open connection.
    pub fn register_conn(&self, info: Arc<ConnInfo>) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        // ORDERING: read by the connection's own uthread (which registered
        // it), or under this lock.
        info.registered.store(true, Ordering::Relaxed);
        if let Some(old) = conns.insert(info.fd, info) {
            // NOTE: a descriptor reused before its old record left: keep
            // what the old one counted.
            self.stats.fold(&old.counts);
            // ORDERING: as above.
            old.registered.store(false, Ordering::Relaxed);
        }
    }

    /// Forgets a closed connection, adding what it counted to the totals
    /// (under the registry's lock, so `stats` sees it exactly once).
    pub fn unregister_conn(&self, fd: i32) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(info) = conns.remove(&fd) {
            self.stats.fold(&info.counts);
            // ORDERING: as in `register_conn`.
            info.registered.store(false, Ordering::Relaxed);
        }
    }

    /// Folds an unregistered connection's counts into the totals (after
    /// each batch of requests, for UDP and tests).
    #[inline]
    pub fn fold_unregistered(&self, info: &ConnInfo) {
        // ORDERING: see `register_conn`.
        if !info.registered.load(Ordering::Relaxed) {
            self.stats.fold(&info.counts);
        }
    }

    /// The totals open connections add to, as `stats` prints them.
    pub fn counted(&self) -> Counted {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let live = live_counts(&conns);
        let [a, b, c, d, e, f] = self.stats.conn_counted();
        Counted {
            bytes_read: a.sum_plus(live[0]),
            bytes_written: b.sum_plus(live[1]),
            cmd_get: c.sum_plus(live[2]),
            get_hits: d.sum_plus(live[3]),
            get_misses: e.sum_plus(live[4]),
            cmd_set: f.sum_plus(live[5]),
        }
    }

    /// `stats reset`: zeroes what memcached zeroes (command and connection
    /// counters, bytes, and the store's cumulative counters; not gauges).
    pub fn reset_stats(&self) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let live = live_counts(&conns);
        for (total, n) in self.stats.conn_counted().into_iter().zip(live) {
            total.reset_plus(n);
        }
        self.stats.reset(self.store.stats());
    }

    /// Calls `f` on every open connection, holding the registry's lock (a
    /// connection cannot unregister, and so cannot close its socket, while
    /// `f` runs).
    pub fn for_each_conn(&self, mut f: impl FnMut(&ConnInfo)) {
        for info in self.conns.lock().unwrap_or_else(|e| e.into_inner()).values() {
            f(info);
        }
    }

    /// The open connections, ordered by descriptor.
    pub fn conns(&self) -> Vec<Arc<ConnInfo>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}

/// The open connections' counts, in `ConnCounts::all`'s order.
fn live_counts(conns: &BTreeMap<i32, Arc<ConnInfo>>) -> [u64; 6] {
    let mut live = [0u64; 6];
    for info in conns.values() {
        for (sum, own) in live.iter_mut().zip(info.counts.all()) {
            *sum = sum.wrapping_add(own.get());
        }
    }
    live
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;

    fn ctx() -> Arc<Context> {
        Context::new(Settings { threads: 1, ..Settings::default() }).unwrap()
    }

    fn conn(fd: i32) -> Arc<ConnInfo> {
        Arc::new(ConnInfo::new(fd, format!("tcp:peer{fd}"), "tcp:here".into()))
    }

    #[test]
    fn open_connections_count_into_the_totals_and_closing_keeps_them() {
        let ctx = ctx();
        let (a, b) = (conn(10), conn(11));
        ctx.register_conn(a.clone());
        ctx.register_conn(b.clone());
        a.counts.count_get(true);
        a.counts.count_get(false);
        b.counts.count_get(true);
        b.counts.cmd_set.add(1);
        a.counts.bytes_read.add(100);
        b.counts.bytes_written.add(7);
        ctx.stats.get_hits.inc(); // a binary-protocol hit, counted the shared way
        let want = Counted { bytes_read: 100, bytes_written: 7, cmd_get: 3, get_hits: 3, get_misses: 1, cmd_set: 1 };
        assert_eq!(ctx.counted(), want);
        ctx.unregister_conn(a.fd);
        assert_eq!(ctx.counted(), want);
        assert_eq!(a.counts.cmd_get.get(), 0, "folded into the totals");
        ctx.unregister_conn(b.fd);
        assert_eq!(ctx.counted(), want);
        assert_eq!(ctx.stats.cmd_get.sum(), 3);
    }

    #[test]
    fn reset_zeroes_what_open_connections_counted_too() {
        let ctx = ctx();
        let a = conn(12);
        ctx.register_conn(a.clone());
        a.counts.count_get(true);
        ctx.stats.cmd_get.inc();
        ctx.reset_stats();
        assert_eq!(ctx.counted(), Counted::default());
        a.counts.count_get(false);
        assert_eq!(ctx.counted().cmd_get, 1);
        ctx.unregister_conn(a.fd);
        assert_eq!((ctx.counted().cmd_get, ctx.counted().get_misses, ctx.counted().get_hits), (1, 1, 0));
    }

    #[test]
    fn an_unregistered_connection_folds_when_asked() {
        let ctx = ctx();
        let u = ConnInfo::new(13, "udp:x".into(), "udp:x".into());
        u.counts.cmd_set.add(2);
        assert_eq!(ctx.counted().cmd_set, 0);
        ctx.fold_unregistered(&u);
        assert_eq!(ctx.counted().cmd_set, 2);
        // A registered one is not folded early (it would count twice).
        let r = conn(14);
        ctx.register_conn(r.clone());
        r.counts.cmd_set.add(1);
        ctx.fold_unregistered(&r);
        assert_eq!((ctx.counted().cmd_set, r.counts.cmd_set.get()), (3, 1));
    }

    #[test]
    fn a_reused_descriptor_keeps_what_the_old_record_counted() {
        let ctx = ctx();
        let (old, new) = (conn(15), conn(15));
        ctx.register_conn(old.clone());
        old.counts.count_get(true);
        ctx.register_conn(new.clone());
        new.counts.count_get(true);
        assert_eq!(ctx.counted().cmd_get, 2);
        // The old connection's own unregister now finds the new record and
        // folds that one; the total stays exact either way.
        ctx.unregister_conn(15);
        assert_eq!(ctx.counted().cmd_get, 2);
    }

    /// Bounded stress: owners count while a reader sums; every sum the reader
    /// sees is at most the final total and never goes down, and the final
    /// total is exact after every connection closed.
    #[test]
    fn concurrent_owners_and_a_reader_lose_nothing() {
        const OWNERS: i32 = 4;
        const EACH: u64 = 20_000;
        let ctx = ctx();
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (ctx, done) = (ctx.clone(), done.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                while !done.load(Ordering::Relaxed) {
                    let c = ctx.counted();
                    assert!(c.cmd_get >= last && c.cmd_get <= OWNERS as u64 * EACH, "{} after {last}", c.cmd_get);
                    last = c.cmd_get;
                }
            })
        };
        let owners: Vec<_> = (0..OWNERS)
            .map(|i| {
                let ctx = ctx.clone();
                std::thread::spawn(move || {
                    let me = conn(100 + i);
                    ctx.register_conn(me.clone());
                    for k in 0..EACH {
                        me.counts.count_get(k % 2 == 0);
                    }
                    ctx.unregister_conn(me.fd);
                })
            })
            .collect();
        for o in owners {
            o.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        let c = ctx.counted();
        assert_eq!((c.cmd_get, c.get_hits, c.get_misses), (4 * EACH, 2 * EACH, 2 * EACH));
    }
}
