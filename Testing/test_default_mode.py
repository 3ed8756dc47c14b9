"""The mode a volume opens with follows its geometry: thick slices (slice spacing at least 1.5x the
in-plane spacing) are super-resolved through-plane along the thick axis, everything else in-plane;
`medsr run` without --mode says what it chose."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from MedSRExtension import Volume, load_volume, save_volume, super_resolve
from MedSRExtension.core.geometry import default_mode
from sample_volumes import mni_region


@pytest.mark.parametrize("spacing,shape,expect", [
    ((1.0, 1.0, 4.0), (10, 40, 36), ("throughplane", "k")),
    ((1.0, 3.0, 1.0), (10, 40, 36), ("throughplane", "j")),
    ((0.9, 0.9, 1.2), (10, 40, 36), ("inplane", "auto")),
    ((1.0, 1.0, 1.0), (10, 40, 36), ("inplane", "auto")),
    ((0.5, 0.5, 5.0), (1, 40, 36), ("inplane", "auto")),  # one slice: nothing to interpolate between
])
def test_default_mode_from_geometry(spacing, shape, expect):
    v = Volume(np.zeros(shape, np.float32), spacing, (0.0, 0.0, 0.0), np.eye(3))
    assert default_mode(v)[:2] == expect


def test_auto_mode_scales_only_the_thick_axis_and_says_so(tmp_path):
    thick = mni_region(shape_kji=(10, 40, 36), oblique=True, spacing=(1.0, 1.0, 4.0))
    save_volume(thick, tmp_path / "thick.nii.gz")
    done = subprocess.run([sys.executable, "-m", "MedSRExtension", "run", "thick.nii.gz", "sr.nii.gz", "--model",
                           "bicubic"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mode throughplane along k" in done.stderr and "give --mode to choose" in done.stderr
    out = load_volume(tmp_path / "sr.nii.gz")
    assert out.shape_ijk == (36, 40, 20)
    api = super_resolve(thick, model="bicubic", mode="auto")
    np.testing.assert_allclose(api.spacing, (1.0, 1.0, 2.0), rtol=1e-6)
