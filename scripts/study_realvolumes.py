"""The thick-slice study on real volumes that are not the template (the evaluation-only volumes of
DESIGN.md): dipy's aniso_vox and test_piesno, nibabel's anatomical.nii, pydicom-data's emri_small.

Each volume's longest axis is made thick (core.degradations.thickslice): x2 and x3 contiguous, x3 with a
gap (slices one HR slice thick, every 3), x2 with overlap (thickness 1.3x the spacing). Methods: cubic
B-spline; pfmdn with the gate off (the raw network); pfmdn as a user gets it (the do-no-harm gate on),
without and with the thickness in the header; pfmdn+adapt (a fixed step budget) with the header, and
without it by the slice-thickness estimate and by the contiguous assumption. PSNR/SSIM against the
original on its own grid (data range of the original). Writes docs/study-realvolumes.json and prints a
Markdown table. These volumes are for evaluation only: nothing here trains or tunes on them (adapt
trains on the volume's own slices at run time, which is the method).

Needs dipy's data files (``pip install --no-deps dipy``). Usage: python scripts/study_realvolumes.py [--steps N]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from MedSRExtension import Volume, load_volume, super_resolve
from MedSRExtension.core.degradations import thickslice
from MedSRExtension.core.volume import AXES
from MedSRExtension.evaluation.metrics import psnr, ssim

CASES = {"x2": (2, 2.0), "x3": (3, 3.0), "x3 gap": (3, 1.0), "x2 overlap": (2, 2.6)}  # factor, thickness (HR)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"study_realvolumes: {name} is not installed (pip install --no-deps {name})")
    return Path(list(spec.submodule_search_locations)[0])


def volumes() -> dict[str, Volume]:
    import pydicom.data
    dipy = _package_dir("dipy") / "data" / "files"
    nib = _package_dir("nibabel") / "tests" / "data"
    emri = [p for p in pydicom.data.get_testdata_files("emri_small*") if p.endswith("emri_small.dcm")]
    paths = {"aniso_vox": dipy / "aniso_vox.nii.gz", "test_piesno": dipy / "test_piesno.nii.gz",
             "anatomical": nib / "anatomical.nii", "emri_small": Path(emri[0])}
    out = {}
    for name, path in paths.items():
        v = load_volume(path)
        out[name] = Volume(v.array.astype(np.float32), v.spacing, v.origin, v.direction)
    return out


def thick_axis(v: Volume) -> str:
    return AXES[int(np.argmax(v.shape_ijk))]


def _cropped(v: Volume, axis: str, f: int) -> Volume:
    a = AXES.index(axis)
    n = v.shape_ijk[a] // f * f
    sl = [slice(None)] * 3
    sl[2 - a] = slice(0, n)
    return Volume(np.ascontiguousarray(v.array[tuple(sl)]), v.spacing, v.origin, v.direction)


def _score(sr: Volume, hr: Volume) -> tuple[float, float]:
    rng = float(hr.array.max() - hr.array.min())
    return psnr(sr.array, hr.array, rng), ssim(sr.array, hr.array, rng, per_slice=min(hr.array.shape) < 11)


def run_case(hr: Volume, axis: str, f: int, thickness: float, steps: int, only=None) -> dict:
    a = AXES.index(axis)
    lr = thickslice(hr, f, axis=axis, thickness=thickness)
    lr.meta.clear()
    header = Volume(lr.array, lr.spacing, lr.origin, lr.direction)
    t = [None, None, None]
    t[a] = thickness * hr.spacing[a]
    header.meta["thickness_ijk"] = tuple(t)
    common = dict(mode="throughplane", axis=axis, scale=f, device="cpu")
    runs = {
        "bspline": (lr, dict(model="bspline")),
        "pfmdn (no gate)": (lr, dict(model="pfmdn", gate=False)),
        "pfmdn": (lr, dict(model="pfmdn")),
        "pfmdn, header": (header, dict(model="pfmdn")),
        "adapt, header": (header, dict(model="pfmdn", adapt={"steps": steps})),
        "adapt, estimate": (lr, dict(model="pfmdn", adapt={"steps": steps, "estimate": True})),
        "adapt, contiguous": (lr, dict(model="pfmdn", adapt={"steps": steps, "estimate": False})),
    }
    row = {}
    for name, (inp, kw) in runs.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        sr = super_resolve(inp, **common, **kw)
        p, s = _score(sr, hr)
        row[name] = {"psnr": round(p, 3), "ssim": round(s, 4), "seconds": round(time.perf_counter() - start, 1),
                     "gate": sr.meta.get("gate", ""), "consistency": sr.meta.get("consistency", ""), "kept": (sr.meta.get("adapt") or {}).get("kept", ""),
                     "profile": (sr.meta.get("adapt") or {}).get("profile", "")}
    return row


def markdown(results: dict) -> str:
    methods = list(next(iter(next(iter(results.values())).values())))
    lines = ["| volume | case | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
    for vol, cases in results.items():
        for case, row in cases.items():
            b = row["bspline"]["psnr"]
            cells = [f"{row[m]['psnr']:.2f}" + ("" if m == "bspline" else f" ({row[m]['psnr'] - b:+.2f})")
                     for m in methods]
            lines.append(f"| {vol} | {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="adaptation steps per run (a fixed budget)")
    ap.add_argument("--out", default="docs/study-realvolumes.json")
    ap.add_argument("--volumes", default=None, help="comma-separated volume names (default: all)")
    ap.add_argument("--only", default=None, help="semicolon-separated methods to (re)run (their names hold commas, "
                                                 "e.g. 'pfmdn, header;adapt, header'); the others are kept from --out")
    args = ap.parse_args()
    only = [m.strip() for m in args.only.split(";")] if args.only else None
    results: dict = json.loads(Path(args.out).read_text(encoding="utf-8")) if only and Path(args.out).is_file() else {}
    wanted = args.volumes.split(",") if args.volumes else None
    if wanted and not results and Path(args.out).is_file():
        results = json.loads(Path(args.out).read_text(encoding="utf-8"))
    for name, hr in volumes().items():
        if wanted and name not in wanted:
            continue
        axis = thick_axis(hr)
        results.setdefault(name, {})
        for case, (f, thickness) in CASES.items():
            row = run_case(_cropped(hr, axis, f), axis, f, thickness, args.steps, only)
            results[name].setdefault(case, {}).update(row)
            row = results[name][case]
            print(f"{name} {case} (axis {axis}): " + ", ".join(f"{m} {r['psnr']:.2f}" for m, r in row.items()),
                  flush=True)
            os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
