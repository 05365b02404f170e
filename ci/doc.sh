#!/usr/bin/env bash
# rustdoc with warnings denied (broken intra-doc links, missing docs).
source "$(dirname "$0")/common.sh"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
