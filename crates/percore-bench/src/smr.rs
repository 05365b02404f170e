//! SMR benchmarks (being written).
use crate::{report::Report, Budget};
pub(crate) fn run(_: Budget, _: &mut Report) {}
