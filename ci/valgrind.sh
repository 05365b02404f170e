#!/usr/bin/env bash
# The zone stress test under valgrind, with every zone in no-cache mode
# (PERCORE_ZONE_NOCACHE=1: one system allocation per item, so memcheck sees
# each alloc and free, and any read of a freed item). Scaled down and
# bounded in time; any memcheck error fails the run.
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
# Build the test binary (release: valgrind is slow enough) and find it.
bin=$(cargo test -p percore-zone --release --test stress --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "stress" and m.get("executable"):
        print(m["executable"])')
test -x "$bin"
# valgrind serialises threads, and may not know membarrier: use the SMR
# fence fallback there.
PERCORE_ZONE_NOCACHE=1 PERCORE_ZONE_STRESS_ITERS=${PERCORE_ZONE_STRESS_ITERS:-20000} PERCORE_SMR_FENCE=rmw \
    timeout 600 valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no \
    --fair-sched=yes --quiet "$bin" --test-threads=1
