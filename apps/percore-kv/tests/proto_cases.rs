//! Replays tests/proto_cases.txt: byte sequences sent to memcached 1.6.18
//! and its replies (regenerate with `python3 tests/proto_cases.py >
//! tests/proto_cases.txt`). Each case runs on a fresh context, fed at once
//! and again in 7-byte pieces; the replies and whether the connection was
//! closed must be memcached's.

mod proto_support;

use proto_support::{show, Conn};

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
            let mut c = Conn::new();
            c.feed_chunked(&case.req, chunk);
            if c.out != case.reply || c.closed != case.closed {
                failed.push(format!(
                    "{} (pieces of {chunk}):\n  want {}{}\n  got  {}{}",
                    case.name,
                    show(&case.reply),
                    if case.closed { " +close" } else { "" },
                    show(&c.out),
                    if c.closed { " +close" } else { "" },
                ));
                break;
            }
        }
    }
    assert!(failed.is_empty(), "{} of {} cases differ:\n{}", failed.len(), all.len(), failed.join("\n"));
}
