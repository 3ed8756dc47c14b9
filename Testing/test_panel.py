"""The panel model (MedSRLib.panel) driven as the Slicer widget and the browser UI drive it, on a
real slicer-core scene with real worker processes: what it offers, a full run, Compare, cancel,
failures, the install step and shutdown."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRLib import layout, panel, selftest  # noqa: E402
from MedSRLib.panel import PanelParameters, State, SuperResolvePanel  # noqa: E402


def _poll_until_idle(p: SuperResolvePanel, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while p.poll():
        assert time.monotonic() < deadline, f"the panel is still {p.state} after {timeout} s"
        time.sleep(0.05)


def _show_in_scene(scene, shown):
    """The panel's show callback, as the Logic's showSideBySide does it minus the Qt layout manager."""
    def show(first, second, reference=None, mode="inplane", axis="auto", plan=None):
        plan = plan or layout.plan_side_by_side(first, second, reference, mode=mode, axis=axis)
        shown.append(layout.apply_plan(plan, scene))
    return show


def test_offers_follow_the_model_and_the_mode(mrml_scene):
    p = SuperResolvePanel(PanelParameters(), mrml_scene)
    names = [name for _, name in p.model_items()]
    assert {"edsr", "lgsr", "iconet", "pfmdn", "bicubic"} <= set(names)
    assert p.params.model in ("edsr", "lgsr", "iconet", "pfmdn")  # a shipped network by default
    p.choose_model("iconet")
    assert p.scale_items() == (["2", "4"], False)
    assert p.set_scale_text("3") == "iconet runs at x2, x4 only" and p.params.scale == 2.0
    assert p.set_scale_text("4") is None and p.params.scale == 4.0
    p.choose_model("bicubic")
    assert p.scale_items()[1] is True and p.set_scale_text("2.5") is None and p.params.scale == 2.5
    assert "not a number" in p.set_scale_text("two")
    p.params.mode = "volumetric"
    assert not p.axis_visible
    p.params.mode = "throughplane"
    assert p.axis_visible
    assert p.button() == panel.Button("Super-resolve", False, "Select an input volume")
    assert p.device_line().startswith("CPU")


def test_adapt_applies_to_through_plane_runs_of_per_axis_networks(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", adapt=True), mrml_scene)
    assert not p.adapt_visible and p.validation_message() is None  # in-plane: the box is hidden and ignored
    assert "adapt" not in p.options_for(panel.Step("result", "edsr", None))
    p.params.mode = "throughplane"
    assert p.adapt_visible and "needs a network that runs per-axis factors" in p.validation_message()
    p.choose_model("pfmdn")
    assert p.validation_message() is None
    assert p.options_for(panel.Step("result", "pfmdn", None))["adapt"] is True
    assert "adapt" not in p.options_for(panel.Step("baseline", "bicubic", None))


def test_full_run_creates_the_node_shows_it_and_logs_the_worker(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    shown = []
    params = PanelParameters(inputVolume=node, model="bicubic", scale=2.0, device="cpu")
    p = SuperResolvePanel(params, mrml_scene, show=_show_in_scene(mrml_scene, shown))
    assert p.button().enabled and p.button().text == "Super-resolve"
    assert p.apply() == State.RUNNING
    assert p.button().text == "Cancel" and p.progress_visible
    _poll_until_idle(p)
    assert p.state == State.DONE, p.status
    out = p.outcome.output_node
    assert out.GetName() == "MedSRTestInput_SR2x_bicubic" and mrml_scene.GetNodeByID(out.GetID()) is out
    assert p.status == "Created 'MedSRTestInput_SR2x_bicubic'."
    assert any("worker pid" in line for line in p.log) and any("done in" in line for line in p.log)
    assert len(shown) == 1 and [c.GetBackgroundVolumeID() for c in shown[0]] == [node.GetID(), out.GetID()]
    assert p.button().text == "Super-resolve" and not p.progress_visible


def test_the_self_test_panel_check_passes(mrml_scene):
    selftest.check_panel_run(mrml_scene)


def test_compare_runs_the_baseline_and_tabulates(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    params = PanelParameters(inputVolume=node, model="bicubic", scale=2.0, device="cpu", compareEnabled=True,
                             baselineModel="nearest", showSideBySide=False)
    p = SuperResolvePanel(params, mrml_scene)
    p.apply()
    _poll_until_idle(p)
    assert p.state == State.DONE, p.status
    assert p.outcome.baseline_node.GetName() == "MedSRTestInput_SR2x_nearest"
    rows = p.outcome.comparison["rows"]  # without a reference the baseline is the reference: one row
    assert [r["method"] for r in rows] == ["MedSRTestInput_SR2x_bicubic"] and 0 < rows[0]["dice_mean"] <= 1
    assert p.outcome.comparison["table"].GetNumberOfRows() == 1
    assert "comparison table" in p.status


def test_cancel_mid_run_leaves_the_scene_as_it_was(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample())
    count = mrml_scene.GetNumberOfNodes()
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", scale=2.0, device="cpu"), mrml_scene)
    p.apply()
    selftest.wait_for_first_batch(p.steps[0].runner, poll=p.poll)
    assert p.apply() == State.CANCELLING  # the same button, now Cancel
    assert p.button() == panel.Button("Cancelling...", False, "Stopping the worker process")
    _poll_until_idle(p, timeout=30)
    assert p.state == State.IDLE and p.status == "Cancelled: nothing was added to the scene."
    assert mrml_scene.GetNumberOfNodes() == count and p.outcome.output_node is None


def test_a_worker_that_dies_fails_the_run_with_a_clear_status(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample())
    count = mrml_scene.GetNumberOfNodes()
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", scale=2.0, device="cpu"), mrml_scene)
    p.apply()
    runner = p.steps[0].runner
    selftest.wait_for_first_batch(runner)
    os.kill(runner.pid, signal.SIGKILL)
    _poll_until_idle(p, timeout=30)
    assert p.state == State.FAILED and "killed by SIGKILL" in p.status
    assert mrml_scene.GetNumberOfNodes() == count


def test_custom_weights_that_do_not_fit_are_refused_before_the_run(mrml_scene, tmp_path):
    from safetensors.torch import save_file
    import torch
    wrong = tmp_path / "mine.safetensors"
    save_file({"head.weight": torch.zeros(3, 3)}, str(wrong))
    node = selftest.add_oblique_node(mrml_scene)
    count = mrml_scene.GetNumberOfNodes()
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", scale=2.0, device="cpu",
                                          customWeights=str(wrong)), mrml_scene)
    assert p.apply() == State.FAILED
    assert "does not fit edsr at x2" in p.status and "tensors missing" in p.status and len(p.status) < 250
    assert not p.steps[0].runner and mrml_scene.GetNumberOfNodes() == count


def test_custom_weights_that_fit_are_used(mrml_scene, tmp_path):
    from MedSRExtension.zoo.weights import find_weights, verify
    import shutil
    mine = tmp_path / "my-edsr.safetensors"
    shutil.copy(verify(find_weights("edsr", (2, 2))), mine)
    node = selftest.add_oblique_node(mrml_scene)
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", scale=2.0, device="cpu",
                                          customWeights=str(mine), showSideBySide=False), mrml_scene)
    assert p.options_for(p.steps[0] if p.steps else panel.Step("result", "edsr", None))["weights"] == str(mine)
    p.apply()
    _poll_until_idle(p)
    assert p.state == State.DONE, p.status


def test_without_pytorch_the_panel_offers_the_install_and_declining_is_calm(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    p = SuperResolvePanel(PanelParameters(inputVolume=node), mrml_scene, torch_ready=lambda: False)
    assert p.model_items() == [("(models appear once PyTorch is installed)", "")] and not p.models_available
    p.begin_install()
    assert p.busy and p.button().text == "Installing..."
    p.end_install(False)
    assert p.state == State.IDLE and "nothing was installed" in p.status and "\n" not in p.status


def test_shutdown_during_a_run_stops_the_worker_and_keeps_nothing(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene, selftest.slow_sample())
    count = mrml_scene.GetNumberOfNodes()
    p = SuperResolvePanel(PanelParameters(inputVolume=node, model="edsr", scale=2.0, device="cpu"), mrml_scene)
    p.apply()
    runner = p.steps[0].runner
    p.shutdown()  # module reload or scene close
    assert runner.done and runner.returncode is not None and not p.busy
    assert mrml_scene.GetNumberOfNodes() == count


def test_a_thick_slice_input_opens_as_through_plane_and_says_why(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)  # 0.9 x 1.1 x 3.3 mm: thick along k
    p = SuperResolvePanel(PanelParameters(inputVolume=node, mode="inplane"), mrml_scene)
    line = p.follow_input()
    assert p.params.mode == "throughplane" and p.params.axis == "k"
    assert "thick slices" in line and "throughplane along k" in p.status
    assert p.follow_input() is None  # the same input: the user's own choice of mode stays
    p.params.mode = "volumetric"
    p.follow_input()
    assert p.params.mode == "volumetric"


def test_a_bicubic_default_is_said_not_silent(mrml_scene):
    from MedSRExtension.models.registry import get_spec
    records = [r for r in __import__("MedSRExtension").list_models() if get_spec(r["name"]).kind != "network"]
    p = SuperResolvePanel(PanelParameters(), mrml_scene, records=records)  # as where no weights are installed
    assert p.params.model == "bicubic" and "bicubic interpolation is selected" in p.status


def test_an_adapted_run_reports_tuning_then_the_passes_not_batches_of_an_abstract_total():
    from MedSRExtension.core.run_progress import ADAPT_TOTAL, ADAPT_TUNING, describe
    assert describe("pfmdn", 400, ADAPT_TOTAL, adapting=True) == "pfmdn: adapting to the volume, 50 % of the tuning time"
    assert describe("pfmdn", ADAPT_TUNING + 100, ADAPT_TOTAL, adapting=True) == \
        "pfmdn: super-resolving with the adapted network, 50 %"
    assert describe("edsr", 3, 12) == "edsr: batch 3 of 12"


def test_a_confidence_map_is_a_second_node_on_the_result_grid_shown_over_the_result(mrml_scene):
    from MedSRLib import nodes
    from MedSRLib.confidence import OF_ATTRIBUTE
    node = selftest.add_oblique_node(mrml_scene)  # thick along k: a through-plane run
    shown = []
    params = PanelParameters(inputVolume=node, model="pfmdn", scale=2.0, mode="throughplane", axis="k",
                             device="cpu", confidence=True)
    p = SuperResolvePanel(params, mrml_scene, show=_show_in_scene(mrml_scene, shown))
    p.apply()
    _poll_until_idle(p)
    assert p.state == State.DONE, p.status
    out, conf = p.outcome.output_node, p.outcome.confidence_node
    assert conf is not None and conf.GetName() == f"{out.GetName()} confidence"
    assert conf.GetAttribute(OF_ATTRIBUTE) == out.GetID()
    result, spread = nodes.volume_from_node(out), nodes.volume_from_node(conf)
    assert spread.array.shape == result.array.shape
    np.testing.assert_allclose(spread.direction, result.direction)
    np.testing.assert_allclose(spread.spacing, result.spacing)
    np.testing.assert_allclose(spread.origin, result.origin)
    assert spread.array.min() >= 0 and spread.array.max() > 0  # a spread: somewhere the two passes differ
    over = [c for c in shown[0] if c.GetBackgroundVolumeID() == out.GetID()]
    assert over and all(c.GetForegroundVolumeID() == conf.GetID() and 0 < c.GetForegroundOpacity() < 1 for c in over)
    assert all(c.GetForegroundVolumeID() != conf.GetID() for c in shown[0] if c not in over)  # not over the input
    p.params.confidence = False  # an in-plane run never asks for one
    p.params.mode = "inplane"
    assert "confidence" not in p.options_for(p.steps[0])


def test_the_slice_thickness_typed_in_picks_the_weights_for_slices_with_gaps(mrml_scene):
    from MedSRLib import nodes
    node = selftest.add_oblique_node(mrml_scene)  # slices 3.3 mm apart along k
    params = PanelParameters(inputVolume=node, model="pfmdn", scale=2.0, mode="throughplane", axis="k", device="cpu")
    p = SuperResolvePanel(params, mrml_scene)
    assert "thickness_mm" not in p.options_for(panel.Step("result", "pfmdn", None))  # 0: from the header
    params.sliceThickness = 1.0  # 1 mm slices every 3.3 mm, as the protocol says
    p.apply()
    _poll_until_idle(p)
    assert p.state == State.DONE, p.status
    record = nodes.provenance_of(p.outcome.output_node)
    assert record["weights"] == "pfmdn-light-thickslice-gap-x1.5-4.safetensors", record
    assert "1 mm every 3.3 mm" in record["slice_profile"] and "the caller" in record["slice_profile"], record


def test_best_quality_averages_the_network_over_eight_flips_and_the_result_says_so(mrml_scene):
    from MedSRLib import nodes
    node = selftest.add_oblique_node(mrml_scene)
    params = PanelParameters(inputVolume=node, model="edsr", scale=2.0, mode="inplane", device="cpu", bestQuality=True)
    p = SuperResolvePanel(params, mrml_scene)
    assert p.options_for(panel.Step("result", "edsr", None))["ensemble"] == 8
    assert "ensemble" not in p.options_for(panel.Step("result", "bicubic", None))  # nothing to average
    assert "ensemble" not in p.options_for(panel.Step("baseline", "edsr", None))  # the comparison's baseline
    params.mode, params.adapt, params.model = "throughplane", True, "pfmdn"
    assert "ensemble" not in p.options_for(panel.Step("result", "pfmdn", None))  # adaptation runs once
    params.mode, params.adapt, params.model = "inplane", False, "edsr"
    p.apply()
    _poll_until_idle(p)
    assert p.state == State.DONE, p.status
    assert nodes.provenance_of(p.outcome.output_node)["ensemble"] == "8"


def test_the_weights_family_reaches_the_run_and_a_missing_family_is_refused_in_one_line(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    params = PanelParameters(inputVolume=node, model="edsr", scale=4.0, mode="inplane", device="cpu",
                             trainedOn="scanner")
    p = SuperResolvePanel(params, mrml_scene)
    assert p.options_for(panel.Step("result", "edsr", None))["trained_on"] == "scanner"
    assert "trained_on" not in p.options_for(panel.Step("result", "bicubic", None))
    before = mrml_scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    p.apply()
    _poll_until_idle(p)
    assert p.state == State.FAILED and "of the scanner family for 'edsr'" in p.status, p.status
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == before
