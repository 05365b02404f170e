#!/usr/bin/env python3
"""Real Python clients against running servers, unmodified.

Usage: clients.py PORT [PORT2 PORT3]

With one port every client talks to it; with three, pylibmc also spreads
keys over all three with ketama and checks each server got some. One
"PASS name" / "FAIL name: why" line per check; exit status 1 on any failure.

Clients: pymemcache (text), python-memcached (text), pylibmc (libmemcached,
text and binary), python-binary-memcached (binary protocol).
"""
import sys
import time
import traceback

ports = [int(p) for p in sys.argv[1:]]
HOST = "127.0.0.1"
results = {"pass": 0, "fail": 0}


def check(name, fn):
    try:
        fn()
        print("PASS %s" % name)
        results["pass"] += 1
    except Exception as e:  # noqa: BLE001
        print("FAIL %s: %r" % (name, e))
        traceback.print_exc(limit=2)
        results["fail"] += 1


def eq(a, b):
    if a != b:
        raise AssertionError("%r != %r" % (a, b))


def pymemcache_checks():
    from pymemcache.client.base import Client
    c = Client((HOST, ports[0]), connect_timeout=5, timeout=5)
    p = "pm:"
    check("pymemcache set/get", lambda: (eq(c.set(p + "a", b"1"), True), eq(c.get(p + "a"), b"1")))
    check("pymemcache get_many", lambda: (c.set_many({p + "b": b"2", p + "c": b"3"}),
                                          eq(c.get_many([p + "b", p + "c", p + "zz"]), {p + "b": b"2", p + "c": b"3"})))
    check("pymemcache add", lambda: (eq(c.add(p + "a", b"x", noreply=False), False), eq(c.add(p + "new", b"x", noreply=False), True)))
    check("pymemcache replace", lambda: (eq(c.replace(p + "missing", b"x", noreply=False), False),
                                         eq(c.replace(p + "a", b"9", noreply=False), True), eq(c.get(p + "a"), b"9")))
    check("pymemcache append/prepend", lambda: (c.set(p + "ap", b"m"), c.append(p + "ap", b"z", noreply=False),
                                                c.prepend(p + "ap", b"a", noreply=False), eq(c.get(p + "ap"), b"amz")))

    def cas():
        c.set(p + "cas", b"1")
        v, token = c.gets(p + "cas")
        eq(v, b"1")
        eq(c.cas(p + "cas", b"2", token), True)
        eq(c.cas(p + "cas", b"3", token), False)
        eq(c.get(p + "cas"), b"2")
        eq(c.cas(p + "nocas", b"3", b"1"), None)
    check("pymemcache gets/cas", cas)
    check("pymemcache incr/decr", lambda: (c.set(p + "n", b"10"), eq(c.incr(p + "n", 5), 15), eq(c.decr(p + "n", 20), 0),
                                           eq(c.incr(p + "nope", 1), None)))
    check("pymemcache delete", lambda: (eq(c.delete(p + "a", noreply=False), True), eq(c.delete(p + "a", noreply=False), False),
                                        eq(c.get(p + "a"), None)))
    check("pymemcache touch", lambda: (c.set(p + "t", b"1"), eq(c.touch(p + "t", 100, noreply=False), True),
                                       eq(c.touch(p + "tt", 100, noreply=False), False)))


    def expiry():
        c.set(p + "exp", b"1", expire=1)
        eq(c.get(p + "exp"), b"1")
        time.sleep(2.1)
        eq(c.get(p + "exp"), None)
    check("pymemcache expiry", expiry)
    check("pymemcache big value", lambda: (c.set(p + "big", b"x" * 900000), eq(c.get(p + "big"), b"x" * 900000)))
    def too_large():
        from pymemcache.exceptions import MemcacheServerError
        try:
            c.set(p + "huge", b"x" * 2000000, noreply=False)
        except MemcacheServerError as e:
            eq(b"object too large for cache" in e.args[0], True)
            eq(c.get(p + "huge"), None)
            return
        raise AssertionError("no error for a 2 MB value")
    check("pymemcache too large", too_large)
    check("pymemcache stats", lambda: (eq("curr_items" in {k.decode() if isinstance(k, bytes) else k: 1 for k in c.stats()}, True)))
    check("pymemcache version", lambda: eq(len(c.version()) > 0, True))

    def flush():
        c.set(p + "f", b"1")
        eq(c.flush_all(noreply=False), True)
        eq(c.get(p + "f"), None)
    check("pymemcache flush_all", flush)

    def meta_raw():
        # meta commands through the raw socket of a fresh client
        import socket
        s = socket.create_connection((HOST, ports[0]), timeout=5)
        s.sendall(b"ms pm:meta 2 T100 F3\r\nhi\r\nmg pm:meta v f t\r\nmn\r\n")
        got = b""
        while not got.endswith(b"MN\r\n"):
            got += s.recv(4096)
        s.close()
        lines = got.split(b"\r\n")
        eq(lines[0], b"HD")
        eq(lines[1][:9], b"VA 2 f3 t")
        eq(lines[2], b"hi")
    check("meta ms/mg", meta_raw)


def python_memcached_checks():
    import memcache
    c = memcache.Client(["%s:%d" % (HOST, ports[0])], socket_timeout=5)
    p = "py:"
    check("python-memcached set/get", lambda: (eq(c.set(p + "a", "1"), True), eq(c.get(p + "a"), "1")))
    check("python-memcached objects", lambda: (c.set(p + "o", {"x": [1, 2]}), eq(c.get(p + "o"), {"x": [1, 2]})))
    check("python-memcached int", lambda: (c.set(p + "i", 42), eq(c.get(p + "i"), 42)))
    check("python-memcached multi", lambda: (c.set_multi({"m1": "a", "m2": "b"}, key_prefix=p),
                                             eq(c.get_multi(["m1", "m2", "m3"], key_prefix=p), {"m1": "a", "m2": "b"})))
    check("python-memcached incr/decr", lambda: (c.set(p + "n", "5"), eq(c.incr(p + "n"), 6), eq(c.decr(p + "n", 10), 0)))
    check("python-memcached add/replace", lambda: (eq(bool(c.add(p + "a", "x")), False), eq(bool(c.replace(p + "zz", "x")), False)))
    check("python-memcached append/prepend", lambda: (c.set(p + "ap", "b"), c.append(p + "ap", "c"), c.prepend(p + "ap", "a"),
                                                      eq(c.get(p + "ap"), "abc")))

    def cas():
        c2 = memcache.Client(["%s:%d" % (HOST, ports[0])], cache_cas=True)
        c2.set(p + "cas", "1")
        eq(c2.gets(p + "cas"), "1")
        eq(c2.cas(p + "cas", "2"), True)
        c.set(p + "cas", "other")
        eq(c2.gets(p + "cas"), "other")
        c.set(p + "cas", "again")
        eq(bool(c2.cas(p + "cas", "mine")), False)
    check("python-memcached gets/cas", cas)
    check("python-memcached delete", lambda: (eq(bool(c.delete(p + "a")), True), eq(c.get(p + "a"), None)))
    check("python-memcached touch", lambda: (c.set(p + "t", "1"), eq(bool(c.touch(p + "t", 100)), True)))
    check("python-memcached stats", lambda: eq(len(c.get_stats()) == 1, True))


def pylibmc_checks():
    import pylibmc
    for binary in (False, True):
        tag = "pylibmc%s" % (" binary" if binary else "")
        c = pylibmc.Client(["%s:%d" % (HOST, ports[0])], binary=binary, behaviors={"cas": True})
        p = "lm%d:" % binary
        check(tag + " set/get", lambda: (eq(c.set(p + "a", b"1"), True), eq(c.get(p + "a"), b"1")))
        check(tag + " get_multi", lambda: (c.set_multi({p + "b": b"2", p + "c": b"3"}),
                                           eq(c.get_multi([p + "b", p + "c", p + "zz"]), {p + "b": b"2", p + "c": b"3"})))
        check(tag + " add", lambda: (eq(c.add(p + "a", b"x"), False), eq(c.add(p + "new", b"x"), True)))
        check(tag + " incr/decr", lambda: (c.set(p + "n", b"10"), eq(c.incr(p + "n", 5), 15), eq(c.decr(p + "n", 20), 0)))
        check(tag + " append", lambda: (c.set(p + "ap", b"a"), c.append(p + "ap", b"b"), c.prepend(p + "ap", b"0"),
                                        eq(c.get(p + "ap"), b"0ab")))

        def cas():
            c.set(p + "cas", b"1")
            v, token = c.gets(p + "cas")
            eq(v, b"1")
            eq(c.cas(p + "cas", b"2", token), True)
            eq(c.cas(p + "cas", b"3", token), False)
        check(tag + " gets/cas", cas)
        check(tag + " delete", lambda: (eq(c.delete(p + "a"), True), eq(c.get(p + "a"), None)))
        check(tag + " big value", lambda: (c.set(p + "big", b"y" * 500000), eq(c.get(p + "big"), b"y" * 500000)))
        check(tag + " stats", lambda: eq(len(c.get_stats()) == 1, True))
    if len(ports) >= 3:
        def ketama():
            servers = ["%s:%d" % (HOST, pt) for pt in ports[:3]]
            c = pylibmc.Client(servers, behaviors={"ketama": True})
            keys = ["ket:%d" % i for i in range(300)]
            for k in keys:
                c.set(k, k.encode())
            for k in keys:
                eq(c.get(k), k.encode())
            # every server holds some of the keys
            from pymemcache.client.base import Client
            counts = []
            for pt in ports[:3]:
                one = Client((HOST, pt))
                counts.append(sum(1 for k in keys if one.get(k) is not None))
            eq(sum(counts), len(keys))
            if min(counts) == 0:
                raise AssertionError("a server got no keys: %r" % counts)
        check("pylibmc ketama over 3 servers", ketama)


def bmemcached_checks():
    import bmemcached
    c = bmemcached.Client(["%s:%d" % (HOST, ports[0])])
    p = "bm:"
    check("bmemcached set/get", lambda: (eq(c.set(p + "a", "1"), True), eq(c.get(p + "a"), "1")))
    check("bmemcached bytes", lambda: (c.set(p + "b", b"\x00\xff"), eq(c.get(p + "b"), b"\x00\xff")))
    check("bmemcached add/replace", lambda: (eq(c.add(p + "a", "x"), False), eq(c.replace(p + "zz", "x"), False),
                                             eq(c.replace(p + "a", "2"), True)))
    check("bmemcached incr/decr", lambda: (c.set(p + "n", "10"), eq(c.incr(p + "n", 5), 15), eq(c.decr(p + "n", 20), 0)))
    check("bmemcached get_multi", lambda: (c.set_multi({p + "m1": "1", p + "m2": "2"}),
                                           eq(c.get_multi([p + "m1", p + "m2", p + "m3"]), {p + "m1": "1", p + "m2": "2"})))

    def cas():
        c.set(p + "cas", "1")
        v, token = c.gets(p + "cas")
        eq(v, "1")
        eq(c.cas(p + "cas", "2", token), True)
        eq(c.cas(p + "cas", "3", token), False)
    check("bmemcached gets/cas", cas)
    check("bmemcached delete", lambda: (eq(c.delete(p + "a"), True), eq(c.get(p + "a"), None)))
    check("bmemcached stats", lambda: eq(len(c.stats()) == 1, True))
    check("bmemcached flush", lambda: (c.set(p + "f", "1"), c.flush_all(), eq(c.get(p + "f"), None)))


for group in (pymemcache_checks, python_memcached_checks, pylibmc_checks, bmemcached_checks):
    try:
        group()
    except Exception as e:  # noqa: BLE001
        print("FAIL %s: %r" % (group.__name__, e))
        results["fail"] += 1
print("clients.py: %d passed, %d failed" % (results["pass"], results["fail"]))
sys.exit(1 if results["fail"] else 0)
