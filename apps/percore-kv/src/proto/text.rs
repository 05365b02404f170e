//! The classic text protocol: framing of lines, the tokenizer, and the
//! commands other than meta and `stats`.
//!
//! memcached's rules, mirrored here:
//!
//! * A line ends at `\n`; one `\r` before it is dropped when the line has more
//!   than one byte; a NUL byte ends the line early (memcached works on C
//!   strings).
//! * Tokens are separated by spaces only (a tab is part of a token, so a key
//!   may hold one). At most 23 tokens are looked at; memcached's token count
//!   `ntokens` is that number plus one (its terminal token), and the
//!   `WANT_TOKENS` checks below are written in its terms so they read like
//!   the C.
//! * `noreply` is recognised as the last token and hides every reply of that
//!   command, errors included.
//! * After a `CLIENT_ERROR` on a storage line the data block is *not* skipped
//!   (it is read as a command, usually giving `ERROR`); after `SERVER_ERROR
//!   object too large for cache` it is swallowed.
//! * A data block that does not end in `\r\n` is answered `CLIENT_ERROR bad
//!   data chunk`; exactly `<bytes> + 2` bytes were consumed, and parsing goes
//!   on after them (memcached 1.6.18 does not close here).

use memchr::memchr;

use super::{exptime, meta, parse_i32, parse_u32, parse_u64, put_u64, stats, Session, Step, MAX_GET_LINE, MAX_LINE};
use crate::context::{ConnInfo, Context};
use crate::store::{ArithOutcome, DeleteOutcome, DeleteReq, GetReq, Mode, StoreOutcome, StoreReq, KEY_MAX};

/// memcached's `MAX_TOKENS` (the last one is its terminal token).
const MAX_TOKENS: usize = 24;

/// The tokens of one line, as memcached's `tokenize_command` sees them.
pub(super) struct Tokens<'a> {
    /// The first tokens (at most `MAX_TOKENS - 1`).
    pub(super) t: [&'a [u8]; MAX_TOKENS - 1],
    /// How many of `t` are filled.
    pub(super) n: usize,
}

impl<'a> Tokens<'a> {
    /// Splits `line` on spaces.
    #[inline]
    pub(super) fn new(line: &'a [u8]) -> Self {
        let mut t: [&'a [u8]; MAX_TOKENS - 1] = [&[]; MAX_TOKENS - 1];
        let mut n = 0;
        for tok in line.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            t[n] = tok;
            n += 1;
            if n == MAX_TOKENS - 1 {
                break;
            }
        }
        Tokens { t, n }
    }

    /// memcached's `ntokens` (the tokens plus its terminal one).
    #[inline]
    pub(super) fn ntokens(&self) -> usize {
        self.n + 1
    }

    /// The token at `i`, empty past the end (memcached's terminal token).
    #[inline]
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        if i < self.n {
            self.t[i]
        } else {
            &[]
        }
    }

    /// Whether the last token is `noreply` (`set_noreply_maybe`).
    #[inline]
    fn noreply(&self) -> bool {
        self.n >= 1 && self.t[self.n - 1] == b"noreply"
    }
}

/// Appends `msg` and `\r\n`, unless the command asked for no reply.
#[inline]
pub(super) fn reply(out: &mut Vec<u8>, noreply: bool, msg: &[u8]) {
    if !noreply {
        out.extend_from_slice(msg);
        out.extend_from_slice(b"\r\n");
    }
}

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache";
const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object";

/// Answers the request at the start of `rest` (text protocol).
pub(super) fn step(s: &mut Session, ctx: &Context, conn: &ConnInfo, rest: &[u8], out: &mut Vec<u8>) -> Step {
    let Some(nl) = memchr(b'\n', rest) else {
        return no_newline(rest);
    };
    let mut line = &rest[..nl];
    if line.len() > 1 && line[line.len() - 1] == b'\r' {
        line = &line[..line.len() - 1];
    }
    if let Some(z) = memchr(0, line) {
        line = &line[..z];
    }
    command(s, ctx, conn, line, nl + 1, rest, out)
}

/// A line whose `\n` has not arrived: wait, or close as memcached does.
#[cold]
fn no_newline(rest: &[u8]) -> Step {
    if rest.len() <= MAX_LINE {
        return Step::More(0);
    }
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let tail = &rest[spaces..];
    if spaces > 100 || !(tail.starts_with(b"get ") || tail.starts_with(b"gets ")) || rest.len() > MAX_GET_LINE {
        return Step::Close(rest.len());
    }
    Step::More(0)
}

/// Dispatches one complete line (`used` bytes of `rest`, with its newline).
fn command(
    s: &mut Session,
    ctx: &Context,
    conn: &ConnInfo,
    line: &[u8],
    used: usize,
    rest: &[u8],
    out: &mut Vec<u8>,
) -> Step {
    let t = Tokens::new(line);
    let nt = t.ntokens();
    if t.n == 0 || t.t[0].len() < 2 {
        reply(out, false, b"ERROR");
        return Step::Done(used);
    }
    let cmd = t.t[0];
    let error = |out: &mut Vec<u8>| {
        reply(out, false, b"ERROR");
        Step::Done(used)
    };
    match cmd[0] {
        b'm' if cmd.len() == 2 => return meta::command(s, ctx, cmd[1], &t, used, rest, out),
        b'g' => {
            if nt < 3 {
                return error(out);
            }
            match cmd {
                b"get" => get(ctx, conn, line, out, false, false),
                b"gets" => get(ctx, conn, line, out, true, false),
                b"gat" => get(ctx, conn, line, out, false, true),
                b"gats" => get(ctx, conn, line, out, true, true),
                _ => return error(out),
            }
        }
        b's' => match cmd {
            b"set" if nt == 6 || nt == 7 => return update(s, ctx, conn, &t, used, rest, out, Mode::Set, false),
            b"stats" => stats::text(ctx, conn, &t, out),
            b"shutdown" => return shutdown(ctx, &t, used, out),
            _ => return error(out),
        },
        b'a' => match cmd {
            b"add" if nt == 6 || nt == 7 => return update(s, ctx, conn, &t, used, rest, out, Mode::Add, false),
            b"append" if nt == 6 || nt == 7 => return update(s, ctx, conn, &t, used, rest, out, Mode::Append, false),
            _ => return error(out),
        },
        b'c' => match cmd {
            b"cas" if nt == 7 || nt == 8 => return update(s, ctx, conn, &t, used, rest, out, Mode::Set, true),
            _ => return error(out),
        },
        b'i' => match cmd {
            b"incr" if nt == 4 || nt == 5 => arith(ctx, &t, out, true),
            _ => return error(out),
        },
        b'd' => match cmd {
            b"delete" if (3..=5).contains(&nt) => delete(ctx, &t, out),
            b"decr" if nt == 4 || nt == 5 => arith(ctx, &t, out, false),
            _ => return error(out),
        },
        b't' => match cmd {
            b"touch" if nt == 4 || nt == 5 => touch(ctx, &t, out),
            _ => return error(out),
        },
        _ => match cmd {
            b"replace" | b"prepend" if nt == 6 || nt == 7 => {
                let mode = if cmd == b"replace" { Mode::Replace } else { Mode::Prepend };
                return update(s, ctx, conn, &t, used, rest, out, mode, false);
            }
            b"replace" | b"prepend" => return error(out),
            b"bget" => get(ctx, conn, line, out, false, false),
            b"flush_all" if (2..=4).contains(&nt) => flush_all(ctx, &t, out),
            b"flush_all" => return error(out),
            b"version" => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(super::VERSION.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            b"quit" => return Step::Close(used),
            b"verbosity" if nt == 3 || nt == 4 => verbosity(ctx, &t, out),
            _ => {
                // memcached drops a client that speaks HTTP to it.
                if t.t[t.n - 1].starts_with(b"HTTP/") {
                    return Step::Close(used);
                }
                return error(out);
            }
        },
    }
    Step::Done(used)
}

/// `get gets gat gats bget <key>*`. Keys are taken from the whole line
/// (memcached tokenizes a long multiget in rounds of 23 tokens, to the same
/// effect).
#[inline]
fn get(ctx: &Context, conn: &ConnInfo, line: &[u8], out: &mut Vec<u8>, cas: bool, touch: bool) {
    let mut keys = line.split(|&b| b == b' ').filter(|t| !t.is_empty()).skip(1);
    let mut req = GetReq::default();
    if touch {
        match keys.next().and_then(parse_i32) {
            Some(e) => req.touch = Some(exptime(e)),
            None => return reply(out, false, b"CLIENT_ERROR invalid exptime argument"),
        }
    }
    let start = out.len();
    let st = &ctx.stats;
    for key in keys {
        if key.len() > KEY_MAX {
            // memcached drops the hits it had stacked for this line.
            out.truncate(start);
            return reply(out, false, BAD_FORMAT);
        }
        let hit = ctx.store.get(key, &req, |h| {
            out.reserve(h.key.len() + h.value.len() + 64);
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(h.key);
            out.push(b' ');
            put_u64(out, u64::from(h.flags));
            out.push(b' ');
            put_u64(out, h.value.len() as u64);
            if cas {
                out.push(b' ');
                put_u64(out, h.cas());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        });
        if touch {
            st.count_retrieval(true, hit.is_some());
        } else {
            conn.counts.count_get(hit.is_some());
        }
    }
    out.extend_from_slice(b"END\r\n");
}

/// `set add replace append prepend <key> <flags> <exptime> <bytes>
/// [noreply]` and `cas <key> <flags> <exptime> <bytes> <cas> [noreply]`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn update(
    s: &mut Session,
    ctx: &Context,
    conn: &ConnInfo,
    t: &Tokens<'_>,
    used: usize,
    rest: &[u8],
    out: &mut Vec<u8>,
    mode: Mode,
    has_cas: bool,
) -> Step {
    let noreply = t.noreply();
    let key = t.t[1];
    if key.len() > KEY_MAX {
        reply(out, noreply, BAD_FORMAT);
        return Step::Done(used);
    }
    let (Some(flags), Some(exp), Some(vlen)) = (parse_u32(t.t[2]), parse_i32(t.t[3]), parse_i32(t.t[4])) else {
        reply(out, noreply, BAD_FORMAT);
        return Step::Done(used);
    };
    let cas = if has_cas {
        match parse_u64(t.t[5]) {
            Some(c) => Some(c),
            None => {
                reply(out, noreply, BAD_FORMAT);
                return Step::Done(used);
            }
        }
    } else {
        None
    };
    if !(0..=i32::MAX - 2).contains(&vlen) {
        reply(out, noreply, BAD_FORMAT);
        return Step::Done(used);
    }
    let vlen = vlen as usize;
    if !ctx.store.config().fits(key.len(), vlen) {
        ctx.stats.store_too_large.inc();
        reply(out, noreply, TOO_LARGE);
        if mode == Mode::Set && !has_cas {
            // As memcached: a failed set must not leave the old value.
            ctx.store.delete(key, &DeleteReq::default());
        }
        s.swallow = vlen as u64 + 2;
        return Step::Done(used);
    }
    let total = used + vlen + 2;
    if rest.len() < total {
        return Step::More(total);
    }
    conn.counts.cmd_set.add(1);
    if &rest[used + vlen..total] != b"\r\n" {
        reply(out, noreply, b"CLIENT_ERROR bad data chunk");
        return Step::Done(total);
    }
    let mut req = StoreReq::new(mode, key, &rest[used..used + vlen], flags, exptime(exp));
    req.cas = cas;
    let outcome = ctx.store.store(&req);
    if has_cas {
        count_cas(ctx, outcome);
    }
    let msg: &[u8] = match outcome {
        StoreOutcome::Stored { .. } => b"STORED",
        StoreOutcome::NotStored => b"NOT_STORED",
        StoreOutcome::Exists => b"EXISTS",
        StoreOutcome::NotFound => b"NOT_FOUND",
        StoreOutcome::TooLarge => TOO_LARGE,
        StoreOutcome::NoMemory => {
            ctx.stats.store_no_memory.inc();
            NO_MEMORY
        }
    };
    reply(out, noreply, msg);
    Step::Done(total)
}

/// Counts a CAS store's outcome (`cas_hits`, `cas_badval`, `cas_misses`).
pub(super) fn count_cas(ctx: &Context, outcome: StoreOutcome) {
    match outcome {
        StoreOutcome::Stored { .. } => ctx.stats.cas_hits.inc(),
        StoreOutcome::Exists => ctx.stats.cas_badval.inc(),
        StoreOutcome::NotFound => ctx.stats.cas_misses.inc(),
        _ => {}
    }
}

/// `touch <key> <exptime> [noreply]`.
fn touch(ctx: &Context, t: &Tokens<'_>, out: &mut Vec<u8>) {
    let noreply = t.noreply();
    let key = t.t[1];
    if key.len() > KEY_MAX {
        return reply(out, noreply, BAD_FORMAT);
    }
    let Some(exp) = parse_i32(t.t[2]) else {
        return reply(out, noreply, b"CLIENT_ERROR invalid exptime argument");
    };
    ctx.stats.cmd_touch.inc();
    if ctx.store.touch(key, exptime(exp)) {
        ctx.stats.touch_hits.inc();
        reply(out, noreply, b"TOUCHED");
    } else {
        ctx.stats.touch_misses.inc();
        reply(out, noreply, b"NOT_FOUND");
    }
}

/// `incr|decr <key> <delta> [noreply]`.
fn arith(ctx: &Context, t: &Tokens<'_>, out: &mut Vec<u8>, incr: bool) {
    let noreply = t.noreply();
    let key = t.t[1];
    if key.len() > KEY_MAX {
        return reply(out, noreply, BAD_FORMAT);
    }
    let Some(delta) = parse_u64(t.t[2]) else {
        return reply(out, noreply, b"CLIENT_ERROR invalid numeric delta argument");
    };
    let st = &ctx.stats;
    match ctx.store.arith(&crate::store::ArithReq::new(key, incr, delta)) {
        ArithOutcome::Value { value, .. } => {
            if incr {
                st.incr_hits.inc()
            } else {
                st.decr_hits.inc()
            }
            if !noreply {
                put_u64(out, value);
                out.extend_from_slice(b"\r\n");
            }
        }
        ArithOutcome::NonNumeric => {
            reply(out, noreply, b"CLIENT_ERROR cannot increment or decrement non-numeric value")
        }
        ArithOutcome::NoMemory => reply(out, noreply, b"SERVER_ERROR out of memory"),
        ArithOutcome::NotFound | ArithOutcome::Exists => {
            if incr {
                st.incr_misses.inc()
            } else {
                st.decr_misses.inc()
            }
            reply(out, noreply, b"NOT_FOUND")
        }
    }
}

/// `delete <key> [0] [noreply]` (the `0` is a relic memcached still accepts).
fn delete(ctx: &Context, t: &Tokens<'_>, out: &mut Vec<u8>) {
    let nt = t.ntokens();
    let mut noreply = false;
    if nt > 3 {
        let hold_is_zero = t.t[2] == b"0";
        noreply = t.noreply();
        let valid = (nt == 4 && (hold_is_zero || noreply)) || (nt == 5 && hold_is_zero && noreply);
        if !valid {
            return reply(out, noreply, b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
        }
    }
    let key = t.t[1];
    if key.len() > KEY_MAX {
        return reply(out, noreply, BAD_FORMAT);
    }
    match ctx.store.delete(key, &DeleteReq::default()) {
        DeleteOutcome::Deleted => {
            ctx.stats.delete_hits.inc();
            reply(out, noreply, b"DELETED")
        }
        DeleteOutcome::NotFound | DeleteOutcome::Exists => {
            ctx.stats.delete_misses.inc();
            reply(out, noreply, b"NOT_FOUND")
        }
    }
}

/// `flush_all [delay] [noreply]`.
fn flush_all(ctx: &Context, t: &Tokens<'_>, out: &mut Vec<u8>) {
    let noreply = t.noreply();
    ctx.stats.cmd_flush.inc();
    let mut delay = 0;
    if t.ntokens() != if noreply { 3 } else { 2 } {
        match parse_i32(t.t[1]) {
            Some(d) => delay = d,
            None => return reply(out, noreply, b"CLIENT_ERROR invalid exptime argument"),
        }
    }
    ctx.store.flush_all(i64::from(delay));
    reply(out, noreply, b"OK");
}

/// `verbosity <level> [noreply]`.
fn verbosity(ctx: &Context, t: &Tokens<'_>, out: &mut Vec<u8>) {
    let noreply = t.noreply();
    let Some(level) = parse_u32(t.t[1]) else {
        return reply(out, noreply, BAD_FORMAT);
    };
    // ORDERING: a setting read by logging; nothing depends on its order.
    ctx.verbosity.store(level.min(2) as u8, std::sync::atomic::Ordering::Relaxed);
    reply(out, noreply, b"OK");
}

/// `shutdown [graceful]`: only with `-A`.
fn shutdown(ctx: &Context, t: &Tokens<'_>, used: usize, out: &mut Vec<u8>) -> Step {
    if !ctx.settings.enable_shutdown {
        reply(out, false, b"ERROR: shutdown not enabled");
        return Step::Done(used);
    }
    if t.ntokens() == 2 || (t.ntokens() == 3 && t.t[1] == b"graceful") {
        ctx.request_shutdown();
        return Step::Close(used);
    }
    reply(out, false, b"CLIENT_ERROR invalid shutdown mode");
    Step::Done(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn tokens_split_on_spaces_only_and_stop_at_23() {
        let t = Tokens::new(b"  get a\tb  c ");
        assert_eq!((t.n, t.ntokens()), (3, 4));
        assert_eq!(&t.t[..3], &[&b"get"[..], b"a\tb", b"c"]);
        let long = b"x ".repeat(30);
        let t = Tokens::new(&long);
        assert_eq!(t.ntokens(), MAX_TOKENS);
        assert!(Tokens::new(b"set k 0 0 1 noreply").noreply());
        assert!(!Tokens::new(b"noreply x").noreply());
        assert_eq!(Tokens::new(b"").ntokens(), 1);
    }

    /// Every error line the text commands send, one request each.
    #[test]
    fn error_replies() {
        let ctx = Context::new(Settings::default()).unwrap();
        let conn = ConnInfo::new(1, String::new(), String::new());
        let k251 = "k".repeat(251);
        let table: Vec<(String, &str)> = vec![
            ("x".into(), "ERROR"),
            ("bogus cmd".into(), "ERROR"),
            ("get".into(), "ERROR"),
            ("gx a".into(), "ERROR"),
            ("sx a".into(), "ERROR"),
            ("set a 0 0".into(), "ERROR"),
            (format!("set {k251} 0 0 1"), "CLIENT_ERROR bad command line format"),
            (format!("get {k251}"), "CLIENT_ERROR bad command line format"),
            (format!("delete {k251}"), "CLIENT_ERROR bad command line format"),
            (format!("incr {k251} 1"), "CLIENT_ERROR bad command line format"),
            (format!("touch {k251} 1"), "CLIENT_ERROR bad command line format"),
            ("set a x 0 1".into(), "CLIENT_ERROR bad command line format"),
            ("set a 4294967296 0 1".into(), "CLIENT_ERROR bad command line format"),
            ("set a 0 x 1".into(), "CLIENT_ERROR bad command line format"),
            ("set a 0 0 -1".into(), "CLIENT_ERROR bad command line format"),
            ("set a 0 0 2147483648".into(), "CLIENT_ERROR bad command line format"),
            ("cas a 0 0 1 x".into(), "CLIENT_ERROR bad command line format"),
            ("set a 0 0 2000000".into(), "SERVER_ERROR object too large for cache"),
            ("incr a x".into(), "CLIENT_ERROR invalid numeric delta argument"),
            ("decr a -1".into(), "CLIENT_ERROR invalid numeric delta argument"),
            ("touch a x".into(), "CLIENT_ERROR invalid exptime argument"),
            ("gat x a".into(), "CLIENT_ERROR invalid exptime argument"),
            ("flush_all abc".into(), "CLIENT_ERROR invalid exptime argument"),
            ("delete a 1".into(), "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"),
            ("verbosity x".into(), "CLIENT_ERROR bad command line format"),
            ("shutdown".into(), "ERROR: shutdown not enabled"),
            ("stats bogus".into(), "ERROR"),
            ("stats detail".into(), "CLIENT_ERROR usage: stats detail on|off|dump"),
            ("stats cachedump".into(), "CLIENT_ERROR bad command line"),
            ("stats cachedump 99 0".into(), "CLIENT_ERROR Illegal slab id"),
            ("mx a".into(), "ERROR"),
            ("mg a v v".into(), "CLIENT_ERROR duplicate flag"),
            ("mg a !".into(), "CLIENT_ERROR invalid flag"),
            ("mg a Tx".into(), "CLIENT_ERROR bad token in command line format"),
            ("mg ### b".into(), "CLIENT_ERROR error decoding key"),
            (format!("mg a O{}", "o".repeat(40)), "CLIENT_ERROR opaque token too long"),
            ("mg a a b c d e f g h i j k l m n o p q r".into(), "CLIENT_ERROR options flags are too long"),
            ("md a a b c d e f g h i j k l m n o p q r".into(), "CLIENT_ERROR options flags too long"),
            ("ms a".into(), "CLIENT_ERROR bad command line format"),
            ("md a x".into(), "CLIENT_ERROR invalid or duplicate flag"),
            ("ma a D-1".into(), "CLIENT_ERROR invalid or duplicate flag"),
            ("ma a MX".into(), "CLIENT_ERROR invalid mode for ma M token"),
            ("me".into(), "CLIENT_ERROR bad command line format"),
        ];
        for (line, want) in table {
            let mut s = Session::new();
            let mut out = Vec::new();
            let req = format!("{line}\r\n");
            s.process(&ctx, &conn, req.as_bytes(), &mut out);
            assert_eq!(String::from_utf8_lossy(&out), format!("{want}\r\n"), "{line}");
        }
    }
}
