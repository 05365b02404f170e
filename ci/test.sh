#!/usr/bin/env bash
# The test command of the README. Runs every test (unit, integration, doc) in
# debug and in release, then the SMR suite again with the sequence starting
# just below the 32-bit wrap point (`wrap-test`, FreeBSD's INVARIANTS setting),
# and once more with the reader-side fence forced to the locked-RMW fallback.
source "$(dirname "$0")/common.sh"
export RUST_BACKTRACE=1
cargo test --workspace
cargo test --workspace --release
cargo test -p percore-smr --features wrap-test
PERCORE_SMR_FENCE=rmw cargo test -p percore-smr --release
# percore-kv from the outside: memcached side by side, memccapable, real
# clients and tools, twemproxy (installs what it needs; see ci/kv-deps.sh).
bash ci/kv.sh
