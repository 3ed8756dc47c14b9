"""Figures of `medsr serve` in headless Chromium (printed, never asserted): server start -> first rendered
frame, click -> result (bicubic and EDSR on a 256x256x40 volume), server memory idle and during a run
(server + worker processes), and frames per second reaching the browser while scrolling a view.
Also writes the README's screenshot (docs/figures/web_ui.png). Run: python scripts/bench_web.py"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "Testing")]

import numpy as np  # noqa: E402
from scipy.ndimage import zoom  # noqa: E402

from MedSRExtension import load_volume, save_volume  # noqa: E402
from MedSRExtension.core.volume import Volume  # noqa: E402
from web_browser import SAMPLE, MedSRServer, chromium, choose, open_page, wait_for_rendered_views  # noqa: E402

FIGURE = os.path.join(ROOT, "docs", "figures", "web_ui.png")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True).stdout.split()
    rows = [tuple(map(int, out[i:i + 3])) for i in range(0, len(out), 3)]
    tree, total, grew = {pid}, 0, True
    while grew:
        grew = False
        for p, pp, _ in rows:
            if pp in tree and p not in tree:
                tree.add(p)
                grew = True
    for p, _, rss in rows:
        if p in tree:
            total += rss
    return total / 1024


def make_volume(folder: str) -> str:
    """The sample brain resampled to 256x256 in-plane, 40 slices."""
    src = load_volume(SAMPLE)
    factors = np.array((40, 256, 256)) / np.array(src.array.shape)
    arr = zoom(src.array.astype(np.float32), factors, order=1)
    spacing = tuple(float(s / f) for s, f in zip(src.spacing, factors[::-1]))
    path = os.path.join(folder, "brain256x256x40.nrrd")
    save_volume(Volume(arr, spacing, src.origin, src.direction), path)
    return path


def run_and_time(page, server, model: str, name: str) -> tuple[float, float]:
    peak = [rss_mb(server.process.pid)]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(server.process.pid))
            time.sleep(0.2)
    choose(page, "medsr-model", model)
    page.wait_for_timeout(500)
    thread = threading.Thread(target=sample)
    thread.start()
    t0 = time.monotonic()
    page.click("#medsr-apply")
    page.wait_for_function(f"document.querySelector('#medsr-status').innerText.includes('_{name}')",
                           timeout=600_000)
    wait_for_rendered_views(page, 2)
    elapsed = time.monotonic() - t0
    done.set()
    thread.join()
    return elapsed, peak[0]


def scroll_fps(page, seconds: float = 3.0) -> float:
    page.evaluate("""() => { window.__frames = 0; const img = document.querySelector('.image-display-area');
        new MutationObserver(() => window.__frames++).observe(img, {attributes: true, attributeFilter: ['src']}); }""")
    box = page.locator(".layout-grid-item").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        page.mouse.wheel(0, 120 if (n // 15) % 2 == 0 else -120)
        n += 1
        page.wait_for_timeout(16)
    return page.evaluate("window.__frames") / (time.monotonic() - t0)


def main() -> None:
    with tempfile.TemporaryDirectory() as data, chromium() as browser:
        make_volume(data)
        t0 = time.monotonic()
        server = MedSRServer("--data", data, "--device", "cpu")
        try:
            page = open_page(browser, server.local_url)
            choose(page, "medsr-input", "brain256x256x40.nrrd")
            wait_for_rendered_views(page, 1)
            first_frame = time.monotonic() - t0
            page.wait_for_timeout(2000)
            idle = rss_mb(server.process.pid)
            print(f"server start -> first rendered frame: {first_frame:.1f} s")
            print(f"memory idle (server): {idle:.0f} MB")
            print(f"fps while scrolling (one view): {scroll_fps(page):.1f}")
            for model, name in (("bicubic", "bicubic"), ("EDSR (residual CNN reference) (edsr)", "edsr")):
                elapsed, peak = run_and_time(page, server, model, name)
                print(f"click -> result, {name}, 256x256x40 in-plane x2: {elapsed:.1f} s; "
                      f"peak memory server + worker {peak:.0f} MB")
            print(f"fps while scrolling (two linked views): {scroll_fps(page):.1f}")
            os.makedirs(os.path.dirname(FIGURE), exist_ok=True)
            page.wait_for_timeout(1000)
            page.screenshot(path=FIGURE)
            print(f"wrote {os.path.relpath(FIGURE, ROOT)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
