#!/usr/bin/env bash
# The zone and SMR stress tests under valgrind, with every zone in no-cache mode
# (PERCORE_ZONE_NOCACHE=1: one system allocation per item, so memcheck sees
# each alloc and free, and any read of a freed item), then percore-lwkt's
# uthread tests (uthread stacks are registered with valgrind, so it follows
# the stack switches). Scaled down and bounded in time; any memcheck error
# fails the run.
source "$(dirname "$0")/common.sh"
if ! command -v valgrind >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null
    fi
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind is not available and could not be installed" >&2
    exit 1
fi
# Build a release test binary and print its path: test_bin CRATE TEST.
test_bin() {
    cargo test -p "$1" --release --test "$2" --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$2"
}
vg() {
    timeout 600 valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no \
        --fair-sched=yes --quiet "$@" --test-threads=1
}
# valgrind serialises threads, and may not know membarrier: use the SMR
# fence fallback there.
export PERCORE_SMR_FENCE=rmw
bin=$(test_bin percore-zone stress)
test -x "$bin"
PERCORE_ZONE_NOCACHE=1 PERCORE_ZONE_STRESS_ITERS=${PERCORE_ZONE_STRESS_ITERS:-20000} vg "$bin"
# percore-smr: readers traverse the example map while writers retire nodes.
bin=$(test_bin percore-smr stress)
test -x "$bin"
vg "$bin"
# percore-lwkt: uthreads switching stacks (registered with valgrind's client
# requests in sys/linux.rs), blocking, migration, give-away, shutdown.
for t in uthread sync runtime stress; do
    bin=$(test_bin percore-lwkt "$t")
    test -x "$bin"
    vg "$bin"
done
