"""`medsr bench` (and `make bench`): slices per second and peak memory of the engine against a
naive one-slice-at-a-time loop, for a classical model and the networks' light presets.

Each configuration runs in its own subprocess so its peak resident memory (ru_maxrss, minus the
process's footprint after imports) is its own. Prints figures and ratios; asserts nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from MedSRExtension import Volume, super_resolve
from MedSRExtension.data.corpus import mni_path
from MedSRExtension.core.intensity import normalize
from MedSRExtension.models import build, get_spec
import SimpleITK as sitk
cfg = json.loads(sys.argv[1])
n, size = cfg["slices"], cfg["size"]
mni = sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)
vol = np.zeros((n, size, size), np.float32)
src = mni[20:20 + min(n, 160)]
reps = -(-n // src.shape[0])
src = np.concatenate([src] * reps)[:n]
h, w = min(size, src.shape[1]), min(size, src.shape[2])
vol[:, :h, :w] = src[:, :h, :w]
v = Volume(vol, spacing=(1, 1, 1))
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss()
weights = "random"
t = time.perf_counter()
if cfg["naive"]:
    spec = get_spec(cfg["model"])
    module = build(cfg["model"], preset="light", scale=2).eval()
    arr, win = normalize(v.array)
    out = np.empty((n, 2 * size, 2 * size), np.float32)
    with torch.inference_mode():
        for k in range(n):
            x = torch.from_numpy(np.ascontiguousarray(arr[k]))[None, None]
            out[k] = module(x)[0, 0].numpy()
else:
    super_resolve(v, model=cfg["model"], scale=2, mode="inplane", axis="k", device=cfg["device"], weights=weights,
                  tile=cfg.get("tile"))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "slices_per_s": n / dt, "peak_mb": rss() - base}))
"""


def run(cfg: dict) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def register(sub) -> None:
    """The `medsr bench` subcommand."""
    ap = sub.add_parser("bench", help="speed and memory of the engine vs a naive loop (prints figures)")
    ap.add_argument("--slices", type=int, default=150)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--networks", default="edsr,lgsr,iconet,pfmdn")
    ap.set_defaults(func=main)


def main(args) -> int:
    """Run every configuration and print a table and the engine/naive ratios."""
    common = {"slices": args.slices, "size": args.size, "device": args.device}
    import torch

    print(f"MedSR benchmark: {args.slices} slices of {args.size}x{args.size} -> x2 in-plane, device {args.device}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'configuration':38} {'seconds':>8} {'slices/s':>9} {'peak MB':>8}")
    rows = {}
    configs = [("bicubic: naive loop", {"model": "bicubic", "naive": True}),
               ("bicubic: engine", {"model": "bicubic", "naive": False}),
               ("edsr light (random): naive loop", {"model": "edsr", "naive": True}),
               ("edsr light (random): engine", {"model": "edsr", "naive": False})]
    configs += [(f"{m} light (random): engine", {"model": m, "naive": False})
                for m in args.networks.split(",") if m and m != "edsr"]
    for label, cfg in configs:
        res = run({**common, **cfg})
        rows[label] = res
        if "error" in res:
            print(f"{label:38} error: {res['error']}")
        else:
            print(f"{label:38} {res['seconds']:8.2f} {res['slices_per_s']:9.2f} {res['peak_mb']:8.0f}")
    for name in ("bicubic", "edsr light (random)"):
        a, b = rows.get(f"{name}: naive loop", {}), rows.get(f"{name}: engine", {})
        if "seconds" in a and "seconds" in b:
            print(f"{name}: engine is {a['seconds'] / b['seconds']:.2f}x the naive loop's speed, "
                  f"peak memory {b['peak_mb'] / max(a['peak_mb'], 1):.2f}x")
    return 0

