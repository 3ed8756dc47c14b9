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
