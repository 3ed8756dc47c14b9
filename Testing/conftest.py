"""Shared pytest fixtures. ``mrml_scene``: a fresh MRML scene from the slicer-core wheel, set up as
the Slicer application sets up its own (slice orientation presets, a layout node, Red/Yellow/Green
slice views with their composite nodes) and assigned to ``slicer.mrmlScene``."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_DIR = os.path.join(ROOT, "MedSRModule")
for path in (ROOT, MODULE_DIR):  # the engine and MedSRLib, as Slicer's module path provides them
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def mrml_scene():
    slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")
    scene = slicer.vtkMRMLScene()
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = scene
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)  # creates the layout node and the Red/Yellow/Green slice nodes
    slice_logics = []
    for name in ("Red", "Yellow", "Green"):
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLScene(scene)
        logic.SetSliceNode(scene.GetSingletonNode(name, "vtkMRMLSliceNode"))  # adds its composite node
        slice_logics.append(logic)
    yield scene
    for logic in slice_logics:
        logic.SetMRMLScene(None)
    layout_logic.SetMRMLScene(None)
    scene.Clear(1)
    slicer.mrmlScene = previous
