#!/usr/bin/python3
"""test_sms_flow — mTAN by SMS end to end against a live `sealpost serve`.

Two SMS providers on a fake loopback gateway (tests/lib/fakesms.py):
"primary" (http, form) that is down (503) and "backup" (http, JSON) that
works. Covers the issue's "done means": `sms test` shows both routes, and a
recipient opens an mTAN send with the code from the SMS while the first
provider is down. Also: page views (GET/HEAD) send no SMS, GET on …/mtan
sends none, cross-site posts send none, the route that delivered is in the
send's events and in /metrics, a fresh code invalidates the old one, a code
opens the file once, cool-down (a failing route is passed over, then
probed and back in line), per-send cap 429, and that no number or code
lands in the data directory.
"""

import json
import os
import re
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "browser"))

from fakesms import FakeSms  # noqa: E402
from sptest import Instance, Tap, grep_tree  # noqa: E402
from sphttp import api_get, create_key, create_send, http, make_sink, start_http  # noqa: E402

t = Tap()
PHONE = "+41791234567"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def token(url):
    return url.rsplit("/", 1)[1]


def code_in(text):
    m = re.search(r"\b(\d{6,8})\b", text or "")
    return m.group(1) if m else None


def post_code(inst, url, code, headers=None):
    h = dict(FORM)
    h.update(headers or {})
    return http(inst, "POST", url, urllib.parse.urlencode({"code": code}).encode(), h)


def request_code(inst, url, headers=None):
    h = dict(FORM)
    h.update(headers or {})
    return http(inst, "POST", url + "/mtan", b"", h)


def events(inst, key, sid):
    st, doc = api_get(inst, key, sid)
    return doc.get("events", []) if doc else []


def metric(inst, name, label=None):
    st, _, b = http(inst, "GET", "/metrics")
    want = f"sealpost_{name}" + (f"{{{label}}}" if label else "")
    for line in b.decode().splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return 0.0


def main():
    gw = FakeSms()
    gw.set_mode("/primary", "fail")
    sink = make_sink()
    conf = f"""
[outbound]
relayhost = 127.0.0.1:{sink.port}
from = sealpost@test.local
[sendlink]
mtan_max_sends = 3
mtan_ttl = 5m
max_downloads = 5
sms_template = Code {{code}} from {{sender}}, valid {{minutes}} min
[sms]
routes = primary, backup
route_timeout = 5s
failure_threshold = 2
cooldown = 3s
[relay primary]
driver = http
url = {gw.url("/primary")}
body = to={{to}}&text={{text}}&ref={{id}}
[relay backup]
driver = http
url = {gw.url("/backup")}
content_type = application/json
body = {{"to": "{{to}}", "text": "{{text}}", "id": "{{id}}"}}
header.X-Api-Key = test-key
success_match = "\\"accepted\\": *true"
[plan pro]
mtan = yes
[plan free]
mtan = no
"""
    with Instance(extra_conf=conf) as inst:
        p = inst.run("check-config", check=False)
        t.ok("check-config accepts two SMS providers", p.returncode == 0, p.err)

        # -- sms test shows both routes (first one down) ------------------
        p = inst.run("sms", "test", PHONE, "--json", check=False)
        doc = json.loads(p.out) if p.out.strip().startswith("{") else {}
        routes = {r["route"]: r for r in doc.get("routes", [])}
        t.ok("sms test reports both routes in order",
             [r["route"] for r in doc.get("routes", [])] == ["primary", "backup"], p.out)
        t.ok("sms test: primary failed with the gateway's 503",
             routes.get("primary", {}).get("ok") is False and
             "503" in (routes.get("primary", {}).get("error") or ""), routes.get("primary"))
        t.ok("sms test: backup ok with provider id and latency",
             routes.get("backup", {}).get("ok") is True and
             (routes.get("backup", {}).get("ref") or "").startswith("SM") and
             isinstance(routes.get("backup", {}).get("latency_ms"), int), routes.get("backup"))
        t.ok("sms test exits 1 when a route fails", p.returncode == 1, p.returncode)
        t.ok("sms test never prints the full number", PHONE not in p.out and "+41" in p.out, p.out)
        sent = gw.seen("/backup")
        t.ok("test SMS reached the backup gateway as JSON with the header",
             len(sent) == 1 and sent[0]["to"] == PHONE and "test SMS" in (sent[0]["text"] or "")
             and sent[0]["headers"].get("x-api-key") == "test-key", sent)
        form = gw.seen("/primary")
        t.ok("primary got a form with the number percent-encoded",
             len(form) == 1 and b"to=%2B41791234567" in form[0]["body"], form[:1])
        p = inst.run("sms", "test", PHONE, check=False)
        t.ok("sms test (text) lists both routes", "primary" in p.out and "backup" in p.out and
             "1 of 2" in p.out, p.out)
        p = inst.run("sms", "test", "0791234567", check=False)
        t.ok("sms test refuses a number that is not E.164", p.returncode == 1, p.err)
        # Two failures of primary: it now cools down (failure_threshold = 2).
        gw.set_mode("/primary", "ok")
        time.sleep(3.2)  # cooldown over, primary healthy again: reset its health with a probe
        p = inst.run("sms", "test", PHONE, "--json", check=False)
        t.ok("sms test exits 0 when every route works", p.returncode == 0, p.out)
        gw.set_mode("/primary", "fail")
        base_primary = gw.count("/primary")
        base_backup = gw.count("/backup")

        inst.add_user("alice", plan="pro", email="alice@example.org")
        inst.add_user("frank", plan="free", email="frank@example.org")
        key = create_key(inst, "alice")
        fkey = create_key(inst, "frank")
        start_http(inst)

        # -- creation rules ------------------------------------------------
        st, _, d = create_send(inst, fkey, {"to": "bob@example.org", "protect": "mtan",
                                            "phone": PHONE}, ("a.txt", b"x"))
        t.ok("plan without mtan: 403", st == 403 and d and d.get("field") == "protect", (st, d))
        for bad in ("0791234567", "+0791234567", "+41 79 123", "+4179123456789012"):
            st, _, d = create_send(inst, key, {"to": "bob@example.org", "protect": "mtan",
                                               "phone": bad}, ("a.txt", b"x"))
            t.ok(f"phone {bad!r} is not E.164: 422", st == 422 and d.get("field") == "phone",
                 (st, d))

        data = os.urandom(50000)
        st, _, d = create_send(inst, key, {"to": "bob@example.org", "protect": "mtan",
                                           "phone": PHONE, "max_downloads": "5"},
                               ("report.pdf", data))
        t.ok("mtan send created", st == 201 and d["protect"] == "mtan", (st, d))
        url, sid = d["url"], d["id"]
        path = "/s/" + token(url)

        # -- page views send nothing ---------------------------------------
        for _ in range(3):
            st, _, page = http(inst, "GET", path)
        http(inst, "HEAD", path)
        t.ok("page shows the masked number and a POST button",
             st == 200 and b"+41*******67" in page and PHONE.encode() not in page and
             re.search(rb'<form method="post" action="[^"]*/mtan">', page) is not None, page[:3000])
        st, hd, _ = http(inst, "GET", path + "/mtan")
        t.ok("GET …/mtan is 405, POST only", st == 405 and "POST" in hd.get("allow", ""), st)
        st, _, _ = request_code(inst, path, {"Origin": "https://evil.example",
                                             "Sec-Fetch-Site": "cross-site"})
        t.ok("cross-site POST …/mtan refused", st == 403, st)
        time.sleep(0.3)
        t.ok("page views, GET and cross-site posts sent no SMS",
             gw.count("/primary") == base_primary and gw.count("/backup") == base_backup,
             (gw.count("/primary"), gw.count("/backup")))
        st, _, _ = post_code(inst, path, "123456")
        t.ok("a code before any SMS is wrong (403, counted)", st == 403, st)

        # -- done means: first provider down, the code still arrives --------
        st, hd, page = request_code(inst, path)
        t.ok("POST …/mtan: 200 'a code was sent' with the mask", st == 200 and
             b"+41*******67" in page and b'id="info"' in page, (st, page[:500]))
        bk = gw.seen("/backup")[base_backup:]
        t.ok("primary (down) was tried first", gw.count("/primary") == base_primary + 1,
             gw.count("/primary") - base_primary)
        t.ok("backup delivered the SMS to the sender's number",
             len(bk) == 1 and bk[0]["to"] == PHONE, bk)
        text = bk[0]["text"] if bk else ""
        code1 = code_in(text)
        t.ok("SMS text from sms_template with code, sender and minutes",
             code1 is not None and len(code1) == 6 and "from alice" in text and
             "valid 5 min" in text, text)
        t.ok("SMS carries an idempotency id", bool(bk and bk[0]["fields"].get("id")), bk[:1])
        ev = events(inst, key, sid)
        t.ok("send events: mtan_sent with route=backup",
             any(e["kind"] == "mtan_sent" and e.get("detail") == "route=backup" for e in ev), ev)
        t.ok("/metrics: sms_sent_total{route=backup} and failed{route=primary}",
             metric(inst, "sms_sent_total", 'route="backup"') >= 1 and
             metric(inst, "sms_failed_total", 'route="primary"') >= 1,
             http(inst, "GET", "/metrics")[2][-1500:])
        st, hd, body = post_code(inst, path, code1)
        t.ok("recipient opens the mTAN send with the code from the SMS (primary down)",
             st == 200 and body == data and "attachment" in hd.get("content-disposition", ""),
             (st, body[:200]))
        st, _, body = post_code(inst, path, code1)
        t.ok("the same code works once only", st == 403 and body != data, st)

        # -- a fresh code invalidates the old one (primary now cooling down) --
        n_primary = gw.count("/primary")
        request_code(inst, path)
        old = code_in(gw.seen("/backup")[-1]["text"])
        request_code(inst, path)
        new = code_in(gw.seen("/backup")[-1]["text"])
        t.ok("cool-down: after its 2nd failure in a row the primary is passed over",
             gw.count("/primary") == n_primary + 1 and
             metric(inst, "sms_skipped_total", 'route="primary"') >= 1,
             (gw.count("/primary"), n_primary))
        st, _, _ = post_code(inst, path, old)
        t.ok("the previous code no longer works", old != new and st == 403, (old, new, st))
        st, _, body = post_code(inst, path, new)
        t.ok("the newest code works", st == 200 and body == data, st)
        st, hd, page = request_code(inst, path)
        t.ok("mtan_max_sends per link: the 4th SMS is 429", st == 429 and b'id="message"' in page, (st, page[:300]))
        st, doc = api_get(inst, key, sid)
        t.ok("API shows mtan_sends", doc.get("mtan_sends") == 3, doc)

        # -- cool-down over: one probe, primary back in line ----------------
        gw.set_mode("/primary", "ok")
        time.sleep(3.3)
        st, _, d = create_send(inst, key, {"to": "bob@example.org", "protect": "mtan",
                                           "phone": "+41791234568"}, ("b.txt", b"second"))
        p2 = "/s/" + token(d["url"])
        n_primary, n_backup = gw.count("/primary"), gw.count("/backup")
        st, _, _ = request_code(inst, p2)
        t.ok("after the cool-down the primary is probed and delivers",
             st == 200 and gw.count("/primary") == n_primary + 1 and
             gw.count("/backup") == n_backup, (st, gw.count("/primary") - n_primary))
        ev = events(inst, key, d["id"])
        t.ok("events name the primary route now",
             any(e["kind"] == "mtan_sent" and e.get("detail") == "route=primary" for e in ev), ev)
        c2 = code_in(gw.seen("/primary")[-1]["text"])
        st, _, body = post_code(inst, p2, c2)
        t.ok("code via the primary opens the file", st == 200 and body == b"second", st)

        # -- every route down: 503, nothing counted --------------------------
        gw.set_mode("/primary", "fail")
        gw.set_mode("/backup", "fail")
        st, _, d = create_send(inst, key, {"to": "bob@example.org", "protect": "mtan",
                                           "phone": "+41791234569"}, ("c.txt", b"third"))
        p3 = "/s/" + token(d["url"])
        st, hd, _ = request_code(inst, p3)
        t.ok("all routes down: 503 with Retry-After", st == 503 and "retry-after" in hd, (st, hd))
        st, doc = api_get(inst, key, d["id"])
        t.ok("a failed SMS is not counted against the link", doc.get("mtan_sends") == 0 and
             any(e["kind"] == "mtan_failed" for e in doc.get("events", [])), doc)

        # -- no number or code at rest (the store keeps MACs and hashes) ----
        inst.stop_serve()
        needles = [PHONE.encode(), b"41791234567", code1.encode(), new.encode()]
        hits, n = grep_tree(inst.data_dir, needles)
        t.ok("no phone number or code in the data directory", not hits and n > 0, hits)
    gw.close()
    sink.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failed check, not a silent pass
        import traceback
        traceback.print_exc()
        t.ok("test ran to the end", False, repr(e))
    sys.exit(t.done())
