#!/usr/bin/python3
"""test_sms_drivers — every SMS relay driver through `sealpost sms test`.

http with a form body and with a JSON body, a GET gateway (everything in the
URL), success_match refusing a 200, an HTTP timeout; exec (JSON on stdin,
{to} as an argument, exit 0 / 75 / other, a timeout); smtp (the mail
reaches the SMTP sink through the outbound queue); file (one JSON line);
the example plug-in built by make (and a plug-in that is refused: wrong
permissions); check-config errors with file:line for bad relays.
"""

import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "browser"))

from fakesms import FakeSms  # noqa: E402
from sptest import SRC, Instance, Tap  # noqa: E402
from sphttp import make_sink, sink_messages  # noqa: E402

t = Tap()
PHONE = "+41791234567"


def plugin_path():
    build = os.environ.get("BUILD", "build")
    p = os.path.join(SRC, build, "plugins", "relay_example.so")
    return p if os.path.exists(p) else os.path.join(SRC, "build", "plugins", "relay_example.so")


EXEC_SCRIPT = """#!/usr/bin/python3
import json, os, sys
doc = json.load(sys.stdin)
with open({out!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "stdin": doc}}) + "\\n")
mode = {mode!r}
if mode == "sleep":
    import time
    time.sleep(30)
if mode == "temp":
    print("provider busy", file=sys.stderr)
    sys.exit(75)
if mode == "perm":
    print("number unknown", file=sys.stderr)
    sys.exit(67)
print("exec-ref-" + doc["id"])
"""


def write_exec(dirpath, name, out, mode):
    p = os.path.join(dirpath, name)
    with open(p, "w") as f:
        f.write(EXEC_SCRIPT.format(out=out, mode=mode))
    os.chmod(p, 0o755)
    return p


def main():
    gw = FakeSms(slow_seconds=10)
    gw.set_mode("/slow", "slow")
    gw.set_mode("/nomatch", "nomatch")
    sink = make_sink()
    inst = Instance(init=False)
    try:
        d = inst.dir
        exec_out = os.path.join(d, "exec.jsonl")
        file_out = os.path.join(d, "sms.jsonl")
        plug_out = os.path.join(d, "plugin.jsonl")
        ok_sh = write_exec(d, "sms-ok", exec_out, "ok")
        temp_sh = write_exec(d, "sms-temp", exec_out, "temp")
        perm_sh = write_exec(d, "sms-perm", exec_out, "perm")
        sleep_sh = write_exec(d, "sms-sleep", exec_out, "sleep")
        so = plugin_path()
        conf = f"""
[outbound]
relayhost = 127.0.0.1:{sink.port}
from = sealpost@test.local
[sms]
routes = form, json, get, nomatch, slow, exec, exectemp, execperm, execslow, mail, file, plugin
route_timeout = 2s
[relay form]
driver = http
url = {gw.url("/form")}
[relay json]
driver = http
url = {gw.url("/json")}
method = PUT
content_type = application/json
header.Authorization = Bearer tok-{{id}}
[relay get]
driver = http
method = GET
url = {gw.url("/get")}?to={{to}}&text={{text}}
[relay nomatch]
driver = http
url = {gw.url("/nomatch")}
success_match = "\\"status\\": *\\"0\\""
[relay slow]
driver = http
url = {gw.url("/slow")}
timeout = 1s
[relay exec]
driver = exec
command = {ok_sh} --to {{to}} --digits {{to_digits}}
[relay exectemp]
driver = exec
command = {temp_sh} {{to}}
[relay execperm]
driver = exec
command = {perm_sh} {{to}}
[relay execslow]
driver = exec
command = {sleep_sh} {{to}}
timeout = 1s
[relay mail]
driver = smtp
address = {{to_digits}}@sms.example.net
subject = code
[relay file]
driver = file
path = sms.jsonl
[relay plugin]
driver = plugin
path = {so}
output = {plug_out}
sender = sealpost-test
"""
        inst.merge_conf(conf)
        inst.write_conf()
        inst.run("init")
        t.ok("example plug-in was built by make", os.path.exists(so), so)
        p = inst.run("check-config", check=False)
        t.ok("check-config accepts every driver", p.returncode == 0, p.err)

        t0 = time.monotonic()
        p = inst.run("sms", "test", PHONE, "--json", check=False, timeout=120)
        took = time.monotonic() - t0
        doc = json.loads(p.out) if p.out.strip().startswith("{") else {}
        r = {x["route"]: x for x in doc.get("routes", [])}
        t.ok("sms test ran every route", len(r) == 12, p.out + p.err)

        def ok(name):
            return r.get(name, {}).get("ok") is True

        # -- http form / JSON / GET -----------------------------------------
        f = gw.seen("/form")
        t.ok("http form: sent", ok("form") and len(f) == 1, r.get("form"))
        t.ok("http form: default body to=…&text=… percent-encoded",
             f and f[0]["headers"].get("content-type") == "application/x-www-form-urlencoded"
             and f[0]["body"].startswith(b"to=%2B41791234567&text=sealpost%20test%20SMS"),
             f[:1])
        j = gw.seen("/json")
        t.ok("http JSON: PUT with the default JSON body", ok("json") and j and
             j[0]["method"] == "PUT" and j[0]["to"] == PHONE and
             "test SMS" in (j[0]["text"] or ""), j[:1])
        t.ok("http JSON: header with {id}", j and j[0]["headers"].get("authorization", "")
             .startswith("Bearer tok-") and len(j[0]["headers"]["authorization"]) > 15, j[:1])
        t.ok("http JSON: provider id from the answer", r.get("json", {}).get("ref", "")
             .startswith("SM"), r.get("json"))
        g = gw.seen("/get")
        t.ok("http GET: number and text in the query", ok("get") and g and
             g[0]["query"].get("to") == [PHONE] and "route get" in g[0]["query"]["text"][0],
             g[:1])
        t.ok("http: 200 that does not match success_match fails",
             r.get("nomatch", {}).get("ok") is False and
             "success_match" in (r.get("nomatch", {}).get("error") or ""), r.get("nomatch"))
        t.ok("http: a hanging gateway times out at the route's timeout",
             r.get("slow", {}).get("ok") is False and
             "timeout" in (r.get("slow", {}).get("error") or "") and
             r["slow"]["latency_ms"] < 5000, r.get("slow"))

        # -- exec -----------------------------------------------------------
        lines = [json.loads(x) for x in open(exec_out)] if os.path.exists(exec_out) else []
        first = lines[0] if lines else {}
        t.ok("exec: {to} and {to_digits} as arguments, no shell",
             first.get("argv") == ["--to", PHONE, "--digits", "41791234567"], first)
        t.ok("exec: JSON on stdin with to, text and an idempotency id",
             first.get("stdin", {}).get("to") == PHONE and
             "test SMS" in first.get("stdin", {}).get("text", "") and
             len(first.get("stdin", {}).get("id", "")) >= 16, first)
        t.ok("exec: exit 0 is sent, first stdout line is the reference",
             ok("exec") and r["exec"].get("ref", "").startswith("exec-ref-"), r.get("exec"))
        t.ok("exec: exit 75 is tempfail (next route)",
             r.get("exectemp", {}).get("status") == "tempfail" and
             "provider busy" in (r["exectemp"].get("error") or ""), r.get("exectemp"))
        t.ok("exec: other exit codes are permfail",
             r.get("execperm", {}).get("status") == "permfail" and
             "67" in (r["execperm"].get("error") or ""), r.get("execperm"))
        t.ok("exec: a command over its timeout is killed",
             r.get("execslow", {}).get("ok") is False and
             "timeout" in (r["execslow"].get("error") or "") and
             r["execslow"]["latency_ms"] < 5000, r.get("execslow"))

        # -- smtp -------------------------------------------------------------
        t.ok("smtp: queued with a queue reference", ok("mail") and
             r["mail"].get("ref", "").startswith("queue:"), r.get("mail"))
        msgs = sink_messages(sink, 1, timeout=20, inst=inst)
        mine = [m for m in msgs if any("41791234567@sms.example.net" in x for x in m.rcpt_tos)]
        t.ok("smtp: the mail reached the SMTP sink at {to_digits}@gateway",
             len(mine) == 1 and b"test SMS via route mail" in mine[0].data.replace(b"=\r\n", b""),
             [m.rcpt_tos for m in msgs])

        # -- file, plug-in ----------------------------------------------------
        fl = [json.loads(x) for x in open(file_out)] if os.path.exists(file_out) else []
        t.ok("file: one JSON line with to and text", ok("file") and len(fl) == 1 and
             fl[0]["to"] == PHONE and "route file" in fl[0]["text"], fl)
        t.ok("file: written 0600", os.path.exists(file_out) and
             stat.S_IMODE(os.stat(file_out).st_mode) == 0o600)
        pl = [json.loads(x) for x in open(plug_out)] if os.path.exists(plug_out) else []
        t.ok("plugin: the example plug-in sent it with its own keys", ok("plugin") and
             len(pl) == 1 and pl[0]["to"] == PHONE and pl[0]["sender"] == "sealpost-test" and
             r["plugin"].get("ref", "").startswith("example-"), (r.get("plugin"), pl))
        t.ok("sms test exit 1 (some routes fail), bounded by the timeouts",
             p.returncode == 1 and took < 60, (p.returncode, took))

        # -- the outbox records each SMS, never the number or text -------------
        db = os.path.join(inst.data_dir, "sealpost.db")
        raw = open(db, "rb").read() + (open(db + "-wal", "rb").read()
                                       if os.path.exists(db + "-wal") else b"")
        t.ok("store: no number in the database files", b"41791234567" not in raw)

        # -- plug-ins that are refused ---------------------------------------
        bad = os.path.join(d, "bad.so")
        with open(so, "rb") as a, open(bad, "wb") as b:
            b.write(a.read())
        os.chmod(bad, 0o666)
        cfg2 = os.path.join(d, "plug.conf")
        with open(inst.conf) as a:
            base = a.read()
        with open(cfg2, "w") as b:
            b.write(base.replace(f"routes = form, json, get, nomatch, slow, exec, exectemp, "
                                 f"execperm, execslow, mail, file, plugin", "routes = plugin")
                    .replace(f"path = {so}", f"path = {bad}"))
        p = inst.run("sms", "test", PHONE, "--json", check=False, conf=cfg2)
        doc2 = json.loads(p.out) if p.out.strip().startswith("{") else {}
        rr = doc2.get("routes", [{}])[0]
        t.ok("plugin writable by others is not loaded", rr.get("status") == "not_loaded" and
             "writable" in (rr.get("error") or ""), p.out + p.err)

        # -- check-config reports bad relays with file:line -------------------
        badconf = os.path.join(d, "bad.conf")
        with open(badconf, "w") as b:
            b.write(base.split("[sms]")[0] + "[sms]\nroutes = h\n[relay h]\ndriver = http\n"
                    "method = GET\nbody = x\n[relay e]\ndriver = exec\ncommand = sms-ok {to}\n"
                    "[relay m]\ndriver = smtp\naddress = sms@gw.example\n")
        p = inst.run("check-config", check=False, conf=badconf)
        t.ok("check-config: http without url is an error at the section's line",
             p.returncode == 1 and f"{badconf}:" in p.err and "driver http needs url" in p.err,
             p.err)
        t.ok("check-config: GET with a body, relative command, address without {to}",
             "a GET request has no body" in p.err and "absolute path" in p.err and
             "must contain {to}" in p.err, p.err)
    finally:
        inst.cleanup()
        gw.close()
        sink.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        import traceback
        traceback.print_exc()
        t.ok("test ran to the end", False, repr(e))
    sys.exit(t.done())
