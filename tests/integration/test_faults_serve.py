#!/usr/bin/env python3
"""Fault injection across a whole SMTP delivery and a whole send creation
in `sealpost serve` (RULES.md 1, DESIGN.md 6 and 7).

The shim tests/faultinject/faultinject.c ($BUILD/faultinject.so) is
preloaded into serve; it fails the Nth write, fsync, rename or open under
the data directory (SMTP deliveries rename nothing; sends do). A dry run with a trace counts the eligible calls of
the daemon's start, of one SMTP transaction and of one POST /api/v1/sends.
Then N walks across every call of the transaction (a fresh daemon per N,
started with FAULT_N = start calls + N) and after each:

SMTP (one message through MAIL, RCPT, DATA):
* the reply to the final dot is 250, or 4xx (451 4.3.0; with ENOSPC on the
  message's own files 452 4.3.1), never 5xx, never a dropped connection;
* the vault has the old item count, plus one exactly when the reply was
  250 (nothing acknowledged is lost, nothing refused is half there), and
  every item opens with `vault get` and has its body;
* a failed fsync between the message's first file and its commit is never
  answered 250 (SQLite ignores a failed fsync of a directory; that one is
  exempt when sealpost fsynced that directory itself before);
* the daemon keeps serving: one of the next three messages gets 250 (call
  numbers shift a little between runs, as workers open the store lazily,
  so the fault may hit the next message instead).

HTTP (one POST /api/v1/sends with a file):
* the status is 201, or 5xx (never a 2xx without a usable link, never 4xx
  for what is the server's trouble);
* `send list` has the old count, plus one exactly on 201; the new send's
  link gives back the exact bytes;
* a failed fsync between the upload's file and the commit never gives 201;
* the daemon keeps serving: one of the next three POSTs gets 201.

malloc is walked on `sealpost deliver` only (test_faults_deliver.py): in
the daemon, an allocation failure ends the process by design (xmalloc,
GLib), and systemd restarts it. Skipped under ASan (the shim and ASan both
interpose libc).
One "ok NAME" / "not ok NAME - reason" line per check.
"""

import os
import re
import smtplib
import socket
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
sys.path.insert(0, os.path.join(SRC, "tests", "browser"))

from sptest import Instance, Tap, fault_shim, seeded_rng  # noqa: E402
from sphttp import create_key, create_send, http  # noqa: E402

SHIM = fault_shim()
WALK_MAX = int(os.environ.get("SPTEST_FAULT_WALK_MAX") or 80)


def read_trace(path):
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                k, fn, target = (line.rstrip("\n").split(" ", 2) + ["", ""])[:3]
                out.append((int(k) if k.isdigit() else None, fn, target))
        os.unlink(path)
    except OSError:
        pass
    return out


class StartFailed(Exception):
    """The fault hit the daemon's own start (call numbers shift a little
    between runs): serve refused to start, exit 1, as it should."""


class Daemon:
    """serve with the shim preloaded; env as given."""

    def __init__(self, inst, env):
        self.inst = inst
        self.env = env

    def __enter__(self):
        if getattr(self, "started", False):
            return self
        self.started = True
        try:
            log_at = os.path.getsize(self.inst.serve_log)
        except OSError:
            log_at = 0
        try:
            self.inst.start_serve(timeout=20, env=self.env)
        except RuntimeError as e:
            if "at start" in str(e):
                raise StartFailed(str(e)[-300:]) from None
            raise
        # Started means "serve ready" logged (every service started) and
        # /healthz answering: SMTP and HTTP answer while later services
        # (the outbound runner) still start, and serve exits 1 when one
        # of them fails.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                st, _, _ = http(self.inst, "GET", "/healthz", timeout=2)
                if st == 200 and self.ready(log_at):
                    break
            except OSError:
                pass
            if not self.alive():
                # The fault hit a later step of the start (SMTP already
                # answered, then serve gave up): the same as above.
                rc = self.inst.stop_serve()
                raise StartFailed(f"serve exited {rc} during its start")
            time.sleep(0.05)
        return self

    def ready(self, log_at):
        with open(self.inst.serve_log, "rb") as f:
            f.seek(log_at)
            return b"sealpost serve ready" in f.read()

    def __exit__(self, *exc):
        self.inst.stop_serve()
        return False

    def alive(self):
        return self.inst.serve_proc is not None and self.inst.serve_proc.poll() is None


def smtp_send(inst, addr, subject, body):
    """(code of the reply to the final dot, text) or (None, why)."""
    msg = (f"From: faults@sender.example\r\nTo: {addr}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@sender.example>\r\n\r\n{body}\r\n")
    try:
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
            s.ehlo("faults.example")
            code, text = s.mail("faults@sender.example")
            if code != 250:
                return code, text
            code, text = s.rcpt(addr)
            if code != 250:
                return code, text
            code, text = s.data(msg.encode())
            return code, text.decode("ascii", "replace")
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode("ascii", "replace")
    except (OSError, smtplib.SMTPException) as e:
        return None, f"{type(e).__name__}: {e}"


def send_count(inst):
    import json
    p = inst.run("send", "list", "--json", check=False)
    return len(json.loads(p.out)) if p.returncode == 0 else None


def download(inst, url):
    path = url.split(str(inst.http_port), 1)[1]
    st, _, body = http(inst, "POST", path, b"", {
        "Content-Type": "application/x-www-form-urlencoded"})
    return st, body


def trace_env(inst, op, n, trace, errno_name="EIO", path=None):
    e = {"LD_PRELOAD": SHIM, "FAULT_OP": op, "FAULT_N": str(n),
         "FAULT_PATH": path or os.path.realpath(inst.data_dir), "FAULT_ERRNO": errno_name}
    if trace:
        e["FAULT_TRACE"] = trace
    return e


def calls_between(trace, begin_pred, end_pred):
    """Numbers of the eligible calls after the stderr line matching
    begin_pred and up to the one matching end_pred."""
    inside, out = False, []
    last = 0
    for k, fn, tg in trace:
        if k is None:
            if not inside and begin_pred(tg):
                inside = True
            elif inside and end_pred(tg):
                break
            continue
        last = k
        if inside:
            out.append(k)
    return out, last


def smtp_begin(s):
    """The log line that starts a walked SMTP transaction."""
    return "from=<faults@sender.example>" in s or "mail from" in s.lower()


def http_begin(s):
    """The log line after which a walked send creation runs."""
    return "serve ready" in s


def unacked_window(trace, n, dd, begin_pred, done_pred):
    """True when the failed call n sits where a success must not follow:
    after the transaction's first file under DATA_DIR/blobs/ (or tmp/) was
    touched (files serve made before the transaction, such as its spare
    containers, do not count) and
    before its commit line, and it is not SQLite's own fsync of a directory
    that sealpost already fsynced itself (SQLite ignores that failure; the
    store's open fsyncs the directory first, lib/db.c)."""
    began = started = False
    synced_dirs = set()
    for k, fn, tg in trace:
        if k is None:
            began = began or begin_pred(tg)
            if started and done_pred(tg):
                return False
            continue
        if began and (tg.startswith(dd + "/blobs/") or tg.startswith(dd + "/tmp/")):
            started = True
        if k == n:
            if fn == "fdatasync" and tg in synced_dirs:
                return False
            return started
        if fn == "fsync":
            synced_dirs.add(tg)
    return False


def after_commit(trace, n, done_pred):
    for k, fn, tg in trace:
        if k is None and done_pred(tg):
            return True
        if k == n:
            return False
    return False


def walk_smtp(t, inst, addr, op, errno_name, rng, label):
    trace = os.path.join(inst.dir, "trace")
    dd = os.path.realpath(inst.data_dir)
    # Dry run: a marker connection, then one message.
    with Daemon(inst, trace_env(inst, op, 0, trace, errno_name)) as d:
        code, text = smtp_send(inst, addr, f"{label} dry", "dry run")
    tr = read_trace(trace)
    if not t.ok(f"faults-smtp-{label}-dry-run", code == 250, f"{code} {text}"):
        return
    # The transaction's calls: from the session's MAIL to its "delivered".
    calls, _ = calls_between(tr, smtp_begin, lambda s: "status=delivered" in s)
    if not calls:
        # Fall back: every call after the daemon said it is ready.
        calls, _ = calls_between(tr, lambda s: "serve ready" in s, lambda s: False)
    t.diag(f"smtp {label}: {len(calls)} eligible calls in one transaction")
    if len(calls) > WALK_MAX:
        calls = sorted(rng.sample(calls, WALK_MAX))
    problems = []
    fired = 0
    start_failed = 0
    items = inst.vault_list("victim")
    for n in calls:
        before = len(items)
        subj = f"{label} n{n} {rng.randbytes(4).hex()}"
        try:
            d = Daemon(inst, trace_env(inst, op, n, trace, errno_name)).__enter__()
        except StartFailed:
            read_trace(trace)
            start_failed += 1
            continue
        with d:
            code, text = smtp_send(inst, addr, subj, f"body of {subj}")
            # Keeps serving: one of the next three messages gets 250 (the
            # fault may also hit the next one, when a worker opens the
            # store lazily and call numbers shift between runs).
            later = []
            for k in range(3):
                later.append(smtp_send(inst, addr, f"{subj} later{k}", "later"))
                if later[-1][0] == 250:
                    break
            alive = d.alive()
        tr = read_trace(trace)
        hit = [x for x in tr if x[0] == n]
        fired += bool(hit)
        fn, target = (hit[0][1], hit[0][2]) if hit else (None, None)
        done = after_commit(tr, n, lambda s: "status=delivered" in s)
        for c, tx in [(code, text)] + later:
            if c is None or not (c == 250 or 400 <= c < 500):
                problems.append(f"N={n} ({fn} {target}): reply {c} {tx}")
        if op == "fsync" and hit and code == 250 and \
                unacked_window(tr, n, dd, smtp_begin, lambda s: "status=delivered" in s):
            problems.append(f"N={n} ({fn} {target}): failed fsync answered 250")
        in_msg = target is not None and (target.startswith(dd + "/tmp/") or
                                         target.startswith(dd + "/blobs/") or
                                         target.endswith("-wal"))
        if errno_name == "ENOSPC" and hit and in_msg and not done and code != 250 \
                and not (code == 452 and "4.3.1" in str(text)):
            problems.append(f"N={n} ({fn} {target}): ENOSPC answered {code} {text}")
        if later[-1][0] != 250 or not alive:
            problems.append(f"N={n}: daemon did not keep serving: later messages {later}, "
                            f"alive {alive}")
        try:
            items = inst.vault_list("victim")
        except Exception as e:  # noqa: BLE001
            problems.append(f"N={n}: vault list: {e}")
            continue
        want = before + sum(1 for c, _ in [(code, text)] + later if c == 250)
        if len(items) != want:
            problems.append(f"N={n}: replies {code}/{[c for c, _ in later]}, items "
                            f"{before} -> {len(items)}, want {want}")
        mine = [it for it in items if it.get("subject") == subj]
        if mine:
            out = tempfile.mkdtemp(dir=inst.dir)
            g = inst.vault_get("victim", mine[0]["id"], out, check=False)
            try:
                with open(os.path.join(out, "body.txt")) as f:
                    ok = f"body of {subj}" in f.read()
            except OSError:
                ok = False
            if g.returncode != 0 or not ok:
                problems.append(f"N={n}: item {mine[0]['id']} does not open or lost its body")
    t.ok(f"faults-smtp-{label}-walk", not problems, "; ".join(problems[:5]) +
         (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    t.ok(f"faults-smtp-{label}-fired", fired > 0, "the fault never fired")
    if start_failed:
        t.diag(f"smtp {label}: {start_failed} runs where the fault hit the daemon's start "
               f"(serve exited 1, as it should)")


def walk_http(t, inst, key, op, rng, label):
    trace = os.path.join(inst.dir, "trace")
    dd = os.path.realpath(inst.data_dir)
    with Daemon(inst, trace_env(inst, op, 0, trace)) as d:
        st, _, doc = create_send(inst, key, {"to": "r@example.net", "protect": "none"},
                                 ("dry.bin", b"dry run"))
    tr = read_trace(trace)
    if not t.ok(f"faults-http-{label}-dry-run", st == 201, f"{st} {doc}"):
        return
    calls, _ = calls_between(tr, http_begin, lambda s: "send: created" in s)
    t.diag(f"http {label}: {len(calls)} eligible calls in one send creation")
    if len(calls) > WALK_MAX:
        calls = sorted(rng.sample(calls, WALK_MAX))
    problems = []
    fired = 0
    start_failed = 0
    for n in calls:
        before = send_count(inst)
        data = rng.randbytes(rng.randint(1000, 150000))
        try:
            d = Daemon(inst, trace_env(inst, op, n, trace)).__enter__()
        except StartFailed:
            read_trace(trace)
            start_failed += 1
            continue
        with d:
            st, _, doc = create_send(inst, key, {"to": "r@example.net", "protect": "none"},
                                     (f"f{n}.bin", data))
            later = []
            for k in range(3):
                st2, _, _ = create_send(inst, key, {"to": "r@example.net", "protect": "none"},
                                        ("later.bin", b"later"))
                later.append(st2)
                if st2 == 201:
                    break
            got = download(inst, doc["url"]) if st == 201 and doc else None
            alive = d.alive()
        tr = read_trace(trace)
        hit = [x for x in tr if x[0] == n]
        fired += bool(hit)
        fn, target = (hit[0][1], hit[0][2]) if hit else (None, None)
        for c in [st] + later:
            if not (c == 201 or 500 <= c < 600):
                problems.append(f"N={n} ({fn} {target}): status {c} {doc}")
        if op == "fsync" and hit and st == 201 and \
                unacked_window(tr, n, dd, http_begin, lambda s: "send: created" in s):
            problems.append(f"N={n} ({fn} {target}): failed fsync answered 201")
        if st == 201 and (got is None or got[0] != 200 or got[1] != data):
            problems.append(f"N={n}: 201 but the link gives {got[0] if got else None}")
        if later[-1] != 201 or not alive:
            problems.append(f"N={n}: daemon did not keep serving: later POSTs {later}")
        after = send_count(inst)
        want = (before or 0) + sum(1 for c in [st] + later if c == 201)
        if after != want:
            problems.append(f"N={n}: statuses {st}/{later}, sends {before} -> {after}, "
                            f"want {want}")
    t.ok(f"faults-http-{label}-walk", not problems, "; ".join(problems[:5]) +
         (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    t.ok(f"faults-http-{label}-fired", fired > 0, "the fault never fired")
    if start_failed:
        t.diag(f"http {label}: {start_failed} runs where the fault hit the daemon's start "
               f"(serve exited 1, as it should)")


def main():
    t = Tap()
    if os.environ.get("SEALPOST_ASAN") == "1":
        print("ok faults-serve # SKIP under ASan: the preload shim and ASan both interpose libc")
        return 0
    if not os.path.exists(SHIM):
        t.ok("faults-shim-built", False, f"{SHIM} missing")
        return t.done()
    rng = seeded_rng(t)
    conf = "[mailin]\ndkim_verify = no\nspf = no\ngreet_pause = 0s\n" \
           "[outbound]\nrelayhost = 127.0.0.1:9\n"
    with Instance(extra_conf=conf) as inst:
        try:
            u = inst.add_user("victim")
            inst.run("user", "show", "victim")
            key = create_key(inst, "victim")
            t0 = time.monotonic()
            # No rename walk for SMTP: a delivery writes its containers
            # under their final names and renames nothing.
            for op, err, label in (("write", "EIO", "write"), ("write", "ENOSPC", "enospc"),
                                   ("fsync", "EIO", "fsync"), ("open", "EIO", "open")):
                walk_smtp(t, inst, u["address"], op, err, rng, label)
            for op, label in (("write", "write"), ("fsync", "fsync"), ("rename", "rename"),
                              ("open", "open")):
                walk_http(t, inst, key, op, rng, label)
            t.diag(f"walks took {time.monotonic() - t0:.0f}s")
        except Exception:  # noqa: BLE001
            t.ok("test-ran-to-the-end", False, traceback.format_exc())
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
