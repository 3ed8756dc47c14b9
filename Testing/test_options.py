"""InferenceOptions and CompareOptions travel as JSON (worker processes, batch runs) and mean the same
on arrival; super_resolve's keywords and run_inference with the options give the same volume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from MedSRExtension import super_resolve
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume
from MedSRExtension.evaluation.compare import CompareOptions
from MedSRExtension.inference.engine import run_inference
from MedSRExtension.inference.options import InferenceOptions


def test_inference_options_survive_a_json_round_trip():
    opts = InferenceOptions(model="pfmdn", scale=(2, 2, 1), mode="volumetric", tile=64, batch=3, weights="random")
    back = InferenceOptions.from_dict(json.loads(json.dumps(opts.to_dict())))
    assert back == opts and back.scale == (2.0, 2.0, 1.0)


def test_unknown_or_bad_options_are_clear_errors():
    with pytest.raises(MedSRError, match="unknown option.*tiles"):
        InferenceOptions.from_dict({"model": "bicubic", "tiles": 3})
    with pytest.raises(MedSRError, match="tile must be a positive"):
        InferenceOptions(tile=0)
    with pytest.raises(MedSRError, match="mask must be 'foreground'"):
        CompareOptions(mask="brain")


def test_compare_options_round_trip():
    opts = CompareOptions(degradation="thickslice", scale=4, mode="throughplane", seg=None, save_volumes=True)
    assert CompareOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts


def test_keywords_and_options_give_the_same_volume():
    rng = np.random.default_rng(0)
    vol = Volume(rng.random((3, 10, 12)).astype(np.float32), spacing=(1.0, 1.0, 2.5))
    a = super_resolve(vol, model="bicubic", scale=2, mode="inplane", axis="auto", device="cpu", batch=2)
    b = run_inference(vol, InferenceOptions(model="bicubic", scale=2, device="cpu", batch=2))
    assert np.array_equal(a.array, b.array) and a.spacing == b.spacing


def test_the_adaptation_rules_are_the_options_own():
    """--save-adapted needs --adapt, and adapting needs a network that runs per-axis factors: refused when
    the options are made (CLI, batch, worker and panel alike), before any input is read."""
    with pytest.raises(MedSRError, match="--save-adapted needs --adapt"):
        InferenceOptions(model="pfmdn", mode="throughplane", save_adapted="tuned.safetensors")
    with pytest.raises(MedSRError, match="needs a network that runs per-axis factors \\(pfmdn\\), not edsr"):
        InferenceOptions(model="edsr", mode="throughplane", adapt=True)
    with pytest.raises(MedSRError, match="unknown model"):
        InferenceOptions(model="nosuchnet", mode="throughplane", adapt=True)
    for model in ("pfmdn", "bicubic"):  # bicubic: the default model, which adapts pfmdn
        assert InferenceOptions(model=model, mode="throughplane", adapt=2.0, save_adapted="t.safetensors").adapt == 2.0
