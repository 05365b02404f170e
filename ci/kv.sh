#!/usr/bin/env bash
# percore-kv judged from the outside, on loopback, every wait bounded:
#  1. kvdiff: the same byte sequences to memcached and percore-kv, replies
#     compared (apps/percore-kv/tests/diff);
#  2. memccapable -a and -b: every test passes and as many ran as against
#     memcached (a wrong -T name runs none and still says "passed");
#  3. real clients, unmodified: pymemcache, python-memcached, pylibmc (text,
#     binary, ketama over three servers), python-binary-memcached,
#     Cache::Memcached, Cache::Memcached::Fast, libmemcached's tools;
#  4. three percore-kv instances behind twemproxy (nutcracker).
source "$(dirname "$0")/common.sh"
bash ci/kv-deps.sh
cargo build --release -p percore-kv
BIN=$PWD/target/release/percore-kv
LOG=$PWD/target/kv-ci
mkdir -p "$LOG"
ROOTU=(); [ "$(id -u)" = 0 ] && ROOTU=(-u root)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
# start NAME PORT CMD... : starts a server, waits until it accepts (10 s at most)
start() {
    local name=$1 port=$2; shift 2
    port_free "$port" || { echo "kv: port $port is busy" >&2; exit 1; }
    "$@" >"$LOG/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "kv: $name did not start: $*" >&2; cat "$LOG/$name.log" >&2; exit 1
}
stop_all() { cleanup; PIDS=(); }
kv() { start "kv-$1" "$1" "$BIN" -p "$1" -l 127.0.0.1 -t 2 -m 256 "${@:2}"; }
mc() { start "mc-$1" "$1" memcached "${ROOTU[@]}" -p "$1" -l 127.0.0.1 -t 2 -m 256 -U 0 "${@:2}"; }

echo "--- kvdiff against memcached $(memcached -h | head -1 | cut -d' ' -f2)"
mc 25100; kv 25101
timeout 300 python3 apps/percore-kv/tests/diff/kvdiff.py 25100 25101
stop_all

echo "--- memccapable"
capable() { # PORT MODE -> "ran failed"
    timeout 180 stdbuf -o0 -e0 memccapable -h 127.0.0.1 -p "$1" -t 2 "$2" >"$LOG/capable-$1$2.out" 2>&1 || true
    echo "$(grep -c '\[pass\]\|\[FAIL\]' "$LOG/capable-$1$2.out") $(grep -c '\[FAIL\]' "$LOG/capable-$1$2.out")"
}
for mode in -a -b; do
    mc 25110; read -r ref_ran ref_fail < <(capable 25110 $mode); stop_all
    kv 25111; read -r ran fail < <(capable 25111 $mode); stop_all
    echo "memccapable $mode: percore-kv ran $ran, failed $fail; memcached ran $ref_ran, failed $ref_fail"
    if [ "$fail" != 0 ] || [ "$ran" != "$ref_ran" ] || [ "$ran" = 0 ]; then
        grep -B1 FAIL "$LOG/capable-25111$mode.out" | head -40
        echo "kv: memccapable $mode falls short" >&2; exit 1
    fi
done

echo "--- real clients"
kv 25121; kv 25122; kv 25123
timeout 120 python3 apps/percore-kv/tests/clients/clients.py 25121 25122 25123
timeout 60 perl apps/percore-kv/tests/clients/clients.pl 25121
timeout 120 bash apps/percore-kv/tests/clients/tools.sh 25121
stop_all

echo "--- three instances behind twemproxy"
kv 25131; kv 25132; kv 25133
cat >"$LOG/nutcracker.yml" <<YML
kv:
  listen: 127.0.0.1:25130
  hash: fnv1a_64
  distribution: ketama
  timeout: 2000
  auto_eject_hosts: false
  servers:
   - 127.0.0.1:25131:1 kv1
   - 127.0.0.1:25132:1 kv2
   - 127.0.0.1:25133:1 kv3
YML
start nutcracker 25130 nutcracker -c "$LOG/nutcracker.yml" -s 25139 -o "$LOG/nutcracker.out"
timeout 60 python3 apps/percore-kv/tests/clients/twemproxy.py 25130 25131 25132 25133
stop_all

echo "--- hostile clients, faults and long runs (ci/kv-abuse.sh)"
bash ci/kv-abuse.sh
echo "kv: all outside checks passed"
