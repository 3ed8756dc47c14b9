"""Helpers of the browser tests: start ``medsr serve`` as a subprocess, drive Debian's Chromium.

``MedSRServer`` starts the real command on a free port, waits (bounded) for the line with its URL,
and always stops it (SIGTERM, then SIGKILL, on the whole process group: the server and its workers).
``browser_page`` opens a headless Chromium page through playwright. What is missing (the web extra,
playwright, /usr/bin/chromium) makes the tests SKIP with the reason, never pass silently.
"""
from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Optional

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(ROOT, "MedSRModule", "Resources", "SampleData")
SAMPLE = os.path.join(SAMPLE_DIR, "MedSRBrainT1.nrrd")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 90.0
URL_LINE = re.compile(r"MedSR is serving on (\S+)")


def require_browser_stack() -> None:
    """Skip (with the reason) unless the web extra, playwright and Debian's chromium are all here."""
    pytest.importorskip("trame_slicer", reason="the web extra is not installed: pip install -e \".[web]\"")
    pytest.importorskip("playwright", reason="playwright is not installed: pip install -e \".[web]\"")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it when run as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MedSRServer:
    """``python -m MedSRExtension serve ...`` on a free port; ``url`` is what it printed.

    ``command`` runs another ``medsr`` (an installed console script, with ``env`` and ``cwd``) instead
    of the checkout's."""

    def __init__(self, *args: str, host: str = "127.0.0.1", command: Optional[list[str]] = None,
                 cwd: str = ROOT, env: Optional[dict] = None):
        self.port = free_port()
        if env is None:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
        env = dict(env, PYTHONUNBUFFERED="1", VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow")
        self.log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"medsr-serve-{self.port}.log")
        self._log = open(self.log_path, "w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "MedSRExtension"]), "serve", *args, "--host", host,
             "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = URL_LINE.search(self.output())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"medsr serve did not start within {START_TIMEOUT_S:.0f} s:\n{self.output()[-3000:]}")

    @property
    def local_url(self) -> str:
        """The printed URL, reached through loopback (the server may listen on every address)."""
        return re.sub(r"^http://[^/:]+", "http://127.0.0.1", self.url)

    def output(self) -> str:
        self._log.flush()
        with open(self.log_path, encoding="utf-8") as f:
            return f.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


@contextmanager
def running_server(*args: str, host: str = "127.0.0.1", **where):
    server = MedSRServer(*args, host=host, **where)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, wait_for: Optional[str] = "#medsr-apply"):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(60_000)
    page.goto(url)
    if wait_for:
        page.wait_for_selector(wait_for)
    return page


_TRANSIENT = ("not attached", "not visible", "not stable")


def _retrying(action, attempts: int = 5):
    """Run a page action again when the page re-rendered its element mid-action (the views and menus
    are re-rendered by the server as state changes, and the views area is briefly hidden while the
    layout changes; on a busy machine that can land mid-click or mid-screenshot)."""
    from playwright.sync_api import Error
    for attempt in range(attempts):
        try:
            return action()
        except Error as exc:
            transient = any(sign in str(exc) for sign in _TRANSIENT)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(0.5)


def choose(page, select_id: str, option: str) -> None:
    """Pick an item of a Vuetify select, as a user clicks it."""
    def pick():
        page.click(f"#{select_id}", force=True)
        page.get_by_role("option", name=option, exact=True).first.click()
    _retrying(pick)


def views_image(page) -> np.ndarray:
    """A grey-level screenshot of the slice views area."""
    from PIL import Image
    png = _retrying(lambda: page.locator("#medsr-views").screenshot())
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)


def wait_for_rendered_views(page, count: int, timeout_s: float = 60.0) -> np.ndarray:
    """Wait until ``count`` views show an image (not blank) and return the views screenshot."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = page.locator(".layout-grid-item").count()
        image = views_image(page)
        if shown == count and all(part.std() > 10 for part in np.array_split(image, count, axis=1)):
            return image
        assert time.monotonic() < deadline, f"{count} rendered view(s) did not appear in {timeout_s:.0f} s " \
                                            f"({shown} view(s) in the layout)"
        time.sleep(0.3)
