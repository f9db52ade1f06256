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
* `user address add` / `user address remove`: exit 0 and the address is
  there and takes mail / retired and refuses it, or an error exit and the
  user's addresses exactly as before.
* `vault get`: exit 0 and every file byte for byte as without faults, or
  exit non-zero; never a signal but an out-of-memory abort.
* `send create`: exit 0 and the link's page loads with a code to give, or
  an error exit; every realloc fails once, then a sample of allocations
  (see walk_send_create for the two bugs this found).

Skipped under ASan (the shim's malloc would fight ASan's).
"""
import base64
import filecmp
import json
import os
import shutil
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from sptest import Instance, Tap, fault_shim, malloc_sample, seeded_rng  # noqa: E402

SHIM = fault_shim()
SAMPLES = int(os.environ.get("SPTEST_FAULT_MALLOC_SAMPLES") or 40)
LAST_N = 20               # the allocations after user add's commit, and more
ABORTS = (-signal.SIGABRT, -signal.SIGTRAP)
FAILED_OK = (1, 75) + ABORTS


def walk(t, inst, rng, label, run, judge, what, op="malloc", every=False):
    """One malloc walk of a command. run(env) runs it once with the shim's
    environment; judge(n, p) names what is wrong with the run that failed
    allocation n (None: nothing). The dry run (no fault) counts the
    allocations and must succeed. op: the shim's FAULT_OP (malloc, or
    realloc: those calls only); every: fail each call once, not a sample."""
    rep = os.path.join(inst.dir, "fault.report")

    def faulted(n):
        p = run({"LD_PRELOAD": SHIM, "FAULT_OP": op, "FAULT_N": str(n),
                 "FAULT_REPORT": rep})
        calls = None
        if os.path.exists(rep):
            with open(rep) as f:
                calls = int(f.read().split()[0].split("=")[1])
            os.unlink(rep)
        return p, calls

    p, calls = faulted(0)
    if not t.ok("%s: dry run" % label, p.returncode == 0 and calls,
                "exit %r, %r allocations" % (p.returncode, calls)):
        return
    ns = range(1, calls + 1) if every else malloc_sample(calls, rng, SAMPLES, last=LAST_N)
    t.diag("%s: %d calls of %s, %d failed in turn" % (label, calls, op, len(ns)))
    problems = []
    for n in ns:
        p, _ = faulted(n)
        if p.returncode not in (0,) + FAILED_OK:
            problems.append("N=%d: exit %r: %s" % (n, p.returncode, p.err.strip()[-200:]))
        else:
            why = judge(n, p)
            if why:
                problems.append("N=%d: %s" % (n, why))
    t.ok("%s: %s" % (label, what), not problems, "; ".join(problems[:5]))


def walk_user_add(t, inst, rng):
    name = ["dryrun"]

    def add(env=None):
        return inst.run("user", "add", name[0], "--email", name[0] + "@example.org", "--json",
                        "--password-stdin", input="pw-%s-secret\n" % name[0], check=False,
                        env=env)

    def run(env):
        if env["FAULT_N"] != "0":
            name[0] = "fa" + env["FAULT_N"]
        return add(env)

    def judge(n, p):
        if p.returncode == 0:
            doc = json.loads(p.out)
            lst = inst.run("vault", "list", name[0], "--json", "--password-stdin",
                           input="pw-%s-secret\n" % name[0], check=False)
            got = inst.deliver(b"Subject: hi\r\n\r\nhello\r\n", doc["address"])
            if lst.returncode != 0 or got != 0 or not doc.get("recovery_code"):
                return "exit 0 but list %r, deliver %r" % (lst.returncode, got)
            return None
        again = add()
        if again.returncode != 0:
            return "exit %r left a user behind (adding it again: %s)" % (
                p.returncode, again.err.strip()[-200:])
        return None

    walk(t, inst, rng, "user add", run, judge, "never a half user")


def walk_user_address(t, inst, rng):
    inst.add_user("addr")
    state = {}

    def addresses():
        """{address: retired} of the user."""
        p = inst.run("user", "show", "addr", "--json")
        return {a["address"]: a["retired"] for a in json.loads(p.out)["addresses"]}

    def changed(before, after):
        return "addresses %r -> %r" % (
            {k: v for k, v in before.items() if after.get(k) != v},
            {k: v for k, v in after.items() if before.get(k) != v})

    def run_add(env):
        state["before"] = addresses()
        return inst.run("user", "address", "add", "addr", check=False, env=env)

    def judge_add(n, p):
        before, after = state["before"], addresses()
        new = set(after) - set(before)
        if p.returncode == 0:
            if len(new) != 1 or any(after[k] != v for k, v in before.items()):
                return "exit 0 but " + changed(before, after)
            got = inst.deliver(b"Subject: hi\r\n\r\nhello\r\n", new.pop())
            return None if got == 0 else "the new address refuses mail (%r)" % got
        return None if after == before else "exit %r but %s" % (p.returncode,
                                                                 changed(before, after))

    def run_remove(env):
        old = addresses()
        inst.run("user", "address", "add", "addr")
        state["before"] = addresses()
        state["gone"] = (set(state["before"]) - set(old)).pop()
        return inst.run("user", "address", "remove", state["gone"], check=False, env=env)

    def judge_remove(n, p):
        before, after = state["before"], addresses()
        if p.returncode == 0:
            want = dict(before, **{state["gone"]: True})
            if after != want:
                return "exit 0 but " + changed(before, after)
            got = inst.deliver(b"Subject: hi\r\n\r\nhello\r\n", state["gone"])
            return None if got != 0 else "the retired address still takes mail"
        return None if after == before else "exit %r but %s" % (p.returncode,
                                                                 changed(before, after))

    walk(t, inst, rng, "user address add", run_add, judge_add, "an address or an error")
    walk(t, inst, rng, "user address remove", run_remove, judge_remove,
         "retired or unchanged")


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
    good = os.path.join(inst.dir, "get-good")
    out = os.path.join(inst.dir, "get-out")

    def run(env):
        d = good if env["FAULT_N"] == "0" else out
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return inst.run("vault", "get", "getter", item, "--out", d, "--password-stdin",
                        input=inst.password("getter") + "\n", check=False, env=env)

    def judge(n, p):
        if p.returncode != 0:
            return None
        names = sorted(os.listdir(good))
        if sorted(os.listdir(out)) != names or not all(
                filecmp.cmp(os.path.join(good, f), os.path.join(out, f), shallow=False)
                for f in names):
            return "exit 0 with other files"
        return None

    walk(t, inst, rng, "vault get", run, judge, "right files or an error")


def walk_send_create(t, inst, rng):
    """`send create`: exit 0 and the link's page loads (the page record is
    in the store) with a code to give, or an error exit. Every realloc
    fails once (glibc's memory stream makes one when it is closed and
    reports nothing when it fails: a send was stored without its page
    record), then a sample of all allocations (an allocation failing in
    OpenSSL's RSA signature of the notification crashed libopendkim's
    dkim_free: OpenSSL now allocates with xmalloc)."""
    inst.add_user("sender")
    f = os.path.join(inst.dir, "send-file.bin")
    with open(f, "wb") as fh:
        fh.write(os.urandom(30000))
    inst.start_serve()

    def run(env):
        return inst.run("send", "create", "--file", f, "--to", "bob@example.org", "--protect",
                        "code", "--user", "sender", "--json", check=False, env=env)

    def judge(n, p):
        if p.returncode != 0:
            return None
        doc = json.loads(p.out)
        path = urllib.parse.urlsplit(doc["url"]).path
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (inst.http_port, path),
                                        timeout=30) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        if status != 200 or not doc.get("code"):
            return "exit 0 but the page answers %d, code %r" % (status, doc.get("code"))
        return None

    walk(t, inst, rng, "send create (realloc)", run, judge, "a working link or an error",
         op="realloc", every=True)
    walk(t, inst, rng, "send create", run, judge, "a working link or an error")
    inst.stop_serve()


def main():
    t = Tap()
    if os.environ.get("SEALPOST_ASAN") == "1":
        print("ok faults-cli # SKIP under ASan: the preload shim and ASan both "
              "interpose malloc")
        return 0
    if not t.ok("fault shim built", os.path.exists(SHIM), SHIM):
        return t.done()
    rng = seeded_rng(t)
    with Instance() as inst:
        walk_user_add(t, inst, rng)
        walk_user_address(t, inst, rng)
        walk_vault_get(t, inst, rng)
        walk_send_create(t, inst, rng)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
