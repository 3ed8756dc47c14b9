"""The MRML glue on a real slicer-core scene: volume node -> engine -> new volume node, exact
geometry, cancel and failure leaving the scene unchanged, transforms and refusals. The checks live
in MedSRLib.selftest so Slicer's own self-test (MedSRTest) runs the very same code."""
from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRExtension import MedSRError, super_resolve  # noqa: E402
from MedSRExtension.models.registry import names  # noqa: E402
from MedSRLib import nodes, process, selftest  # noqa: E402


def test_oblique_anisotropic_node_keeps_its_world_box(mrml_scene):
    out = selftest.check_oblique_roundtrip(mrml_scene, model="bicubic", scale=2.0)
    assert out.GetImageData().GetDimensions() == (40, 48, 8)  # i, j doubled; k (3.3 mm) is the slicing axis


def test_throughplane_scales_only_the_thick_axis(mrml_scene):
    out = selftest.check_oblique_roundtrip(mrml_scene, model="bspline", scale=3.0, mode="throughplane")
    assert out.GetImageData().GetDimensions() == (20, 24, 24)
    assert np.allclose(out.GetSpacing(), (0.9, 1.1, 1.1))


@pytest.mark.skipif("edsr" not in names(), reason="no network architecture registered yet")
def test_untrained_network_runs_through_the_node_path(mrml_scene):
    selftest.check_oblique_roundtrip(mrml_scene, model="edsr", scale=2.0, weights="random", preset="light")


def test_output_voxels_equal_the_engine_on_the_node_volume(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    out = process.superresolve_node(node, model="lanczos", scale=2.0, device="cpu")
    expected = super_resolve(nodes.volume_from_node(node), model="lanczos", scale=2.0, device="cpu")
    assert np.array_equal(slicer.util.arrayFromVolume(out), expected.array)
    assert np.allclose(nodes.matrix_from_volume(expected), nodes.world_ijk_to_ras(out), atol=1e-9)


def test_cancel_mid_run_adds_no_node(mrml_scene):
    selftest.check_cancel_leaves_scene_unchanged(mrml_scene)


def test_failed_or_refused_run_leaves_scene_unchanged(mrml_scene):
    selftest.check_failure_leaves_scene_unchanged(mrml_scene)


def test_linear_transform_is_hardened_into_the_output(mrml_scene):
    selftest.check_transformed_input(mrml_scene)


def test_non_linear_transform_label_map_and_rgb_are_refused(mrml_scene):
    selftest.check_refusals(mrml_scene)


def test_background_run_finishes_with_progress_and_a_node(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    seen = []
    job, runner = process.start_superresolve(node, model="linear", scale=2.0, device="cpu", batch=2,
                                             progress=lambda d, t: seen.append((d, t)))
    assert runner.wait(60)
    out = process.finish_superresolve(job, runner)
    assert runner.error is None and runner.fraction == 1.0
    assert seen[-1][0] == seen[-1][1] == 4  # 8 slices in batches of 2
    assert out.GetName() == "MedSRTestInput_SR2x_linear"
    assert mrml_scene.GetNodeByID(out.GetID()) is out


def test_existing_output_node_is_filled_and_input_cannot_be_the_output(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    target = mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mine")
    target.SetAndObserveTransformNodeID(mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode").GetID())
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml_scene)  # exists in Slicer from the start
    count = mrml_scene.GetNumberOfNodes()
    out = process.superresolve_node(node, model="bicubic", scale=2.0, device="cpu", outputNode=target)
    assert out is target and out.GetName() == "mine" and out.GetParentTransformNode() is None
    assert out.GetImageData().GetDimensions() == (40, 48, 8)
    assert mrml_scene.GetNumberOfNodes() == count + 1  # only the output's display node is new
    with pytest.raises(MedSRError, match="output volume is the input"):
        process.superresolve_node(node, model="bicubic", scale=2.0, outputNode=node)


def test_input_without_hierarchy_folder_goes_to_the_scene_root(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    out = process.superresolve_node(node, model="nearest", scale=2.5, device="cpu")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml_scene)
    assert out.GetName() == "MedSRTestInput_SR2.5x_nearest"
    assert sh.GetItemParent(sh.GetItemByDataNode(out)) == sh.GetSceneItemID()


def test_engine_error_for_unsupported_model_scale_is_clear(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    with pytest.raises(MedSRError, match="unknown model"):
        process.superresolve_node(node, model="no-such-model", scale=2.0, device="cpu")


def test_output_node_carries_the_provenance_as_attributes(mrml_scene):
    node = selftest.add_oblique_node(mrml_scene)
    assert nodes.provenance_of(node) == {}  # an acquired image has none
    out = process.superresolve_node(node, model="bicubic", scale=2.0, device="cpu")
    record = nodes.provenance_of(out)
    assert out.GetAttribute("MedSR.model") == "bicubic" and record["scale"] == "2,2,1" and record["axis"] == "k"
    assert record["device"] == "cpu" and "not an acquired image" in record["derived"] and record["medsr_version"]
    again = process.superresolve_node(node, model="lanczos", scale=2.0, device="cpu", outputNode=out)
    assert again.GetAttribute("MedSR.model") == "lanczos"  # a reused output node gets the new record
