#!/usr/bin/env python3
"""Writes a bench message for `bench/smtp.sh` (BENCH_FILE=): a short text
body and one attachment of SIZE random bytes, base64-encoded (about 4/3
SIZE on the wire), with LF line ends (smtp-source -F sends each line with
CRLF and dot-stuffs it).

    bench/attach_msg.py SIZE OUT
"""
import base64
import os
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: attach_msg.py SIZE OUT")
    size = int(sys.argv[1])
    data = base64.encodebytes(os.urandom(size))  # 76-character lines
    with open(sys.argv[2], "wb") as f:
        f.write(b"From: sender@client.bench.test\n"
                b"To: user@bench.test\n"
                b"Subject: bench attachment\n"
                b"MIME-Version: 1.0\n"
                b"Content-Type: multipart/mixed; boundary=\"bench-boundary\"\n\n"
                b"--bench-boundary\n"
                b"Content-Type: text/plain; charset=utf-8\n\n"
                b"The attachment follows.\n"
                b"--bench-boundary\n"
                b"Content-Type: application/octet-stream\n"
                b"Content-Disposition: attachment; filename=\"data.bin\"\n"
                b"Content-Transfer-Encoding: base64\n\n")
        f.write(data)
        f.write(b"--bench-boundary--\n")


if __name__ == "__main__":
    main()
