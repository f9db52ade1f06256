"""sptest — shared helpers for sealpost's Python integration tests.

Standard library only. Every integration test (foundation, SMTP, …) builds
on this API; keep the names stable.

    from sptest import Instance, Tap, free_port, extract_with_email_pkg

    t = Tap()
    with Instance() as inst:
        u = inst.add_user("alice")            # {"name", "address", "recovery_code"}
        rc = inst.deliver(msg_bytes, u["address"])
        items = inst.vault_list("alice")
        t.ok("delivered", rc == 0 and len(items) == 1, f"rc={rc}")
    sys.exit(t.done())

The binary is $SEALPOST_BIN (tests/run.sh sets it), else
$SEALPOST_SRC/build/sealpost, else build/sealpost of this checkout.

Config: an Instance writes its config from a dict of sections (see
BASE_SECTIONS). `extra_conf` is parsed here and MERGED into those sections
— "[server]\\nkdf = moderate" overrides the base key, "[plan tiny]\\n…" adds a
section — so the file never holds a section twice, whatever the product's
parser thinks of that. Lines before any section header (e.g. `include =`)
go at the top of the file. Comments in extra_conf are dropped.

SPTEST_KEEP=1 keeps the temp dir (its path is printed to stderr).
"""

import base64
import email
import email.policy
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def sealpost_bin():
    b = os.environ.get("SEALPOST_BIN")
    if b:
        return b
    return os.path.join(SRC, "build", "sealpost")


def fault_shim():
    """Path of the fault-injection shim tests/faultinject ($BUILD/faultinject.so)."""
    return os.path.abspath(os.path.join(SRC, os.environ.get("BUILD", "build"), "faultinject.so"))


def seeded_rng(t):
    """A random.Random for a test's sampled choices: seeded from SPTEST_SEED
    when set, else from the clock; the seed goes to the TAP output so that a
    failing run can be repeated."""
    seed = int(os.environ.get("SPTEST_SEED") or time.time_ns() % (1 << 32))
    t.diag("seed %d (set SPTEST_SEED to repeat)" % seed)
    return random.Random(seed)


def malloc_sample(calls, rng, samples, last=0):
    """Which N of `calls` allocations a malloc walk fails: the first ten, a
    geometric series, the last `last`, and random ones up to `samples`
    (plus those fixed ones), sorted."""
    ns = set(range(1, min(calls, 10) + 1))
    ns.update(range(max(1, calls - last + 1), calls + 1))
    k = 1
    while k < calls:
        ns.add(k)
        k = int(k * 1.6) + 1
    want = samples + (last + 10 if last else 0)
    while len(ns) < want and len(ns) < calls:
        ns.add(rng.randint(1, calls))
    return sorted(ns)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class SealpostError(subprocess.CalledProcessError):
    """A sealpost command that was expected to succeed did not."""

    def __str__(self):
        err = self.stderr
        if isinstance(err, bytes):
            err = err.decode("utf-8", "replace")
        return (f"command {self.cmd!r} exited {self.returncode}: "
                f"{(err or '').strip()[-2000:]}")


def _to_bytes(x):
    if x is None:
        return None
    if isinstance(x, str):
        return x.encode("utf-8")
    return bytes(x)


def _parse_ini_fragment(text):
    """Parses a config fragment into (top_lines, [(section, [(key, value)])])."""
    top = []
    sections = []
    cur = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[([^\]]+)\]", line)
        if m:
            cur = (" ".join(m.group(1).split()), [])
            sections.append(cur)
            continue
        if "=" not in line:
            raise ValueError(f"extra_conf: not 'key = value': {raw!r}")
        k, v = line.split("=", 1)
        if cur is None:
            top.append(f"{k.strip()} = {v.strip()}")
        else:
            cur[1].append((k.strip(), v.strip()))
    return top, sections


def _cleanup_on_sigterm():
    """A SIGTERM (e.g. the runner's timeout) unwinds like an exception, so
    `with Instance()` still stops serve and removes the temp dir."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def handler(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, handler)


class Instance:
    """One sealpost instance in a fresh temp dir: config, data dir, `init` done.

    Attributes: dir, conf, data_dir, smtp_port, http_port, hostname, domain,
    bin, passwords {name: password}, users {name: add_user() result},
    tls (bool), cert, key (paths when tls), serve_log, last (the last
    CompletedProcess).
    """

    hostname = "test.local"
    domain = "mailin.test"

    def __init__(self, extra_conf: str = "", tls: bool = False, init: bool = True):
        _cleanup_on_sigterm()
        self.bin = sealpost_bin()
        self.dir = tempfile.mkdtemp(prefix="sptest-")
        self.data_dir = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "sealpost.conf")
        # Decrypted output (vault get) belongs here: plaintext greps skip
        # every sptest-*/out/ so that concurrent tests don't see each other's.
        self.out_dir = os.path.join(self.dir, "out")
        self.smtp_port = free_port()
        self.http_port = free_port()
        while self.http_port == self.smtp_port:
            self.http_port = free_port()
        self.tls = tls
        self.cert = self.key = None
        self.passwords = {}
        self.users = {}
        self.last = None
        self.serve_proc = None
        self.serve_log = os.path.join(self.dir, "serve.log")
        self._serve_log_f = None
        try:
            self.sections = self._base_sections()
            if tls:
                self._make_cert()
                self.sections.append(("tls", [("cert", self.cert), ("key", self.key)]))
            self.top_lines = []
            self.merge_conf(extra_conf)
            self.write_conf()
            if init:
                self.run("init")
        except BaseException:
            self.cleanup()
            raise

    # -- config ---------------------------------------------------------

    def _base_sections(self):
        return [
            ("server", [
                ("hostname", self.hostname),
                ("data_dir", "data"),
                ("smtp_listen", f"127.0.0.1:{self.smtp_port}"),
                ("http_listen", f"127.0.0.1:{self.http_port}"),
                ("public_url", f"http://127.0.0.1:{self.http_port}"),
                ("kdf", "interactive"),
                # Inside the temp dir, never the production default in /etc.
                ("master_key", "master.key"),
            ]),
            ("mailin", [
                ("domains", self.domain),
                ("postmaster", "admin"),
            ]),
        ]

    def merge_conf(self, extra_conf):
        """Merges a config fragment into self.sections (call write_conf after)."""
        top, secs = _parse_ini_fragment(extra_conf or "")
        self.top_lines.extend(top)
        for name, kvs in secs:
            target = None
            for s in self.sections:
                if s[0] == name:
                    target = s
                    break
            if target is None:
                target = (name, [])
                self.sections.append(target)
            for k, v in kvs:
                for i, (k0, _) in enumerate(target[1]):
                    if k0 == k:
                        target[1][i] = (k, v)
                        break
                else:
                    target[1].append((k, v))

    def conf_text(self):
        out = ["# written by tests/lib/sptest.py"]
        out.extend(self.top_lines)
        for name, kvs in self.sections:
            out.append("")
            out.append(f"[{name}]")
            out.extend(f"{k} = {v}" for k, v in kvs)
        return "\n".join(out) + "\n"

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write(self.conf_text())

    def _make_cert(self):
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-subj", "/CN=" + self.hostname, "-days", "2",
             "-keyout", self.key, "-out", self.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    # -- running commands -----------------------------------------------

    def run(self, *args, input=None, check=True, env=None, text=False, timeout=300,
            conf=None):
        """Runs `$SEALPOST_BIN -c CONF args…` (conf= another config file).

        input: str or bytes (str is UTF-8 encoded). Returns a CompletedProcess
        whose stdout/stderr are bytes (text=False) or str (text=True); in both
        cases .out and .err hold the decoded text as well. check=True raises
        SealpostError (with stderr) on a non-zero exit.
        """
        cmd = [self.bin, "-c", conf or self.conf] + [str(a) for a in args]
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.run(cmd, input=_to_bytes(input), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=timeout)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        if text:
            p.stdout, p.stderr = p.out, p.err
        self.last = p
        if check and p.returncode != 0:
            raise SealpostError(p.returncode, cmd, p.stdout, p.stderr)
        return p

    def password(self, name, password=None):
        if password is not None:
            return password
        return self.passwords.get(name, f"pw-{name}-secret")

    def add_user(self, name, password=None, plan=None, email=None, phone=None):
        """`user add NAME --email E [--plan P] --json --password-stdin`.

        Returns the JSON document ({"name", "address", "recovery_code"}) with
        "password" added; remembers it in self.users and self.passwords.
        """
        pw = f"pw-{name}-secret" if password is None else password
        args = ["user", "add", name, "--email", email or f"{name}@example.org"]
        if phone:
            args += ["--phone", phone]
        if plan:
            args += ["--plan", plan]
        args += ["--json", "--password-stdin"]
        p = self.run(*args, input=pw + "\n")
        doc = json.loads(p.out)
        doc["password"] = pw
        self.passwords[name] = pw
        self.users[name] = doc
        return doc

    def vault_list(self, name, password=None):
        """`vault list NAME --json` → the list of items (raises on failure)."""
        p = self.run("vault", "list", name, "--json", "--password-stdin",
                     input=self.password(name, password) + "\n")
        return json.loads(p.out)

    def vault_get(self, name, item, outdir, password=None, check=True):
        """`vault get NAME ITEM --out OUTDIR`; returns the CompletedProcess."""
        os.makedirs(outdir, exist_ok=True)
        return self.run("vault", "get", name, str(item), "--out", outdir,
                        "--password-stdin", input=self.password(name, password) + "\n",
                        check=check)

    def deliver(self, msg_bytes, *addresses):
        """`deliver --to A [--to B …] < msg`; returns the exit code
        (the CompletedProcess is in self.last)."""
        args = ["deliver"]
        for a in addresses:
            args += ["--to", a]
        return self.run(*args, input=_to_bytes(msg_bytes), check=False).returncode

    # -- the daemon -----------------------------------------------------

    def start_serve(self, timeout=10, args=(), env=None):
        """Starts `serve` in the background (stdout+stderr to self.serve_log)
        and waits until the SMTP port answers with a 220 banner. env: more
        environment variables for serve (an LD_PRELOAD shim, say)."""
        if self.serve_proc is not None:
            raise RuntimeError("serve already running")
        self._serve_log_f = open(self.serve_log, "ab")
        self.serve_proc = subprocess.Popen(
            [self.bin, "-c", self.conf, "serve"] + list(args),
            stdin=subprocess.DEVNULL, stdout=self._serve_log_f, stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None)
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            if self.serve_proc.poll() is not None:
                rc = self.serve_proc.returncode
                self.serve_proc = None
                raise RuntimeError(f"serve exited {rc} at start: {self.serve_log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=2) as s:
                    s.settimeout(max(0.5, deadline - time.monotonic()))
                    banner = b""
                    while b"\n" not in banner:
                        chunk = s.recv(1024)
                        if not chunk:
                            break
                        banner += chunk
                    if banner.startswith(b"220"):
                        try:
                            s.sendall(b"QUIT\r\n")
                        except OSError:
                            pass
                        return
                    last_err = f"banner {banner!r}"
            except OSError as e:
                last_err = str(e)
            time.sleep(0.05)
        self.stop_serve(signal.SIGKILL)
        raise RuntimeError(f"serve did not answer 220 within {timeout}s ({last_err}): "
                           f"{self.serve_log_tail()}")

    def stop_serve(self, sig=signal.SIGTERM, timeout=15):
        """Signals serve and waits; SIGKILL after timeout. Returns its exit
        status (negative: killed by that signal), None if not running."""
        p = self.serve_proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.serve_proc = None
        if self._serve_log_f:
            self._serve_log_f.close()
            self._serve_log_f = None
        return p.returncode

    def metrics(self):
        """GET /metrics of the running serve: (text, {"sealpost_x{labels}": value})."""
        url = "http://127.0.0.1:%d/metrics" % self.http_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        values = {}
        for ln in text.splitlines():
            m = re.match(r'^(sealpost_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$', ln)
            if m:
                values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return text, values

    def serve_log_tail(self, n=3000):
        try:
            with open(self.serve_log, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    # -- lifetime -------------------------------------------------------

    def cleanup(self):
        try:
            self.stop_serve(signal.SIGTERM)
        finally:
            if os.environ.get("SPTEST_KEEP") == "1":
                print(f"# SPTEST_KEEP=1: kept {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


class Tap:
    """One line per check: "ok NAME" / "not ok NAME - detail"."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, cond, detail=""):
        cond = bool(cond)
        if cond:
            self.passed += 1
            print(f"ok {name}", flush=True)
        else:
            self.failed += 1
            d = " ".join(str(detail).split())
            if len(d) > 1500:
                d = d[:1500] + "…"
            print(f"not ok {name}" + (f" - {d}" if d else ""), flush=True)
        return cond

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print(f"# {line}", flush=True)

    def done(self):
        """Exit code: 0 only if something ran and nothing failed."""
        print(f"# {self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.passed > 0 and self.failed == 0 else 1


# ---------------------------------------------------------------------------
# The oracle: what Python's email package finds in a message.

def _filename(part):
    """The part's file name (RFC 2231 / RFC 2047 decoded) or None."""
    name = part.get_filename()
    if name is None:
        return None
    return str(name)


def _is_attachment(part):
    disp = part.get_content_disposition()
    if disp == "attachment":
        return True
    if _filename(part) is not None:
        return True  # inline parts with a name are files too
    return False


def _text_of(part):
    try:
        s = part.get_content()
    except (LookupError, UnicodeError):
        raw = part.get_payload(decode=True) or b""
        s = raw.decode("utf-8", "replace")
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    return s


def norm_text(s):
    """Text bodies compare after CRLF/CR → LF and one trailing newline stripped."""
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    if s.endswith("\n"):
        s = s[:-1]
    return s


def _walk(part, res, lvl):
    """lvl: {"outer": bool, "text": bool, "html": bool} of the message level
    being walked (the outer message or one nested message/rfc822)."""
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) else inner
        res["attachments"].append({
            "name": _filename(part),
            "type": ctype,
            "message": inner,
            "data": inner.as_bytes(policy=email.policy.default.clone(linesep="\r\n")),
        })
        # Its own attachments are extracted too; its bodies stay in the .eml.
        _walk(inner, res, {"outer": False, "text": False, "html": False})
        return
    if part.is_multipart():
        for sub in part.iter_parts():
            _walk(sub, res, lvl)
        return
    body_ok = not _is_attachment(part)
    for kind, want in (("text", "text/plain"), ("html", "text/html")):
        if body_ok and ctype == want and not lvl[kind]:
            lvl[kind] = True
            if lvl["outer"]:
                res[kind] = _text_of(part)
            return  # a nested message's first bodies stay in its .eml
    res["attachments"].append({
        "name": _filename(part),
        "type": ctype,
        "data": part.get_payload(decode=True) or b"",
    })


def extract_with_email_pkg(msg_bytes):
    """What Python's email package (policy.default) finds in msg_bytes.

    Returns {"subject", "from", "text", "html", "attachments"} where text and
    html are the first text/plain and text/html leaves that are not
    attachments (no file name, no "Content-Disposition: attachment") of the
    outer message (str, charset-decoded, or None), and attachments is a list
    of {"name", "type", "data"} in document order: every other leaf part
    (data = transfer-decoded bytes) — except the first text/plain and
    text/html body of each nested message, which stay in its .eml —,
    and every message/rfc822 part (data = the inner message re-serialised
    with CRLF, plus "message": the parsed inner message) followed by the
    inner message's own attachments. "name" is the decoded RFC 2231/2047
    file name or None.
    """
    msg = email.message_from_bytes(msg_bytes, policy=email.policy.default)
    res = {"subject": None, "from": None, "text": None, "html": None, "attachments": []}
    subj = msg.get("Subject")
    res["subject"] = None if subj is None else str(subj)
    frm = msg.get("From")
    res["from"] = None if frm is None else str(frm)
    _walk(msg, res, {"outer": True, "text": False, "html": False})
    return res


# File-name cleaning as RULES.md rule 7 and mime/mime.h describe it. Test
# messages use ordinary names; this exists so that they compare equal after
# the same cleaning, and duplicates get the same " (N)" suffixes.
_BAD_CHARS = set('/\\:*?"<>|')
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | \
            {f"lpt{i}" for i in range(1, 10)}


def is_ordinary_name(name):
    if not name or len(name.encode("utf-8")) > 255:
        return False
    if any(c in _BAD_CHARS or c in _BIDI or ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    if name.startswith(".") or name.endswith((".", " ")):
        return False
    if name.split(".")[0].lower() in _RESERVED:
        return False
    return True


RESERVED_FILES = ("original.eml", "body.txt", "body.html")


def unique_names(names, reserved=RESERVED_FILES):
    """Mirrors mime_nameset_claim: "a.pdf", "a (2).pdf", "a (3).pdf"; the
    fixed file names of `vault get` are taken up front ("body (2).txt")."""
    taken = set(reserved)
    out = []
    for n in names:
        cand = n
        k = 2
        while cand in taken:
            stem, dot, ext = n.rpartition(".")
            if dot and stem:
                cand = f"{stem} ({k}).{ext}"
            else:
                cand = f"{n} ({k})"
            k += 1
        taken.add(cand)
        out.append(cand)
    return out


MARKER_RE = re.compile(rb"MARKER-[0-9a-f]{12}", re.IGNORECASE)


def _canon_marker(m):
    return b"MARKER-" + m[7:].lower()


def markers_in(extracted, raw=None):
    """Every marker string in a message: found in the raw bytes (if given)
    and in everything the email package decodes (subject, from, bodies,
    file names, attachment contents, nested messages). Returned in the
    canonical form b"MARKER-<lower hex>"; search with marker_needles()."""
    found = set()

    def scan(b):
        if b is None:
            return
        if isinstance(b, str):
            b = b.encode("utf-8")
        found.update(_canon_marker(m) for m in MARKER_RE.findall(b))

    scan(raw)
    scan(extracted.get("subject"))
    scan(extracted.get("from"))
    scan(extracted.get("text"))
    scan(extracted.get("html"))
    for a in extracted["attachments"]:
        scan(a.get("name"))
        scan(a["data"])
    return found


def marker_needles(markers):
    """The byte strings to search for: each marker as written and in lower
    case (addresses may be lower-cased), and in UTF-16-LE (wide strings)."""
    out = set()
    for m in markers:
        out.add(m)
        out.add(m.lower())
        out.add(m.decode("ascii").encode("utf-16-le"))
    return sorted(out)


DECRYPTED_OUT_RE = re.compile(r"/sptest-[^/]+/out/")


def grep_tree(root, needles, newer_than=None, exclude=(), max_file=256 << 20):
    """Searches every regular file under root for any of needles (bytes).

    Returns ([(path, needle)], files_scanned). Files older than newer_than
    (epoch seconds, mtime and ctime) are skipped when it is given; paths
    under any of exclude, decrypted output of any Instance (sptest-*/out/),
    the caller's own stdout/stderr files and unreadable files are skipped.
    """
    hits = []
    scanned = 0
    needles = [n for n in needles if n]
    # Our own output (stdout/stderr redirected to a file) is not the product's.
    own = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
            own.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    excl = [os.path.abspath(e) for e in exclude]
    maxlen = max((len(n) for n in needles), default=1)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        ap = os.path.abspath(dirpath)
        dirnames[:] = [d for d in dirnames
                       if not any(os.path.join(ap, d) == e or
                                  os.path.join(ap, d).startswith(e + os.sep) for e in excl)]
        for fn in filenames:
            path = os.path.join(ap, fn)
            if any(path == e or path.startswith(e + os.sep) for e in excl):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in own:
                continue
            if DECRYPTED_OUT_RE.search(path):
                continue
            if newer_than is not None and max(st.st_mtime, st.st_ctime) < newer_than:
                continue
            if st.st_size > max_file:
                continue
            try:
                with open(path, "rb") as f:
                    scanned += 1
                    tail = b""
                    while True:
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        buf = tail + chunk
                        for n in needles:
                            if n in buf and (path, n) not in hits:
                                hits.append((path, n))
                        tail = buf[-(maxlen - 1):] if maxlen > 1 else b""
            except OSError:
                continue
    return hits, scanned


def b64(b):
    return base64.b64encode(b).decode("ascii")
