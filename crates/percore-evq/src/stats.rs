//! Process-wide counters, published in the stats tree as `evq.<counter>`
//! (`percore::stats()`, `percore-bench --stats`).

use percore_cpu::Counter;
use std::sync::OnceLock;

/// The counters (sharded: bumping one is an uncontended add).
pub(crate) struct Stats {
    /// Events posted to event queues and coalescing queues.
    pub(crate) posted: Counter,
    /// Events taken out of a queue by a waiter or a `try_recv`.
    pub(crate) delivered: Counter,
    /// Waiters woken by a post (or a hand-on to the next waiter).
    pub(crate) wakeups: Counter,
    /// Alarms armed.
    pub(crate) alarms_set: Counter,
    /// Alarms that fired.
    pub(crate) alarms_fired: Counter,
    /// Alarms cancelled before they fired.
    pub(crate) alarms_cancelled: Counter,
    /// Cancels that had to wait for a firing in flight (the seed's race).
    pub(crate) alarms_cancel_waits: Counter,
    /// `Epoll::wait` calls.
    pub(crate) epoll_waits: Counter,
}

static STATS: OnceLock<(Stats, percore_cpu::stats::Registration)> = OnceLock::new();

pub(crate) fn stats() -> &'static Stats {
    &STATS
        .get_or_init(|| {
            let reg = percore_cpu::stats::register("evq", |emit| {
                let Some((s, _)) = STATS.get() else { return };
                for (k, c) in [
                    ("events_posted", &s.posted),
                    ("events_delivered", &s.delivered),
                    ("wakeups", &s.wakeups),
                    ("alarms_set", &s.alarms_set),
                    ("alarms_fired", &s.alarms_fired),
                    ("alarms_cancelled", &s.alarms_cancelled),
                    ("alarms_cancel_waits", &s.alarms_cancel_waits),
                    ("epoll_waits", &s.epoll_waits),
                ] {
                    emit(k, c.sum());
                }
            });
            let s = Stats {
                posted: Counter::new(),
                delivered: Counter::new(),
                wakeups: Counter::new(),
                alarms_set: Counter::new(),
                alarms_fired: Counter::new(),
                alarms_cancelled: Counter::new(),
                alarms_cancel_waits: Counter::new(),
                epoll_waits: Counter::new(),
            };
            (s, reg)
        })
        .0
}
