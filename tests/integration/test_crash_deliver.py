#!/usr/bin/env python3
"""Crash safety of local delivery (RULES.md 1, DESIGN.md property 6).

A bounded loop (at most RUNS runs and LOOP_SECONDS seconds) starts
`sealpost deliver` with a message of random size (1 KB – 2 MB) and SIGKILLs
it after a random delay (0 – 150 ms). Afterwards:

* `vault list` works;
* the item count is at least the number of runs that exited 0 and at most
  that plus the killed runs (a run killed after its commit may have
  delivered; one that exited non-zero must not have);
* every run that exited 0 is there exactly once, no run appears twice;
* every listed item opens with `vault get`, and its body and attachment
  are byte for byte what that run sent (no half items, ever);
* another delivery still works (no stale lock);
* crash leftovers (data/tmp/ files, blobs no item names) survive
  `vault cleanup` with the default grace (they are young) and are all gone
  after `vault cleanup --grace 0s`, which leaves exactly one blob per item
  (and every item still opens: the cleanup removed nothing needed).

One "ok NAME" / "not ok NAME - reason" line per check.
"""

import base64
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import traceback

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

from sptest import Instance, Tap, norm_text, seeded_rng  # noqa: E402

RUNS = int(os.environ.get("SPTEST_CRASH_RUNS") or 40)  # more for a soak run
LOOP_SECONDS = int(os.environ.get("SPTEST_CRASH_SECONDS") or 60)
MIN_SIZE = 1024
MAX_SIZE = 2 * 1024 * 1024
MAX_DELAY = 0.150
SUBJECT_RE = re.compile(r"^crash run (\d+) ([0-9a-f]{16})$")


def make_message(i, rng):
    """A message whose attachment is rng-random bytes of random size."""
    size = rng.randint(MIN_SIZE, MAX_SIZE)
    data = rng.randbytes(size)
    nonce = rng.randbytes(8).hex()
    body = f"Crash run {i}, {size} bytes attached, nonce {nonce}.\r\n"
    b = f"=_crash_{nonce}"
    msg = (
        f"From: crash@sender.example\r\n"
        f"To: victim@mailin.test\r\n"
        f"Subject: crash run {i} {nonce}\r\n"
        f"Message-ID: <crash-{i}-{nonce}@sender.example>\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{b}"\r\n'
        f"\r\n"
        f"--{b}\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
        f"{body}"
        f"--{b}\r\n"
        f"Content-Type: application/octet-stream\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="run-{i}.bin"\r\n'
        f"\r\n"
    ).encode("ascii")
    msg += base64.encodebytes(data).replace(b"\n", b"\r\n")
    msg += f"--{b}--\r\n".encode("ascii")
    return msg, body, data, f"run-{i}.bin"


def leftovers(inst):
    """(temp files, blob files) under the data dir (layout of deliver/deliver.c)."""
    tmp = set()
    blobs = set()
    for sub, acc in (("tmp", tmp), ("blobs", blobs)):
        root = os.path.join(inst.data_dir, sub)
        for dp, _, fns in os.walk(root):
            for fn in fns:
                if not fn.startswith("."):  # tmp/.delivery.lock is no leftover
                    acc.add(os.path.relpath(os.path.join(dp, fn), root))
    return tmp, blobs


def main():
    t = Tap()
    rng = seeded_rng(t)
    try:
        inst = Instance()
    except Exception as e:  # noqa: BLE001
        t.ok("instance-init", False, str(e))
        return t.done()
    with inst:
        try:
            run(t, inst, rng)
        except Exception:  # noqa: BLE001 — a crash of the test is one failed check
            t.ok("test-ran-to-the-end", False, traceback.format_exc())
    return t.done()


def run(t, inst, rng):
    try:
        user = inst.add_user("victim")
    except Exception as e:  # noqa: BLE001
        t.ok("user-add", False, str(e))
        return
    addr = user["address"]
    msgdir = os.path.join(inst.dir, "msgs")
    os.makedirs(msgdir)

    sent = {}      # run -> (body, data, name)
    outcome = {}   # run -> "ok" | "killed" | "rc=N"
    errors = {}
    t0 = time.monotonic()
    for i in range(RUNS):
        if time.monotonic() - t0 > LOOP_SECONDS - 5:
            break
        msg, body, data, name = make_message(i, rng)
        sent[i] = (body, data, name, len(msg), hashlib.sha256(msg).digest())
        path = os.path.join(msgdir, f"{i}.eml")
        with open(path, "wb") as f:
            f.write(msg)
        delay = rng.uniform(0, MAX_DELAY)
        errpath = os.path.join(msgdir, f"{i}.err")
        with open(path, "rb") as fin, open(errpath, "wb") as ferr:
            p = subprocess.Popen([inst.bin, "-c", inst.conf, "deliver", "--to", addr],
                                 stdin=fin, stdout=subprocess.DEVNULL, stderr=ferr)
            time.sleep(delay)
            killed = False
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed = True
            rc = p.wait()
        if killed and rc == -signal.SIGKILL:
            outcome[i] = "killed"
        elif rc == 0:
            outcome[i] = "ok"
        else:
            outcome[i] = f"rc={rc}"
            with open(errpath, "rb") as f:
                errors[i] = f.read().decode("utf-8", "replace").strip()[-300:]
        os.unlink(path)
    elapsed = time.monotonic() - t0
    n_ok = sum(1 for v in outcome.values() if v == "ok")
    n_killed = sum(1 for v in outcome.values() if v == "killed")
    t.diag(f"{len(outcome)} runs in {elapsed:.1f}s: {n_ok} exited 0, {n_killed} killed, "
           f"{len(outcome) - n_ok - n_killed} other")
    t.ok("loop-ran", len(outcome) >= 10 and n_killed > 0,
         f"{len(outcome)} runs, {n_killed} killed: nothing was tested")
    t.ok("no-unexpected-exit", not errors,
         "; ".join(f"run {i}: {outcome[i]} {errors[i]}" for i in sorted(errors)))

    try:
        items = inst.vault_list("victim")
        ok = True
    except Exception as e:  # noqa: BLE001
        items, ok = [], False
        t.ok("vault-list-after-crashes", False, str(e))
    if ok:
        t.ok("vault-list-after-crashes", True)
    n = len(items)
    t.ok("item-count-bounds", n_ok <= n <= n_ok + n_killed,
         f"{n} items; want between {n_ok} and {n_ok + n_killed}")

    seen = {}
    bad_subject = []
    for it in items:
        m = SUBJECT_RE.match(it.get("subject") or "")
        if not m or int(m.group(1)) not in sent:
            bad_subject.append(it.get("subject"))
            continue
        seen.setdefault(int(m.group(1)), []).append(it)
    t.ok("items-are-known-runs", not bad_subject, f"unknown subjects {bad_subject[:5]}")
    dup = sorted(i for i, v in seen.items() if len(v) > 1)
    t.ok("no-duplicate-items", not dup, f"runs delivered twice: {dup}")
    missing = sorted(i for i, v in outcome.items() if v == "ok" and i not in seen)
    t.ok("every-ok-run-present", not missing, f"runs that exited 0 but are missing: {missing}")
    wrong = sorted(i for i in seen if outcome.get(i) not in ("ok", "killed"))
    t.ok("no-failed-run-present", not wrong,
         f"runs that exited non-zero but delivered: {[(i, outcome[i]) for i in wrong]}")

    # Life goes on: a plain delivery works and shows up.
    msg, body, data, name = make_message(RUNS + 1, rng)
    rc = inst.deliver(msg, addr)
    n2 = len(inst.vault_list("victim")) if rc == 0 else n
    t.ok("deliver-after-crashes", rc == 0 and n2 == n + 1,
         f"exit {rc} ({inst.last.err.strip()[-300:]}), items {n} -> {n2}")
    if rc == 0:
        seen.setdefault(RUNS + 1, [])
        sent[RUNS + 1] = (body, data, name, len(msg), hashlib.sha256(msg).digest())
        outcome[RUNS + 1] = "ok"
        seen[RUNS + 1] = [it for it in inst.vault_list("victim")
                          if (it.get("subject") or "").startswith(f"crash run {RUNS + 1} ")]

    # Crash leftovers: temp files and unreferenced blobs. `vault cleanup`
    # keeps young files (a delivery may be in flight); with --grace 0s it
    # removes every leftover and nothing that an item refers to.
    tmp0, blobs0 = leftovers(inst)
    t.diag(f"after the loop: {len(tmp0)} temp files, {len(blobs0)} blobs for {n2} items")
    p = inst.run("vault", "cleanup", check=False)
    tmp1, blobs1 = leftovers(inst)
    t.ok("cleanup-default-grace-keeps-young", p.returncode == 0 and tmp1 == tmp0 and
         blobs1 == blobs0, f"exit {p.returncode} ({p.err.strip()}): temp {len(tmp0)} -> "
         f"{len(tmp1)}, blobs {len(blobs0)} -> {len(blobs1)}")
    p = inst.run("vault", "cleanup", "--grace", "0s", check=False)
    tmp2, blobs2 = leftovers(inst)
    t.diag(f"vault cleanup --grace 0s: {p.out.strip()}")
    t.ok("cleanup-removes-temp-files", p.returncode == 0 and not tmp2,
         f"exit {p.returncode} ({p.err.strip()}): left {sorted(tmp2)[:5]}")
    t.ok("cleanup-removes-orphan-blobs", p.returncode == 0 and len(blobs2) == n2,
         f"{len(blobs2)} blobs for {n2} items (before cleanup {len(blobs0)})")

    # Every item opens, whole (after the cleanup: it removed nothing needed).
    bad = []
    for i, its in sorted(seen.items()):
        body, data, name, mlen, mhash = sent[i]
        for it in its:
            out = os.path.join(inst.out_dir, str(it.get("id")))
            p = inst.vault_get("victim", it.get("id"), out, check=False)
            if p.returncode != 0:
                bad.append(f"run {i} ({outcome[i]}): vault get exit {p.returncode}: {p.err.strip()[-200:]}")
                continue
            try:
                with open(os.path.join(out, "body.txt"), "rb") as f:
                    got_body = f.read().decode("utf-8", "replace")
                with open(os.path.join(out, name), "rb") as f:
                    got = f.read()
                with open(os.path.join(out, "original.eml"), "rb") as f:
                    orig = f.read()
            except OSError as e:
                bad.append(f"run {i} ({outcome[i]}): {e}")
                continue
            if norm_text(got_body) != norm_text(body):
                bad.append(f"run {i}: body differs")
            if got != data:
                bad.append(f"run {i}: attachment {len(got)} bytes, want {len(data)} (differs)")
            if len(orig) <= mlen or hashlib.sha256(orig[-mlen:]).digest() != mhash or \
                    not orig.startswith(b"Received:"):
                bad.append(f"run {i}: original.eml is not Received: + the message "
                           f"({len(orig)} bytes, message {mlen})")
    t.ok("every-item-opens-whole", not bad and seen, "; ".join(bad[:8]) or "no items")


if __name__ == "__main__":
    sys.exit(main())
