//! What every connection shares: settings, the store, counters, the
//! connection registry and the shutdown switch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use percore::cpu::Counter;

use crate::config::Settings;
use crate::store::{Config, Store};

/// Server-wide counters that are not the store's (memcached's `stats`).
///
/// Counters are sharded ([`Counter`]): an increment writes a line of the
/// calling thread's own. Gauges are plain atomics.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Open client connections (`curr_connections`).
    pub curr_connections: AtomicU64,
    /// Connections accepted since start (`total_connections`).
    pub total_connections: Counter,
    /// Connections refused because of `-c` (`rejected_connections`).
    pub rejected_connections: Counter,
    /// Connections closed by `idle_timeout` (`idle_kicks`).
    pub idle_kicks: Counter,
    /// Bytes read from clients (`bytes_read`).
    pub bytes_read: Counter,
    /// Bytes written to clients (`bytes_written`).
    pub bytes_written: Counter,
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
