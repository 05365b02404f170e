#!/usr/bin/env bash
# The loom models of each protocol's core transitions, bounded.
source "$(dirname "$0")/common.sh"
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2}
export CARGO_TARGET_DIR=target/loom
cargo test -p percore-smr --release --test loom_smr
# percore-zone: the bucket/depot exchange. One test thread: the models share
# the process-wide participant-index allocator.
cargo test -p percore-zone --release --test loom_zone -- --test-threads=1
cargo test -p percore-pool --release --test loom_pool
cargo test -p percore-lwkt --release --test loom_ipi
cargo test -p percore-lwkt --release --test loom_idle
# percore-lwkt: the watchdog's nap (worker/nap.rs): woken by the first worker
# to wake, never napping while one is awake.
cargo test -p percore-lwkt --release --test loom_nap
# percore-lwkt: the running slot (a watchdog never takes a freed uthread).
cargo test -p percore-lwkt --release --test loom_monitor
# percore-lwkt: the park word (no lost wake-up, no double resume) and tokens
# (mutual exclusion, hand-over, all-or-nothing lists).
cargo test -p percore-lwkt --release --test loom_park
cargo test -p percore-lwkt --release --test loom_token
# percore-lwkt: the join slot (uthread/oneshot.rs): complete racing a poll,
# a re-poll with a new waker, a poll then a blocking wait.
cargo test -p percore-lwkt --release --test loom_join
# percore-lwkt: the port slot (uthread/portslot.rs): openers racing the exit.
cargo test -p percore-lwkt --release --test loom_portslot
cargo test -p percore-evq --release --test loom_alarm
# percore-evq: the event queues' wait/post protocol (queue.rs).
cargo test -p percore-evq --release --test loom_queue
# percore-evq: CancellationToken's register-versus-cancel (cancel.rs).
cargo test -p percore-evq --release --test loom_cancel
# percore-evq: an I/O source's readiness, wait, wake-up and close (io/source.rs).
cargo test -p percore-evq --release --test loom_io
# percore-kv: the store's table protocol (publish, grow under a reader, free
# after a grace period) and its segment generations against flush_all
# (engine.rs). A crate feature rather than `--cfg loom`: the facade's
# runtime is configured out under `--cfg loom` and the server must still build.
RUSTFLAGS="${RUSTFLAGS#--cfg loom }" CARGO_TARGET_DIR=target/loom-kv \
    cargo test -p percore-kv --release --features loom --lib loom
