#!/usr/bin/env python3
"""Allocation failures in the admin commands: never a half user, never a
wrong answer with exit 0, never a crash.

The shim tests/faultinject ($BUILD/faultinject.so) makes the Nth malloc of
a command fail. A dry run counts the allocations; then a sample of N (the
first ten, a geometric series, the last LAST_N, and random ones) runs:

* `user add`: exit 0 and the user works (its vault lists, a delivery to
  its address is accepted), or exit non-zero (1, 75, or an out-of-memory
  abort) and no user of that name exists (adding it again works). The
  last allocations come after the store's commit: the address and the
  recovery code (shown once) must still reach the admin, so user add
  prepares its output before it commits (a walk found users created
  whose recovery code was never shown: abort after the commit).
* `vault get`: exit 0 and every file byte for byte as without faults, or
  exit non-zero; never a signal but an out-of-memory abort.

Skipped under ASan (the shim's malloc would fight ASan's).
"""
import base64
import filecmp
import json
import os
import random
import shutil
import signal
import sys
import time

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from sptest import Instance, Tap  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
SHIM = os.path.join(SRC, BUILD, "faultinject.so")
SAMPLES = int(os.environ.get("SPTEST_FAULT_MALLOC_SAMPLES") or 40)
LAST_N = 20               # the allocations after user add's commit, and more
ABORTS = (-signal.SIGABRT, -signal.SIGTRAP)
FAILED_OK = (1, 75) + ABORTS


def sample(calls, rng):
    ns = set(range(1, min(calls, 10) + 1))
    ns.update(range(max(1, calls - LAST_N + 1), calls + 1))
    k = 1
    while k < calls:
        ns.add(k)
        k = int(k * 1.6) + 1
    while len(ns) < SAMPLES + LAST_N + 10 and len(ns) < calls:
        ns.add(rng.randint(1, calls))
    return sorted(ns)


def report_calls(path):
    with open(path) as f:
        first = f.read().split("\n")[0]
    os.unlink(path)
    return int(first.split()[0].split("=")[1])


def walk_user_add(t, inst, rng):
    rep = os.path.join(inst.dir, "user.report")

    def add(name, n):
        env = {"LD_PRELOAD": SHIM, "FAULT_OP": "malloc", "FAULT_N": str(n),
               "FAULT_REPORT": rep}
        return inst.run("user", "add", name, "--email", name + "@example.org", "--json",
                        "--password-stdin", input="pw-%s-secret\n" % name, check=False,
                        env=env)

    p = add("dryrun", 0)
    calls = report_calls(rep)
    if not t.ok("user add: dry run", p.returncode == 0 and calls > 0,
                "exit %r, %r allocations" % (p.returncode, calls)):
        return
    ns = sample(calls, rng)
    t.diag("user add: %d allocations, %d sampled" % (calls, len(ns)))
    problems = []
    for n in ns:
        name = "fa%d" % n
        p = add(name, n)
        if os.path.exists(rep):
            os.unlink(rep)
        if p.returncode == 0:
            doc = json.loads(p.out)
            lst = inst.run("vault", "list", name, "--json", "--password-stdin",
                           input="pw-%s-secret\n" % name, check=False)
            got = inst.deliver(b"Subject: hi\r\n\r\nhello\r\n", doc["address"])
            if lst.returncode != 0 or got != 0 or not doc.get("recovery_code"):
                problems.append("N=%d: exit 0 but list %r, deliver %r" % (n, lst.returncode, got))
            continue
        if p.returncode not in FAILED_OK:
            problems.append("N=%d: exit %r: %s" % (n, p.returncode, p.err.strip()[-200:]))
        again = inst.run("user", "add", name, "--email", name + "@example.org", "--json",
                         "--password-stdin", input="pw-%s-secret\n" % name, check=False)
        if again.returncode != 0:
            problems.append("N=%d: exit %r left a user behind (adding it again: %s)"
                            % (n, p.returncode, again.err.strip()[-200:]))
    t.ok("user add: never a half user", not problems, "; ".join(problems[:5]))


def walk_vault_get(t, inst, rng):
    u = inst.add_user("getter")
    att = os.urandom(20000)
    msg = (b"From: a@example.org\r\nSubject: walk\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: text/plain\r\n\r\nthe body\r\n--B\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=a.bin\r\n\r\n"
           + base64.encodebytes(att).replace(b"\n", b"\r\n") + b"--B--\r\n")
    if not t.ok("vault get: delivered", inst.deliver(msg, u["address"]) == 0):
        return
    item = inst.vault_list("getter")[0]["id"]
    rep = os.path.join(inst.dir, "get.report")

    def get(n, out):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        env = {"LD_PRELOAD": SHIM, "FAULT_OP": "malloc", "FAULT_N": str(n),
               "FAULT_REPORT": rep}
        return inst.run("vault", "get", "getter", item, "--out", out, "--password-stdin",
                        input=inst.password("getter") + "\n", check=False, env=env)

    good = os.path.join(inst.dir, "get-good")
    p = get(0, good)
    calls = report_calls(rep)
    if not t.ok("vault get: dry run", p.returncode == 0 and calls > 0,
                "exit %r, %r allocations" % (p.returncode, calls)):
        return
    ns = sample(calls, rng)
    t.diag("vault get: %d allocations, %d sampled" % (calls, len(ns)))
    out = os.path.join(inst.dir, "get-out")
    problems = []
    for n in ns:
        p = get(n, out)
        if os.path.exists(rep):
            os.unlink(rep)
        if p.returncode == 0:
            names = sorted(os.listdir(good))
            if sorted(os.listdir(out)) != names or not all(
                    filecmp.cmp(os.path.join(good, f), os.path.join(out, f), shallow=False)
                    for f in names):
                problems.append("N=%d: exit 0 with other files" % n)
        elif p.returncode not in FAILED_OK:
            problems.append("N=%d: exit %r: %s" % (n, p.returncode, p.err.strip()[-200:]))
    t.ok("vault get: right files or an error", not problems, "; ".join(problems[:5]))


def main():
    t = Tap()
    if os.environ.get("SEALPOST_ASAN") == "1":
        print("ok faults-cli # SKIP under ASan: the preload shim and ASan both "
              "interpose malloc")
        return 0
    if not t.ok("fault shim built", os.path.exists(SHIM), SHIM):
        return t.done()
    seed = int(os.environ.get("SPTEST_SEED") or time.time_ns() % (1 << 32))
    t.diag("seed %d (set SPTEST_SEED to repeat)" % seed)
    rng = random.Random(seed)
    with Instance() as inst:
        walk_user_add(t, inst, rng)
        walk_vault_get(t, inst, rng)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
