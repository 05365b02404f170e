//! What the proto_* tests share: a context and a driver that plays the
//! connection loop's part (buffer, call `process`, drop what was consumed).

#![allow(dead_code)]

use std::sync::Arc;

use percore_kv::config::Settings;
use percore_kv::context::{ConnInfo, Context};
use percore_kv::proto::{Progress, Session};

/// A connection to a fresh server context.
pub(crate) struct Conn {
    pub(crate) ctx: Arc<Context>,
    pub(crate) info: ConnInfo,
    pub(crate) session: Session,
    /// Bytes received and not yet consumed.
    pub(crate) buf: Vec<u8>,
    /// Everything the session answered.
    pub(crate) out: Vec<u8>,
    pub(crate) closed: bool,
    /// The largest `want` seen.
    pub(crate) max_want: usize,
}

impl Conn {
    pub(crate) fn new() -> Conn {
        Conn::with(Settings::default())
    }

    pub(crate) fn with(settings: Settings) -> Conn {
        let ctx = Context::new(settings).unwrap();
        Conn::on(ctx)
    }

    /// A second connection to the same context.
    pub(crate) fn on(ctx: Arc<Context>) -> Conn {
        let info = ConnInfo::new(9, "tcp:127.0.0.1:40000".into(), "tcp:127.0.0.1:11211".into());
        Conn { ctx, info, session: Session::new(), buf: Vec::new(), out: Vec::new(), closed: false, max_want: 0 }
    }

    /// Receives `data` (one read) and lets the session answer.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Progress {
        assert!(!self.closed, "fed a closed connection");
        self.buf.extend_from_slice(data);
        let mut last = Progress::default();
        loop {
            let before = self.out.len();
            let p = self.session.process(&self.ctx, &self.info, &self.buf, &mut self.out);
            assert!(p.consumed <= self.buf.len());
            self.buf.drain(..p.consumed);
            self.max_want = self.max_want.max(p.want);
            last = Progress { consumed: last.consumed + p.consumed, ..p };
            if p.close {
                self.closed = true;
                return last;
            }
            // The session pauses at its output high-water mark: write and go on.
            if p.consumed == 0 && self.out.len() == before {
                return last;
            }
        }
    }

    /// Feeds `data` in pieces of `chunk` bytes.
    pub(crate) fn feed_chunked(&mut self, data: &[u8], chunk: usize) {
        for piece in data.chunks(chunk.max(1)) {
            if self.closed {
                return;
            }
            self.feed(piece);
        }
    }

    /// The answers so far, taken.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Feeds `data` at once and returns the answers.
    pub(crate) fn ask(&mut self, data: &[u8]) -> Vec<u8> {
        self.feed(data);
        self.take()
    }
}

/// Shows bytes the way the case file writes them.
pub(crate) fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}
