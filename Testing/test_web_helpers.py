"""The web UI's pure helpers, without a browser: the printed URL, messages without server paths,
result file names, orientation letters and slice positions."""
from __future__ import annotations

import numpy as np

from MedSRWeb import messages, urls
from MedSRWeb.results import file_stem
from MedSRWeb.view_info import edge_letters, slice_position


def test_the_printed_url_can_be_opened_as_printed():
    assert urls.server_lines("127.0.0.1", 8080, None)[0] == "MedSR is serving on http://127.0.0.1:8080/"
    line, hint = urls.server_lines("0.0.0.0", 8080, "tok-0123456789abcdef")
    assert "0.0.0.0" not in line and line.endswith(":8080/?token=tok-0123456789abcdef")
    assert "ssh -L 8080:127.0.0.1:8080" in hint
    assert urls.shown_host("192.168.1.20") == "192.168.1.20" and urls.shown_host("::1") == "::1"


def test_messages_never_show_a_server_path(tmp_path):
    text = f"could not read {tmp_path}/uploads/1a2b_scan.nii.gz (bad header)"
    assert messages.without_paths(text) == "could not read 1a2b_scan.nii.gz (bad header)"
    assert messages.without_paths("/srv/data/sub/x.nrrd: bad", ["/srv/data"]) == "sub/x.nrrd: bad"
    assert messages.without_paths("ratio 1/2, x2") == "ratio 1/2, x2"


def test_adapted_and_gated_results_and_repeats_get_names_of_their_own():
    plain = {"model": "pfmdn", "adapt": "off"}
    assert file_stem("brain_SR2x_pfmdn", plain, set()) == "brain_SR2x_pfmdn"
    assert file_stem("brain_SR2x_pfmdn", {"model": "pfmdn", "adapt": "True"}, set()) == "brain_SR2x_pfmdn_adapted"
    gated = {"model": "bspline", "requested_model": "pfmdn", "adapt": "off"}
    assert file_stem("brain_SR2x_pfmdn", gated, set()) == "brain_SR2x_pfmdn_gated-bspline"
    assert file_stem("b", {"ensemble": "8"}, set()) == "b_ens8"
    assert file_stem("b", plain, {"b", "b_run2"}) == "b_run3"


def test_orientation_letters_and_slice_position():
    axial = np.diag([-1.0, 1.0, 1.0, 1.0])  # Slicer's axial view: screen right is patient left
    assert edge_letters(axial) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    coronal = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)
    assert edge_letters(coronal)["top"] == "S" and edge_letters(coronal)["bottom"] == "I"
    assert slice_position(12.5, -31.5, 31.5, 1.0) == "slice 45 / 64 \u00b7 12.5 mm"
