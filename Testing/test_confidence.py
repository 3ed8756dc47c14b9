"""Say how sure: a through-plane run can return a confidence volume, how far the two orientations of
planes disagree at each voxel. It must point where the result is wrong: on real thick slices of the
MNI template, the voxels it marks as least supported carry far more error than the rest."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from MedSRExtension import Volume, load_volume, save_volume
from MedSRExtension.core.degradations import thickslice
from MedSRExtension.core.provenance import read_provenance
from sample_volumes import mni_array


def test_confidence_marks_where_the_result_is_wrong(tmp_path):
    hr = Volume(mni_array()[60:140, 60:170, 50:150].copy(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    lr = thickslice(hr, 4, axis="k")
    save_volume(Volume(lr.array, lr.spacing, lr.origin, lr.direction), tmp_path / "thick.nrrd")
    done = subprocess.run([sys.executable, "-m", "MedSRExtension", "run", "thick.nrrd", "sr.nrrd", "--model", "pfmdn",
                           "--scale", "4", "--confidence", "conf.nrrd", "--quiet"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    sr, conf = load_volume(tmp_path / "sr.nrrd"), load_volume(tmp_path / "conf.nrrd")
    assert conf.shape_ijk == sr.shape_ijk == hr.shape_ijk
    np.testing.assert_allclose(conf.edge_bounds(), sr.edge_bounds(), atol=1e-6)
    assert "confidence map" in read_provenance(tmp_path / "conf.nrrd")["derived"]
    fg = hr.array > 30
    err, c = np.abs(sr.array - hr.array)[fg], conf.array[fg]
    top = c >= np.quantile(c, 0.9)
    assert err[top].mean() > 1.5 * err[~top].mean()  # measured 2.4x on this slab


def test_confidence_needs_a_through_plane_run(tmp_path):
    save_volume(Volume(mni_array()[80:84, 60:120, 50:110].copy(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3)),
                tmp_path / "iso.nrrd")
    done = subprocess.run([sys.executable, "-m", "MedSRExtension", "run", "iso.nrrd", "sr.nrrd", "--model", "bicubic",
                           "--confidence", "conf.nrrd"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "through-plane" in done.stderr and done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iso.nrrd"]
