"""webdriver — a minimal W3C WebDriver client (standard library only) for
Debian's chromium + chromium-driver, so the browser test needs nothing
from a package registry.

    with Browser(download_dir) as b:
        b.get(url)
        b.find("#code").send_keys("ABCD1234")
        b.find("#download").click()
        png = b.screenshot()

Chromium runs headless in a fresh profile with the flags that keep it off
the network: no sync, no component updates, no background networking.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--window-size=420,900"]


def available():
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class WebDriverError(Exception):
    pass


class Element:
    def __init__(self, browser, eid):
        self.b = browser
        self.id = eid

    def send_keys(self, text):
        self.b._cmd("POST", f"/element/{self.id}/value", {"text": text})

    def click(self):
        self.b._cmd("POST", f"/element/{self.id}/click", {})

    @property
    def text(self):
        return self.b._cmd("GET", f"/element/{self.id}/text")


class Browser:
    def __init__(self, download_dir, lang="en"):
        self.download_dir = download_dir
        self.profile = tempfile.mkdtemp(prefix="sp-chromium-")
        self.port = _free_port()
        self.log = open(os.path.join(self.profile, "chromedriver.log"), "wb")
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                       stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                self._http("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline or self.driver.poll() is not None:
                    self.close()
                    raise WebDriverError("chromedriver did not start")
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": FLAGS + [f"--user-data-dir={self.profile}/profile", f"--lang={lang}"],
                "prefs": {"download.default_directory": download_dir,
                          "download.prompt_for_download": False,
                          "intl.accept_languages": lang},
            }}}}
        try:
            v = self._http("POST", "/session", caps)
        except Exception:
            self.close()
            raise
        self.session = v["value"]["sessionId"]

    def _http(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise WebDriverError(f"{method} {path}: {e.code} {e.read()[:500]!r}")

    def _cmd(self, method, path, body=None):
        return self._http(method, f"/session/{self.session}{path}", body).get("value")

    def get(self, url):
        self._cmd("POST", "/url", {"url": url})

    def find(self, css):
        v = self._cmd("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, v[ELEMENT])

    def page_source(self):
        return self._cmd("GET", "/source")

    def title(self):
        return self._cmd("GET", "/title")

    def screenshot(self):
        return base64.b64decode(self._cmd("GET", "/screenshot"))

    def wait_download(self, timeout=30):
        """The first finished file in the download dir (bytes, name) or (None, None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = [n for n in os.listdir(self.download_dir)
                     if not n.endswith(".crdownload") and not n.startswith(".")]
            if names:
                p = os.path.join(self.download_dir, names[0])
                time.sleep(0.2)
                with open(p, "rb") as f:
                    return f.read(), names[0]
            time.sleep(0.2)
        return None, None

    def close(self):
        try:
            if getattr(self, "session", None):
                self._http("DELETE", f"/session/{self.session}")
        except Exception:
            pass
        if self.driver.poll() is None:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
