"""Self-test checks run both by Slicer's ``MedSRTest`` and by pytest on a slicer-core scene.

Each check builds its own nodes from a real image (a region of the MNI152 template by default, or
the ``sample`` Volume the caller passes, e.g. a crop of Slicer's MRHead), runs the real engine and
raises AssertionError with a message saying what went wrong. Every check leaves its nodes in the
scene it was given; callers pass a fresh or cleared scene.
"""
from __future__ import annotations

import functools
import time
from typing import Optional

import numpy as np
import slicer
import vtk

from MedSRExtension.core.errors import Cancelled, MedSRError
from MedSRExtension.core.volume import Volume

from . import layout, nodes, process

#: Region of the MNI template used by the checks: (k, j, i) start and size, well inside the brain.
MNI_REGION_START = (84, 96, 80)
MNI_REGION_SHAPE = (8, 24, 20)
TOLERANCE_MM = 1e-6


@functools.lru_cache(maxsize=1)
def _mni_region() -> np.ndarray:
    from MedSRExtension.data.corpus import mni_path
    from MedSRExtension.core.volume_io import load_volume
    (k, j, i), (nk, nj, ni) = MNI_REGION_START, MNI_REGION_SHAPE
    return load_volume(mni_path()).array[k:k + nk, j:j + nj, i:i + ni].astype(np.float32)


def sample_volume() -> Volume:
    """A small real brain region (float32) from the MNI152 template that ships with nilearn."""
    return Volume(_mni_region().copy(), (1.0, 1.0, 1.0))


def rotation(degrees=(20.0, -12.0, 7.0)) -> np.ndarray:
    """A proper rotation from three Euler angles (x, y, z), as oblique acquisitions have."""
    ax, ay, az = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def add_oblique_node(scene, sample: Optional[Volume] = None, name: str = "MedSRTestInput"):
    """A scalar volume node holding ``sample``'s voxels on an oblique, anisotropic grid
    (spacing 0.9 × 1.1 × 3.3 mm), with a display node and window/level set by hand."""
    sample = sample if sample is not None else sample_volume()
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = rotation() * np.array([0.9, 1.1, 3.3])[None, :]
    ijk_to_ras[:3, 3] = (-12.5, 31.25, 7.75)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(nodes._numpy_to_matrix(ijk_to_ras))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(sample.array, dtype=np.float32))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevel(float(np.ptp(sample.array)) * 0.8, float(np.mean(sample.array)))
    return node


def _snapshot(node) -> tuple[np.ndarray, np.ndarray]:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array(slicer.util.arrayFromVolume(node), copy=True), nodes._matrix_to_numpy(m)


def _assert_untouched(node, before: tuple[np.ndarray, np.ndarray]) -> None:
    after = _snapshot(node)
    assert np.array_equal(before[0], after[0]), f"the input '{node.GetName()}' voxels were modified"
    assert np.array_equal(before[1], after[1]), f"the input '{node.GetName()}' IJKToRAS matrix was modified"


def _scene_size(scene) -> tuple[int, int]:
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    ids = vtk.vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), ids, True)
    return scene.GetNumberOfNodes(), ids.GetNumberOfIds()


def _assert_same_world_box(input_node, output_node) -> None:
    a, b = nodes.world_edge_corners(input_node), nodes.world_edge_corners(output_node)
    err = float(np.max(np.abs(a - b)))
    assert err <= TOLERANCE_MM, f"output voxel-edge box differs from the input's by {err:.3g} mm (allowed 1e-6)"


def _seed_if_random(engine_options: dict) -> None:
    """Untrained networks (weights="random") are initialised from torch's generator: seed it so two
    runs build the same network."""
    if engine_options.get("weights") == "random":
        import torch
        torch.manual_seed(0)


def check_oblique_roundtrip(scene, model: str = "bicubic", scale: float = 2.0, mode: str = "inplane",
                            sample: Optional[Volume] = None, **engine_options):
    """An oblique, anisotropic node through ``superresolve_node``: same world box, spacing divided by
    the factors, voxels equal to the engine's on the same Volume, right name and folder, input intact."""
    node = add_oblique_node(scene, sample)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = sh.CreateFolderItem(sh.GetSceneItemID(), "MedSR study")
    sh.CreateItem(folder, node)
    before = _snapshot(node)
    _seed_if_random(engine_options)
    out = process.superresolve_node(node, model=model, scale=scale, mode=mode, device="cpu", **engine_options)
    _assert_untouched(node, before)
    assert out is not None and out.GetID() != node.GetID(), "no new output node was returned"
    assert out.GetName() == f"MedSRTestInput_SR{scale:g}x_{model}", f"unexpected output name '{out.GetName()}'"
    _assert_same_world_box(node, out)
    in_dims, out_dims = np.array(node.GetImageData().GetDimensions()), np.array(out.GetImageData().GetDimensions())
    factors = out_dims / in_dims
    assert np.allclose(np.array(out.GetSpacing()), np.array(node.GetSpacing()) / factors, rtol=0, atol=1e-9), \
        f"output spacing {out.GetSpacing()} is not the input's {node.GetSpacing()} divided by {tuple(factors)}"
    _seed_if_random(engine_options)
    expected = process.SuperResolveJob(node, model=model, scale=scale, mode=mode, device="cpu",
                                       **engine_options).compute()
    got = slicer.util.arrayFromVolume(out)
    assert got.shape == expected.array.shape, f"output shape {got.shape} != engine's {expected.array.shape}"
    assert np.array_equal(got, expected.array), "output voxels differ from the engine's result on the same volume"
    assert sh.GetItemParent(sh.GetItemByDataNode(out)) == folder, "output is not in the input's hierarchy folder"
    src, dst = node.GetDisplayNode(), out.GetDisplayNode()
    assert dst is not None and dst.GetColorNodeID() == src.GetColorNodeID(), "output colour table differs from input's"
    assert (dst.GetWindow(), dst.GetLevel()) == (src.GetWindow(), src.GetLevel()), "window/level not copied"
    return out


def slow_sample(sample: Optional[Volume] = None, slices: int = 48, size: int = 128) -> Volume:
    """``sample`` tiled to ``slices`` slices of ``size``² pixels: long enough for an untrained EDSR
    to run for seconds on a CPU, so a check can act on a run in progress."""
    base = (sample if sample is not None else sample_volume()).array.astype(np.float32)
    reps = [-(-slices // base.shape[0]), -(-size // base.shape[1]), -(-size // base.shape[2])]
    return Volume(np.tile(base, reps)[:slices, :size, :size].copy(), (1.0, 1.0, 1.0))


def wait_for_first_batch(runner, poll=None, timeout_s: float = 120.0) -> None:
    """Wait until a worker run has reported its first batch (or ended), calling ``poll`` meanwhile
    (e.g. a panel model's ``poll``), so a check can act on a run in progress."""
    deadline = time.monotonic() + timeout_s
    while runner.progress[0] < 1 and not runner.done and time.monotonic() < deadline:
        if poll is not None:
            poll()
        time.sleep(0.02)


def check_cancel_leaves_scene_unchanged(scene, sample: Optional[Volume] = None) -> None:
    """Cancel a run in its worker process once it has reported progress: the worker (a process of
    its own) ends within seconds, the run ends with Cancelled, no node or hierarchy item is added,
    its temporary files are gone and the input is intact."""
    import os
    node = add_oblique_node(scene, slow_sample(sample))
    before, size = _snapshot(node), _scene_size(scene)
    job, runner = process.start_superresolve(node, model="edsr", weights="random", preset="light", scale=2.0,
                                             device="cpu", batch=1)
    folder = runner.folder
    assert runner.pid is not None and runner.pid != os.getpid(), "the run is not in a worker process"
    wait_for_first_batch(runner)
    assert not runner.done, f"the run ended before it could be cancelled: {runner.error}"
    runner.cancel()
    cancelled_at = time.monotonic()
    assert runner.wait(30), "the worker did not end after cancel"
    assert time.monotonic() - cancelled_at < 10, "cancel took more than 10 s to end the worker"
    done, total = runner.progress
    assert total > 1 and done < total, f"the run was not stopped mid-way (done {done} of {total} batches)"
    try:
        process.finish_superresolve(job, runner)
    except Cancelled:
        pass
    else:
        raise AssertionError("a cancelled run still produced an output node")
    assert _scene_size(scene) == size, f"cancel changed the scene: {size} -> {_scene_size(scene)} (nodes, items)"
    assert not os.path.exists(folder), f"the cancelled run left its temporary folder {folder}"
    _assert_untouched(node, before)


def check_failure_leaves_scene_unchanged(scene, sample: Optional[Volume] = None) -> None:
    """A run that fails part-way (an error raised after the first batch) or is refused up front
    (an unsupported scale) adds nothing to the scene and leaves the input intact."""
    node = add_oblique_node(scene, sample)
    before, size = _snapshot(node), _scene_size(scene)

    def failing_progress(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("simulated failure in the middle of the run")

    try:
        process.superresolve_node(node, model="bicubic", scale=2.0, device="cpu", batch=1, progress=failing_progress)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failing run did not raise")
    assert _scene_size(scene) == size, "a failed run changed the scene"
    try:
        process.superresolve_node(node, model="bicubic", scale=0.5, device="cpu")
    except MedSRError as exc:
        assert "scale" in str(exc), f"the error for scale 0.5 does not mention the scale: {exc}"
    else:
        raise AssertionError("scale 0.5 was accepted")
    assert _scene_size(scene) == size, "a refused run changed the scene"
    _assert_untouched(node, before)


def check_transformed_input(scene, sample: Optional[Volume] = None):
    """A node under a linear transform: the output holds the transform hardened into its geometry
    (same world box, no parent transform); the input keeps its transform and voxels."""
    node = add_oblique_node(scene, sample)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "MedSRTestTransform")
    m = np.eye(4)
    m[:3, :3] = rotation((0.0, 25.0, -40.0))
    m[:3, 3] = (14.0, -7.5, 22.0)
    transform.SetMatrixTransformToParent(nodes._numpy_to_matrix(m))
    node.SetAndObserveTransformNodeID(transform.GetID())
    before = _snapshot(node)
    out = process.superresolve_node(node, model="bicubic", scale=2.0, device="cpu")
    _assert_untouched(node, before)
    assert node.GetParentTransformNode() is transform, "the input lost its transform"
    assert out.GetParentTransformNode() is None, "the output should carry the transform in its geometry, not a parent"
    _assert_same_world_box(node, out)
    return out


def check_refusals(scene, sample: Optional[Volume] = None) -> None:
    """Non-linear transforms, label maps and multi-component volumes are refused with a clear
    message, and the scene is left unchanged."""
    grid = np.zeros((3, 4, 5), dtype=np.float32)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MedSRTestWarped")
    slicer.util.updateVolumeFromArray(node, grid)
    warp = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "MedSRTestWarp")
    node.SetAndObserveTransformNodeID(warp.GetID())
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "MedSRTestLabels")
    slicer.util.updateVolumeFromArray(labels, grid.astype(np.int16))
    rgb = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "MedSRTestRGB")
    slicer.util.updateVolumeFromArray(rgb, np.zeros((3, 4, 5, 3), dtype=np.uint8))
    size = _scene_size(scene)
    for candidate, words in ((node, "non-linear"), (labels, "label map"), (rgb, "not a scalar volume")):
        try:
            process.superresolve_node(candidate, model="bicubic", scale=2.0, device="cpu")
        except MedSRError as exc:
            assert words in str(exc), f"refusal of {candidate.GetName()} does not say '{words}': {exc}"
        else:
            raise AssertionError(f"{candidate.GetName()} ({candidate.GetClassName()}) was not refused")
    assert _scene_size(scene) == size, "a refused input changed the scene"


def check_layout_plan(scene, sample: Optional[Volume] = None) -> None:
    """Two views (input | SR) without a reference, three with one; applied to the slice views they
    show those volumes, are linked and share one plane and position."""
    node = add_oblique_node(scene, sample)
    out = process.superresolve_node(node, model="nearest", scale=2.0, device="cpu")
    plan = layout.plan_side_by_side(node, out)
    assert layout.plan_for_views(plan) == {"Red": node.GetID(), "Yellow": out.GetID()}, "two-view plan is wrong"
    assert plan.description.count("vtkMRMLSliceNode") == 2, "two-view layout does not have two slice views"
    plan3 = layout.plan_side_by_side(node, out, referenceNode=node, mode="throughplane")
    assert [a.view for a in plan3.views] == ["Red", "Yellow", "Green"], "three-view plan is wrong"
    assert plan3.layout_id != plan.layout_id and plan3.description.count("vtkMRMLSliceNode") == 3
    assert plan.orientation != plan3.orientation, "through-plane view should show a plane containing the axis"
    out.GetDisplayNode().SetWindowLevel(1.0, 0.0)  # as if the result had been windowed apart
    updated = layout.apply_plan(plan3, scene)
    assert len(updated) == 3, f"only {len(updated)} of 3 slice views were set (does the scene have Red/Yellow/Green?)"
    offsets = []
    for assignment, composite in zip(plan3.views, updated):
        assert composite.GetBackgroundVolumeID() == assignment.volume_id, f"{assignment.view} shows the wrong volume"
        assert composite.GetLinkedControl(), f"{assignment.view} is not linked"
        slice_node = layout._by_layout_name(scene, "vtkMRMLSliceNode", assignment.view)
        offsets.append(nodes._matrix_to_numpy(slice_node.GetSliceToRAS()))
    for other in offsets[1:]:
        assert np.allclose(other, offsets[0], atol=1e-6), "slice views do not share one plane and position"
    assert np.allclose(offsets[0][:3, 3], plan3.center_ras, atol=1e-6), "views are not centred on the input"
    labels = [layout._by_layout_name(scene, "vtkMRMLSliceNode", a.view).GetLayoutLabel() for a in plan3.views]
    assert labels == ["Input", "Result: nearest x2", "Reference"], f"views are labelled {labels}"
    shown, result = node.GetDisplayNode(), out.GetDisplayNode()
    assert (result.GetWindow(), result.GetLevel()) == (shown.GetWindow(), shown.GetLevel()), \
        "input and result are not shown at one window/level"


def check_panel_run(scene, sample: Optional[Volume] = None):
    """The panel model through a whole run, as the widget drives it: Super-resolve becomes Cancel, a
    worker process runs, and the result node appears with its name and the worker's log."""
    from . import panel as panel_model
    node = add_oblique_node(scene, sample)
    params = panel_model.PanelParameters(inputVolume=node, model="bicubic", scale=2.0, device="cpu",
                                         showSideBySide=False)
    p = panel_model.SuperResolvePanel(params, scene)
    assert p.button().text == "Super-resolve" and p.button().enabled, f"Apply is not ready: {p.button()}"
    assert p.apply() == panel_model.State.RUNNING, f"the run did not start: {p.status}"
    assert p.button().text == "Cancel", "the button does not turn into Cancel during a run"
    deadline = time.monotonic() + 120
    while p.poll():
        assert time.monotonic() < deadline, "the panel's run did not end within 120 s"
        time.sleep(0.05)
    assert p.state == panel_model.State.DONE, f"the panel's run failed: {p.status}"
    out = p.outcome.output_node
    assert out is not None and out.GetName() == "MedSRTestInput_SR2x_bicubic", "the panel made no result node"
    assert any("worker pid" in line for line in p.log), "the worker's messages did not reach the log"
    return out


ALL_CHECKS = (check_oblique_roundtrip, check_cancel_leaves_scene_unchanged, check_failure_leaves_scene_unchanged,
              check_transformed_input, check_refusals, check_layout_plan, check_panel_run)
