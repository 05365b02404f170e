//! Pool priorities: the public `PRI_*` range, its nice values and labels.
//! At the bottom of the crate's import graph (the pool, its core and the
//! per-CPU pools all name it; it names only the error type).

use crate::error::Error;

/// No priority: pool threads keep the process's scheduling priority.
pub const PRI_NONE: i32 = -1;
/// The lowest priority: nice 19.
pub const PRI_MIN: i32 = 0;
/// The highest priority: nice -20 (needs `CAP_SYS_NICE` to be applied).
pub const PRI_MAX: i32 = 39;

/// The nice value a priority maps to (`nice = 19 - pri`), or `None` for
/// [`PRI_NONE`].
pub(crate) fn nice_of(pri: i32) -> Option<i32> {
    (pri != PRI_NONE).then_some(19 - pri)
}

/// `Ok` for [`PRI_NONE`] and `PRI_MIN..=PRI_MAX`, else the typed error.
pub(crate) fn check_pri(pri: i32) -> Result<(), Error> {
    if pri == PRI_NONE || (PRI_MIN..=PRI_MAX).contains(&pri) {
        Ok(())
    } else {
        Err(Error::InvalidPriority(pri))
    }
}

/// A priority as pool names spell it (`none`, or the number).
pub(crate) fn label(pri: i32) -> String {
    if pri == PRI_NONE {
        "none".to_string()
    } else {
        pri.to_string()
    }
}
