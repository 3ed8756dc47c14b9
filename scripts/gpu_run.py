"""The one prepared GPU run (`scripts/gpu_run.sh` calls it): everything a lent GPU machine is for,
in one command that fits its time, every product in one folder (``--out``, the device tool's $OUT).

1. train: each network (edsr, lgsr, iconet, pfmdn) fine-tuned at x2 from its shipped weights for a fixed
   wall-time budget (bf16 autocast where the model allows; the iteration count comes from a short
   timed probe), on the corpus of DESIGN.md only;
2. verify: each run's best EMA weights against the shipped file on the validation regions (the
   training's own validator); ``<model>-x2.safetensors`` is kept in --out only when it is better;
3. throughput: 256² slices per second per network (bf16, a batch of 8), as the engine runs them;
4. OOM fallback: a slice far too large with a huge tile, which must finish through the engine's tile
   halving (or its CPU fallback), with what the engine said;
5. agreement: one real MNI slice on the CPU and on the GPU in fp32, the max difference (target <= 1e-3
   in normalised units).

``summary.json`` holds all of it. ``--tiny`` runs every step on the CPU in seconds (the test suite does,
so the first GPU run works); figures from --tiny mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

NETWORKS = ("edsr", "lgsr", "iconet", "pfmdn")


def _device(tiny: bool) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")


def _shipped(model: str) -> str:
    from MedSRExtension.zoo import weights as zoo
    entry = zoo.find_weights(model, (2.0, 2.0))
    return zoo.verify(entry)


def train_one(model: str, out: Path, budget_s: float, tiny: bool) -> dict:
    """Fine-tune ``model`` at x2 from its shipped weights for about ``budget_s`` seconds."""
    from MedSRExtension.training.trainer import TrainConfig, train
    run = out / f"train-{model}"
    base = dict(model=model, out=str(run), init=_shipped(model), scales=[[2.0, 2.0]], lr=1e-4, warmup=5,
                device=str(_device(tiny)), amp=True, seed=1)
    if tiny:
        cfg = TrainConfig(**base, iters=2, batch=2, patch=16, val_every=2, val_crop=32, ckpt_every=2, log_every=1)
        return train(cfg, progress=False)
    probe = TrainConfig(**{**base, "out": str(run) + "-probe"}, iters=20, batch=16, patch=48, val_every=10**6,
                        ckpt_every=10**6, log_every=10)
    start = time.perf_counter()
    train(probe, progress=False)
    per_iter = (time.perf_counter() - start) / 20
    iters = max(50, int(budget_s / max(per_iter, 1e-3)))
    every = max(50, iters // 4) // 10 * 10
    cfg = TrainConfig(**base, iters=iters, batch=16, patch=48, val_every=max(20, iters // 6 // 10 * 10),
                      val_crop=96, ckpt_every=every, log_every=10)
    return train(cfg, progress=False)


def verify(model: str, summary: dict, out: Path, tiny: bool) -> dict:
    """The run's best weights against the shipped ones on the validation regions."""
    from MedSRExtension.models.descriptor import ModelDescriptor
    from MedSRExtension.models.registry import get_spec
    from MedSRExtension.training.trainer import TrainConfig, Validator
    from MedSRExtension.zoo import weights as zoo
    run = out / f"train-{model}"
    best = run / "best.safetensors"
    cfg = TrainConfig(model=model, out=str(run), val_crop=32 if tiny else 96)
    validator = Validator(cfg)
    device = _device(tiny)
    scores = {}
    for name, path in (("shipped", _shipped(model)), ("trained", str(best))):
        if not os.path.isfile(path):
            continue
        net = zoo.load_network(model, scale=(2.0, 2.0), weights=path).to(device).eval()
        with torch.no_grad():
            scores[name] = validator(ModelDescriptor(get_spec(model), net), device)[0]
    better = "trained" in scores and scores["trained"] > scores.get("shipped", float("inf"))
    if better:
        (out / f"{model}-x2.safetensors").write_bytes(best.read_bytes())
    return {"shipped_psnr": scores.get("shipped"), "trained_psnr": scores.get("trained"), "kept": better,
            "iterations": summary.get("iterations") or summary.get("iters")}


def throughput(model: str, tiny: bool) -> dict:
    """256² slices per second through the engine (bf16 where it applies, batches of 8)."""
    from MedSRExtension import Volume, super_resolve
    side, n = (32, 2) if tiny else (256, 64)
    rng = np.random.default_rng(0)
    v = Volume(rng.random((n, side, side), dtype=np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    dev = str(_device(tiny))
    super_resolve(v, model=model, scale=2, axis="k", device=dev, batch=8)  # warm-up
    if dev == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    super_resolve(v, model=model, scale=2, axis="k", device=dev, batch=8)
    if dev == "cuda":
        torch.cuda.synchronize()
    return {"slices_per_s": round(n / (time.perf_counter() - start), 2), "slice": side}


def oom_fallback(tiny: bool) -> dict:
    """A huge slice with a huge tile: the engine must halve the tile (or fall back) and finish."""
    from MedSRExtension import Volume, super_resolve
    if _device(tiny).type != "cuda":
        return {"skipped": "no CUDA device: the out-of-memory path runs on a GPU only"}
    side = 8192
    v = Volume(np.random.default_rng(0).random((1, side, side), dtype=np.float32), (1.0, 1.0, 1.0),
               (0.0, 0.0, 0.0), np.eye(3))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        start = time.perf_counter()
        out = super_resolve(v, model="lgsr", scale=2, axis="k", device="cuda", tile=side)
    return {"finished": out.array.shape == (1, 2 * side, 2 * side), "seconds": round(time.perf_counter() - start, 1),
            "warnings": [str(w.message) for w in said if "out of memory" in str(w.message)][:4]}


def agreement(tiny: bool) -> dict:
    """One real MNI slice on the CPU and on the GPU, fp32 (no fast paths), max |difference| normalised."""
    from MedSRExtension import Volume, super_resolve
    from MedSRExtension.data.corpus import mni_path
    import SimpleITK as sitk
    mni = sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)
    sl = mni[90:91, 40:104, 40:104] if tiny else mni[90:91]
    v = Volume(sl, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    if _device(tiny).type != "cuda":
        return {"skipped": "no CUDA device"}
    out = {}
    span = float(sl.max() - sl.min()) or 1.0
    for model in NETWORKS:
        a = super_resolve(v, model=model, scale=2, axis="k", device="cpu", fast=False).array
        b = super_resolve(v, model=model, scale=2, axis="k", device="cuda", fast=False).array
        out[model] = float(np.abs(a - b).max() / span)
    return {"max_abs_diff_normalised": out, "ok": all(d <= 1e-3 for d in out.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "out/gpu"))
    ap.add_argument("--budget-s", type=float, default=75.0, help="training seconds per network")
    ap.add_argument("--tiny", action="store_true", help="every step on the CPU in seconds (the tests)")
    ap.add_argument("--models", default=",".join(NETWORKS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(args.tiny)
    summary = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if device.type == "cuda"
               else "cpu", "tiny": args.tiny, "train": {}, "throughput": {}}
    for model in args.models.split(","):
        start = time.perf_counter()
        run = train_one(model, out, args.budget_s, args.tiny)
        summary["train"][model] = {**verify(model, run, out, args.tiny), "seconds": round(time.perf_counter() - start)}
        summary["throughput"][model] = throughput(model, args.tiny)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    summary["oom_fallback"] = oom_fallback(args.tiny)
    summary["cpu_gpu_agreement"] = agreement(args.tiny)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
