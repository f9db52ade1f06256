#!/usr/bin/python3
"""test_sms_caps — cost and abuse controls and code expiry of the mTAN flow.

A short mtan_ttl: a code past it is refused (and not counted as a wrong
attempt). Caps answered with 429 and Retry-After: per number per hour, per
sender per day, global per hour (each seen in /metrics by reason).
Allowed/denied prefixes refuse a send at creation (422). Failover on an
exec route that exits 75; a route that refuses the SMS (exit 67) stops it
without trying the next one.
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

from sptest import Instance, Tap  # noqa: E402
from sphttp import api_get, create_key, create_send, http, start_http  # noqa: E402

t = Tap()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

EXEC = """#!/bin/sh
# exit code from the first argument; the SMS goes nowhere
cat >/dev/null
echo "{name}-$$"
exit {code}
"""


def token(url):
    return url.rsplit("/", 1)[1]


def request_code(inst, path):
    return http(inst, "POST", path + "/mtan", b"", FORM)


def post_code(inst, path, code):
    return http(inst, "POST", path, urllib.parse.urlencode({"code": code}).encode(), FORM)


def sms_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in open(path)]


def metric(inst, name, label):
    _, _, b = http(inst, "GET", "/metrics")
    want = f"sealpost_{name}{{{label}}} "
    for line in b.decode().splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    return 0.0


def main():
    with Instance(init=False) as inst:
        d = inst.dir
        scripts = {}
        for name, code in (("temp", 75), ("perm", 67)):
            p = os.path.join(d, f"sms-{name}")
            with open(p, "w") as f:
                f.write(EXEC.format(name=name, code=code))
            os.chmod(p, 0o755)
            scripts[name] = p
        out = os.path.join(d, "sms.jsonl")
        inst.merge_conf(f"""
[outbound]
relayhost = 127.0.0.1:9
[sendlink]
mtan_ttl = 2s
mtan_max_sends = 3
[sms]
routes = busy, file
max_per_number_hour = 2
max_per_sender_day = 4
max_global_hour = 6
allowed_prefixes = +41, +49
denied_prefixes = +4190
[relay busy]
driver = exec
command = {scripts["temp"]} {{to}}
[relay file]
driver = file
path = {out}
[relay refuse]
driver = exec
command = {scripts["perm"]} {{to}}
[plan pro]
mtan = yes
""")
        inst.write_conf()
        inst.run("init")
        inst.add_user("alice", plan="pro")
        inst.add_user("bob", plan="pro")
        ka, kb = create_key(inst, "alice"), create_key(inst, "bob")
        start_http(inst)

        def send(key, phone):
            st, _, doc = create_send(inst, key, {"to": "r@example.org", "protect": "mtan",
                                                 "phone": phone}, ("f.txt", b"payload"))
            return st, doc

        # -- prefixes at creation -----------------------------------------------
        for phone, why in (("+33612345678", "not in allowed_prefixes"),
                           ("+41901234567", "denied prefix")):
            st, doc = send(ka, phone)
            t.ok(f"422 for {phone} ({why})", st == 422 and doc.get("field") == "phone", doc)

        # -- failover past an exec route that exits 75; expiry -------------------
        st, doc = send(ka, "+41790000001")
        s1 = "/s/" + token(doc["url"])
        st, _, _ = request_code(inst, s1)
        lines = sms_lines(out)
        t.ok("exit 75 on the first route: the file route got the SMS",
             st == 200 and len(lines) == 1 and lines[0]["to"] == "+41790000001", (st, lines))
        _, sdoc = api_get(inst, ka, doc["id"])
        t.ok("event names the route that delivered",
             any(e["kind"] == "mtan_sent" and e.get("detail") == "route=file"
                 for e in sdoc["events"]), sdoc["events"])
        code = re.search(r"\d{6}", lines[0]["text"]).group(0) if lines else "000000"
        time.sleep(2.5)
        st, _, page = post_code(inst, s1, code)
        _, sdoc = api_get(inst, ka, doc["id"])
        t.ok("an expired code is refused (403) and says so", st == 403 and b"expired" in page,
             (st, page[:300]))
        t.ok("an expired code is not counted as a wrong attempt", sdoc.get("attempts") == 0, sdoc)

        # -- per number per hour (2) ---------------------------------------------
        st, doc = send(ka, "+41790000002")
        s2 = "/s/" + token(doc["url"])
        r1 = request_code(inst, s2)[0]
        r2 = request_code(inst, s2)[0]
        st, hd, page = request_code(inst, s2)
        t.ok("per number per hour: 3rd SMS to one number is 429 with Retry-After",
             (r1, r2) == (200, 200) and st == 429 and 0 < int(hd.get("retry-after", "0")) <= 3600,
             (r1, r2, st, hd))
        t.ok("metrics: refused reason=per_number",
             metric(inst, "mtan_refused_total", 'reason="per_number"') == 1)

        # -- per sender per day (4): alice has 3 SMS so far ------------------------
        st, doc = send(ka, "+41790000003")
        s3 = "/s/" + token(doc["url"])
        r1 = request_code(inst, s3)[0]
        st, hd, _ = request_code(inst, s3)
        t.ok("per sender per day: alice's 5th SMS is 429", r1 == 200 and st == 429 and
             metric(inst, "mtan_refused_total", 'reason="per_sender"') == 1, (r1, st))

        # -- global per hour (6): bob adds two, the third is over ---------------
        codes = []
        for n in ("4", "5", "6"):
            st, doc = send(kb, "+4179000000" + n)
            codes.append(request_code(inst, "/s/" + token(doc["url"]))[0])
        t.ok("global per hour: the 7th SMS of the hour is 429", codes == [200, 200, 429] and
             metric(inst, "mtan_refused_total", 'reason="global"') == 1, codes)
        t.ok("refused SMS never reached a route", len(sms_lines(out)) == 6, len(sms_lines(out)))

        # -- a route that refuses the SMS stops it (no other route tried) -------
        inst.stop_serve()
        inst.merge_conf("[sms]\nroutes = refuse, file\nmax_global_hour = 0\n"
                        "max_per_sender_day = 0\n")
        inst.write_conf()
        start_http(inst)
        st, doc = send(kb, "+49151000001")
        before = len(sms_lines(out))
        st, hd, _ = request_code(inst, "/s/" + token(doc["url"]))
        _, sdoc = api_get(inst, kb, doc["id"])
        t.ok("exit 67 refuses the SMS: 503, the next route is not tried",
             st == 503 and len(sms_lines(out)) == before and
             any(e["kind"] == "mtan_failed" and "refused" in (e.get("detail") or "")
                 for e in sdoc["events"]), (st, sdoc["events"]))
        t.ok("a refused SMS is given back to the caps", sdoc.get("mtan_sends") == 0, sdoc)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        import traceback
        traceback.print_exc()
        t.ok("test ran to the end", False, repr(e))
    sys.exit(t.done())
