"""scripts/publish_weights.py: a continued run's card and models.json entry count every training stage."""
from __future__ import annotations

import csv
import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _publisher():
    spec = importlib.util.spec_from_file_location("publish_weights", os.path.join(ROOT, "scripts", "publish_weights.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_continuation_adds_its_stage_to_the_shipped_entry(tmp_path):
    pub = _publisher()
    index = tmp_path / "models.json"
    shipped = {"name": "lgsr-light-x2", "file": "lgsr-light-x2.safetensors", "iterations": 2200,
               "train_minutes": 41.2, "hardware": "shared CPU"}
    index.write_text(json.dumps({"models": [shipped]}))
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
    with open(old, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["iter", "loss", "val_psnr"])
        w.writeheader()
        w.writerows([{"iter": 10, "loss": 0.1, "val_psnr": ""}, {"iter": 20, "loss": 0.09, "val_psnr": 30.0}])
    rows = pub._joined_log(str(old), [{"iter": "10", "loss": "0.05", "val_psnr": ""}])
    assert [int(r["iter"]) for r in rows] == [10, 20, 30]
    assert pub._joined_log(None, rows[-1:]) == rows[-1:]
