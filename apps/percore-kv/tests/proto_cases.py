#!/usr/bin/env python3
"""Regenerates proto_cases.txt: each case's bytes sent to a fresh memcached
1.6.18 (`memcached -p PORT -U 0 -l 127.0.0.1`, default settings), its reply
recorded. tests/proto_cases.rs replays every case through a fresh Session and
compares byte for byte.

Usage: python3 proto_cases.py [path/to/memcached] > proto_cases.txt
Cases avoid what differs by nature (times, pids, versions) and the limits
this server deliberately draws elsewhere (see proto/mod.rs).
"""
import os, socket, subprocess, sys, time

K251 = "k" * 251
K250 = "k" * 250

CASES = [
    # storage and retrieval
    ("set/get", "set a 0 0 1\r\nx\r\nget a\r\n"),
    ("gets", "set a 5 0 2\r\nhi\r\ngets a\r\n"),
    ("multiget", "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b c a\r\n"),
    ("get miss", "get nope\r\n"),
    ("lf only", "set a 0 0 1\nx\nget a\n"),
    ("key 250", "set " + K250 + " 0 0 1\r\nx\r\nget " + K250 + "\r\n"),
    ("key 251 set", "set " + K251 + " 0 0 1\r\nx\r\n"),
    # (memcached also drops replies queued before the get in the same read;
    # this server drops only the get's own hits: see proto/mod.rs.)
    ("key 251 get", "get a " + K251 + " a\r\n"),
    ("tab in key", "set a\tb 0 0 1\r\nx\r\nget a\tb\r\n"),
    ("nul ends line", "set a 0 0 1\r\nx\r\nget a\x00zzz\r\n"),
    ("add", "add a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\nget a\r\n"),
    ("replace", "replace a 0 0 1\r\nx\r\nset a 0 0 1\r\nx\r\nreplace a 3 0 1\r\ny\r\nget a\r\n"),
    ("append prepend", "append a 0 0 1\r\nx\r\nset a 7 0 1\r\nm\r\nappend a 0 0 1\r\nz\r\nprepend a 9 0 1\r\na\r\nget a\r\n"),
    ("cas", "set a 0 0 1\r\nx\r\ngets a\r\ncas a 0 0 1 999\r\ny\r\ncas a 0 0 1 1\r\nz\r\ncas b 0 0 1 1\r\nz\r\nget a\r\n"),
    ("cas wrong tokens", "cas a 0 0 1\r\nx\r\n"),
    ("noreply", "set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nget a\r\n"),
    ("noreply hides errors", "set b 0 0 z noreply\r\nset " + K251 + " 0 0 1 noreply\r\nget b\r\n"),
    ("bad data chunk", "set a 0 0 1\r\nab\r\nget a\r\n"),
    ("bad data chunk long", "set a 0 0 1\r\nxyz\r\nget a\r\n"),
    ("bad data chunk noreply", "set a 0 0 1 noreply\r\nab\r\nget a\r\n"),
    ("negative length", "set a 0 0 -1\r\nx\r\n"),
    ("length 2^31", "set a 0 0 2147483648\r\nx\r\n"),
    ("bad flags", "set a -1 0 1\r\nx\r\nset a x 0 1\r\nx\r\n"),
    ("bad exptime", "set a 0 x 1\r\nx\r\n"),
    ("negative exptime", "set a 0 -1 1\r\nx\r\nget a\r\n"),
    ("too large swallowed", "set a 0 0 2000000\r\n" + "x" * 2000000 + "\r\nget a\r\n"),
    ("too large removes old", "set a 0 0 1\r\nx\r\nset a 0 0 1048576\r\n" + "y" * 1048576 + "\r\nget a\r\n"),
    ("too large noreply", "set a 0 0 2000000 noreply\r\n" + "x" * 2000000 + "\r\nget a\r\n"),
    ("wrong token counts", "set a 0 0\r\nset a 0 0 1 noreply extra\r\nget\r\nincr a\r\ntouch a\r\n"),
    ("upper case", "GET a\r\nSET a 0 0 1\r\n"),
    ("unknown", "bogus\r\nx\r\n\r\n \r\n"),
    ("gat", "set a 0 0 1\r\nx\r\ngat 100 a b\r\ngats 0 a\r\n"),
    ("gat bad", "gat x a\r\ngat 10\r\ngat\r\n"),
    ("touch", "touch a 10\r\nset a 0 0 1\r\nx\r\ntouch a 10\r\ntouch a x\r\ntouch a 10 noreply\r\n"),
    # arithmetic
    ("incr decr", "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\n"),
    ("decr pads", "set n 0 0 2\r\n10\r\ndecr n 1\r\nget n\r\n"),
    ("incr wraps", "set n 0 0 20\r\n18446744073709551615\r\nincr n 1\r\nget n\r\n"),
    ("incr errors", "incr n 1\r\nset n 0 0 1\r\nx\r\nincr n 1\r\nincr n -1\r\nincr n x\r\nincr n 18446744073709551616\r\n"),
    ("incr noreply", "set n 0 0 1\r\n1\r\nincr n 1 noreply\r\nget n\r\n"),
    # delete
    ("delete", "delete a\r\nset a 0 0 1\r\nx\r\ndelete a\r\nget a\r\n"),
    ("delete forms", "set a 0 0 1\r\nx\r\ndelete a 0\r\ndelete a 1\r\ndelete a noreply\r\ndelete a 0 noreply\r\ndelete a b c\r\ndelete a x y z\r\n"),
    # misc
    ("flush_all", "set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\n"),
    ("flush_all forms", "flush_all abc\r\nflush_all -1\r\nflush_all 0 noreply\r\nflush_all noreply\r\nflush_all 1 2\r\nflush_all 1 2 3\r\n"),
    ("verbosity", "verbosity 1\r\nverbosity\r\nverbosity x\r\nverbosity 1 noreply\r\nverbosity 1 2 3\r\n"),
    ("shutdown disabled", "shutdown\r\n"),
    ("quit", "quit\r\nget a\r\n"),
    ("quit args", "quit now\r\nget a\r\n"),
    ("http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("stats bogus", "stats bogus\r\n"),
    ("stats detail", "stats detail\r\nstats detail on\r\nstats detail off\r\nstats detail x\r\n"),
    ("stats sizes", "stats sizes\r\n"),
    ("stats reset", "stats reset\r\n"),
    ("stats cachedump", "stats cachedump\r\nstats cachedump 1 x\r\nstats cachedump 99 1\r\n"),
    ("long line closes", "x" * 3000),
    ("pipelined", "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a\r\nget b\r\ndelete a\r\nget a b\r\n"),
    # meta
    ("mn", "mn\r\n"),
    ("ms mg", "ms m1 2 T0 F5\r\nhi\r\nmg m1 v f t s c k O123 h l\r\nmg m1 h\r\nmg m1\r\n"),
    ("mg miss", "mg nope\r\nmg nope q\r\nmg nope k O1 v\r\nmn\r\n"),
    ("mg errors", "ms m1 2\r\nhi\r\nmg m1 v v\r\nmg m1 x\r\nmg m1 T\r\nmg m1 Tx\r\nmg m1 N\r\nmg m1 R1x\r\nmg " + K251 + " v\r\nmg\r\n"),
    ("mg opaque too long", "mg a O" + "x" * 40 + "\r\nms a 1\r\nx\r\nmg a v O" + "x" * 40 + "\r\n"),
    ("mg too many flags", "mg a a b c d e f g h i j k l m n o p q r s t u\r\nmg a s t c f l h k O1 v q u\r\n"),
    ("ms modes", "ms a 1 MX\r\nx\r\nms a 1 ME\r\nx\r\nms a 1 ME\r\ny\r\nms a 1 MA\r\nz\r\nms a 1 MP\r\nw\r\nms b 1 MR\r\nx\r\nms b 1 MA\r\nx\r\nmg a v\r\n"),
    ("ms errors", "ms a\r\nms a S2\r\nhi\r\nms a 2 F-1\r\nhi\r\nms a abc\r\nhi\r\nms a -1\r\nms a 2 MXY\r\nhi\r\nms a 2 q q\r\nhi\r\nmn\r\n"),
    ("ms flags echo", "ms a 2 c k O9 T0\r\nhi\r\nms a 2 q\r\nhi\r\nms a 2 ME q O1\r\nhi\r\nmn\r\n"),
    ("ms cas", "ms a 1 c\r\nx\r\nms a 1 C99\r\ny\r\nms a 1 C1 c\r\nz\r\nms b 1 C1\r\nz\r\nms b 1 C1 MR\r\nz\r\nmg a v c\r\n"),
    ("ms bad chunk", "ms a 1\r\nxy\r\nmg a v\r\n"),
    ("ms too large", "ms a 1\r\nx\r\nms a 2000000 T0\r\n" + "x" * 2000000 + "\r\nmg a v\r\n"),
    ("md", "md a\r\nms a 1\r\nx\r\nmd a q\r\nmd a q\r\nmd a k O5\r\nmg a\r\n"),
    ("md cas", "ms a 1 c\r\nx\r\nmd a C99\r\nmd a C1\r\nmd a\r\n"),
    ("md errors", "md a x\r\nmd a T1 T2\r\nmd " + K251 + "\r\nmd\r\n"),
    ("md invalidate", "ms a 1 T100\r\nx\r\nmd a I T30\r\nmg a v c t\r\nmg a v c\r\nms a 1 C2 I\r\ny\r\nmg a v c\r\n"),
    ("ma", "ma n\r\nma n N0 J10 v\r\nma n v MD D3 t c\r\nma n q\r\nma n v\r\nma n MX\r\nma n D-1\r\nmg n v\r\n"),
    ("ma non numeric", "ms n 1\r\nx\r\nma n\r\nma n C99\r\nma m q\r\nmn\r\n"),
    ("ma modes", "ms n 2\r\n10\r\nma n M+ v\r\nma n M- D5 v\r\nma n MI v\r\nma n MD v D100\r\nma n k O1\r\n"),
    ("vivify and tokens", "mg vv N30 v c t\r\nmg vv N30 v c t\r\nmd vv I T30\r\nmg vv v c\r\nmg vv v c\r\nmg vv R30 v t\r\n"),
    ("recache", "ms r 1 T10\r\nx\r\nmg r R30 v\r\nmg r R30 v\r\nmg r v\r\n"),
    ("base64 keys", "mg bWlzc2luZw== b k v\r\nms Zm9v 2 b k c\r\nhi\r\nmg Zm9v b k v\r\nmg foo v\r\nmg ### b\r\nmd Zm9v b k\r\nmg foo v\r\n"),
    ("me", "me a\r\nms a 1\r\nx\r\nme a\r\nmg a\r\nme a\r\nme\r\nme " + K251 + "\r\nme Zm9v b\r\n"),
    ("meta unknown", "mx a\r\nm\r\nmg\r\nms\r\nmd\r\nma\r\n"),
    ("mg touch", "ms a 1 T100\r\nx\r\nmg a T0 t\r\nmg a t\r\n"),
    ("mg no bump", "ms a 1\r\nx\r\nmg a u h\r\nmg a h\r\nmg a h\r\n"),
]


def B(opcode, key=b"", ext=b"", value=b"", cas=0, opaque=0xAABBCCDD, keylen=None, extlen=None, bodylen=None, magic=0x80):
    """One binary request (as text, one char per byte, for CASES)."""
    import struct
    kl = len(key) if keylen is None else keylen
    el = len(ext) if extlen is None else extlen
    bl = len(ext) + len(key) + len(value) if bodylen is None else bodylen
    h = struct.pack(">BBHBBHIIQ", magic, opcode, kl, el, 0, 0, bl, opaque, cas)
    return (h + ext + key + value).decode("latin-1")


def SETX(flags=0, exp=0):
    import struct
    return struct.pack(">II", flags, exp)


def INCX(delta, initial=0, exp=0xFFFFFFFF):
    import struct
    return struct.pack(">QQI", delta, initial, exp)


def EXP(e):
    import struct
    return struct.pack(">I", e)


CASES += [
    ("bin get miss", B(0x00, b"a")),
    ("bin getk miss", B(0x0C, b"a")),
    ("bin getq miss then noop", B(0x09, b"a") + B(0x0D, b"b") + B(0x0A)),
    ("bin set get", B(0x01, b"a", SETX(7), b"hello") + B(0x00, b"a") + B(0x0C, b"a")),
    ("bin setq getq", B(0x11, b"a", SETX(), b"v") + B(0x09, b"a") + B(0x0D, b"a") + B(0x0A)),
    ("bin add replace", B(0x02, b"a", SETX(), b"1") + B(0x02, b"a", SETX(), b"2") + B(0x03, b"b", SETX(), b"3") + B(0x03, b"a", SETX(), b"4") + B(0x00, b"a")),
    ("bin quiet errors", B(0x12, b"a", SETX(), b"1") + B(0x12, b"a", SETX(), b"2") + B(0x13, b"b", SETX(), b"3") + B(0x0A)),
    ("bin cas", B(0x01, b"a", SETX(), b"1") + B(0x01, b"a", SETX(), b"2", cas=99) + B(0x01, b"a", SETX(), b"3", cas=1) + B(0x01, b"b", SETX(), b"3", cas=1) + B(0x02, b"b", SETX(), b"3", cas=1)),
    ("bin delete", B(0x04, b"a") + B(0x01, b"a", SETX(), b"1") + B(0x04, b"a", cas=5) + B(0x14, b"a") + B(0x14, b"a") + B(0x0A)),
    ("bin incr", B(0x05, b"n", INCX(1)) + B(0x05, b"n", INCX(1, 10, 0)) + B(0x05, b"n", INCX(5)) + B(0x06, b"n", INCX(100)) + B(0x15, b"n", INCX(1)) + B(0x00, b"n")),
    ("bin incr non numeric", B(0x01, b"a", SETX(), b"x") + B(0x05, b"a", INCX(1)) + B(0x05, b"a", INCX(1), cas=77)),
    ("bin append prepend", B(0x0E, b"a", value=b"x") + B(0x01, b"a", SETX(3), b"m") + B(0x0E, b"a", value=b"z") + B(0x0F, b"a", value=b"a") + B(0x19, b"a", value=b"!") + B(0x00, b"a")),
    ("bin version noop", B(0x0B) + B(0x0A)),
    ("bin quit", B(0x07) + B(0x0A)),
    ("bin quitq", B(0x17) + B(0x0A)),
    ("bin flush", B(0x01, b"a", SETX(), b"1") + B(0x08) + B(0x00, b"a") + B(0x18, ext=EXP(0)) + B(0x0A)),
    ("bin touch gat", B(0x1C, b"a", EXP(10)) + B(0x01, b"a", SETX(5), b"v") + B(0x1C, b"a", EXP(10)) + B(0x1D, b"a", EXP(10)) + B(0x23, b"a", EXP(10)) + B(0x1E, b"b", EXP(1)) + B(0x24, b"b", EXP(1)) + B(0x1E, b"a", EXP(1)) + B(0x0A)),
    ("bin gatk miss", B(0x23, b"zz", EXP(10))),
    ("bin stat groups", B(0x10, b"bogus") + B(0x10, b"sizes") + B(0x10, b"detail x") + B(0x10, b"detail on") + B(0x10, b"reset")),
    ("bin verbosity unknown", B(0x1B, value=EXP(1)) + B(0x0A)),
    # (memcached over-swallows by extlen + keylen after an unknown opcode
    # with extras or a key: see proto/mod.rs.)
    ("bin unknown opcode swallows", B(0x50, value=b"garbage!") + B(0x0A)),
    ("bin sasl", B(0x20) + B(0x21, b"PLAIN", value=b"\x00u\x00p") + B(0x0A)),
    ("bin bad magic later", B(0x0A) + B(0x0A, magic=0x81) + B(0x0A)),
    ("bin keylen over body", B(0x00, b"abc", bodylen=1)),
    ("bin key 251", B(0x00, b"k" * 251)),
    ("bin get with extras", B(0x00, b"a", ext=EXP(1))),
    ("bin set no extras", B(0x01, b"a", value=b"x")),
    ("bin noop with body", B(0x0A, value=b"x")),
    ("bin too large", B(0x01, b"a", SETX(), b"1") + B(0x01, b"a", SETX(), b"y" * 2000000) + B(0x00, b"a")),
    ("bin too large quiet", B(0x11, b"a", SETX(), b"y" * 2000000) + B(0x0A)),
    ("bin then text stays binary", B(0x0A) + "get a\r\n"),
]


def run(memcached, port, data):
    p = subprocess.Popen([memcached, "-u", "root", "-p", str(port), "-U", "0", "-l", "127.0.0.1"])
    try:
        for _ in range(100):
            try:
                s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.02)
        s.sendall(data)
        s.settimeout(0.3)
        out, closed = b"", False
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    closed = True
                    break
                out += d
        except socket.timeout:
            pass
        s.close()
        return out, closed
    finally:
        p.kill()
        p.wait()


def esc(b):
    r = []
    for c in b:
        if c == 0x5C:
            r.append("\\\\")
        elif c == 0x0D:
            r.append("\\r")
        elif c == 0x0A:
            r.append("\\n")
        elif c == 0x09:
            r.append("\\t")
        elif 0x20 <= c < 0x7F:
            r.append(chr(c))
        else:
            r.append("\\x%02x" % c)
    return "".join(r)


def compress(s):
    # Long runs of one byte are written as {byte*count} to keep the file small.
    import re
    return re.sub(r"(x|y|k){200,}", lambda m: "{%s*%d}" % (m.group(1), len(m.group(0))), s)


if __name__ == "__main__":
    memcached = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/memcached"
    port = 22199
    print("# Generated by proto_cases.py against memcached 1.6.18; replayed by proto_cases.rs.")
    print("# > request, < reply, ! closed (the server closed the connection).")
    for name, req in CASES:
        data = req.encode("latin-1")
        out, closed = run(memcached, port, data)
        print("")
        print("# " + name)
        print("> " + compress(esc(data)))
        print("< " + compress(esc(out)))
        if closed:
            print("! closed")
