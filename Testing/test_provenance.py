"""Provenance in every output: `medsr run` records what made a result in the file's own header (NRRD
and MetaImage fields, a NIfTI extension and descrip, DICOM DerivationDescription and
ContributingEquipmentSequence), `medsr info` prints it back, and a DICOM series in gives a DICOM
series out with exact geometry and the tags a PACS needs."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from MedSRExtension import load_volume, save_volume, super_resolve
from MedSRExtension.cli import main
from MedSRExtension.core.dicom_out import NOT_FOR_DIAGNOSIS
from MedSRExtension.core.provenance import read_provenance
from MedSRExtension.zoo import weights as zoo
from dicom_series import write_source_series
from sample_volumes import mni_region, oblique_direction


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "in.nii.gz"
    save_volume(mni_region(shape_kji=(4, 24, 20)), path)
    return path


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd", ".mha", ".nii"])
def test_every_volume_format_records_what_made_it(small, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    assert main(["run", str(small), str(out), "--model", "pfmdn", "--scale", "2", "--mode", "inplane", "--quiet"]) == 0
    record = read_provenance(out)
    entry = zoo.find_weights("pfmdn", (2.0, 2.0))
    assert record["model"] == "pfmdn" and record["preset"] == entry["preset"]
    assert record["weights"] == entry["file"] and record["weights_sha256"] == entry["sha256"]
    assert record["scale"] == "2,2,1" and record["mode"] == "inplane" and record["axis"] == "k"
    assert record["device"] == "cpu" and record["medsr_version"] and "not an acquired image" in record["derived"]
    assert read_provenance(small) is None  # an image MedSR did not make has no record
    engine = super_resolve(load_volume(small), model="pfmdn", scale=2)
    back = load_volume(out)
    assert np.array_equal(back.array, engine.array)  # the header record changes no voxel or geometry
    assert np.allclose(back.edge_bounds(), engine.edge_bounds(), atol=1e-5)


def test_nifti_keeps_the_record_in_an_extension_and_descrip(small, tmp_path):
    out = tmp_path / "out.nii.gz"
    main(["run", str(small), str(out), "--model", "bicubic", "--quiet"])
    header = nib.load(out).header
    assert header["descrip"].tobytes().startswith(b"MedSR bicubic x2 derived")
    ext = [e for e in header.extensions if e.get_code() == 6]
    assert json.loads(bytes(ext[0].get_content()).rstrip(b"\0"))["MedSR"]["model"] == "bicubic"
    assert sitk.ReadImage(str(out)).GetMetaData("descrip").startswith("MedSR bicubic")  # ITK reads it too


def test_info_prints_the_record_back(small, tmp_path, capsys):
    out = tmp_path / "out.nrrd"
    main(["run", str(small), str(out), "--model", "bicubic", "--quiet"])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MedSR result" in text and "model:" in text and "bicubic" in text and "weights:" in text
    main(["info", str(small)])
    assert "none recorded" in capsys.readouterr().out


def test_png_output_has_a_sidecar_record(tmp_path):
    image = sitk.GetImageFromArray(np.arange(24 * 20, dtype=np.uint8).reshape(24, 20))
    sitk.WriteImage(image, str(tmp_path / "in.png"))
    assert main(["run", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--model", "bicubic", "--quiet"]) == 0
    assert read_provenance(tmp_path / "out.png")["model"] == "bicubic"


@pytest.fixture
def series(tmp_path):
    slab = np.round(mni_region(shape_kji=(5, 40, 36), oblique=False).array).astype(np.int16) - 100
    folder = tmp_path / "series"
    study, uid = write_source_series(folder, slab, (0.9, 1.1, 4.0), np.array([-31.5, 12.25, 40.0]),
                                     oblique_direction())
    return folder, study, uid


def test_dicom_series_in_gives_a_dicom_series_out(series, tmp_path, capsys):
    folder, study, source_uid = series
    out = tmp_path / "sr"
    assert main(["run", str(folder), f"{out}/", "--model", "bicubic", "--mode", "throughplane", "--scale", "2",
                 "--quiet"]) == 0
    lr = load_volume(folder)
    expected = super_resolve(lr, model="bicubic", mode="throughplane", scale=2)
    back = load_volume(out)  # SimpleITK / GDCM
    files = sorted(out.iterdir())
    slices = sorted((pydicom.dcmread(f) for f in files), key=lambda d: int(d.InstanceNumber))
    step = float(slices[0].RescaleSlope)
    assert back.array.shape == expected.array.shape == (10, 40, 36) and len(files) == 10
    assert np.max(np.abs(back.array - expected.array)) <= step / 2 + 1e-6
    assert np.allclose(back.edge_bounds(), lr.edge_bounds(), atol=1e-6)  # the exact voxel-edge box
    stack = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
    assert np.allclose(stack, back.array, atol=1e-4)  # pydicom reads the same voxels
    for k, d in enumerate(slices):
        assert d.StudyInstanceUID == study and d.PatientID == "MEDSR-0001" and d.SeriesInstanceUID != source_uid
        assert list(d.ImageType) == ["DERIVED", "SECONDARY"]
        assert "MedSR bicubic x2" in d.SeriesDescription and NOT_FOR_DIAGNOSIS in d.SeriesDescription
        assert "model=bicubic" in d.DerivationDescription and "mode=throughplane" in d.DerivationDescription
        assert d.ContributingEquipmentSequence[0].Manufacturer == "MedSR"
        assert d.ReferencedSeriesSequence[0].SeriesInstanceUID == source_uid
        assert np.allclose([float(v) for v in d.ImagePositionPatient],
                           expected.origin + k * expected.spacing[2] * expected.direction[:, 2], atol=1e-6)
        assert float(d.SpacingBetweenSlices) == pytest.approx(2.0) and float(d.SliceThickness) == pytest.approx(2.0)
    assert read_provenance(out)["scale"] == "1,1,2"
    capsys.readouterr()
    main(["info", str(out)])
    assert "MedSR result" in capsys.readouterr().out


def test_dicom_output_needs_a_dicom_input_and_a_new_folder(small, series, tmp_path, capsys):
    folder, _, _ = series
    assert main(["run", str(small), f"{tmp_path / 'sr'}/", "--quiet"]) == 2
    assert "needs a DICOM series input" in capsys.readouterr().err and not (tmp_path / "sr").exists()
    assert main(["run", str(folder), f"{folder}/", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
