#!/usr/bin/env python3
"""Seeds for fuzz_vault (see fuzz/fuzz_vault.c for the input layout)."""
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def tamper(nparts, parts, edits):
    b = bytearray([1, nparts])
    for size, seed, idx, pieces in parts:
        q = size // 4
        b += bytes([q >> 8 & 0xff, q & 0xff, seed, idx])
        b += bytes(pieces)
    b.append(len(edits))
    for op, at, v in edits:
        b += bytes([op, at >> 16 & 0xff, at >> 8 & 0xff, at & 0xff, v])
    return bytes(b)


seeds = {
    "genuine-1": tamper(1, [(1000, 7, 1, [0])], []),
    "genuine-3": tamper(3, [(4, 1, 0, [0]), (70000, 2, 0, [40, 40, 40]), (140000, 3, 1, [255])],
                        []),
    "flip-header": tamper(1, [(100, 7, 1, [0])], [(0, 3, 1)]),
    "flip-cipher": tamper(1, [(100, 7, 1, [0])], [(0, 80, 4)]),
    "cut-middle": tamper(2, [(100, 7, 0, [0]), (70000, 9, 0, [255])], [(1, 300, 0)]),
    "cut-chunk": tamper(1, [(70000, 9, 0, [255])], [(1, 65600, 0)]),
    "insert": tamper(1, [(100, 7, 1, [0])], [(2, 50, 9)]),
    "delete": tamper(2, [(100, 7, 1, [0]), (100, 7, 1, [0])], [(3, 200, 30)]),
    "lenword": tamper(1, [(100, 7, 1, [0])], [(4, 68, 1), (4, 72, 2)]),
    "raw-empty": b"\x00",
    "raw-magic": b"\x00SEALPOST\x01\x01\x00\x00" + b"fuzzfuzzfuzzfuzzfuzz" + b"PART" + bytes(8),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
