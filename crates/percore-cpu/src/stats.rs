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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

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
