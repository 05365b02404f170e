"""The byte sequences kvdiff.py sends to both servers.

Each case is (name, {"send": [bytes | float pause], "binary": bool,
"marker": bool}). Keys are unique per case; every case starts after a
flush_all on a fresh connection. Cases where the server closes the
connection set marker=False (nothing after the close would be answered).
"""
import struct


def t(*chunks, marker=True):
    return {"send": list(chunks), "binary": False, "marker": marker}


def bin_req(op, key=b"", extras=b"", value=b"", opaque=0, cas=0, magic=0x80, blen=None, klen=None):
    body = extras + key + value
    return struct.pack(
        ">BBHBBHIIQ",
        magic,
        op,
        len(key) if klen is None else klen,
        len(extras),
        0,
        0,
        len(body) if blen is None else blen,
        opaque,
        cas,
    ) + body


def b(*chunks, marker=True):
    return {"send": list(chunks), "binary": True, "marker": marker}


def set_extras(flags=0, exp=0):
    return struct.pack(">II", flags, exp)


def cases():
    c = []
    add = lambda name, case: c.append((name, case))  # noqa: E731
    k250 = b"k" * 250
    k251 = b"k" * 251
    # --- storage commands
    add("set-get", t(b"set a 5 0 3\r\nabc\r\nget a\r\n"))
    add("set-noreply", t(b"set a 5 0 3 noreply\r\nabc\r\nget a\r\n"))
    add("gets", t(b"set a 1 0 1\r\nx\r\ngets a\r\n"))
    add("add-existing", t(b"set a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nget a\r\n"))
    add("add-new", t(b"add a 0 0 1\r\ny\r\nget a\r\n"))
    add("replace-missing", t(b"replace a 0 0 1\r\ny\r\nget a\r\n"))
    add("replace-existing", t(b"set a 0 0 1\r\nx\r\nreplace a 9 0 1\r\ny\r\nget a\r\n"))
    add("append-prepend", t(b"set a 3 0 1\r\nx\r\nappend a 0 0 2\r\nyz\r\nprepend a 7 0 1\r\nw\r\nget a\r\n"))
    add("append-missing", t(b"append a 0 0 1\r\nx\r\nprepend a 0 0 1\r\nx\r\n"))
    add("cas-missing", t(b"cas a 0 0 1 1\r\nx\r\n"))
    add("cas-bad", t(b"set a 0 0 1\r\nx\r\ncas a 0 0 1 999999\r\ny\r\nget a\r\n"))
    add("cas-noreply", t(b"cas a 0 0 1 1 noreply\r\nx\r\n"))
    add("multi-get", t(b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b c a\r\n"))
    add("key-250", t(b"set " + k250 + b" 0 0 1\r\nx\r\nget " + k250 + b"\r\n"))
    add("key-251-set", t(b"set " + k251 + b" 0 0 1\r\nx\r\n"))
    add("key-251-get", t(b"get " + k251 + b"\r\n"))
    add("key-251-delete", t(b"delete " + k251 + b"\r\n"))
    add("key-251-incr", t(b"incr " + k251 + b" 1\r\n"))
    add("key-251-touch", t(b"touch " + k251 + b" 1\r\n"))
    add("neg-flags", t(b"set a -1 0 1\r\nx\r\n"))
    add("neg-length", t(b"set a 0 0 -1\r\nx\r\n"))
    add("bad-length", t(b"set a 0 0 abc\r\nx\r\n"))
    add("len-2^31", t(b"set a 0 0 2147483648\r\nx\r\n"))
    add("len-2^32", dict(t(b"set a 0 0 4294967296\r\nx\r\n"), differs="memcached truncates 2^32 to 0",
                         expect=b"CLIENT_ERROR bad command line format\r\nERROR\r\n"))
    add("flags-2^32", dict(t(b"set a 4294967296 0 1\r\nx\r\n"), differs="memcached stores flags 2^32 as 0",
                           expect=b"CLIENT_ERROR bad command line format\r\nERROR\r\n"))
    add("flags-2^32-1", t(b"set a 4294967295 0 1\r\nx\r\nget a\r\n"))
    add("exptime-neg", t(b"set a 0 -1 1\r\nx\r\nget a\r\n"))
    add("exptime-bad", t(b"set a 0 abc 1\r\nx\r\n"))
    add("too-few-tokens", t(b"set a 0 0\r\n"))
    add("too-many-tokens", t(b"set a 0 0 1 2 3 4\r\nx\r\n"))
    add("bad-chunk", t(b"set a 0 0 1\r\nxyz\r\n", marker=False))
    add("bad-chunk-short-then-cmd", t(b"set a 0 0 3\r\nx\r\n", 0.1, b"get a\r\n", marker=False))
    add("too-large", t(b"set a 0 0 2000000\r\n" + b"x" * 2000000 + b"\r\nget a\r\n"))
    add("too-large-1mib", t(b"set a 0 0 1048576\r\n" + b"x" * 1048576 + b"\r\nget a\r\n"))
    add("too-large-removes-old", t(b"set a 0 0 1\r\nx\r\nset a 0 0 2000000\r\n" + b"x" * 2000000 + b"\r\nget a\r\n"))
    add("too-large-noreply", t(b"set a 0 0 2000000 noreply\r\n" + b"x" * 2000000 + b"\r\nget a\r\n"))
    add("near-max", t(b"set a 0 0 1000000\r\n" + b"y" * 1000000 + b"\r\nget a\r\n"))
    add("zero-length", t(b"set a 0 0 0\r\n\r\nget a\r\n"))
    add("binary-value", t(b"set a 0 0 4\r\n\x00\r\n\xff\r\nget a\r\n"))
    add("pipelined", t(b"set a 0 0 1\r\n1\r\nget a\r\nset b 0 0 1\r\n2\r\nget b\r\nget a b\r\ndelete a\r\nget a\r\n"))
    add("split-value", t(b"set a 0 0 10\r\n01234", 0.05, b"56789\r\n", 0.05, b"get a\r\n"))
    add("bare-lf", t(b"set a 0 0 1\nx\r\nget a\n"))
    # --- delete, incr, touch
    add("delete", t(b"set a 0 0 1\r\nx\r\ndelete a\r\ndelete a\r\n"))
    add("delete-noreply", t(b"set a 0 0 1\r\nx\r\ndelete a noreply\r\nget a\r\n"))
    add("delete-time-0", t(b"set a 0 0 1\r\nx\r\ndelete a 0\r\n"))
    add("delete-time-5", t(b"set a 0 0 1\r\nx\r\ndelete a 5\r\n"))
    add("delete-extra", t(b"delete a b c\r\n"))
    add("incr", t(b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\n"))
    add("decr-pads", t(b"set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\n"))
    add("incr-wrap", t(b"set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\nget n\r\n"))
    add("incr-grow", t(b"set n 0 0 1\r\n9\r\nincr n 1\r\nget n\r\n"))
    add("incr-nonnumeric", t(b"set n 0 0 3\r\nabc\r\nincr n 1\r\n"))
    add("incr-missing", t(b"incr n 1\r\ndecr n 1\r\n"))
    add("incr-bad-delta", t(b"set n 0 0 1\r\n1\r\nincr n abc\r\nincr n -1\r\nincr n 18446744073709551616\r\n"))
    add("incr-noreply", t(b"set n 0 0 1\r\n1\r\nincr n 1 noreply\r\nget n\r\n"))
    add("incr-spaces", t(b"set n 0 0 3\r\n 12\r\nincr n 1\r\n"))
    add("incr-empty", t(b"set n 0 0 0\r\n\r\nincr n 1\r\n"))
    add("touch", t(b"set a 0 0 1\r\nx\r\ntouch a 100\r\ntouch b 100\r\n"))
    add("touch-bad", t(b"set a 0 0 1\r\nx\r\ntouch a abc\r\n"))
    add("gat", t(b"set a 3 0 1\r\nx\r\ngat 100 a b\r\ngats 100 a\r\n"))
    add("gat-bad", t(b"gat abc a\r\n"))
    add("gat-huge", t(b"set a 0 0 1\r\nx\r\ngat 99999999999999999999 a\r\n"))
    add("gat-expire", t(b"set a 0 0 1\r\nx\r\ngat -1 a\r\nget a\r\n"))
    # --- other commands
    add("unknown", t(b"bogus\r\n"))
    add("upper", t(b"GET a\r\n"))
    add("empty-line", t(b"\r\n"))
    add("get-no-key", t(b"get\r\n"))
    add("stats-bogus", t(b"stats bogus\r\n"))
    add("stats-reset", t(b"stats reset\r\n"))
    add("version-extra", t(b"version x\r\n"))
    add("verbosity", t(b"verbosity 1\r\nverbosity\r\nverbosity 0 noreply\r\n"))
    add("flush-bad", t(b"flush_all abc\r\n"))
    add("flush-noreply", t(b"set a 0 0 1\r\nx\r\nflush_all noreply\r\nget a\r\n"))
    add("flush-delay", t(b"set a 0 0 1\r\nx\r\nflush_all 10\r\nget a\r\n"))
    add("flush-neg", t(b"flush_all -1\r\n"))
    add("quit", t(b"quit\r\n", marker=False))
    add("shutdown-disabled", t(b"shutdown\r\n"))
    add("many-keys", t(b"get " + b" ".join(b"k%d" % i for i in range(5000)) + b"\r\n"))
    add("long-line", t(b"x" * 4096, 0.1, marker=False))
    add("long-get-line", t(b"get " + b"a" * 3000 + b"\r\n"))
    add("garbage", t(b"\x01\x02\x03\r\n"))
    add("control-in-key", t(b"set a\x01b 0 0 1\r\nx\r\n"))
    # --- meta
    add("mn", t(b"mn\r\n"))
    add("ms-mg", t(b"ms a 2\r\nhi\r\nmg a v\r\n"))
    add("mg-miss", t(b"mg a v\r\nmg a\r\nmg a q\r\n"))
    add("mg-flags", t(b"ms a 2 F5 T100\r\nhi\r\nmg a s v f t k O123\r\n"))
    add("mg-hit-before", t(b"ms a 2\r\nhi\r\nmg a h l\r\nmg a h l\r\n"))
    add("mg-no-bump", t(b"ms a 2\r\nhi\r\nmg a u h\r\nmg a h\r\n"))
    add("ms-modes", t(b"ms a 1 ME\r\nx\r\nms a 1 ME\r\ny\r\nms a 1 MA\r\nz\r\nms a 1 MP\r\nw\r\nms b 1 MR\r\nx\r\nmg a v\r\n"))
    add("ms-noreply", t(b"ms a 1 q\r\nx\r\nms a 1 q ME\r\nx\r\nmg a v\r\n"))
    add("ms-bad-mode", t(b"ms a 1 MX\r\nx\r\n"))
    add("ms-cas", t(b"ms a 1 C999999\r\nx\r\nms a 1\r\nx\r\nms a 1 C1\r\ny\r\n"))
    add("ms-too-large", t(b"ms a 2000000\r\n" + b"x" * 2000000 + b"\r\nmg a v\r\n"))
    add("ms-bad-chunk", t(b"ms a 1\r\nxyz\r\n", marker=False))
    add("ms-no-length", t(b"ms a\r\n"))
    add("md", t(b"ms a 1\r\nx\r\nmd a\r\nmd a\r\nmd a q\r\n"))
    add("md-stale", t(b"ms a 1 T100\r\nx\r\nmd a I T30\r\nmg a v c t\r\nmg a v\r\n"))
    add("md-cas", t(b"ms a 1\r\nx\r\nmd a C1\r\n"))
    add("ma", t(b"ma n\r\nma n N0 J10 v\r\nma n v\r\nma n MD D3 v\r\nma n M- D100 v t\r\n"))
    add("ma-nonnum", t(b"ms n 1\r\nx\r\nma n\r\n"))
    add("ma-noreply", t(b"ms n 1\r\n5\r\nma n q\r\nmg n v\r\n"))
    add("mg-vivify", t(b"mg a N30 v c\r\nmg a N30 v\r\nmg a v\r\n"))
    add("mg-recache", t(b"ms a 1 T10\r\nx\r\nmg a R30 v\r\nmg a R30 v\r\n"))
    add("mg-touch", t(b"ms a 1\r\nx\r\nmg a T30 t v\r\n"))
    add("mg-base64", t(b"ms Zm9v 3 b\r\nbar\r\nmg Zm9v b v k\r\nmg foo v\r\n"))
    add("mg-bad-base64", t(b"mg !!!! b v\r\n"))
    add("mg-opaque-long", t(b"mg a O" + b"x" * 40 + b"\r\n"))
    add("mg-key-251", t(b"mg " + k251 + b" v\r\n"))
    add("mg-no-key", t(b"mg\r\n"))
    add("mg-dup-flags", t(b"ms a 1\r\nx\r\nmg a v v k k\r\n"))
    add("mg-bad-flag", t(b"ms a 1\r\nx\r\nmg a !\r\n"))
    add("me", t(b"ms a 1\r\nx\r\nme a\r\nme b\r\n"))
    add("ms-invalidate", t(b"ms a 1\r\nx\r\nmg a c\r\nms a 1 I C1\r\ny\r\nmg a v\r\n"))
    # --- binary
    add("bin-noop", b(bin_req(0x0A, opaque=7)))
    add("bin-version", b(bin_req(0x0B, opaque=7)))
    add("bin-set-get", b(bin_req(0x01, b"a", set_extras(5), b"abc", opaque=1), bin_req(0x00, b"a", opaque=2),
                         bin_req(0x0C, b"a", opaque=3)))
    add("bin-get-miss", b(bin_req(0x00, b"zz", opaque=2), bin_req(0x0C, b"zz", opaque=3)))
    add("bin-getq", b(bin_req(0x09, b"zz", opaque=2), bin_req(0x01, b"a", set_extras(), b"v"), bin_req(0x0D, b"a", opaque=4)))
    add("bin-add-replace", b(bin_req(0x03, b"a", set_extras(), b"v"), bin_req(0x02, b"a", set_extras(), b"v"),
                             bin_req(0x03, b"b", set_extras(), b"v"), bin_req(0x02, b"b", set_extras(), b"v")))
    add("bin-quiet-stores", b(bin_req(0x11, b"a", set_extras(), b"v"), bin_req(0x12, b"a", set_extras(), b"v"),
                              bin_req(0x13, b"q", set_extras(), b"v")))
    add("bin-delete", b(bin_req(0x01, b"a", set_extras(), b"v"), bin_req(0x04, b"a"), bin_req(0x04, b"a"),
                        bin_req(0x14, b"a")))
    add("bin-incr", b(bin_req(0x05, b"n", struct.pack(">QQI", 5, 10, 0)), bin_req(0x05, b"n", struct.pack(">QQI", 5, 10, 0)),
                      bin_req(0x06, b"n", struct.pack(">QQI", 100, 10, 0)),
                      bin_req(0x05, b"m", struct.pack(">QQI", 1, 0, 0xFFFFFFFF))))
    add("bin-incr-nonnum", b(bin_req(0x01, b"n", set_extras(), b"x"), bin_req(0x05, b"n", struct.pack(">QQI", 1, 0, 0))))
    add("bin-append", b(bin_req(0x01, b"a", set_extras(), b"x"), bin_req(0x0E, b"a", b"", b"y"), bin_req(0x0F, b"a", b"", b"w"),
                        bin_req(0x0C, b"a"), bin_req(0x0E, b"zz", b"", b"y")))
    add("bin-cas", b(bin_req(0x01, b"a", set_extras(), b"x"), bin_req(0x01, b"a", set_extras(), b"y", cas=12345),
                     bin_req(0x01, b"zz", set_extras(), b"y", cas=12345)))
    add("bin-touch-gat", b(bin_req(0x01, b"a", set_extras(3), b"x"), bin_req(0x1C, b"a", struct.pack(">I", 100)),
                           bin_req(0x1D, b"a", struct.pack(">I", 100)), bin_req(0x23, b"a", struct.pack(">I", 100)),
                           bin_req(0x1C, b"zz", struct.pack(">I", 100)), bin_req(0x1E, b"zz", struct.pack(">I", 100))))
    add("bin-flush", b(bin_req(0x01, b"a", set_extras(), b"x"), bin_req(0x08), bin_req(0x00, b"a")))
    add("bin-unknown-op", b(bin_req(0x7F, opaque=9)))
    add("bin-key-too-long", b(bin_req(0x00, k251)))
    add("bin-set-no-extras", b(bin_req(0x01, b"a", b"", b"x")))
    add("bin-get-with-extras", b(bin_req(0x00, b"a", b"1234")))
    add("bin-too-large", b(bin_req(0x01, b"a", set_extras(), b"x" * 2000000), bin_req(0x00, b"a")))
    add("bin-verbosity", b(bin_req(0x1B, b"", struct.pack(">I", 1))))
    add("bin-sasl-list", b(bin_req(0x20)))
    add("bin-quit", b(bin_req(0x07), marker=False))
    add("bin-quitq", b(bin_req(0x17), marker=False))
    add("bin-bad-magic-after", b(bin_req(0x0A), bin_req(0x0A, magic=0x42), marker=False))
    add("bin-split", b(*[bytes([x]) for x in bin_req(0x01, b"a", set_extras(), b"xy")] + [bin_req(0x00, b"a")]))
    add("bin-stat-bogus", b(bin_req(0x10, b"bogus")))
    add("bin-getk", b(bin_req(0x01, b"a", set_extras(), b"x"), bin_req(0x0C, b"a"), bin_req(0x0D, b"zz"), bin_req(0x0C, b"zz")))
    return c
