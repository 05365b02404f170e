//! The stats tree: named counters from every subsystem, read in one place.
//!
//! A subsystem registers a *source* under a dotted prefix, for example
//! `smr.cache` for the SMR domain named `cache`. A source is a function that
//! emits `(key, value)` pairs when asked; [`snapshot`] calls every live source
//! and returns `prefix.key = value` for all of them, ordered by name. Sources
//! are read only when somebody asks, so the hot paths pay nothing but their
//! own counter adds.
//!
//! Prefixes are unique: registering a prefix that is already taken appends
//! `#2`, `#3`, ... and [`Registration::prefix`] says which one was given.
//! Dropping the [`Registration`] removes the source.
//!
//! ```
//! use percore_cpu::stats;
//! let reg = stats::register("demo.answer", |emit| emit("value", 42));
//! let all = stats::snapshot();
//! assert!(all.contains(&("demo.answer.value".to_string(), 42)));
//! drop(reg);
//! assert_eq!(stats::get("demo.answer.value"), None);
//! ```
//!
//! Most sources are a struct of counters and gauges whose every field is one
//! key. [`stats_struct!`](crate::stats_struct) declares such a struct and
//! implements [`Emit`] for it (a key per field: the field's name, or the
//! string after `=>`); [`register_source`] registers an `Arc` or `Weak` of
//! it, and [`Global`] is the lazily registered process-wide form:
//!
//! ```
//! use percore_cpu::{stats, Counter};
//! use std::sync::atomic::AtomicUsize;
//! use std::sync::Arc;
//!
//! percore_cpu::stats_struct! {
//!     /// A cache's counters.
//!     #[derive(Default)]
//!     struct CacheStats {
//!         /// Lookups that found their key.
//!         hits: Counter,
//!         /// Lookups that did not (published as `misses`).
//!         missed: Counter => "misses",
//!         /// Entries held now (a gauge).
//!         entries: AtomicUsize,
//!     }
//! }
//!
//! let s = Arc::new(CacheStats::default());
//! let reg = stats::register_source("demo.cache", Arc::downgrade(&s));
//! s.hits.add(2);
//! s.missed.inc();
//! assert_eq!(stats::get("demo.cache.hits"), Some(2));
//! assert_eq!(stats::get("demo.cache.misses"), Some(1));
//! assert_eq!(stats::get("demo.cache.entries"), Some(0));
//!
//! // Process-wide counters, registered on first use.
//! static GLOBAL: stats::Global<CacheStats> = stats::Global::new("demo.global");
//! GLOBAL.get().hits.inc();
//! assert_eq!(stats::get("demo.global.hits"), Some(1));
//! # drop(reg);
//! ```

use crate::Counter;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// The function type of a stats source: called with an `emit(key, value)`
/// callback, it reports each of its values once.
pub type Source = dyn Fn(&mut dyn FnMut(&str, u64)) + Send + Sync;

/// prefix -> source. Protected by the mutex; sources are called outside it.
static TREE: Mutex<BTreeMap<String, Arc<Source>>> = Mutex::new(BTreeMap::new());

fn tree() -> MutexGuard<'static, BTreeMap<String, Arc<Source>>> {
    // A panic while holding this lock cannot leave the map inconsistent (every
    // mutation is a single insert or remove), so a poisoned lock is usable.
    TREE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a source registered; dropping it unregisters the source.
#[must_use = "dropping the registration removes the source at once"]
#[derive(Debug)]
pub struct Registration {
    prefix: String,
}

impl Registration {
    /// The prefix this source was registered under (the one asked for, or it
    /// with `#N` appended if that one was taken).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        tree().remove(&self.prefix);
    }
}

/// Register `source` under `prefix`. See the module documentation.
pub fn register<F>(prefix: &str, source: F) -> Registration
where
    F: Fn(&mut dyn FnMut(&str, u64)) + Send + Sync + 'static,
{
    let mut tree = tree();
    let mut name = prefix.to_string();
    let mut n = 2;
    while tree.contains_key(&name) {
        name = format!("{prefix}#{n}");
        n += 1;
    }
    tree.insert(name.clone(), Arc::new(source));
    Registration { prefix: name }
}

/// A value the stats tree can read: a [`Counter`]'s sum, a number, or a
/// relaxed load of an atomic gauge.
pub trait Value {
    /// The value now.
    fn value(&self) -> u64;
}

impl Value for Counter {
    fn value(&self) -> u64 {
        self.sum()
    }
}

impl Value for u64 {
    fn value(&self) -> u64 {
        *self
    }
}

impl Value for usize {
    fn value(&self) -> u64 {
        *self as u64
    }
}

// ORDERING (the three gauges): a statistic read racily; it pairs with nothing.
impl Value for AtomicU64 {
    fn value(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
}

impl Value for AtomicUsize {
    fn value(&self) -> u64 {
        self.load(Ordering::Relaxed) as u64
    }
}

impl Value for AtomicU32 {
    fn value(&self) -> u64 {
        u64::from(self.load(Ordering::Relaxed))
    }
}

/// A stats source as a type: it reports each of its `(key, value)` pairs
/// once per call. [`stats_struct!`](crate::stats_struct) implements it.
pub trait Emit {
    /// Report every pair through `emit`.
    fn emit(&self, emit: &mut dyn FnMut(&str, u64));
}

impl<S: Emit + ?Sized> Emit for Arc<S> {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        (**self).emit(emit);
    }
}

/// Under loom, protocol state lives in loom's `Arc` (see [`crate::loom`]).
#[cfg(loom)]
impl<S: Emit> Emit for loom::sync::Arc<S> {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        (**self).emit(emit);
    }
}

/// A source that may be gone: it reports nothing once the last `Arc` is
/// dropped (for a source that owns its own [`Registration`]).
impl<S: Emit + ?Sized> Emit for Weak<S> {
    fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
        if let Some(s) = self.upgrade() {
            s.emit(emit);
        }
    }
}

/// Register `source` (typically an `Arc` or a `Weak` of a
/// [`stats_struct!`](crate::stats_struct) type) under `prefix`.
pub fn register_source<S: Emit + Send + Sync + 'static>(prefix: &str, source: S) -> Registration {
    register(prefix, move |emit| source.emit(emit))
}

/// Process-wide stats, created and registered under a fixed prefix on first
/// use and kept for the life of the process (see the module example).
#[derive(Debug)]
pub struct Global<S> {
    prefix: &'static str,
    cell: OnceLock<(S, Registration)>,
}

impl<S: Emit + Default + Send + Sync + 'static> Global<S> {
    /// Stats to be registered under `prefix` on the first [`get`](Global::get).
    pub const fn new(prefix: &'static str) -> Self {
        Global { prefix, cell: OnceLock::new() }
    }

    /// The stats, registering them first if nobody has yet.
    #[inline]
    pub fn get(&'static self) -> &'static S {
        &self
            .cell
            .get_or_init(|| {
                // NOTE: a snapshot taken before the cell is set sees no pairs.
                let reg = register(self.prefix, move |emit| {
                    if let Some((s, _)) = self.cell.get() {
                        s.emit(emit);
                    }
                });
                (S::default(), reg)
            })
            .0
    }
}

/// Declare a struct of stats values (fields of any [`Value`](crate::stats::Value)
/// type: [`Counter`], `u64`, atomic gauges) and implement
/// [`Emit`](crate::stats::Emit) for it: one key per field, the field's name or the
/// string literal after `=>`, in declaration order. Attributes (docs,
/// derives) pass through. See the [`stats`](crate::stats) module for an example.
#[macro_export]
macro_rules! stats_struct {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fm:meta])* $fvis:vis $field:ident : $fty:ty $(=> $key:literal)? ),* $(,)?
        }
    ) => {
        $(#[$m])*
        $vis struct $name {
            $( $(#[$fm])* $fvis $field: $fty, )*
        }

        impl $crate::stats::Emit for $name {
            fn emit(&self, emit: &mut dyn FnMut(&str, u64)) {
                $( emit($crate::__stats_key!($field $(, $key)?), $crate::stats::Value::value(&self.$field)); )*
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __stats_key {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $key:literal) => {
        $key
    };
}

/// Every value of every registered source, as `("prefix.key", value)`,
/// ordered by prefix and then in the order each source emits them.
pub fn snapshot() -> Vec<(String, u64)> {
    let sources: Vec<(String, Arc<Source>)> = tree().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut out = Vec::new();
    for (prefix, source) in sources {
        source(&mut |key, value| out.push((format!("{prefix}.{key}"), value)));
    }
    out
}

/// The value of one full name (`"smr.cache.poll"`), if a source emits it.
pub fn get(name: &str) -> Option<u64> {
    let (prefix, key) = name.rsplit_once('.')?;
    let source = tree().get(prefix)?.clone();
    let mut found = None;
    source(&mut |k, v| {
        if k == key {
            found = Some(v);
        }
    });
    found
}

/// Every value whose name starts with `prefix`.
pub fn with_prefix(prefix: &str) -> Vec<(String, u64)> {
    snapshot().into_iter().filter(|(k, _)| k.starts_with(prefix)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_prefixes_get_a_suffix_and_unregister_independently() {
        let a = register("test.dup", |e| e("v", 1));
        let b = register("test.dup", |e| e("v", 2));
        assert_eq!(a.prefix(), "test.dup");
        assert_eq!(b.prefix(), "test.dup#2");
        assert_eq!(get("test.dup.v"), Some(1));
        assert_eq!(get("test.dup#2.v"), Some(2));
        drop(a);
        assert_eq!(get("test.dup.v"), None);
        assert_eq!(get("test.dup#2.v"), Some(2));
        let c = register("test.dup", |e| e("v", 3));
        assert_eq!(c.prefix(), "test.dup");
        assert_eq!(with_prefix("test.dup").len(), 2);
    }

    #[test]
    fn a_source_may_read_the_tree_itself() {
        // Sources run outside the lock, so this must not deadlock.
        let _o = register("test.other", |e| e("x", 7));
        let _r = register("test.reentrant", |e| e("n", get("test.other.x").unwrap_or(0)));
        assert_eq!(get("test.reentrant.n"), Some(7));
    }
}
