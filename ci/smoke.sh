#!/usr/bin/env bash
# The README's main command in its quick mode: every benchmark runs end to end.
source "$(dirname "$0")/common.sh"
cargo run --release -p percore-bench -- --quick
cargo run --release -p percore-bench -- --quick --json smr > target/bench-smoke.jsonl
# Every line must be one JSON object with the documented keys.
python3 - target/bench-smoke.jsonl <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert {"bench", "impl", "metric", "value", "unit"} <= o.keys(), o
    n += 1
assert n > 0, "no benchmark lines"
print(f"bench smoke: {n} JSON lines ok")
PY
