"""sphttp — helpers shared by the secure-send integration tests
(test_sendlink_api.py, test_sendlink_browser.py). Standard library only.

    inst, sink = instance_with_sink(extra_conf)
    proc = start_http(inst)               # `serve`, waits for GET /healthz
    key = create_key(inst, "alice")
    st, hdrs, body = create_send(inst, key, {"to": "bob@example.org"}, ("a.txt", b"hi"))
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from sptest import Instance  # noqa: E402

try:
    from smtpsink import SmtpSink  # noqa: E402  (tests/lib, from the outbound work)
except ImportError:  # pragma: no cover - only before that lands
    SmtpSink = None


class MiniSink:
    """A tiny loopback SMTP sink, used only when tests/lib/smtpsink.py is absent."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.lock = threading.Lock()

    def start(self):
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        f = conn.makefile("rb")

        def send(s):
            conn.sendall(s.encode() + b"\r\n")

        send("220 sink ESMTP")
        rcpts, data = [], None
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line.decode("utf-8", "replace").strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                conn.sendall(b"250-sink\r\n250 8BITMIME\r\n")
            elif up.startswith("HELO") or up.startswith("MAIL") or up.startswith("RSET"):
                send("250 ok")
            elif up.startswith("RCPT"):
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                send("250 ok")
            elif up == "DATA":
                send("354 go")
                buf = b""
                while True:
                    ln = f.readline()
                    if not ln or ln == b".\r\n":
                        break
                    buf += ln[1:] if ln.startswith(b"..") else ln
                data = buf
                with self.lock:
                    self.messages.append(type("M", (), {"rcpt_tos": rcpts, "data": data})())
                rcpts = []
                send("250 queued")
            elif up == "QUIT":
                send("221 bye")
                break
            else:
                send("250 ok")
        conn.close()

    def wait_for(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.1)
        with self.lock:
            return list(self.messages)

    def close(self):
        self.sock.close()


def make_sink():
    if SmtpSink is not None:
        s = SmtpSink()
    else:
        s = MiniSink()
    s.start()
    return s


def sink_messages(sink, n, timeout=10, inst=None):
    """The sink's messages once n arrived (or what arrived by timeout). With
    inst, `queue flush` pushes the outbound queue first (serve's runner
    would send it too, after its own interval)."""
    if inst is not None:
        inst.run("queue", "flush", check=False)
    try:
        return sink.wait_for(n, timeout=timeout)
    except Exception:  # smtpsink raises on timeout: report what arrived
        return list(getattr(sink, "messages", []))


def start_http(inst, timeout=15):
    """Starts `serve` and waits until GET /healthz answers 200."""
    inst._serve_log_f = open(inst.serve_log, "ab")
    inst.serve_proc = subprocess.Popen(
        [inst.bin, "-c", inst.conf, "serve"], stdin=subprocess.DEVNULL,
        stdout=inst._serve_log_f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inst.serve_proc.poll() is not None:
            raise RuntimeError("serve exited at start: " + inst.serve_log_tail())
        try:
            st, _, body = http(inst, "GET", "/healthz", timeout=2)
            if st == 200:
                return inst.serve_proc
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("serve did not answer /healthz: " + inst.serve_log_tail())


def base(inst):
    return f"http://127.0.0.1:{inst.http_port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(inst, method, path, body=None, headers=None, timeout=30):
    """(status, headers dict with lower-case names, body bytes)."""
    url = path if path.startswith("http") else base(inst) + path
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def multipart(fields, file=None):
    """(content_type, body) of a multipart/form-data request; file = (name, bytes)."""
    boundary = "----sptest" + uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                   .encode() + str(v).encode("utf-8") + b"\r\n")
    if file is not None:
        name, data = file
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                   f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                   .encode("utf-8") + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(out)


def post_expect_continue(inst, path, headers, body, timeout=10):
    """POST with "Expect: 100-continue" the way curl sends uploads: headers
    first, the body only after "100 Continue". Returns (status, raw reply)."""
    s = socket.create_connection(("127.0.0.1", inst.http_port), timeout=timeout)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{inst.http_port}\r\n"
        for k, v in headers.items():
            head += f"{k}: {v}\r\n"
        head += f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        s.sendall(head.encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        if reply.startswith(b"HTTP/1.1 100"):
            s.sendall(body)
            reply = reply.split(b"\r\n\r\n", 1)[1]
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
        return status, reply
    finally:
        s.close()


def create_key(inst, user):
    p = inst.run("apikey", "create", user, "--json")
    return json.loads(p.out)["key"]


def create_send(inst, key, fields, file, headers=None):
    ctype, body = multipart(fields, file)
    h = {"Content-Type": ctype}
    if key:
        h["Authorization"] = "Bearer " + key
    h.update(headers or {})
    st, hd, b = http(inst, "POST", "/api/v1/sends", body, h)
    try:
        doc = json.loads(b)
    except ValueError:
        doc = None
    return st, hd, doc


def api_get(inst, key, sid):
    st, _, b = http(inst, "GET", f"/api/v1/sends/{sid}",
                    headers={"Authorization": "Bearer " + key})
    return st, (json.loads(b) if b else None)


def post_code(inst, url, code, headers=None):
    data = urllib.parse.urlencode({"code": code}).encode() if code is not None else b""
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return http(inst, "POST", url, data, h)


import urllib.parse  # noqa: E402  (used by post_code)
