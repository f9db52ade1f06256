#!/usr/bin/python3
"""SMTP load generator for bench/smtp.sh (not a test).

Does what `smtp-source -s S -m M -l L -f F -t T HOST:PORT` does: M messages
over S parallel sessions, one new session per message (EHLO, MAIL, RCPT,
DATA, QUIT, no pipelining), L bytes of payload under a short header. The
difference: the message is built once and written with one call, so that
the client is not what limits large messages (smtp-source writes its
payload line by line and tops out near 200 msg/s at 1 MiB here, even
against smtp-sink, which discards everything).

Usage: blast.py -s S -m M -l L -f FROM -t TO HOST:PORT
Prints "messages=M seconds=T rate=R"; exits 1 at the first reply that is
not what the dialog expects (like smtp-source without -A).
"""
import argparse
import asyncio
import sys
import time

LINE = 78  # payload line length without CRLF


def build_message(length, sender, rcpt):
    head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: bench\r\n"
            f"Message-ID: <bench@blast.bench.test>\r\n\r\n").encode()
    line = b"x" * LINE + b"\r\n"
    body = line * (length // len(line))
    rest = length - len(body)
    if rest > 2:
        body += b"x" * (rest - 2) + b"\r\n"
    return head + body + b".\r\n"


async def reply(reader, want):
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise RuntimeError(f"connection closed or short reply: {line!r}")
        if line[3:4] != b"-":
            break
    if not line.startswith(want):
        raise RuntimeError(f"unexpected reply {line.decode(errors='replace').strip()!r}, "
                           f"want {want.decode()}")


async def one(host, port, sender, rcpt, message):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await reply(reader, b"220")
        for cmd, want in ((b"EHLO blast.bench.test", b"250"),
                          (b"MAIL FROM:<" + sender.encode() + b">", b"250"),
                          (b"RCPT TO:<" + rcpt.encode() + b">", b"250"),
                          (b"DATA", b"354")):
            writer.write(cmd + b"\r\n")
            await reply(reader, want)
        writer.write(message)
        await reply(reader, b"250")
        writer.write(b"QUIT\r\n")
        await reply(reader, b"221")
    finally:
        writer.close()


async def run(a, host, port):
    message = build_message(a.l, a.f, a.t)
    left = [a.m]

    async def session():
        while left[0] > 0:
            left[0] -= 1
            await one(host, port, a.f, a.t, message)

    t0 = time.monotonic()
    await asyncio.gather(*(session() for _ in range(a.s)))
    return time.monotonic() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("-s", type=int, default=1)
    p.add_argument("-m", type=int, default=1)
    p.add_argument("-l", type=int, default=10240)
    p.add_argument("-f", default="sender@blast.bench.test")
    p.add_argument("-t", required=True)
    p.add_argument("server")
    a = p.parse_args()
    host, _, port = a.server.rpartition(":")
    try:
        secs = asyncio.run(run(a, host, int(port)))
    except (OSError, RuntimeError) as e:
        print(f"blast.py: {e}", file=sys.stderr)
        return 1
    print(f"messages={a.m} seconds={secs:.3f} rate={a.m / secs:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
