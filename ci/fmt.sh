#!/usr/bin/env bash
# cargo fmt must be clean.
source "$(dirname "$0")/common.sh"
ensure_component rustfmt
cargo fmt --all -- --check
