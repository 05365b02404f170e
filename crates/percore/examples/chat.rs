//! A chat room over message ports: the room is a uthread, members are
//! uthreads, and everything they say travels as typed messages to each
//! other's ports (`Uthread::send`, `Uthread::call`, `percore::sync::wait_msg`).
//!
//! Members `call` the room to join; the room holds each join's reply until
//! every member has joined, so nobody misses a line. Each member then says
//! `LINES` lines, reads every line said (its own included), and leaves; the
//! room exits when the last one has left. Bounded: every wait has a timeout.
//!
//! ```text
//! cargo run --release -p percore --example chat
//! ```

use percore::sync::{wait_msg, Message};
use percore::Uthread;
use std::time::Duration;

const MEMBERS: usize = 6;
const LINES: usize = 20;
const PATIENCE: Option<Duration> = Some(Duration::from_secs(10));

/// What members send to the room.
enum ToRoom {
    /// Join under a name; the reply (the room's size) comes once all are in.
    Join(String),
    /// Say a line to everybody.
    Say(String),
    /// Leave the room.
    Leave,
}

/// What the room sends to members.
struct Line {
    from: String,
    text: String,
}

/// The room: returns how many lines it delivered.
fn room() -> usize {
    let mut members: Vec<(u64, String, Uthread)> = Vec::new();
    let mut waiting: Vec<Message> = Vec::new();
    let mut delivered = 0;
    let mut left = 0;
    while left < MEMBERS {
        let mut m = wait_msg(PATIENCE).expect("room: a member went quiet");
        let from = m.sender().expect("members are uthreads").clone();
        match m.take::<ToRoom>() {
            Some(ToRoom::Join(name)) => {
                members.push((from.id(), name, from));
                waiting.push(m);
                if waiting.len() == MEMBERS {
                    for w in waiting.drain(..) {
                        w.reply(MEMBERS);
                    }
                }
            }
            Some(ToRoom::Say(text)) => {
                let name = members.iter().find(|(id, ..)| *id == from.id()).map(|(_, n, _)| n.clone());
                let from = name.expect("said by a member");
                for (_, _, u) in &members {
                    u.send(Line { from: from.clone(), text: text.clone() });
                    delivered += 1;
                }
            }
            Some(ToRoom::Leave) => {
                members.retain(|(id, ..)| *id != from.id());
                left += 1;
            }
            None => eprintln!("room: a message of an unknown type, dropped"),
        }
    }
    delivered
}

/// A member: returns the lines it heard.
fn member(room: Uthread, name: String) -> usize {
    let size: usize = room.call(ToRoom::Join(name.clone())).expect("join");
    assert_eq!(size, MEMBERS);
    for i in 0..LINES {
        room.send(ToRoom::Say(format!("line {i}")));
        if i % 4 == 0 {
            percore::lwkt::yield_now(); // let the others talk meanwhile
        }
    }
    let mut heard = 0;
    let mut own = 0;
    while heard < MEMBERS * LINES {
        let mut m = wait_msg(PATIENCE).expect("member: the room went quiet");
        let line = m.take::<Line>().expect("only lines come from the room");
        own += usize::from(line.from == name);
        assert!(line.text.starts_with("line "));
        heard += 1;
    }
    assert_eq!(own, LINES, "{name} heard each of its own lines once");
    room.send(ToRoom::Leave);
    heard
}

fn main() {
    let (delivered, heard) = percore::run(|| {
        let room = percore::Builder::new().name("room").spawn(room).unwrap();
        let port = room.uthread().clone();
        let members: Vec<_> = (0..MEMBERS)
            .map(|i| {
                let port = port.clone();
                let name = format!("member-{i}");
                percore::Builder::new().name(name.clone()).rotate().spawn(move || member(port, name)).unwrap()
            })
            .collect();
        let heard: usize = members.into_iter().map(|m| m.join().unwrap()).sum();
        (room.join().unwrap(), heard)
    });
    assert_eq!(delivered, MEMBERS * MEMBERS * LINES);
    assert_eq!(heard, delivered);
    println!("chat: {MEMBERS} members, {LINES} lines each, {delivered} lines delivered");
}
