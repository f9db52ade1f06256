#!/usr/bin/python3
"""Recipient lookups: on the I/O thread, and by a worker when that fails.

`serve` answers RCPT from a store connection of its I/O thread, opened at
the first RCPT (smtpd_lookup_ctx); when that connection cannot be had, or
a lookup on it fails or would wait for a lock, a worker does the lookup.

1. Without faults: RCPT answers 250 for a user, 550 5.1.1 for an unknown
   address, 554 5.7.1 for another domain, and a message is delivered.
2. The shim tests/faultinject ($BUILD/faultinject.so) makes the I/O
   thread's open of the store fail: a dry run with a trace counts the
   opens of the delivery lock file up to the first RCPT (the daemon's
   start), then serve runs with FAULT_N = that count + 1, which is the I/O
   thread's store open. RCPT must still answer 250 (from a worker), the
   message be delivered, a second session too, and the shim must report
   exactly one injected fault (the open that was meant).
3. The same for a lookup that fails on an open connection: the shim fails
   one read of the store on the I/O thread (FAULT_THREAD=smtpd-io). A dry
   run with a trace counts that thread's reads of the store up to the
   first RCPT's reply; the last of them belongs to the lookup (the
   connection's open reads the schema before it). With FAULT_N = that
   count, the lookup fails (SQLite's error in the log), RCPT still
   answers 250 from a worker, and the message is delivered.
Skipped under ASan (the shim and ASan both interpose libc).
"""
import os
import smtplib
import sys

SRC = os.environ.get("SEALPOST_SRC", ".")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from sptest import Instance, Tap, fault_shim  # noqa: E402

SHIM = fault_shim()
LOCK_FILE = ".delivery.lock"
STORE_FILE = "sealpost.db"    # the database and its -wal
IO_THREAD = "smtpd-io"        # smtpd_server.c names its I/O thread so
TIMEOUT = 30
CONF = "[mailin]\ndkim_verify = no\nspf = no\ngreet_pause = 0s\n"


def io_reads(trace):
    """Reads counted in a shim trace so far (lines "K FUNCTION TARGET")."""
    try:
        with open(trace, "rb") as f:
            return sum(1 for line in f if not line.startswith(b"- "))
    except FileNotFoundError:
        return 0


def session(inst, rcpts, subject=None):
    """One SMTP session: the RCPT replies, and the DATA reply when subject."""
    out = []
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=TIMEOUT) as s:
        s.ehlo("lookup.example")
        s.mail("sender@example.org")
        for r in rcpts:
            code, msg = s.rcpt(r)
            out.append((code, msg.decode(errors="replace")))
        if subject is not None:
            try:
                code, msg = s.data(("Subject: %s\r\n\r\nhello\r\n" % subject).encode())
            except smtplib.SMTPResponseException as e:
                code, msg = e.smtp_code, e.smtp_error
            out.append((code, msg.decode(errors="replace")))
    return out


def main():
    t = Tap()
    with Instance(extra_conf=CONF) as inst:
        inst.add_user("alice")
        rcpt = inst.users["alice"]["address"]
        unknown = "nobody-here@" + inst.domain
        elsewhere = "someone@elsewhere.example"

        # 1. The I/O thread answers.
        inst.start_serve()
        r = session(inst, [rcpt, unknown, elsewhere], "plain")
        t.ok("RCPT of a user: 250", r[0][0] == 250, repr(r[0]))
        t.ok("RCPT of an unknown address: 550 5.1.1",
             r[1][0] == 550 and r[1][1].startswith("5.1.1"), repr(r[1]))
        t.ok("RCPT of another domain: 554 5.7.1",
             r[2][0] == 554 and r[2][1].startswith("5.7.1"), repr(r[2]))
        t.ok("message delivered", r[3][0] == 250, repr(r[3]))
        t.ok("serve stops with 0", inst.stop_serve() == 0)

        if os.environ.get("SEALPOST_ASAN") == "1":
            print("ok rcpt-lookup-fallback # SKIP under ASan: the shim and ASan both "
                  "interpose libc")
            return t.done()
        if not t.ok("fault shim built", os.path.exists(SHIM), SHIM):
            return t.done()

        # 2. The I/O thread's store does not open: a worker answers.
        data = os.path.realpath(inst.data_dir)
        trace = os.path.join(inst.dir, "trace")
        report = os.path.join(inst.dir, "report")
        env = {"LD_PRELOAD": SHIM, "FAULT_OP": "open", "FAULT_PATH": LOCK_FILE,
               "FAULT_N": "0", "FAULT_TRACE": trace}
        inst.start_serve(timeout=20, env=env)
        inst.stop_serve()
        with open(trace, "rb") as f:
            start_opens = sum(1 for line in f if not line.startswith(b"- "))
        t.diag("%d opens of %s while serve starts" % (start_opens, LOCK_FILE))

        env = {"LD_PRELOAD": SHIM, "FAULT_OP": "open", "FAULT_PATH": LOCK_FILE,
               "FAULT_N": str(start_opens + 1), "FAULT_REPORT": report}
        inst.start_serve(timeout=20, env=env)
        r = session(inst, [rcpt], "after a failed open")
        t.ok("RCPT answered by a worker: 250", r[0][0] == 250, repr(r[0]))
        t.ok("its message delivered", r[1][0] == 250, repr(r[1]))
        r = session(inst, [rcpt, unknown], "second session")
        t.ok("next session, RCPT of a user: 250", r[0][0] == 250, repr(r[0]))
        t.ok("next session, unknown address: 550 5.1.1",
             r[1][0] == 550 and r[1][1].startswith("5.1.1"), repr(r[1]))
        t.ok("next session, message delivered", r[2][0] == 250, repr(r[2]))
        t.ok("serve stops with 0", inst.stop_serve() == 0)
        with open(report) as f:
            rep = f.read()
        t.ok("exactly the one open failed (the I/O thread's)", "fired=1" in rep, rep.strip())
        log = inst.serve_log_tail()
        t.ok("no store error reported (the workers' store opened)",
             "cannot open the store" not in log)

        # 3. A lookup on the I/O thread's open connection fails: a worker answers.
        os.unlink(trace)
        os.unlink(report)
        env = {"LD_PRELOAD": SHIM, "FAULT_OP": "read", "FAULT_PATH": STORE_FILE,
               "FAULT_THREAD": IO_THREAD, "FAULT_N": "0", "FAULT_TRACE": trace}
        inst.start_serve(timeout=20, env=env)
        r = session(inst, [rcpt])
        reads = io_reads(trace)
        inst.stop_serve()
        t.diag("%d reads of the store on %s up to the first RCPT's reply" % (reads, IO_THREAD))
        t.ok("the I/O thread reads the store for RCPT", r[0][0] == 250 and reads > 0,
             "%r, %d reads" % (r, reads))

        env = {"LD_PRELOAD": SHIM, "FAULT_OP": "read", "FAULT_PATH": STORE_FILE,
               "FAULT_THREAD": IO_THREAD, "FAULT_N": str(reads), "FAULT_REPORT": report}
        inst.start_serve(timeout=20, env=env)
        r = session(inst, [rcpt], "after a failed lookup")
        t.ok("failed lookup, RCPT answered by a worker: 250", r[0][0] == 250, repr(r[0]))
        t.ok("failed lookup, its message delivered", r[1][0] == 250, repr(r[1]))
        r = session(inst, [rcpt, unknown])
        t.ok("after it, RCPT of a user: 250", r[0][0] == 250, repr(r[0]))
        t.ok("after it, unknown address: 550 5.1.1",
             r[1][0] == 550 and r[1][1].startswith("5.1.1"), repr(r[1]))
        t.ok("serve stops with 0", inst.stop_serve() == 0)
        with open(report) as f:
            rep = f.read()
        t.ok("exactly the one read failed (the lookup's)", "fired=1" in rep, rep.strip())
        log = inst.serve_log_tail(1 << 20)
        t.ok("the failed lookup is logged", "error: db: " in log,
             " | ".join(ln for ln in log.splitlines() if "db:" in ln or "RCPT" in ln)[-1500:])

        subjects = sorted(it.get("subject") for it in inst.vault_list("alice"))
        t.ok("every message in the vault",
             subjects == ["after a failed lookup", "after a failed open", "plain",
                          "second session"], repr(subjects))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
