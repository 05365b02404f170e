#!/usr/bin/env bash
# What ci/kv.sh needs from outside the project: memcached itself (the
# reference), libmemcached's tools (memccapable, memccp, ...), twemproxy
# (nutcracker), the Perl clients, and the Python clients. Installed when
# missing (as root); otherwise the missing pieces are named and it fails.
source "$(dirname "$0")/common.sh"
need_apt=()
for pair in memcached:memcached memccapable:libmemcached-tools nutcracker:nutcracker; do
    command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
perl -MCache::Memcached -e1 2>/dev/null || need_apt+=(libcache-memcached-perl)
perl -MCache::Memcached::Fast -e1 2>/dev/null || need_apt+=(libcache-memcached-fast-perl)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || true
        apt-get install -y -qq "${need_apt[@]}" >/dev/null
        # NOTE: Debian's package may start a memcached on 11211 where an init
        # system runs; the checks use their own ports and leave it alone.
    else
        echo "kv-deps: missing Debian packages (run as root to install): ${need_apt[*]}" >&2
        exit 1
    fi
fi
py_need=()
python3 -c 'import pymemcache' 2>/dev/null || py_need+=(pymemcache==4.0.0)
python3 -c 'import memcache' 2>/dev/null || py_need+=(python-memcached==1.62)
python3 -c 'import pylibmc' 2>/dev/null || py_need+=(pylibmc==1.6.3)
python3 -c 'import bmemcached' 2>/dev/null || py_need+=(python-binary-memcached==0.33.0)
if [ ${#py_need[@]} -gt 0 ]; then
    python3 -m pip install -q "${py_need[@]}"
fi
echo "kv-deps: memcached $(memcached -h | head -1 | cut -d' ' -f2), $(nutcracker --version 2>&1 | head -1), clients installed"
