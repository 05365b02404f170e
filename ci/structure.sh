#!/usr/bin/env bash
# The shape of the code (issue 14): no import loop inside a crate longer than
# three files (ci/import_loops.py finds the strongly connected components of
# each crate's `crate::` paths).
source "$(dirname "$0")/common.sh"
for c in crates/* apps/percore-kv; do
    python3 ci/import_loops.py "$c" 3
done
