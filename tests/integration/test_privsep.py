#!/usr/bin/env python3
"""Privilege separation (issue 6, item 3; DESIGN.md "Process model").

1. The MIME parser child has no network and no write access. The probe shim
   ($BUILD/probe.so) runs an attacker's first move inside the real child,
   right where GMime parses (see tests/faultinject/probe.c): socket+connect,
   open for writing (new file / existing file), unlink, exec. For each:
   the delivery still succeeds (the sealed original is kept, the item is
   flagged parser_failed), the parent logs the child's death by SIGSYS
   (the seccomp filter of mime/mime_child.c), and the effect never happens
   (no connection reaches our listener, the file is not created, changed or
   removed). A control run with the shim loaded and no move parses
   normally.
2. As root with [server] user set (a system user made here and removed at
   the end), `serve` runs every thread as that user with no capabilities,
   and the SMTP-facing code cannot write outside the data directory: the
   probe, running in an SMTP session worker during DATA, can create a file
   in the data dir but not in /tmp, /var/tmp, /dev/shm, the config's
   directory or /, and cannot get root back; the message is still
   delivered (250, then in the vault).

Part 2 needs root (CI runs as root); without it, it is skipped.
One "ok NAME" / "not ok NAME - reason" line per check.
"""

import os
import pwd
import random
import re
import smtplib
import socket
import subprocess
import sys
import traceback

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

from sptest import Instance, Tap  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
PROBE = os.path.join(SRC, BUILD, "probe.so")
SIGSYS = 31


def message(tag):
    return (f"From: probe@sender.example\r\nTo: victim@mailin.test\r\n"
            f"Subject: privsep {tag}\r\nMessage-ID: <privsep-{tag}@sender.example>\r\n"
            f"\r\nBody of {tag}.\r\n").encode()


def preload_env(extra):
    e = {"LD_PRELOAD": PROBE}
    if os.environ.get("SEALPOST_ASAN") == "1":
        e["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    e.update(extra)
    return e


def child_checks(t, inst, addr):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    victim_file = os.path.join(inst.dir, "victim-file")

    def run(move, path=None):
        env = {"PROBE_CHILD": move, "PROBE_PORT": str(port)}
        if path:
            env["PROBE_PATH"] = path
        p = inst.run("deliver", "--to", addr, input=message(move), check=False,
                     env=preload_env(env))
        items = inst.vault_list("victim")
        return p, items

    p, items = run("none")
    mine = [it for it in items if it.get("subject") == "privsep none"]
    t.ok("child-control-parses", p.returncode == 0 and mine and
         "parser_failed" not in str(mine[0].get("flags")),
         f"exit {p.returncode}, items {mine}: {p.err.strip()[-300:]}")

    def killed(p, move):
        m = re.search(r"mime parser failed: reason=\w+, signal=(\d+)", p.err)
        return p.returncode == 0 and m and int(m.group(1)) == SIGSYS, \
            f"exit {p.returncode}, log: {p.err.strip()[-300:]}"

    def flagged(move):
        items = inst.vault_list("victim")
        mine = [it for it in items if "privsep" not in (it.get("subject") or "")
                or it.get("subject") == f"privsep {move}"]
        return any("parser_failed" in str(it.get("flags")) for it in mine)

    # network
    p, _ = run("socket")
    ok, why = killed(p, "socket")
    t.ok("child-socket-killed", ok, why)
    try:
        c, _ = listener.accept()
        c.close()
        connected = True
    except OSError:
        connected = False
    t.ok("child-socket-no-connection", not connected, "the child reached our listener")
    t.ok("child-socket-delivered-flagged", flagged("socket"), "no parser_failed item")

    # a new file
    path = os.path.join(inst.dir, "created-by-child")
    p, _ = run("open-write", path)
    ok, why = killed(p, "open-write")
    t.ok("child-open-write-killed", ok, why)
    t.ok("child-open-write-no-file", not os.path.exists(path), f"{path} exists")

    # an existing file, opened read-write
    with open(victim_file, "w") as f:
        f.write("untouched\n")
    os.chmod(victim_file, 0o666)
    p, _ = run("open-rdwr", victim_file)
    ok, why = killed(p, "open-rdwr")
    t.ok("child-open-rdwr-killed", ok, why)
    with open(victim_file) as f:
        t.ok("child-open-rdwr-unchanged", f.read() == "untouched\n", "file changed")

    p, _ = run("unlink", victim_file)
    ok, why = killed(p, "unlink")
    t.ok("child-unlink-killed", ok, why)
    t.ok("child-unlink-file-kept", os.path.exists(victim_file), "file removed")

    path = os.path.join(inst.dir, "created-by-exec")
    p, _ = run("exec", path)
    ok, why = killed(p, "exec")
    t.ok("child-exec-killed", ok, why)
    t.ok("child-exec-no-file", not os.path.exists(path), f"{path} exists")
    listener.close()


def make_system_user():
    name = "spprv%04d" % random.randint(0, 9999)
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                    "--shell", "/usr/sbin/nologin", name], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return name


def serve_checks(t, user):
    pw = pwd.getpwnam(user)
    with Instance(extra_conf=f"[server]\nuser = {user}\n") as inst:
        os.chmod(inst.dir, 0o711)  # the user must reach its data dir
        u = inst.add_user("victim")
        report = os.path.join(inst.data_dir, "probe.report")
        outside = ["/tmp", "/var/tmp", "/dev/shm", inst.dir, "/"]
        # Make the outside dirs writable to that user by permissions, so
        # that only the confinement can stop the probe.
        own = os.path.join("/tmp", f"sp-privsep-{user}")
        os.makedirs(own, exist_ok=True)
        os.chown(own, pw.pw_uid, pw.pw_gid)
        outside.append(own)
        env = preload_env({"PROBE_WRITE_DIRS": ":".join([inst.data_dir] + outside),
                           "PROBE_REPORT": report})
        inst.start_serve(env=env)
        try:
            pid = inst.serve_proc.pid
            bad = []
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    st = dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)
                if st["Uid"].split() != [str(pw.pw_uid)] * 4 or \
                        st["Gid"].split() != [str(pw.pw_gid)] * 4 or \
                        int(st["CapEff"], 16) != 0 or int(st["CapPrm"], 16) != 0:
                    bad.append(f"thread {tid}: Uid {st['Uid']} Gid {st['Gid']} "
                               f"CapEff {st['CapEff']}")
            t.ok("serve-threads-unprivileged", not bad, "; ".join(bad[:4]))

            with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30) as s:
                s.ehlo("probe.example")
                code, resp = s.mail("probe@sender.example")[0], None
                s.rcpt(u["address"])
                code, resp = s.data(message("serve"))
            t.ok("serve-delivers", code == 250, f"DATA got {code} {resp}")
            items = inst.vault_list("victim")
            t.ok("serve-item-in-vault", any(it.get("subject") == "privsep serve"
                                            for it in items), f"items {items}")
            try:
                with open(report) as f:
                    lines = f.read().split("\n")
            except OSError as e:
                t.ok("serve-probe-ran", False, f"no report: {e}; {inst.serve_log_tail()}")
                return
            res = dict(ln.split(" ", 1) for ln in lines if " " in ln)
            t.ok("serve-probe-ran", inst.data_dir in res, f"report {lines}")
            t.ok("serve-can-write-data-dir", res.get(inst.data_dir) == "ok",
                 f"{inst.data_dir}: {res.get(inst.data_dir)}")
            leaks = [f"{d}: {res.get(d)}" for d in outside if res.get(d) != "errno=13"]
            t.ok("serve-cannot-write-outside", not leaks,
                 "writes outside the data dir: " + "; ".join(leaks))
            t.ok("serve-cannot-regain-root", res.get("setuid0", "").startswith("errno="),
                 f"setuid(0): {res.get('setuid0')}")
            t.ok("serve-log-says-confined", "file writes confined to" in inst.serve_log_tail(
                1 << 20), "no confinement line in the log")
        finally:
            inst.stop_serve()
            subprocess.run(["rm", "-rf", own])


def main():
    t = Tap()
    if not os.path.exists(PROBE):
        t.ok("probe-built", False, f"{PROBE} missing")
        return t.done()
    try:
        with Instance() as inst:
            u = inst.add_user("victim")
            child_checks(t, inst, u["address"])
    except Exception:  # noqa: BLE001
        t.ok("child-checks-ran", False, traceback.format_exc())
    if os.geteuid() != 0:
        print("ok serve-privsep # SKIP not root")
        return t.done()
    user = None
    try:
        user = make_system_user()
        serve_checks(t, user)
    except Exception:  # noqa: BLE001
        t.ok("serve-checks-ran", False, traceback.format_exc())
    finally:
        if user:
            subprocess.run(["userdel", user], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
