//! Process-wide counters, published in the stats tree as `evq.<counter>`
//! (`percore::stats()`, `percore-bench --stats`), through `percore_cpu`'s
//! stats helper.

use percore_cpu::{stats, Counter};

percore_cpu::stats_struct! {
    /// The counters (sharded: bumping one is an uncontended add). One key
    /// per field: its name, or the one after `=>`.
    #[derive(Default)]
    pub(crate) struct Stats {
        /// Events posted to event queues and coalescing queues.
        pub(crate) posted: Counter => "events_posted",
        /// Events taken out of a queue by a waiter or a `try_recv`.
        pub(crate) delivered: Counter => "events_delivered",
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
}

static STATS: stats::Global<Stats> = stats::Global::new("evq");

/// The counters, registered in the stats tree on first use.
#[inline]
pub(crate) fn stats() -> &'static Stats {
    STATS.get()
}
