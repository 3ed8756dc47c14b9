"""DICOM out: a super-resolved series derived from a real DICOM series, read back with SimpleITK
and pydicom: same voxels, the exact voxel-edge box, the tags a PACS and a radiologist rely on."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from MedSRExtension import load_volume, super_resolve
from MedSRExtension.core.dicom_out import NOT_FOR_DIAGNOSIS, write_dicom_series
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.data.corpus import mni_path
from dicom_series import write_source_series
from sample_volumes import oblique_direction


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    mni = load_volume(mni_path()).array
    slab = np.round(mni[80:86, 60:124, 50:114]).astype(np.int16) - 100  # negative values too, as in CT
    folder = tmp_path_factory.mktemp("dicom") / "source"
    direction = oblique_direction()
    origin, spacing = np.array([-31.5, 12.25, 40.0]), (0.9, 1.1, 4.0)
    study, series = write_source_series(folder, slab, spacing, origin, direction)
    return folder, study, series


def test_result_series_reads_back_with_exact_geometry_and_values(source, tmp_path):
    folder, study, series = source
    lr = load_volume(folder)
    sr = super_resolve(lr, model="bicubic", scale=2, mode="throughplane", axis="k", device="cpu")
    out = tmp_path / "sr"
    files = write_dicom_series(sr, out, folder, {"medsr_version": "0.1.0", "model": "bicubic", "scale": 2})
    assert len(files) == sr.array.shape[0] and all(f.exists() for f in files)
    back = load_volume(out)  # SimpleITK / GDCM
    step = float(pydicom.dcmread(files[0]).RescaleSlope)
    assert back.array.shape == sr.array.shape
    assert np.max(np.abs(back.array - sr.array)) <= step / 2 + 1e-6 and back.array.min() < 0
    assert np.allclose(back.edge_bounds(), sr.edge_bounds(), atol=1e-6)
    assert np.allclose(back.edge_bounds(), lr.edge_bounds(), atol=1e-6)  # the same physical box as the input
    slices = sorted((pydicom.dcmread(f) for f in files), key=lambda d: int(d.InstanceNumber))
    stack = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
    assert np.allclose(stack, back.array, atol=1e-4)  # pydicom and SimpleITK agree


def test_result_series_tags_say_what_it_is_and_where_it_belongs(source, tmp_path):
    folder, study, series = source
    lr = load_volume(folder)
    sr = super_resolve(lr, model="bicubic", scale=2, mode="inplane", axis="k", device="cpu")
    files = write_dicom_series(sr, tmp_path / "sr", folder, {"model": "bicubic", "scale": 2, "weights_sha256": "none"})
    sop_uids, series_uids = set(), set()
    for f in files:
        d = pydicom.dcmread(f)
        assert d.PatientID == "MEDSR-0001" and d.StudyInstanceUID == study and d.Modality == "MR"
        assert list(d.ImageType) == ["DERIVED", "SECONDARY"]
        assert "MedSR bicubic x2" in d.SeriesDescription and NOT_FOR_DIAGNOSIS in d.SeriesDescription
        assert "model=bicubic" in d.DerivationDescription
        assert d.ReferencedSeriesSequence[0].SeriesInstanceUID == series
        assert d.ContributingEquipmentSequence[0].Manufacturer == "MedSR"
        assert float(d.SpacingBetweenSlices) == pytest.approx(4.0) and float(d.PixelSpacing[0]) == pytest.approx(0.55)
        sop_uids.add(d.SOPInstanceUID)
        series_uids.add(d.SeriesInstanceUID)
    assert len(sop_uids) == len(files) and len(series_uids) == 1 and series not in series_uids


def test_non_empty_output_folder_is_refused_and_nothing_written(source, tmp_path):
    folder, _, _ = source
    lr = load_volume(folder)
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(MedSRError, match="not empty"):
        write_dicom_series(lr, out, folder)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and len(list(tmp_path.iterdir())) == 1


def test_cli_writes_into_an_existing_empty_folder(source, tmp_path):
    import subprocess
    import sys
    folder, _, _ = source
    (tmp_path / "out").mkdir()
    done = subprocess.run([sys.executable, "-m", "MedSRExtension", "run", str(folder), "out/", "--model", "bicubic",
                           "--mode", "throughplane", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").iterdir())) == 12 and load_volume(tmp_path / "out").shape_ijk == (64, 64, 12)


def test_a_redo_replaces_a_damaged_medsr_series_and_never_a_users_file(source, tmp_path):
    folder, _, _ = source
    lr = load_volume(folder)
    out = tmp_path / "sr"
    files = write_dicom_series(lr, out, folder, {"model": "bicubic"})
    files[0].unlink()  # damaged: one instance lost, one cut short
    files[1].write_bytes(files[1].read_bytes()[:2000])
    again = write_dicom_series(lr, out, folder, {"model": "bicubic"}, replace=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in again) and len(again) == 6
    assert load_volume(out).shape_ijk == lr.shape_ijk
    (out / "notes.txt").write_text("the radiologist's notes", encoding="utf-8")
    with pytest.raises(MedSRError, match="did not write \\(notes.txt\\)"):
        write_dicom_series(lr, out, folder, {"model": "bicubic"}, replace=True)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "the radiologist's notes"
    assert len(list(out.iterdir())) == 7 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_outputs_follow_the_umask(source, tmp_path):
    import os
    import stat
    folder, _, _ = source
    old = os.umask(0o027)
    try:
        files = write_dicom_series(load_volume(folder), tmp_path / "sr", folder, {"model": "bicubic"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sr").stat().st_mode) == 0o750
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o640
