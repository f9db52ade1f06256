#!/usr/bin/env python3
"""Output that cannot be written fails the command (cli/main.c).

An API key (`apikey create`) is shown once; a command whose output went
nowhere (a full disk, here /dev/full: every write gives ENOSPC) must not
exit 0 as if the admin had it. For each command below: to /dev/full it
exits 1 and says on stderr that the output could not be written (and
why); to a pipe it exits 0 with output (the control).
"""
import os
import subprocess
import sys

SRC = os.environ.get("SEALPOST_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from sptest import Instance, Tap  # noqa: E402

FULL = "/dev/full"
MESSAGE = "the output could not be written: No space left on device"


def run(inst, args, stdout):
    return subprocess.run([inst.bin, "-c", inst.conf] + args, stdout=stdout,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)


def main():
    t = Tap()
    if not os.path.exists(FULL):
        t.ok("%s exists" % FULL, False, "no %s on this machine" % FULL)
        return t.done()
    with Instance() as inst:
        inst.add_user("alice")
        commands = [
            ["apikey", "create", "alice", "--label", "full"],
            ["apikey", "create", "alice", "--json"],
            ["user", "list"],
            ["user", "list", "--json"],
            ["queue", "list"],
        ]
        for args in commands:
            name = " ".join(args)
            ok = run(inst, args, subprocess.PIPE)
            t.ok("%s: to a pipe, exit 0 with output" % name,
                 ok.returncode == 0 and ok.stdout.strip(),
                 "exit %d, stderr %r" % (ok.returncode, ok.stderr[-200:]))
            with open(FULL, "wb") as full:
                p = run(inst, args, full)
            err = p.stderr.decode("utf-8", "replace")
            t.ok("%s: to a full disk, exit 1" % name, p.returncode == 1,
                 "exit %d, stderr %r" % (p.returncode, err[-200:]))
            t.ok("%s: to a full disk, says so" % name, MESSAGE in err, repr(err[-200:]))
        # The keys whose output was lost exist (listed, so they can be
        # revoked): the store kept them; only their one showing failed.
        keys = run(inst, ["apikey", "list", "--json"], subprocess.PIPE)
        t.ok("keys created while the output failed are listed",
             keys.returncode == 0 and keys.stdout.count(b'"id"') == 4,
             keys.stdout.decode()[:300])
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
