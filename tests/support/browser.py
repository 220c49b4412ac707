"""The web page's real parts for tests and the screenshot script: Debian's chromium driven by
Playwright for Python (never a downloaded browser), and `rvaed run` serving the page.

Plain functions (no pytest), so that tests/support/screenshot.py can use them as a script too.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from rig import DaemonProcess, free_udp_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}  # a common phone, portrait, in CSS pixels
READY = "window.rvaed && window.rvaed.snap && window.rvaed.map && window.rvaed.cells"
URLS = re.compile(r"web: page at (\S+); .*\(or pairing code (\d+)\)")


@dataclass
class WebRig:
    """A running daemon serving the page: its URL, the URL with the key, the pairing code."""

    daemon: DaemonProcess
    url: str
    keyed: str
    code: str

    @property
    def key(self) -> str:
        return self.keyed.split("key=", 1)[1]


def start_daemon(root: Path, **overrides) -> WebRig:
    """`rvaed run` (Link off, JACK MIDI, the page on a free port) under ``root``."""
    overrides = {"link": {"enabled": False}, "web": {"port": 0}, **overrides}
    daemon = DaemonProcess(root, free_udp_port(), **overrides)
    daemon.start()
    daemon.wait_log("web: page at", 15)
    found = URLS.search(daemon.text())
    assert found, daemon.text()[-2000:]
    url, code = found.groups()
    key = (daemon.dirs["state"] / "secret").read_text().strip()  # where the log says it is
    return WebRig(daemon, url, f"{url}?key={key}", code)


def launch(playwright):
    """Headless chromium from Debian's package."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def open_page(browser, url: str, viewport: dict | None = None, requests: list | None = None):
    """A fresh context (its own storage: no key from another page) showing ``url``, ready.

    bypass_csp lets Playwright evaluate its checks in the page; the page itself sends a
    Content-Security-Policy of 'self' only (tests/e2e/test_web.py reads it)."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900},
                                  bypass_csp=True, accept_downloads=True)
    page = context.new_page()
    if requests is not None:
        context.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    page.wait_for_function(READY, timeout=30000)
    return page
