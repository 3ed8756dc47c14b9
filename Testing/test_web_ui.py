"""`medsr serve` in a real browser: Debian's headless Chromium driven by playwright against the real
server (a subprocess on a free port), judged from screenshots of the rendered slice views."""
from __future__ import annotations

import itertools
import os
import shutil
import time

import numpy as np
import pytest

from web_browser import (SAMPLE, SAMPLE_DIR, chromium, choose, open_page, require_browser_stack, running_server,
                         views_image, wait_for_rendered_views)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def server(data_folder):
    require_browser_stack()
    with running_server(SAMPLE, "--device", "cpu", "--data", str(data_folder)) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    require_browser_stack()
    with chromium() as b:
        yield b


def test_super_resolve_shows_the_result_beside_the_input_and_downloads_it(server, browser, tmp_path):
    page = open_page(browser, server.local_url)
    before = wait_for_rendered_views(page, 1)
    choose(page, "medsr-model", "bicubic")
    page.click("#medsr-apply")
    page.wait_for_selector("#medsr-result-tools", state="visible")
    after = wait_for_rendered_views(page, 2)
    left, right = np.array_split(after, 2, axis=1)
    assert np.abs(left - right).mean() > 1.0, "the result view looks the same as the input view"
    assert np.abs(before - after).mean() > 1.0, "the views did not change after Super-resolve"
    assert "Created 'MedSRBrainT1_SR2x_bicubic'" in page.inner_text("#medsr-status")
    assert "worker pid" in page.inner_text("#medsr-log")

    page.click("#medsr-flip input")  # one view, flipping between input and result
    flipped = wait_for_rendered_views(page, 1)
    page.click("#medsr-flip-button")
    deadline, change = time.monotonic() + 30, 0.0
    while time.monotonic() < deadline and change <= 0.25:  # the flipped frame arrives in its own time
        time.sleep(0.3)
        change = float(np.abs(views_image(page) - flipped).mean())
    assert change > 0.25, f"flipping did not change the view ({change:.2f}; a still view differs by 0)"
    with page.expect_download() as got:
        page.click("#medsr-download-nii")
    target = tmp_path / got.value.suggested_filename
    got.value.save_as(target)
    from MedSRExtension import load_volume
    result, source = load_volume(target), load_volume(SAMPLE)
    assert target.name == "MedSRBrainT1_SR2x_bicubic.nii.gz"
    assert result.array.shape == (source.array.shape[0], source.array.shape[1] * 2, source.array.shape[2] * 2)

    page.close()


def test_cancel_stops_the_run_and_leaves_no_result(server, browser):
    page = open_page(browser, server.local_url)
    wait_for_rendered_views(page, 1)
    choose(page, "medsr-model", "EDSR (residual CNN reference) (edsr)")
    choose(page, "medsr-scale", "4")
    page.click("#medsr-apply")
    page.wait_for_function("document.querySelector('#medsr-apply').innerText.trim().toLowerCase() == 'cancel'")
    page.click("#medsr-apply")
    page.wait_for_function("document.querySelector('#medsr-status').innerText.includes('Cancelled')")
    assert "nothing was added" in page.inner_text("#medsr-status")
    assert not page.is_visible("#medsr-result-tools")
    wait_for_rendered_views(page, 1)
    assert page.request.get(server.local_url.rstrip("/") + "/medsr/download?format=nrrd").status == 404
    assert not page.is_visible("#medsr-adapt")  # "Adapt to this volume" belongs to through-plane runs
    choose(page, "medsr-mode", "through-plane (thick slices)")
    page.wait_for_selector("#medsr-adapt", state="visible")
    page.close()


def test_a_bad_upload_is_refused_with_a_message(server, browser, tmp_path):
    page = open_page(browser, server.local_url)
    broken = tmp_path / "scan.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file" * 100)
    page.set_input_files("#medsr-upload", str(broken))
    page.wait_for_function("document.querySelector('#medsr-upload-message').innerText.includes('refused')")
    message = page.inner_text("#medsr-upload-message")
    assert "'scan.nii.gz' could not be read as a volume" in message
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    page.set_input_files("#medsr-upload", str(notes))
    page.wait_for_function("document.querySelector('#medsr-upload-message').innerText.includes('notes.txt')")
    assert "is not a volume file" in page.inner_text("#medsr-upload-message")
    page.close()


def input_titles(page) -> list[str]:
    """The titles the Volume menu offers, as a user sees them when opening it."""
    page.click("#medsr-input", force=True)
    page.wait_for_selector(".v-overlay--active [role=option]")
    titles = [t.strip() for t in page.locator(".v-overlay--active [role=option]").all_inner_texts()]
    page.keyboard.press("Escape")
    return titles


def test_files_added_to_the_data_folder_are_listed_on_refresh_and_uploads_keep_their_own_names(
        server, browser, data_folder, tmp_path):
    page = open_page(browser, server.local_url)
    wait_for_rendered_views(page, 1)
    assert "added.nrrd" not in input_titles(page)
    shutil.copy(SAMPLE, data_folder / "added.nrrd")
    page.click("#medsr-refresh")
    page.wait_for_timeout(1000)
    assert "added.nrrd" in input_titles(page)
    twin = tmp_path / "added.nrrd"  # an upload named like a data file: listed under a name of its own
    shutil.copy(SAMPLE, twin)
    page.set_input_files("#medsr-upload", str(twin))
    page.wait_for_function("document.querySelector('#medsr-upload-message').innerText.includes('Loaded')")
    titles = input_titles(page)
    assert "added.nrrd" in titles and "added.nrrd (upload)" in titles, titles
    page.close()


def test_with_a_token_nothing_is_served_without_it(browser):
    """The gate a server bound beyond loopback gets (``needs_token`` in test_web_access); tests bind
    127.0.0.1 only, so the token is given explicitly here, which switches on the same gate."""
    require_browser_stack()
    with running_server(SAMPLE, "--token", "medsr-test-token-0123456789") as s:
        assert "?token=" in s.url
        base = s.local_url.split("?")[0].rstrip("/")
        page = browser.new_page()
        for path in ("/", "/index.html", "/medsr/download?format=nrrd", "/ws"):
            response = page.request.get(base + path, max_redirects=0)
            assert response.status == 403, (path, response.status)
            assert "needs its token" in response.text()
        assert page.request.get(base + "/?token=wrong-token-xxxxxxxx", max_redirects=0).status == 403
        page.goto(base + "/")
        assert page.locator("#medsr-apply").count() == 0
        page.close()
        page = open_page(browser, s.local_url)  # the printed URL: the token, then a cookie
        assert "token" not in page.url
        wait_for_rendered_views(page, 1)
        page.close()


def bicubic_result_beside_input(browser, server):
    """A new page with a bicubic x2 result shown beside its input."""
    page = open_page(browser, server.local_url)
    wait_for_rendered_views(page, 1)
    choose(page, "medsr-model", "bicubic")
    choose(page, "medsr-scale", "2")
    page.click("#medsr-apply")
    page.wait_for_selector("#medsr-result-tools", state="visible")
    wait_for_rendered_views(page, 2)
    return page


def test_views_are_labelled_located_and_move_together(server, browser):
    page = bicubic_result_beside_input(browser, server)
    page.wait_for_function("document.querySelectorAll('.medsr-view-label').length == 2 && "
                           "[...document.querySelectorAll('.medsr-view-label')].every(e => e.innerText.trim())")
    labels = [e.strip() for e in page.locator(".medsr-view-label").all_inner_texts()]
    assert labels == ["Input", "Result: bicubic x2"], labels
    letters = {e.strip() for e in page.locator(".medsr-orientation-left, .medsr-orientation-right").all_inner_texts()}
    assert letters == {"R", "L"}, letters  # axial views of an axial volume: R and L at the sides
    choose(page, "medsr-plane", "Coronal")  # every view in another plane: S and I at the top and bottom
    page.wait_for_function("[...document.querySelectorAll('.medsr-orientation-top')].map(e => e.innerText.trim())"
                           ".join() == 'S,S'")
    choose(page, "medsr-plane", "auto")
    page.wait_for_function("[...document.querySelectorAll('.medsr-orientation-top')].map(e => e.innerText.trim())"
                           ".join() == 'A,A'")

    def positions():
        return [e.strip() for e in page.locator(".medsr-slice-position").all_inner_texts()]
    before = positions()
    assert all(p.startswith("slice ") and p.endswith(" mm") for p in before), before
    page.locator(".medsr-slice-slider [role=slider]").first.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("(b) => { const p = [...document.querySelectorAll('.medsr-slice-position')]"
                           ".map(e => e.innerText.trim()); return p[0] != b && p[0] == p[1]; }", arg=before[0])
    after = positions()
    assert after[0].split(" \u00b7 ")[1] == after[1].split(" \u00b7 ")[1], after  # one position (mm) in both
    page.close()


def _voxels_near(volume, ras, rounding: float = 0.05) -> list[float]:
    """The nearest voxel's value of an engine Volume (LPS geometry) at every RAS point within the page's
    rounding of ``ras`` (it shows 0.1 mm): the shown value must be one of them."""
    values = []
    for offset in itertools.product((-rounding, 0.0, rounding), repeat=3):
        r = np.asarray(ras, dtype=float) + offset
        lps = np.array([-r[0], -r[1], r[2]])
        ijk = np.linalg.solve(np.asarray(volume.direction) * np.asarray(volume.spacing), lps - np.asarray(volume.origin))
        i, j, k = (int(np.floor(c + 0.5)) for c in ijk)
        values.append(float(volume.array[k, j, i]))
    return values


def _one_of(shown: float, values: list[float]) -> bool:
    return any(abs(shown - v) <= max(1e-3, 1e-5 * abs(v)) for v in values)


def test_the_values_under_the_mouse_are_shown_for_input_and_result_at_one_place(server, browser, tmp_path):
    from MedSRExtension import load_volume
    page = bicubic_result_beside_input(browser, server)
    box = page.locator("#medsr-views").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.45)
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5, steps=4)
    page.wait_for_function("[...document.querySelectorAll('.medsr-probe')].filter(e => e.innerText.includes('\u00b7'))"
                           ".length == 2")
    texts = [t.strip() for t in page.locator(".medsr-probe").all_inner_texts()]
    places = {t.split(" \u00b7 ")[0] for t in texts}
    assert len(places) == 1, texts  # linked views: one place, read in both
    ras = [float(v) for v in places.pop().replace(" mm", "").split()[1::2]]
    shown_input, shown_result = (float(t.split(" \u00b7 ")[1]) for t in texts)
    assert _one_of(shown_input, _voxels_near(load_volume(SAMPLE), ras)), (shown_input, ras)
    with page.expect_download() as got:
        page.click("#medsr-download-nrrd")
    target = tmp_path / got.value.suggested_filename
    got.value.save_as(target)
    result = load_volume(target)
    assert _one_of(shown_result, _voxels_near(result, ras)), (shown_result, ras)
    page.close()


def test_a_through_plane_result_can_show_its_confidence_map_over_it(server, browser, data_folder):
    page = open_page(browser, server.local_url)
    wait_for_rendered_views(page, 1)
    shutil.copy(os.path.join(SAMPLE_DIR, "MedSRBrainT1Thick4mm.nrrd"), data_folder / "thick.nrrd")
    page.click("#medsr-refresh")
    page.wait_for_timeout(800)
    choose(page, "medsr-input", "thick.nrrd")  # 4 mm slices: opens through-plane
    page.wait_for_selector("#medsr-confidence", state="visible")
    choose(page, "medsr-model", "PFMDN (pyramidal feature multi-distillation network) (pfmdn)")
    choose(page, "medsr-scale", "2")
    page.click("#medsr-confidence")
    page.click("#medsr-apply")
    page.wait_for_selector("#medsr-result-tools", state="visible", timeout=180_000)
    page.wait_for_selector("#medsr-confidence-overlay", state="visible")
    wait_for_rendered_views(page, 2)
    page.wait_for_timeout(2500)  # the views are fitted again once the browser reports their sizes
    with_map = views_image(page)
    page.click("#medsr-confidence-overlay input")  # the map off: only the result view changes
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        without = views_image(page)
        if np.abs(np.array_split(without, 2, axis=1)[1] - np.array_split(with_map, 2, axis=1)[1]).mean() > 1.0:
            break
        time.sleep(0.3)
    left_change, right_change = (np.abs(a - b).mean() for a, b in zip(np.array_split(without, 2, axis=1),
                                                                      np.array_split(with_map, 2, axis=1)))
    assert right_change > 1.0 and left_change < 0.5, (left_change, right_change)
    page.close()


def test_one_window_level_for_input_and_result(server, browser):
    page = open_page(browser, server.local_url)
    wait_for_rendered_views(page, 1)
    choose(page, "medsr-model", "bicubic")
    page.click("#medsr-apply")
    page.wait_for_selector("#medsr-result-tools", state="visible")
    wait_for_rendered_views(page, 2)
    page.wait_for_timeout(2500)  # the views are fitted again once the browser reports their sizes
    first = views_image(page)
    choose(page, "medsr-window", "CT bone")  # another window: both views change alike
    old_left, old_right = np.array_split(first, 2, axis=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # both views re-render, each in its own time
        left, right = np.array_split(views_image(page), 2, axis=1)
        if min(abs(left.mean() - old_left.mean()), abs(right.mean() - old_right.mean())) > 5:
            break
        time.sleep(0.3)
    change_left, change_right = left.mean() - old_left.mean(), right.mean() - old_right.mean()
    assert abs(change_left) > 5 and abs(change_right) > 5 and change_left * change_right > 0, \
        f"the preset did not apply to the input and the result alike ({change_left:.1f}, {change_right:.1f})"
    assert abs(change_left - change_right) < 0.5 * max(abs(change_left), abs(change_right))
    page.close()


def test_best_quality_runs_the_self_ensemble_and_the_download_says_so(server, browser):
    page = open_page(browser, server.local_url)
    wait_for_rendered_views(page, 1)
    choose(page, "medsr-model", "EDSR (residual CNN reference) (edsr)")
    choose(page, "medsr-scale", "2")
    page.click("#medsr-best-quality")
    page.click("#medsr-apply")
    page.wait_for_selector("#medsr-result-tools", state="visible", timeout=240_000)
    with page.expect_download() as got:
        page.click("#medsr-download-nii")
    assert got.value.suggested_filename == "MedSRBrainT1_SR2x_edsr_ens8.nii.gz"
    page.close()
