#!/usr/bin/env bash
# Miri over percore-smr's and percore-zone's non-loom tests (issue 16: the
# old `retire(Box<T>)` pattern was undefined behaviour only Miri saw).
# Needs a nightly toolchain with the miri component; skipped with a message
# where there is none. Bounded: the few tests that take minutes under the
# interpreter are skipped (each runs natively in ci/test.sh), and the whole
# run is capped by a timeout. About 1-3 minutes on 2 cores.
source "$(dirname "$0")/common.sh"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "miri: skipped (no nightly toolchain)"
    exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add miri rust-src --toolchain nightly >/dev/null 2>&1 || true
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped (the nightly toolchain has no miri component)"
    exit 0
fi
# Permissive provenance: tests compare item addresses as integers.
# Isolation stays on: a virtual clock makes sleeps cheap and runs repeatable.
export MIRIFLAGS="-Zmiri-permissive-provenance ${MIRIFLAGS:-}"
export CARGO_TARGET_DIR=target/miri-ci
# -p percore-smr: the unit tests and the regression test of retire; the
# stress test (examples/rcu_map.rs under load) is too big for Miri.
timeout 600 cargo +nightly miri test -p percore-smr --lib --test issue_retire_box -- \
    --skip concurrent_flushes_each_run_everything_queued_before_them \
    --skip sequences_starting_at_init_never_hit_invalid
# -p percore-zone: the engine's unit tests and the hook regression test,
# without the four that move thousands of items between threads.
timeout 600 cargo +nightly miri test -p percore-zone --lib --test issue_panicking_hooks -- \
    --skip cross_thread_frees \
    --skip items_are_unique_and_survive_bucket_exchanges \
    --skip smr_items_are_not_reused_before_their_tag_expires \
    --skip reclaim_returns_free_slabs_and_runs_fini
