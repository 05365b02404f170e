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
        // ORDERING: a statistic; the baseline orders nothing.
        self.count.sum().wrapping_sub(self.base.load(Ordering::Relaxed))
    }

    /// Zero it (`stats reset`).
    pub fn reset(&self) {
        // ORDERING: see `sum`; increments racing a reset may land on either
        // side of it, as in memcached.
        self.base.store(self.count.sum(), Ordering::Relaxed);
    }
}

/// Server-wide counters that are not the store's (memcached's `stats`).
///
/// Counters are sharded ([`StatCounter`]): an increment writes a line of the
/// calling thread's own. Gauges are plain atomics. The protocol layer
/// (`proto`) counts commands; the connection loop counts connections and
/// bytes.
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

    /// `stats reset`: zeroes what memcached zeroes (command and connection
    /// counters, bytes, and the store's cumulative counters; not gauges).
    pub fn reset(&self, store_now: StoreStats) {
        for c in [
            &self.total_connections,
            &self.rejected_connections,
            &self.idle_kicks,
            &self.bytes_read,
            &self.bytes_written,
            &self.cmd_get,
            &self.cmd_set,
            &self.cmd_flush,
            &self.cmd_touch,
            &self.cmd_meta,
            &self.get_hits,
            &self.get_misses,
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
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(info.fd, info);
    }

    /// Forgets a closed connection.
    pub fn unregister_conn(&self, fd: i32) {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&fd);
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
