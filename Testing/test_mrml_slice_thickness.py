"""The slice thickness of a volume node reaches the worker and the adaptation: nodes read from real NRRD
and DICOM files by Slicer's own storage node on a real slicer-core scene, the worker protocol, and a
real adapted run through the panel whose slice profile names where the thickness came from."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRExtension.core import slice_header  # noqa: E402
from MedSRExtension.core.volume import Volume  # noqa: E402
from MedSRExtension.worker import protocol as worker  # noqa: E402
from MedSRLib import nodes, selftest  # noqa: E402
from MedSRLib.node_thickness import DICOM_UIDS, thickness_of  # noqa: E402
from MedSRLib.panel import PanelParameters, State, SuperResolvePanel  # noqa: E402

from dicom_series import write_source_series  # noqa: E402
from sample_volumes import mni_array  # noqa: E402

NRRD_SOURCE = "NRRD thicknesses field"


def _thick_nrrd(path, field: bytes = b"thicknesses: nan 1.2 3", shape=(4, 14, 16)):
    """A real NRRD of MNI voxels, 1 x 1 x 4 mm, with a ``thicknesses`` header field (k, j, i = 4, 14, 16)."""
    a = mni_array()[60:60 + shape[0], 100:100 + shape[1], 80:80 + shape[2]].astype(np.float32)
    image = sitk.GetImageFromArray(a)
    image.SetSpacing((1.0, 1.0, 4.0))
    sitk.WriteImage(image, str(path), False)
    raw = path.read_bytes()
    end = raw.index(b"\n\n")
    path.write_bytes(raw[:end] + b"\n" + field + raw[end:])
    return path


def _load(scene, path, name="thick"):
    """A volume node read from ``path`` by Slicer's archetype storage node, as File > Add Data does."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.ReadData(node) == 1
    return node


def test_nrrd_node_carries_its_thicknesses_per_axis(mrml_scene, tmp_path):
    node = _load(mrml_scene, _thick_nrrd(tmp_path / "thick.nrrd"))
    assert node.GetImageData().GetDimensions() == (16, 14, 4)
    volume = nodes.volume_from_node(node)
    assert volume.meta["thickness_ijk"] == (None, 1.2, 3.0)  # i, j, k as in the file: j and k, not i
    assert volume.meta["thickness_source"] == NRRD_SOURCE
    assert set(volume.meta) == {"thickness_ijk", "thickness_source"}


def test_node_without_a_file_or_a_matching_file_has_no_thickness(mrml_scene, tmp_path):
    plain = selftest.add_oblique_node(mrml_scene)
    assert thickness_of(plain) == {} and "thickness_ijk" not in nodes.volume_from_node(plain).meta
    gone = _load(mrml_scene, _thick_nrrd(tmp_path / "gone.nrrd"), "gone")
    (tmp_path / "gone.nrrd").unlink()
    assert thickness_of(gone) == {}
    replaced = _load(mrml_scene, _thick_nrrd(tmp_path / "replaced.nrrd"), "replaced")
    slicer.util.updateVolumeFromArray(replaced, np.zeros((8, 14, 16), dtype=np.float32))  # 8 slices, not 4
    assert thickness_of(replaced) == {}, "a file whose grid is not the node's says nothing about it"
    # a DICOM-database node outside Slicer's DICOM module: no database, so unknown (and no error)
    assert not hasattr(slicer, "dicomDatabase")
    plain.SetAttribute(DICOM_UIDS, "1.2.3.4 1.2.3.5")
    assert thickness_of(plain) == {}


def _dicom_series(folder, thickness: float):
    a = mni_array()[60:64, 100:116, 80:94]
    write_source_series(folder, a, np.array([1.0, 1.0, 4.0]), np.zeros(3), np.eye(3))
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        ds.SliceThickness = thickness  # thinner than the 4 mm spacing: a gap
        ds.save_as(path)
    return sorted(folder.iterdir())


def test_dicom_slice_thickness_is_the_k_thickness_of_a_node_and_of_a_database_file(mrml_scene, tmp_path):
    files = _dicom_series(tmp_path / "series", 2.5)
    node = _load(mrml_scene, files[0], "dicom")
    assert node.GetImageData().GetDimensions() == (14, 16, 4)
    assert nodes.volume_from_node(node).meta == {"thickness_ijk": (None, None, 2.5),
                                                "thickness_source": "DICOM Slice Thickness (0018,0050)"}
    (tmp_path / "database").mkdir()
    stored = tmp_path / "database" / "1.2.826.0.1.3680043.8.498.1"  # a DICOM database names files by UID
    shutil.copy(files[0], stored)
    assert slice_header.read_thickness(stored) == {}  # by name alone it is not recognised ...
    assert slice_header.dicom_file_thickness(stored)["thickness_ijk"] == (None, None, 2.5)  # ... by content it is
    assert thickness_of(_load(mrml_scene, stored, "from database"))["thickness_ijk"] == (None, None, 2.5)
    assert slice_header.dicom_file_thickness(tmp_path / "missing") == {}


def test_worker_request_keeps_the_thickness_and_tolerates_requests_without_it(tmp_path):
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    volume = Volume(a, (1.0, 1.0, 4.0), (0.0, 0.0, 0.0), np.eye(3),
                    {"thickness_ijk": (None, 1.2, 3.0), "thickness_source": NRRD_SOURCE, "other": "dropped"})
    (tmp_path / "with").mkdir()
    worker.write_request(str(tmp_path / "with"), volume, {"model": "bicubic"})
    back, options = worker.read_request(str(tmp_path / "with"))
    assert back.meta == {"thickness_ijk": (None, 1.2, 3.0), "thickness_source": NRRD_SOURCE}
    assert options == {"model": "bicubic"} and np.array_equal(back.array, a)
    (tmp_path / "without").mkdir()
    worker.write_request(str(tmp_path / "without"), Volume(a, (1.0, 1.0, 4.0), (0.0, 0.0, 0.0), np.eye(3)), {})
    assert "meta" not in json.loads((tmp_path / "without" / worker.REQUEST).read_text())
    assert worker.read_request(str(tmp_path / "without"))[0].meta == {}
    request = json.loads((tmp_path / "with" / worker.REQUEST).read_text())
    request["meta"]["thickness_ijk"] = [3.0, "thick"]  # malformed: treated as unknown, the run goes on
    (tmp_path / "with" / worker.REQUEST).write_text(json.dumps(request))
    assert worker.read_request(str(tmp_path / "with"))[0].meta == {}


def test_adapted_panel_run_uses_and_reports_the_nrrd_thickness(mrml_scene, tmp_path):
    node = _load(mrml_scene, _thick_nrrd(tmp_path / "thick.nrrd", b"thicknesses: nan nan 3"))
    params = PanelParameters(inputVolume=node, model="pfmdn", scale=2.0, mode="throughplane", axis="k",
                             adapt=True, device="cpu")
    p = SuperResolvePanel(params, mrml_scene, adapt_budget={"steps": 1, "minutes": None})
    assert p.apply() == State.RUNNING, p.status
    deadline = time.monotonic() + 120
    while p.poll():
        assert time.monotonic() < deadline, "the adapted run did not finish"
        time.sleep(0.05)
    assert p.state == State.DONE, p.status
    profile = p.outcome.adapt["profile"]  # what the worker's adaptation used, from its result
    assert "3 mm every 4 mm (gap 1 mm" in profile and profile.endswith(f"from {NRRD_SOURCE}")
    assert p.outcome.adapt["steps"] == 1
    assert profile in p.status and any(profile in line for line in p.log)
    assert p.outcome.output_node.GetImageData().GetDimensions() == (16, 14, 8)
