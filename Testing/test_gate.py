"""Do no harm: a through-plane network result is kept only when the network beats cubic B-spline on
held-out in-plane pairs of the same volume; otherwise the B-spline result is returned and the result
says so. An adaptation keeps its tuned weights only when they beat their start on those pairs."""
from __future__ import annotations

import os

import numpy as np
import pytest

from MedSRExtension import Volume, super_resolve
from MedSRExtension.core.degradations import thickslice
from MedSRExtension.inference.options import InferenceOptions
from MedSRExtension.inference.provenance import describe_run
from MedSRExtension.models.registry import build
from MedSRExtension.adapt.selfcheck import held_out_indices
from MedSRExtension.adapt import _keep_better
from MedSRExtension.adapt.finetune import warm_start
from MedSRExtension.adapt.profile import slice_profile
from MedSRExtension.evaluation.metrics import psnr
from sample_volumes import mni_array
from sample_zoo import REPO_MODELS as MODELS


@pytest.fixture(scope="module")
def thick():
    """Real MNI brain in contiguous 4 mm slices (the template's held-out region, thick-sliced)."""
    hr = Volume(mni_array()[60:140, 60:170, 50:150].copy(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    lr = thickslice(hr, 4, axis="k")
    return Volume(lr.array, lr.spacing, lr.origin, lr.direction)


def test_thin_slices_with_gaps_read_the_weights_trained_for_them_without_a_header():
    """1 mm slices every 4 mm, no thickness in the header: the estimated profile shows the gap, the run
    reads the weights trained on thin slices with gaps (where the contiguous-trained ones lose to
    B-spline), the self-check keeps them, and against the true volume they beat B-spline."""
    hr = Volume(mni_array()[60:140, 60:170, 50:150].copy(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    lr = thickslice(hr, 4, axis="k", thickness=1.0)
    gappy = Volume(lr.array, lr.spacing, lr.origin, lr.direction)
    out = super_resolve(gappy, model="pfmdn", mode="throughplane", scale=4)
    assert "estimated" in out.meta["profile"] and "gap" in out.meta["profile"] and "kept" in out.meta["gate"]
    record = describe_run(gappy, out, InferenceOptions(model="pfmdn", mode="throughplane", scale=4).to_dict())
    assert record["weights"] == "pfmdn-light-thickslice-gap-x1.5-4.safetensors", record["weights"]
    contiguous = super_resolve(gappy, model="pfmdn", mode="throughplane", scale=4, gate=False, consistency=False,
                               weights=os.path.join(MODELS, "pfmdn-light-thickslice-x1.5-6.safetensors"))
    plain = super_resolve(gappy, model="bspline", mode="throughplane", scale=4)
    scores = {name: psnr(hr.array, v.array, data_range=float(np.ptp(hr.array)))
              for name, v in (("gap", out), ("contiguous", contiguous), ("bspline", plain))}
    assert scores["gap"] > scores["bspline"] + 1.0 > scores["contiguous"] + 1.0, scores


def test_a_network_that_loses_to_bspline_is_replaced_and_the_result_says_so(thick):
    bad = super_resolve(thick, model="pfmdn", mode="throughplane", scale=4, weights="random", consistency=False)
    plain = super_resolve(thick, model="bspline", mode="throughplane", scale=4)
    np.testing.assert_array_equal(bad.array, plain.array)
    assert "replaced by B-spline" in bad.meta["gate"] and bad.meta["model_used"] == "bspline"
    # with a known slice thickness too the fallback is exactly the B-spline the gate compared the network with
    known = super_resolve(thick, model="pfmdn", mode="throughplane", scale=4, weights="random", thickness_mm=4.0)
    assert known.meta["model_used"] == "bspline" and known.meta["consistency"].startswith("not applied")
    np.testing.assert_array_equal(known.array, plain.array)
    record = describe_run(thick, bad, InferenceOptions(model="pfmdn", mode="throughplane", scale=4,
                                                       weights="random").to_dict())
    assert record["model"] == "bspline" and record["requested_model"] == "pfmdn" and "replaced" in record["gate"]


def test_the_shipped_network_is_kept_where_it_beats_bspline(thick):
    good = super_resolve(thick, model="pfmdn", mode="throughplane", scale=4)
    assert "kept" in good.meta["gate"] and "model_used" not in good.meta
    gain = float(good.meta["gate"].split("(")[1].split(")")[0])
    assert gain > 1.0, good.meta["gate"]
    off = super_resolve(thick, model="pfmdn", mode="throughplane", scale=4, gate=False)
    np.testing.assert_array_equal(good.array, off.array)
    assert "gate" not in off.meta


def test_adaptation_keeps_its_start_when_the_tuned_weights_are_worse(thick):
    options = InferenceOptions(model="pfmdn", mode="throughplane", scale=4.0, axis="k")
    profile = slice_profile(thick, "k", 4.0, estimate=False)
    worse = build("pfmdn", "light", (4.0, 1.0)).eval()  # what a tuning gone wrong could leave: untrained
    net, kept, check = _keep_better(thick, options, "k", 4.0, profile, worse)
    assert net is None and kept.startswith("start weights") and check.candidate.endswith("(start weights)")
    start, _ = warm_start("pfmdn", (4.0, 1.0))
    trained = _keep_better(thick, options, "k", 4.0, profile, start.eval())
    assert trained[2].psnr > check.bspline_psnr  # the shipped weights, in memory, beat B-spline as the route does


def test_held_out_slices_lie_inside_the_volume_and_apart():
    assert held_out_indices(2) == [] and held_out_indices(10) == [1, 3, 6, 8]
    idx = held_out_indices(100)
    assert len(idx) == 4 and min(idx) >= 10 and max(idx) < 90 and len(set(np.diff(idx))) <= 2
