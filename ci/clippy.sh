#!/usr/bin/env bash
# clippy with every warning an error, on every target (tests, benches, examples).
source "$(dirname "$0")/common.sh"
ensure_component clippy
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p percore-smr --all-targets --features wrap-test -- -D warnings
