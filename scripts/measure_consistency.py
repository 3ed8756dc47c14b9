"""Does the data-consistency step (MedSRExtension/core/slice_consistency.py) help through-plane results?
Measured on the corpus validation regions only (the decision to keep it is made here, never on the
evaluation volumes): each region becomes a one-slice volume with thick rows (factor f, slice thickness
a fraction of the spacing), pfmdn super-resolves it through-plane with the weights the profile picks,
then the result is made consistent; PSNR as `medsr eval` scores. Writes docs/consistency.json.

A second part (``--estimated-only``) asks what the step would do without a header, enforcing the
profile estimated from the volume (the pipeline does not: it runs the step only under a known
thickness): the MNI template's held-out slab (k in [80, 104)) made thick along i or j.

Usage: python scripts/measure_consistency.py [--crop 96] [--factors 2,3,4] [--thickness 1.0,0.45,0.33]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from MedSRExtension.core.volume import Volume
from MedSRExtension.evaluation.heldout import psnr_ssim_in_window, validation_set
from MedSRExtension.pipeline import super_resolve
from MedSRExtension.core.slice_consistency import project


def _through_plane(lr: np.ndarray, f: int, frac: float, model: str) -> np.ndarray:
    vol = Volume(lr[None].astype(np.float32), spacing=(1.0, float(f), 1.0))
    out = super_resolve(vol, model=model, scale=(1.0, float(f), 1.0), mode="inplane", axis="k", device="cpu",
                        thickness_mm=frac * f, gate=False)
    return np.asarray(out.array[0], np.float32)


def measure(f: int, frac: float, crop: int) -> dict:
    items = validation_set((float(f), 1.0), "thickslice", crop=crop, thickness=frac)
    rows = []
    for it in items:
        net = _through_plane(it.lr, f, frac, "pfmdn")
        bs = _through_plane(it.lr, f, frac, "bspline")
        dc = project(it.lr[None], net[None], 1, frac * f)[0]
        dc_bs = project(it.lr[None], bs[None], 1, frac * f)[0]
        rows.append({"image": it.name, **{k: psnr_ssim_in_window(v, it.hr)[0]
                                          for k, v in (("bspline", bs), ("pfmdn", net), ("pfmdn+dc", dc),
                                                       ("bspline+dc", dc_bs))}})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("bspline", "pfmdn", "pfmdn+dc", "bspline+dc")}
    worse = sum(r["pfmdn+dc"] < r["pfmdn"] - 0.05 for r in rows)
    return {"factor": f, "thickness": frac, "mean": mean, "images_worse_by_0.05dB": worse, "n": len(rows),
            "rows": rows}


def measure_estimated(f: int, frac: float) -> list[dict]:
    """The held-out MNI slab thick along i and j (no header): default runs with and without the step."""
    from MedSRExtension.adapt.profile import slice_profile
    from MedSRExtension.core.degradations import thickslice
    from MedSRExtension.data import corpus
    from MedSRExtension.evaluation.metrics import psnr
    k0, k1 = corpus.MNI_VAL_SLAB
    slab = Volume(corpus.read("mni")[k0:k1].copy())
    rows = []
    for axis in ("i", "j"):
        d = 2 - "ijk".index(axis)
        n = slab.array.shape[d] // f * f
        hr = Volume(np.ascontiguousarray(np.take(slab.array, np.arange(n), axis=d)))
        lr = thickslice(hr, f, axis=axis, thickness=frac * f)
        lr = Volume(lr.array, lr.spacing, lr.origin, lr.direction)
        rng = float(np.ptp(hr.array))
        kw = dict(model="pfmdn", scale=f, mode="throughplane", axis=axis, device="cpu")
        off = super_resolve(lr, consistency=False, **kw)
        profile = slice_profile(lr, axis, float(f), estimate=True)  # what the run estimated
        on = np.clip(project(lr.array, off.array, d, profile.thickness, profile.shape),
                     float(lr.array.min()), float(lr.array.max()))  # the step as the pipeline runs it
        rows.append({"axis": axis, "factor": f, "thickness": frac, "profile": profile.describe(),
                     "without": psnr(off.array, hr.array, data_range=rng),
                     "with": psnr(on, hr.array, data_range=rng)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--factors", default="2,3,4")
    ap.add_argument("--thickness", default="1.0,0.45,0.33")
    ap.add_argument("--out", default="docs/consistency.json")
    ap.add_argument("--estimated-only", action="store_true", help="only the second part (no header)")
    args = ap.parse_args()
    results = []
    if args.estimated_only:
        print("| axis | factor | thickness | estimated profile | without | with |\n|---|---|---|---|---:|---:|")
        for f in (int(v) for v in args.factors.split(",")):
            for frac in (float(v) for v in args.thickness.split(",")):
                for r in measure_estimated(f, frac):
                    results.append(r)
                    print(f"| {r['axis']} | x{f} | {frac:g} | {r['profile'].split(' (')[0]} | {r['without']:.2f} "
                          f"| {r['with']:.2f} |", flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        return 0
    print("| factor | thickness | B-spline | pfmdn | pfmdn + consistency | B-spline + consistency | worse (of n) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for f in (int(v) for v in args.factors.split(",")):
        for frac in (float(v) for v in args.thickness.split(",")):
            r = measure(f, frac, args.crop)
            results.append(r)
            m = r["mean"]
            print(f"| x{f} | {frac:g} | {m['bspline']:.2f} | {m['pfmdn']:.2f} | {m['pfmdn+dc']:.2f} "
                  f"| {m['bspline+dc']:.2f} | {r['images_worse_by_0.05dB']} of {r['n']} |", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
