#!/usr/bin/env python3
"""Abuse checks against the percore-kv binary in its own process (ci/kv-abuse.sh).

    binary.py flood BIN PORT [CONNS]   10,000 concurrent connections at -c 10000 are
                                       served; 20 more get memcached's refusal;
                                       the held ones are still served.
    binary.py sigterm BIN PORT         SIGTERM while 500 clients are mid-request:
                                       exit 0 within 15 s, every client's bytes a
                                       whole number of replies.

Loopback only; every wait is bounded.
"""
import os, resource, signal, socket, subprocess, sys, threading, time

REFUSAL = b"ERROR Too many open connections\r\n"


def start(bin_, port, *args):
    p = subprocess.Popen([bin_, "-p", str(port), "-l", "127.0.0.1", "-t", "2", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    sys.exit(f"abuse: {bin_} did not start: {p.stderr.read().decode()}")


def conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until(s, end):
    got = b""
    while not got.endswith(end):
        b = s.recv(65536)
        if not b:
            raise AssertionError(f"closed early after {got!r}")
        got += b
    return got


def read_to_close(s):
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b
    except ConnectionResetError:
        return got


def flood(bin_, port, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 200:
        print(f"SKIPPED flood: the hard descriptor limit {hard} is below {n + 200}")
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"flood: raised this process's soft descriptor limit {soft} -> {hard} (the hard limit); "
          f"the server raises its own to -c + 64")
    p = start(bin_, port, "-c", str(n))
    try:
        t0 = time.time()
        held = []
        for _ in range(n):
            s = conn(port)
            s.sendall(b"mn\r\n")
            assert read_until(s, b"\r\n") == b"MN\r\n"
            held.append(s)
        opened = time.time() - t0
        for _ in range(20):
            s = conn(port)
            got = read_to_close(s)
            assert got == REFUSAL, got
            s.close()
        t0 = time.time()
        for s in held:
            s.sendall(b"mn\r\n")
        for s in held:
            assert read_until(s, b"\r\n") == b"MN\r\n"
        served = time.time() - t0
        probe = held[0]
        probe.sendall(b"stats\r\n")
        stats = read_until(probe, b"END\r\n").decode()
        assert f"STAT curr_connections {n}\r\n" in stats, stats
        assert "STAT rejected_connections 20\r\n" in stats, stats
        for s in held:
            s.close()
        time.sleep(0.5)
        s = conn(port)
        s.sendall(b"mn\r\n")
        assert read_until(s, b"\r\n") == b"MN\r\n"
        s.close()
        print(f"flood: {n} concurrent connections opened in {opened:.2f}s, a request on each in {served:.2f}s; "
              f"20 past -c refused with {REFUSAL!r}; still serving")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0, "exit status after SIGTERM"


CLIENTS, THREADS, DEPTH = 500, 10, 4
VALUE = b"v" * 100
ONE = b"VALUE k 0 100\r\n" + VALUE + b"\r\nEND\r\n"


def sigterm(bin_, port):
    p = start(bin_, port, "-c", "1024")
    s = conn(port)
    s.sendall(b"set k 0 0 100\r\n" + VALUE + b"\r\n")
    assert read_until(s, b"\r\n") == b"STORED\r\n"
    s.close()
    results, rounds, errors = [], [0], []
    lock = threading.Lock()

    def client_thread():
        try:
            socks = [conn(port) for _ in range(CLIENTS // THREADS)]
            got = [b""] * len(socks)
            sent = [0] * len(socks)
            open_ = [True] * len(socks)
            while any(open_):
                for i, s in enumerate(socks):
                    if open_[i]:
                        try:
                            s.sendall(b"get k\r\n" * DEPTH)
                            sent[i] += DEPTH
                        except OSError:
                            open_[i] = False
                for i, s in enumerate(socks):
                    while open_[i] and len(got[i]) < sent[i] * len(ONE):
                        try:
                            b = s.recv(65536)
                        except OSError:
                            b = b""
                        if not b:
                            open_[i] = False
                        got[i] += b
                with lock:
                    rounds[0] += 1
            with lock:
                results.extend(got)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client_thread) for _ in range(THREADS)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while rounds[0] < 20 * THREADS and time.time() < deadline:
        time.sleep(0.01)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit("sigterm: the server did not exit within 15 s")
    took = time.time() - t0
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert rc == 0, f"exit status {rc}: {p.stderr.read().decode()}"
    assert len(results) == CLIENTS, len(results)
    for i, g in enumerate(results):
        whole = len(g) % len(ONE) == 0 and all(g[j:j + len(ONE)] == ONE for j in range(0, len(g), len(ONE)))
        assert whole, f"client {i}: a cut reply ({len(g)} bytes, tail {g[-60:]!r})"
    replies = sum(len(g) // len(ONE) for g in results)
    print(f"sigterm: {CLIENTS} clients mid-request; exit 0 {took:.2f}s after SIGTERM; {replies} replies, all whole")


if __name__ == "__main__":
    cmd, bin_, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "flood":
        flood(bin_, port, int(sys.argv[4]) if len(sys.argv) > 4 else 10000)
    elif cmd == "sigterm":
        sigterm(bin_, port)
    else:
        sys.exit(__doc__)
