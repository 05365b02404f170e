//! The seam between a zone and the SMR domain that guards its items.
//!
//! The zone needs five things from a reclamation domain: a new write
//! sequence to tag a bucket with (`advance`), a non-blocking "has this tag
//! expired?" (`poll(tag, false)`), whether the calling thread is inside a
//! read section (waiting there would deadlock), a full grace period for the
//! zone's teardown, and a name for errors and stats. [`Grace`] names exactly
//! that, so the engine in `cache.rs` is written once for plain and SMR zones,
//! and unit tests can drive it with a fake domain whose expiry they control.

/// A bucket's tag: the goal that must expire before its items are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// A goal from [`percore_smr::Smr::advance`].
    Smr(percore_smr::Seq),
    /// A test domain's sequence number.
    #[cfg(all(test, not(loom)))]
    Fake(u64),
}

/// What a zone needs from an SMR domain.
pub(crate) trait Grace: Send + Sync {
    /// Start a new write sequence; items freed before it are safe once the
    /// returned tag expires (`smr_advance`).
    fn advance(&self) -> Tag;
    /// Whether every reader has moved past `tag` (`smr_poll(.., false)`).
    fn expired(&self, tag: &Tag) -> bool;
    /// Whether the calling thread is inside a read section of this domain.
    fn in_section(&self) -> bool;
    /// Wait for a full grace period; `false` when that is impossible here
    /// (the caller is inside a section).
    fn synchronize(&self) -> bool;
    /// Run `f` after a grace period (used when a zone is dropped inside a
    /// read section and cannot wait).
    fn defer(&self, f: Box<dyn FnOnce() + Send>);
}

impl Grace for percore_smr::Smr {
    fn advance(&self) -> Tag {
        Tag::Smr(percore_smr::Smr::advance(self))
    }

    fn expired(&self, tag: &Tag) -> bool {
        match *tag {
            Tag::Smr(goal) => self.poll(goal, false),
            #[cfg(all(test, not(loom)))]
            Tag::Fake(_) => false,
        }
    }

    fn in_section(&self) -> bool {
        percore_smr::Smr::in_section(self)
    }

    fn synchronize(&self) -> bool {
        percore_smr::Smr::synchronize(self).is_ok()
    }

    fn defer(&self, f: Box<dyn FnOnce() + Send>) {
        percore_smr::Smr::defer(self, f)
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod fake {
    //! A domain whose expiry a test drives by hand.
    use super::{Grace, Tag};
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    /// `advance` bumps `wr`; a tag expires once the test sets `rd` to it.
    #[derive(Default)]
    pub(crate) struct FakeGrace {
        pub(crate) wr: AtomicU64,
        pub(crate) rd: AtomicU64,
    }

    impl FakeGrace {
        /// Everything advanced so far expires.
        pub(crate) fn expire_all(&self) {
            self.rd.store(self.wr.load(SeqCst), SeqCst);
        }
    }

    impl Grace for FakeGrace {
        fn advance(&self) -> Tag {
            Tag::Fake(self.wr.fetch_add(1, SeqCst) + 1)
        }
        fn expired(&self, tag: &Tag) -> bool {
            match *tag {
                Tag::Fake(t) => t <= self.rd.load(SeqCst),
                Tag::Smr(_) => false,
            }
        }
        fn in_section(&self) -> bool {
            false
        }
        fn synchronize(&self) -> bool {
            self.expire_all();
            true
        }
        fn defer(&self, f: Box<dyn FnOnce() + Send>) {
            f()
        }
    }
}
