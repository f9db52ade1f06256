#!/usr/bin/env python3
"""GET /metrics counts what the SMTP receiver and the outbound queue do:
messages received, recipients and messages refused by reason, bytes, and
the queue depth gauge. And the serve log names no sender and no subject. Each counter is read before and after, so the test
fails if a counter does not move (or moves wrongly)."""
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sptest  # noqa: E402


def main():
    tap = sptest.Tap()
    with sptest.Instance() as inst:
        alice = inst.add_user("alice")
        inst.start_serve()
        text, before = inst.metrics()
        # Right after start, before anything happened: every family named.
        tap.ok("metrics_served", "# TYPE sealpost_messages_received_total counter" in text and
               "# TYPE sealpost_queue_depth gauge" in text, text[:300])
        msg = b"Subject: metrics\r\nFrom: a@example.org\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30) as c:
            c.sendmail("a@example.org", [alice["address"]], msg)
            try:
                c.sendmail("a@example.org", ["nobody@" + inst.domain], msg)
            except smtplib.SMTPRecipientsRefused:
                pass
        # A bare LF in DATA: read to the real end, 554, session closed.
        c = smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30)
        c.ehlo()
        c.mail("a@example.org")
        c.rcpt(alice["address"])
        c.docmd("DATA")
        c.send(b"Subject: smuggle\r\n\r\nx\n.\r\nmore\r\n.\r\n")
        code, _ = c.getreply()
        tap.ok("bare_lf_refused", code == 554, "got %r" % code)
        c.close()
        time.sleep(0.3)
        _, after = inst.metrics()

        def delta(key):
            return after.get(key, 0) - before.get(key, 0)

        tap.ok("messages_received", delta("sealpost_messages_received_total") == 1,
               "delta %r" % delta("sealpost_messages_received_total"))
        tap.ok("bytes_received", delta("sealpost_message_bytes_received_total") >= len(msg),
               "delta %r" % delta("sealpost_message_bytes_received_total"))
        key = 'sealpost_recipients_refused_total{reason="unknown_user"}'
        tap.ok("recipient_refused_by_reason", delta(key) == 1, "%s delta %r" % (key, delta(key)))
        refused = [k for k in after if k.startswith("sealpost_messages_refused_total")
                   and delta(k) == 1]
        tap.ok("message_refused_by_reason", len(refused) == 1, "refused series %r" % refused)
        tap.ok("queue_depth_gauge", any(k.startswith("sealpost_queue_depth") for k in after),
               "no queue_depth series in %r" % sorted(after)[:20])
        inst.stop_serve()
        # Security property 1: no sender or subject in the logs either.
        log = inst.serve_log_tail(1 << 22)
        tap.ok("log_has_events", "queued_as=" in log, log[-300:])
        tap.ok("no_sender_in_log", "a@example.org" not in log)
        tap.ok("no_subject_in_log", "metrics" not in log.replace("/metrics", "")
               and "smuggle" not in log)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
