#!/bin/bash
# run.sh MODE PORT CONNS SECS: start the probe's server (MODE epoll or uring)
# on PORT, drive it with CONNS connections for SECS seconds, print the
# client's line (requests/s, server CPU us/request), stop the server.
set -e
here=$(cd "$(dirname "$0")" && pwd)
cargo build -q --release --manifest-path "$here/Cargo.toml"
B="$here/target/release/uring-probe"
"$B" server "$1" "$2" "$3" & P=$!
sleep 0.3
"$B" client "$2" "$3" "$4" "$P"
kill "$P"; wait "$P" 2>/dev/null || true
