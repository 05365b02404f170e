//! A configuration that readers use without locks while a writer reloads
//! it, protected by SMR (`percore::smr`, after FreeBSD's GUS).
//!
//! Readers on uthreads on every worker load the current `Config` inside an
//! SMR read section: no lock, no fence, no write to a shared cache line.
//! The writer publishes each new version with one atomic swap and *retires*
//! the old one; SMR frees it only once no read section that could have seen
//! it is still open. Every reader checks that each version it sees is whole
//! (its fields agree) and that versions only move forward. Bounded: the
//! writer makes `RELOADS` versions, readers stop when they see the last.
//!
//! ```text
//! cargo run --release -p percore --example config_reload
//! ```

use percore::smr::Smr;
use percore::time::{sleep, Duration};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

const RELOADS: u64 = 200;
const READERS: usize = 8;

/// The configuration: fields that must agree with each other.
#[derive(Debug)]
struct Config {
    version: u64,
    limit: u64,
    name: String,
}

impl Config {
    fn new(version: u64) -> Config {
        Config { version, limit: version * 10, name: format!("v{version}") }
    }

    fn is_whole(&self) -> bool {
        self.limit == self.version * 10 && self.name == format!("v{}", self.version)
    }
}

/// The one place with `unsafe`: a pointer published by `reload` and read
/// inside SMR sections.
struct Current {
    smr: Smr,
    ptr: AtomicPtr<Config>,
}

impl Current {
    fn new(smr: Smr, first: Config) -> Current {
        Current { smr, ptr: AtomicPtr::new(Box::into_raw(Box::new(first))) }
    }

    /// Run `f` on the current configuration, inside an SMR read section (a
    /// critical section: `f` must not block).
    fn read<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        let _section = self.smr.enter();
        // ORDERING: acquire pairs with the release half of `reload`'s swap:
        // the fields of the version we load are visible.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `p` came from `Box::into_raw` and was current at the load;
        // a version is freed only by `smr` after every section open when it
        // was unlinked has ended, and ours is open until `f` returns.
        f(unsafe { &*p })
    }

    /// Publish `next`; the old version is freed once no reader can hold it.
    fn reload(&self, next: Config) {
        // ORDERING: AcqRel: release publishes `next`'s fields to readers;
        // acquire makes the old one's ours to retire.
        let old = self.ptr.swap(Box::into_raw(Box::new(next)), Ordering::AcqRel);
        // SAFETY: `old` came from `Box::into_raw`, is unlinked now (no new
        // reader can load it), is retired once and never written again;
        // `retire` frees it only after the readers that may hold it are gone.
        unsafe { self.smr.retire(old) };
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader is left; the pointer is the last
        // published version, never retired.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
        self.smr.flush().expect("flush the retired versions");
    }
}

fn main() {
    let smr = Smr::new("config").expect("an SMR domain");
    let current = Arc::new(Current::new(smr, Config::new(0)));
    let c = current.clone();
    let reads: Vec<u64> = percore::run(move || {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let c = c.clone();
                percore::Builder::new()
                    .rotate()
                    .spawn(move || {
                        let (mut seen, mut reads) = (0, 0u64);
                        while seen < RELOADS {
                            let version = c.read(|cfg| {
                                assert!(cfg.is_whole(), "a torn config: {cfg:?}");
                                cfg.version
                            });
                            assert!(version >= seen, "went back from {seen} to {version}");
                            seen = version;
                            reads += 1;
                            sleep(Duration::from_micros(50)).unwrap(); // outside the section
                        }
                        reads
                    })
                    .unwrap()
            })
            .collect();
        for v in 1..=RELOADS {
            c.reload(Config::new(v));
            sleep(Duration::from_micros(200)).unwrap();
        }
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    // Retired versions wait in batches for a grace period; flush ends it.
    let pending = current.smr.pending();
    current.smr.flush().expect("flush the retired versions");
    assert_eq!(current.smr.pending(), 0);
    println!(
        "config_reload: {RELOADS} reloads seen whole and in order by {READERS} readers (reads per reader {reads:?}); \
         {pending} retired versions awaited a grace period at the end, none after the flush"
    );
    for (k, v) in percore::stats().into_iter().filter(|(k, _)| k.starts_with("smr.config.")) {
        println!("  {k} = {v}");
    }
    drop(current);
}
