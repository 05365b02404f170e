//! The binary protocol (placeholder).

use super::{Session, Step};
use crate::context::Context;

/// The request magic byte.
pub(super) const MAGIC_REQ: u8 = 0x80;

pub(super) fn step(_s: &mut Session, _ctx: &Context, rest: &[u8], _out: &mut Vec<u8>) -> Step {
    Step::Close(rest.len())
}
