#!/usr/bin/env python3
"""Parts stored inside the sealed original ("slice", docs/FORMATS.md 2).

A body or attachment that is, byte for byte, a stretch of the message (no
transfer encoding, no charset conversion, a text body valid UTF-8 already)
is not sealed a second time: the metadata says where in the original it
is. Checked through the real `sealpost deliver` and `vault get`:

  - what `vault get` writes is what Python's email package finds in the
    message, for sliced parts (plain body, 8bit UTF-8 body, binary
    attachment) and streamed ones (Latin-1 body, base64 and QP parts, a
    body with invalid UTF-8) alike, and original.eml is the message;
  - the container holds a message of 600 KiB with a plain body once, not
    twice (its size stays below message + 8 KiB), while a base64
    attachment still takes its own room;
  - every part reads back after the original's own part in the container,
    and a flipped byte in the original's stretch of a sliced body, or a
    container cut short, makes `vault get` fail with a clear message and
    exit 1 (never a crash, never wrong bytes).
"""
import base64
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sptest  # noqa: E402

# Container overhead a part adds: part header, stream header, a length
# word and tag per 64 KiB chunk (docs/FORMATS.md 2); a few KiB for 600 KiB.
ROOM = 8 * 1024


def plain(size):
    line = b"plain text line of a long body, nothing to decode at all.\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: plain\r\n"
            b"Message-ID: <plain@example.org>\r\n\r\n" + body), body


def mixed():
    binary = bytes(range(256)) * 40  # every byte value, NUL and CR/LF too
    b64data = os.urandom(30000)
    msg = (b"From: a@example.org\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n"
           b"--sep\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           + "Gr\u00fc\u00dfe, \u65e5\u672c\r\nzweite Zeile\r\n".encode() +
           b"--sep\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n"
           b"<p>caf\xe9</p>\r\n"
           b"--sep\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename=\"raw.bin\"\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + binary + b"\r\n"
           b"--sep\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename=\"doc.pdf\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(b64data).replace(b"\n", b"\r\n") +
           b"--sep\r\nContent-Type: text/csv\r\n"
           b"Content-Disposition: attachment; filename=\"t.csv\"\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"a=3Db,c\r\n"
           b"--sep--\r\n")
    return msg, binary, b64data


def invalid_utf8():
    return (b"From: a@example.org\r\nSubject: bad bytes\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            b"valid \xc3\xa4, invalid \xff here\r\n")


def item_row(inst, item_id):
    db = sqlite3.connect(os.path.join(inst.data_dir, "sealpost.db"))
    row = db.execute("SELECT blob, size FROM items WHERE id = ?", (item_id,)).fetchone()
    db.close()
    return row


def blob_path(inst, blob):
    return os.path.join(inst.data_dir, "blobs", blob[:2], blob)


def files(out):
    res = {}
    for n in os.listdir(out):
        with open(os.path.join(out, n), "rb") as f:
            res[n] = f.read()
    return res


def main():
    t = sptest.Tap()
    with sptest.Instance() as inst:
        u = inst.add_user("sam")
        big, big_body = plain(600 * 1024)
        mix, binary, b64data = mixed()
        bad = invalid_utf8()
        for name, m in (("plain", big), ("mixed", mix), ("bad bytes", bad)):
            rc = inst.deliver(m, u["address"])
            t.ok("delivered %s" % name, rc == 0, "exit %r: %s" % (rc, inst.last.err[-300:]))
        items = {it["subject"]: it for it in inst.vault_list("sam")}
        t.ok("three items listed", set(items) == {"plain", "mixed", "bad bytes"}, repr(list(items)))

        # The plain message: its body is in the container once.
        it = items.get("plain", {})
        blob, size = item_row(inst, it.get("id"))
        csize = os.path.getsize(blob_path(inst, blob))
        t.ok("plain: the container holds the message once", len(big) < csize < len(big) + ROOM,
             "container %d bytes for a message of %d" % (csize, len(big)))
        sizes = {p["kind"]: p["size"] for p in it["parts"]}
        t.ok("plain: vault list gives the body's size", sizes.get("text") == len(big_body),
             repr(it["parts"]))
        out = os.path.join(inst.out_dir, "plain")
        p = inst.vault_get("sam", it["id"], out, check=False)
        got = files(out) if p.returncode == 0 else {}
        t.ok("plain: vault get", p.returncode == 0, p.err[-300:])
        t.ok("plain: body.txt is the body", got.get("body.txt") == big_body,
             "%r bytes" % len(got.get("body.txt") or b""))
        t.ok("plain: original.eml ends with the message",
             (got.get("original.eml") or b"").endswith(big), "")

        # The mixed message: each part as Python's email package sees it.
        it = items.get("mixed", {})
        out = os.path.join(inst.out_dir, "mixed")
        p = inst.vault_get("sam", it["id"], out, check=False)
        got = files(out) if p.returncode == 0 else {}
        t.ok("mixed: vault get", p.returncode == 0, p.err[-300:])
        want = sptest.extract_with_email_pkg(mix)
        t.ok("mixed: body.txt (8bit UTF-8, sliced)",
             got.get("body.txt", b"").decode("utf-8", "replace") == want["text"],
             repr(got.get("body.txt", b"")[:80]))
        t.ok("mixed: body.html (Latin-1, converted)",
             got.get("body.html", b"").decode("utf-8", "replace") == want["html"],
             repr(got.get("body.html", b"")[:80]))
        t.ok("mixed: raw.bin (binary, sliced)", got.get("raw.bin") == binary,
             "%r bytes" % len(got.get("raw.bin") or b""))
        t.ok("mixed: doc.pdf (base64)", got.get("doc.pdf") == b64data, "")
        t.ok("mixed: t.csv (quoted-printable)", got.get("t.csv") == b"a=b,c", repr(got.get("t.csv")))
        blob, size = item_row(inst, it["id"])
        csize = os.path.getsize(blob_path(inst, blob))
        t.ok("mixed: the base64 attachment takes its own room, the sliced parts none",
             len(mix) + len(b64data) < csize < len(mix) + len(b64data) + ROOM,
             "container %d bytes, message %d, base64 data %d" % (csize, len(mix), len(b64data)))

        # Invalid UTF-8 in a text body: streamed, U+FFFD in place.
        it = items.get("bad bytes", {})
        out = os.path.join(inst.out_dir, "bad")
        p = inst.vault_get("sam", it["id"], out, check=False)
        got = files(out) if p.returncode == 0 else {}
        t.ok("invalid UTF-8: body.txt repaired",
             got.get("body.txt") == "valid \u00e4, invalid \ufffd here\r\n".encode(),
             repr(got.get("body.txt")))

        # Damage: a flipped byte inside the original's stretch that holds
        # the plain body, then a container cut short.
        it = items["plain"]
        blob, size = item_row(inst, it["id"])
        path = blob_path(inst, blob)
        with open(path, "rb") as f:
            good = f.read()
        damaged = bytearray(good)
        damaged[len(good) // 2] ^= 0x01
        for what, data in (("a flipped byte", bytes(damaged)),
                           ("cut short", good[:len(good) // 2])):
            with open(path, "wb") as f:
                f.write(data)
            out = os.path.join(inst.out_dir, "damaged-" + what.replace(" ", "-"))
            p = inst.vault_get("sam", it["id"], out, check=False)
            t.ok("plain, %s: vault get exits 1" % what, p.returncode == 1,
                 "exit %r" % p.returncode)
            t.ok("plain, %s: says which part" % what,
                 it["id"] in p.err and ("authentication failed" in p.err or "truncated" in p.err),
                 p.err.strip()[-300:])
            body = os.path.join(out, "body.txt")
            t.ok("plain, %s: no body.txt left behind" % what, not os.path.exists(body), "")
        with open(path, "wb") as f:
            f.write(good)
        out = os.path.join(inst.out_dir, "restored")
        p = inst.vault_get("sam", it["id"], out, check=False)
        t.ok("plain, restored: opens again", p.returncode == 0, p.err[-300:])
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
