"""Self-ensemble: the network averaged over flipped/transposed copies. The copies are turned back
exactly (a flip-symmetric interpolation gives the plain result), on the identity run's grid, for any
mode and axis; on a real MNI slice a network's ensemble is no worse than its single run."""
from __future__ import annotations

import numpy as np
import pytest

from MedSRExtension import MedSRError, Volume, super_resolve
from MedSRExtension.core.degradations import bicubic
from MedSRExtension.evaluation.metrics import psnr
from sample_volumes import mni_array, mni_region


@pytest.mark.parametrize("mode,axis,scale", [("inplane", "k", 2), ("throughplane", "j", 3), ("volumetric", "k", 2)])
def test_turned_back_exactly(mode, axis, scale):
    v = mni_region(shape_kji=(6, 20, 16))  # oblique, anisotropic
    one = super_resolve(v, model="bicubic", scale=scale, mode=mode, axis=axis)
    eight = super_resolve(v, model="bicubic", scale=scale, mode=mode, axis=axis, ensemble=8)
    assert eight.shape_ijk == one.shape_ijk and eight.spacing == one.spacing
    np.testing.assert_allclose(eight.origin, one.origin)
    np.testing.assert_allclose(eight.array, one.array, atol=1e-3)


def test_network_ensemble_is_no_worse_on_a_real_slice():
    hr = Volume(mni_array()[90:92, 40:200, 30:180].copy(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    lr = bicubic(hr, 2, axis="k")
    lr.meta.clear()
    peak = float(hr.array.max())
    single = psnr(super_resolve(lr, model="edsr", scale=2, axis="k").array, hr.array, peak)
    four = super_resolve(lr, model="edsr", scale=2, axis="k", ensemble=4, out_dtype="input")
    assert four.array.dtype == lr.array.dtype and four.meta["ensemble"].startswith("mean of 4")
    assert psnr(four.array.astype(np.float32), hr.array, peak) >= single - 0.05


def test_ensemble_size_is_checked():
    with pytest.raises(MedSRError, match="ensemble must be one of 1, 2, 4, 8"):
        super_resolve(mni_region(shape_kji=(2, 8, 8)), model="bicubic", ensemble=3)
