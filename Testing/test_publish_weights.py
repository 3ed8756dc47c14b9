"""scripts/publish_weights.py: a continued run's card and models.json entry count every training stage."""
from __future__ import annotations

import csv
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _publisher():
    spec = importlib.util.spec_from_file_location("publish_weights",
                                                  os.path.join(ROOT, "scripts", "publish_weights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_continuation_adds_its_stage_to_the_shipped_entry(tmp_path):
    pub = _publisher()
    index = tmp_path / "models.json"
    shipped = {"name": "lgsr-light-x2", "file": "lgsr-light-x2.safetensors", "iterations": 2200,
               "train_minutes": 41.2, "hardware": "shared CPU"}
    index.write_text(json.dumps({"models": [shipped]}), encoding="utf-8")
    cfg = {"init": "Resources/Models/lgsr-light-x2.safetensors", "lr": 3e-4, "out": "runs/stage2"}
    prior = pub._prior_entry(cfg, str(index))
    assert prior["name"] == "lgsr-light-x2"
    stages = pub._stages(prior, {"iterations": 6000, "train_seconds": 3000.0}, cfg, "idle CPU")
    assert [s["iterations"] for s in stages] == [2200, 6000]
    assert [s["minutes"] for s in stages] == [41.2, 50.0]
    # publishing the same run again (its entry is now the prior one) replaces its stage
    again = pub._stages(dict(shipped, stages=stages), {"iterations": 6000, "train_seconds": 3000.0}, cfg, "idle CPU")
    assert [s["iterations"] for s in again] == [2200, 6000]
    # a run from scratch (or from a file that is not shipped) is a single stage
    assert pub._prior_entry({"init": None}, str(index)) is None
    assert pub._prior_entry({"init": "runs/other/best.safetensors"}, str(index)) is None
    assert len(pub._stages(None, {"iterations": 10, "train_seconds": 60.0}, cfg, "cpu")) == 1


def test_curve_log_continues_the_iteration_count_of_the_earlier_stage(tmp_path):
    pub = _publisher()
    old = tmp_path / "log.csv"
    with open(old, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["iter", "loss", "val_psnr"])
        w.writeheader()
        w.writerows([{"iter": 10, "loss": 0.1, "val_psnr": ""}, {"iter": 20, "loss": 0.09, "val_psnr": 30.0}])
    rows = pub._joined_log(str(old), [{"iter": "10", "loss": "0.05", "val_psnr": ""}])
    assert [int(r["iter"]) for r in rows] == [10, 20, 30]
    assert pub._joined_log(None, rows[-1:]) == rows[-1:]


def test_a_thickslice_run_is_published_as_through_plane_weights_the_engine_routes_to(tmp_path, monkeypatch):
    """A tiny real thickslice training run (1.5x1, 2x1, 3x1, warm-started from the shipped pfmdn) gives a
    through-plane entry: its factors, range [1, 3], validation on thick slices at x2 and x3 against cubic
    interpolation along the thick axis, a card that says so, and the engine's route reads it."""
    import torch
    from MedSRExtension.training import TrainConfig, train
    from MedSRExtension.zoo import weights as zoo
    from sample_zoo import REPO_MODELS, shipped_entries
    torch.set_num_threads(1)
    run, models = tmp_path / "ts-run", tmp_path / "models"
    models.mkdir()
    shipped = [e for e in shipped_entries() if e["architecture"] == "pfmdn"]
    (models / "models.json").write_text(json.dumps({"models": shipped}), encoding="utf-8")
    train(TrainConfig(model="pfmdn", out=str(run), scales=[[1.5, 1.0], [2.0, 1.0], [3.0, 1.0]],
                      degradation="thickslice", iters=2, batch=2, patch=12, warmup=1, val_every=2, val_crop=48,
                      threads=1, init=os.path.join(REPO_MODELS, shipped[0]["file"])), progress=False)
    assert _publisher().main([str(run), "--models-dir", str(models), "--crop", "48", "--hardware", "a test CPU"]) == 0
    entries = {e["name"]: e for e in json.loads((models / "models.json").read_text(encoding="utf-8"))["models"]}
    assert entries[shipped[0]["name"]] == shipped[0]  # the bicubic entry is untouched
    e = entries["pfmdn-light-thickslice-x1.5-3"]
    assert (e["scales"], e["scale_range"], e["degradation"]) == ([1.5, 2, 3], [1.0, 3.0], "thickslice")
    assert sorted(e["val"]) == ["2", "3"] and e["val_psnr"] == e["val"]["2"]["psnr"]
    assert e["val"]["2"]["bicubic_psnr"] > e["val"]["3"]["bicubic_psnr"] > 20  # cubic along the thick axis
    assert e["stages"][-1]["degradation"] == "thickslice" and e["stages"][0]["degradation"] == "bicubic"
    assert e["sha256"] == zoo.sha256(str(models / e["file"]))
    text = (models / e["card"]).read_text(encoding="utf-8")
    assert "through-plane passes (f, 1) for f in [1, 3]" in text and "| ×3×1 |" in text
    assert "cubic along the thick axis PSNR" in text and "Trained on simulated thick slices from the corpus" in text
    assert "bicubic-degraded" not in text and "antialiased bicubic downsampling" not in text
    monkeypatch.setenv(zoo.ENV, str(models))
    assert zoo.find_weights("pfmdn", (2.5, 1.0))["name"] == e["name"]  # what --mode throughplane reads
    assert zoo.find_weights("pfmdn", (2.0, 2.0))["name"] == shipped[0]["name"]


def test_a_thin_slice_run_is_published_with_its_thickness_range_and_read_for_slices_with_gaps(tmp_path, monkeypatch):
    import torch
    from MedSRExtension.training import TrainConfig, train
    from MedSRExtension.zoo import weights as zoo
    from sample_zoo import REPO_MODELS
    torch.set_num_threads(1)
    run, models = tmp_path / "gap-run", tmp_path / "models"
    models.mkdir()
    with open(os.path.join(REPO_MODELS, "models.json"), encoding="utf-8") as f:
        contiguous = [e for e in json.load(f)["models"] if e["name"] == "pfmdn-light-thickslice-x1.5-6"]
    (models / "models.json").write_text(json.dumps({"models": contiguous}), encoding="utf-8")
    os.symlink(os.path.join(REPO_MODELS, contiguous[0]["file"]), models / contiguous[0]["file"])
    train(TrainConfig(model="pfmdn", out=str(run), scales=[[2.0, 1.0], [3.0, 1.0]], degradation="thickslice",
                      thickness=[0.2, 0.6], iters=2, batch=2, patch=12, warmup=1, val_every=2, val_crop=48,
                      threads=1, init=os.path.join(REPO_MODELS, contiguous[0]["file"])), progress=False)
    assert _publisher().main([str(run), "--models-dir", str(models), "--crop", "48", "--hardware", "a test CPU"]) == 0
    entries = {e["name"]: e for e in json.loads((models / "models.json").read_text(encoding="utf-8"))["models"]}
    e = entries["pfmdn-light-thickslice-gap-x2-3"]
    assert e["thickness"] == [0.2, 0.6] and e["val_thickness"] == pytest.approx(0.4)
    assert e["stages"][-1]["degradation"] == "thickslice, thickness 0.2-0.6"
    assert "t drawn in [0.2, 0.6] per batch: thin slices with gaps" in (models / e["card"]).read_text(encoding="utf-8")
    monkeypatch.setenv(zoo.ENV, str(models))
    assert zoo.find_weights("pfmdn", (3.0, 1.0), thickness=0.3)["name"] == e["name"]
    assert zoo.find_weights("pfmdn", (3.0, 1.0))["name"] == contiguous[0]["name"]


def test_validation_grid_is_exact_at_a_factor_that_does_not_divide_twelve():
    from MedSRExtension.evaluation.heldout import validation_set
    (item,) = validation_set((5.0, 1.0), "thickslice", crop=72, names=["ct693"])
    assert item.hr.shape == (60, 72) and item.lr.shape == (12, 72)
    (item,) = validation_set((2.0, 2.0), "bicubic", crop=72, names=["ct693"])  # square scales as before
    assert item.hr.shape == (72, 72) and item.lr.shape == (36, 36)


def test_a_scanner_run_is_published_as_its_own_family_and_only_if_it_beats_what_it_replaces(tmp_path, monkeypatch):
    """A tiny real scanner-degradation run of edsr x2: entry edsr-light-scanner-x2 (validated on the scanner
    draws, against bicubic of the same LR), read only when a run asks for that family; publishing it
    again with --only-if-better (it would replace an equal file) is refused and changes nothing."""
    import torch
    from MedSRExtension.training import TrainConfig, train
    from MedSRExtension.zoo import weights as zoo
    from sample_zoo import REPO_MODELS, shipped_entries
    torch.set_num_threads(1)
    run, models = tmp_path / "scanner-run", tmp_path / "models"
    models.mkdir()
    shipped = [e for e in shipped_entries() if e["name"] == "edsr-light-x2"]
    (models / "models.json").write_text(json.dumps({"models": shipped}), encoding="utf-8")
    os.symlink(os.path.join(REPO_MODELS, shipped[0]["file"]), models / shipped[0]["file"])
    train(TrainConfig(model="edsr", out=str(run), scales=[[2.0, 2.0]], degradation="scanner", iters=2, batch=2,
                      patch=12, warmup=1, val_every=2, val_crop=48, threads=1,
                      init=os.path.join(REPO_MODELS, shipped[0]["file"])), progress=False)
    publish = [str(run), "--models-dir", str(models), "--crop", "48", "--hardware", "a test CPU"]
    assert _publisher().main(publish) == 0
    entries = {e["name"]: e for e in json.loads((models / "models.json").read_text(encoding="utf-8"))["models"]}
    e = entries["edsr-light-scanner-x2"]
    assert e["degradation"] == "scanner" and e["stages"][-1]["degradation"] == "scanner"
    assert e["val"]["2"]["bicubic_psnr"] < 35  # bicubic of scanner LR images (noise, PSF) scores low
    assert "core/scanner_degradation.py" in (models / e["card"]).read_text(encoding="utf-8")
    monkeypatch.setenv(zoo.ENV, str(models))
    assert zoo.find_weights("edsr", (2.0, 2.0))["name"] == "edsr-light-x2"  # bicubic stays the default
    assert zoo.find_weights("edsr", (2.0, 2.0), family="scanner")["name"] == "edsr-light-scanner-x2"
    before = (models / "models.json").read_bytes()
    with pytest.raises(SystemExit, match="not published: the run does not beat edsr-light-scanner-x2"):
        _publisher().main(publish + ["--only-if-better"])
    assert (models / "models.json").read_bytes() == before


def test_a_run_asked_for_the_scanner_family_reads_its_weights_or_says_there_are_none(tmp_path, monkeypatch):
    import numpy as np
    from MedSRExtension.core.errors import MedSRError
    from MedSRExtension.core.volume import Volume
    from MedSRExtension.data.corpus import validation_regions
    from MedSRExtension.inference.provenance import describe_run
    from MedSRExtension.pipeline import super_resolve
    from MedSRExtension.zoo import weights as zoo
    from sample_zoo import REPO_MODELS, shipped_entries
    models = tmp_path / "models"
    models.mkdir()
    bicubic = next(e for e in shipped_entries() if e["name"] == "edsr-light-x2")
    os.symlink(os.path.join(REPO_MODELS, bicubic["file"]), models / bicubic["file"])
    (models / "models.json").write_text(json.dumps({"models": [bicubic]}), encoding="utf-8")
    monkeypatch.setenv(zoo.ENV, str(models))
    vol = Volume(next(r.array for r in validation_regions() if r.name == "ctneck")[:40, :40][None].copy())
    with pytest.raises(MedSRError, match="no trained weights of the scanner family for 'edsr'"):
        super_resolve(vol, model="edsr", scale=(2, 2, 1), device="cpu", trained_on="scanner")
    scanner = dict(bicubic, name="edsr-light-scanner-x2", file="edsr-light-scanner-x2.safetensors",
                   degradation="scanner")
    os.symlink(os.path.join(REPO_MODELS, bicubic["file"]), models / scanner["file"])
    (models / "models.json").write_text(json.dumps({"models": [bicubic, scanner]}), encoding="utf-8")
    options = dict(model="edsr", scale=(2, 2, 1), device="cpu", trained_on="scanner")
    out = super_resolve(vol, **options)
    assert describe_run(vol, out, options)["weights"] == "edsr-light-scanner-x2.safetensors"
    plain = super_resolve(vol, model="edsr", scale=(2, 2, 1), device="cpu")
    np.testing.assert_array_equal(out.array, plain.array)  # the same tensors under another name here
    assert describe_run(vol, plain, dict(options, trained_on="bicubic"))["weights"] == "edsr-light-x2.safetensors"


def test_refresh_cards_rewrites_the_validation_from_models_json_and_keeps_the_training_part(tmp_path):
    """After a re-measurement (models.json val changed) the shipped card shows the new figures and the note,
    its training section untouched; a second refresh changes nothing."""
    import shutil
    pub = _publisher()
    models = tmp_path / "Models"
    src = os.path.join(ROOT, "Resources", "Models")
    os.makedirs(models / "cards")
    data = json.load(open(os.path.join(src, "models.json"), encoding="utf-8"))
    entry = next(e for e in data["models"] if e["name"] == "lgsr-light-x2")
    shutil.copy(os.path.join(src, entry["card"]), models / entry["card"])
    training = (models / entry["card"]).read_text(encoding="utf-8").split("## Validation")[0]
    entry = dict(entry, val={"2": {"psnr": 12.345, "ssim": 0.5, "bicubic_psnr": 10.0, "bicubic_ssim": 0.4}},
                 val_note="re-measured somewhere else")
    (models / "models.json").write_text(json.dumps({"models": [entry]}), encoding="utf-8")
    assert pub.main(["--refresh-cards", "--models-dir", str(models)]) == 0
    text = (models / entry["card"]).read_text(encoding="utf-8")
    assert text.startswith(training)
    assert "| ×2 | 12.35 | 0.5000 | 10.00 | +2.35 |" in text
    assert "These figures were re-measured somewhere else." in text
    assert "ct693" in text and "nmbody" in text  # the validation regions of the whole corpus
    assert pub.main(["--refresh-cards", "--models-dir", str(models)]) == 0
    assert (models / entry["card"]).read_text(encoding="utf-8") == text
