//! The fuzz target for the request parser and the command layer, shared by
//! the libFuzzer binary (`fuzz_targets/session.rs`, nightly, cargo-fuzz) and
//! the stable test over the corpus plus generated inputs
//! (`tests/fuzz_corpus.rs`). Every input is used twice:
//!
//! 1. *Raw*: the bytes as a connection's input, fed to a [`Session`] whole
//!    and again in pieces (the piece size is the first byte): no panic, no
//!    claim past the input, `want` bounded by a line plus the largest item,
//!    and the same replies and the same close however the bytes are split.
//! 2. *Differential*: the bytes decoded as a sequence of operations on four
//!    keys (set add replace append prepend cas get gets delete incr decr
//!    touch, with values, flags, CAS and expiry taken from the input). Each
//!    is rendered as a text request and answered by a `Session` over the
//!    server's [`Store`](percore_kv::store::Store), and applied directly to
//!    the reference model [`ModelStore`]; the reply the model's outcome
//!    implies (memcached's text replies) must be the session's byte for
//!    byte. With the engine as `Store` this checks parser, command layer and
//!    engine against the model at once; nothing is evicted (64 MB, tiny
//!    items), so the model's semantics are exact. CAS uniques are the one
//!    exception: the engine derives its own (where an item lies), so a
//!    `gets` reply's unique is compared through a one-to-one map between
//!    the engine's and the model's, learned as they are shown, and a `cas`
//!    sends each side the unique it showed for the key.

#![allow(dead_code, unreachable_pub)]

use percore_kv::config::Settings;
use percore_kv::context::{ConnInfo, Context};
use percore_kv::proto::{Session, MAX_GET_LINE};
use percore_kv::store::model::ModelStore;
use percore_kv::store::{
    ArithOutcome, ArithReq, Config, DeleteOutcome, DeleteReq, GetReq, Mode, StoreOutcome, StoreReq,
};

/// The item size limit in these runs (small, so `too large` is reachable).
pub const ITEM_MAX: usize = 1024;

fn settings() -> Settings {
    Settings { max_item_size: ITEM_MAX, memory_limit: 64 << 20, threads: 1, ..Settings::default() }
}

fn conn() -> ConnInfo {
    ConnInfo::new(9, "tcp:127.0.0.1:40000".into(), "tcp:127.0.0.1:11211".into())
}

/// Runs both checks on `data`.
pub fn run(data: &[u8]) {
    let piece = data.first().map_or(1, |&b| usize::from(b).max(1));
    let whole = drive(data, usize::MAX);
    let split = drive(data, piece);
    // NOTE: `stats` replies hold times and rusage, which differ between two
    // runs; every stats reply has `rusage` in it.
    let timed = |o: &[u8]| memchr_find(o, b"rusage");
    // NOTE: a text line longer than MAX_LINE is answered when it arrives
    // whole and closes the connection when it trickles in (memcached's rule,
    // decided on what one read brought); such inputs may differ by design.
    let long_line = data.split(|&b| b == b'\n').any(|l| l.len() > percore_kv::proto::MAX_LINE);
    if !timed(&whole.0) && !timed(&split.0) && !long_line {
        assert!(
            whole == split,
            "replies depend on how the input is split ({piece}-byte pieces): {} vs {} bytes, close {} vs {}",
            whole.0.len(),
            split.0.len(),
            whole.1,
            split.1
        );
    }
    differential(data);
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Feeds `data` to a fresh session in `piece`-byte reads, as the connection
/// loop does; the replies and whether it closed.
pub fn drive(data: &[u8], piece: usize) -> (Vec<u8>, bool) {
    let ctx = Context::new(settings()).unwrap();
    let info = conn();
    let mut s = Session::new();
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    for chunk in data.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let before = out.len();
            let p = s.process(&ctx, &info, &buf, &mut out);
            assert!(p.consumed <= buf.len(), "consumed past the input");
            assert!(p.want <= 2048 + ITEM_MAX + 600, "want {} unbounded", p.want);
            buf.drain(..p.consumed);
            assert!(buf.len() <= MAX_GET_LINE + ITEM_MAX + 2048, "unbounded buffering");
            if p.close {
                return (out, true);
            }
            if p.consumed == 0 && out.len() == before {
                break;
            }
        }
    }
    (out, false)
}

/// Reads the input as little numbers.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// The CAS uniques the last `gets` hit of each key showed: the model's and
/// the engine's (a client can only send back a unique it was shown).
type Shown = [(u64, u64); 4];

/// One operation of the differential, with the request it is sent as, the
/// reply the model says it gets and, for a `gets` hit, the key and the
/// model's unique.
type Op = (Vec<u8>, Vec<u8>, Option<(usize, u64)>);

fn one_op(b: &mut Bytes<'_>, model: &ModelStore, shown: &Shown) -> Option<Op> {
    let op = b.u8()?;
    let k = usize::from(b.u8()? % 4);
    let key = format!("k{k}");
    let arg = b.u8()?;
    let exp: i64 = match arg % 4 {
        0 | 1 => 0,
        2 => -1,
        _ => 100_000,
    };
    let mut req = Vec::new();
    let mut want = Vec::new();
    let mut shown_now = None;
    match op % 8 {
        0..=2 => {
            let mode = [Mode::Set, Mode::Add, Mode::Replace, Mode::Append, Mode::Prepend][usize::from(arg / 4) % 5];
            let cmd = ["set", "add", "replace", "append", "prepend"][usize::from(arg / 4) % 5];
            let len = match b.u8()? {
                250..=255 => ITEM_MAX,
                n if n % 3 == 0 => usize::from(n % 4),
                n => usize::from(n) % 24,
            };
            let digits = b.u8()? % 2 == 0;
            let value: Vec<u8> = if digits {
                (0..len).map(|i| b"1234567890"[(i + usize::from(arg)) % 10]).collect()
            } else {
                let v = b.take(len).to_vec();
                let mut v = v;
                v.resize(len, b'x');
                v
            };
            let flags = u32::from(b.u8()?) * 1000;
            req.extend_from_slice(format!("{cmd} {key} {flags} {exp} {len}\r\n").as_bytes());
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
            if !model.config().fits(key.len(), len) {
                if mode == Mode::Set {
                    model.delete(key.as_bytes(), &DeleteReq::default());
                }
                want.extend_from_slice(b"SERVER_ERROR object too large for cache\r\n");
            } else {
                let o = model.store(&StoreReq::new(mode, key.as_bytes(), &value, flags, exp));
                want.extend_from_slice(store_reply(o));
            }
        }
        3 => {
            let len = usize::from(arg % 6);
            let value: Vec<u8> = (0..len).map(|i| b'a' + (i as u8)).collect();
            // The unique shown, one never handed out, or 0.
            let (m, e) = shown[k];
            let (cas, sent) = match b.u8()? % 3 {
                0 => (m, e),
                1 => (m ^ 1 << 63, e ^ 1 << 63),
                _ => (0, 0),
            };
            req.extend_from_slice(format!("cas {key} 0 0 {len} {sent}\r\n").as_bytes());
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
            let mut r = StoreReq::new(Mode::Set, key.as_bytes(), &value, 0, 0);
            r.cas = Some(cas);
            want.extend_from_slice(store_reply(model.store(&r)));
        }
        4 => {
            let gets = arg % 2 == 0;
            req.extend_from_slice(format!("{} {key}\r\n", if gets { "gets" } else { "get" }).as_bytes());
            let hit = model.get(key.as_bytes(), &GetReq::default(), |h| (h.value.to_vec(), h.flags, h.cas()));
            if let Some((v, flags, cas)) = hit {
                if gets {
                    shown_now = Some((k, cas));
                    want.extend_from_slice(format!("VALUE {key} {flags} {} {cas}\r\n", v.len()).as_bytes());
                } else {
                    want.extend_from_slice(format!("VALUE {key} {flags} {}\r\n", v.len()).as_bytes());
                }
                want.extend_from_slice(&v);
                want.extend_from_slice(b"\r\n");
            }
            want.extend_from_slice(b"END\r\n");
        }
        5 => {
            req.extend_from_slice(format!("delete {key}\r\n").as_bytes());
            want.extend_from_slice(match model.delete(key.as_bytes(), &DeleteReq::default()) {
                DeleteOutcome::Deleted => b"DELETED\r\n",
                _ => b"NOT_FOUND\r\n",
            });
        }
        6 => {
            let incr = arg % 2 == 0;
            let delta: u64 = match b.u8()? {
                255 => u64::MAX,
                n => u64::from(n),
            };
            req.extend_from_slice(format!("{} {key} {delta}\r\n", if incr { "incr" } else { "decr" }).as_bytes());
            match model.arith(&ArithReq::new(key.as_bytes(), incr, delta)) {
                ArithOutcome::Value { value, .. } => want.extend_from_slice(format!("{value}\r\n").as_bytes()),
                ArithOutcome::NonNumeric => {
                    want.extend_from_slice(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
                }
                ArithOutcome::NoMemory => want.extend_from_slice(b"SERVER_ERROR out of memory\r\n"),
                _ => want.extend_from_slice(b"NOT_FOUND\r\n"),
            }
        }
        _ => {
            req.extend_from_slice(format!("touch {key} {exp}\r\n").as_bytes());
            want.extend_from_slice(if model.touch(key.as_bytes(), exp) { b"TOUCHED\r\n" } else { b"NOT_FOUND\r\n" });
        }
    }
    Some((req, want, shown_now))
}

/// The unique of a `gets` reply's `VALUE` line, and the reply with the
/// model's unique `m` in its place; `None` if it is no such reply.
fn swap_cas(out: &[u8], m: u64) -> Option<(u64, Vec<u8>)> {
    let end = out.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&out[..end]).ok()?;
    let (head, cas) = line.rsplit_once(' ')?;
    let cas: u64 = cas.parse().ok()?;
    let mut swapped = format!("{head} {m}").into_bytes();
    swapped.extend_from_slice(&out[end..]);
    Some((cas, swapped))
}

fn store_reply(o: StoreOutcome) -> &'static [u8] {
    match o {
        StoreOutcome::Stored { .. } => b"STORED\r\n",
        StoreOutcome::NotStored => b"NOT_STORED\r\n",
        StoreOutcome::Exists => b"EXISTS\r\n",
        StoreOutcome::NotFound => b"NOT_FOUND\r\n",
        StoreOutcome::TooLarge => b"SERVER_ERROR object too large for cache\r\n",
        StoreOutcome::NoMemory => b"SERVER_ERROR out of memory storing object\r\n",
    }
}

/// The differential check (see the module docs).
pub fn differential(data: &[u8]) {
    let ctx = Context::new(settings()).unwrap();
    let model = ModelStore::new(Config { memory_limit: 64 << 20, max_item_size: ITEM_MAX, writers: 1 }).unwrap();
    let info = conn();
    let mut s = Session::new();
    let mut b = Bytes(data);
    let mut shown: Shown = [(0, 0); 4];
    // The engine's uniques to the model's and back: one to one.
    let (mut to_model, mut to_engine) = (std::collections::HashMap::new(), std::collections::HashMap::new());
    let mut n = 0;
    while let Some((req, want, gets)) = one_op(&mut b, &model, &shown) {
        let mut out = Vec::new();
        let p = s.process(&ctx, &info, &req, &mut out);
        if let Some((k, m)) = gets {
            if let Some((e, swapped)) = swap_cas(&out, m) {
                assert_ne!(e, 0, "op {n}: a unique of 0");
                assert_eq!(*to_model.entry(e).or_insert(m), m, "op {n}: engine unique {e} stands for two");
                assert_eq!(*to_engine.entry(m).or_insert(e), e, "op {n}: model unique {m} shown as two");
                shown[k] = (m, e);
                out = swapped;
            }
        }
        assert_eq!(
            (p.consumed, p.close),
            (req.len(), false),
            "op {n}: {:?} was not taken whole",
            String::from_utf8_lossy(&req)
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want),
            "op {n}: {:?}: the session and the model disagree",
            String::from_utf8_lossy(&req)
        );
        n += 1;
    }
    let (a, m) = (ctx.store.stats(), model.stats());
    assert_eq!((a.curr_items, a.total_items), (m.curr_items, m.total_items), "item counts differ after {n} ops");
}
