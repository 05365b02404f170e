//! The binary protocol through `Session`: framing split at every byte
//! boundary, quiet pipelines, swallowing a too-large value across reads.

mod proto_support;

use proto_support::Conn;

/// One request: opcode, key, extras, value, cas, opaque 0x01020304.
fn req(opcode: u8, key: &[u8], ext: &[u8], value: &[u8], cas: u64) -> Vec<u8> {
    let mut v = vec![0x80, opcode];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(ext.len() as u8);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&((ext.len() + key.len() + value.len()) as u32).to_be_bytes());
    v.extend_from_slice(&[1, 2, 3, 4]);
    v.extend_from_slice(&cas.to_be_bytes());
    v.extend_from_slice(ext);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

fn set_ext(flags: u32, exp: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exp.to_be_bytes()].concat()
}

/// One response: (opcode, status, extras, key, value, cas).
type Response = (u8, u16, Vec<u8>, Vec<u8>, Vec<u8>, u64);

/// The responses in `out`.
fn parse(mut out: &[u8]) -> Vec<Response> {
    let mut r = Vec::new();
    while !out.is_empty() {
        assert_eq!(out[0], 0x81, "response magic");
        assert_eq!(&out[12..16], &[1, 2, 3, 4], "opaque echoed");
        let kl = u16::from_be_bytes([out[2], out[3]]) as usize;
        let el = out[4] as usize;
        let st = u16::from_be_bytes([out[6], out[7]]);
        let bl = u32::from_be_bytes([out[8], out[9], out[10], out[11]]) as usize;
        let cas = u64::from_be_bytes(out[16..24].try_into().unwrap());
        let body = &out[24..24 + bl];
        r.push((out[1], st, body[..el].to_vec(), body[el..el + kl].to_vec(), body[el + kl..].to_vec(), cas));
        out = &out[24 + bl..];
    }
    r
}

#[test]
fn framing_split_at_every_byte_boundary() {
    let mut stream = req(0x01, b"key", &set_ext(0xdeadbeef, 0), b"value!", 0);
    stream.extend(req(0x0c, b"key", &[], &[], 0)); // getk
    stream.extend(req(0x09, b"nokey", &[], &[], 0)); // getq miss: silent
    let incr = [&3u64.to_be_bytes()[..], &7u64.to_be_bytes(), &[0, 0, 0, 0]].concat();
    stream.extend(req(0x05, b"n", &incr, &[], 0));
    stream.extend(req(0x0a, &[], &[], &[], 0)); // noop
    let mut whole = Conn::new();
    whole.feed(&stream);
    let want = whole.take();
    let r = parse(&want);
    assert_eq!(r.len(), 4);
    assert_eq!((r[0].0, r[0].1), (0x01, 0));
    assert_eq!(r[1].2, 0xdeadbeefu32.to_be_bytes());
    assert_eq!((r[1].3.as_slice(), r[1].4.as_slice()), (&b"key"[..], &b"value!"[..]));
    assert_eq!(r[2].4, 7u64.to_be_bytes(), "a missing counter is created with its initial value");
    assert_eq!(r[3].0, 0x0a);
    for split in 0..=stream.len() {
        let mut c = Conn::new();
        c.feed(&stream[..split]);
        c.feed(&stream[split..]);
        assert_eq!(c.out, want, "split at {split}");
        assert!(c.buf.is_empty() && !c.closed);
    }
    let mut c = Conn::new();
    c.feed_chunked(&stream, 1);
    assert_eq!(c.out, want, "a byte at a time");
}

#[test]
fn a_partial_header_or_value_waits_and_says_how_much() {
    let mut c = Conn::new();
    let set = req(0x01, b"k", &set_ext(0, 0), &[7u8; 100], 0);
    let p = c.feed(&set[..10]);
    assert_eq!((p.consumed, p.want), (0, 24));
    let p = c.feed(&set[10..40]);
    assert_eq!((p.consumed, p.want), (0, set.len()));
    c.feed(&set[40..]);
    assert_eq!(parse(&c.take())[0].1, 0);
}

#[test]
fn too_large_is_swallowed_across_reads() {
    let mut c = Conn::new();
    let value = vec![b'x'; 2 << 20];
    let mut stream = req(0x01, b"big", &set_ext(0, 0), &value, 0);
    stream.extend(req(0x00, b"big", &[], &[], 0));
    c.feed_chunked(&stream, 65536);
    let r = parse(&c.take());
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].1, r[0].4.as_slice()), (3, &b"Too large."[..]));
    assert_eq!((r[1].1, r[1].4.as_slice()), (1, &b"Not found"[..]));
    assert!(c.max_want <= 2 << 20);
}

#[test]
fn cas_and_quiet_pipeline() {
    let mut c = Conn::new();
    c.feed(&req(0x01, b"k", &set_ext(1, 0), b"a", 0));
    let cas = parse(&c.take())[0].5;
    assert_ne!(cas, 0);
    let mut stream = req(0x11, b"k", &set_ext(1, 0), b"b", cas + 1); // setq, wrong cas: error sent
    stream.extend(req(0x11, b"k", &set_ext(2, 0), b"c", cas)); // setq, right cas: silent
    stream.extend(req(0x0d, b"k", &[], &[], 0)); // getkq hit: sent
    stream.extend(req(0x14, b"k", &[], &[], 0)); // deleteq: silent
    stream.extend(req(0x0a, &[], &[], &[], 0));
    c.feed(&stream);
    let r = parse(&c.take());
    let codes: Vec<(u8, u16)> = r.iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(codes, [(0x11, 2), (0x0d, 0), (0x0a, 0)]);
    assert_eq!(r[1].4, b"c");
}

#[test]
fn stats_are_packets_ending_with_an_empty_one() {
    let mut c = Conn::new();
    c.feed(&req(0x10, &[], &[], &[], 0));
    let r = parse(&c.take());
    assert!(r.len() > 20);
    assert_eq!(r[0].3, b"pid");
    let last = r.last().unwrap();
    assert!(last.3.is_empty() && last.4.is_empty());
    c.feed(&req(0x10, b"settings", &[], &[], 0));
    assert!(parse(&c.take()).iter().any(|x| x.3 == b"maxbytes"));
}
