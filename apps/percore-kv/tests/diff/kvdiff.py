#!/usr/bin/env python3
"""Sends the same byte sequences to memcached and to percore-kv and compares
the replies, ignoring only what differs by nature (CAS uniques, versions,
times, pids).

Usage: kvdiff.py REF_PORT TEST_PORT [CASES_FILE]

Each case (see cases.py) runs on a fresh connection. A text case is followed
by `mn\\r\\n`, a binary one by a NOOP with a marker opaque, so the reader
knows when the server has answered everything (or sees the connection close).
Exit status 0 when every case matches; the diff of every mismatch is printed.
"""
import os
import re
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases as casemod  # noqa: E402

MARK_TEXT = b"mn\r\n"
MARK_TEXT_REPLY = b"MN\r\n"
MARK_OPAQUE = 0x5EEDF00D
MARK_BIN = struct.pack(">BBHBBHIIQ", 0x80, 0x0A, 0, 0, 0, 0, 0, MARK_OPAQUE, 0)


def talk(port, chunks, binary, marker=True, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    got = b""
    closed = False
    # NOTE: a case may send `mn` itself; the marker's MN is the one after
    # all of the case's own.
    need = 1 + sum(c.count(MARK_TEXT) for c in chunks if isinstance(c, bytes))
    try:
        for c in chunks:
            if isinstance(c, float):
                time.sleep(c)
                continue
            s.sendall(c)
        if marker:
            s.sendall(MARK_BIN if binary else MARK_TEXT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if marker and done(got, binary, need):
                break
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not d:
                closed = True
                break
            got += d
        if not marker and not closed:
            # no marker: wait briefly for a close
            s.settimeout(0.3)
            try:
                d = s.recv(65536)
                if not d:
                    closed = True
                else:
                    got += d
            except (socket.timeout, ConnectionResetError):
                pass
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        s.close()
    if marker and not closed and done(got, binary, need):
        got = got[: -(24 if binary else 4)]
    return got, closed


def done(got, binary, need=1):
    if binary:
        return len(got) >= 24 and got[-24:-12][0] == 0x81 and struct.unpack(">I", got[-12:-8])[0] == MARK_OPAQUE
    return got.endswith(MARK_TEXT_REPLY) and got.count(MARK_TEXT_REPLY) >= need


def norm_text(b):
    t = b.decode("latin-1")
    t = re.sub(r"^(VALUE \S+ \d+ \d+) \d+", r"\1 <cas>", t, flags=re.M)
    t = re.sub(r"^VERSION .*$", "VERSION <v>", t, flags=re.M)
    # meta flags: c<cas>, and cas= in me
    t = re.sub(r"(?<=[ ])c\d+(?=[ \r])", "c<cas>", t)
    t = re.sub(r"cas=\d+", "cas=<cas>", t)
    t = re.sub(r"(?<=[ ])l\d+(?=[ \r])", "l<la>", t)
    t = re.sub(r"la=\d+", "la=<la>", t)
    t = re.sub(r"cls=\d+", "cls=<cls>", t)
    t = re.sub(r"size=\d+", "size=<size>", t)
    return t


def norm_bin(b):
    """Binary responses, one per line, CAS zeroed, version bodies masked."""
    out = []
    i = 0
    while i + 24 <= len(b):
        magic, op, klen, elen, dt, status, blen, opaque, cas = struct.unpack(">BBHBBHIIQ", b[i : i + 24])
        body = b[i + 24 : i + 24 + blen]
        if op == 0x0B:
            body = b"<version>"
        out.append("magic=%02x op=%02x klen=%d elen=%d status=%04x opaque=%08x cas=%s body=%r"
                   % (magic, op, klen, elen, status, opaque, "set" if cas else "0", body))
        i += 24 + blen
    if i < len(b):
        out.append("trailing=%r" % b[i:])
    return "\n".join(out)


def main():
    ref, test = int(sys.argv[1]), int(sys.argv[2])
    fails = 0
    n = 0
    deliberate = []
    for name, case in casemod.cases():
        binary = case.get("binary", False)
        marker = case.get("marker", True)
        for port in (ref, test):
            talk(port, [b"flush_all\r\n"] if not binary else [struct.pack(">BBHBBHIIQ", 0x80, 0x08, 0, 0, 0, 0, 0, 0, 0)], binary)
        a, ac = talk(ref, case["send"], binary, marker)
        b, bc = talk(test, case["send"], binary, marker)
        na = norm_bin(a) if binary else norm_text(a)
        nb = norm_bin(b) if binary else norm_text(b)
        n += 1
        if "differs" in case:
            # A deliberate difference (documented in src/proto/mod.rs): the
            # server must give the reply written in the case instead.
            want = case["expect"].decode("latin-1")
            if nb != want:
                fails += 1
                print("MISMATCH %s (deliberate difference: %s)" % (name, case["differs"]))
                print("  expected: %r\n  percore-kv: %r" % (want, nb))
            else:
                deliberate.append(name)
            continue
        if na != nb or ac != bc:
            fails += 1
            print("MISMATCH %s" % name)
            print("  memcached (closed=%s):\n    %s" % (ac, na.replace("\n", "\n    ")))
            print("  percore-kv (closed=%s):\n    %s" % (bc, nb.replace("\n", "\n    ")))
        elif os.environ.get("KVDIFF_VERBOSE"):
            print("same %s" % name)
    print("kvdiff: %d cases, %d match (%d of them deliberate, documented differences: %s), %d differ"
          % (n, n - fails, len(deliberate), ", ".join(deliberate) or "none", fails))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
