#!/usr/bin/python3
"""The store's WAL stays bounded while `serve` commits (checkpoints).

smtpd's committer never checkpoints inside its COMMITs: when its WAL has
passed DB_CHECKPOINT_PAGES (1,000 pages) it asks the checkpointer thread,
which checkpoints on its own store connection while batches go on
committing (lib/db.h, smtpd/smtpd_pool.c). A delivery adds about six WAL
pages, so 600 messages take the WAL well past that point several times.
While they are sent, the WAL file's size is sampled: it must stay far below
what it reaches when nobody checkpoints but the committer's own bound
(DB_CHECKPOINT_PAGES_MAX, 4,000 pages, ~16 MB). Every message is answered
250 and is in the vault afterwards; the log has no checkpoint warning.
"""
import os
import smtplib
import sys

SRC = os.environ.get("SEALPOST_SRC", ".")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from sptest import Instance, Tap  # noqa: E402

MESSAGES = 600
PAGE = 4096 + 24  # a WAL frame: page plus frame header
# Pages the WAL may reach: the request is made at 1,000 and a few batches
# commit while the checkpoint runs; the WAL starts over at the first commit
# after a complete checkpoint.
WAL_PAGES_OK = 2000


def main():
    t = Tap()
    with Instance() as inst:
        inst.add_user("alice")
        rcpt = inst.users["alice"]["address"]
        wal = os.path.join(inst.data_dir, "sealpost.db-wal")
        inst.start_serve()
        body = "".join("line %d of a message that fills a few WAL pages\r\n" % i
                       for i in range(40))
        accepted, biggest = 0, 0
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
            s.ehlo("checkpoints.example")
            for i in range(MESSAGES):
                msg = ("From: <sender@example.org>\r\nTo: <%s>\r\nSubject: checkpoint %d\r\n\r\n%s"
                       % (rcpt, i, body))
                try:
                    refused = s.sendmail("sender@example.org", [rcpt], msg)
                    accepted += not refused
                except smtplib.SMTPException as e:
                    t.diag("message %d: %r" % (i, e))
                if os.path.exists(wal):
                    biggest = max(biggest, os.path.getsize(wal))
        t.ok("every message answered 250", accepted == MESSAGES,
             "%d of %d" % (accepted, MESSAGES))
        t.ok("WAL passed the checkpoint point (the test reaches it)",
             biggest > 1000 * PAGE, "largest WAL %d bytes" % biggest)
        t.ok("WAL stays bounded by the checkpointer", biggest < WAL_PAGES_OK * PAGE,
             "largest WAL %d bytes (%d pages)" % (biggest, biggest // PAGE))
        rc = inst.stop_serve()
        t.ok("serve stops with 0", rc == 0, "exit %r" % rc)
        items = inst.vault_list("alice")
        t.ok("every message is in the vault", len(items) == MESSAGES,
             "%d items" % len(items))
        log = inst.serve_log_tail()
        t.ok("no checkpoint warning", "checkpoint:" not in log)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
