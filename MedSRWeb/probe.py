"""The intensity under the mouse: what each slice view shows at the cursor, as Slicer's Data Probe says.

Slicer's slice view interactor style puts the mouse position into the scene's crosshair node on every
move (``vtkMRMLSliceViewInteractorStyle``: ``SetCursorPositionXYZ``; invalid when the mouse leaves a
view); the probe observes that node and reads, for each view, the value of its background volume at
that RAS point (the nearest voxel), so input and result are read at one place in the linked views.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import slicer
import vtk

VIEWS = ("Red", "Yellow", "Green")


def value_at_ras(volume_node, ras) -> Optional[float]:
    """The nearest voxel's value of ``volume_node`` at the RAS point, or None outside the volume."""
    image = volume_node.GetImageData() if volume_node is not None else None
    if image is None:
        return None
    ras_to_ijk = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(ras_to_ijk)
    ijk = ras_to_ijk.MultiplyPoint([float(ras[0]), float(ras[1]), float(ras[2]), 1.0])[:3]
    index = [int(np.floor(c + 0.5)) for c in ijk]
    dims = image.GetDimensions()
    if any(i < 0 or i >= n for i, n in zip(index, dims)):
        return None
    return float(image.GetScalarComponentAsDouble(index[0], index[1], index[2], 0))


def describe(ras, value: Optional[float]) -> str:
    """'R 12.3 A -4.0 S 8.1 mm · 123.4' (the value left out outside the volume)."""
    where = " ".join(f"{name} {c:.1f}" for name, c in zip("RAS", ras)) + " mm"
    return where if value is None else f"{where} \u00b7 {value:.6g}"


class CursorProbe:
    """Calls ``on_change({view name: text})`` whenever the mouse moves over a slice view, with the
    value of each shown view's volume at the cursor; ``{}`` when the mouse is in no view."""

    def __init__(self, scene, on_change: Callable[[dict], None]):
        self.scene, self.on_change = scene, on_change
        self._node, self._tag = None, None

    def attach(self) -> bool:
        """Observe the scene's crosshair node (made with the views); False while there is none yet."""
        if self._node is not None:
            return True
        node = self.scene.GetFirstNodeByClass("vtkMRMLCrosshairNode")
        if node is None:
            return False
        self._node = node
        self._tag = node.AddObserver(slicer.vtkMRMLCrosshairNode.CursorPositionModifiedEvent, self._moved)
        return True

    def _moved(self, node, _event) -> None:
        ras = [0.0, 0.0, 0.0]
        self.on_change(self.read(ras) if node.GetCursorPositionRAS(ras) else {})

    def read(self, ras) -> dict:
        """{view name: text} at the RAS point, for every view with a background volume."""
        out = {}
        for view in VIEWS:
            composite = self.scene.GetSingletonNode(view, "vtkMRMLSliceCompositeNode")
            volume_id = composite.GetBackgroundVolumeID() if composite is not None else None
            if volume_id:
                out[view] = describe(ras, value_at_ras(self.scene.GetNodeByID(volume_id), ras))
        return out
