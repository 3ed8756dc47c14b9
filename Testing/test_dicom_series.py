"""DICOM series as PACS exports them: a series becomes a volume only when its slices make one. Every
irregular series (a missing, repeated or tilted slice, gantry tilt, uneven spacing, mixed sizes, no
position, two series in a folder) is refused with one line naming what was found; a regular one is
read with every slice at its true position, whatever the file names' order."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from MedSRExtension import load_volume
from MedSRExtension.core import dicom_series
from MedSRExtension.core.errors import MedSRError
from dicom_series import regular_slices, write_slices
from sample_volumes import mni_array, oblique_direction

SPACING = (0.9, 0.9, 2.5)
ORIGIN = np.array([-20.0, 15.0, 30.0])


def _slab(n=30):
    return mni_array()[60:60 + n, 80:112, 70:98].astype(np.int16)  # real MNI voxels, 28 x 32 x n


def _slices(n=30, direction=None, **kw):
    return regular_slices(_slab(n), SPACING, ORIGIN, np.eye(3) if direction is None else direction, **kw)


def _refused(folder, needle):
    with pytest.raises(MedSRError) as err:
        load_volume(folder)
    text = str(err.value)
    assert "\n" not in text and ";" in text and needle.lower() in text.lower(), text
    return text


def test_regular_series_is_read_in_position_order_whatever_the_names(tmp_path):
    direction = oblique_direction()
    slices = _slices(direction=direction)
    write_slices(tmp_path / "s", slices[::-1])  # file 000 holds the last slice
    v = load_volume(tmp_path / "s")
    np.testing.assert_array_equal(v.array, _slab())
    np.testing.assert_allclose(v.spacing, SPACING, atol=1e-6)
    np.testing.assert_allclose(v.origin, ORIGIN, atol=1e-6)
    np.testing.assert_allclose(v.direction, direction, atol=1e-6)
    assert "30 slices 2.5 mm apart" in v.meta["dicom_series"]


def test_missing_slice_is_refused_naming_its_position(tmp_path):
    slices = _slices()
    del slices[15]
    write_slices(tmp_path / "s", slices)
    text = _refused(tmp_path / "s", "missing")
    assert "1 DICOM slice(s) missing" in text and "67.5 mm" in text, text  # 30 + 15 * 2.5


def test_repeated_position_is_refused(tmp_path):
    slices = _slices(12)
    slices.insert(6, dict(slices[6], pixels=slices[6]["pixels"] + 1))
    write_slices(tmp_path / "s", slices)
    _refused(tmp_path / "s", "hold two images")


def test_one_tilted_slice_is_refused(tmp_path):
    slices = _slices(12)
    tilt = np.deg2rad(10.0)
    slices[5]["orientation"] = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), np.sin(tilt))
    write_slices(tmp_path / "s", slices)
    text = _refused(tmp_path / "s", "tilted")
    assert "10 degrees" in text, text


def test_gantry_tilt_is_refused(tmp_path):
    slices = _slices(12)
    for k, s in enumerate(slices):  # each slice shifted 0.44 mm along j: a 10 degree shear
        s["position"] = s["position"] + np.array([0.0, k * 2.5 * np.tan(np.deg2rad(10.0)), 0.0])
    write_slices(tmp_path / "s", slices)
    text = _refused(tmp_path / "s", "gantry tilt")
    assert "10 degrees" in text, text


def test_non_uniform_spacing_is_refused(tmp_path):
    slices = _slices(12)
    for k, s in enumerate(slices):
        s["position"] = ORIGIN + np.array([0.0, 0.0, 2.5 * k + (0.4 if k >= 6 else 0.0)])
    write_slices(tmp_path / "s", slices)
    _refused(tmp_path / "s", "not uniform")


def test_rounded_positions_within_tolerance_are_read(tmp_path):
    slices = _slices(12)
    for s in slices:  # positions written to 0.01 mm, as some scanners do
        s["position"] = np.round(s["position"] + np.array([0, 0, 0.0031]), 2)
    write_slices(tmp_path / "s", slices)
    assert load_volume(tmp_path / "s").array.shape[0] == 12


def test_mixed_sizes_are_refused(tmp_path):
    slices = _slices(12)
    slices[3]["pixels"] = slices[3]["pixels"][:, :20]
    write_slices(tmp_path / "s", slices)
    _refused(tmp_path / "s", "differ in size")


def test_missing_image_position_is_refused(tmp_path):
    slices = _slices(12)
    slices[4]["position"] = None
    write_slices(tmp_path / "s", slices)
    _refused(tmp_path / "s", "ImagePositionPatient")


def test_two_series_in_one_folder_are_listed_and_one_can_be_chosen(tmp_path):
    t1 = _slices(12, series="1.2.826.0.1.3680043.2.1125.7.1", description="T1")
    t2 = regular_slices(_slab(8) // 2, SPACING, ORIGIN, np.eye(3), series="1.2.826.0.1.3680043.2.1125.7.2",
                        description="T2")
    study = write_slices(tmp_path / "s", t1)
    write_slices(tmp_path / "s", t2, study=study, prefix="b", mkdir=False)
    text = _refused(tmp_path / "s", "--series")
    assert "2 DICOM series" in text and "'T1' (12 files)" in text and "'T2' (8 files)" in text, text
    chosen = load_volume(tmp_path / "s", series="1.2.826.0.1.3680043.2.1125.7.2")
    np.testing.assert_array_equal(chosen.array, _slab(8) // 2)
    with pytest.raises(MedSRError, match="no DICOM series 9.9"):
        load_volume(tmp_path / "s", series="9.9")


def test_files_without_pixels_beside_a_series_are_ignored(tmp_path):
    write_slices(tmp_path / "s", _slices(6))
    (tmp_path / "s" / "notes.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 20)
    assert dicom_series.read_series(tmp_path / "s").files[0].endswith("000.dcm")
    assert load_volume(tmp_path / "s").array.shape[0] == 6


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "MedSRExtension", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_cli_refuses_a_gap_in_one_line_and_info_prints_the_checks(tmp_path):
    slices = _slices(12)
    write_slices(tmp_path / "good", slices)
    del slices[6]
    write_slices(tmp_path / "gap", slices)
    run = _cli("run", "gap", "out.nii.gz", "--model", "bicubic", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "missing" in run.stderr, run.stderr
    assert not (tmp_path / "out.nii.gz").exists()
    info = _cli("info", "gap", cwd=tmp_path)
    assert info.returncode == 2 and "missing" in info.stderr
    good = _cli("info", "good", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "12 slices 2.5 mm apart" in good.stdout and "no missing slices" in good.stdout, good.stdout
