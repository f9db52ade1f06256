#!/usr/bin/env python3
"""Outbound notification mail end to end, with a loopback SMTP sink as the
relay host (tests/lib/smtpsink.py).

Mail is queued with build/tools/outbound_tool (it calls outbound_enqueue, as
the HTTP API does) and delivered by `sealpost queue flush` or by serve's
runner (outbound_tool run). Checks:
  - the sink gets the mail once, with the right envelope;
  - its DKIM signature verifies with an independent verifier (Debian's
    python3-dkim), the key taken from `sealpost dkim record --json`;
  - a sender-typed subject or display name cannot add a header;
  - relay down, then up: deferred with a next try, then delivered once;
  - 4xx then 2xx; 5xx: failed at once with a notify_failed event;
  - STARTTLS (libetpan, certificate not verified) and re-EHLO after it;
  - HELO fallback when EHLO is refused;
  - the runner thread delivers mail queued while the relay was down;
  - `queue list --json` shows state, attempts, next try, last reply;
  - the store holds neither the link nor the recipient address in clear.

One "ok NAME" / "not ok NAME - reason" line per check.
"""

import email
import email.policy
import json
import os
import subprocess
import sys
import time
import traceback

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

import dkim  # noqa: E402  Debian's python3-dkim
from smtpsink import SmtpSink  # noqa: E402
from sptest import Instance, Tap, grep_tree  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TOOL = os.path.join(SRC, BUILD, "tools", "outbound_tool")
FROM = "notify@example.org"


def conf(port, extra=""):
    return (f"[outbound]\nrelayhost = 127.0.0.1:{port}\nfrom = {FROM}\n"
            f"retry_min = 1s\nretry_max = 1m\nsmtp_timeout = 5s\n{extra}")


def enqueue(inst, to, subject, text, html="-", send_id="-", from_name="-"):
    p = subprocess.run([TOOL, inst.conf, "enqueue", to, subject, text, html, send_id,
                        from_name], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"enqueue failed: {p.stderr.strip()}")
    return p.stdout.strip()


def events(inst, send_id):
    p = subprocess.run([TOOL, inst.conf, "events", send_id], capture_output=True, text=True,
                       timeout=60, check=True)
    return [tuple(line.split(" ", 1)) for line in p.stdout.splitlines()]


def flush(inst):
    return json.loads(inst.run("queue", "flush", "--json").out)


def qlist(inst):
    return {e["id"]: e for e in json.loads(inst.run("queue", "list", "--json").out)}


def dkim_ok(inst, data):
    rec = json.loads(inst.run("dkim", "record", "--json").out)

    def dnsfunc(name, timeout=5):
        want = rec["name"] + "."
        n = name.decode() if isinstance(name, bytes) else name
        return rec["record"].encode() if n in (want, rec["name"]) else None

    return dkim.verify(data, dnsfunc=dnsfunc)


def header_names(data):
    head = data.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            names.append(line.split(b":", 1)[0].decode().lower())
    return names


def main():
    t = Tap()
    link = "https://send.example/s/LINKTOKEN" + os.urandom(6).hex()
    rcpt = "bob.recipient." + os.urandom(3).hex() + "@example.net"
    sink = SmtpSink().start()
    try:
        with Instance(conf(sink.port)) as inst:
            # -- delivered once, signed ------------------------------------
            qid = enqueue(inst, rcpt, "Ein Dokument für Sie: Grüße", f"Open {link}\n",
                          f"<p><a href=\"{link}\">open</a></p>", "send-one", "Zoë Sender")
            st = flush(inst)
            msgs = sink.wait_for(1, 5)
            t.ok("flush_delivered", st.get("delivered") == 1 and len(msgs) == 1,
                 f"flush={st} sink={msgs}")
            m = msgs[0] if msgs else None
            t.ok("envelope", m and m.mail_from == FROM and m.rcpt_tos == [rcpt],
                 f"got {m}")
            t.ok("dkim_verifies_python3_dkim", m and dkim_ok(inst, m.data))
            parsed = email.message_from_bytes(m.data, policy=email.policy.default) if m else None
            t.ok("subject_round_trip",
                 parsed and str(parsed["subject"]) == "Ein Dokument für Sie: Grüße",
                 f"got {parsed and parsed['subject']!r}")
            t.ok("from_display_name",
                 parsed and parsed["from"].addresses[0].display_name == "Zoë Sender"
                 and parsed["from"].addresses[0].addr_spec == FROM,
                 f"got {parsed and parsed['from']!r}")
            t.ok("multipart_alternative",
                 parsed and parsed.get_content_type() == "multipart/alternative"
                 and [p.get_content_type() for p in parsed.iter_parts()] ==
                 ["text/plain", "text/html"])
            body = parsed.get_body(("plain",)).get_content() if parsed else ""
            t.ok("link_in_body", link in body, f"body={body!r}")
            t.ok("message_id_and_date",
                 parsed and parsed["message-id"] == f"<{qid}@example.org>" and parsed["date"])
            time.sleep(0.5)
            flush(inst)
            t.ok("delivered_exactly_once", len(sink.messages) == 1,
                 f"{len(sink.messages)} messages")
            ev = events(inst, "send-one")
            t.ok("event_notified", ev == [("notified", "notify")], f"got {ev}")
            q = qlist(inst).get(qid, {})
            t.ok("queue_list_sent", q.get("state") == "sent" and q.get("attempts") == 1
                 and q.get("last_error") == "250 2.0.0", f"got {q}")

            # -- header injection through the subject and display name -----
            n0 = len(sink.messages)
            enqueue(inst, rcpt, "hi\r\nBcc: victim@evil.example\r\n\r\nbody", "x",
                    "-", "-", "Eve\r\nX-Injected: 1")
            flush(inst)
            msgs = sink.wait_for(n0 + 1, 5)
            data = msgs[-1].data if len(msgs) > n0 else b""
            names = header_names(data)
            t.ok("no_injected_headers", data and "bcc" not in names
                 and "x-injected" not in names and names.count("subject") == 1,
                 f"headers {names}")
            t.ok("injection_rcpt_unchanged", len(msgs) > n0 and msgs[-1].rcpt_tos == [rcpt])
            t.ok("injected_mail_still_verifies", data and dkim_ok(inst, data))

            # -- bad addresses are refused at enqueue ----------------------
            bad = []
            for a in ("bob@example.net\r\nRCPT TO:<x@y>", "<bob@example.net>", "a b@c.d",
                      "bob@", "bob@exa mple.net", "bob@example.net,eve@evil.example"):
                try:
                    enqueue(inst, a, "s", "t")
                    bad.append(a)
                except RuntimeError:
                    pass
            t.ok("bad_addresses_refused", not bad, f"accepted {bad!r}")

            # -- relay down, then up ---------------------------------------
            n0 = len(sink.messages)
            sink.stop()
            qid = enqueue(inst, rcpt, "later", f"{link} later", "-", "send-down")
            st = flush(inst)
            q = qlist(inst).get(qid, {})
            t.ok("relay_down_deferred", st.get("deferred") == 1 and q.get("state") == "queued"
                 and q.get("attempts") == 1 and q.get("next_try") and q.get("last_error"),
                 f"flush={st} entry={q}")
            sink.start()
            st = flush(inst)
            st2 = flush(inst)
            msgs = sink.wait_for(n0 + 1, 5)
            q = qlist(inst).get(qid, {})
            t.ok("relay_up_delivered_once", st.get("delivered") == 1 and st2.get("delivered") == 0
                 and len(msgs) == n0 + 1 and q.get("state") == "sent" and q.get("attempts") == 2,
                 f"flush={st},{st2} n={len(msgs) - n0} entry={q}")

            # -- 4xx then 2xx ------------------------------------------------
            n0 = len(sink.messages)
            sink.tempfail_next(1)
            qid = enqueue(inst, rcpt, "temp", "t", "-", "send-temp")
            st = flush(inst)
            q = qlist(inst).get(qid, {})
            t.ok("4xx_deferred", st.get("deferred") == 1 and q.get("last_error") == "451 4.3.0",
                 f"flush={st} entry={q}")
            st = flush(inst)
            t.ok("then_2xx_delivered", st.get("delivered") == 1
                 and len(sink.wait_for(n0 + 1, 5)) == n0 + 1
                 and qlist(inst)[qid]["state"] == "sent", f"flush={st}")

            # -- 5xx: failed at once, with an event -------------------------
            n0 = len(sink.messages)
            sink.permfail_next(1)
            qid = enqueue(inst, rcpt, "perm", "t", "-", "send-perm")
            st = flush(inst)
            q = qlist(inst).get(qid, {})
            ev = events(inst, "send-perm")
            t.ok("5xx_failed", st.get("failed") == 1 and q.get("state") == "failed"
                 and q.get("last_error") == "550 5.1.1" and len(sink.messages) == n0,
                 f"flush={st} entry={q}")
            t.ok("event_notify_failed", ev == [("notify_failed", "notify:550 5.1.1")],
                 f"got {ev}")
            st = flush(inst)
            t.ok("failed_not_retried", st.get("delivered") == 0 and st.get("failed") == 0
                 and len(sink.messages) == n0, f"flush={st}")

            # -- serve's runner: relay down when queued, up later ----------
            n0 = len(sink.messages)
            sink.stop()
            qid = enqueue(inst, rcpt, "runner", f"{link} runner", "-", "send-runner")
            runner = subprocess.Popen([TOOL, inst.conf, "run", "30"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(1.5)
            sink.start()
            msgs = sink.wait_for(n0 + 1, 20)
            time.sleep(OUTBOUND_POLL_SECONDS + 1)
            runner.terminate()
            out = runner.communicate(timeout=30)[0].decode("utf-8", "replace")
            q = qlist(inst).get(qid, {})
            t.ok("runner_delivers_after_relay_up",
                 len(sink.messages) == n0 + 1 and q.get("state") == "sent"
                 and q.get("attempts", 0) >= 2 and runner.returncode == 0,
                 f"n={len(sink.messages) - n0} entry={q} rc={runner.returncode} log={out[-800:]}")
            t.ok("runner_event", events(inst, "send-runner") == [("notified", "notify")])

            # -- the link and the address are not in the store in clear -----
            needles = [link.encode(), rcpt.encode(), b"LINKTOKEN"]
            hits, scanned = grep_tree(inst.data_dir, needles)
            t.ok("no_link_or_address_at_rest", scanned > 0 and not hits,
                 f"found in {hits} ({scanned} files scanned)")
            t.ok("queue_list_has_no_address",
                 rcpt not in inst.run("queue", "list", "--json").out)

        # -- STARTTLS and HELO fallback, each with its own sink ------------
        with Instance(conf(9)) as inst:  # port replaced per sink below
            certdir = inst.dir
            cert, key = os.path.join(certdir, "c.pem"), os.path.join(certdir, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-subj", "/CN=sink.test", "-days", "2", "-keyout", key,
                            "-out", cert], check=True, capture_output=True)
            with SmtpSink(tls=(cert, key)) as tsink:
                inst.merge_conf(conf(tsink.port))
                inst.write_conf()
                enqueue(inst, rcpt, "tls", "t")
                st = flush(inst)
                msgs = tsink.wait_for(1, 5)
                ehlos = [c for c in tsink.commands if c.upper().startswith("EHLO")]
                t.ok("starttls_used", st.get("delivered") == 1 and msgs and msgs[0].tls,
                     f"flush={st} msgs={msgs}")
                t.ok("ehlo_again_after_starttls", len(ehlos) == 2, f"commands {tsink.commands}")
                t.ok("tls_mail_verifies", msgs and dkim_ok(inst, msgs[0].data))
            with SmtpSink(ehlo=False) as hsink:
                inst.merge_conf(conf(hsink.port))
                inst.write_conf()
                enqueue(inst, rcpt, "helo", "t")
                st = flush(inst)
                msgs = hsink.wait_for(1, 5)
                t.ok("helo_fallback", st.get("delivered") == 1 and msgs
                     and any(c.upper().startswith("HELO") for c in hsink.commands),
                     f"flush={st} commands={hsink.commands}")
            with SmtpSink(greeting="421 4.3.2 busy") as gsink:
                inst.merge_conf(conf(gsink.port))
                inst.write_conf()
                qid = enqueue(inst, rcpt, "busy", "t")
                st = flush(inst)
                q = qlist(inst).get(qid, {})
                t.ok("421_greeting_deferred", st.get("deferred") == 1
                     and q.get("last_error") == "421 4.3.2", f"flush={st} entry={q}")
    except Exception:
        t.ok("no_exception", False, traceback.format_exc())
    finally:
        sink.close()
    return t.done()


OUTBOUND_POLL_SECONDS = 2

if __name__ == "__main__":
    sys.exit(main())
