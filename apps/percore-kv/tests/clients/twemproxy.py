#!/usr/bin/env python3
"""Keys written through twemproxy land on every backend and read back.

Usage: twemproxy.py PROXY_PORT BACKEND_PORT...
"""
import sys

from pymemcache.client.base import Client

proxy = int(sys.argv[1])
backends = [int(p) for p in sys.argv[2:]]
c = Client(("127.0.0.1", proxy), connect_timeout=5, timeout=5)
keys = ["tw:%d" % i for i in range(600)]
for k in keys:
    assert c.set(k, k.encode(), noreply=False), k
got = c.get_many(keys)
assert got == {k: k.encode() for k in keys}, "read back through the proxy: %d of %d" % (len(got), len(keys))
assert c.incr("tw:0:n", 1) is None
c.set("tw:n", b"1", noreply=False)
assert c.incr("tw:n", 41) == 42
assert c.delete("tw:n", noreply=False)
counts = []
for p in backends:
    one = Client(("127.0.0.1", p), connect_timeout=5, timeout=5)
    counts.append(len(one.get_many(keys)))
assert sum(counts) == len(keys), counts
assert min(counts) > 0, "a backend got no keys: %r" % counts
print("twemproxy: %d keys through the proxy, per backend %r" % (len(keys), counts))
