"""The Compare section on MRML: does super-resolution change what a segmentation finds?

``compare_nodes`` segments the baseline (e.g. the input, or a classical upsampling of it) and the SR
result with one method fitted on the reference, and measures both against the reference:

- reference volume given, no reference segmentation: the method (``otsu3``, ``otsuN``,
  ``threshold:T``) is fitted on the reference; the reference gets its own segmentation node;
- reference segmentation given: its segments (labels 1..N in segment order, binary labelmaps) are
  the reference; baseline and SR are segmented by refining it with their intensities
  (``segmentation.label_map_segmenter``; ``method`` is not used);
- no reference volume: the baseline plays the reference (thresholds fitted on it); the table then
  says how far the SR result's segmentation departs from the baseline's, without PSNR/SSIM.

Outputs (added to the scene only once everything is computed; a failure adds nothing): one
vtkMRMLSegmentationNode per segmented image on that image's own grid, shown only in its own slice
view of the side-by-side plan; a vtkMRMLTableNode (one row per image: PSNR, SSIM, Dice and HD95
mean and per label, volume difference); a bar chart (vtkMRMLPlotChartNode with one
vtkMRMLPlotSeriesNode per label and one for the mean); and the layout plan (``layout.py``) with the
table and chart below the views. No Qt here.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from MedSRExtension.evaluation import segmentation
from MedSRExtension.evaluation.compare import score_against_reference
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

from . import nodes

SEGMENT_COLOURS = ((0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (1.00, 0.88, 0.10), (0.26, 0.39, 0.85),
                   (0.96, 0.51, 0.19), (0.57, 0.12, 0.71), (0.27, 0.94, 0.94), (0.94, 0.20, 0.90))
MEAN_COLOUR = (0.2, 0.2, 0.2)


# --- segmentation nodes <-> label volumes ------------------------------------------------------

def _oriented_to_volume(image) -> Volume:
    """A vtkOrientedImageData (world RAS, any extent) as an engine Volume (LPS)."""
    dims = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    if scalars is None or 0 in dims:
        return Volume(np.zeros((1, 1, 1), np.uint8))
    arr = numpy_support.vtk_to_numpy(scalars).reshape(dims[::-1])
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    ext = image.GetExtent()
    ijk_to_ras[:3, 3] = ijk_to_ras[:3, :3] @ np.array([ext[0], ext[2], ext[4]], float) + ijk_to_ras[:3, 3]
    spacing, origin, direction = nodes.geometry_from_matrix(ijk_to_ras)
    return Volume(np.array(arr, copy=True), spacing, origin, direction)


def labels_from_segmentation(segmentationNode, reference: Volume) -> tuple[Volume, dict[int, str]]:
    """The node's segments as one label map on ``reference``'s grid (segment n -> label n, later
    segments win where they overlap), and {label: segment name}."""
    seg = segmentationNode.GetSegmentation()
    ids = vtk.vtkStringArray()
    seg.GetSegmentIDs(ids)
    if ids.GetNumberOfValues() == 0:
        raise MedSRError(f"segmentation '{segmentationNode.GetName()}' has no segments; add one or leave "
                         "the reference segmentation empty")
    if segmentationNode.GetParentTransformNode() is not None:
        raise MedSRError(f"segmentation '{segmentationNode.GetName()}' is under a transform; harden it first")
    out = np.zeros(reference.array.shape, np.uint8 if ids.GetNumberOfValues() < 256 else np.int16)
    names: dict[int, str] = {}
    for n in range(ids.GetNumberOfValues()):
        segment_id = ids.GetValue(n)
        image = slicer.vtkOrientedImageData()
        if not segmentationNode.GetBinaryLabelmapRepresentation(segment_id, image):
            raise MedSRError(f"segment '{seg.GetSegment(segment_id).GetName()}' has no binary labelmap; "
                             "create the binary labelmap representation in the Segmentations module first")
        vol = _oriented_to_volume(image)
        mask = segmentation.resample_labels_nearest(vol.with_array((vol.array > 0).astype(np.uint8)), reference)
        out[mask.array > 0] = n + 1
        names[n + 1] = seg.GetSegment(segment_id).GetName()
    return reference.with_array(out), names


def _oriented_image(mask: np.ndarray, grid: Volume):
    """A binary vtkOrientedImageData (world RAS geometry of ``grid``) from a [k, j, i] mask."""
    image = slicer.vtkOrientedImageData()
    k, j, i = mask.shape
    image.SetDimensions(i, j, k)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(mask, np.uint8).ravel()
    matrix = vtk.vtkMatrix4x4()
    for r, row in enumerate(nodes.matrix_from_volume(grid)):
        for c, value in enumerate(row):
            matrix.SetElement(r, c, float(value))
    image.SetImageToWorldMatrix(matrix)
    return image


def add_segmentation_node(scene, labels: Volume, names: dict[int, str], name: str, volumeNode=None):
    """A new segmentation node with one segment per label (binary labelmaps on ``labels``' grid)."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    if volumeNode is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    for n, (label, segment_name) in enumerate(sorted(names.items())):
        colour = SEGMENT_COLOURS[n % len(SEGMENT_COLOURS)]
        node.AddSegmentFromBinaryLabelmapRepresentation(_oriented_image(labels.array == label, labels),
                                                        segment_name, list(colour))
    display = node.GetDisplayNode()
    if display is not None:
        display.SetVisibility2DFill(False)  # outlines only: the image stays readable
        display.SetVisibility2DOutline(True)
    return node


def segment_array(segmentationNode, segmentName: str, grid: Volume) -> np.ndarray:
    """A segment's voxels on ``grid`` (0/1, [k, j, i]); for checks and scripting."""
    seg = segmentationNode.GetSegmentation()
    segment_id = seg.GetSegmentIdBySegmentName(segmentName)
    if not segment_id:
        raise MedSRError(f"segmentation '{segmentationNode.GetName()}' has no segment '{segmentName}'")
    image = slicer.vtkOrientedImageData()
    segmentationNode.GetBinaryLabelmapRepresentation(segment_id, image)
    vol = _oriented_to_volume(image)
    return segmentation.resample_labels_nearest(vol.with_array((vol.array > 0).astype(np.uint8)), grid).array


# --- table and chart --------------------------------------------------------------------------

def _label_names(segmenter, given: Optional[dict[int, str]]) -> dict[int, str]:
    if given:
        return {lab: given.get(lab, f"label {lab}") for lab in segmenter.labels}
    if isinstance(segmenter, segmentation.OtsuSegmenter):
        return {lab: f"class {lab}" for lab in segmenter.labels}
    if isinstance(segmenter, segmentation.ThresholdSegmenter):
        return {1: f"above {segmenter.threshold:g}"}
    return {lab: f"label {lab}" for lab in segmenter.labels}


def table_columns(label_names: dict[int, str]) -> list[tuple[str, str, str]]:
    """(column name, row key, unit) in table order."""
    cols = [("Method", "method", ""), ("PSNR", "psnr", "dB"), ("SSIM", "ssim", ""), ("Dice mean", "dice_mean", ""),
            ("HD95 mean", "hd95_mean", "mm")]
    cols += [(f"Dice {n}", f"dice_{lab}", "") for lab, n in label_names.items()]
    cols += [(f"HD95 {n}", f"hd95_{lab}", "mm") for lab, n in label_names.items()]
    cols += [(f"Volume difference {n}", f"voldiff_pct_{lab}", "%") for lab, n in label_names.items()]
    return cols


def _fill_table(tableNode, rows: list[dict], label_names: dict[int, str]) -> None:
    table = tableNode.GetTable()
    for column, key, unit in table_columns(label_names):
        arr = vtk.vtkStringArray() if key == "method" else vtk.vtkDoubleArray()
        arr.SetName(column)
        for row in rows:
            value = row.get(key, math.nan)
            if key == "method":
                arr.InsertNextValue(str(value))
            else:
                arr.InsertNextValue(float(value))
        table.AddColumn(arr)
        if unit:
            tableNode.SetColumnUnitLabel(column, unit)
    tableNode.Modified()


def _add_chart(scene, tableNode, label_names: dict[int, str], name: str):
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle("Segmentation Dice per method")
    chart.SetXAxisTitle("method")
    chart.SetYAxisTitle("Dice vs reference")
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(0.0, 1.0)
    series_nodes = []
    entries = [(f"Dice {n}", SEGMENT_COLOURS[i % len(SEGMENT_COLOURS)]) for i, n in enumerate(label_names.values())]
    entries.append(("Dice mean", MEAN_COLOUR))
    for column, colour in entries:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name}: {column}")
        series.SetAndObserveTableNodeID(tableNode.GetID())
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
        series.SetLabelColumnName("Method")
        series.SetYColumnName(column)
        series.SetColor(*colour)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        series_nodes.append(series)
    return chart, series_nodes


# --- the comparison ---------------------------------------------------------------------------

def compare_nodes(srNode, baselineNode, referenceNode=None, referenceSegmentationNode=None, method: str = "otsu3",
                  scene=None, mask: Optional[str] = None, mode: str = "inplane", axis: str = "auto") -> dict:
    """Segment and score the baseline and the SR result against the reference (see module doc).

    Returns {"segmentations": {"baseline": node, "sr": node[, "reference": node]}, "table": node,
    "chart": node, "series": [nodes], "rows": [dict per method], "labels": {label: name},
    "plan": layout plan or None}. ``mask="foreground"`` restricts PSNR/SSIM to the reference
    foreground (above its 2-class Otsu threshold). The input nodes are not modified.
    """
    if srNode is None or baselineNode is None:
        raise MedSRError("choose both a super-resolved volume and a baseline volume to compare")
    scene = scene or nodes.scene_of(srNode)
    if mask not in (None, "", "foreground"):
        raise MedSRError(f"mask must be 'foreground' or none, got '{mask}'")
    sr = nodes.volume_from_node(srNode)
    base = nodes.volume_from_node(baselineNode)
    ref = nodes.volume_from_node(referenceNode) if referenceNode is not None else None
    truth = ref if ref is not None else base
    given_names = None
    if referenceSegmentationNode is not None:
        ref_labels, given_names = labels_from_segmentation(referenceSegmentationNode, truth)
        segmenter = segmentation.label_map_segmenter(
            ref_labels, truth, f"segmentation '{referenceSegmentationNode.GetName()}'",
            where=f"segmentation '{referenceSegmentationNode.GetName()}'")
    else:
        segmenter = segmentation.fit(method, truth)
    label_names = _label_names(segmenter, given_names)
    fg = None
    if mask == "foreground" and ref is not None:
        fg = ref.array > segmentation.multi_otsu_thresholds(ref.array, 2)[0]

    scored = {}
    rows = []
    candidates = [("baseline", baselineNode, base), ("sr", srNode, sr)] if ref is not None else [("sr", srNode, sr)]
    for role, node, vol in candidates:
        s = score_against_reference(vol, truth, segmenter, foreground=fg, image_metrics=ref is not None, name=node.GetName())
        scored[role] = s
        rows.append({"method": node.GetName(), "role": role, **s.metrics})
    if ref is None:  # the baseline is the reference: its own segmentation, nothing to score
        scored["baseline"] = None

    added = []
    try:
        segs = {}
        baseline_labels = scored["baseline"].labels if scored["baseline"] is not None else segmenter.reference
        segs["baseline"] = add_segmentation_node(scene, baseline_labels, label_names,
                                                 f"{baselineNode.GetName()} segmentation", baselineNode)
        added.append(segs["baseline"])
        segs["sr"] = add_segmentation_node(scene, scored["sr"].labels, label_names,
                                           f"{srNode.GetName()} segmentation", srNode)
        added.append(segs["sr"])
        if ref is not None and referenceSegmentationNode is None:
            segs["reference"] = add_segmentation_node(scene, segmenter.reference, label_names,
                                                      f"{referenceNode.GetName()} segmentation", referenceNode)
            added.append(segs["reference"])
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"MedSR comparison ({segmenter.method})")
        added.append(table)
        _fill_table(table, rows, label_names)
        chart, series = _add_chart(scene, table, label_names, f"MedSR Dice ({segmenter.method})")
        added.extend([chart, *series])
        plan = _plan(baselineNode, srNode, referenceNode, mode, axis, table, chart)
        if plan is not None:
            _show_in_views(scene, plan, segs)
    except Exception:
        for node in reversed(added):
            if node.GetScene() is scene:
                scene.RemoveNode(node)
        raise
    return {"segmentations": segs, "table": table, "chart": chart, "series": series, "rows": rows,
            "labels": label_names, "plan": plan, "segmenter": segmenter.description,
            "against": scored_against(baselineNode, referenceNode, referenceSegmentationNode)}


def scored_against(baselineNode, referenceNode=None, referenceSegmentationNode=None) -> str:
    """One line saying what the Dice values were measured against: a reference segmentation, the
    reference volume's segmentation, or, without a reference, the baseline's own segmentation (then
    Dice is agreement with the baseline, not accuracy, and PSNR/SSIM are not measured)."""
    if referenceSegmentationNode is not None:
        return f"Dice against the reference segmentation '{referenceSegmentationNode.GetName()}'."
    if referenceNode is not None:
        return f"Dice, PSNR and SSIM against the reference '{referenceNode.GetName()}'."
    return (f"Without a reference: Dice against the segmentation of the baseline '{baselineNode.GetName()}' "
            "(agreement with it, not accuracy); no PSNR or SSIM.")


def _plan(baselineNode, srNode, referenceNode, mode, axis, table, chart):
    try:
        from . import layout
    except ImportError:  # pragma: no cover - layout.py ships with the module
        return None
    return layout.plan_side_by_side(baselineNode, srNode, referenceNode, mode=mode, axis=axis,
                                    tableNode=table, chartNode=chart)


def _show_in_views(scene, plan, segs: dict) -> None:
    """Each new segmentation only in the slice view of the image it was made from."""
    by_role = {"input": "baseline", "super-resolved": "sr", "reference": "reference"}
    for assignment in plan.views:
        node = segs.get(by_role.get(assignment.label, ""))
        if node is None or node.GetDisplayNode() is None:
            continue  # a given reference segmentation keeps its own display settings
        slice_node = scene.GetSingletonNode(assignment.view, "vtkMRMLSliceNode")
        if slice_node is not None:
            node.GetDisplayNode().SetViewNodeIDs([slice_node.GetID()])
