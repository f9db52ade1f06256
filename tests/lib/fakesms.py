"""fakesms — a small loopback HTTP SMS gateway for tests. Standard library only.

    from fakesms import FakeSms

    gw = FakeSms()                       # binds 127.0.0.1 on a free port, serves in a thread
    url = gw.url("/primary")             # http://127.0.0.1:PORT/primary
    gw.set_mode("/primary", "fail")      # ok (default) | fail (503) | slow (sleeps) | nomatch
    reqs = gw.wait_for(1, path="/backup", timeout=10)
    gw.count("/primary")                 # requests seen on a path
    gw.texts("/backup")                  # the SMS texts received there (form or JSON)
    gw.close()

Every request is recorded (path, method, headers, raw body, and the
recipient and text found in a form or JSON body, or in the query string).
Modes per path:
    ok       200 {"sid": "SM…", "accepted": true, "messages": [{"status": "0"}]}
    fail     503 {"error": "gateway down"}
    slow     sleeps `slow_seconds` (default 30) before answering 200
    nomatch  200 {"accepted": false, "messages": [{"status": "2"}]}  (200 but refused)
"""

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _handle(self):
        gw = self.server.gw
        parsed = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"path": parsed.path, "method": self.command,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body, "query": urllib.parse.parse_qs(parsed.query),
               "to": None, "text": None, "time": time.time()}
        ctype = rec["headers"].get("content-type", "")
        fields = {}
        if "json" in ctype:
            try:
                fields = json.loads(body.decode("utf-8"))
            except ValueError:
                fields = {}
        elif body:
            fields = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8")).items()}
        for k, v in rec["query"].items():
            fields.setdefault(k, v[0])
        for k in ("to", "To", "Address", "Recipients"):
            if k in fields:
                v = fields[k]
                rec["to"] = v[0] if isinstance(v, list) else v
        for k in ("text", "Body", "Message", "MessageText"):
            if k in fields:
                rec["text"] = fields[k]
        rec["fields"] = fields
        mode = gw.modes.get(parsed.path, "ok")
        with gw.lock:
            gw.requests.append(rec)
            gw.seq += 1
            seq = gw.seq
        if mode == "slow":
            time.sleep(gw.slow_seconds)
            mode = "ok"
        if mode == "fail":
            status, doc = 503, {"error": "gateway down"}
        elif mode == "nomatch":
            status, doc = 200, {"accepted": False, "messages": [{"status": "2"}]}
        else:
            status, doc = 200, {"sid": f"SM{seq:08d}", "accepted": True,
                                "messages": [{"status": "0", "message-id": f"M{seq:08d}"}]}
        out = json.dumps(doc).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:
            pass  # the client gave up (timeout test)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle


class FakeSms:
    def __init__(self, slow_seconds=30):
        self.modes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.seq = 0
        self.slow_seconds = slow_seconds
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.srv.daemon_threads = True
        self.srv.gw = self
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def set_mode(self, path, mode):
        assert mode in ("ok", "fail", "slow", "nomatch"), mode
        self.modes[path] = mode

    def seen(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def count(self, path=None):
        return len(self.seen(path))

    def texts(self, path=None):
        return [r["text"] for r in self.seen(path) if r["text"] is not None]

    def wait_for(self, n, path=None, timeout=10):
        """The requests on path once there are n (or what arrived by timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.seen(path)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.seen(path)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
