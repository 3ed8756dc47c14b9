"""Data consistency of through-plane results (core/slice_consistency.py): the result re-degraded with the
slice profile reproduces the input slices, on the MNI template's held-out slab."""
import numpy as np
import pytest

from MedSRExtension.core.degradations import thickslice
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume
from MedSRExtension.data import corpus
from MedSRExtension.evaluation.metrics import psnr
from MedSRExtension.inference.provenance import describe_run
from MedSRExtension.pipeline import super_resolve
from MedSRExtension.core.slice_consistency import project, residual_db, spread_weights


@pytest.fixture(scope="module")
def slab():
    """HR truth (24 slices of the held-out slab) and its x4 contiguous thick slices along k."""
    k0, k1 = corpus.MNI_VAL_SLAB
    hr = corpus.read("mni")[k0:k1, 60:124, 50:114].copy()
    return hr, np.asarray(thickslice(hr, 4, axis="k"), dtype=np.float32)


def test_the_truth_is_already_consistent_and_stays_as_it_is(slab):
    hr, lr = slab
    assert residual_db(lr, hr, 0, 4.0) > 100
    np.testing.assert_allclose(project(lr, hr, 0, 4.0), hr, atol=1e-2)


def test_back_projection_reproduces_the_input_and_brings_bspline_closer_to_the_truth(slab):
    hr, lr = slab
    bs = super_resolve(Volume(lr, spacing=(1, 1, 4)), model="bspline", scale=4, mode="throughplane", axis="k",
                       device="cpu").array
    before = lr.copy()
    dc = project(lr, bs, 0, 4.0)
    np.testing.assert_array_equal(lr, before)
    assert residual_db(lr, dc, 0, 4.0) > residual_db(lr, bs, 0, 4.0) + 10
    rng = float(np.ptp(hr))
    assert psnr(dc, hr, data_range=rng) > psnr(bs, hr, data_range=rng) + 0.5


def test_the_spread_interpolates_between_slice_centres():
    u = spread_weights(8, 2)  # centres at output 1.5 and 5.5
    np.testing.assert_allclose(u.sum(axis=1), 1.0)
    np.testing.assert_allclose(u[:, 0], [1, 1, 0.875, 0.625, 0.375, 0.125, 0, 0])


def test_a_result_that_is_not_the_input_grid_along_the_other_axes_is_refused(slab):
    _, lr = slab
    with pytest.raises(MedSRError, match="differ only along axis 0"):
        project(lr, np.zeros((24, 64, 63), np.float32), 0, 4.0)


def test_a_through_plane_network_run_is_made_consistent_and_says_so(slab):
    hr, lr = slab
    vol = Volume(lr, spacing=(1, 1, 4))
    kw = dict(model="pfmdn", scale=4, mode="throughplane", axis="k", device="cpu", gate=False, thickness_mm=4.0)
    raw = super_resolve(vol, consistency=False, **kw)
    out = super_resolve(vol, **kw)
    assert "consistency" not in raw.meta
    assert "back-projection" in out.meta["consistency"]
    assert residual_db(lr, out.array, 0, 4.0) > residual_db(lr, raw.array, 0, 4.0) + 5
    assert float(np.abs(out.array - raw.array).max()) > 0
    rng = float(np.ptp(hr))
    assert psnr(out.array, hr, data_range=rng) > psnr(raw.array, hr, data_range=rng)
    record = describe_run(vol, out, {**kw, "consistency": True})
    assert record["consistency"] == out.meta["consistency"]
    # a classical model the user asked for is returned as that interpolation, untouched
    assert "consistency" not in super_resolve(vol, **{**kw, "model": "bspline"}).meta


def test_without_a_known_slice_thickness_the_result_is_left_as_the_network_made_it(slab):
    """No header, no caller's thickness: the profile is an estimate, and enforcing it was measured to
    cost quality (scripts/measure_consistency.py), so the step is skipped and the result says why."""
    _, lr = slab
    vol = Volume(lr, spacing=(1, 1, 4))
    kw = dict(model="pfmdn", scale=4, mode="throughplane", axis="k", device="cpu", gate=False)
    out = super_resolve(vol, **kw)
    assert out.meta["consistency"].startswith("not applied: the slice thickness was not given")
    np.testing.assert_array_equal(out.array, super_resolve(vol, consistency=False, **kw).array)


def test_the_self_check_measures_the_step_on_its_held_out_pairs_and_the_run_follows_it(slab):
    """With a known thickness the gate's report carries the held-out pairs' PSNR of the network before and
    after the step; a kept network result is made consistent only where the pairs measured it no worse,
    and the gate's B-spline fallback is handed over exactly as the gate compared it."""
    from MedSRExtension.adapt.selfcheck import GateReport, self_check
    from MedSRExtension.inference.options import InferenceOptions
    from MedSRExtension.pipeline import _consistent, _gate_profile
    _, lr = slab
    vol = Volume(lr, spacing=(1, 1, 4))
    options = InferenceOptions(model="pfmdn", scale=4, mode="throughplane", axis="k", device="cpu", thickness_mm=4.0)
    found = _gate_profile(vol, options)
    axis, factor, profile = found
    report = self_check(vol, options, axis, factor, profile.thickness, profile.shape)
    assert report.passed and report.consistent_psnr is not None
    out = super_resolve(vol, **options.to_dict())
    assert ("back-projection" in out.meta["consistency"]) == report.consistency_pays
    plain = super_resolve(vol, model="bspline", scale=4, mode="throughplane", axis="k", device="cpu")
    costs = GateReport("pfmdn", 31.0, 30.0, 8, consistent_psnr=30.8)
    assert costs.passed and costs.consistency_pays is False
    kept = _consistent(vol, options, plain, found, costs)
    np.testing.assert_array_equal(kept.array, plain.array)
    assert kept.meta["consistency"] == "not applied: on the self-check's held-out pairs it made pfmdn worse (31.00 -> 30.80 dB)"
    pays = GateReport("pfmdn", 31.0, 30.0, 8, consistent_psnr=31.2)
    assert pays.consistency_pays is True
    assert "back-projection" in _consistent(vol, options, plain, found, pays).meta["consistency"]
    fallback = GateReport("pfmdn", 29.0, 30.0, 8, consistent_psnr=35.0)
    assert fallback.consistency_pays is False
    untouched = _consistent(vol, options, plain, found, fallback)
    np.testing.assert_array_equal(untouched.array, plain.array)
    assert untouched.meta["consistency"] == "not applied: the self-check returned B-spline, exactly as it compared it"
