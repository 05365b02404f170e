//! Wrapping 32-bit sequence numbers (`smr_seq_t`) and their constants.
//!
//! Sequence numbers live on a circle of 2^32 values. Two of them compare by
//! their signed distance, so `a` is "before" `b` when `b - a`, taken modulo
//! 2^32 and read as an `i32`, is positive. This works while every pair that
//! is ever compared is less than 2^31 apart, which `advance` guarantees by
//! never letting `wr_seq - rd_seq` reach [`MAX_DELTA`].
//!
//! All valid sequence numbers are odd (the start is odd, the increment even),
//! so 0 is free to mean "not in a read section" ([`INVALID`]).
//!
//! With the `wrap-test` feature (and in this crate's unit tests, and under
//! loom) the sequence starts 100,000
//! below the wrap point with an increment of `u32::MAX / 10000`, and the
//! maximum delta is only 32 increments, as FreeBSD's INVARIANTS kernels do:
//! every test run wraps the counter and hits the advance-wait path.

/// A point in an SMR domain's write sequence.
///
/// Sequence numbers wrap, so they are not totally ordered and `Seq` does not
/// implement `PartialOrd`: compare with [`Seq::lt`], [`Seq::le`],
/// [`Seq::gt`], [`Seq::ge`] or [`Seq::delta`], which are wrap-safe.
///
/// ```compile_fail
/// # use percore_smr::Seq;
/// fn older(a: Seq, b: Seq) -> bool { a < b } // wrap-unsafe: does not compile
/// ```
///
/// ```
/// use percore_smr::Seq;
/// let a = Seq::from_raw(u32::MAX - 1);
/// let b = Seq::from_raw(3); // 5 steps later, across the wrap point
/// assert!(a.lt(b) && b.gt(a));
/// assert_eq!(b.delta(a), 5);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seq(pub(crate) u32);

impl Seq {
    /// A sequence number from its raw value (for tests and diagnostics).
    #[inline]
    pub const fn from_raw(raw: u32) -> Seq {
        Seq(raw)
    }

    /// The raw 32-bit value.
    #[inline]
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// `self - other` as a signed distance (`SMR_SEQ_DELTA`).
    #[inline]
    pub const fn delta(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self` comes strictly before `other` (`SMR_SEQ_LT`).
    #[inline]
    pub const fn lt(self, other: Seq) -> bool {
        self.delta(other) < 0
    }

    /// `self` comes before `other` or is it (`SMR_SEQ_LEQ`).
    #[inline]
    pub const fn le(self, other: Seq) -> bool {
        self.delta(other) <= 0
    }

    /// `self` comes strictly after `other` (`SMR_SEQ_GT`).
    #[inline]
    pub const fn gt(self, other: Seq) -> bool {
        self.delta(other) > 0
    }

    /// `self` comes after `other` or is it (`SMR_SEQ_GEQ`).
    #[inline]
    pub const fn ge(self, other: Seq) -> bool {
        self.delta(other) >= 0
    }

    /// The earlier of the two (`SMR_SEQ_MIN`).
    #[inline]
    pub const fn min(self, other: Seq) -> Seq {
        if self.lt(other) {
            self
        } else {
            other
        }
    }

    /// The later of the two (`SMR_SEQ_MAX`).
    #[inline]
    pub const fn max(self, other: Seq) -> Seq {
        if self.gt(other) {
            self
        } else {
            other
        }
    }

    #[inline]
    pub(crate) const fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }

    #[inline]
    pub(crate) const fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

impl std::fmt::Debug for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

/// "Not in a read section" (`SMR_SEQ_INVALID`). Never a valid sequence.
pub(crate) const INVALID: u32 = 0;

#[cfg(not(any(loom, test, feature = "wrap-test")))]
mod constants {
    /// Where every domain starts. Odd: all valid sequences are odd.
    pub(crate) const INIT: u32 = 1;
    /// One advance. Even, so sequences stay odd.
    pub(crate) const INCR: u32 = 2;
    /// The largest `wr_seq - rd_seq` allowed. Half the circle would do for
    /// the arithmetic; a quarter leaves margin because the check runs after
    /// the increment.
    pub(crate) const MAX_DELTA: u32 = u32::MAX / 4;
    /// How far an advance that hit `MAX_DELTA` waits readers back into range.
    pub(crate) const MAX_ADVANCE: u32 = MAX_DELTA - 1024;
}

#[cfg(any(loom, test, feature = "wrap-test"))]
mod constants {
    /// 100,000 below the wrap point: the first few advances wrap.
    pub(crate) const INIT: u32 = u32::MAX - 100_000;
    /// Huge steps (even, so sequences stay odd).
    pub(crate) const INCR: u32 = (u32::MAX / 10_000) & !1;
    /// Only 32 advances of room: stalled readers force advance to wait.
    pub(crate) const MAX_DELTA: u32 = INCR * 32;
    pub(crate) const MAX_ADVANCE: u32 = MAX_DELTA / 2;
}

pub(crate) use constants::{INCR, INIT, MAX_ADVANCE, MAX_DELTA};

/// Lazy domains: a goal is this many ticks in the future (`SMR_LAZY_GRACE`).
pub(crate) const LAZY_GRACE: u32 = 2;
/// Lazy goal distance in sequence units (`SMR_LAZY_INCR`).
pub(crate) const LAZY_INCR: u32 = LAZY_GRACE * INCR;
/// How far past `wr_seq` a deferred or lazy goal may legally be
/// (`SMR_SEQ_ADVANCE`).
pub(crate) const SEQ_ADVANCE: u32 = LAZY_INCR;

const _: () = assert!(INIT % 2 == 1 && INCR.is_multiple_of(2) && INCR > 0);
const _: () = assert!(MAX_DELTA < u32::MAX / 2 && MAX_ADVANCE < MAX_DELTA);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_are_wrap_safe() {
        let before = Seq(u32::MAX - 10);
        let after = before.add(20);
        assert_eq!(after.0, 9);
        assert!(before.lt(after) && before.le(after) && after.gt(before) && after.ge(before));
        assert!(!after.lt(before) && !before.gt(after));
        assert_eq!(after.delta(before), 20);
        assert_eq!(before.delta(after), -20);
        assert_eq!(before.min(after), before);
        assert_eq!(before.max(after), after);
        assert_eq!(after.sub(20), before);
        assert!(before.le(before) && before.ge(before) && !before.lt(before));
    }

    #[test]
    fn sequences_starting_at_init_never_hit_invalid() {
        let mut s = Seq(INIT);
        for _ in 0..100_000 {
            assert_ne!(s.0, INVALID);
            assert_eq!(s.0 % 2, 1);
            s = s.add(INCR);
        }
    }
}
