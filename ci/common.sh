# Sourced by every ci/*.sh: strict mode, the repository root, and the tools
# a fresh machine may lack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
ensure_component() {
    # rustfmt / clippy ship with rustup's default profile, but a minimal
    # toolchain lacks them: install on demand.
    if ! rustup component list --installed 2>/dev/null | grep -q "^$1"; then
        rustup component add "$1"
    fi
}
