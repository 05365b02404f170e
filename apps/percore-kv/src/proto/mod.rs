//! The protocol layer: memcached 1.6.18's text, meta and binary protocols
//! over the store.
//!
//! # Problem
//!
//! Every memcached client, proxy and tool must work unmodified, so every
//! reply is the byte string memcached 1.6.18 sends, and the connection is
//! closed exactly where memcached closes it. The connection loop owns the
//! socket and the buffers; this layer owns the protocol state of one
//! connection ([`Session`]) and is a pure function of (state, bytes) to
//! (replies, bytes used, close?), so it is tested without sockets.
//!
//! # Mechanism
//!
//! The loop calls [`Session::process`] with the bytes it has buffered and not
//! yet consumed. The session answers every *complete* request at the start of
//! them, in order, appending the replies to one output buffer (pipelined
//! requests are answered with one write), and returns a [`Progress`]:
//!
//! ```text
//!  input:  | set k 0 0 5\r\nhello\r\n | get k\r\n | get k2 ...(no \n yet)
//!          |<------ request 1 ------->|<- req 2 ->|<-- incomplete -->
//!          |<------------- consumed -------------->|  kept by the loop
//! ```
//!
//! * A request is only taken when it is whole: a storage line waits for its
//!   data block (`want` then says how many bytes the request needs in all,
//!   so the loop can size its buffer once), a binary packet for its body.
//!   Nothing is copied into the session; an incomplete request is parsed
//!   again on the next call (a line is short next to a value).
//! * *Swallow*: after `SERVER_ERROR object too large for cache` (or a binary
//!   `E2BIG`, or an unknown binary opcode) the announced data is discarded as
//!   it arrives, across calls, without being buffered: the session keeps only
//!   the count still to drop.
//! * The first byte of a connection picks the protocol for its lifetime, as
//!   memcached: `0x80` (the binary request magic) is binary, anything else
//!   text (which includes the meta commands).
//! * Bounds: a text line with no `\n` within [`MAX_LINE`] bytes closes the
//!   connection unless it is a `get`/`gets` (large multigets are allowed, as
//!   memcached), which may grow to [`MAX_GET_LINE`] before the connection is
//!   closed. `want` is never more than a line plus the largest item plus its
//!   framing. Processing pauses once the output passes [`OUT_HIGH_WATER`]
//!   (the loop writes and calls again), so a client that never reads stops
//!   being read instead of growing the output without bound.
//!
//! # Files
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the session, framing, number parsing and formatting shared by all |
//! | `text.rs` | the classic text commands |
//! | `meta.rs` | `mg ms md ma mn me` |
//! | `binary.rs` | the binary protocol |
//! | `stats.rs` | `stats` and its subcommands, both protocols |
//!
//! # Deliberate differences from memcached 1.6.18
//!
//! * C integer truncation is not copied: memcached parses numbers with
//!   `strtoul`/`strtol` into 64 bits and then truncates them to 32 bits, so
//!   flags of 2^32 are stored as 0, an exptime of 2^32 as 0 (never expires)
//!   and a length of 2^32 + 5 as 5. Here flags above 2^32 - 1, exptimes
//!   outside `i32` and lengths outside `i32` get `CLIENT_ERROR bad command
//!   line format` (or the command's own number error). Likewise a negative
//!   64-bit number that `strtoull` wraps to a small positive one (`-2^64+1`
//!   read as 1) is refused.
//! * The item size check is [`Config::fits`](crate::store::Config::fits)
//!   (memcached also counts 8 bytes of CAS and 4 of flags when non-zero, so
//!   the largest accepted value differs by at most 12 bytes).
//! * A binary request with an unknown opcode swallows the rest of its body;
//!   memcached swallows `bodylen` bytes counted *after* the extras and key it
//!   already consumed, eating the start of the next request.
//! * `me` prints `cls=1` (there are no slab classes) and a `size=` computed
//!   with memcached's item header formula; meta replies re-encode a key in
//!   base64 when the *request* used `b` (memcached remembers it per item).
//! * A `get` line with a key over 250 bytes drops that line's hits and answers
//!   `CLIENT_ERROR bad command line format`; memcached also drops every reply
//!   still queued from the same read (what is lost there depends on timing).
//! * Meta flags are applied before the reply is built: `mg k t T30` prints
//!   the new TTL (memcached prints the old one when `t` precedes `T`).
//! * Keys are validated as memcached validates them, not stricter: text keys
//!   are split on spaces only, so a key may hold a tab or another control
//!   byte (memcached stores `a\tb`); only the 250-byte limit is enforced.
//! * `ma N` creating a missing counter counts an `incr_hits` (memcached counts
//!   neither a hit nor a miss); `ms` ignores `N` (1.6.18 does not autovivify
//!   on `ms` either, but parses the flag).
//! * `cache_memlimit`, `slabs`, `lru`, `lru_crawler`, `watch` and
//!   `extstore` answer `ERROR` (no slab allocator to tune here).
//! * `stats detail on|off|dump` answers as memcached but records no
//!   per-prefix statistics (`dump` prints an empty list).
//! * `stats items` / `stats slabs` report one class (`1`) holding every item:
//!   the store has no slab classes.
//! * `VERSION` is `1.6.18`, the protocol level served (clients gate features
//!   such as meta commands on it); `stats` says `libevent percore`.
//! * Processing pauses at [`OUT_HIGH_WATER`] of output (memcached queues
//!   responses without such a bound within one read).
//! * CAS uniques are never reused, as memcached's, but they come from where
//!   an item lies (its segment's generation and its offset), not from one
//!   counter per store, so across writer threads they follow the order in
//!   which segments were opened rather than the order of stores. Equality
//!   (`cas`, `gets`, `C`) is unaffected; `ms` with `I` and a CAS *lower*
//!   than the item's (memcached stores the value as stale) can instead
//!   answer `EX` when the newer value came through another worker's
//!   segment opened earlier.

use crate::context::{ConnInfo, Context};

mod binary;
mod meta;
mod stats;
mod text;

/// The version string `version` and binary `VERSION` answer (the memcached
/// protocol level this server speaks).
pub const VERSION: &str = "1.6.18";

/// A text line without `\n` longer than this closes the connection unless it
/// is a `get`/`gets` (memcached's 2048).
pub const MAX_LINE: usize = 2048;

/// The longest `get`/`gets` line accepted without a `\n` (memcached grows its
/// buffer without bound here; this server closes the connection).
pub const MAX_GET_LINE: usize = 8 << 20;

/// Once the output holds this many bytes, [`Session::process`] returns so
/// the loop can write before more requests are answered.
pub const OUT_HIGH_WATER: usize = 4 << 20;

/// What [`Session::process`] did with the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used up; the caller drops them.
    pub consumed: usize,
    /// Close the connection after writing the output.
    pub close: bool,
    /// When non-zero: the next request needs at least this many bytes of
    /// input in total (a value being read), counted from
    /// `input[consumed..]`, so the caller can size its buffer once instead of
    /// growing it step by step.
    pub want: usize,
}

/// Which protocol a connection speaks (fixed by its first byte).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Proto {
    #[default]
    Unknown,
    Text,
    Binary,
}

/// What one request step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A request was answered; it used this many bytes.
    Done(usize),
    /// The request is incomplete; it needs this many bytes in all (0: not
    /// known yet, e.g. a line without its `\n`).
    More(usize),
    /// Close the connection (after writing what is in the output); this many
    /// bytes were used.
    Close(usize),
}

/// One connection's protocol state.
///
/// Owned by the connection's uthread; only [`Session::process`] touches it.
///
/// ```
/// use percore_kv::config::Settings;
/// use percore_kv::context::{ConnInfo, Context};
/// use percore_kv::proto::Session;
///
/// let ctx = Context::new(Settings::default()).unwrap();
/// let conn = ConnInfo::new(7, "tcp:127.0.0.1:5".into(), "tcp:127.0.0.1:11211".into());
/// let mut s = Session::new();
/// let mut out = Vec::new();
/// let p = s.process(&ctx, &conn, b"set k 0 0 2\r\nhi\r\nget k\r\nget", &mut out);
/// assert_eq!(out, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
/// assert_eq!(p.consumed, 24); // the trailing "get" waits for its newline
/// ```
#[derive(Debug, Default)]
pub struct Session {
    proto: Proto,
    /// Bytes of a refused value still to discard.
    swallow: u64,
}

impl Session {
    /// A session for a new connection.
    pub fn new() -> Session {
        Session::default()
    }

    /// Answers every complete request at the start of `input`, appending the
    /// replies to `out`.
    pub fn process(&mut self, ctx: &Context, conn: &ConnInfo, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let p = self.process_batch(ctx, conn, input, out);
        ctx.fold_unregistered(conn);
        p
    }

    fn process_batch(&mut self, ctx: &Context, conn: &ConnInfo, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut p = Progress::default();
        if input.is_empty() {
            return p;
        }
        // ORDERING: a statistic read by `stats conns`.
        conn.last_cmd.store(ctx.store.clock().now(), std::sync::atomic::Ordering::Relaxed);
        loop {
            if self.swallow > 0 {
                let n = (input.len() - p.consumed).min(usize::try_from(self.swallow).unwrap_or(usize::MAX));
                p.consumed += n;
                self.swallow -= n as u64;
                if self.swallow > 0 {
                    return p;
                }
            }
            let rest = &input[p.consumed..];
            if rest.is_empty() || out.len() >= OUT_HIGH_WATER {
                return p;
            }
            if self.proto == Proto::Unknown {
                self.proto = if rest[0] == binary::MAGIC_REQ { Proto::Binary } else { Proto::Text };
            }
            let step = match self.proto {
                Proto::Binary => binary::step(self, ctx, rest, out),
                _ => text::step(self, ctx, conn, rest, out),
            };
            match step {
                Step::Done(n) => p.consumed += n,
                Step::More(want) => {
                    p.want = want;
                    return p;
                }
                Step::Close(n) => {
                    p.consumed += n;
                    p.close = true;
                    return p;
                }
            }
        }
    }
}

/// C's `isspace` in the "C" locale.
#[inline]
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The core of memcached's `safe_strto*`: leading white space, a sign,
/// decimal digits, then the end or white space. `None` for no digits,
/// overflow of 64 bits or trailing garbage.
fn c_number(s: &[u8]) -> Option<(bool, u64)> {
    let mut i = 0;
    while i < s.len() && c_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut n: u64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        n = n.checked_mul(10)?.checked_add(u64::from(s[i] - b'0'))?;
        i += 1;
    }
    if i == start || (i < s.len() && !c_space(s[i])) {
        return None;
    }
    Some((neg, n))
}

/// `safe_strtoull`: an unsigned 64-bit number (a negative one is refused).
fn parse_u64(s: &[u8]) -> Option<u64> {
    let (neg, n) = c_number(s)?;
    (!neg || n == 0).then_some(n)
}

/// `safe_strtoul` into 32 bits, without its truncation.
fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|n| u32::try_from(n).ok())
}

/// `safe_strtol` into 32 bits, without its truncation.
fn parse_i32(s: &[u8]) -> Option<i32> {
    let (neg, n) = c_number(s)?;
    let v = if neg { -i64::try_from(n).ok()? } else { i64::try_from(n).ok()? };
    i32::try_from(v).ok()
}

/// memcached's `EXPTIME_TO_POSITIVE_TIME`: a negative client exptime becomes
/// one that is already in the past. The store's conversion does the same
/// for any negative value, so it is passed through.
#[inline]
fn exptime(v: i32) -> i64 {
    i64::from(v)
}

/// "00" to "99", for two digits at a time.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends the decimal digits of `n` (two digits per division: every `get`
/// hit prints its flags and length).
#[inline]
fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut buf = [0u8; 20];
    let mut i = len;
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    debug_assert_eq!(i, 0);
    // NOTE: copy all 20 bytes and cut the length back to the digits: a
    // fixed-size copy is a few moves, a variable one a call to memcpy (1.8
    // calls a get hit, callgrind).
    let at = out.len();
    out.extend_from_slice(&buf);
    out.truncate(at + len);
}

/// Appends the decimal digits of `n` with a sign.
#[inline]
fn put_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    put_u64(out, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_memcached() {
        type Case<'a> = (&'a [u8], Option<u64>, Option<u32>, Option<i32>);
        let cases: &[Case<'_>] = &[
            (b"0", Some(0), Some(0), Some(0)),
            (b"12", Some(12), Some(12), Some(12)),
            (b"+12", Some(12), Some(12), Some(12)),
            (b"\t12", Some(12), Some(12), Some(12)),
            (b"12\tx", Some(12), Some(12), Some(12)),
            (b"-0", Some(0), Some(0), Some(0)),
            (b"-1", None, None, Some(-1)),
            (b"", None, None, None),
            (b"-", None, None, None),
            (b"12x", None, None, None),
            (b"x", None, None, None),
            (b"4294967295", Some(4294967295), Some(u32::MAX), None),
            (b"4294967296", Some(4294967296), None, None),
            (b"2147483648", Some(2147483648), Some(2147483648), None),
            (b"-2147483648", None, None, Some(i32::MIN)),
            (b"18446744073709551615", Some(u64::MAX), None, None),
            (b"18446744073709551616", None, None, None),
        ];
        for &(s, u, u32_, i) in cases {
            assert_eq!(parse_u64(s), u, "u64 {:?}", String::from_utf8_lossy(s));
            assert_eq!(parse_u32(s), u32_, "u32 {:?}", String::from_utf8_lossy(s));
            assert_eq!(parse_i32(s), i, "i32 {:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn digits() {
        for n in [
            0u64,
            7,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            4294967295,
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
            u64::MAX / 10,
            u64::MAX,
        ] {
            let mut v = Vec::new();
            put_u64(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
        let mut v = Vec::new();
        put_i64(&mut v, -42);
        assert_eq!(v, b"-42");
    }
}
