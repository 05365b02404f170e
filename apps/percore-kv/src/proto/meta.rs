//! The meta commands: `mg ms md ma mn me`.
//!
//! A meta line is `<cmd> <key> [<datalen>] <flag>*`; a flag is one character
//! followed by its token (`T30`, `Oabc`, `v`). memcached 1.6.18's rules,
//! mirrored here:
//!
//! * Flags are checked once, left to right (`_meta_flag_preparse`): a repeated
//!   flag or a byte >= 127 is `CLIENT_ERROR duplicate flag`, an unknown one
//!   `CLIENT_ERROR invalid flag` (both stop at once); a bad number is recorded
//!   and the scan goes on (the last message wins; a bad `F` keeps the
//!   previous message, by default `CLIENT_ERROR bad command line format`).
//!   `md` and `ma` answer any of these with `CLIENT_ERROR invalid or
//!   duplicate flag`.
//! * More than 17 flags: `CLIENT_ERROR options flags are too long` (`mg`) or
//!   `... flags too long` (`ms md ma`); an opaque longer than 32 bytes:
//!   `CLIENT_ERROR opaque token too long`.
//! * Return flags are echoed in the order the request gave them; `W`, `X`,
//!   `Z` are appended as `Z`, `X`, `W`.
//! * `q` hides the nominal reply: `EN` of `mg`, `HD` of `ms md`, the success
//!   of `ma`. Errors are always sent.
//! * `b`: the key is base64; it is decoded for the store and re-encoded in
//!   `k` replies, followed by ` b`.
//! * `ms` swallows its data block after an error found once the length was
//!   read (bad flags, bad mode, too large), and not before (a missing or bad
//!   length: the data is read as a command).

use super::text::{count_cas, reply, Tokens};
use super::{exptime, parse_i32, parse_u32, parse_u64, put_i64, put_u64, Session, Step};
use crate::context::Context;
use crate::store::{
    clock::REALTIME_MAXDELTA, ArithOutcome, ArithReq, DeleteOutcome, DeleteReq, GetReq, Mode, StoreOutcome, StoreReq,
    KEY_MAX,
};

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
/// memcached's `MFLAG_MAX_OPT_LENGTH` (a limit on `ntokens`).
const MAX_OPT: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH` (the token, `O` included).
const MAX_OPAQUE: usize = 32;

/// The flags of one meta request (memcached's `struct _meta_flags`).
#[derive(Default)]
struct Flags {
    key_binary: bool,
    no_update: bool,
    vivify: Option<i32>,
    ttl: Option<i32>,
    recache: Option<i32>,
    value: bool,
    no_reply: bool,
    stale: bool,
    client_flags: u32,
    cas: Option<u64>,
    mode: Option<u8>,
    delta: Option<u64>,
    initial: u64,
    /// An `O` token longer than memcached allows.
    opaque_too_long: bool,
}

/// A key, decoded from base64 when the request said `b`.
struct Key {
    buf: [u8; KEY_MAX],
    len: usize,
}

/// Parses the flags from token `start` on; `key` is decoded in place for
/// `b`. `Err` carries memcached's message.
fn preparse(t: &Tokens<'_>, start: usize, key: &mut Key) -> Result<Flags, &'static str> {
    let mut f = Flags::default();
    let mut seen = [false; 127];
    let mut err: Option<&'static str> = None;
    let num_err = "CLIENT_ERROR bad token in command line format";
    for i in start..t.n {
        let tok = t.t[i];
        let o = tok[0];
        if o >= 127 || seen[o as usize] {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen[o as usize] = true;
        let arg = &tok[1..];
        match o {
            b'b' => match base64_decode(&key.buf[..key.len]) {
                Some((buf, len)) => {
                    key.buf = buf;
                    key.len = len;
                    f.key_binary = true;
                }
                None => err = Some("CLIENT_ERROR error decoding key"),
            },
            b'N' => match parse_i32(arg) {
                Some(v) => f.vivify = Some(v),
                None => err = Some(num_err),
            },
            b'T' => match parse_i32(arg) {
                Some(v) => f.ttl = Some(v),
                None => err = Some(num_err),
            },
            b'R' => match parse_i32(arg) {
                Some(v) => f.recache = Some(v),
                None => err = Some(num_err),
            },
            b'O' => f.opaque_too_long |= tok.len() > MAX_OPAQUE,
            b'P' | b'L' | b'l' | b'k' | b's' | b't' | b'c' | b'f' | b'h' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.no_reply = true,
            b'I' => f.stale = true,
            b'F' => match parse_u32(arg) {
                Some(v) => f.client_flags = v,
                None => err = Some(err.unwrap_or(BAD_FORMAT)),
            },
            b'C' => match parse_u64(arg) {
                Some(v) => f.cas = Some(v),
                None => err = Some(num_err),
            },
            b'M' => {
                if tok.len() != 2 {
                    err = Some("CLIENT_ERROR incorrect length for M token");
                } else {
                    f.mode = Some(tok[1]);
                }
            }
            b'J' => match parse_u64(arg) {
                Some(v) => f.initial = v,
                None => err = Some("CLIENT_ERROR invalid numeric initial value"),
            },
            b'D' => match parse_u64(arg) {
                Some(v) => f.delta = Some(v),
                None => err = Some("CLIENT_ERROR invalid numeric delta value"),
            },
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

/// Dispatches `m<sub>`.
pub(super) fn command(
    s: &mut Session,
    ctx: &Context,
    sub: u8,
    t: &Tokens<'_>,
    used: usize,
    rest: &[u8],
    out: &mut Vec<u8>,
) -> Step {
    if sub == b'n' {
        out.extend_from_slice(b"MN\r\n");
        return Step::Done(used);
    }
    if sub == b'e' && t.ntokens() < 3 {
        reply(out, false, BAD_FORMAT.as_bytes());
        return Step::Done(used);
    }
    if !matches!(sub, b'g' | b's' | b'd' | b'a' | b'e') || t.ntokens() < 3 {
        reply(out, false, b"ERROR");
        return Step::Done(used);
    }
    let raw = t.t[1];
    if raw.len() > KEY_MAX {
        reply(out, false, BAD_FORMAT.as_bytes());
        return Step::Done(used);
    }
    let mut key = Key { buf: [0; KEY_MAX], len: raw.len() };
    key.buf[..raw.len()].copy_from_slice(raw);
    match sub {
        b'g' => mg(ctx, t, &mut key, out),
        b's' => return ms(s, ctx, t, &mut key, used, rest, out),
        b'd' => md(ctx, t, &mut key, out),
        b'a' => ma(ctx, t, &mut key, out),
        _ => me(ctx, t, &mut key, out),
    }
    Step::Done(used)
}

/// Appends the ` O...` and ` k...` return flags, in request order.
fn echo_ok(out: &mut Vec<u8>, t: &Tokens<'_>, start: usize, key: &[u8], binary: bool) {
    for tok in &t.t[start..t.n] {
        match tok[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => put_key(out, key, binary),
            _ => {}
        }
    }
}

/// Appends ` k<key>`, base64 and ` b` for a binary key.
fn put_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    if binary {
        base64_encode(out, key);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

fn err_line(out: &mut Vec<u8>, msg: &str) {
    reply(out, false, msg.as_bytes());
}

/// `mg <key> <flag>*`.
fn mg(ctx: &Context, t: &Tokens<'_>, key: &mut Key, out: &mut Vec<u8>) {
    if t.ntokens() > MAX_OPT {
        return err_line(out, "CLIENT_ERROR options flags are too long");
    }
    let f = match preparse(t, 2, key) {
        Ok(f) => f,
        Err(e) => return err_line(out, e),
    };
    let key = &key.buf[..key.len];
    let recache = f.recache.and_then(|r| {
        let r = i64::from(r);
        let r = if r > REALTIME_MAXDELTA { r - ctx.store.clock().unix_now() } else { r };
        u32::try_from(r).ok().filter(|&r| r > 0)
    });
    let req = GetReq { touch: f.ttl.map(exptime), vivify: f.vivify.map(exptime), recache, no_bump: f.no_update };
    let start = out.len();
    let hit = ctx.store.get(key, &req, |h| {
        if f.value {
            out.reserve(h.value.len() + 64);
            out.extend_from_slice(b"VA ");
            put_u64(out, h.value.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        for tok in &t.t[2..t.n] {
            match tok[0] {
                b's' => {
                    out.extend_from_slice(b" s");
                    put_u64(out, h.value.len() as u64);
                }
                b't' => {
                    out.extend_from_slice(b" t");
                    put_i64(out, h.ttl);
                }
                b'c' => {
                    out.extend_from_slice(b" c");
                    put_u64(out, h.cas());
                }
                b'f' => {
                    out.extend_from_slice(b" f");
                    put_u64(out, u64::from(h.flags));
                }
                b'l' => {
                    out.extend_from_slice(b" l");
                    put_u64(out, u64::from(h.last_access));
                }
                b'h' => out.extend_from_slice(if h.fetched { b" h1" } else { b" h0" }),
                b'O' => {
                    out.push(b' ');
                    out.extend_from_slice(tok);
                }
                b'k' => put_key(out, h.key, f.key_binary),
                _ => {}
            }
        }
        if h.token_taken {
            out.extend_from_slice(b" Z");
        }
        if h.stale {
            out.extend_from_slice(b" X");
        }
        if h.win {
            out.extend_from_slice(b" W");
        }
        out.extend_from_slice(b"\r\n");
        if f.value {
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    });
    if f.opaque_too_long {
        out.truncate(start);
        return err_line(out, "CLIENT_ERROR opaque token too long");
    }
    let st = &ctx.stats;
    if hit.is_some() {
        if f.ttl.is_some() {
            st.cmd_touch.inc();
            st.touch_hits.inc();
        } else {
            st.cmd_get.inc();
            st.get_hits.inc();
        }
    } else {
        st.cmd_get.inc();
        st.get_misses.inc();
        if !f.no_reply {
            out.extend_from_slice(b"EN");
            echo_ok(out, t, 2, key, f.key_binary);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// `ms <key> <datalen> <flag>*` and its data block.
fn ms(
    s: &mut Session,
    ctx: &Context,
    t: &Tokens<'_>,
    key: &mut Key,
    used: usize,
    rest: &[u8],
    out: &mut Vec<u8>,
) -> Step {
    let nt = t.ntokens();
    if nt == 3 {
        err_line(out, BAD_FORMAT);
        return Step::Done(used);
    }
    if nt > MAX_OPT {
        err_line(out, "CLIENT_ERROR options flags too long");
        return Step::Done(used);
    }
    let vlen = match parse_i32(t.t[2]) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => v as usize,
        _ => {
            err_line(out, BAD_FORMAT);
            return Step::Done(used);
        }
    };
    let fail = |s: &mut Session, out: &mut Vec<u8>, msg: &str| {
        err_line(out, msg);
        s.swallow = vlen as u64 + 2;
        Step::Done(used)
    };
    let f = match preparse(t, 3, key) {
        Ok(f) => f,
        Err(e) => return fail(s, out, e),
    };
    let mode = match f.mode {
        None | Some(b'S') => Mode::Set,
        Some(b'E') => Mode::Add,
        Some(b'A') => Mode::Append,
        Some(b'P') => Mode::Prepend,
        Some(b'R') => Mode::Replace,
        Some(_) => return fail(s, out, "CLIENT_ERROR invalid mode for ms M token"),
    };
    if f.opaque_too_long {
        return fail(s, out, "CLIENT_ERROR opaque token too long");
    }
    let key = &key.buf[..key.len];
    if !ctx.store.config().fits(key.len(), vlen) {
        ctx.stats.store_too_large.inc();
        // As memcached: a failed store must not leave stale data behind.
        ctx.store.delete(key, &DeleteReq::default());
        return fail(s, out, "SERVER_ERROR object too large for cache");
    }
    let total = used + vlen + 2;
    if rest.len() < total {
        return Step::More(total);
    }
    ctx.stats.cmd_set.inc();
    if &rest[used + vlen..total] != b"\r\n" {
        err_line(out, "CLIENT_ERROR bad data chunk");
        return Step::Done(total);
    }
    let cas_mode = f.cas.is_some() && matches!(mode, Mode::Set | Mode::Replace);
    let mut req = StoreReq::new(mode, key, &rest[used..used + vlen], f.client_flags, f.ttl.map_or(0, exptime));
    req.cas = if mode == Mode::Add { None } else { f.cas };
    req.invalidate = f.stale && cas_mode;
    let outcome = ctx.store.store(&req);
    if cas_mode {
        count_cas(ctx, outcome);
    }
    let (code, cas): (&[u8], u64) = match outcome {
        StoreOutcome::Stored { cas } => (b"HD", cas),
        StoreOutcome::Exists => (b"EX", 0),
        StoreOutcome::NotFound => (b"NF", 0),
        StoreOutcome::NotStored => (b"NS", 0),
        StoreOutcome::TooLarge => {
            err_line(out, "SERVER_ERROR object too large for cache");
            return Step::Done(total);
        }
        StoreOutcome::NoMemory => {
            ctx.stats.store_no_memory.inc();
            err_line(out, "SERVER_ERROR out of memory storing object");
            return Step::Done(total);
        }
    };
    if code == b"HD" && f.no_reply {
        return Step::Done(total);
    }
    out.extend_from_slice(code);
    for tok in &t.t[3..t.n] {
        match tok[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(tok);
            }
            b'k' => put_key(out, key, f.key_binary),
            b'c' => {
                out.extend_from_slice(b" c");
                put_u64(out, cas);
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    Step::Done(total)
}

/// `md <key> <flag>*`.
fn md(ctx: &Context, t: &Tokens<'_>, key: &mut Key, out: &mut Vec<u8>) {
    if t.ntokens() > MAX_OPT {
        return err_line(out, "CLIENT_ERROR options flags too long");
    }
    let Ok(f) = preparse(t, 2, key) else {
        return err_line(out, "CLIENT_ERROR invalid or duplicate flag");
    };
    if f.opaque_too_long {
        return err_line(out, "CLIENT_ERROR opaque token too long");
    }
    let key = &key.buf[..key.len];
    let req = DeleteReq { cas: f.cas, invalidate: f.stale, ttl: f.ttl.map(exptime) };
    let code: &[u8] = match ctx.store.delete(key, &req) {
        DeleteOutcome::Deleted => {
            if !f.stale {
                ctx.stats.delete_hits.inc();
            }
            if f.no_reply {
                return;
            }
            b"HD"
        }
        DeleteOutcome::NotFound => {
            ctx.stats.delete_misses.inc();
            b"NF"
        }
        DeleteOutcome::Exists => {
            ctx.stats.delete_misses.inc();
            b"EX"
        }
    };
    out.extend_from_slice(code);
    echo_ok(out, t, 2, key, f.key_binary);
    out.extend_from_slice(b"\r\n");
}

/// `ma <key> <flag>*`.
fn ma(ctx: &Context, t: &Tokens<'_>, key: &mut Key, out: &mut Vec<u8>) {
    if t.ntokens() > MAX_OPT {
        return err_line(out, "CLIENT_ERROR options flags too long");
    }
    let Ok(f) = preparse(t, 2, key) else {
        return err_line(out, "CLIENT_ERROR invalid or duplicate flag");
    };
    let incr = match f.mode {
        None | Some(b'I') | Some(b'+') => true,
        Some(b'D') | Some(b'-') => false,
        Some(_) => return err_line(out, "CLIENT_ERROR invalid mode for ma M token"),
    };
    if f.opaque_too_long {
        return err_line(out, "CLIENT_ERROR opaque token too long");
    }
    let key = &key.buf[..key.len];
    let mut req = ArithReq::new(key, incr, f.delta.unwrap_or(1));
    req.cas = f.cas;
    req.vivify = f.vivify.map(|v| (f.initial, exptime(v)));
    req.ttl = f.ttl.map(exptime);
    let st = &ctx.stats;
    match ctx.store.arith(&req) {
        ArithOutcome::Value { value, cas, ttl } => {
            if incr {
                st.incr_hits.inc()
            } else {
                st.decr_hits.inc()
            }
            if f.no_reply {
                return;
            }
            let mut digits = Vec::new();
            put_u64(&mut digits, value);
            if f.value {
                out.extend_from_slice(b"VA ");
                put_u64(out, digits.len() as u64);
            } else {
                out.extend_from_slice(b"HD");
            }
            for tok in &t.t[2..t.n] {
                match tok[0] {
                    b'c' => {
                        out.extend_from_slice(b" c");
                        put_u64(out, cas);
                    }
                    b't' => {
                        out.extend_from_slice(b" t");
                        put_i64(out, ttl);
                    }
                    b'O' => {
                        out.push(b' ');
                        out.extend_from_slice(tok);
                    }
                    b'k' => put_key(out, key, f.key_binary),
                    _ => {}
                }
            }
            if f.value {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&digits);
            }
            out.extend_from_slice(b"\r\n");
        }
        ArithOutcome::NonNumeric => err_line(out, "CLIENT_ERROR cannot increment or decrement non-numeric value"),
        ArithOutcome::NoMemory => err_line(out, "SERVER_ERROR out of memory"),
        other => {
            let code: &[u8] = match other {
                ArithOutcome::NotFound => {
                    if incr {
                        st.incr_misses.inc()
                    } else {
                        st.decr_misses.inc()
                    }
                    b"NF"
                }
                // `Exists`: the only outcome the arms above leave.
                _ => b"EX",
            };
            out.extend_from_slice(code);
            echo_ok(out, t, 2, key, f.key_binary);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// `me <key> [b]`: memcached's item debug line.
fn me(ctx: &Context, t: &Tokens<'_>, key: &mut Key, out: &mut Vec<u8>) {
    let binary = t.ntokens() >= 4 && t.t[2] == b"b";
    if binary {
        match base64_decode(&key.buf[..key.len]) {
            Some((buf, len)) => {
                key.buf = buf;
                key.len = len;
            }
            None => return err_line(out, BAD_FORMAT),
        }
    }
    let key = &key.buf[..key.len];
    let req = GetReq { no_bump: true, ..GetReq::default() };
    let hit = ctx.store.get(key, &req, |h| {
        out.extend_from_slice(b"ME ");
        if binary {
            base64_encode(out, h.key);
        } else {
            out.extend_from_slice(h.key);
        }
        out.extend_from_slice(b" exp=");
        // memcached prints `current_time - exptime`: minus the TTL.
        put_i64(out, if h.ttl < 0 { -1 } else { -h.ttl });
        out.extend_from_slice(b" la=");
        put_u64(out, u64::from(h.last_access));
        out.extend_from_slice(b" cas=");
        put_u64(out, h.cas());
        out.extend_from_slice(if h.fetched { b" fetch=yes" } else { b" fetch=no" });
        out.extend_from_slice(b" cls=1 size=");
        // memcached's ITEM_ntotal: header, CAS, key and NUL, flags when
        // non-zero, value and "\r\n".
        let flags = if h.flags == 0 { 0 } else { 4 };
        put_u64(out, (48 + 8 + h.key.len() + 1 + flags + h.value.len() + 2) as u64);
        out.extend_from_slice(b"\r\n");
    });
    if hit.is_none() {
        out.extend_from_slice(b"EN\r\n");
    }
    ctx.stats.cmd_meta.inc();
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the base64 of `src` (with padding).
fn base64_encode(out: &mut Vec<u8>, src: &[u8]) {
    for c in src.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 { B64[(n >> 6) as usize & 63] } else { b'=' });
        out.push(if c.len() > 2 { B64[n as usize & 63] } else { b'=' });
    }
}

/// Decodes base64 (with padding); `None` when malformed or empty.
fn base64_decode(src: &[u8]) -> Option<([u8; KEY_MAX], usize)> {
    if src.is_empty() || !src.len().is_multiple_of(4) {
        return None;
    }
    let val = |b: u8| B64.iter().position(|&c| c == b).map(|v| v as u32);
    let mut buf = [0u8; KEY_MAX];
    let mut len = 0;
    let quads = src.len() / 4;
    for (i, q) in src.chunks(4).enumerate() {
        let last = i + 1 == quads;
        let pad = q.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &b in &q[..4 - pad] {
            n = (n << 6) | val(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        for &b in &bytes[..3 - pad] {
            buf[len] = b;
            len += 1;
        }
    }
    (len > 0).then_some((buf, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in [&b"f"[..], b"fo", b"foo", b"foob", b"missing", &[0, 255, 10, 13]] {
            let mut e = Vec::new();
            base64_encode(&mut e, s);
            let (buf, len) = base64_decode(&e).unwrap();
            assert_eq!(&buf[..len], s);
        }
        let mut e = Vec::new();
        base64_encode(&mut e, b"missing");
        assert_eq!(e, b"bWlzc2luZw==");
        for bad in [&b"###"[..], b"Zm9", b"Zm=v", b"====", b""] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
    }
}
