#!/usr/bin/env bash
# The loom models of each protocol's core transitions, bounded.
source "$(dirname "$0")/common.sh"
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
export CARGO_TARGET_DIR=target/loom
cargo test -p percore-smr --release --test loom_smr
cargo test -p percore-lwkt --release --test loom_ipi
cargo test -p percore-lwkt --release --test loom_idle
