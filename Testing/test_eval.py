"""``medsr eval`` on a tiny validation region: CSV, Markdown and figure with the expected rows."""
import csv
import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from MedSRExtension.cli import main
from MedSRExtension.evaluation.heldout import psnr_ssim_in_window, validation_set
from MedSRExtension.models.registry import build
from MedSRExtension.zoo.weights import ENV


@pytest.fixture
def zoo_with_edsr(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = build("edsr", "light", 2)
    path = tmp_path / "models" / "edsr-light-x2.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    entry = {"name": "edsr-light-x2", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
             "architecture": "edsr", "preset": "light", "scales": [2], "degradation": "bicubic", "val_psnr": 1.0}
    (path.parent / "models.json").write_text(json.dumps({"models": [entry]}), encoding="utf-8")
    monkeypatch.setenv(ENV, str(path.parent))
    return path.parent


def test_eval_writes_csv_markdown_and_figure(zoo_with_edsr, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["eval", "--models", "edsr", "--scales", "2", "--crop", "36", "--images", "ct693,mr2",
               "--out", str(out), "--quiet"])
    assert rc == 0
    with open(out / "eval.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    methods = ["nearest", "bicubic", "bspline", "edsr"]
    per_image = [r for r in rows if r["image"] != "mean"]
    assert sorted((r["image"], r["method"]) for r in per_image) == sorted(
        (i, m) for i in ("ct693", "mr2") for m in methods)
    means = {r["method"]: r for r in rows if r["image"] == "mean"}
    assert set(means) == set(methods)
    for m in methods:
        vals = [float(r["psnr_db"]) for r in per_image if r["method"] == m]
        assert float(means[m]["psnr_db"]) == pytest.approx(np.mean(vals), abs=2e-3)
    # the baselines behave as known: bicubic beats nearest on real images
    assert float(means["bicubic"]["psnr_db"]) > float(means["nearest"]["psnr_db"])
    md = (out / "eval.md").read_text(encoding="utf-8")
    assert "### ×2" in md and all(f"| {m} |" in md for m in methods)
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "vs bicubic" in capsys.readouterr().out


def test_eval_refuses_a_network_without_weights_for_the_scale(zoo_with_edsr, tmp_path, capsys):
    rc = main(["eval", "--models", "edsr", "--scales", "4", "--crop", "36", "--images", "ct693",
               "--out", str(tmp_path / "e"), "--quiet"])
    assert rc == 2
    assert "no trained weights for 'edsr'" in capsys.readouterr().err
    assert not (tmp_path / "e" / "eval.csv").exists()


def test_score_is_perfect_for_the_reference_and_drops_with_error():
    hr = validation_set((2.0, 2.0), crop=48, names=["mr2"])[0].hr
    p, s = psnr_ssim_in_window(hr, hr)
    assert p > 90 and s == pytest.approx(1.0)
    noisy = hr + np.random.default_rng(0).normal(0, 0.05 * hr.std(), hr.shape).astype(np.float32)
    assert psnr_ssim_in_window(noisy, hr)[0] < p


def test_eval_scores_both_weight_families_on_both_degradations(tmp_path, monkeypatch, capsys):
    """A zoo with bicubic and scanner weights for edsr x2: one report per degradation, each scoring
    edsr and edsr:scanner, the scanner file sha256-checked; a family without weights is said."""
    torch.manual_seed(0)
    models = tmp_path / "models"
    models.mkdir()
    entries = []
    for fam in ("bicubic", "scanner"):
        path = models / f"edsr-light-{fam}-x2.safetensors"
        save_file({k: v.contiguous() for k, v in build("edsr", "light", 2).state_dict().items()}, str(path))
        entries.append({"name": path.stem, "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "architecture": "edsr", "preset": "light", "scales": [2], "degradation": fam,
                        "val_psnr": 1.0})
    (models / "models.json").write_text(json.dumps({"models": entries}), encoding="utf-8")
    monkeypatch.setenv(ENV, str(models))
    out = tmp_path / "eval"
    rc = main(["eval", "--models", "edsr", "--scales", "2", "--crop", "36", "--images", "ctneck",
               "--degradation", "bicubic,scanner", "--families", "bicubic,scanner", "--out", str(out), "--quiet"])
    assert rc == 0
    scores = {}
    for deg in ("bicubic", "scanner"):
        with open(out / deg / "eval.csv", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["image"] == "ctneck"]
        assert {r["method"] for r in rows} == {"nearest", "bicubic", "bspline", "edsr", "edsr:scanner"}
        assert {r["degradation"] for r in rows} == {deg}
        scores[deg] = {r["method"]: float(r["psnr_db"]) for r in rows}
    # a scanner LR (noise, PSF) is harder to undo than a bicubic one, for every method
    assert scores["scanner"]["bicubic"] < scores["bicubic"]["bicubic"] - 1
    printed = capsys.readouterr().out
    assert "scanner  x2 edsr:scanner" in printed
    # a family without a file at one of the scales is left out there, and the report (figure included) is
    # still written
    x4 = models / "edsr-light-bicubic-x4.safetensors"
    save_file({k: v.contiguous() for k, v in build("edsr", "light", 4).state_dict().items()}, str(x4))
    entries.append({"name": x4.stem, "file": x4.name, "sha256": hashlib.sha256(x4.read_bytes()).hexdigest(),
                    "architecture": "edsr", "preset": "light", "scales": [4], "degradation": "bicubic",
                    "val_psnr": 1.0})
    (models / "models.json").write_text(json.dumps({"models": entries}), encoding="utf-8")
    assert main(["eval", "--models", "edsr", "--scales", "2,4", "--crop", "36", "--images", "ctneck",
                 "--families", "bicubic,scanner", "--out", str(tmp_path / "e4"), "--quiet"]) == 0
    assert (tmp_path / "e4" / "eval.png").stat().st_size > 0
    assert "edsr:scanner x4: left out" in capsys.readouterr().err
    (models / "edsr-light-scanner-x2.safetensors").write_bytes(b"corrupt")
    assert main(["eval", "--models", "edsr", "--scales", "2", "--crop", "36", "--images", "ctneck",
                 "--families", "scanner", "--out", str(tmp_path / "e2"), "--quiet"]) == 2
    assert "corrupt" in capsys.readouterr().err
