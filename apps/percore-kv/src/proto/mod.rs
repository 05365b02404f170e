//! The protocol layer: memcached's text, meta and binary protocols over the
//! store.
//!
//! A [`Session`] holds one connection's protocol state. The connection loop
//! feeds it the bytes it has read; it answers every complete request in
//! them, in order, appending the replies to one output buffer (so pipelined
//! requests are answered with one write).

use crate::context::{ConnInfo, Context};

/// What [`Session::process`] did with the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used up; the caller drops them.
    pub consumed: usize,
    /// Close the connection after writing the output.
    pub close: bool,
    /// When non-zero: the next request needs at least this many bytes of
    /// input in total (a value being read), so the caller can size its buffer
    /// once instead of growing it step by step.
    pub want: usize,
}

/// One connection's protocol state.
#[derive(Debug, Default)]
pub struct Session {}

impl Session {
    /// A session for a new connection.
    pub fn new() -> Session {
        Session {}
    }

    /// Answers every complete request at the start of `input`, appending the
    /// replies to `out`.
    pub fn process(&mut self, _ctx: &Context, _conn: &ConnInfo, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let mut p = Progress::default();
        while let Some(nl) = input[p.consumed..].iter().position(|&b| b == b'\n') {
            let line = &input[p.consumed..p.consumed + nl];
            p.consumed += nl + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match line {
                b"version" => out.extend_from_slice(concat!("VERSION ", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes()),
                b"quit" => {
                    p.close = true;
                    return p;
                }
                _ => out.extend_from_slice(b"ERROR\r\n"),
            }
        }
        p
    }
}
