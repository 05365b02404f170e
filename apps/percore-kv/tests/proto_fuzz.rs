//! Generated inputs (proptest): the session never panics, never claims more
//! input than it was given, never asks for more than a line plus the largest
//! item, and answers the same however the bytes are split.

mod proto_support;

use percore_kv::config::Settings;
use percore_kv::proto::{MAX_GET_LINE, OUT_HIGH_WATER};
use proptest::prelude::*;
use proto_support::Conn;

const ITEM_MAX: usize = 4096;

fn settings() -> Settings {
    Settings { max_item_size: ITEM_MAX, memory_limit: 1 << 20, ..Settings::default() }
}

/// Pieces of plausible requests, glued into streams with garbage between
/// (no `stats`: its times and rusage differ between two runs).
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let words = prop::sample::select(vec![
        "get",
        "gets",
        "gat",
        "set",
        "add",
        "cas",
        "append",
        "incr",
        "decr",
        "delete",
        "touch",
        "mg",
        "ms",
        "md",
        "ma",
        "mn",
        "me",
        "flush_all",
        "verbosity",
        "noreply",
        "k",
        "0",
        "1",
        "-1",
        "5",
        "4294967296",
        "T10",
        "v",
        "q",
        "k",
        "c",
        "N30",
        "MA",
        "b",
        "Zm9v",
        "O123",
        "D2",
        "\r\n",
        "\n",
        " ",
        "  ",
        "\t",
        "xxxxx",
    ]);
    prop_oneof![
        prop::collection::vec(words, 1..12).prop_map(|w| w.join(" ").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"set k 0 0 5\r\nhello\r\n".to_vec()),
        Just(b"set k 0 0 9000\r\n".to_vec()),
        Just(b"ms k 3 T0 c\r\nabc\r\n".to_vec()),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fragment(), 0..16).prop_map(|f| f.concat())
}

fn binary_stream() -> impl Strategy<Value = Vec<u8>> {
    let packet = (any::<u8>(), 0u16..300, 0u8..24, 0u32..6000, prop::collection::vec(any::<u8>(), 0..80)).prop_map(
        |(op, kl, el, bl, body)| {
            let mut v = vec![0x80, op % 0x28];
            v.extend_from_slice(&kl.to_be_bytes());
            v.push(el);
            v.extend_from_slice(&[0, 0, 0]);
            v.extend_from_slice(&bl.to_be_bytes());
            v.extend_from_slice(&[0; 12]);
            v.extend_from_slice(&body);
            v
        },
    );
    prop::collection::vec(packet, 1..8).prop_map(|p| p.concat())
}

/// Feeds `data` in pieces, checking the session's promises at each call.
fn drive(data: &[u8], piece: usize) -> (Vec<u8>, bool) {
    let mut c = Conn::with(settings());
    for chunk in data.chunks(piece.max(1)) {
        if c.closed {
            break;
        }
        c.buf.extend_from_slice(chunk);
        loop {
            let before = c.out.len();
            let p = c.session.process(&c.ctx, &c.info, &c.buf, &mut c.out);
            assert!(p.consumed <= c.buf.len(), "consumed past the input");
            assert!(p.want <= 2048 + ITEM_MAX + 600, "want {} unbounded", p.want);
            c.buf.drain(..p.consumed);
            assert!(c.buf.len() <= MAX_GET_LINE + ITEM_MAX + 2048, "unbounded buffering");
            assert!(c.out.len() <= OUT_HIGH_WATER + ITEM_MAX + 4096 || p.consumed == 0);
            if p.close {
                c.closed = true;
                break;
            }
            if p.consumed == 0 && c.out.len() == before {
                break;
            }
        }
    }
    (c.out, c.closed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn text_never_panics_and_splits_do_not_matter(data in stream(), piece in 1usize..40) {
        let whole = drive(&data, usize::MAX);
        let split = drive(&data, piece);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..3000), piece in 1usize..600) {
        drive(&data, piece);
    }

    #[test]
    fn binary_never_panics_and_splits_do_not_matter(data in binary_stream(), piece in 1usize..50) {
        let whole = drive(&data, usize::MAX);
        let split = drive(&data, piece);
        prop_assert_eq!(whole, split);
    }
}
