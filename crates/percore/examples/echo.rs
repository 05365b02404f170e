//! A TCP echo server over `percore::net`, with its own load: `CLIENTS`
//! client uthreads each send `MESSAGES` lines and check every echo, then the
//! program reports and exits (so CI can run it: `ci/examples.sh`).
//!
//! One uthread accepts, one uthread serves each connection, and all of them
//! are written as blocking code: a read that would block parks its uthread
//! and the worker runs the others.
//!
//! ```text
//! cargo run --release -p percore --example echo
//! ```

use percore::net::{TcpListener, TcpStream};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const MESSAGES: usize = 500;
/// No read or accept waits longer than this: a bug fails the run, never hangs it.
const PATIENCE: Duration = Duration::from_secs(10);

/// Echo everything until the client closes; returns the bytes echoed.
fn serve(mut conn: TcpStream) -> io::Result<u64> {
    conn.set_read_timeout(Some(PATIENCE))?;
    let mut buf = [0u8; 4096];
    let mut echoed = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(echoed);
        }
        conn.write_all(&buf[..n])?;
        echoed += n as u64;
    }
}

/// Send `MESSAGES` lines, check each echo; returns the bytes sent.
fn client(addr: SocketAddr, id: usize) -> io::Result<u64> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(PATIENCE))?;
    conn.set_nodelay(true)?;
    let mut sent = 0;
    let mut back = Vec::new();
    for m in 0..MESSAGES {
        let line = format!("client {id} message {m}\n");
        conn.write_all(line.as_bytes())?;
        back.resize(line.len(), 0);
        conn.read_exact(&mut back)?;
        assert_eq!(back, line.as_bytes(), "client {id}: a wrong echo");
        sent += line.len() as u64;
    }
    Ok(sent) // dropping `conn` closes it: its server uthread sees the end
}

fn main() -> io::Result<()> {
    let t0 = Instant::now();
    let (echoed, sent) = percore::run(|| -> io::Result<(u64, u64)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_accept_timeout(Some(PATIENCE))?;
        let acceptor = percore::Builder::new()
            .name("acceptor")
            .spawn(move || -> io::Result<u64> {
                // A real server loops for ever; this one takes its CLIENTS.
                let mut conns = Vec::new();
                for _ in 0..CLIENTS {
                    let (conn, _) = listener.accept()?;
                    conns.push(
                        percore::Builder::new().name("conn").spawn(move || serve(conn)).map_err(io::Error::other)?,
                    );
                }
                let mut echoed = 0;
                for c in conns {
                    echoed += c.join().expect("a connection uthread")?;
                }
                Ok(echoed)
            })
            .map_err(io::Error::other)?;
        // Clients on every worker, in rotation.
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| percore::Builder::new().rotate().spawn(move || client(addr, id)))
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        let mut sent = 0;
        for c in clients {
            sent += c.join().expect("a client uthread")?;
        }
        Ok((acceptor.join().expect("the acceptor")?, sent))
    })?;
    assert_eq!(echoed, sent);
    println!("echo: {CLIENTS} clients x {MESSAGES} messages, {sent} bytes echoed in {:.0?}", t0.elapsed());
    Ok(())
}
