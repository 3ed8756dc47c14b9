"""The confidence map of a through-plane result as a second volume node, shown as a colour overlay.

The engine returns (``meta["confidence"]``) how far its two orientations of through-plane passes
disagree at each voxel, in the input's units, on the result's grid: where the acquired slices leave
the reconstruction open, the two differ most. Here it becomes the node "<result> confidence" (the
result's geometry, a warm colour table) and the foreground of every slice view that shows the result,
half transparent, so a user sees where the result is least supported by the data.
"""
from __future__ import annotations

from MedSRExtension.core.volume import Volume

from . import nodes

COLOURS_NAME = "MedSR confidence colours"
OVERLAY_OPACITY = 0.5
#: The attribute that ties a confidence node to its result node (the result's node ID).
OF_ATTRIBUTE = "MedSR.confidenceOf"


def _colours(scene):
    """A warm colour table (black to yellow) for the map, one per scene."""
    found = scene.GetFirstNodeByName(COLOURS_NAME)
    if found is not None:
        return found
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLOURS_NAME)
    table.SetTypeToWarm1()
    table.SetHideFromEditors(True)
    return table


def write_confidence_node(scene, confidence: Volume, result_node):
    """The map as a new scalar volume node beside ``result_node`` (same grid), with the warm colours."""
    node = nodes.write_output_node(scene, confidence, f"{result_node.GetName()} confidence", like=result_node)
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(_colours(scene).GetID())
    display.AutoWindowLevelOn()
    node.SetAttribute(OF_ATTRIBUTE, result_node.GetID())
    return node


def _composites(scene) -> list:
    found = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [found.GetItemAsObject(i) for i in range(found.GetNumberOfItems())]


def overlay(scene, result_node, confidence_node, opacity: float = OVERLAY_OPACITY) -> list:
    """Show ``confidence_node`` over ``result_node`` in every slice view whose background is the result;
    returns the composite nodes changed."""
    changed = [c for c in _composites(scene) if c.GetBackgroundVolumeID() == result_node.GetID()]
    for composite in changed:
        composite.SetForegroundVolumeID(confidence_node.GetID())
        composite.SetForegroundOpacity(opacity)
    return changed


def remove_overlay(scene, confidence_node) -> None:
    """Take ``confidence_node`` out of every slice view that shows it."""
    for composite in _composites(scene):
        if composite.GetForegroundVolumeID() == confidence_node.GetID():
            composite.SetForegroundVolumeID(None)

