#!/usr/bin/python3
"""test_sendlink_browser — a real browser (Debian's headless chromium,
driven through chromium-driver by tests/browser/webdriver.py) opens a
secure-send link, sees the page, types a wrong code, then the right one,
downloads the file and compares its bytes. Screenshots of the page are kept
under $BUILD/test-artifacts/ (sendlink-page.png, sendlink-wrong-code.png).
"""

import os
import sys
import tempfile
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "browser"))

from sptest import SRC, Instance, Tap  # noqa: E402
from sphttp import api_get, create_key, create_send, make_sink, start_http  # noqa: E402
import webdriver  # noqa: E402

t = Tap()


def artifacts_dir():
    d = os.path.join(SRC, os.environ.get("BUILD", "build"), "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def main():
    if not t.ok("chromium and chromium-driver installed (make deps)", webdriver.available(),
                f"{webdriver.CHROMIUM}, {webdriver.CHROMEDRIVER}"):
        return
    sink = make_sink()
    conf = f"""
[outbound]
relayhost = 127.0.0.1:{sink.port}
[sendlink]
code_max_attempts = 5
[plan default]
max_file_size = 10M
"""
    data = os.urandom(700 * 1024) + b"end of the browser test file"
    name = "Jahresbericht März.pdf"
    dl_dir = tempfile.mkdtemp(prefix="sp-downloads-")
    try:
        with Instance(extra_conf=conf) as inst:
            inst.add_user("alice", email="alice@example.org")
            key = create_key(inst, "alice")
            start_http(inst)
            st, _, doc = create_send(inst, key, {"to": "bob@example.org", "protect": "code",
                                                 "message": "Here is the report."},
                                     (name, data))
            if not t.ok("send created", st == 201, (st, doc)):
                return
            with webdriver.Browser(dl_dir) as b:
                b.get(doc["url"])
                src = b.page_source()
                t.ok("page shows the file name and message", name in src and
                     "Here is the report." in src, src[:500])
                t.ok("page title", b.title() == "A file for you", b.title())
                png = b.screenshot()
                with open(os.path.join(artifacts_dir(), "sendlink-page.png"), "wb") as f:
                    f.write(png)
                t.ok("screenshot of the page kept", png.startswith(b"\x89PNG"), len(png))

                b.find("#code").send_keys("WRONGCODE1")
                b.find("#download").click()
                time.sleep(0.5)
                msg = b.find("#message").text
                t.ok("wrong code: the page says attempts left", "Attempts left" in msg, msg)
                with open(os.path.join(artifacts_dir(), "sendlink-wrong-code.png"), "wb") as f:
                    f.write(b.screenshot())

                b.find("#code").send_keys(doc["code"])
                b.find("#download").click()
                got, fname = b.wait_download(timeout=30)
                t.ok("the browser downloaded the exact bytes", got == data,
                     f"{None if got is None else len(got)} bytes as {fname!r}")
                t.ok("under the sender's file name (RFC 6266 filename*)", fname == name, fname)
            time.sleep(0.5)
            st, d2 = api_get(inst, key, doc["id"])
            t.ok("one download and one failed attempt recorded", st == 200 and
                 d2["downloads"] == 1 and
                 sum(1 for e in d2["events"] if e["kind"] == "code_failed") == 1, d2)
    finally:
        shutil.rmtree(dl_dir, ignore_errors=True)
        try:
            sink.close()
        except Exception:
            pass


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        import traceback
        traceback.print_exc()
        t.ok("test ran to the end", False, repr(e))
    sys.exit(t.done())
