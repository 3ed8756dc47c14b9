"""`medsr bench` (and `make bench`): slices per second and peak memory of the engine against a
naive one-slice-at-a-time loop, for a classical model and the networks' light presets.

Each configuration runs in its own subprocess so its peak resident memory (ru_maxrss, minus the
process's footprint after imports) is its own. Prints figures and ratios; asserts nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys


def run(cfg: dict) -> dict:
    """One configuration in its own process (``evaluation.bench_child``): its figures, or its error."""
    r = subprocess.run([sys.executable, "-m", "MedSRExtension.evaluation.bench_child", json.dumps(cfg)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(slices: int = 150, size: int = 256, device: str = "cpu", networks: str = "edsr,lgsr,iconet,pfmdn") -> int:
    """Run every configuration and print a table and the engine/naive ratios."""
    common = {"slices": slices, "size": size, "device": device}
    import torch

    print(f"MedSR benchmark: {slices} slices of {size}x{size} -> x2 in-plane, device {device}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'configuration':38} {'seconds':>8} {'slices/s':>9} {'peak MB':>8}")
    rows = {}
    configs = [("bicubic: naive loop", {"model": "bicubic", "naive": True}),
               ("bicubic: engine", {"model": "bicubic", "naive": False}),
               ("edsr light (random): naive loop", {"model": "edsr", "naive": True}),
               ("edsr light (random): engine", {"model": "edsr", "naive": False})]
    configs += [(f"{m} light (random): engine", {"model": m, "naive": False})
                for m in networks.split(",") if m and m != "edsr"]
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
