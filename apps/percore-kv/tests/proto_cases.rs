//! Replays tests/proto_cases.txt: byte sequences sent to memcached 1.6.18
//! and its replies (regenerate with `python3 tests/proto_cases.py >
//! tests/proto_cases.txt`). Each case runs on a fresh context, fed at once
//! and again in 7-byte pieces; the replies and whether the connection was
//! closed must be memcached's.
//!
//! CAS uniques are the one exception to byte-for-byte: memcached counts
//! stores, the engine derives its uniques from where items lie. So the
//! uniques a reply shows are paired, in order, with memcached's
//! ([`Uniques`]: one to one, or the case fails), a request's unique that
//! memcached showed is sent in the engine's numbers (the case is replayed
//! until the pairing settles), and the reply is compared with the engine's
//! uniques written back in memcached's. A case only sends uniques a reply
//! showed before, or ones never handed out.

mod proto_support;

use std::collections::HashMap;
use std::ops::Range;

use proto_support::{show, Conn};

/// A CAS unique's place in a stream: the digits of a decimal one (text,
/// meta) or a binary header's 8 bytes.
#[derive(Clone, Debug)]
struct At {
    range: Range<usize>,
    binary: bool,
}

fn value_at(b: &[u8], at: &At) -> Option<u64> {
    let f = &b[at.range.clone()];
    if at.binary {
        Some(u64::from_be_bytes(f.try_into().ok()?))
    } else {
        std::str::from_utf8(f).ok()?.parse().ok()
    }
}

fn put_at(out: &mut Vec<u8>, at: &At, v: u64) {
    if at.binary {
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.extend_from_slice(v.to_string().as_bytes());
    }
}

/// The stream with the uniques at `ats` replaced by `f` of them.
fn rewrite(b: &[u8], ats: &[At], f: impl Fn(u64) -> u64) -> Vec<u8> {
    let (mut out, mut from) = (Vec::new(), 0);
    for at in ats {
        let Some(v) = value_at(b, at) else { continue };
        out.extend_from_slice(&b[from..at.range.start]);
        put_at(&mut out, at, f(v));
        from = at.range.end;
    }
    out.extend_from_slice(&b[from..]);
    out
}

/// Binary packets (`magic` first): each header's CAS field.
fn binary_ats(b: &[u8]) -> Vec<At> {
    let (mut ats, mut i) = (Vec::new(), 0);
    while i + 24 <= b.len() {
        ats.push(At { range: i + 16..i + 24, binary: true });
        i += 24 + u32::from_be_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]) as usize;
    }
    ats
}

/// Text and meta lines: for each line, where its tokens are; `block(tokens)`
/// says how many data bytes (and `\r\n`) follow the line.
fn lines(b: &[u8], mut each: impl FnMut(usize, &[(usize, &str)]) -> usize) {
    let mut i = 0;
    while i < b.len() {
        let Some(n) = b[i..].iter().position(|&c| c == b'\n') else { return };
        let line = &b[i..i + n];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut tokens = Vec::new();
        let mut j = 0;
        for t in line.split(|&c| c == b' ') {
            if let Ok(t) = std::str::from_utf8(t) {
                tokens.push((i + j, t));
            }
            j += t.len() + 1;
        }
        let block = each(i, &tokens);
        i += n + 1;
        if block > 0 {
            i += block + 2;
        }
    }
}

/// Where a reply shows uniques: `VALUE k f n CAS`, meta `c<n>`, `me`'s
/// `cas=<n>`, binary headers.
fn reply_ats(b: &[u8]) -> Vec<At> {
    if b.first() == Some(&0x81) {
        return binary_ats(b);
    }
    let mut ats = Vec::new();
    lines(b, |_, t| {
        let dec = |(at, s): (usize, &str), skip: usize| At { range: at + skip..at + s.len(), binary: false };
        let num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        match t.first().map(|t| t.1) {
            Some("VALUE") => {
                if t.len() == 5 {
                    ats.push(dec(t[4], 0));
                }
                t.get(3).and_then(|x| x.1.parse().ok()).unwrap_or(0)
            }
            Some("VA" | "HD" | "NF" | "NS" | "EX" | "EN") => {
                ats.extend(t[1..].iter().filter(|x| x.1.starts_with('c') && num(&x.1[1..])).map(|&x| dec(x, 1)));
                if t[0].1 == "VA" {
                    t.get(1).and_then(|x| x.1.parse().ok()).unwrap_or(0)
                } else {
                    0
                }
            }
            Some("ME") => {
                ats.extend(t.iter().filter(|x| x.1.starts_with("cas=")).map(|&x| dec(x, 4)));
                0
            }
            _ => 0,
        }
    });
    ats
}

/// Where a request sends uniques: `cas k f e n CAS`, meta `C<n>`, binary
/// headers.
fn request_ats(b: &[u8]) -> Vec<At> {
    if b.first() == Some(&0x80) {
        return binary_ats(b);
    }
    let mut ats = Vec::new();
    lines(b, |_, t| {
        let n = |i: usize| t.get(i).and_then(|x| x.1.parse::<usize>().ok()).unwrap_or(0);
        match t.first().map(|t| t.1) {
            Some("cas") => {
                if let Some(&(at, s)) = t.get(5) {
                    ats.push(At { range: at..at + s.len(), binary: false });
                }
                n(4)
            }
            Some("set" | "add" | "replace" | "append" | "prepend") => n(4),
            Some(cmd @ ("ms" | "md" | "mg" | "ma")) => {
                for &(at, s) in &t[1..] {
                    if s.len() > 1 && s.starts_with('C') && s[1..].bytes().all(|c| c.is_ascii_digit()) {
                        ats.push(At { range: at + 1..at + s.len(), binary: false });
                    }
                }
                if cmd == "ms" {
                    n(2)
                } else {
                    0
                }
            }
            _ => 0,
        }
    });
    ats
}

/// memcached's uniques paired with the engine's, one to one.
#[derive(Default)]
struct Uniques {
    to_engine: HashMap<u64, u64>,
    to_mc: HashMap<u64, u64>,
}

impl Uniques {
    /// Pairs the uniques `ours` shows with those memcached's reply shows, in
    /// order; `Err` if one stands for two.
    fn pair(&mut self, mc: &[u8], ours: &[u8]) -> Result<(), String> {
        let (a, b) = (reply_ats(mc), reply_ats(ours));
        for (m, e) in a.iter().zip(&b) {
            let (Some(m), Some(e)) = (value_at(mc, m), value_at(ours, e)) else { continue };
            if m == 0 || e == 0 {
                continue;
            }
            if *self.to_engine.entry(m).or_insert(e) != e || *self.to_mc.entry(e).or_insert(m) != m {
                return Err(format!("memcached's unique {m} and the engine's {e} are not paired one to one"));
            }
        }
        Ok(())
    }
}

/// Runs `case` in pieces of `chunk`, with the CAS translation of the module
/// docs: the reply in memcached's uniques, and whether it closed.
fn replay(case: &Case, chunk: usize) -> Result<(Vec<u8>, bool), String> {
    let req_ats = request_ats(&case.req);
    // NOTE: a pass that sent a unique not yet paired may answer otherwise
    // than memcached and misalign the pairing; each pass pairs afresh, with
    // the requests in the previous pass's numbers, until two agree.
    let mut sent = HashMap::new();
    for _ in 0..4 {
        let req = rewrite(&case.req, &req_ats, |m| sent.get(&m).copied().unwrap_or(m));
        let mut c = Conn::new();
        c.feed_chunked(&req, chunk);
        let mut u = Uniques::default();
        let paired = u.pair(&case.reply, &c.out);
        if u.to_engine == sent {
            paired?;
            let ours = reply_ats(&c.out);
            return Ok((rewrite(&c.out, &ours, |e| u.to_mc.get(&e).copied().unwrap_or(e)), c.closed));
        }
        sent = u.to_engine;
    }
    Err("the pairing of uniques did not settle".into())
}

/// Undoes the case file's escapes: `\r \n \t \\ \xNN` and `{c*N}` runs.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut v = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                match b[i + 1] {
                    b'r' => v.push(b'\r'),
                    b'n' => v.push(b'\n'),
                    b't' => v.push(b'\t'),
                    b'\\' => v.push(b'\\'),
                    b'x' => {
                        v.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                        i += 2;
                    }
                    c => panic!("bad escape \\{}", c as char),
                }
                i += 2;
            }
            b'{' if b.get(i + 2) == Some(&b'*') => {
                let end = s[i..].find('}').unwrap() + i;
                let n: usize = s[i + 3..end].parse().unwrap();
                v.extend(std::iter::repeat_n(b[i + 1], n));
                i = end + 1;
            }
            c => {
                v.push(c);
                i += 1;
            }
        }
    }
    v
}

struct Case {
    name: String,
    req: Vec<u8>,
    reply: Vec<u8>,
    closed: bool,
}

fn cases() -> Vec<Case> {
    let text = include_str!("proto_cases.txt");
    let mut cases: Vec<Case> = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("# ") {
            name = n.to_string();
        } else if let Some(r) = line.strip_prefix("> ") {
            cases.push(Case { name: name.clone(), req: unescape(r), reply: Vec::new(), closed: false });
        } else if let Some(r) = line.strip_prefix("< ") {
            cases.last_mut().unwrap().reply = unescape(r);
        } else if line == "! closed" {
            cases.last_mut().unwrap().closed = true;
        }
    }
    cases
}

#[test]
fn replies_are_memcached_s() {
    let mut failed = Vec::new();
    let all = cases();
    assert!(all.len() > 50);
    for case in &all {
        for chunk in [usize::MAX, 7] {
            let (out, closed) = match replay(case, chunk) {
                Ok(r) => r,
                Err(e) => {
                    failed.push(format!("{} (pieces of {chunk}): {e}", case.name));
                    break;
                }
            };
            if out != case.reply || closed != case.closed {
                failed.push(format!(
                    "{} (pieces of {chunk}):\n  want {}{}\n  got  {}{}",
                    case.name,
                    show(&case.reply),
                    if case.closed { " +close" } else { "" },
                    show(&out),
                    if closed { " +close" } else { "" },
                ));
                break;
            }
        }
    }
    assert!(failed.is_empty(), "{} of {} cases differ:\n{}", failed.len(), all.len(), failed.join("\n"));
}
