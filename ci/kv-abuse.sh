#!/usr/bin/env bash
# percore-kv under abuse, the heavy parts (issue 12), loopback only, every
# wait bounded; the light parts run in `cargo test` (tests/abuse_*.rs):
#  1. the abuse tests in release at full size: hostile input and abrupt
#     disconnects (10,000 connections each), trickling clients, floods, and
#     the soak for 60 s (PERCORE_KV_SOAK_SECS);
#  2. the binary in its own process: 10,000 concurrent connections at
#     -c 10000 (descriptor limits raised to the hard limit), then 20 refused;
#  3. the binary under load from 500 clients gets SIGTERM: exit 0 within
#     15 s, every client's bytes a whole number of replies.
source "$(dirname "$0")/common.sh"
cargo build --release -p percore-kv
BIN=$PWD/target/release/percore-kv
echo "--- abuse tests in release (soak ${PERCORE_KV_SOAK_SECS:=60} s)"
export PERCORE_KV_SOAK_SECS
timeout 600 cargo test --release -p percore-kv --test 'abuse_*' -- --nocapture --test-threads 1
echo "--- 10,000 connections against the binary"
timeout 300 python3 apps/percore-kv/tests/abuse/binary.py flood "$BIN" 25201 10000
echo "--- SIGTERM under load"
timeout 120 python3 apps/percore-kv/tests/abuse/binary.py sigterm "$BIN" 25202
echo "kv-abuse: all passed"
