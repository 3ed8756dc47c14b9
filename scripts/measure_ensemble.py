"""What the self-ensemble buys per network: mean PSNR over the corpus validation regions (the user's
path, a one-slice volume, scored as `medsr eval` scores) at x2 and x4, single run vs --ensemble 2/4/8,
with the time each takes. Writes docs/ensemble.json and prints a Markdown table; the README's
self-ensemble figures and the default come from this run.

Usage: python scripts/measure_ensemble.py [--crop 128] [--models edsr,lgsr,iconet,pfmdn]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from MedSRExtension.core.volume import Volume
from MedSRExtension.evaluation.heldout import psnr_ssim_in_window, validation_set
from MedSRExtension.pipeline import super_resolve


def _mean_psnr(model: str, items, scale: int, ensemble: int) -> tuple[float, float]:
    start, ps = time.perf_counter(), []
    for item in items:
        out = super_resolve(Volume(item.lr[None].astype(np.float32)), model=model, scale=scale, mode="inplane",
                            axis="k", device="cpu", ensemble=ensemble)
        ps.append(psnr_ssim_in_window(np.asarray(out.array[0], np.float32), item.hr)[0])
    return float(np.mean(ps)), time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--models", default="edsr,lgsr,iconet,pfmdn")
    ap.add_argument("--out", default="docs/ensemble.json")
    args = ap.parse_args()
    rows = []
    for scale in (2, 4):
        items = validation_set((scale, scale), crop=args.crop)
        for model in args.models.split(","):
            base, base_s = _mean_psnr(model, items, scale, 1)
            row = {"model": model, "scale": scale, "psnr": round(base, 3), "seconds": round(base_s, 2)}
            for n in (2, 4, 8):
                p, s = _mean_psnr(model, items, scale, n)
                row[f"x{n}"] = {"gain_db": round(p - base, 3), "time_ratio": round(s / base_s, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("| model | scale | single PSNR | +x2 | +x4 | +x8 | time x8 |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | x{r['scale']} | {r['psnr']:.2f} | {r['x2']['gain_db']:+.3f} | "
              f"{r['x4']['gain_db']:+.3f} | {r['x8']['gain_db']:+.3f} | {r['x8']['time_ratio']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
