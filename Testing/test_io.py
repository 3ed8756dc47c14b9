"""Volume I/O: exact geometry round trips, 2D images as one-slice volumes, DICOM series, clear errors."""
import os

import numpy as np
import pytest
import SimpleITK as sitk

from MedSRExtension import Volume, load_volume, save_volume
from MedSRExtension.core.errors import MedSRError
from sample_volumes import mni_region


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"])
def test_round_trip_keeps_voxels_and_geometry(tmp_path, ext):
    v = mni_region()
    path = save_volume(v, tmp_path / f"vol{ext}")
    back = load_volume(path)
    np.testing.assert_array_equal(back.array, v.array)
    np.testing.assert_allclose(back.spacing, v.spacing, rtol=1e-6)
    np.testing.assert_allclose(back.origin, v.origin, atol=1e-5)
    np.testing.assert_allclose(back.direction, v.direction, atol=1e-6)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".medsr-")]
    assert leftovers == []


def test_png_is_a_one_slice_volume(tmp_path):
    img = (mni_region(shape_kji=(1, 40, 50), oblique=False).array[0] / 2).astype(np.uint8)
    v = Volume(img, spacing=(0.5, 0.25, 1.0), origin=(3.0, 4.0, 0.0))
    path = save_volume(v, tmp_path / "slice.png")
    back = load_volume(path)
    assert back.array.shape == (1, 40, 50)
    np.testing.assert_array_equal(back.array[0], img)
    assert back.largest_spacing_axis() == "k"


def test_dicom_series_folder(tmp_path):
    v = mni_region(shape_kji=(6, 32, 30), oblique=False, spacing=(0.8, 0.8, 2.5), origin=(-10.0, 20.0, 5.0))
    arr = v.array.astype(np.int16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.99"
    for k in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k])
        sl.SetSpacing(v.spacing[:2])
        pos = np.asarray(v.origin) + np.array([0, 0, k * v.spacing[2]])
        for tag, value in {
            "0008|0060": "MR", "0020|000e": series_uid, "0020|000d": series_uid + ".0",
            "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.6f}" for p in pos), "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{v.spacing[2]:.6f}",
        }.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"IM{k:03d}.dcm"))
        writer.Execute(sl)
    back = load_volume(tmp_path)
    np.testing.assert_array_equal(back.array, arr)
    np.testing.assert_allclose(back.spacing, v.spacing, atol=1e-4)
    np.testing.assert_allclose(back.origin, v.origin, atol=1e-4)


def test_missing_and_unsupported_inputs(tmp_path):
    with pytest.raises(MedSRError, match="not found"):
        load_volume(tmp_path / "nope.nii.gz")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello", encoding="utf-8")
    with pytest.raises(MedSRError, match="unsupported"):
        load_volume(bad)
    corrupt = tmp_path / "broken.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(MedSRError, match="cannot read"):
        load_volume(corrupt)
    with pytest.raises(MedSRError, match="no DICOM series"):
        load_volume(tmp_path)


def test_four_d_and_colour_images_are_refused_clearly(tmp_path):
    img4 = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False)
    sitk.WriteImage(img4, str(tmp_path / "t.nii.gz"))
    with pytest.raises(MedSRError, match="4D"):
        load_volume(tmp_path / "t.nii.gz")
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 1] = 200
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "c.png"))
    with pytest.raises(MedSRError, match="--component"):
        load_volume(tmp_path / "c.png")
    assert load_volume(tmp_path / "c.png", component=1).array.max() == 200
    lum = load_volume(tmp_path / "c.png", component="luminance").array
    np.testing.assert_allclose(lum, 0.587 * 200, rtol=1e-5)


def test_nan_voxels_are_refused(tmp_path):
    a = np.ones((3, 4, 5), np.float32)
    a[1, 2, 3] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "nan.nrrd"))
    with pytest.raises(MedSRError, match="NaN"):
        load_volume(tmp_path / "nan.nrrd")


def test_failed_write_leaves_nothing(tmp_path):
    v = mni_region(shape_kji=(3, 8, 8))
    with pytest.raises(MedSRError, match="one slice"):
        save_volume(v, tmp_path / "three_slices.png")
    with pytest.raises(MedSRError, match="cannot write"):
        save_volume(v, tmp_path / "out.xyz")
    with pytest.raises(MedSRError, match="does not exist"):
        save_volume(v, tmp_path / "missing" / "out.nii")
    assert os.listdir(tmp_path) == []
