#!/usr/bin/env python3
"""Group commit in serve (smtpd/smtpd_pool.c), seen from outside.

Workers prepare messages; the committer thread makes every message
waiting durable in one commit. /metrics counts the commits
(sealpost_smtp_commits_total) and the messages in them
(sealpost_smtp_committed_messages_total), so:

* one session sending one message after another: one commit per message
  (the 250 of one comes after its commit, before the next is sent);
* many sessions at once: fewer commits than messages (batches of more
  than one);
* either way every message that got 250 is in its vault, once.
"""
import os
import smtplib
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sptest  # noqa: E402

SEQUENTIAL = 20           # messages, one session, one after another
SESSIONS = 8              # concurrent sessions in the burst
PER_SESSION = 25          # messages per session in the burst
WORKERS = 4               # enough to prepare several messages at once on any machine

COMMITS = "sealpost_smtp_commits_total"
MESSAGES = "sealpost_smtp_committed_messages_total"


def message(tag):
    return ("From: gc@example.org\r\nSubject: gc %s\r\n\r\n%s\r\n"
            % (tag, ("body %s " % tag) * 200)).encode()


def burst_sender(inst, address, n, acked, errors, lock):
    try:
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
            for i in range(PER_SESSION):
                tag = "b%d-%d" % (n, i)
                if not s.sendmail("gc@example.org", [address], message(tag)):
                    with lock:
                        acked.append(tag)
    except (OSError, smtplib.SMTPException) as e:
        with lock:
            errors.append(repr(e))


def main():
    t = sptest.Tap()
    with sptest.Instance(extra_conf="[server]\nworkers = %d\n" % WORKERS) as inst:
        alice = inst.add_user("alice")
        inst.start_serve()

        _, m0 = inst.metrics()
        acked = []
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
            for i in range(SEQUENTIAL):
                tag = "s%d" % i
                if not s.sendmail("gc@example.org", [alice["address"]], message(tag)):
                    acked.append(tag)
        _, m1 = inst.metrics()

        def delta(a, b, key):
            return b.get(key, 0) - a.get(key, 0)

        t.ok("sequential messages all accepted", len(acked) == SEQUENTIAL, "%d" % len(acked))
        t.ok("one commit per message sent alone",
             delta(m0, m1, COMMITS) == SEQUENTIAL and delta(m0, m1, MESSAGES) == SEQUENTIAL,
             "commits %r messages %r" % (delta(m0, m1, COMMITS), delta(m0, m1, MESSAGES)))

        lock = threading.Lock()
        errors = []
        threads = [threading.Thread(target=burst_sender,
                                    args=(inst, alice["address"], n, acked, errors, lock))
                   for n in range(SESSIONS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        _, m2 = inst.metrics()
        total = SEQUENTIAL + SESSIONS * PER_SESSION
        t.ok("burst messages all accepted", not errors and len(acked) == total,
             "%d of %d, errors %r" % (len(acked), total, errors[:3]))
        commits = delta(m1, m2, COMMITS)
        msgs = delta(m1, m2, MESSAGES)
        t.diag("burst: %d messages in %d commits" % (msgs, commits))
        t.ok("every message committed once", msgs == SESSIONS * PER_SESSION, "messages %r" % msgs)
        t.ok("messages share commits", 0 < commits < msgs, "%r commits for %r" % (commits, msgs))
        inst.stop_serve()

        items = inst.vault_list("alice")
        subjects = [it.get("subject") for it in items]
        missing = [tag for tag in acked if "gc " + tag not in subjects]
        t.ok("every 250 is in the vault", not missing, "missing %r" % missing[:5])
        t.ok("nothing twice", len(subjects) == len(set(subjects)) == len(acked),
             "%d items for %d acknowledged" % (len(subjects), len(acked)))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
