//! memcached's clock: whole seconds since the server started.
//!
//! memcached keeps `current_time`, seconds since `process_started`, and sets
//! `process_started` to the start time minus `ITEM_UPDATE_INTERVAL + 2`, so
//! relative times are never 0 (0 means "never expires"). This clock does the
//! same. It reads `CLOCK_MONOTONIC_COARSE` (a few nanoseconds, no system
//! call), so wall-clock jumps do not expire items early; absolute client
//! times are converted against the wall clock read once at start, as
//! memcached does.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::ITEM_UPDATE_INTERVAL;

/// Client expiry times above this many seconds are absolute Unix times
/// (memcached's `REALTIME_MAXDELTA`, 30 days).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// The relative time that is already in the past for every item: what a
/// negative expiry, or an absolute one before the start, becomes.
const EXPIRED: u32 = 1;

/// Seconds since the store started, and conversions from client times.
#[derive(Debug)]
pub struct Clock {
    /// Unix time of relative time 0 (`process_started`).
    started_unix: i64,
    /// Monotonic seconds at relative time `START`.
    base_mono: i64,
    /// Seconds added by [`Clock::advance`] (tests).
    offset: AtomicU32,
    /// Set by [`Clock::freeze`] (tests): the monotonic clock is ignored.
    frozen: AtomicBool,
}

/// The relative time at start (as memcached: `ITEM_UPDATE_INTERVAL + 2`).
const START: u32 = ITEM_UPDATE_INTERVAL + 2;

fn mono_secs() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
    // exists on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        let unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Clock {
            started_unix: unix - i64::from(START),
            base_mono: mono_secs(),
            offset: AtomicU32::new(0),
            frozen: AtomicBool::new(false),
        }
    }

    /// The current relative time (memcached's `current_time`).
    #[inline]
    pub fn now(&self) -> u32 {
        // ORDERING: test knobs (see `offset`).
        if self.frozen.load(Ordering::Relaxed) {
            return START + self.offset.load(Ordering::Relaxed);
        }
        let elapsed = (mono_secs() - self.base_mono).clamp(0, i64::from(u32::MAX / 2)) as u32;
        // ORDERING: the offset is a test knob; no other memory depends on it.
        START + elapsed + self.offset.load(Ordering::Relaxed)
    }

    /// The Unix time of relative time 0.
    pub fn started_unix(&self) -> i64 {
        self.started_unix
    }

    /// The current Unix time as this clock sees it.
    pub fn unix_now(&self) -> i64 {
        self.started_unix + i64::from(self.now())
    }

    /// Stops the clock at the current time; from now on only
    /// [`advance`](Clock::advance) moves it (tests that compare two stores
    /// operation by operation, which a second ticking between them would
    /// break).
    pub fn freeze(&self) {
        let elapsed = (mono_secs() - self.base_mono).clamp(0, i64::from(u32::MAX / 2)) as u32;
        // ORDERING: test knobs (see `offset`).
        self.offset.fetch_add(elapsed, Ordering::Relaxed);
        // ORDERING: as above.
        self.frozen.store(true, Ordering::Relaxed);
    }

    /// Moves the clock forward (tests of expiry).
    pub fn advance(&self, secs: u32) {
        // ORDERING: see `now`.
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }

    /// A client expiry converted to relative time, as memcached's
    /// `realtime()`: `0` stays 0 (never); negative is already expired; up to
    /// 30 days is relative to now; beyond is an absolute Unix time (one at or
    /// before the start is already expired). An absolute time more than
    /// 2^32 seconds after the start is clamped (memcached truncates it).
    pub fn rel_exptime(&self, exptime: i64) -> u32 {
        if exptime == 0 {
            0
        } else if exptime < 0 {
            EXPIRED
        } else if exptime > REALTIME_MAXDELTA {
            if exptime <= self.started_unix {
                EXPIRED
            } else {
                (exptime - self.started_unix).min(i64::from(u32::MAX)) as u32
            }
        } else {
            (i64::from(self.now()) + exptime).min(i64::from(u32::MAX)) as u32
        }
    }

    /// Whether an item with relative expiry `exp` is expired now.
    #[inline]
    pub fn expired(&self, exp: u32, now: u32) -> bool {
        exp != 0 && exp <= now
    }

    /// Remaining TTL of relative expiry `exp` at `now`: `-1` for none.
    pub fn ttl(exp: u32, now: u32) -> i64 {
        if exp == 0 {
            -1
        } else {
            i64::from(exp) - i64::from(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_memcached() {
        let c = Clock::new();
        let now = c.now();
        assert!(now >= START);
        assert_eq!(c.rel_exptime(0), 0);
        assert_eq!(c.rel_exptime(-1), EXPIRED);
        assert_eq!(c.rel_exptime(10), now + 10);
        assert_eq!(c.rel_exptime(c.started_unix()), EXPIRED);
        assert_eq!(c.rel_exptime(c.unix_now() + 100), c.now() + 100);
        assert!(c.expired(EXPIRED, c.now()));
        assert!(!c.expired(0, c.now()));
        c.advance(11);
        assert!(c.expired(now + 10, c.now()));
        assert_eq!(Clock::ttl(0, 5), -1);
        assert_eq!(Clock::ttl(10, 4), 6);
    }
}
