#!/usr/bin/python3
"""Scripted SMTP sessions against a live `sealpost serve` (tests as data).

Each case is tests/data/smtp/NAME.in (what the client does) and NAME.ref
(the exact replies the server must give, one reply line per line, with
"<closed>" where the server hangs up and "<tls>" where the TLS handshake
succeeded). After every case a normal client must still get a message
delivered (the server survived the abuse), and the vault item counts must
have changed exactly as the case declares (a smuggled message would add
one).

Script lines (.in):
  # text           comment
  @instance NAME   which server configuration: main (default) or greet
  C: text          send text + CRLF
  B: text          send bytes as written, Python escapes (\\r \\n \\0 \\xNN)
  S:               read one reply (all its lines)
  E:               the server must close the connection now
  T:               TLS handshake (STARTTLS was answered 220)
  W: SECONDS       wait
  V: USER DELTA    after the session USER's vault has DELTA more items
Placeholders in C:/B: {alice} {bob} {carol} {dave} (Mail-in addresses),
{pm} (the [mailin] postmaster user), {bob+TAG} (tagged form), {domain},
{repeat:N:TEXT}. In replies the server's host name reads {host}
and queue ids read QUEUEID.

SMTP_REF_WRITE=1 writes the .ref files from what the server says (review
them before committing).
"""
import os
import pwd
import re
import signal
import smtplib
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("SEALPOST_SRC", "."), "tests", "lib"))
import sptest  # noqa: E402

SRC = os.environ.get("SEALPOST_SRC", ".")
DATA = os.path.join(SRC, "tests", "data", "smtp")
READ_TIMEOUT = 15.0

# Every limit the cases poke at is set here, so the .ref files do not
# depend on defaults. dave's plan has almost no room (over quota).
MAIN_CONF = """
[mailin]
message_size_limit = 20K
header_size_limit = 8K
max_recipients = 3
max_errors = 8
command_timeout = 3s
data_timeout = 3s
min_data_rate = 200
line_length_limit = 1000
data_line_length_limit = 2000
max_connections_per_ip = 6
[plan tiny]
storage_quota = 1K
"""
GREET_CONF = """
[mailin]
greet_pause = 1s
[plan tiny]
storage_quota = 1K
"""
USERS = ["alice", "bob", "carol", "dave"]


def password(user):
    return "pw-for-" + user + "-123"


class Server:
    def __init__(self, name, extra, tls):
        self.name = name
        self.inst = sptest.Instance(extra_conf=extra, tls=tls)
        self.addr = {}
        for u in USERS:
            info = self.inst.add_user(u, password=password(u), plan="tiny" if u == "dave" else None)
            self.addr[u] = info["address"]
        self.inst.run("user", "disable", "carol")
        # The user that [mailin] postmaster names (the instance sets it) is "pm".
        with open(self.inst.conf) as f:
            names = re.findall(r"^\s*postmaster\s*=\s*(\S+)", f.read(), re.M)
        self.pm = names[-1] if names else "alice"
        if self.pm not in self.addr:
            self.addr[self.pm] = self.inst.add_user(self.pm, password=password(self.pm))["address"]
        self.addr["pm"] = self.addr[self.pm]
        self.inst.start_serve()

    def count(self, user):
        user = self.pm if user == "pm" else user
        return len(self.inst.vault_list(user, password(user)))


def expand(text, srv):
    def rep(m):
        key = m.group(1)
        if key in srv.addr:
            return srv.addr[key]
        user, plus, tag = key.partition("+")
        if plus and user in srv.addr:
            local, _, dom = srv.addr[user].partition("@")
            return "%s+%s@%s" % (local, tag, dom)
        if key == "domain":
            return srv.inst.domain
        r = re.fullmatch(r"repeat:(\d+):(.*)", key)
        if r:
            return r.group(2) * int(r.group(1))
        raise ValueError("unknown placeholder {%s}" % key)

    return re.sub(r"\{([^{}]+)\}", rep, text)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
        self.buf = b""
        self.closed = False

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def line(self):
        while b"\r\n" not in self.buf:
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError, ssl.SSLError):
                d = b""
            if not d:
                return None
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def reply(self):
        out = []
        while True:
            ln = self.line()
            if ln is None:
                out.append("<closed>")
                self.closed = True
                return out
            out.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                return out

    def expect_close(self):
        if self.buf:
            return ["<unexpected: %r>" % self.buf[:80]]
        try:
            d = self.sock.recv(4096)
        except (socket.timeout, ConnectionResetError, ssl.SSLError):
            d = b""
        if d:
            return ["<unexpected: %r>" % d[:80]]
        return ["<closed>"]

    def tls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            self.sock = ctx.wrap_socket(self.sock)
        except (ssl.SSLError, OSError) as e:
            return ["<tls failed: %s>" % e]
        return ["<tls>"]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def normalise(lines, srv):
    out = []
    for ln in lines:
        ln = ln.replace(srv.inst.hostname, "{host}")
        ln = re.sub(r"queued as \S+", "queued as QUEUEID", ln)
        out.append(ln)
    return out


def run_case(path, servers):
    steps = []
    instance = "main"
    deltas = {}
    with open(path, encoding="utf-8") as f:
        for raw in f.read().split("\n"):
            if raw.startswith("#") or not raw.strip():
                continue
            if raw.startswith("@instance "):
                instance = raw.split()[1]
                continue
            kind, _, arg = raw.partition(":")
            arg = arg[1:] if arg.startswith(" ") else arg
            if kind == "V":
                user, d = arg.split()
                deltas[user] = int(d)
            else:
                steps.append((kind, arg))
    srv = servers[instance]
    watch = set(deltas) | {"alice"}
    before = {u: srv.count(u) for u in watch}
    conn = Conn(srv.inst.smtp_port)
    got = []
    for kind, arg in steps:
        if kind == "C":
            conn.send(expand(arg, srv).encode("utf-8") + b"\r\n")
        elif kind == "B":
            text = expand(arg, srv)
            conn.send(text.encode("latin-1", "backslashreplace").decode("unicode_escape")
                      .encode("latin-1"))
        elif kind == "S":
            got += conn.reply()
        elif kind == "E":
            got += conn.expect_close()
        elif kind == "T":
            got += conn.tls()
        elif kind == "W":
            time.sleep(float(arg))
        else:
            raise ValueError("%s: bad line kind %r" % (path, kind))
    conn.close()
    after = {u: srv.count(u) for u in watch}
    return srv, normalise(got, srv), {u: after[u] - before[u] for u in watch}, deltas


def healthy(srv, count=True):
    """A normal client still gets a message delivered (and stored)."""
    try:
        before = srv.count("alice") if count else 0
        with smtplib.SMTP("127.0.0.1", srv.inst.smtp_port, timeout=READ_TIMEOUT) as s:
            s.ehlo("healthy.example")
            refused = s.sendmail("check@example.org", [srv.addr["alice"]],
                                 b"Subject: still alive\r\n\r\nhello\r\n")
        return not refused and (not count or srv.count("alice") == before + 1)
    except (OSError, smtplib.SMTPException):
        return False


def conn_caps(tap, srv):
    """max_connections_per_ip = 6: the 7th connection gets 421 4.7.0."""
    conns = [Conn(srv.inst.smtp_port) for _ in range(6)]
    banners = [c.reply() for c in conns]
    extra = Conn(srv.inst.smtp_port)
    r = extra.reply()
    tap.ok("caps_per_ip_421", r[:1] == ["421 4.7.0 Too many connections, try again later"]
           and extra.reply() == ["<closed>"] and all(b[0].startswith("220 ") for b in banners),
           "got %r" % r)
    for c in conns + [extra]:
        c.close()
    time.sleep(0.5)
    tap.ok("caps_after_healthy", healthy(srv))


def reload_checks(tap, srv):
    inst = srv.inst
    proc = inst.serve_proc
    with open(inst.conf) as f:
        orig = f.read()

    def ehlo_size():
        c = Conn(inst.smtp_port)
        c.reply()
        c.send(b"EHLO reload.example\r\n")
        r = c.reply()
        c.send(b"QUIT\r\n")
        c.close()
        return [x for x in r if "SIZE" in x]

    # An invalid config is refused: the old one stays.
    with open(inst.conf, "a") as f:
        f.write("\n[mailin]\nno_such_key = 1\n")
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    size = ehlo_size()
    tap.ok("reload_invalid_keeps_old", size == ["250-SIZE 20480"] and healthy(srv, count=False),
           "got %r" % size)
    # A valid one takes effect for new sessions.
    with open(inst.conf, "w") as f:
        f.write(orig.replace("message_size_limit = 20K", "message_size_limit = 30K"))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    size = ehlo_size()
    tap.ok("reload_valid_applies", size == ["250-SIZE 30720"], "got %r" % size)
    # A store that cannot be opened: 451 4.3.0 (local error), never 250.
    empty = tempfile.mkdtemp(prefix="sp-empty-")
    with open(inst.conf, "w") as f:
        f.write(orig.replace("data_dir = data", "data_dir = " + empty, 1))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    c = Conn(inst.smtp_port)
    c.reply()
    c.send(b"EHLO x.example\r\n")
    c.reply()
    c.send(b"MAIL FROM:<a@example.org>\r\n")
    c.reply()
    c.send(("RCPT TO:<%s>\r\n" % srv.addr["alice"]).encode())
    r = c.reply()
    c.close()
    tap.ok("store_down_451", r == ["451 4.3.0 Local error, try again later"], "got %r" % r)
    os.rmdir(empty) if not os.listdir(empty) else None
    with open(inst.conf, "w") as f:
        f.write(orig)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    tap.ok("reload_back_healthy", healthy(srv))


def drain_check(tap, srv):
    """SIGTERM during DATA: the message still gets 250, then 421, exit 0."""
    inst = srv.inst
    c = Conn(inst.smtp_port)
    c.reply()
    for cmd in ["EHLO drain.example", "MAIL FROM:<a@example.org>",
                "RCPT TO:<%s>" % srv.addr["bob"], "DATA"]:
        c.send(cmd.encode() + b"\r\n")
        c.reply()
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    idle = Conn(inst.smtp_port)
    idle.reply()
    before = srv.count("bob")
    inst.serve_proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    idle_r = idle.reply()
    c.send(b"second half\r\n.\r\n")
    r = c.reply()
    r2 = c.reply()
    try:
        inst.serve_proc.wait(40)
    except Exception:
        pass
    rc = inst.stop_serve()
    tap.ok("drain_idle_421", idle_r[:1] == ["421 4.3.2 Service shutting down, try again later"],
           "got %r" % idle_r)
    tap.ok("drain_inflight_250", len(r) == 1 and r[0].startswith("250 2.0.0 Ok: queued as "),
           "got %r" % r)
    tap.ok("drain_then_421", r2[:1] == ["421 4.3.2 Service shutting down, try again later"],
           "got %r" % r2)
    tap.ok("drain_exit_0", rc == 0, "exit %r" % rc)
    tap.ok("drain_delivered", srv.count("bob") == before + 1)


def privileges_check(tap, srv):
    """As root: without [server] user a warning; with it, serve runs as that user."""
    if os.geteuid() != 0:
        tap.diag("not root: privilege drop not checked")
        return
    tap.ok("root_warning", "running as root" in srv.inst.serve_log_tail(1 << 20),
           "no warning about running as root in the serve log")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        tap.diag("no user nobody: privilege drop not checked")
        return
    inst = sptest.Instance(extra_conf="[server]\nuser = nobody\n")
    try:
        # init (as root, with user set) gave the data dir and the master key
        # to nobody; the instance dir itself is mkdtemp's 0700.
        os.chmod(inst.dir, 0o711)
        inst.start_serve()
        with open("/proc/%d/status" % inst.serve_proc.pid) as f:
            ids = dict(ln.split(":", 1) for ln in f if ln.startswith(("Uid", "Gid", "Groups")))
        uids = ids["Uid"].split()
        gids = ids["Gid"].split()
        tap.ok("drops_to_user", uids == [str(nobody.pw_uid)] * 4 and
               gids == [str(nobody.pw_gid)] * 4 and ids["Groups"].split() == [str(nobody.pw_gid)],
               "got %r" % ids)
        tap.ok("drop_after_bind", Conn(inst.smtp_port).reply()[0].startswith("220 "))
        st = os.stat(inst.data_dir)
        tap.ok("init_gives_data_dir", st.st_uid == nobody.pw_uid,
               "data dir owned by uid %d, want %d" % (st.st_uid, nobody.pw_uid))
    finally:
        inst.cleanup()


def main():
    tap = sptest.Tap()
    servers = {}
    try:
        servers["main"] = Server("main", MAIN_CONF, True)
        servers["greet"] = Server("greet", GREET_CONF, False)
        cases = sorted(f[:-3] for f in os.listdir(DATA) if f.endswith(".in"))
        write = os.environ.get("SMTP_REF_WRITE") == "1"
        for name in cases:
            path = os.path.join(DATA, name + ".in")
            ref = os.path.join(DATA, name + ".ref")
            srv, got, moved, deltas = run_case(path, servers)
            if write:
                with open(ref, "w") as f:
                    f.write("\n".join(got) + "\n")
            with open(ref, encoding="utf-8") as f:
                want = f.read().rstrip("\n").split("\n")
            diff = ["line %d: got %r, want %r" % (i + 1, g, w)
                    for i, (g, w) in enumerate(zip(got, want)) if g != w]
            if len(got) != len(want):
                diff.append("got %d reply lines, want %d" % (len(got), len(want)))
            tap.ok("script_" + name, not diff, "; ".join(diff[:3]))
            bad = {u: d for u, d in moved.items() if d != deltas.get(u, 0)}
            tap.ok("vault_" + name, not bad,
                   "; ".join("%s: got %+d items, want %+d" % (u, d, deltas.get(u, 0))
                             for u, d in bad.items()))
            tap.ok("alive_after_" + name, healthy(srv))
        conn_caps(tap, servers["main"])
        privileges_check(tap, servers["main"])
        reload_checks(tap, servers["main"])
        drain_check(tap, servers["main"])
    finally:
        for s in servers.values():
            s.inst.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
