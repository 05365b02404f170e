//! The binary protocol (memcached's `protocol_binary.h`).
//!
//! ```text
//!  byte   0      1       2..3     4       5        6..7      8..11     12..15   16..23
//!       magic opcode  keylen  extlen datatype  vbucket/  bodylen   opaque    cas
//!                                             status
//!  then extras (extlen), key (keylen), value (bodylen - extlen - keylen)
//! ```
//!
//! All numbers big-endian. memcached 1.6.18's rules, mirrored here:
//!
//! * A request is taken once its header, extras and key are in; the value of
//!   a store is read after that (the connection waits for it).
//! * Magic other than `0x80`: the connection is closed without a reply.
//! * `keylen + extlen > bodylen`: `Unknown command`, then close. A key over
//!   250 bytes, or extras/key/body lengths an opcode does not allow:
//!   `Invalid arguments` (`EINVAL`), then close.
//! * Quiet opcodes (`GETQ SETQ ... GATKQ`) send nothing on success (and a get
//!   nothing on a miss), but always send errors. A quiet get's *hit* is sent.
//! * Error replies carry memcached's message as the body ("Not found",
//!   "Data exists for key.", "Too large.", ...), except a key-returning get's
//!   miss, whose body is the key.
//! * A store over the size limit answers `E2BIG` and swallows the value; a
//!   too-large `SET` also removes the old item.
//! * Unknown opcodes (including `VERBOSITY`, which memcached 1.6.18 does not
//!   dispatch) and the SASL opcodes (no SASL here) answer `Unknown command`
//!   and swallow the rest of the body.

use super::{stats, Session, Step, VERSION};
use crate::context::Context;
use crate::store::{ArithOutcome, ArithReq, DeleteOutcome, DeleteReq, GetReq, Mode, StoreOutcome, StoreReq, KEY_MAX};

/// The request magic byte.
pub(super) const MAGIC_REQ: u8 = 0x80;
/// The response magic byte.
const MAGIC_RES: u8 = 0x81;
/// The header's size.
const HEADER: usize = 24;

/// Opcodes.
mod op {
    pub(super) const GET: u8 = 0x00;
    pub(super) const SET: u8 = 0x01;
    pub(super) const ADD: u8 = 0x02;
    pub(super) const REPLACE: u8 = 0x03;
    pub(super) const DELETE: u8 = 0x04;
    pub(super) const INCREMENT: u8 = 0x05;
    pub(super) const DECREMENT: u8 = 0x06;
    pub(super) const QUIT: u8 = 0x07;
    pub(super) const FLUSH: u8 = 0x08;
    pub(super) const GETQ: u8 = 0x09;
    pub(super) const NOOP: u8 = 0x0a;
    pub(super) const VERSION: u8 = 0x0b;
    pub(super) const GETK: u8 = 0x0c;
    pub(super) const GETKQ: u8 = 0x0d;
    pub(super) const APPEND: u8 = 0x0e;
    pub(super) const PREPEND: u8 = 0x0f;
    pub(super) const STAT: u8 = 0x10;
    pub(super) const SETQ: u8 = 0x11;
    pub(super) const ADDQ: u8 = 0x12;
    pub(super) const REPLACEQ: u8 = 0x13;
    pub(super) const DELETEQ: u8 = 0x14;
    pub(super) const INCREMENTQ: u8 = 0x15;
    pub(super) const DECREMENTQ: u8 = 0x16;
    pub(super) const QUITQ: u8 = 0x17;
    pub(super) const FLUSHQ: u8 = 0x18;
    pub(super) const APPENDQ: u8 = 0x19;
    pub(super) const PREPENDQ: u8 = 0x1a;
    pub(super) const TOUCH: u8 = 0x1c;
    pub(super) const GAT: u8 = 0x1d;
    pub(super) const GATQ: u8 = 0x1e;
    pub(super) const SASL_LIST_MECHS: u8 = 0x20;
    pub(super) const SASL_AUTH: u8 = 0x21;
    pub(super) const SASL_STEP: u8 = 0x22;
    pub(super) const GATK: u8 = 0x23;
    pub(super) const GATKQ: u8 = 0x24;
}

/// Response status codes.
mod status {
    pub(super) const SUCCESS: u16 = 0x00;
    pub(super) const KEY_ENOENT: u16 = 0x01;
    pub(super) const KEY_EEXISTS: u16 = 0x02;
    pub(super) const E2BIG: u16 = 0x03;
    pub(super) const EINVAL: u16 = 0x04;
    pub(super) const NOT_STORED: u16 = 0x05;
    pub(super) const DELTA_BADVAL: u16 = 0x06;
    pub(super) const UNKNOWN_COMMAND: u16 = 0x81;
    pub(super) const ENOMEM: u16 = 0x82;
}

/// memcached's message for an error status.
fn message(st: u16) -> &'static [u8] {
    match st {
        status::ENOMEM => b"Out of memory",
        status::UNKNOWN_COMMAND => b"Unknown command",
        status::KEY_ENOENT => b"Not found",
        status::EINVAL => b"Invalid arguments",
        status::KEY_EEXISTS => b"Data exists for key.",
        status::E2BIG => b"Too large.",
        status::DELTA_BADVAL => b"Non-numeric server-side value for incr or decr",
        status::NOT_STORED => b"Not stored.",
        _ => b"Auth failure.",
    }
}

/// A request header, in host order.
#[derive(Clone, Copy, Debug)]
struct Header {
    opcode: u8,
    keylen: usize,
    extlen: usize,
    bodylen: usize,
    opaque: [u8; 4],
    cas: u64,
}

impl Header {
    fn parse(b: &[u8]) -> Header {
        Header {
            opcode: b[1],
            keylen: usize::from(u16::from_be_bytes([b[2], b[3]])),
            extlen: usize::from(b[4]),
            bodylen: u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize,
            opaque: [b[12], b[13], b[14], b[15]],
            cas: u64::from_be_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        }
    }
}

/// Appends a response header.
#[inline]
fn put_header(out: &mut Vec<u8>, h: &Header, st: u16, extlen: u8, keylen: usize, bodylen: usize, cas: u64) {
    out.push(MAGIC_RES);
    out.push(h.opcode);
    out.extend_from_slice(&(keylen as u16).to_be_bytes());
    out.push(extlen);
    out.push(0);
    out.extend_from_slice(&st.to_be_bytes());
    out.extend_from_slice(&(bodylen as u32).to_be_bytes());
    out.extend_from_slice(&h.opaque);
    out.extend_from_slice(&cas.to_be_bytes());
}

/// Appends an error response with memcached's message.
fn put_error(out: &mut Vec<u8>, h: &Header, st: u16) {
    let msg = message(st);
    put_header(out, h, st, 0, 0, msg.len(), 0);
    out.extend_from_slice(msg);
}

/// Answers the request at the start of `rest` (binary protocol).
pub(super) fn step(s: &mut Session, ctx: &Context, rest: &[u8], out: &mut Vec<u8>) -> Step {
    if rest.len() < HEADER {
        return Step::More(HEADER);
    }
    if rest[0] != MAGIC_REQ {
        return Step::Close(rest.len());
    }
    let h = Header::parse(rest);
    let head = HEADER + h.extlen + h.keylen;
    // NOTE: memcached reads the extras and key before these checks; they
    // depend on the header alone, so answering at once changes nothing but
    // that a lying key length is not waited for (up to 64 KiB).
    if h.keylen + h.extlen > h.bodylen {
        put_error(out, &h, status::UNKNOWN_COMMAND);
        return Step::Close(rest.len());
    }
    if h.keylen > KEY_MAX {
        put_error(out, &h, status::EINVAL);
        return Step::Close(rest.len());
    }
    if rest.len() < head {
        return Step::More(head);
    }
    let ext = &rest[HEADER..HEADER + h.extlen];
    let key = &rest[HEADER + h.extlen..head];
    let quiet = matches!(
        h.opcode,
        op::SETQ
            | op::ADDQ
            | op::REPLACEQ
            | op::DELETEQ
            | op::INCREMENTQ
            | op::DECREMENTQ
            | op::QUITQ
            | op::FLUSHQ
            | op::APPENDQ
            | op::PREPENDQ
            | op::GETQ
            | op::GETKQ
            | op::GATQ
            | op::GATKQ
    );
    let (kl, el, bl) = (h.keylen, h.extlen, h.bodylen);
    let ok = |out: &mut Vec<u8>, cas: u64| {
        if !quiet {
            put_header(out, &h, status::SUCCESS, 0, 0, 0, cas);
        }
    };
    let valid = match h.opcode {
        op::VERSION | op::NOOP | op::QUIT | op::QUITQ | op::SASL_LIST_MECHS => el == 0 && kl == 0 && bl == 0,
        op::FLUSH | op::FLUSHQ => kl == 0 && bl == el && (el == 0 || el == 4),
        op::SET | op::SETQ | op::ADD | op::ADDQ | op::REPLACE | op::REPLACEQ => el == 8 && kl != 0 && bl >= kl + 8,
        op::GET | op::GETQ | op::GETK | op::GETKQ => el == 0 && bl == kl && kl > 0,
        op::DELETE | op::DELETEQ => kl > 0 && el == 0 && bl == kl,
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => kl > 0 && el == 20 && bl == kl + el,
        op::APPEND | op::APPENDQ | op::PREPEND | op::PREPENDQ => kl > 0 && el == 0,
        op::STAT => el == 0,
        op::SASL_AUTH | op::SASL_STEP => el == 0 && kl != 0,
        op::TOUCH | op::GAT | op::GATQ | op::GATK | op::GATKQ => el == 4 && kl != 0,
        _ => true,
    };
    if !valid {
        put_error(out, &h, status::EINVAL);
        return Step::Close(head);
    }
    match h.opcode {
        op::VERSION => {
            put_header(out, &h, status::SUCCESS, 0, 0, VERSION.len(), 0);
            out.extend_from_slice(VERSION.as_bytes());
        }
        op::NOOP => put_header(out, &h, status::SUCCESS, 0, 0, 0, 0),
        op::QUIT | op::QUITQ => {
            ok(out, 0);
            return Step::Close(head);
        }
        op::FLUSH | op::FLUSHQ => {
            let delay = if el == 4 { u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]) } else { 0 };
            ctx.store.flush_all(i64::from(delay));
            ctx.stats.cmd_flush.inc();
            ok(out, 0);
        }
        op::SET
        | op::SETQ
        | op::ADD
        | op::ADDQ
        | op::REPLACE
        | op::REPLACEQ
        | op::APPEND
        | op::APPENDQ
        | op::PREPEND
        | op::PREPENDQ => return store(s, ctx, &h, rest, out, quiet),
        op::GET | op::GETQ | op::GETK | op::GETKQ | op::TOUCH | op::GAT | op::GATQ | op::GATK | op::GATKQ => {
            get(ctx, &h, ext, key, out, quiet)
        }
        op::DELETE | op::DELETEQ => {
            let req = DeleteReq { cas: (h.cas != 0).then_some(h.cas), ..DeleteReq::default() };
            match ctx.store.delete(key, &req) {
                DeleteOutcome::Deleted => {
                    ctx.stats.delete_hits.inc();
                    ok(out, 0);
                }
                DeleteOutcome::Exists => put_error(out, &h, status::KEY_EEXISTS),
                DeleteOutcome::NotFound => {
                    ctx.stats.delete_misses.inc();
                    put_error(out, &h, status::KEY_ENOENT);
                }
            }
        }
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => {
            let incr = matches!(h.opcode, op::INCREMENT | op::INCREMENTQ);
            let be64 = |b: &[u8]| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            let (delta, initial) = (be64(&ext[0..8]), be64(&ext[8..16]));
            let expiration = u32::from_be_bytes([ext[16], ext[17], ext[18], ext[19]]);
            let mut req = ArithReq::new(key, incr, delta);
            req.cas = (h.cas != 0).then_some(h.cas);
            req.vivify = (expiration != u32::MAX).then_some((initial, i64::from(expiration)));
            let st = &ctx.stats;
            match ctx.store.arith(&req) {
                ArithOutcome::Value { value, cas, .. } => {
                    if incr {
                        st.incr_hits.inc()
                    } else {
                        st.decr_hits.inc()
                    }
                    if !quiet {
                        put_header(out, &h, status::SUCCESS, 0, 0, 8, cas);
                        out.extend_from_slice(&value.to_be_bytes());
                    }
                }
                ArithOutcome::NonNumeric => put_error(out, &h, status::DELTA_BADVAL),
                ArithOutcome::NotFound => {
                    if incr {
                        st.incr_misses.inc()
                    } else {
                        st.decr_misses.inc()
                    }
                    put_error(out, &h, status::KEY_ENOENT);
                }
                ArithOutcome::Exists => put_error(out, &h, status::KEY_EEXISTS),
                ArithOutcome::NoMemory => put_error(out, &h, status::ENOMEM),
            }
        }
        op::STAT => stat(ctx, &h, key, out),
        _ => {
            // Unknown, VERBOSITY, and SASL without SASL.
            put_error(out, &h, status::UNKNOWN_COMMAND);
            s.swallow = (bl - kl - el) as u64;
        }
    }
    Step::Done(head)
}

/// The get family: `GET GETQ GETK GETKQ TOUCH GAT GATQ GATK GATKQ`.
#[inline]
fn get(ctx: &Context, h: &Header, ext: &[u8], key: &[u8], out: &mut Vec<u8>, quiet: bool) {
    let touch = matches!(h.opcode, op::TOUCH | op::GAT | op::GATQ | op::GATK | op::GATKQ);
    let with_key = matches!(h.opcode, op::GETK | op::GETKQ | op::GATK | op::GATKQ);
    let with_value = h.opcode != op::TOUCH;
    let mut req = GetReq::default();
    if touch {
        req.touch = Some(i64::from(u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]])));
    }
    let hit = ctx.store.get(key, &req, |hit| {
        let klen = if with_key { key.len() } else { 0 };
        let vlen = if with_value { hit.value.len() } else { 0 };
        out.reserve(HEADER + 4 + klen + vlen);
        put_header(out, h, status::SUCCESS, 4, klen, 4 + klen + vlen, hit.cas());
        out.extend_from_slice(&hit.flags.to_be_bytes());
        if with_key {
            out.extend_from_slice(key);
        }
        if with_value {
            out.extend_from_slice(hit.value);
        }
    });
    ctx.stats.count_retrieval(touch, hit.is_some());
    if hit.is_none() && !quiet {
        if with_key {
            put_header(out, h, status::KEY_ENOENT, 0, key.len(), key.len(), 0);
            out.extend_from_slice(key);
        } else {
            put_error(out, h, status::KEY_ENOENT);
        }
    }
}

/// `SET ADD REPLACE APPEND PREPEND` and their quiet forms.
fn store(s: &mut Session, ctx: &Context, h: &Header, rest: &[u8], out: &mut Vec<u8>, quiet: bool) -> Step {
    let head = HEADER + h.extlen + h.keylen;
    let vlen = h.bodylen - h.extlen - h.keylen;
    let key = &rest[HEADER + h.extlen..head];
    let mode = match h.opcode {
        op::SET | op::SETQ => Mode::Set,
        op::ADD | op::ADDQ => Mode::Add,
        op::REPLACE | op::REPLACEQ => Mode::Replace,
        op::APPEND | op::APPENDQ => Mode::Append,
        _ => Mode::Prepend,
    };
    if !ctx.store.config().fits(key.len(), vlen) {
        ctx.stats.store_too_large.inc();
        put_error(out, h, status::E2BIG);
        if mode == Mode::Set {
            ctx.store.delete(key, &DeleteReq::default());
        }
        s.swallow = vlen as u64;
        return Step::Done(head);
    }
    let total = head + vlen;
    if rest.len() < total {
        return Step::More(total);
    }
    let (flags, exptime) = if h.extlen == 8 {
        let e = &rest[HEADER..HEADER + 8];
        (u32::from_be_bytes([e[0], e[1], e[2], e[3]]), i64::from(u32::from_be_bytes([e[4], e[5], e[6], e[7]])))
    } else {
        (0, 0)
    };
    let cas = (h.cas != 0).then_some(h.cas);
    // memcached turns any set/add/replace with a CAS into a CAS store.
    let mode = if cas.is_some() && matches!(mode, Mode::Add | Mode::Replace) { Mode::Set } else { mode };
    let mut req = StoreReq::new(mode, key, &rest[head..total], flags, exptime);
    req.cas = cas;
    ctx.stats.cmd_set.inc();
    let outcome = ctx.store.store(&req);
    if cas.is_some() && !matches!(mode, Mode::Append | Mode::Prepend) {
        super::text::count_cas(ctx, outcome);
    }
    match outcome {
        StoreOutcome::Stored { cas } => {
            if !quiet {
                put_header(out, h, status::SUCCESS, 0, 0, 0, cas);
            }
        }
        StoreOutcome::Exists => put_error(out, h, status::KEY_EEXISTS),
        StoreOutcome::NotFound => put_error(out, h, status::KEY_ENOENT),
        other => {
            if other == StoreOutcome::NoMemory {
                ctx.stats.store_no_memory.inc();
            }
            let st = match (cas, mode) {
                (None, Mode::Add) => status::KEY_EEXISTS,
                (None, Mode::Replace) => status::KEY_ENOENT,
                _ => status::NOT_STORED,
            };
            put_error(out, h, st);
        }
    }
    Step::Done(total)
}

/// `STAT [<group>]`: a packet per pair, then an empty one.
fn stat(ctx: &Context, h: &Header, key: &[u8], out: &mut Vec<u8>) {
    let mut emit = |k: &[u8], v: &[u8]| {
        put_header(out, h, status::SUCCESS, 0, k.len(), k.len() + v.len(), 0);
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    };
    if key.is_empty() {
        stats::general(ctx, &mut emit);
    } else if key.starts_with(b"reset") {
        stats::reset(ctx);
    } else if key.starts_with(b"settings") {
        stats::settings(ctx, &mut emit);
    } else if let Some(sub) = key.strip_prefix(b"detail") {
        if sub.starts_with(b" dump") {
            emit(b"detailed", b"");
        } else if !(sub.starts_with(b" on") || sub.starts_with(b" off")) {
            return put_error(out, h, status::KEY_ENOENT);
        }
    } else if !stats::engine(ctx, key, &mut emit) {
        return put_error(out, h, status::KEY_ENOENT);
    }
    put_header(out, h, status::SUCCESS, 0, 0, 0, 0);
}
