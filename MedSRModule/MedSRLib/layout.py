"""What to show where after a run: input | SR (| reference) in linked slice views at one position.

``plan_side_by_side`` is a pure decision (which volume in which view, which plane, where);
``register_layout`` and ``apply_plan`` carry it out on MRML nodes (layout node, slice and slice
composite nodes). Switching the application's layout to the plan is one call in MedSR.py.

The plane: for in-plane SR the views show the slices the model enhanced (perpendicular to the
slicing axis); for through-plane SR they show a plane that contains the axis, where the new slices
appear. Views are rotated onto the input's voxel grid, so oblique acquisitions show native slices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import nodes

TWO_VIEW_LAYOUT_ID = 7301
THREE_VIEW_LAYOUT_ID = 7302
RESULTS_ROW_OFFSET = 2  # 7303 / 7304: the same views above a row with the comparison table and chart
TABLE_VIEW = "TableView1"
PLOT_VIEW = "PlotView1"
VIEW_NAMES = ("Red", "Yellow", "Green")
VIEW_COLORS = {"Red": "#F34A33", "Yellow": "#EDD54C", "Green": "#6EB04B"}
#: Orientation whose plane is perpendicular to world axis R (0), A (1), S (2).
PLANE_NORMAL_TO = {0: "Sagittal", 1: "Coronal", 2: "Axial"}


@dataclass(frozen=True)
class ViewAssignment:
    view: str        # slice view name (layout name): Red, Yellow, Green
    volume_id: str   # MRML ID of the background volume
    label: str       # what the view shows: input, super-resolved, reference
    title: str = ""  # what the view's bar says: "Input", "Result: pfmdn x2", "Reference"


@dataclass(frozen=True)
class LayoutPlan:
    layout_id: int
    description: str                 # layout XML for vtkMRMLLayoutNode.AddLayoutDescription
    views: tuple[ViewAssignment, ...]
    orientation: str                 # Axial, Coronal or Sagittal
    center_ras: tuple[float, float, float]
    align_to_volume_id: str          # slices are rotated onto this volume's voxel grid
    table_id: Optional[str] = None   # comparison table shown below the slice views
    chart_id: Optional[str] = None   # comparison chart shown beside the table


def _resolved_axis(matrix: np.ndarray, axis: str) -> int:
    """IJK index of the slicing axis; 'auto' = largest spacing, k when isotropic (as the engine)."""
    if axis in ("i", "j", "k"):
        return "ijk".index(axis)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.allclose(spacing, spacing.max(), rtol=1e-3):
        return 2
    return int(np.argmax(spacing))


def choose_orientation(ijk_to_ras: np.ndarray, mode: str = "inplane", axis: str = "auto") -> str:
    """The slice orientation that shows what ``mode`` changed along ``axis`` (see module docstring)."""
    a = _resolved_axis(ijk_to_ras, axis)
    column = ijk_to_ras[:3, a]
    world = int(np.argmax(np.abs(column)))  # R, A or S: where the slicing axis points
    if mode == "throughplane":
        for candidate in ("Coronal", "Axial", "Sagittal"):  # planes containing that world axis
            if PLANE_NORMAL_TO[world] != candidate:
                return candidate
    return PLANE_NORMAL_TO[world]


def layout_description(n_views: int, orientation: str, results_row: bool = False) -> str:
    """Layout XML: ``n_views`` slice views in one row (above a table | chart row if asked)."""
    items = []
    for name in VIEW_NAMES[:n_views]:
        items.append(
            f'<item><view class="vtkMRMLSliceNode" singletontag="{name}">'
            f'<property name="orientation" action="default">{orientation}</property>'
            f'<property name="viewlabel" action="default">{name[0]}</property>'
            f'<property name="viewcolor" action="default">{VIEW_COLORS[name]}</property>'
            f"</view></item>"
        )
    row = '<layout type="horizontal">' + "".join(items) + "</layout>"
    if not results_row:
        return row
    results = (f'<layout type="horizontal">'
               f'<item><view class="vtkMRMLTableViewNode" singletontag="{TABLE_VIEW}">'
               f'<property name="viewlabel" action="default">T</property></view></item>'
               f'<item><view class="vtkMRMLPlotViewNode" singletontag="{PLOT_VIEW}">'
               f'<property name="viewlabel" action="default">P</property></view></item></layout>')
    return (f'<layout type="vertical" split="true"><item splitSize="700">{row}</item>'
            f'<item splitSize="300">{results}</item></layout>')


def view_label(node, role: str) -> str:
    """What a view says it shows: "Input", "Result: pfmdn x2" (from the result's MedSR.* record) or
    "Reference", so that nobody mistakes one for another."""
    if role == "super-resolved":
        from MedSRExtension.core.provenance import short_scale
        model, scale = node.GetAttribute("MedSR.model"), node.GetAttribute("MedSR.scale")
        return "Result" + (f": {model}" if model else "") + (f" x{short_scale({'scale': scale})}" if scale else "")
    return role.capitalize()


def plan_side_by_side(inputNode, srNode, referenceNode=None, mode: str = "inplane", axis: str = "auto",
                      tableNode=None, chartNode=None) -> LayoutPlan:
    """Two views (input | SR), or three (input | SR | reference) when a reference is given; with a
    comparison table or chart, a row below shows them."""
    shown = [(inputNode, "input"), (srNode, "super-resolved")]
    if referenceNode is not None:
        shown.append((referenceNode, "reference"))
    matrix = nodes.world_ijk_to_ras(inputNode)
    orientation = choose_orientation(matrix, mode, axis)
    center = nodes.world_edge_corners(inputNode).mean(axis=0)
    views = tuple(ViewAssignment(VIEW_NAMES[i], node.GetID(), label, view_label(node, label))
                  for i, (node, label) in enumerate(shown))
    layout_id = THREE_VIEW_LAYOUT_ID if referenceNode is not None else TWO_VIEW_LAYOUT_ID
    results_row = tableNode is not None or chartNode is not None
    if results_row:
        layout_id += RESULTS_ROW_OFFSET
    return LayoutPlan(layout_id, layout_description(len(views), orientation, results_row), views, orientation,
                      tuple(float(c) for c in center), inputNode.GetID(),
                      tableNode.GetID() if tableNode is not None else None,
                      chartNode.GetID() if chartNode is not None else None)


def register_layout(plan: LayoutPlan, layoutNode) -> None:
    """Make the plan's layout known to the layout node (replacing an older description)."""
    if layoutNode.IsLayoutDescription(plan.layout_id):
        layoutNode.SetLayoutDescription(plan.layout_id, plan.description)
    else:
        layoutNode.AddLayoutDescription(plan.layout_id, plan.description)


def _by_layout_name(scene, class_name: str, name: str):
    for i in range(scene.GetNumberOfNodesByClass(class_name)):
        node = scene.GetNthNodeByClass(i, class_name)
        if node.GetLayoutName() == name:
            return node
    return None


def apply_plan(plan: LayoutPlan, scene) -> list:
    """Put each volume in its view, link the views, give them one plane and one position, and show
    the comparison table and chart in their views.

    Returns the slice composite nodes that were set; views missing from the scene are skipped."""
    align = scene.GetNodeByID(plan.align_to_volume_id)
    updated = []
    if plan.table_id is not None:
        view = scene.GetSingletonNode(TABLE_VIEW, "vtkMRMLTableViewNode")
        if view is not None:
            view.SetTableNodeID(plan.table_id)
    if plan.chart_id is not None:
        view = scene.GetSingletonNode(PLOT_VIEW, "vtkMRMLPlotViewNode")
        if view is not None:
            view.SetPlotChartNodeID(plan.chart_id)
    for assignment in plan.views:
        composite = _by_layout_name(scene, "vtkMRMLSliceCompositeNode", assignment.view)
        slice_node = _by_layout_name(scene, "vtkMRMLSliceNode", assignment.view)
        if composite is None or slice_node is None:
            continue
        composite.SetBackgroundVolumeID(assignment.volume_id)
        composite.SetForegroundVolumeID(None)
        composite.SetLinkedControl(True)
        slice_node.SetLayoutLabel(assignment.title or assignment.label)  # the view's bar says which is which
        slice_node.SetOrientation(plan.orientation)
        if align is not None:
            slice_node.RotateToVolumePlane(align)
        updated.append(composite)
    center_views(plan, scene)
    share_window_level(scene, [a.volume_id for a in plan.views])
    return updated


def share_window_level(scene, volume_ids: list) -> None:
    """Give every shown volume the first one's (the input's) window/level, fixed: input and result
    compared at one contrast, as a radiologist compares two series."""
    volumes = [scene.GetNodeByID(i) for i in volume_ids]
    displays = [v.GetDisplayNode() if v is not None else None for v in volumes]
    first = displays[0] if displays else None
    if first is None or first.GetWindow() <= 0:
        return
    for display in displays[1:]:
        if display is not None:
            display.AutoWindowLevelOff()
            display.SetWindowLevel(first.GetWindow(), first.GetLevel())


def center_views(plan: LayoutPlan, scene) -> None:
    """Centre every view of the plan on the input's centre (again after a field-of-view reset)."""
    for assignment in plan.views:
        slice_node = _by_layout_name(scene, "vtkMRMLSliceNode", assignment.view)
        if slice_node is not None:
            slice_node.JumpSliceByCentering(*plan.center_ras)


def plan_for_views(plan: LayoutPlan) -> dict:
    """{view name: volume ID}: a compact summary (used in messages and tests)."""
    return {a.view: a.volume_id for a in plan.views}


def current_layout_node(scene) -> Optional[object]:
    """The scene's layout node, if it has one (the application always does)."""
    return scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
