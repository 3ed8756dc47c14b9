"""`medsr serve` with two users: two browser contexts (two cookie jars, as two people) against one
real server. Each gets its own session process: its own input, runs and results; one cannot see,
drive or cancel the other's run; a session whose page is closed is stopped after the idle time.
Also: every result of a session is kept (a cancelled run removes none) and each download carries
its provenance under a name of its own."""
from __future__ import annotations

import os
import time

import pytest

from web_browser import (ROOT, SAMPLE, chromium, choose, require_browser_stack, running_server,
                         wait_for_rendered_views)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
IDLE_S = 4
SLOW_MODEL = "EDSR (residual CNN reference) (edsr)"


@pytest.fixture(scope="module")
def server():
    require_browser_stack()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
               MEDSR_SESSION_IDLE_S=str(IDLE_S))
    with running_server(SAMPLE, "--device", "cpu", env=env) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    require_browser_stack()
    with chromium() as b:
        yield b


def session_pids(server) -> set[int]:
    """The session processes the server has started (its children running MedSRWeb.session_server)."""
    import psutil
    return {c.pid for c in psutil.Process(server.process.pid).children()
            if "MedSRWeb.session_server" in " ".join(c.cmdline())}


def user(browser, server):
    """A new person: a browser context of its own (own cookies), on the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.local_url)
    page.wait_for_selector("#medsr-apply")
    wait_for_rendered_views(page, 1)
    return context, page


def shown_choice(page, select_id: str) -> str:
    """The text a Vuetify select shows as chosen."""
    return page.evaluate(f"document.querySelector('#{select_id}').closest('.v-select').innerText")


def button(page) -> str:
    return page.inner_text("#medsr-apply").strip().lower()


def start_slow_run(page) -> None:
    choose(page, "medsr-model", SLOW_MODEL)
    choose(page, "medsr-scale", "4")
    page.click("#medsr-apply")
    page.wait_for_function("document.querySelector('#medsr-apply').innerText.trim().toLowerCase() == 'cancel'")


def test_each_browser_session_has_its_own_runs_and_cannot_cancel_another(server, browser):
    first, page_a = user(browser, server)
    second, page_b = user(browser, server)
    assert len(session_pids(server)) == 2, "two people should get two session processes"
    start_slow_run(page_a)

    page_b.wait_for_timeout(1500)  # what a second user sees while the first one's run works
    assert button(page_b) == "super-resolve", "the second user sees the first one's run"
    assert "Running" not in page_b.inner_text("#medsr-status")
    assert not page_b.is_visible("#medsr-progress")
    choose(page_b, "medsr-model", "bicubic")  # B's choices are B's own
    choose(page_b, "medsr-scale", "2")
    assert "bicubic" in shown_choice(page_b, "medsr-model")
    assert "EDSR" in shown_choice(page_a, "medsr-model") and button(page_a) == "cancel"

    page_b.click("#medsr-apply")  # B's own run finishes; A's keeps working
    page_b.wait_for_selector("#medsr-result-tools", state="visible")
    assert button(page_a) == "cancel", "the second user's click stopped the first user's run"
    assert not page_a.is_visible("#medsr-result-tools"), "the first user sees the second one's result"

    page_a.click("#medsr-apply")  # only A's own Cancel cancels A's run
    page_a.wait_for_function("document.querySelector('#medsr-status').innerText.includes('Cancelled')")
    assert page_a.request.get(server.local_url.rstrip("/") + "/medsr/download?format=nrrd").status == 404
    assert page_b.request.get(server.local_url.rstrip("/") + "/medsr/download?format=nrrd").status == 200
    assert "Created" in page_b.inner_text("#medsr-status")

    pid_b = session_pids(server)
    second.close()  # B leaves: B's session is freed after the idle time, A's stays
    deadline = time.monotonic() + 60
    while len(session_pids(server)) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    left = session_pids(server)
    assert len(left) == 1 and left < pid_b, "the closed session was not stopped after the idle time"
    assert button(page_a) == "super-resolve" and page_a.is_visible("#medsr-apply")
    first.close()


def test_results_are_kept_and_every_download_says_what_made_it(server, browser, tmp_path):
    from MedSRExtension.core.provenance import read_provenance
    context, page = user(browser, server)
    for scale in ("2", "3"):
        choose(page, "medsr-model", "bicubic")
        choose(page, "medsr-scale", scale)
        page.click("#medsr-apply")
        page.wait_for_function(f"document.querySelector('#medsr-result-line').innerText.includes('\u00d7{scale}')")
    start_slow_run(page)
    page.click("#medsr-apply")  # a cancelled run removes no earlier result
    page.wait_for_function("document.querySelector('#medsr-status').innerText.includes('Cancelled')")
    assert page.is_visible("#medsr-result-tools")
    base = server.local_url.rstrip("/") + "/medsr/download"
    names, records = set(), []
    for number in (1, 2):
        response = page.request.get(f"{base}?format=nii.gz&result={number}")
        assert response.status == 200
        name = response.headers["content-disposition"].split('filename="')[1].rstrip('"')
        target = tmp_path / name
        target.write_bytes(response.body())
        names.add(name)
        records.append(read_provenance(target))
    nrrd = tmp_path / "result.nrrd"
    nrrd.write_bytes(page.request.get(f"{base}?format=nrrd&result=1").body())
    assert len(names) == 2, f"two results share a file name: {names}"
    assert [r["model"] for r in records] == ["bicubic", "bicubic"]
    assert [r["scale"].split(",")[:2] for r in records] == [["2", "2"], ["3", "3"]]
    assert read_provenance(nrrd)["model"] == "bicubic" and read_provenance(nrrd)["mode"] == "inplane"
    assert page.request.get(f"{base}?format=nrrd&result=3").status == 404
    context.close()
