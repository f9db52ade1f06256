#!/usr/bin/env python3
"""`vault get` and `vault list` on an item the store damaged: a clear error
and exit 1, never a crash.

An item's row holds its sealed key and its sealed metadata record. One
byte of either is flipped in the store (as a bad disk or an edit would);
`vault get` must say which part does not open and exit 1 (it crashed with
SIGSEGV on a double free when the metadata did not open: the malloc walk
found it), `vault list` must report the item and go on listing the others.
"""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sptest  # noqa: E402


def message(subject):
    return ("From: a@example.org\r\nSubject: %s\r\n\r\nbody of %s\r\n"
            % (subject, subject)).encode()


def flip(inst, item_id, column):
    """Flips one byte in the middle of items.COLUMN of an item."""
    db = sqlite3.connect(os.path.join(inst.data_dir, "sealpost.db"))
    (blob,) = db.execute("SELECT %s FROM items WHERE id = ?" % column, (item_id,)).fetchone()
    b = bytearray(blob)
    b[len(b) // 2] ^= 0x01
    db.execute("UPDATE items SET %s = ? WHERE id = ?" % column, (bytes(b), item_id))
    db.commit()
    db.close()


def main():
    t = sptest.Tap()
    with sptest.Instance() as inst:
        u = inst.add_user("dora")
        for s in ("intact", "bad-meta", "bad-key"):
            rc = inst.deliver(message(s), u["address"])
            t.ok("delivered " + s, rc == 0, "exit %r" % rc)
        ids = {it["subject"]: it["id"] for it in inst.vault_list("dora")}
        flip(inst, ids["bad-meta"], "meta")
        flip(inst, ids["bad-key"], "sealed_key")

        cases = [("bad-meta", "metadata"), ("bad-key", "sealed key does not open")]
        for subject, why in cases:
            out = os.path.join(inst.out_dir, subject)
            p = inst.vault_get("dora", ids[subject], out, check=False)
            t.ok("vault get %s: exit 1" % subject, p.returncode == 1,
                 "exit %r: %s" % (p.returncode, p.err.strip()[-300:]))
            t.ok("vault get %s: says why" % subject, why in p.err and ids[subject] in p.err,
                 p.err.strip()[-300:])
            t.ok("vault get %s: writes nothing" % subject,
                 not os.path.isdir(out) or not os.listdir(out), repr(os.listdir(out)))

        p = inst.run("vault", "list", "dora", "--json", "--password-stdin",
                     input=inst.password("dora") + "\n", check=False)
        t.ok("vault list: no crash, exit 1 for the damaged items", p.returncode == 1,
             "exit %r: %s" % (p.returncode, p.err.strip()[-300:]))
        t.ok("vault list: names both damaged items",
             ids["bad-meta"] in p.err and ids["bad-key"] in p.err, p.err.strip()[-400:])
        t.ok("vault list: still lists the intact one", '"intact"' in p.out, p.out[-300:])

        out = os.path.join(inst.out_dir, "intact")
        p = inst.vault_get("dora", ids["intact"], out, check=False)
        with open(os.path.join(out, "body.txt"), "rb") as f:
            body = f.read()
        t.ok("the intact item still opens", p.returncode == 0 and b"body of intact" in body,
             "exit %r" % p.returncode)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
