#!/usr/bin/python3
"""Memory per idle SMTP connection (bench/smtp.sh, not a test).

Opens N connections to HOST:PORT, waits for every banner, reads the
server's VmRSS (/proc/PID/status), sends EHLO on each, waits for every
EHLO reply, reads VmRSS again, and prints one line per stage:

    stage=banner conns=5000 rss_before_kib=... rss_after_kib=... kib_per_conn=...

Usage: idle_conns.py HOST PORT SERVER_PID [N]
"""
import resource
import selectors
import socket
import sys
import time

TIMEOUT = 120.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_replies(socks, final_prefix):
    """Reads on every socket until a line starting with final_prefix."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    left = len(socks)
    deadline = time.monotonic() + TIMEOUT
    while left:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} connections did not answer")
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                raise RuntimeError("server closed a connection: " + repr(bufs[s][-200:]))
            bufs[s] += data
            lines = bufs[s].split(b"\r\n")
            if any(l.startswith(final_prefix) for l in lines):
                sel.unregister(s)
                left -= 1
    sel.close()


def settle(pid):
    """RSS once it stops moving (the I/O thread works through its events)."""
    last = rss_kib(pid)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_kib(pid)
        if now == last:
            return now
        last = now
    return last


def main():
    host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    before = settle(pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.setblocking(False)
        socks.append(s)
    wait_replies(socks, b"220 ")
    banner = settle(pid)
    print(f"stage=banner conns={n} rss_before_kib={before} rss_after_kib={banner} "
          f"kib_per_conn={(banner - before) / n:.2f}", flush=True)
    for s in socks:
        s.send(b"EHLO idle.bench.test\r\n")
    wait_replies(socks, b"250 ")
    ehlo = settle(pid)
    print(f"stage=ehlo conns={n} rss_before_kib={before} rss_after_kib={ehlo} "
          f"kib_per_conn={(ehlo - before) / n:.2f}", flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
