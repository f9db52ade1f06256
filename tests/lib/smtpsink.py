"""smtpsink — a loopback SMTP server for tests: it stands in for the relay
host that sealpost hands notification mail to. Standard library only.

    from smtpsink import SmtpSink

    sink = SmtpSink()               # binds 127.0.0.1 on a free port
    sink.start()
    conf = f"[outbound]\\nrelayhost = 127.0.0.1:{sink.port}"
    ...
    msgs = sink.wait_for(1, timeout=10)  # [Message(mail_from, rcpt_tos, data, helo, tls)]
    sink.tempfail_next(2)           # next 2 transactions: 451 4.3.0 after DATA
    sink.permfail_next(1)           # next transaction: 550 5.1.1 to RCPT
    sink.stop()                     # refuses connections from now on
    sink.start()                    # again, on the same port
    sink.close()

Options: SmtpSink(port=0, tls=(certfile, keyfile)) offers STARTTLS and
requires EHLO again after it (state is reset, RFC 3207); ehlo=False answers
EHLO with 502 so clients must fall back to HELO; greeting="421 …" refuses
every session at the banner.

Messages keep the bytes of DATA exactly as received, dot-unstuffed, with
CRLF line ends and without the final ".".
"""

import socket
import ssl
import threading
import time


class Message:
    def __init__(self, mail_from, rcpt_tos, data, helo, tls):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data
        self.helo = helo
        self.tls = tls

    def __repr__(self):
        return (f"Message(from={self.mail_from!r}, to={self.rcpt_tos!r}, "
                f"size={len(self.data)}, helo={self.helo!r}, tls={self.tls})")


class _Session:
    MAX_LINE = 64 * 1024

    def __init__(self, sink, conn):
        self.sink = sink
        self.conn = conn
        self.rf = conn.makefile("rb")
        self.tls = False
        self.reset()
        self.helo = None

    def reset(self):
        self.mail_from = None
        self.rcpt_tos = []

    def send(self, line):
        self.conn.sendall(line.encode("ascii") + b"\r\n")

    def readline(self):
        line = self.rf.readline(self.MAX_LINE)
        if not line:
            return None
        return line.rstrip(b"\r\n").decode("utf-8", "replace")

    def run(self):
        s = self.sink
        if s.greeting:
            self.send(s.greeting)
            return
        self.send("220 sink.test ESMTP smtpsink")
        while True:
            line = self.readline()
            if line is None:
                return
            s._log(line)
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb):].strip()
            if verb == "EHLO":
                if not s.ehlo:
                    self.send("502 5.5.1 EHLO not implemented")
                    continue
                self.helo = arg
                self.reset()
                caps = ["250-sink.test", "250-PIPELINING", "250-SIZE 10485760",
                        "250-DSN", "250-8BITMIME"]
                if s.tls_ctx and not self.tls:
                    caps.append("250-STARTTLS")
                caps[-1] = caps[-1].replace("250-", "250 ", 1)
                if not caps[-1].startswith("250 "):
                    caps.append("250 HELP")
                for c in caps:
                    self.send(c)
            elif verb == "HELO":
                self.helo = arg
                self.reset()
                self.send("250 sink.test")
            elif verb == "STARTTLS" and s.tls_ctx and not self.tls:
                self.send("220 2.0.0 go ahead")
                self.conn = s.tls_ctx.wrap_socket(self.conn, server_side=True)
                self.rf = self.conn.makefile("rb")
                self.tls = True
                self.helo = None
                self.reset()
            elif verb == "MAIL":
                if self.helo is None:
                    self.send("503 5.5.1 EHLO first")
                    continue
                self.reset()
                self.mail_from = _path(arg[5:] if arg.upper().startswith("FROM:") else arg)
                self.send("250 2.1.0 ok")
            elif verb == "RCPT":
                if self.mail_from is None:
                    self.send("503 5.5.1 MAIL first")
                    continue
                if s._take("perm"):
                    self.send("550 5.1.1 <" + _path(arg[3:]) + ">: no such user here")
                    continue
                self.rcpt_tos.append(_path(arg[3:] if arg.upper().startswith("TO:") else arg))
                self.send("250 2.1.5 ok")
            elif verb == "DATA":
                if not self.rcpt_tos:
                    self.send("503 5.5.1 RCPT first")
                    continue
                self.send("354 end with .")
                data = self.read_data()
                if data is None:
                    return
                if s._take("temp"):
                    self.send("451 4.3.0 try again later")
                else:
                    s._add(Message(self.mail_from, list(self.rcpt_tos), data, self.helo,
                                   self.tls))
                    self.send("250 2.0.0 queued")
                self.reset()
            elif verb == "RSET":
                self.reset()
                self.send("250 2.0.0 ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("502 5.5.2 command not recognized")

    def read_data(self):
        out = bytearray()
        while True:
            line = self.rf.readline(self.MAX_LINE)
            if not line:
                return None
            if line == b".\r\n":
                return bytes(out)
            if line.startswith(b"."):
                line = line[1:]
            out += line


def _path(arg):
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        return arg[1:end] if end > 0 else arg[1:]
    return arg.split(" ", 1)[0]


class SmtpSink:
    def __init__(self, port=0, tls=None, ehlo=True, greeting=None):
        self.port = port
        self.ehlo = ehlo
        self.greeting = greeting
        self.tls_ctx = None
        if tls:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(tls[0], tls[1])
        self.messages = []
        self.commands = []
        self.sessions = 0
        self._fail = {"temp": 0, "perm": 0}
        self._lock = threading.Condition()
        self._sock = None
        self._thread = None

    # -- behaviour --------------------------------------------------------

    def tempfail_next(self, n=1):
        """The next n transactions get 451 4.3.0 after DATA."""
        with self._lock:
            self._fail["temp"] = n

    def permfail_next(self, n=1):
        """The next n transactions get 550 5.1.1 at RCPT."""
        with self._lock:
            self._fail["perm"] = n

    def _take(self, kind):
        with self._lock:
            if self._fail[kind] > 0:
                self._fail[kind] -= 1
                return True
            return False

    def _add(self, msg):
        with self._lock:
            self.messages.append(msg)
            self._lock.notify_all()

    def _log(self, line):
        with self._lock:
            self.commands.append(line)

    # -- life cycle -------------------------------------------------------

    def start(self):
        """Listens (again) on 127.0.0.1:port; port 0 picks a free one once."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self._sock = s
        self._thread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, s):
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            with self._lock:
                self.sessions += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            _Session(self, conn).run()
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        """Stops listening: connections are refused until start()."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    close = stop

    def wait_for(self, n, timeout=10.0):
        """Waits until at least n messages arrived; returns the list (a copy)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return list(self.messages)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False
