"""``medsr export``: every network's ONNX graph gives torch's output (ONNX Runtime, CPU provider) on a real
slice, with the weights' sha256 and model card beside it; bad requests fail cleanly and leave nothing."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import onnxruntime as ort
import pytest
import torch

from MedSRExtension.cli import main
from MedSRExtension.core.intensity import normalize
from MedSRExtension.data.corpus import validation_regions
from MedSRExtension.zoo import weights as zoo
from MedSRExtension.zoo.export import FixedScale


def _real_slice(h: int, w: int) -> np.ndarray:
    """A held-out CT crop (not the slice the exporter verifies on), normalised as the engine does."""
    ct = next(r.array for r in validation_regions() if r.name == "ct693")
    return np.ascontiguousarray(normalize(ct[200:200 + h, 10:10 + w])[0], dtype=np.float32)


def _onnx(path: str, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x[None, None]})[0]


def _torch(model: str, scale: int, x: np.ndarray) -> np.ndarray:
    net = zoo.load_network(model, scale)
    if model == "pfmdn":
        net = FixedScale(net, (scale, scale))
    with torch.no_grad():
        return net(torch.from_numpy(x)[None, None]).numpy()


@pytest.mark.parametrize("model,scale", [("edsr", 2), ("lgsr", 2), ("iconet", 4), ("pfmdn", 3)])
def test_export_matches_torch_on_a_real_slice_with_sha256_and_card(tmp_path, model, scale):
    out = tmp_path / f"{model}.onnx"
    assert main(["export", model, "--scale", str(scale), "--size", "40,48", "--out", str(out)]) == 0
    x = _real_slice(40, 48)
    got = _onnx(str(out), x)
    assert got.shape == (1, 1, 40 * scale, 48 * scale)
    assert np.abs(got - _torch(model, scale, x)).max() <= 1e-4
    meta = json.loads((tmp_path / f"{model}.json").read_text(encoding="utf-8"))
    entry = zoo.find_weights(model, scale)
    assert meta["weights_sha256"] == entry["sha256"] and meta["scale"] == scale
    assert meta["verified_max_abs_diff"] <= 1e-4
    card = os.path.join(zoo.models_dir(), entry["card"])
    assert (tmp_path / f"{model}.md").read_text(encoding="utf-8") == open(card, encoding="utf-8").read()
    assert sorted(os.listdir(tmp_path)) == sorted(f"{model}{ext}" for ext in (".onnx", ".json", ".md"))
    modes = {ext: stat.S_IMODE((tmp_path / f"{model}{ext}").stat().st_mode) for ext in (".onnx", ".json", ".md")}
    assert len(set(modes.values())) == 1, modes  # the model file follows the umask as its companions do


def test_dynamic_export_runs_any_slice_size(tmp_path):
    out = tmp_path / "edsr-x2.onnx"
    assert main(["export", "edsr", "--scale", "2", "--dynamic", "--size", "32,32", "--out", str(out)]) == 0
    for h, w in ((40, 48), (57, 33)):
        x = _real_slice(h, w)
        got = _onnx(str(out), x)
        assert got.shape == (1, 1, 2 * h, 2 * w)
        assert np.abs(got - _torch("edsr", 2, x)).max() <= 1e-4


@pytest.mark.parametrize("argv,message", [
    (["pfmdn", "--scale", "2.5"], "integer scale"),
    (["lgsr", "--scale", "2", "--dynamic"], "dynamic size"),
    (["edsr", "--scale", "3"], "no shipped weights"),
    (["bicubic", "--scale", "2"], "classical"),
])
def test_bad_requests_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "m.onnx"
    assert main(["export", *argv, "--size", "32,32", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_missing_output_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "edsr", "--scale", "2", "--out", str(tmp_path / "nope" / "m.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
