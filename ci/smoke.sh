#!/usr/bin/env bash
# The README's main command (the server with its embedded defaults) answers
# and stops cleanly on SIGTERM; then the benchmarks in quick mode, end to end.
source "$(dirname "$0")/common.sh"
cargo build --release -p percore-kv
if (exec 3<>/dev/tcp/127.0.0.1/11211) 2>/dev/null; then
    echo "smoke: port 11211 is taken; the main command is checked on 11311 instead"
    port=11311
else
    port=11211
fi
cargo run --release -p percore-kv -- -p $port > target/kv-smoke.out 2>&1 &
kv=$!
python3 - $port <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("smoke: the server did not come up")
s.sendall(b"set smoke 0 0 2\r\nok\r\nget smoke\r\n")
got = b""
while not got.endswith(b"END\r\n"):
    d = s.recv(4096)
    if not d:
        break
    got += d
assert got == b"STORED\r\nVALUE smoke 0 2\r\nok\r\nEND\r\n", got
print("smoke: the server answers")
PY
kill -TERM $kv
rc=0; wait $kv || rc=$?
grep -q "listening on 127.0.0.1:$port" target/kv-smoke.out || { cat target/kv-smoke.out; echo "smoke: no listening line"; exit 1; }
[ $rc = 0 ] || { cat target/kv-smoke.out; echo "smoke: exit code $rc after SIGTERM"; exit 1; }
echo "smoke: the server stopped on SIGTERM with exit code 0"
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
