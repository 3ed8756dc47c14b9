"""Volume nodes <-> engine Volumes, with exact geometry.

Slicer keeps a volume's geometry as an IJKToRAS matrix (plus an optional parent transform); the
engine keeps spacing, origin and a direction matrix in LPS (DESIGN.md). RAS = diag(-1, -1, 1)·LPS.
A node under a linear transform is read in world coordinates, so the output carries the transform
hardened into its own geometry; non-linear transforms are refused rather than silently ignored.
Output nodes are written only by ``write_output_node``, called after a run has succeeded.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import slicer
import vtk

from MedSRExtension.core import validation
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

from .node_thickness import thickness_of

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])
ORTHOGONALITY_TOLERANCE = 1e-5


def _matrix_to_numpy(m: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(a: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def check_input_node(node) -> None:
    """Raise MedSRError unless ``node`` is a single-component scalar volume with voxels and a
    geometry the engine can represent (no non-linear transform, no shear)."""
    if node is None:
        raise MedSRError("no input volume selected; choose a scalar volume to super-resolve")
    name = node.GetName()
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise MedSRError(f"'{name}' is a label map: super-resolution needs an intensity image; "
                         "choose a scalar volume (segmentations are compared in the Compare section)")
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLTensorVolumeNode"):
        raise MedSRError(f"'{name}' is a {node.GetClassName()}, not a scalar volume; "
                         "convert it to a scalar volume first (e.g. Vector to Scalar Volume)")
    image = node.GetImageData()
    if image is None or 0 in image.GetDimensions():
        raise MedSRError(f"'{name}' has no voxels; load image data into it first")
    if image.GetNumberOfScalarComponents() != 1:
        raise MedSRError(f"'{name}' has {image.GetNumberOfScalarComponents()} components per voxel; "
                         "extract one component (Vector to Scalar Volume) and super-resolve that")
    world_ijk_to_ras(node)  # refuses non-linear transforms and shear


def world_ijk_to_ras(node) -> np.ndarray:
    """The 4×4 matrix from voxel indices (i, j, k) to world RAS: IJKToRAS with any linear parent
    transform applied. Non-linear transforms and sheared axes are refused with a clear message."""
    node_spacing = node.GetSpacing()
    if not all(np.isfinite(node_spacing)) or min(node_spacing) <= 0:
        raise MedSRError(f"'{node.GetName()}' has an invalid spacing {tuple(node_spacing)} (zero, negative or "
                         "not finite); fix it (Volumes module: Volume Information) and retry")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = _matrix_to_numpy(ijk_to_ras)
    transform = node.GetParentTransformNode()
    if transform is not None:
        if not transform.IsTransformToWorldLinear():
            raise MedSRError(f"'{node.GetName()}' is under the non-linear transform '{transform.GetName()}'; "
                             "harden the transform (Data module: right-click > Harden transform) and retry")
        to_world = vtk.vtkMatrix4x4()
        transform.GetMatrixTransformToWorld(to_world)
        matrix = _matrix_to_numpy(to_world) @ matrix
    columns = matrix[:3, :3]
    if not np.all(np.isfinite(matrix)):
        raise MedSRError(f"'{node.GetName()}' has NaN/Inf in its IJKToRAS matrix (or its transform); "
                         "fix its geometry (Volumes module: Volume Information) and retry")
    if abs(np.linalg.det(columns)) < 1e-12:
        raise MedSRError(f"'{node.GetName()}' has a singular IJKToRAS matrix (zero spacing or coinciding axes); "
                         "fix its spacing and directions (Volumes module: Volume Information) and retry")
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise MedSRError(f"'{node.GetName()}' has a degenerate geometry (zero spacing); fix its spacing first")
    unit = columns / spacing
    if np.max(np.abs(unit.T @ unit - np.eye(3))) > ORTHOGONALITY_TOLERANCE:
        raise MedSRError(f"'{node.GetName()}' has sheared axes (from its transform); resample it onto a "
                         "regular grid first (Resample Scalar/Vector/DWI Volume) and retry")
    return matrix


def geometry_from_matrix(ijk_to_ras: np.ndarray) -> tuple[tuple, tuple, np.ndarray]:
    """(spacing, origin_lps, direction_lps) of an IJKToRAS matrix."""
    columns = ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    direction = RAS_FROM_LPS @ (columns / spacing)
    origin = RAS_FROM_LPS @ ijk_to_ras[:3, 3]
    return tuple(spacing), tuple(origin), direction


def matrix_from_volume(volume: Volume) -> np.ndarray:
    """The IJKToRAS matrix of an engine Volume."""
    m = np.eye(4)
    m[:3, :3] = (RAS_FROM_LPS @ volume.direction) * np.asarray(volume.spacing)[None, :]
    m[:3, 3] = RAS_FROM_LPS @ np.asarray(volume.origin)
    return m


def volume_from_node(node) -> Volume:
    """A copy of the node's voxels ([k, j, i]) with its world geometry in LPS and, in ``meta``, the slice
    thickness its source file gives (``node_thickness``); the node is untouched."""
    check_input_node(node)
    spacing, origin, direction = geometry_from_matrix(world_ijk_to_ras(node))
    if node.GetImageData().GetPointData().GetScalars() is None:
        raise MedSRError(f"'{node.GetName()}' has no voxel values; load image data into it first")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    volume = Volume(array, spacing, origin, direction)
    volume.meta.update(thickness_of(node))
    validation.check_volume(volume, f"'{node.GetName()}'")
    return volume


def world_edge_corners(node) -> np.ndarray:
    """The 8 world-RAS corners of the node's voxel-edge box (indices -0.5 … n-0.5), shape (8, 3)."""
    dims = np.asarray(node.GetImageData().GetDimensions(), dtype=float)
    matrix = world_ijk_to_ras(node)
    unit = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
    ijk = unit * dims - 0.5
    return ijk @ matrix[:3, :3].T + matrix[:3, 3]


def output_name(input_name: str, scale, model: str) -> str:
    """``<input>_SR<scale>x_<model>``; the scale written without trailing zeros (2, 2.5)."""
    return f"{input_name}_SR{float(scale):g}x_{model}"


def check_output_node(output_node, input_node) -> None:
    """An existing output node must be a plain scalar volume other than the input."""
    if output_node is None:
        return
    if input_node is not None and output_node.GetID() == input_node.GetID():
        raise MedSRError("the output volume is the input volume; choose another output or 'Create new volume' "
                         "(the input is never overwritten)")
    if output_node.IsA("vtkMRMLLabelMapVolumeNode") or not output_node.IsA("vtkMRMLScalarVolumeNode") \
            or output_node.IsA("vtkMRMLTensorVolumeNode"):
        raise MedSRError(f"the output '{output_node.GetName()}' is a {output_node.GetClassName()}; "
                         "choose a scalar volume or 'Create new volume'")


def _copy_display(source, target) -> None:
    """Give ``target`` a display node with ``source``'s colour table and window/level."""
    if target.GetDisplayNode() is None:
        target.CreateDefaultDisplayNodes()
    out = target.GetDisplayNode()
    src = source.GetDisplayNode() if source is not None else None
    if out is None or src is None:
        return
    if src.GetColorNodeID():
        out.SetAndObserveColorNodeID(src.GetColorNodeID())
    out.SetInterpolate(src.GetInterpolate())
    if src.GetAutoWindowLevel():
        out.AutoWindowLevelOn()
    else:
        out.AutoWindowLevelOff()
        out.SetWindowLevel(src.GetWindow(), src.GetLevel())


def _place_in_hierarchy(scene, node, sibling) -> None:
    """Put ``node`` in the subject-hierarchy folder of ``sibling`` (the scene root if it has none)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:  # pragma: no cover - every MRML scene can make one
        return
    parent = sh.GetSceneItemID()
    if sibling is not None and sibling.GetScene() is scene:
        sibling_item = sh.GetItemByDataNode(sibling)
        if sibling_item:
            parent = sh.GetItemParent(sibling_item) or parent
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent)
    else:
        sh.CreateItem(parent, node)


#: Node attributes carrying a result's provenance: ``MedSR.<key>`` (the keys core.provenance writes
#: into files), so a super-resolved node is told apart from an acquired one.
ATTRIBUTE_PREFIX = "MedSR."


def set_provenance(node, provenance: Optional[dict]) -> None:
    """Set the record as node attributes ``MedSR.<key>``; older MedSR.* attributes are removed."""
    from MedSRExtension.core.provenance import header_fields
    for name in list(node.GetAttributeNames() or ()):
        if name.startswith(ATTRIBUTE_PREFIX):
            node.RemoveAttribute(name)
    for key, value in header_fields(provenance or {}).items():
        node.SetAttribute(key, value)


def provenance_of(node) -> dict:
    """The ``MedSR.*`` attributes of a node as a record (empty for an acquired image)."""
    return {name[len(ATTRIBUTE_PREFIX):]: node.GetAttribute(name) for name in (node.GetAttributeNames() or ())
            if name.startswith(ATTRIBUTE_PREFIX)}


def write_output_node(scene, volume: Volume, name: str, like=None, output_node=None,
                      provenance: Optional[dict] = None):
    """Put ``volume`` into ``output_node`` (or a new scalar volume node named ``name``) in world
    coordinates, with ``like``'s display settings, in ``like``'s subject-hierarchy folder, and
    ``provenance`` (what made it) as its ``MedSR.*`` attributes.

    Called only once the result exists, so a cancelled or failed run adds nothing to the scene."""
    check_output_node(output_node, like)
    array = np.ascontiguousarray(volume.array)
    if output_node is None:
        output_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    elif output_node.GetParentTransformNode() is not None:
        output_node.SetAndObserveTransformNodeID(None)  # the geometry written below is already in world space
    output_node.SetIJKToRASMatrix(_numpy_to_matrix(matrix_from_volume(volume)))
    slicer.util.updateVolumeFromArray(output_node, array)
    _copy_display(like, output_node)
    _place_in_hierarchy(scene, output_node, like)
    set_provenance(output_node, provenance)
    return output_node


def scene_of(node) -> Optional[object]:
    """The node's scene, or the application scene when the node has none."""
    scene = node.GetScene() if node is not None else None
    return scene if scene is not None else getattr(slicer, "mrmlScene", None)
