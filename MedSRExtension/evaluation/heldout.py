"""Honest evaluation on the corpus validation regions (``medsr eval`` and training-time validation).

Protocol, for every validation image (see ``data.corpus``) and scale s:

1. the HR image is the validation region in file units, trimmed so both sides are multiples of 12
   (every scale 2, 3, 4 then gives an exact LR grid; the same pixels are scored at every scale); a
   factor that does not divide 12 (×5) trims 12 pixels more at a time until its LR grid is exact;
2. the LR image is the engine's degradation of it (``bicubic`` or ``kspace``; ``thickslice`` at a
   through-plane (f, 1): thick slices along the rows; ``scanner``: one fixed draw per image of
   core/scanner_degradation.py, whose shading field, when drawn, is in the scored HR too);
3. each method upsamples the LR image the way users get it: ``super_resolve`` on a one-slice
   ``Volume`` (robust normalisation of the input, the model with its shipped, verified weights,
   back to input units) — networks and classical baselines alike;
4. SR and HR are mapped by the HR's robust window (0.5/99.5 percentiles) to [0, 1], clipped, and
   scored with PSNR (data range 1) and SSIM.

Training-time validation (``Validator`` in the trainer) follows the same steps on fixed 96×96-pixel
crops (the most structured crop of each region) and calls the network directly, without tiling.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from MedSRExtension.core import atomic
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.intensity import normalize, robust_range
from MedSRExtension.models.descriptor import ModelDescriptor

TRIM = 12
BASELINES = ("nearest", "bicubic", "bspline")


@dataclass
class EvalItem:
    """One validation image at one scale: HR and LR in file units."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def degrade_pair(name: str, hr: np.ndarray, scale: tuple[float, float], degradation: str,
                 thickness: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) of validation image ``name`` in file units: the engine's degradation (``thickness``:
    thickslice only, as a fraction of the slice spacing), or its fixed ``scanner`` draw (seeded by the
    name: every run scores the same pair)."""
    from MedSRExtension.core.scanner_degradation import image_rng
    from MedSRExtension.data.patches import make_pair
    return make_pair(np.asarray(hr, dtype=np.float32), degradation, scale, image_rng(name), thickness)


def most_structured_window(img: np.ndarray, size: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the largest standard deviation, among the corners
    on a grid of ``stride`` from (0, 0) (the first one on ties): where a crop shows the most structure."""
    (h, w), (wh, ww) = img.shape, size
    best, where = -1.0, (0, 0)
    for r in range(0, h - wh + 1, stride[0]):
        for c in range(0, w - ww + 1, stride[1]):
            s = float(img[r:r + wh, c:c + ww].std())
            if s > best:
                best, where = s, (r, c)
    return where


def _structured_crop(img: np.ndarray, crop: int) -> np.ndarray:
    """The crop×crop window (sides multiples of TRIM, corners on a half-window grid) with the most structure."""
    h, w = img.shape
    ch, cw = min(crop, h) // TRIM * TRIM, min(crop, w) // TRIM * TRIM
    r, c = most_structured_window(img, (ch, cw), (max(TRIM, ch // 2), max(TRIM, cw // 2)))
    return img[r:r + ch, c:c + cw]


def _exact_side(n: int, s: float) -> int:
    """``n`` (a multiple of TRIM) less TRIM pixels at a time until n / s is a whole LR pixel count."""
    m = n
    while m > TRIM and not float(m / s).is_integer():
        m -= TRIM
    if not float(m / s).is_integer():
        raise MedSRError(f"a side of {n} pixels has no exact LR grid at x{s:g}; use a larger crop")
    return m


def validation_set(scale: Sequence[float], degradation: str = "bicubic", crop: Optional[int] = None,
                   names: Optional[Sequence[str]] = None, thickness: Optional[float] = None) -> list[EvalItem]:
    """HR/LR pairs of every validation region (whole, or its most structured ``crop``-pixel window;
    ``thickness``: thickslice only, the slices' thickness as a fraction of their spacing)."""
    from MedSRExtension.data.corpus import validation_regions
    sh, sw = float(scale[0]), float(scale[1])
    items = []
    for region in validation_regions():
        if names and region.name not in names:
            continue
        img = region.array
        if crop:
            img = _structured_crop(img, crop)
        h, w = _exact_side(img.shape[0] // TRIM * TRIM, sh), _exact_side(img.shape[1] // TRIM * TRIM, sw)
        hr = np.ascontiguousarray(img[:h, :w], dtype=np.float32)
        items.append(EvalItem(region.name, *degrade_pair(region.name, hr, (sh, sw), degradation, thickness)))
    if not items:
        raise MedSRError(f"no validation images selected (names {list(names or [])})")
    return items


def psnr_ssim_in_window(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``sr`` against ``hr``, both in file units, scored in HR's robust window."""
    from MedSRExtension.evaluation.metrics import psnr, ssim
    if sr.shape != hr.shape:
        raise MedSRError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
    window = robust_range(hr)
    a = np.clip(normalize(hr, window)[0], 0, 1)
    b = np.clip(normalize(sr, window)[0], 0, 1)
    return float(psnr(b, a, data_range=1.0)), float(ssim(b, a, data_range=1.0))


@torch.no_grad()
def network_upscale(model: ModelDescriptor, lr: np.ndarray, scale: tuple[float, float],
                    device: torch.device) -> np.ndarray:
    """Run an in-memory model on a whole 2D LR image the way inference does (the engine's slice pass:
    robust normalisation, the model in eval mode, back to file units), untiled and without the CPU
    fast path, so training-time validation scores exactly the network it trains."""
    from MedSRExtension.core.volume import Volume
    from MedSRExtension.inference.engine import run_inference
    from MedSRExtension.inference.options import InferenceOptions
    sh, sw = (float(v) for v in scale)
    options = InferenceOptions(model=model.spec.name, scale=(sw, sh, 1.0), mode="inplane", axis="k",
                               device=str(device), tile=max(lr.shape), fast=False, clamp="none", gate=False,
                               consistency=False)
    was_training = model.module.training
    try:
        out = run_inference(Volume(np.asarray(lr, dtype=np.float32)[None]), options, network=model.module)
    finally:
        model.module.train(was_training)
    return np.asarray(out.array[0], dtype=np.float32)


# ------------------------------------------------------------------------------------ medsr eval
DEFAULT_CROP = 192


def upscale_like_users(method: str, lr: np.ndarray, scale: Union[float, tuple[float, float]],
                       weights: str = "auto", device: str = "cpu") -> np.ndarray:
    """``super_resolve`` of a 2D image held as a one-slice Volume (the path users get); ``scale``: one
    factor, or (rows, cols) factors such as a through-plane (f, 1)."""
    from MedSRExtension.pipeline import super_resolve
    from MedSRExtension.core.volume import Volume
    if np.ndim(scale):
        scale = (float(scale[1]), float(scale[0]), 1.0)  # (i, j, k): columns, rows, the one slice
    out = super_resolve(Volume(lr[None].astype(np.float32)), model=method, scale=scale, mode="inplane",
                        axis="k", device=device, weights=weights)
    return np.asarray(out.array[0], dtype=np.float32)


@dataclass
class EvalResult:
    """Scores of every (scale, image, method), plus the SR images of one image for the figure."""

    rows: list  # dicts: scale, degradation, image, method, psnr, ssim
    figure: dict  # scale -> {"image": name, "lr": arr, "hr": arr, "sr": {method: arr}}


def family_weights(models: Sequence[str], scale: int, families: Sequence[str]) -> dict:
    """Method label -> weights argument for each network and weights family: ``model`` (the default
    bicubic family: "auto") and ``model:family`` (the shipped, sha256-verified file of that family).
    A network without weights of a family at ``scale`` is left out (``missing_families`` names it)."""
    from MedSRExtension.zoo.weights import find_weights, verify
    out = {}
    for m in models:
        for fam in families:
            if fam == "bicubic":
                out[m] = "auto"
                continue
            entry = find_weights(m, (float(scale), float(scale)), degradation=fam)
            if entry is not None:
                out[f"{m}:{fam}"] = verify(entry)
    return out


def missing_families(models: Sequence[str], scales: Sequence[int], families: Sequence[str]) -> list[str]:
    """"model:family xS" for every requested combination no shipped weights serve (said in the report)."""
    return [f"{m}:{fam} x{s}" for s in scales for m in models for fam in families
            if fam != "bicubic" and f"{m}:{fam}" not in family_weights([m], s, [fam])]


def evaluate(models: Sequence[str], scales: Sequence[int], degradation: str = "bicubic",
             crop: Optional[int] = DEFAULT_CROP, baselines: Sequence[str] = BASELINES,
             images: Optional[Sequence[str]] = None, device: str = "cpu", figure_image: str = "mni_k86",
             weights: Optional[dict] = None, progress=None, families: Sequence[str] = ("bicubic",)) -> EvalResult:
    """Score ``models`` and the baselines on the validation regions at each scale.

    ``families``: weights families to score per network (``family_weights``: "edsr" is the bicubic
    family, "edsr:scanner" the scanner one). ``weights`` optionally maps a method label to a weights
    argument for ``super_resolve`` (a path), over the shipped, verified weights. Networks without
    weights for a scale are refused (the zoo's clear error), never silently run untrained."""
    rows, fig = [], {}
    for s in scales:
        chosen_weights = {**family_weights(models, s, families), **(weights or {})}
        methods = list(baselines) + [m for m in chosen_weights if m not in baselines]
        items = validation_set((float(s), float(s)), degradation, crop=crop, names=images)
        chosen = next((it for it in items if it.name == figure_image), items[0])
        fig[s] = {"image": chosen.name, "lr": chosen.lr, "hr": chosen.hr, "sr": {}}
        for method in methods:
            w = chosen_weights.get(method, "auto")
            for item in items:
                sr = upscale_like_users(method.split(":")[0], item.lr, float(s), weights=w, device=device)
                p, q = psnr_ssim_in_window(sr, item.hr)
                rows.append({"scale": s, "degradation": degradation, "image": item.name, "method": method,
                             "psnr": p, "ssim": q})
                if item is chosen:
                    fig[s]["sr"][method] = sr
                if progress:
                    progress(method, s, item.name)
    return EvalResult(rows, fig)


def summary_rows(rows: list) -> list:
    """Mean PSNR/SSIM per (scale, method), with the gain over bicubic."""
    out = []
    keys = sorted({(r["scale"], r["method"]) for r in rows}, key=lambda k: (k[0], k[1] not in BASELINES, k[1]))
    for s, m in keys:
        sel = [r for r in rows if r["scale"] == s and r["method"] == m]
        out.append({"scale": s, "method": m, "psnr": float(np.mean([r["psnr"] for r in sel])),
                    "ssim": float(np.mean([r["ssim"] for r in sel])), "n": len(sel)})
    for r in out:
        ref = next((b for b in out if b["scale"] == r["scale"] and b["method"] == "bicubic"), None)
        r["gain_vs_bicubic"] = r["psnr"] - ref["psnr"] if ref else float("nan")
    return out


def _atomic_text(path: str, text: str) -> None:
    atomic.write_text(path, text)


def write_csv(rows: list, path: str) -> None:
    """Per-image rows, then one 'mean' row per (scale, method)."""
    import io
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["scale", "degradation", "image", "method", "psnr_db", "ssim"])
    for r in rows:
        w.writerow([r["scale"], r["degradation"], r["image"], r["method"], f"{r['psnr']:.3f}", f"{r['ssim']:.4f}"])
    deg = rows[0]["degradation"] if rows else ""
    for m in summary_rows(rows):
        w.writerow([m["scale"], deg, "mean", m["method"], f"{m['psnr']:.3f}", f"{m['ssim']:.4f}"])
    _atomic_text(path, buf.getvalue())


def markdown(rows: list, crop: Optional[int]) -> str:
    """A Markdown report: mean table per scale with the gain over bicubic, then per-image PSNR."""
    if not rows:
        return "No results.\n"
    deg = rows[0]["degradation"]
    where = f"the most structured {crop}×{crop}-pixel window of each validation region" if crop else \
        "the whole validation regions"
    lines = [f"Validation: {where} of the corpus (never seen in training; see `MedSRExtension/data/corpus.py`), "
             f"degradation `{deg}`, PSNR/SSIM in each HR image's robust [0.5, 99.5] percentile window.", ""]
    images = sorted({r["image"] for r in rows}, key=[r["image"] for r in rows].index)
    for s in sorted({r["scale"] for r in rows}):
        lines += [f"### ×{s}", "", "| method | mean PSNR (dB) | mean SSIM | Δ PSNR vs bicubic | "
                  + " | ".join(images) + " |", "|---|---|---|---|" + "---|" * len(images)]
        for m in [m for m in summary_rows(rows) if m["scale"] == s]:
            per = [next(r["psnr"] for r in rows if r["scale"] == s and r["method"] == m["method"] and r["image"] == i)
                   for i in images]
            lines.append(f"| {m['method']} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['gain_vs_bicubic']:+.2f} | "
                         + " | ".join(f"{p:.2f}" for p in per) + " |")
        lines.append("")
    return "\n".join(lines)


def figure(result: EvalResult, path: str, zoom: int = 96) -> None:
    """Side-by-side crops (LR, each method, HR) and |error| maps for one image at each scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scales = sorted(result.figure)
    # the methods run at every scale (a weights family may lack a scale's file, e.g. scanner x4)
    methods = [m for m in result.figure[scales[0]]["sr"] if m != "nearest"
               and all(m in result.figure[s]["sr"] for s in scales)]
    cols = 2 + len(methods)
    fig, axes = plt.subplots(2 * len(scales), cols, figsize=(1.9 * cols, 3.9 * len(scales)), squeeze=False)
    for row, s in enumerate(scales):
        f = result.figure[s]
        hr = f["hr"]
        lo, hi = robust_range(hr)
        z = min(zoom, hr.shape[0], hr.shape[1]) // s * s
        stride = max(s, z // 4 // s * s)  # corners on multiples of the scale: LR pixels stay whole
        r0, c0 = most_structured_window(hr, (z, z), (stride, stride))
        cut = lambda a: a[r0:r0 + z, c0:c0 + z]  # noqa: E731
        vlo, vhi = robust_range(cut(hr))  # display window of the zoomed crop
        lr_up = np.kron(f["lr"], np.ones((s, s), dtype=np.float32))[:hr.shape[0], :hr.shape[1]]
        panels = [("LR (nearest)", lr_up)] + [(m, f["sr"][m]) for m in methods] + [("HR", hr)]
        for c, (title, img) in enumerate(panels):
            ax, ex = axes[2 * row, c], axes[2 * row + 1, c]
            ax.imshow(cut(img), cmap="gray", vmin=vlo, vmax=vhi, interpolation="nearest")
            ax.set_title(f"×{s} {title}" if c == 0 else title, fontsize=8)
            if title not in ("HR",):
                err = np.abs(cut(img) - cut(hr)) / (hi - lo)
                ex.imshow(err, cmap="magma", vmin=0, vmax=0.15, interpolation="nearest")
                if title != "LR (nearest)":
                    p, _ = psnr_ssim_in_window(img, hr)
                    ex.set_title(f"|err| {p:.2f} dB", fontsize=7)
            for a in (ax, ex):
                a.set_xticks([])
                a.set_yticks([])
        axes[2 * row + 1, -1].axis("off")
    fig.suptitle(f"{result.figure[scales[0]]['image']} validation crop: SR and |SR − HR| (0–15 % of the HR range); "
                 "dB = PSNR of the whole crop",
                 fontsize=9)
    fig.tight_layout()
    try:
        atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)


def write_eval_report(result: EvalResult, out: str, crop: Optional[int]) -> dict:
    """eval.csv, eval.md and eval.png in ``out``; returns their paths."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise MedSRError(f"the output folder {out} is a file; give a folder")
    os.makedirs(out, exist_ok=True)
    paths = {k: os.path.join(out, f"eval.{k}") for k in ("csv", "md", "png")}
    write_csv(result.rows, paths["csv"])
    _atomic_text(paths["md"], markdown(result.rows, crop))
    figure(result, paths["png"])
    return paths
