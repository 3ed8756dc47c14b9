"""Slice thickness estimated from the volume itself when no header says it (adapt.profile_estimate)."""
from __future__ import annotations

import numpy as np
import pytest

from MedSRExtension import MedSRError, Volume, super_resolve
from MedSRExtension.core.degradations import thickslice
from MedSRExtension.adapt import AdaptOptions, slice_profile
from MedSRExtension.adapt.profile_estimate import estimate_thickness
from sample_volumes import mni_array


@pytest.fixture(scope="module")
def brain() -> Volume:
    return Volume(mni_array().copy(), spacing=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("factor, gap", [(2, 0.0), (4, 0.0), (6, 0.0), (4, 1.0), (4, -1.0)])
def test_axial_thickness_is_estimated_within_ten_percent(brain, factor, gap):
    """Measured on the whole MNI brain, axial thick slices: 1.92 (2), 4.07 (4), 6.31 (6), 3.13 (4, gap 1),
    5.07 (4, overlap 1) mm; the bound is the error a clinician can live with, not a tuned one."""
    lr = thickslice(brain, factor, axis="k", gap=gap)
    true = factor - gap
    assert estimate_thickness(lr, "k") == pytest.approx(true, rel=0.10)


def test_thicker_slices_give_a_thicker_estimate(brain):
    estimates = [estimate_thickness(thickslice(brain, 4, axis="k", thickness=t), "k") for t in (2.0, 4.0, 6.0)]
    assert estimates[0] < estimates[1] < estimates[2]


def test_the_profile_says_it_was_estimated_and_the_header_and_caller_win(brain):
    lr = thickslice(brain, 4, axis="k", gap=1.0)  # 3 mm slices every 4 mm; no header
    guessed = slice_profile(lr, "k", 4.0)
    assert "the volume itself (estimated" in guessed.source and guessed.thickness_mm == pytest.approx(3.0, rel=0.1)
    assert "gap" in guessed.describe()
    off = slice_profile(lr, "k", 4.0, estimate=False)
    assert off.thickness_mm == pytest.approx(lr.spacing[2]) and "assumed contiguous" in off.source
    lr.meta.update(thickness_ijk=(None, None, 3.5), thickness_source="NRRD thicknesses field")
    assert slice_profile(lr, "k", 4.0).thickness_mm == 3.5
    assert slice_profile(lr, "k", 4.0, thickness_mm=2.5).source == "the caller"


def test_a_volume_too_thin_to_tell_falls_back_to_contiguous():
    vol = Volume(mni_array()[60:63].copy(), spacing=(1.0, 1.0, 4.0))  # three slices
    assert estimate_thickness(vol, "k") is None
    assert "assumed contiguous" in slice_profile(vol, "k", 2.0).source
    flat = Volume(np.zeros((8, 16, 16), np.float32), spacing=(1.0, 1.0, 4.0))
    assert estimate_thickness(flat, "k") is None


def test_an_adapted_run_reports_the_estimate_it_used(brain):
    lr = thickslice(Volume(mni_array()[40:72, 96:128, 60:92].copy(), spacing=(1.0, 1.0, 1.0)), 4, axis="k")
    out = super_resolve(lr, model="pfmdn", scale=4, mode="throughplane", axis="k",
                        adapt=AdaptOptions(steps=1, minutes=None))
    assert "from the volume itself (estimated" in out.meta["adapt"]["profile"]
    with pytest.raises(MedSRError, match="positive"):
        slice_profile(lr, "k", 4.0, thickness_mm=-1.0)
