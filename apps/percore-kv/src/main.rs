//! `percore-kv`: the server binary.

fn main() {}
