#!/usr/bin/env bash
# The facade's examples (crates/percore/examples), each run to its end in
# release: every one is bounded (it makes its own load and exits), so a
# hang or a failed check fails CI. A run past its limit counts as a hang.
# The list is every file in that directory (the glob below): a new example,
# such as tokio_interop.rs (uthread <-> tokio), is run without editing this.
source "$(dirname "$0")/common.sh"
limit=${PERCORE_EXAMPLE_TIMEOUT:-60}
cargo build --release -p percore --examples
dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples
for src in crates/percore/examples/*.rs; do
    name=$(basename "$src" .rs)
    echo "--- example $name"
    rc=0
    timeout "$limit" "$dir/$name" || rc=$?
    if [ "$rc" = 124 ]; then
        echo "examples: $name did not finish in ${limit}s"
        exit 1
    elif [ "$rc" != 0 ]; then
        echo "examples: $name failed with exit code $rc"
        exit 1
    fi
done
echo "examples: all passed"
