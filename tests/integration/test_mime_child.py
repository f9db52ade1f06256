#!/usr/bin/env python3
"""The MIME parser children of `serve` (mime/mime_child.c), seen from outside.

1. A child is the sealpost binary started afresh (its /proc/PID/exe is the
   same file, its command line carries the child's argument, not serve's),
   with one thread and no descriptor of the daemon's: a fork of the
   multithreaded daemon could hang on a lock another thread held (it did,
   under ASan, in CI) and would carry the daemon's memory.
2. serve starts one child per worker at start, before any mail.
3. The child's argument by hand, malformed or with a pid that is not the
   caller's parent, gives the setup exit code at once (no parse, no wait).
4. A child parses MIME_POOL_RECYCLE messages and is then replaced; its
   successor is started in the background, so one is idle before the next
   message arrives, and the messages after it are parsed (not
   parser_failed).
"""
import os
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import sptest  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHILD_ARG = "--mime-parser-child"
CHILD_SOCKET_FD = 4
WAIT = 20  # seconds for a background start (an ASan build starts slowly)
WORKERS = 2


def source_define(name):
    with open(os.path.join(SRC, "mime", "mime_child.c")) as f:
        m = re.search(r"#define %s (\d+)" % name, f.read())
    return int(m.group(1))


def parser_children(ppid):
    """pids of live processes whose parent is ppid and whose name is mime-parser."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        if comm == "mime-parser" and int(fields[1]) == ppid and fields[0] != "Z":
            out.append(int(d))
    return sorted(out)


def wait_children(ppid, want):
    deadline = time.monotonic() + WAIT
    while True:
        kids = parser_children(ppid)
        if want(kids) or time.monotonic() > deadline:
            return kids
        time.sleep(0.05)


def message(tag):
    return ("From: child@example.org\r\nSubject: child %s\r\n\r\nbody %s\r\n"
            % (tag, tag)).encode()


def main():
    t = sptest.Tap()
    recycle = source_define("MIME_POOL_RECYCLE")
    exit_setup = source_define("MIME_CHILD_EXIT_SETUP")
    bin_ = sptest.sealpost_bin()
    for args in ([CHILD_ARG], [CHILD_ARG, "1", "2"], [CHILD_ARG, "x", "1", str(os.getpid())],
                 [CHILD_ARG, "1", "1", "1"], [CHILD_ARG, "1", "1", str(os.getpid() + 1)]):
        p = subprocess.run([bin_] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        t.ok("by hand %r: setup exit" % args[1:], p.returncode == exit_setup,
             "exit %d" % p.returncode)
    with sptest.Instance(extra_conf="[server]\nworkers = %d\n" % WORKERS) as inst:
        alice = inst.add_user("alice")
        inst.start_serve()
        serve = inst.serve_proc.pid

        kids = wait_children(serve, lambda k: len(k) == WORKERS)
        t.ok("one child per worker at start", len(kids) == WORKERS, "children %r" % kids)
        for pid in kids[:1]:
            exe = os.stat("/proc/%d/exe" % pid)
            mine = os.stat(inst.bin)
            t.ok("child runs the sealpost binary",
                 (exe.st_dev, exe.st_ino) == (mine.st_dev, mine.st_ino))
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            t.ok("child started afresh with its own argument",
                 len(argv) > 1 and argv[1] == CHILD_ARG.encode(), "argv %r" % argv[:3])
            with open("/proc/%d/status" % pid) as f:
                threads = re.search(r"^Threads:\s+(\d+)$", f.read(), re.M).group(1)
            t.ok("child has one thread", threads == "1", threads)
            fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % pid))
            t.ok("child holds stdio and its socket only",
                 fds == [0, 1, 2, CHILD_SOCKET_FD], "fds %r" % fds)

        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
            # One session, one message after another: one child does them
            # all (the last one back is the first one out).
            for i in range(recycle):
                s.sendmail("child@example.org", [alice["address"]], message(str(i)))
            # That child has parsed `recycle` messages: ended, and a
            # successor started without waiting for another message.
            now = wait_children(serve, lambda k: len(k) == WORKERS and set(k) != set(kids))
            gone = set(kids) - set(now)
            new = set(now) - set(kids)
            t.ok("recycled child replaced in the background",
                 len(gone) == 1 and len(new) == 1, "at start %r, now %r" % (kids, now))
            for i in range(3):
                s.sendmail("child@example.org", [alice["address"]], message("last%d" % i))
            after = parser_children(serve)
            t.ok("no further start for the next messages", after == now,
                 "before %r, after %r" % (now, after))
        inst.stop_serve()

        items = inst.vault_list("alice")
        t.ok("every message delivered", len(items) == recycle + 3,
             "%d items" % len(items))
        failed = [it.get("subject") for it in items if "parser_failed" in str(it.get("flags"))]
        t.ok("none parser_failed", not failed, "%r" % failed[:5])
        last = [it for it in items if (it.get("subject") or "").startswith("child last")]
        t.ok("messages after the recycling parsed", len(last) == 3)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
