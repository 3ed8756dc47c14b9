"""What a run refuses or bounds before it can go wrong: a result never holds values its input cannot
(a CT below its air value), unless asked for the raw output; a run far beyond the machine's memory is
refused in one line before any work, even with --force."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from pydicom.data import get_testdata_file

from MedSRExtension import Volume, load_volume, save_volume, super_resolve
from MedSRExtension.core.provenance import read_provenance
from MedSRExtension.inference import memory


def _head_ct() -> Volume:
    """The corpus head CT (693_UNCI.dcm, HU): a real sharp bone/air image."""
    return load_volume(get_testdata_file("693_UNCI.dcm"))


def test_ct_results_stay_inside_the_input_range_unless_raw_is_asked(tmp_path):
    ct = _head_ct()
    lo, hi = float(ct.array.min()), float(ct.array.max())
    raw = super_resolve(ct, model="lanczos", scale=2, clamp="none")
    assert raw.array.min() < lo  # the kernel overshoots below the padding value at the field-of-view edge
    kept = super_resolve(ct, model="lanczos", scale=2)
    assert kept.array.min() >= lo and kept.array.max() <= hi
    inside = (raw.array >= lo) & (raw.array <= hi)
    np.testing.assert_array_equal(kept.array[inside], raw.array[inside])  # only the overshoot changes
    assert kept.meta["values"].startswith(f"clamped to the input range {lo:.6g}..{hi:.6g}")
    save_volume(ct, tmp_path / "ct.nrrd")
    for clamp, expect in (("input", "clamped"), ("none", "raw network output")):
        out = tmp_path / f"{clamp}.nrrd"
        done = subprocess.run([sys.executable, "-m", "MedSRExtension", "run", str(tmp_path / "ct.nrrd"), str(out),
                               "--model", "lanczos", "--clamp", clamp, "--quiet"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert read_provenance(out)["values"].startswith(expect)


def test_a_run_beyond_memory_is_refused_before_any_work_even_with_force(tmp_path):
    v = Volume(np.zeros((256, 256, 256), np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    save_volume(v, tmp_path / "big.nii")
    need = memory.run_bytes((256,) * 3, [(256, 2048, 2048), (2048, 2048, 2048)])
    assert need > (memory.available_bytes() or 0)  # 8x volumetric: ~56 GB, more than this machine has
    done = subprocess.run([sys.executable, "-m", "MedSRExtension", "run", "big.nii", "out.nii", "--model", "bicubic",
                           "--mode", "volumetric", "--scale", "8", "--force"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "GB of memory" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.nii"]
