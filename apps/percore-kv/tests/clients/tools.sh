#!/usr/bin/env bash
# libmemcached's command-line tools (Debian names memc*) against a running
# server, text and --binary. Usage: tools.sh PORT
set -uo pipefail
S=127.0.0.1:$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { # NAME COMMAND... : passes when the command succeeds
    local name=$1; shift
    if "$@" >"$T/out" 2>&1; then echo "PASS $name"; pass=$((pass + 1)); else echo "FAIL $name"; sed 's/^/    /' "$T/out" | head -5; fail=$((fail + 1)); fi
}
for bin in "" "--binary"; do
    tag="tools${bin:+ binary}"
    echo "hello $bin" >"$T/file$bin.txt"
    head -c 300000 /dev/urandom >"$T/big$bin.bin"
    check "$tag memccp" memccp --servers=$S $bin "$T/file$bin.txt" "$T/big$bin.bin"
    check "$tag memccat" bash -c "memccat --servers=$S $bin file$bin.txt | grep -q 'hello $bin'"
    check "$tag memccat big" bash -c "memccat --servers=$S $bin big$bin.bin | head -c 300000 | cmp - '$T/big$bin.bin'"
    check "$tag memcexist" memcexist --servers=$S $bin "file$bin.txt"
    check "$tag memcexist missing" bash -c "! memcexist --servers=$S $bin nothing-here"
    check "$tag memctouch" memctouch --servers=$S $bin --expire=100 "file$bin.txt"
    check "$tag memcrm" memcrm --servers=$S $bin "file$bin.txt"
    check "$tag memccat after rm" bash -c "! memccat --servers=$S $bin file$bin.txt"
    check "$tag memcstat" bash -c "memcstat --servers=$S $bin | grep -q curr_items"
    check "$tag memcflush" memcflush --servers=$S $bin
    check "$tag memccat after flush" bash -c "! memccat --servers=$S $bin big$bin.bin"
done
check "memcping" memcping --servers=$S
check "memcslap" memcslap --servers=$S --concurrency=4 --execute-number=200
check "memcaslap verify" memcaslap -s $S -t 2s -T 2 -c 8 -X 100 -v 1.0
echo "tools.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
