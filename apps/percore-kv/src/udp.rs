//! memcached's UDP protocol (`-U`).
//!
//! Every datagram starts with an 8-byte frame header, all fields big-endian
//! 16-bit: request id, sequence number, total datagrams in this message,
//! reserved (0). A request must fit in one datagram (sequence 0 of 1), as
//! memcached requires; anything else is dropped. The request is answered by
//! a fresh protocol session (UDP has no connection state), and the reply is
//! cut into datagrams of at most [`UDP_MAX_PAYLOAD`] bytes, each with the
//! request's id, its own sequence number and the total.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use percore::evq::net::UdpSocket;
use percore::lwkt::Handle;

use crate::context::{ConnInfo, Context};
use crate::proto::Session;

/// Frame header bytes.
pub const UDP_HEADER: usize = 8;

/// The most reply bytes per datagram (memcached's `UDP_MAX_PAYLOAD_SIZE`).
pub const UDP_MAX_PAYLOAD: usize = 1400;

/// How often an idle UDP uthread looks for a stop.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The largest datagram read.
const UDP_READ: usize = 65536;

/// Answers one request datagram `dgram`, appending reply datagrams to
/// `replies` (each one a separate `Vec`). Returns `false` when the datagram
/// is not a single-datagram request and was dropped.
pub fn answer(ctx: &Context, info: &ConnInfo, dgram: &[u8], replies: &mut Vec<Vec<u8>>) -> bool {
    if dgram.len() < UDP_HEADER {
        return false;
    }
    let id = [dgram[0], dgram[1]];
    let (seq, total) = (u16::from_be_bytes([dgram[2], dgram[3]]), u16::from_be_bytes([dgram[4], dgram[5]]));
    if seq != 0 || total != 1 {
        return false;
    }
    let mut session = Session::new();
    let mut out = Vec::new();
    let mut input = &dgram[UDP_HEADER..];
    loop {
        let p = session.process(ctx, info, input, &mut out);
        input = &input[p.consumed..];
        if p.close || p.consumed == 0 || input.is_empty() {
            break;
        }
    }
    let chunks: Vec<&[u8]> = out.chunks(UDP_MAX_PAYLOAD).collect();
    let Ok(n) = u16::try_from(chunks.len()) else {
        // NOTE: over 65,535 datagrams (90 MB): memcached cannot frame it
        // either; the request goes unanswered.
        return true;
    };
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut d = Vec::with_capacity(UDP_HEADER + chunk.len());
        d.extend_from_slice(&id);
        d.extend_from_slice(&(i as u16).to_be_bytes());
        d.extend_from_slice(&n.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(chunk);
        replies.push(d);
    }
    true
}

/// Serves UDP requests on `sock` until the server stops.
pub(crate) fn serve(ctx: &Arc<Context>, sock: std::net::UdpSocket) {
    let Some(handle) = Handle::current() else { return };
    let local = sock.local_addr().map(|a| format!("udp:{a}")).unwrap_or_default();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let Ok(sock) = UdpSocket::from_std_in(&handle, sock) else { return };
    // NOTE: shutdown(2) does not wake a datagram socket's reader; a read
    // timeout lets the uthread see the stop within this long.
    let _ = sock.set_read_timeout(Some(STOP_POLL));
    let info = ConnInfo::new(fd, local.clone(), local);
    let mut buf = vec![0u8; UDP_READ];
    let mut replies = Vec::new();
    while !ctx.shutting_down() {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            if ctx.shutting_down() {
                break;
            }
            continue;
        };
        ctx.stats.bytes_read.add(n as u64);
        // ORDERING: a report for `stats conns`; nothing depends on it.
        info.last_cmd.store(ctx.store.clock().now(), Ordering::Relaxed);
        replies.clear();
        if answer(ctx, &info, &buf[..n], &mut replies) {
            for d in &replies {
                if sock.send_to(d, peer).is_ok() {
                    ctx.stats.bytes_written.add(d.len() as u64);
                }
            }
        }
    }
}
