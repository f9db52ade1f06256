#!/usr/bin/python3
"""Crash safety of the SMTP path (RULES.md 1, DESIGN.md property 6).

Senders deliver messages through `serve` in a loop while the daemon is
killed with SIGKILL at random moments and restarted, for CRASH_SECONDS.
Afterwards: every message that got 250 is in its user's vault and opens
(`vault get` gives back its body), `vault list` opens every item (no half
item), and a message never shows up twice.
"""
import os
import random
import re
import signal
import smtplib
import sys
import threading
import time

SRC = os.environ.get("SEALPOST_SRC", ".")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from sptest import Instance, Tap  # noqa: E402

CRASH_SECONDS = 40        # the kill/restart loop
KILL_EVERY = (0.2, 1.5)   # seconds between kills (uniform)
SENDERS = 3
USERS = ["alice", "bob"]
GET_SAMPLE = 25           # acknowledged items opened with vault get (plus the last ones)


def message(tag, size):
    body = ("line %s " % tag) * (size // 16)
    return ("From: crash@example.org\r\nSubject: crash %s\r\n\r\n%s\r\nend %s\r\n"
            % (tag, body, tag)).encode()


def sender(inst, rcpts, stop, acked, lock, rng, n):
    i = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=10) as s:
                while not stop.is_set():
                    i += 1
                    tag = "s%d-%d" % (n, i)
                    to = rng.choice(rcpts)
                    size = rng.choice([200, 4000, 60000, 300000])
                    refused = s.sendmail("crash@example.org", [to[1]], message(tag, size))
                    if not refused:
                        with lock:
                            acked.append((to[0], tag))
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the daemon is down or restarting


def main():
    t = Tap()
    rng = random.Random(os.getpid())
    # Under ASan parses are slow: keep the parser's limits well inside the
    # stop wait, so a worker waiting for a child never holds up the stop.
    extra = "[mailin]\nparser_timeout = 10s\nparser_cpu_limit = 10s\n" \
        if os.environ.get("SEALPOST_ASAN") == "1" else ""
    with Instance(extra_conf=extra) as inst:
        rcpts = [(u, inst.add_user(u)["address"]) for u in USERS]
        inst.start_serve()
        pids = {inst.serve_proc.pid}
        # serve creates every blob directory at start (one fsync of blobs/
        # then, none per commit): 31 x 31 two-letter prefixes.
        blobs = os.path.join(inst.data_dir, "blobs")
        subdirs = [d for d in os.listdir(blobs) if os.path.isdir(os.path.join(blobs, d))]
        t.ok("blob directories prepared at start", len(subdirs) == 31 * 31,
             f"{len(subdirs)} directories under blobs/")
        stop = threading.Event()
        lock = threading.Lock()
        acked = []
        threads = [threading.Thread(target=sender, args=(inst, rcpts, stop, acked, lock,
                                                         random.Random(rng.random()), n))
                   for n in range(SENDERS)]
        for th in threads:
            th.start()
        kills = 0
        end = time.monotonic() + CRASH_SECONDS
        restart_ok = True
        while time.monotonic() < end:
            time.sleep(rng.uniform(*KILL_EVERY))
            inst.stop_serve(signal.SIGKILL)
            kills += 1
            try:
                inst.start_serve(timeout=20)
                pids.add(inst.serve_proc.pid)
            except RuntimeError as e:
                restart_ok = False
                t.diag(str(e))
                break
        time.sleep(1)
        stop.set()
        for th in threads:
            th.join(30)
        # SIGTERM may drain for up to SERVE_DRAIN_SECONDS (30 s, cli_serve.c):
        # wait past that bound before calling a stop stuck (slow ASan builds).
        rc = inst.stop_serve(timeout=45)
        t.ok("restarts", restart_ok and kills > 5, "kills=%d" % kills)
        t.ok("serve stops with 0", rc == 0,
             "exit %r; serve log: %s" % (rc, inst.serve_log_tail(1500).replace("\n", " | ")))
        t.ok("messages acknowledged", len(acked) > 20, "only %d got 250" % len(acked))
        # Each serve's log lines carry its own pid (lib/log.c keeps it).
        with open(inst.serve_log, "rb") as f:
            logged = {int(m) for m in re.findall(rb"^\S+ sealpost\[(\d+)\]: ", f.read(), re.M)}
        t.ok("log lines carry the pid of the serve that wrote them", logged == pids,
             "logged %s, serve pids %s" % (sorted(logged), sorted(pids)))
        t.diag("%d kills, %d messages acknowledged" % (kills, len(acked)))

        for user, _ in rcpts:
            try:
                items = inst.vault_list(user)
            except Exception as e:  # a half item would make the listing fail
                t.ok("list opens %s" % user, False, str(e)[-500:])
                continue
            t.ok("list opens %s" % user, True)
            subjects = [it.get("subject") for it in items]
            want = [tag for u, tag in acked if u == user]
            missing = [tag for tag in want if "crash " + tag not in subjects]
            t.ok("every 250 stored %s" % user, not missing,
                 "%d of %d acknowledged messages missing, e.g. %r"
                 % (len(missing), len(want), missing[:5]))
            dups = sorted({s for s in subjects if subjects.count(s) > 1})
            t.ok("no duplicates %s" % user, not dups, "twice: %r" % dups[:5])
            by_subject = {it.get("subject"): it for it in items}
            sample = want[-5:] + rng.sample(want, min(GET_SAMPLE, len(want)))
            bad = []
            for tag in sorted(set(sample)):
                it = by_subject.get("crash " + tag)
                if it is None:
                    continue
                out = os.path.join(inst.out_dir, user, str(it["id"]))
                p = inst.vault_get(user, it["id"], out, check=False)
                try:
                    with open(os.path.join(out, "body.txt"), "rb") as f:
                        body = f.read().decode()
                except OSError:
                    body = ""
                if p.returncode != 0 or ("end %s" % tag) not in body:
                    bad.append(tag)
            t.ok("items open %s" % user, not bad, "cannot open %r" % bad[:5])
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
