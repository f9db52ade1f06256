#!/usr/bin/env python3
"""Foundation end to end: users, local delivery, vault read-back, no
plaintext at rest, recovery, addresses, config checks, quota.

Creates a throw-away instance (tests/lib/sptest.py), adds users, delivers
every message of tests/data/messages (plus a 5 MB one built in memory) with
`sealpost deliver`, reads each item back with `vault list --json` and
`vault get`, and compares every body and attachment with what Python's
email package extracts from the same bytes (attachments byte for byte).
Then greps the data directory (SQLite files included) and the temp
directory for the messages' marker strings: there must be none.

One "ok NAME" / "not ok NAME - reason" line per check.
"""

import base64
import json
import os
import re
import signal
import sys
import time
import traceback

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
MSG_DIR = os.path.join(SRC, "tests", "data", "messages")
sys.path.insert(0, MSG_DIR)

import gen_messages  # noqa: E402
from sptest import (Instance, Tap, extract_with_email_pkg, grep_tree,  # noqa: E402
                    is_ordinary_name, marker_needles, markers_in, norm_text,
                    unique_names)

EX_NOUSER = 67
EX_TEMPFAIL = 75
FIXED_FILES = ("original.eml", "body.txt", "body.html")
SQLITE_RE = re.compile(r"\.(db|sqlite3?)(-wal|-shm|-journal)?$")

# The tiny plan makes the over-quota check cheap.
EXTRA_CONF = """
[plan tiny]
storage_quota = 64K
"""

# Who gets what: default alice; these also go to bob; these via alice+tax.
TO_BOB_TOO = {"02-alternative.eml", "03-pdf.eml", "09-same-names.eml", "08-nested-rfc822.eml"}
TAGGED = {"05-rfc2231-filename.eml": "tax", "10-utf8-headers.eml": "tax"}


def load_messages():
    msgs = {}
    for name in sorted(os.listdir(MSG_DIR)):
        if name.endswith(".eml"):
            with open(os.path.join(MSG_DIR, name), "rb") as f:
                msgs[name] = f.read()
    msgs[gen_messages.BIG_NAME] = gen_messages.big_message()
    return msgs


def short(b, n=200):
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    b = str(b)
    return b if len(b) <= n else b[:n] + "…"


def with_tag(address, tag):
    local, _, domain = address.partition("@")
    return f"{local}+{tag}@{domain}"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def expected_files(ex):
    """(name, attachment) pairs as the vault should write them: names as
    sent (cleaned names only compare for ordinary names), made unique."""
    names = []
    for a in ex["attachments"]:
        n = a["name"]
        if a["type"] == "message/rfc822" and n and not n.lower().endswith(".eml"):
            n += ".eml"
        names.append(n if n and is_ordinary_name(n) else None)
    uniq = unique_names([n if n else f"\0unnamed{i}" for i, n in enumerate(names)])
    return [(u if names[i] else None, a) for i, (u, a) in enumerate(zip(uniq, ex["attachments"]))]


def same_inner_message(got_bytes, want_msg):
    """A nested message compares by its decoded content, not its bytes."""
    got = extract_with_email_pkg(got_bytes)
    want = extract_with_email_pkg(want_msg.as_bytes())
    problems = []
    for k in ("subject", "from"):
        if got[k] != want[k]:
            problems.append(f"{k}: got {got[k]!r}, want {want[k]!r}")
    if norm_text(got["text"] or "") != norm_text(want["text"] or ""):
        problems.append("text body differs")
    gd = sorted(a["data"] for a in got["attachments"])
    wd = sorted(a["data"] for a in want["attachments"])
    if gd != wd:
        problems.append("attachments differ")
    return problems


def check_item(t, inst, user, item, msgname, raw, tag, outroot):
    """Compares one vault item with the email package's view of raw."""
    label = f"{user}:{msgname}"
    ex = extract_with_email_pkg(raw)

    # The listing.
    missing = [k for k in ("id", "received", "from", "subject", "flags", "parts") if k not in item]
    t.ok(f"list-fields {label}", not missing, f"missing {missing} in {short(json.dumps(item), 400)}")
    t.ok(f"list-subject {label}", item.get("subject") == ex["subject"],
         f"got {item.get('subject')!r}, want {ex['subject']!r}")
    want_from = sorted(m.decode().lower() for m in
                       markers_in({"from": ex["from"], "attachments": []}))
    got_from = item.get("from")
    t.ok(f"list-from {label}", isinstance(got_from, str) and want_from and
         all(m in got_from.lower() for m in want_from),
         f"got {got_from!r}, want something with {ex['from']!r}")
    got_tag = item.get("tag")
    t.ok(f"list-tag {label}", (got_tag or None) == tag, f"got {got_tag!r}, want {tag!r}")

    # vault get.
    out = os.path.join(outroot, user, str(item.get("id")))
    p = inst.vault_get(user, item.get("id"), out, check=False)
    if not t.ok(f"vault-get {label}", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}"):
        return
    files = sorted(os.listdir(out))

    # original.eml = our Received: on top of the bytes as received.
    op = os.path.join(out, "original.eml")
    orig = read(op) if os.path.exists(op) else None
    ok = orig is not None and orig.endswith(raw)
    detail = "no original.eml" if orig is None else \
        f"does not end with the input ({len(orig)} bytes vs input {len(raw)})"
    if ok:
        prefix = orig[:len(orig) - len(raw)]
        lines = prefix.split(b"\n")[:-1] if prefix.endswith(b"\n") else None
        ok = bool(lines) and prefix.startswith(b"Received:") and \
            all(re.match(rb"^(Received:|[ \t])", ln) for ln in lines) and \
            inst.hostname.encode() in prefix
        detail = f"prefix is not one Received: header naming {inst.hostname}: {short(prefix, 400)!r}"
    t.ok(f"original {label}", ok, detail)

    # Bodies: charset-decoded text, compared after line-end normalising.
    tp = os.path.join(out, "body.txt")
    if ex["text"] is not None:
        got = read(tp).decode("utf-8", "replace") if os.path.exists(tp) else None
        t.ok(f"body-text {label}", got is not None and norm_text(got) == norm_text(ex["text"]),
             f"got {short(got)!r}, want {short(ex['text'])!r}")
    else:
        t.ok(f"body-text {label}", not os.path.exists(tp) or os.path.getsize(tp) == 0,
             f"message has no text body, got body.txt of {os.path.getsize(tp)} bytes"
             if os.path.exists(tp) else "")
    hp = os.path.join(out, "body.html")
    if ex["html"] is not None:
        got = read(hp).decode("utf-8", "replace") if os.path.exists(hp) else None
        t.ok(f"body-html {label}", got is not None and norm_text(got) == norm_text(ex["html"]),
             f"got {short(got)!r}, want {short(ex['html'])!r}")
    else:
        t.ok(f"body-html {label}", not os.path.exists(hp),
             "body.html written for a message without an HTML body")

    # Attachments: every one under its name, bytes exact; nothing else.
    problems = []
    want = expected_files(ex)
    att_files = [f for f in files if f not in FIXED_FILES]
    unclaimed = set(att_files)
    for name, a in want:
        cand = None
        if name is not None and name in unclaimed:
            cand = name
        elif name is None:
            # An unusual name: find the file by content instead.
            for f in sorted(unclaimed):
                if "message" not in a and read(os.path.join(out, f)) == a["data"]:
                    cand = f
                    break
        if cand is None:
            problems.append(f"no file for {a['name']!r} ({a['type']}, {len(a['data'])} bytes)")
            continue
        unclaimed.discard(cand)
        data = read(os.path.join(out, cand))
        if "message" in a:
            for pr in same_inner_message(data, a["message"]):
                problems.append(f"{cand}: {pr}")
        elif data != a["data"]:
            problems.append(f"{cand}: {len(data)} bytes differ from the {len(a['data'])} sent")
    if unclaimed:
        problems.append(f"unexpected files {sorted(unclaimed)}")
    t.ok(f"attachments {label}", not problems, "; ".join(problems) + f" (dir has {files})")

    # Every written name is safe (RULES.md 7), whatever the sender wrote.
    unsafe = [f for f in files if not is_safe_name(f)]
    t.ok(f"names-safe {label}", not unsafe, f"unsafe names {unsafe!r}")

    # The listing's parts name each attachment file with its size.
    parts = item.get("parts") or []
    pp = []
    for f in att_files:
        size = os.path.getsize(os.path.join(out, f))
        if not any(isinstance(x, dict) and x.get("name") == f and x.get("size") == size
                   for x in parts):
            pp.append(f"{f} ({size} bytes) not in parts")
    t.ok(f"list-parts {label}", not pp, "; ".join(pp) + f"; parts={short(json.dumps(parts), 600)}")


def is_safe_name(name):
    """RULES.md 7 for a name vault get wrote."""
    if not name or name in (".", "..") or len(name.encode("utf-8")) > 255:
        return False
    if any(c in '/\\:*?"<>|' or ord(c) < 32 or ord(c) == 127 or
           c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" for c in name):
        return False
    return not name.startswith(".") and not name.endswith((".", " "))


def data_files(inst):
    """Every file under the data dir but the SQLite database files."""
    out = set()
    for dp, _, fns in os.walk(inst.data_dir):
        for fn in fns:
            if SQLITE_RE.search(fn):
                continue
            out.add(os.path.relpath(os.path.join(dp, fn), inst.data_dir))
    return out


def plaintext_checks(t, inst, label, needles, start, exclude):
    tmproot = os.environ.get("TMPDIR") or "/tmp"
    hits, n = grep_tree(inst.data_dir, needles)
    t.ok(f"no-plaintext-data-dir {label}", n > 0 and not hits,
         f"{n} files scanned; found {[(p, m.decode('utf-8', 'replace')) for p, m in hits[:10]]}")
    sq = [os.path.join(dp, f) for dp, _, fns in os.walk(inst.data_dir) for f in fns
          if SQLITE_RE.search(f)]
    t.ok(f"no-plaintext-sqlite {label}", sq and not [h for h in hits if SQLITE_RE.search(h[0])],
         f"sqlite files {sq}; hits {hits[:5]}")
    hits, n = grep_tree(tmproot, needles, newer_than=start, exclude=exclude)
    t.ok(f"no-plaintext-tmp {label}", not hits,
         f"{n} files scanned in {tmproot}; found {[(p, m.decode('utf-8', 'replace')) for p, m in hits[:10]]}")


def main():
    t = Tap()
    start = time.time() - 1
    msgs = load_messages()
    try:
        inst = Instance(extra_conf=EXTRA_CONF)
    except Exception as e:  # noqa: BLE001 — reported as a failed check
        t.ok("instance-init", False, str(e))
        return t.done()
    with inst:
        try:
            run_all(t, inst, msgs, start)
        except Exception:  # noqa: BLE001 — a crash of the test is one failed check
            t.ok("test-ran-to-the-end", False, traceback.format_exc())
    return t.done()


def run_all(t, inst, msgs, start):
    outroot = inst.out_dir  # decrypted output: excluded from greps
    stale = [n for n, fn in gen_messages.MESSAGES.items() if msgs.get(n) != fn()]
    t.ok("messages-match-generator", not stale and len(gen_messages.MESSAGES) >= 12,
         f"committed .eml differ from gen_messages.py: {stale} (re-run it and commit)")
    p = inst.run("check-config", check=False)
    t.ok("check-config-ok", p.returncode == 0 and "OK" in p.out,
         f"exit {p.returncode}, stdout {short(p.out)!r}, stderr {short(p.err)!r}")

    # Users.
    users = {}
    for name, plan in (("alice", None), ("bob", None), ("carol", None), ("admin", None),
                       ("tiny", "tiny")):
        try:
            users[name] = inst.add_user(name, plan=plan)
            ok, detail = True, ""
        except Exception as e:  # noqa: BLE001
            ok, detail = False, str(e)
        t.ok(f"user-add {name}", ok, detail)
    if len(users) != 5:
        return
    addrs = {n: u.get("address", "") for n, u in users.items()}
    bad = [a for a in addrs.values()
           if not re.fullmatch(r"[a-z0-9]{10,}@" + re.escape(inst.domain), a or "")]
    t.ok("address-format", not bad and len(set(addrs.values())) == len(addrs),
         f"bad or duplicate addresses: {addrs}")
    codes = {n: u.get("recovery_code", "") for n, u in users.items()}
    badc = [c for c in codes.values() if len(re.sub(r"[-\s]", "", c or "")) != 36]
    t.ok("recovery-code-format", not badc and len(set(codes.values())) == len(codes),
         f"want 36 characters each, got {badc}")
    t.diag(f"address example {addrs['alice']}, recovery code example {codes['alice']!r}")
    p = inst.run("user", "list", "--json", check=False)
    t.ok("user-list", p.returncode == 0 and all(n in p.out for n in users),
         f"exit {p.returncode}: {short(p.out)} {short(p.err)}")
    p = inst.run("user", "show", "alice", "--json", check=False)
    t.ok("user-show", p.returncode == 0 and "alice" in p.out and addrs["alice"] in p.out,
         f"exit {p.returncode}: {short(p.out)} {short(p.err)}")

    # Deliver everything; remember who should hold what.
    expect = {"alice": [], "bob": []}
    deliver_err = b""
    for name, raw in msgs.items():
        tag = TAGGED.get(name)
        rcpts = [with_tag(addrs["alice"], tag) if tag else addrs["alice"]]
        if name in TO_BOB_TOO:
            rcpts.append(addrs["bob"])
        rc = inst.deliver(raw, *rcpts)
        deliver_err += inst.last.stderr
        t.ok(f"deliver {name}", rc == 0, f"exit {rc}: {short(inst.last.err, 400)}")
        if rc == 0:
            expect["alice"].append((name, raw, tag))
            if name in TO_BOB_TOO:
                expect["bob"].append((name, raw, None))

    all_markers = set()
    for name, raw in msgs.items():
        mk = markers_in(extract_with_email_pkg(raw), raw)
        if name != gen_messages.BIG_NAME:
            t.ok(f"markers-present {name}", len(mk) >= 4, f"only {len(mk)} markers")
        all_markers |= mk
    needles = marker_needles(all_markers)

    # The grep must be able to find something: a planted marker is found.
    plant = os.path.join(inst.dir, "plant.bin")
    with open(plant, "wb") as f:
        f.write(b"xx" + sorted(all_markers)[0] + b"yy")
    hits, _ = grep_tree(inst.dir, needles, newer_than=start)
    t.ok("grep-finds-planted-marker", any(h[0] == plant for h in hits), f"hits {hits[:3]}")
    os.unlink(plant)

    plaintext_checks(t, inst, "after-deliver", needles, start, [outroot])
    found = [m for m in needles if m in deliver_err]
    t.ok("no-plaintext-in-deliver-log", not found,
         f"deliver stderr holds {found[:5]}: {short(deliver_err, 600)!r}")

    # Read back and compare.
    for user in ("alice", "bob"):
        try:
            items = inst.vault_list(user)
        except Exception as e:  # noqa: BLE001
            t.ok(f"vault-list {user}", False, str(e))
            continue
        t.ok(f"vault-list {user}", len(items) == len(expect[user]),
             f"got {len(items)} items, want {len(expect[user])}")
        by_subject = {}
        for it in items:
            by_subject.setdefault(it.get("subject"), []).append(it)
        for name, raw, tag in expect[user]:
            subj = extract_with_email_pkg(raw)["subject"]
            cands = by_subject.get(subj) or []
            if not t.ok(f"vault-has {user}:{name}", len(cands) == 1,
                        f"{len(cands)} items with subject {subj!r}; subjects "
                        f"{[i.get('subject') for i in items]}"):
                continue
            check_item(t, inst, user, cands[0], name, raw, tag, outroot)

    # Hostile names wrote nothing outside each item's own directory
    # (out/USER/ITEM/FILE), and nothing at the absolute path a name gave.
    escaped = []
    for dp, _, fns in os.walk(inst.dir):
        rel = os.path.relpath(dp, outroot)
        depth = 0 if rel == "." else len(rel.split(os.sep))
        if not rel.startswith(".."):
            escaped += [os.path.join(dp, f) for f in fns if depth != 2]
        else:
            escaped += [os.path.join(dp, f) for f in fns if re.search(r"MARKER-", f)]
    hostile = extract_with_email_pkg(msgs["16-hostile-names.eml"])
    for a in hostile["attachments"]:
        if a["name"] and a["name"].startswith("/") and os.path.exists(a["name"]):
            escaped.append(a["name"])
            os.unlink(a["name"])  # do not leave it behind
    t.ok("hostile-names-stay-inside", not escaped, f"files outside item dirs: {escaped}")

    # Unknown and foreign addresses, partial recipient lists.
    n_alice = len(inst.vault_list("alice"))
    small = msgs["01-plain.eml"]
    rc = inst.deliver(small, f"nosuchaddr99@{inst.domain}")
    t.ok("deliver-unknown-address-67", rc == EX_NOUSER, f"exit {rc}: {short(inst.last.err)}")
    rc = inst.deliver(small, "someone@elsewhere.example")
    t.ok("deliver-foreign-domain-67", rc == EX_NOUSER, f"exit {rc}: {short(inst.last.err)}")
    rc = inst.deliver(small, addrs["alice"], f"nosuchaddr99@{inst.domain}")
    n2 = len(inst.vault_list("alice"))
    t.diag(f"deliver to known+unknown: exit {rc}, alice items {n_alice} -> {n2}")
    t.ok("deliver-known-plus-unknown-consistent",
         (rc == 0 and n2 == n_alice + 1) or (rc != 0 and n2 == n_alice),
         f"exit {rc} but alice went from {n_alice} to {n2} items")
    n_alice = n2

    # postmaster@ goes to [mailin] postmaster.
    rc = inst.deliver(small, f"postmaster@{inst.domain}")
    items = inst.vault_list("admin") if rc == 0 else []
    t.ok("deliver-postmaster", rc == 0 and len(items) == 1,
         f"exit {rc}, admin has {len(items)} items: {short(inst.last.err)}")

    # A disabled user's address is refused (EX_NOUSER, like SP_DISABLED_USER).
    n_bob = len(inst.vault_list("bob"))
    p = inst.run("user", "disable", "bob", check=False)
    t.ok("user-disable", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
    rc = inst.deliver(small, addrs["bob"])
    t.diag(f"deliver to a disabled user: exit {rc}: {short(inst.last.err)}")
    t.ok("deliver-disabled-user-67", rc == EX_NOUSER, f"exit {rc}: {short(inst.last.err)}")
    p = inst.run("user", "enable", "bob", check=False)
    t.ok("user-enable", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
    rc = inst.deliver(small, addrs["bob"])
    n2 = len(inst.vault_list("bob"))
    t.ok("deliver-reenabled-user", rc == 0 and n2 == n_bob + 1,
         f"exit {rc}, bob {n_bob} -> {n2} items")

    # Wrong password: exit 1, one clear line.
    for cmd in (("vault", "list", "alice", "--json"),):
        p = inst.run(*cmd, "--password-stdin", input="not-the-password\n", check=False)
        lines = [ln for ln in p.err.splitlines() if ln.strip()]
        t.ok("wrong-password-exit-1", p.returncode == 1, f"exit {p.returncode}: {short(p.err)}")
        t.ok("wrong-password-message",
             len(lines) == 1 and re.search(r"password", lines[0], re.I) and not p.out.strip(),
             f"stderr {p.err!r}, stdout {short(p.out)!r}")
    items = inst.vault_list("alice")
    p = inst.vault_get("alice", items[0]["id"], os.path.join(outroot, "wrongpw"),
                       password="not-the-password", check=False)
    t.ok("wrong-password-vault-get-exit-1", p.returncode == 1 and
         not [f for f in os.listdir(os.path.join(outroot, "wrongpw"))],
         f"exit {p.returncode}, files {os.listdir(os.path.join(outroot, 'wrongpw'))}: {short(p.err)}")

    # Recovery code and password change (carol).
    rc = inst.deliver(small, addrs["carol"])
    t.ok("deliver carol", rc == 0, f"exit {rc}: {short(inst.last.err)}")
    old = inst.passwords["carol"]
    p = inst.run("user", "passwd", "carol", "--recovery-code", "--password-stdin",
                 input="ABCDEFGHJKMNPQRSTUVWXYZ23456789ABCDE\nwhatever-new\n", check=False)
    t.ok("recovery-wrong-code-exit-1", p.returncode == 1, f"exit {p.returncode}: {short(p.err)}")
    p = inst.run("user", "passwd", "carol", "--recovery-code", "--password-stdin",
                 input=f"{codes['carol']}\nrecovered-pw-1\n", check=False)
    t.ok("recovery-passwd", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
    if p.returncode == 0:
        inst.passwords["carol"] = "recovered-pw-1"
    try:
        n = len(inst.vault_list("carol", "recovered-pw-1"))
        t.ok("recovery-new-password-works", n == 1, f"{n} items, want 1")
    except Exception as e:  # noqa: BLE001
        t.ok("recovery-new-password-works", False, str(e))
    p = inst.run("vault", "list", "carol", "--json", "--password-stdin", input=old + "\n",
                 check=False)
    t.ok("recovery-old-password-fails", p.returncode == 1, f"exit {p.returncode}")
    p = inst.run("user", "passwd", "carol", "--password-stdin",
                 input="recovered-pw-1\nchanged-pw-2\n", check=False)
    t.ok("passwd-change", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
    if p.returncode == 0:
        inst.passwords["carol"] = "changed-pw-2"
    p = inst.run("vault", "list", "carol", "--json", "--password-stdin",
                 input="changed-pw-2\n", check=False)
    t.ok("passwd-new-works", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
    p = inst.run("vault", "list", "carol", "--json", "--password-stdin",
                 input="recovered-pw-1\n", check=False)
    t.ok("passwd-old-fails", p.returncode == 1, f"exit {p.returncode}")
    p = inst.run("user", "passwd", "carol", "--password-stdin",
                 input="wrong-old\nchanged-pw-3\n", check=False)
    t.ok("passwd-wrong-old-exit-1", p.returncode == 1, f"exit {p.returncode}: {short(p.err)}")
    p = inst.run("user", "passwd", "carol", "--recovery-code", "--password-stdin",
                 input=f"{codes['carol']}\nrecovered-pw-4\n", check=False)
    t.ok("recovery-code-reusable", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
    if p.returncode == 0:
        inst.passwords["carol"] = "recovered-pw-4"

    p = inst.run("vault", "list", "carol", "--json", "--recovery-code", "--password-stdin",
                 input=f"{codes['carol']}\n", check=False)
    t.ok("vault-list-with-recovery-code", p.returncode == 0 and p.out.strip().startswith("["),
         f"exit {p.returncode}: {short(p.err)}")

    # More addresses; retiring a leaked one.
    p = inst.run("user", "address", "add", "carol", "--json", check=False)
    new_addr = None
    if p.returncode == 0:
        try:
            doc = json.loads(p.out)
            new_addr = doc.get("address") if isinstance(doc, dict) else None
        except ValueError:
            pass
        if new_addr is None:
            m = re.search(r"[a-z0-9]+@" + re.escape(inst.domain), p.out)
            new_addr = m.group(0) if m else None
    t.ok("address-add", new_addr and new_addr != addrs["carol"] and
         re.fullmatch(r"[a-z0-9]{10,}@" + re.escape(inst.domain), new_addr),
         f"exit {p.returncode}: {short(p.out)} {short(p.err)}")
    if new_addr:
        n0 = len(inst.vault_list("carol"))
        rc = inst.deliver(small, new_addr)
        t.ok("address-add-delivers", rc == 0 and len(inst.vault_list("carol")) == n0 + 1,
             f"exit {rc}: {short(inst.last.err)}")
        p = inst.run("user", "address", "remove", addrs["carol"], check=False)
        t.ok("address-remove", p.returncode == 0, f"exit {p.returncode}: {short(p.err)}")
        rc = inst.deliver(small, addrs["carol"])
        t.ok("address-removed-67", rc == EX_NOUSER, f"exit {rc}: {short(inst.last.err)}")
        rc = inst.deliver(small, with_tag(addrs["carol"], "x"))
        t.ok("address-removed-tagged-67", rc == EX_NOUSER, f"exit {rc}: {short(inst.last.err)}")
        rc = inst.deliver(small, new_addr)
        t.ok("address-other-still-delivers", rc == 0, f"exit {rc}: {short(inst.last.err)}")

    # check-config on a broken file: every problem with file:line.
    broken = os.path.join(inst.dir, "broken.conf")
    text = inst.conf_text().splitlines()
    srv = text.index("[server]")
    text.insert(srv + 1, "no_such_key = 1")
    bad_unknown = srv + 2
    mi = text.index("[mailin]")
    text.insert(mi + 1, "message_size_limit = lots")
    bad_size = mi + 2
    with open(broken, "w") as f:
        f.write("\n".join(text) + "\n")
    p = inst.run("check-config", conf=broken, check=False)
    both = p.out + p.err
    t.ok("check-config-broken-exit-1", p.returncode == 1, f"exit {p.returncode}: {short(both)}")
    t.ok("check-config-broken-unknown-key-line", f"{broken}:{bad_unknown}:" in both,
         f"want '{broken}:{bad_unknown}:' in {short(both, 600)!r}")
    t.ok("check-config-broken-bad-size-line", f"{broken}:{bad_size}:" in both,
         f"want '{broken}:{bad_size}:' in {short(both, 600)!r}")
    t.ok("check-config-broken-not-ok", "OK" not in p.out, f"stdout {short(p.out)!r}")

    # Over quota: 75 and nothing half-written.
    rc = inst.deliver(small, addrs["tiny"])
    t.ok("quota-small-fits", rc == 0, f"exit {rc}: {short(inst.last.err)}")
    n_tiny = len(inst.vault_list("tiny"))
    n_alice = len(inst.vault_list("alice"))
    before = data_files(inst)
    # 150 KB of random data does not fit the 64K plan.
    big = (b"From: q@sender.example\r\nTo: x@mailin.test\r\nSubject: quota buster\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" +
           base64.encodebytes(os.urandom(150 * 1024)).replace(b"\n", b"\r\n"))
    rc = inst.deliver(big, addrs["tiny"])
    t.ok("quota-exceeded-75", rc == EX_TEMPFAIL and re.search(r"4\.2\.2|quota", inst.last.err, re.I),
         f"exit {rc}: {short(inst.last.err)}")
    t.ok("quota-exceeded-count-unchanged", len(inst.vault_list("tiny")) == n_tiny,
         f"tiny had {n_tiny} items")
    rc = inst.deliver(big, addrs["alice"], addrs["tiny"])
    t.ok("quota-multi-rcpt-75", rc == EX_TEMPFAIL, f"exit {rc}: {short(inst.last.err)}")
    t.ok("quota-multi-rcpt-all-or-nothing", len(inst.vault_list("alice")) == n_alice,
         f"alice had {n_alice} items, now {len(inst.vault_list('alice'))}")
    after = data_files(inst)
    t.ok("quota-no-files-left", after == before,
         f"new {sorted(after - before)[:10]}, gone {sorted(before - after)[:10]}")

    # Nothing in clear anywhere, including passwords and recovery codes.
    plaintext_checks(t, inst, "at-end", needles, start, [outroot])
    secrets = set()
    for n, pw in inst.passwords.items():
        secrets.add(pw.encode())
    for c in codes.values():
        secrets.add(c.encode())
    secrets |= {b"recovered-pw-1", b"changed-pw-2", b"recovered-pw-4"}
    hits, _ = grep_tree(inst.data_dir, sorted(secrets))
    t.ok("no-secrets-at-rest", not hits, f"found {hits[:5]}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
