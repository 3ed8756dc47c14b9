"""The Compare section on a real slicer-core MRML scene: segmentation nodes for the baseline, the SR
result and the reference; a table and a Dice chart whose numbers are the engine's; a given reference
segmentation; no reference at all; and failures that add no node."""
from __future__ import annotations

import math

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRExtension import MedSRError, super_resolve  # noqa: E402
from MedSRExtension.evaluation.compare import crop, score_against_reference  # noqa: E402
from MedSRExtension.data.corpus import mni_path  # noqa: E402
from MedSRExtension.core.degradations import degrade  # noqa: E402
from MedSRExtension.core.volume_io import load_volume  # noqa: E402
from MedSRExtension.evaluation.segmentation import fit  # noqa: E402
from MedSRExtension.core.volume import Volume  # noqa: E402
from MedSRLib import comparison, nodes  # noqa: E402


@pytest.fixture(scope="module")
def volumes():
    """A real brain region on an oblique anisotropic grid, its thick-slice LR, and a bicubic SR of it."""
    region = crop(load_volume(mni_path()), (75, 95, 60), (40, 40, 20))
    a = np.radians(25)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    hr = Volume(region.array.astype(np.float32), (0.9, 0.9, 1.2), (10.0, -20.0, 5.0), rot)
    lr = degrade(hr, "thickslice", 2.0, axis="k")
    sr = super_resolve(lr, "bicubic", 2.0, "throughplane", "k", device="cpu")
    return hr, lr, sr


@pytest.fixture
def scene_nodes(mrml_scene, volumes):
    hr, lr, sr = volumes
    ref = nodes.write_output_node(mrml_scene, hr, "reference")
    base = nodes.write_output_node(mrml_scene, lr, "thick slices")
    srn = nodes.write_output_node(mrml_scene, sr, "thick slices SR bicubic")
    return ref, base, srn


def snapshot(node):
    return np.array(slicer.util.arrayFromVolume(node), copy=True), nodes.world_ijk_to_ras(node)


def column(table, name):
    t = table.GetTable()
    arr = t.GetColumnByName(name)
    assert arr is not None, f"table has no column '{name}'"
    return [arr.GetValue(r) for r in range(t.GetNumberOfRows())]


def test_compare_with_a_reference_volume(mrml_scene, volumes, scene_nodes):
    hr, lr, sr = volumes
    ref, base, srn = scene_nodes
    before = [snapshot(n) for n in scene_nodes]
    out = comparison.compare_nodes(srn, base, referenceNode=ref, method="otsu3", mode="throughplane", axis="k")

    segs = out["segmentations"]
    assert set(segs) == {"baseline", "sr", "reference"}
    assert out["against"] == f"Dice, PSNR and SSIM against the reference '{ref.GetName()}'."
    for node in segs.values():
        assert node.IsA("vtkMRMLSegmentationNode") and node.GetScene() is mrml_scene
        s = node.GetSegmentation()
        assert [s.GetNthSegment(i).GetName() for i in range(s.GetNumberOfSegments())] == ["class 1", "class 2"]
    # each segmentation is the engine's, on the grid of the image it was made from
    segmenter = fit("otsu3", hr)
    for role, grid in (("reference", hr), ("sr", sr), ("baseline", lr)):
        expected = segmenter.apply(grid).array
        for lab in (1, 2):
            got = comparison.segment_array(segs[role], f"class {lab}", grid)
            assert np.array_equal(got, (expected == lab).astype(np.uint8)), (role, lab)

    table = out["table"]
    assert table.IsA("vtkMRMLTableNode") and table.GetNumberOfRows() == 2
    assert column(table, "Method") == ["thick slices", "thick slices SR bicubic"]
    for role, vol, row in (("baseline", lr, 0), ("sr", sr, 1)):
        want = score_against_reference(vol, hr, segmenter).metrics
        for name, key in (("PSNR", "psnr"), ("SSIM", "ssim"), ("Dice mean", "dice_mean"),
                          ("HD95 mean", "hd95_mean"), ("Dice class 2", "dice_2"), ("HD95 class 1", "hd95_1")):
            assert column(table, name)[row] == pytest.approx(want[key], rel=1e-9), (role, name)
    dice = column(table, "Dice mean")
    assert 0.5 < dice[0] < dice[1] <= 1.0  # on this brain region SR segments closer to the reference than thick slices
    assert table.GetColumnUnitLabel("HD95 mean") == "mm"

    chart = out["chart"]
    assert chart.IsA("vtkMRMLPlotChartNode") and chart.GetNumberOfPlotSeriesNodes() == 3
    for series in out["series"]:
        assert series.GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeBar
        assert series.GetTableNodeID() == table.GetID() and series.GetLabelColumnName() == "Method"
    assert sorted(s.GetYColumnName() for s in out["series"]) == ["Dice class 1", "Dice class 2", "Dice mean"]

    plan = out["plan"]
    assert [(v.view, v.volume_id) for v in plan.views] == [("Red", base.GetID()), ("Yellow", srn.GetID()),
                                                            ("Green", ref.GetID())]
    assert plan.table_id == table.GetID() and plan.chart_id == chart.GetID()
    red = mrml_scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
    assert segs["baseline"].GetDisplayNode().IsDisplayableInView(red.GetID())
    assert not segs["sr"].GetDisplayNode().IsDisplayableInView(red.GetID())
    for node, b in zip(scene_nodes, before):  # the inputs are untouched
        after = snapshot(node)
        assert np.array_equal(b[0], after[0]) and np.array_equal(b[1], after[1])


def test_a_given_reference_segmentation_is_the_reference(mrml_scene, volumes, scene_nodes):
    hr, lr, sr = volumes
    ref, base, srn = scene_nodes
    labels = fit("otsu3", hr).reference
    # the user's segmentation: white matter only, on a 2x finer grid than the reference
    fine = Volume((labels.array == 2).astype(np.uint8).repeat(2, 0).repeat(2, 1).repeat(2, 2),
                  tuple(s / 2 for s in hr.spacing),
                  np.asarray(hr.origin) + hr.direction @ (-np.asarray(hr.spacing) / 4), hr.direction)
    user = comparison.add_segmentation_node(mrml_scene, fine, {1: "white matter"}, "manual")
    back, names = comparison.labels_from_segmentation(user, hr)
    assert names == {1: "white matter"} and np.array_equal(back.array, (labels.array == 2).astype(np.uint8))

    n_before = mrml_scene.GetNumberOfNodes()
    out = comparison.compare_nodes(srn, base, referenceNode=ref, referenceSegmentationNode=user)
    assert set(out["segmentations"]) == {"baseline", "sr"}  # the given one is used, not recomputed
    assert column(out["table"], "Dice white matter")[1] > 0.8
    assert mrml_scene.GetNumberOfNodes() > n_before
    assert user.GetSegmentation().GetNumberOfSegments() == 1


def test_without_reference_the_baseline_is_the_reference(mrml_scene, scene_nodes):
    _, base, srn = scene_nodes
    out = comparison.compare_nodes(srn, base, method="otsu3")
    assert set(out["segmentations"]) == {"baseline", "sr"}
    assert out["table"].GetNumberOfRows() == 1
    row = out["rows"][0]
    assert math.isnan(row["psnr"]) and 0.5 < row["dice_mean"] <= 1.0
    assert out["against"].startswith("Without a reference: Dice against the segmentation of the baseline")


@pytest.mark.parametrize("method", ["kmeans", "threshold:1e9"])
def test_failures_add_no_node(mrml_scene, scene_nodes, method):
    ref, base, srn = scene_nodes
    n_before = mrml_scene.GetNumberOfNodes()
    with pytest.raises(MedSRError):
        comparison.compare_nodes(srn, base, referenceNode=ref, method=method)
    empty = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    with pytest.raises(MedSRError, match="no segments"):
        comparison.compare_nodes(srn, base, referenceNode=ref, referenceSegmentationNode=empty)
    assert mrml_scene.GetNumberOfNodes() == n_before + 1
