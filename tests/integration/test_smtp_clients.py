#!/usr/bin/python3
"""Real SMTP clients fill the vaults through `sealpost serve`.

Python's smtplib (plain and with STARTTLS) and swaks (plain and --tls)
deliver the varied message set tests/data/messages/*.eml (plus the 5 MB
attachment message) to several users. Each vault item is read back with
`vault get` and compared with what Python's email package extracts from the
bytes the server received: original.eml ends with them under our trace
headers (Received: with ESMTP/ESMTPS, the TLS comment, "for <rcpt>" for a
single recipient), text and HTML bodies, and every attachment byte for byte.
"""
import os
import re
import smtplib
import ssl
import subprocess
import sys

SRC = os.environ.get("SEALPOST_SRC", ".")
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
sys.path.insert(0, os.path.join(SRC, "tests", "data", "messages"))
import gen_messages  # noqa: E402
from sptest import Instance, Tap, extract_with_email_pkg, norm_text  # noqa: E402

MSG_DIR = os.path.join(SRC, "tests", "data", "messages")
FIXED_FILES = ("original.eml", "body.txt", "body.html")
USERS = ["alice", "bob", "carol"]
CHANNELS = ["smtplib", "smtplib-tls", "swaks", "swaks-tls"]
TIMEOUT = 60


def wire_form(raw):
    """The bytes a client puts on the wire (after unstuffing): CRLF line ends."""
    b = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return b if b.endswith(b"\r\n") else b + b"\r\n"


def send_smtplib(inst, raw, rcpts, tls):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=TIMEOUT) as s:
        s.ehlo("clients.example")
        if tls:
            s.starttls(context=ctx)
            s.ehlo("clients.example")
        refused = s.sendmail("sender@example.org", rcpts, raw)
    return not refused, ""


def send_swaks(inst, raw, rcpts, tls, tmp):
    path = os.path.join(tmp, "msg.eml")
    with open(path, "wb") as f:
        f.write(raw)
    cmd = ["swaks", "--server", "127.0.0.1:%d" % inst.smtp_port, "--from", "sender@example.org",
           "--to", ",".join(rcpts), "--helo", "swaks.example", "--data", "@" + path,
           "--timeout", str(TIMEOUT), "--suppress-data"]
    if tls:
        cmd.append("--tls")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT * 2)
    out = p.stdout.decode("utf-8", "replace")
    ok = p.returncode == 0 and re.search(r"<[-~] +250 2\.0\.0 Ok: queued as", out) is not None
    return ok, out[-600:]


def check_item(t, inst, user, item, label, sent, rcpts, tls):
    ex = extract_with_email_pkg(sent)
    out = os.path.join(inst.out_dir, user, str(item["id"]))
    p = inst.vault_get(user, item["id"], out, check=False)
    if not t.ok("get %s" % label, p.returncode == 0, "exit %d: %s" % (p.returncode, p.err[-300:])):
        return
    with open(os.path.join(out, "original.eml"), "rb") as f:
        orig = f.read()
    prefix = orig[:len(orig) - len(sent)] if orig.endswith(sent) else None
    t.ok("original %s" % label, prefix is not None,
         "original.eml (%d bytes) does not end with the %d bytes sent" % (len(orig), len(sent)))
    if prefix is None:
        return
    rec = prefix.decode("ascii", "replace")
    want_with = "ESMTPS" if tls else "ESMTP"
    problems = []
    if not rec.startswith("Received: from "):
        problems.append("does not start with Received:")
    if not re.search(r"\bwith %s id " % want_with, rec):
        problems.append("no 'with %s'" % want_with)
    if tls and not re.search(r"\(using TLSv1\.[23] with cipher \S+", rec):
        problems.append("no TLS comment")
    if ("for <%s>" % rcpts[0] in rec) != (len(rcpts) == 1):
        problems.append("'for <rcpt>' wrong for %d recipient(s)" % len(rcpts))
    if inst.hostname not in rec:
        problems.append("host name missing")
    for ln in rec.split("\r\n")[:-1]:
        if not re.match(r"^(Received:|Authentication-Results:|[ \t])", ln):
            problems.append("unexpected trace line %r" % ln[:80])
    t.ok("received %s" % label, not problems, "; ".join(problems) + " in %r" % rec[:400])

    def body(name):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    for name, key in (("body.txt", "text"), ("body.html", "html")):
        got = body(name)
        if ex[key] is None:
            t.ok("%s %s" % (key, label), not got, "unexpected %s" % name)
        else:
            t.ok("%s %s" % (key, label), got is not None and norm_text(got) == norm_text(ex[key]),
                 "got %r, want %r" % ((got or "")[:120], ex[key][:120]))
    files = [f for f in sorted(os.listdir(out)) if f not in FIXED_FILES]
    contents = []
    for f in files:
        with open(os.path.join(out, f), "rb") as fh:
            contents.append(fh.read())
    missing = [a["name"] for a in ex["attachments"]
               if "message" not in a and a["data"] not in contents]
    t.ok("attachments %s" % label, not missing and len(files) == len(ex["attachments"]),
         "missing %r; files %r; want %d attachments" % (missing, files, len(ex["attachments"])))


def main():
    t = Tap()
    msgs = {}
    for name in sorted(os.listdir(MSG_DIR)):
        if name.endswith(".eml"):
            with open(os.path.join(MSG_DIR, name), "rb") as f:
                msgs[name] = f.read()
    msgs[gen_messages.BIG_NAME] = gen_messages.big_message()
    with Instance(tls=True) as inst:
        for u in USERS:
            inst.add_user(u)
        inst.start_serve()
        sent = []  # (name, users, sent bytes, tls)
        for i, (name, raw) in enumerate(sorted(msgs.items())):
            channel = CHANNELS[i % len(CHANNELS)]
            if name == gen_messages.BIG_NAME:
                channel = "smtplib-tls"
            users = [USERS[i % 3]] + ([USERS[(i + 1) % 3]] if i % 2 else [])
            rcpts = [inst.users[u]["address"] for u in users]
            tls = channel.endswith("-tls")
            try:
                if channel.startswith("smtplib"):
                    ok, detail = send_smtplib(inst, raw, rcpts, tls)
                else:
                    ok, detail = send_swaks(inst, raw, rcpts, tls, inst.dir)
            except (OSError, smtplib.SMTPException, subprocess.TimeoutExpired) as e:
                ok, detail = False, repr(e)
            t.ok("send %s via %s to %s" % (name, channel, "+".join(users)), ok, detail)
            if ok:
                wire = wire_form(raw)
                if channel.startswith("swaks"):
                    wire += b"\r\n"  # swaks sends "<CRLF>.<CRLF>" after the data's own CRLF
                sent.append((name, users, rcpts, wire, tls, channel))
        for u in USERS:
            items = inst.vault_list(u)
            mine = [s for s in sent if u in s[1]]
            t.ok("count %s" % u, len(items) == len(mine),
                 "got %d items, want %d" % (len(items), len(mine)))
            for name, users, rcpts, wire, tls, channel in mine:
                subj = extract_with_email_pkg(wire)["subject"]
                cands = [it for it in items if it.get("subject") == subj]
                if not t.ok("found %s:%s" % (u, name), len(cands) == 1,
                            "%d items with subject %r" % (len(cands), subj)):
                    continue
                check_item(t, inst, u, cands[0], "%s:%s(%s)" % (u, name, channel), wire, rcpts,
                           tls)
        rc = inst.stop_serve()
        t.ok("serve stops with 0", rc == 0, "exit %r" % rc)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
