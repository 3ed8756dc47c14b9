"""``run_comparison``: does super-resolution help a downstream segmentation? One reference, many methods.

The reference (HR) is degraded (or a given LR is used), every method super-resolves the LR through
``inference.super_resolve``, and each result is compared with the reference on the reference grid:

- PSNR/SSIM (``metrics.compare_volumes``) with data_range = the reference's max − min, over the
  reference voxels the result covers (optionally only the foreground: reference > its 2-class Otsu
  threshold);
- the segmentation of the result against the segmentation of the reference, with one ``Segmenter``
  fitted on the reference and applied unchanged to every result (``segmentation.fit``): Dice, HD95
  and volume difference per label (``labelmetrics``). Each result is segmented on its own grid and
  its labels are brought onto the reference grid by nearest neighbour.

A network without shipped weights is refused before any work starts (a table silently missing a
requested method would mislead); leave it out of ``models`` or pass trained weights. Outputs are
written to ``out_dir`` only once everything is computed, each under a temporary name then renamed:
``metrics.csv``, ``metrics.md``, ``slices.png``, ``dice.png`` (and ``volumes/`` with
``save_volumes``).
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from MedSRExtension.core.degradations import KINDS as DEGRADATIONS
from MedSRExtension.core.degradations import degrade
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import mode_factors
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.evaluation import labelmetrics
from MedSRExtension.evaluation import segmentation
from MedSRExtension.core import atomic, validation
from MedSRExtension.evaluation.metrics import compare_volumes
from MedSRExtension.inference.options import InferenceOptions, JsonOptions, as_tuple
from MedSRExtension.models.registry import get_spec

REPORT_FILES = ("metrics.csv", "metrics.md", "slices.png", "dice.png")  # what write_report puts in out_dir
DEFAULT_DEGRADATION = "bicubic"  # the library's and the CLI's
Progress = Optional[Callable[[float, int, str], None]]


# --- grids -------------------------------------------------------------------------------------

def _sub_grid_slices(src: Volume, dst: Volume, tol: float = 1e-4) -> tuple[slice, ...] | None:
    """If every voxel centre of ``src`` is a voxel centre of ``dst`` (same spacing and direction, integer
    offset), the [k, j, i] slices of ``dst`` that ``src`` covers (clipped to dst); else None."""
    if not (np.allclose(src.spacing, dst.spacing, rtol=0, atol=tol * min(dst.spacing))
            and np.allclose(src.direction, dst.direction, atol=1e-6)):
        return None
    offset = np.linalg.solve(dst.direction * np.asarray(dst.spacing), np.asarray(src.origin) - np.asarray(dst.origin))
    if not np.allclose(offset, np.round(offset), atol=tol):
        return None
    start = np.round(offset).astype(int)  # (i, j, k)
    slices = []
    for a in (2, 1, 0):
        lo = max(0, start[a])
        hi = min(dst.shape_ijk[a], start[a] + src.shape_ijk[a])
        if hi <= lo:
            return None
        slices.append(slice(int(lo), int(hi)))
    return tuple(slices)


def onto_grid(image: Volume, target: Volume) -> tuple[np.ndarray, np.ndarray]:
    """``image`` sampled on ``target``'s grid (float32) and the mask of target voxels it covers.

    Exact slicing when the grids share voxel centres; otherwise linear interpolation in physical
    space, a target voxel being covered when its centre lies inside ``image``'s voxel-edge box.
    """
    out = np.zeros(target.array.shape, np.float32)
    valid = np.zeros(target.array.shape, bool)
    box = _sub_grid_slices(image, target)
    if box is not None:
        offset = np.linalg.solve(target.direction * np.asarray(target.spacing),
                                 np.asarray(image.origin) - np.asarray(target.origin))
        s = np.round(offset).astype(int)[::-1]  # (k, j, i) start of image in target indices
        src = tuple(slice(b.start - int(o), b.stop - int(o)) for b, o in zip(box, s))
        out[box] = image.array[src]
        valid[box] = True
        return out, valid
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize(tuple(int(n) for n in target.shape_ijk))
    resampler.SetOutputSpacing(tuple(target.spacing))
    resampler.SetOutputOrigin(tuple(target.origin))
    resampler.SetOutputDirection(tuple(float(v) for v in target.direction.ravel()))
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetDefaultPixelValue(float("nan"))
    res = sitk.GetArrayFromImage(resampler.Execute(
        segmentation.to_sitk(image, np.asarray(image.array, dtype=np.float32))))
    valid = np.isfinite(res)
    out[valid] = res[valid]
    return out, valid


def _labels_onto(labels: Volume, target: Volume) -> np.ndarray:
    box = _sub_grid_slices(labels, target)
    if box is not None:
        arr, _ = onto_grid(labels.with_array(labels.array.astype(np.float32)), target)
        return arr.astype(labels.array.dtype)
    return segmentation.resample_labels_nearest(labels, target).array


def crop(volume: Volume, start_ijk: Sequence[int], size_ijk: Sequence[int]) -> Volume:
    """The sub-volume starting at voxel ``start_ijk`` with ``size_ijk`` voxels, at its physical place."""
    start = np.asarray(start_ijk, int)
    size = np.asarray(size_ijk, int)
    n = np.asarray(volume.shape_ijk)
    if np.any(start < 0) or np.any(size < 1) or np.any(start + size > n):
        raise MedSRError(f"crop {tuple(start)}+{tuple(size)} (i, j, k) does not fit in a volume of {tuple(n)} voxels")
    arr = volume.array[start[2]:start[2] + size[2], start[1]:start[1] + size[1], start[0]:start[0] + size[0]]
    origin = np.asarray(volume.origin) + volume.direction @ (start * np.asarray(volume.spacing))
    return Volume(arr.copy(), volume.spacing, origin, volume.direction)


# --- checks ------------------------------------------------------------------------------------

def check_models(models: Sequence[str], weights: str = "auto", scale: float | None = None,
                 mode: str | None = "inplane") -> list[str]:
    """Known, de-duplicated model names; a network without shipped weights (for the passes of ``mode``
    at ``scale``, when given; mode None: of inplane or throughplane) is a clear error, raised before
    any work starts."""
    if not models:
        raise MedSRError("no methods to compare; give e.g. --models bicubic,bspline")
    out: list[str] = []
    for name in models:
        name = name.strip()
        if not name or name in out:
            continue
        base, adapt = _split_method(name)
        spec = get_spec(base)
        if spec.kind == "network" and weights == "auto" and not adapt and not _has_shipped_weights(name, scale, mode):
            at = f" for x{scale:g}" if scale is not None else ""
            raise MedSRError(
                f"model '{name}' has no shipped trained weights{at}, so comparing it would measure an untrained "
                "network; train it (medsr train) or leave it out of --models"
            )
        out.append(name)
    return out


def _split_method(name: str):
    """'pfmdn+adapt' -> ('pfmdn', True): a network fine-tuned on the LR volume first (adapt)."""
    from MedSRExtension.adapt import split_method
    return split_method(name)


def _has_shipped_weights(name: str, scale: float | None, mode: str | None = "inplane") -> bool:
    from MedSRExtension.zoo import weights as zoo  # lazy: the zoo imports torch, the Slicer panel may lack it
    from MedSRExtension.inference.engine import model_scales
    try:
        if scale is not None:  # weights for every pass the engine runs in the mode (model_scales)
            return any(all(zoo.find_weights(name, s) is not None
                           for s in model_scales(name, mode_factors(float(scale), m, "k"), "k"))
                       for m in ([mode] if mode else ["inplane", "throughplane"]))
        return bool(zoo.list_weights(name))
    except MedSRError:
        return False


def lr_scale(lr: Volume, hr: Volume) -> tuple[float, float, float]:
    """Per-axis factors (i, j, k) that bring the LR spacing to the reference's (1 when within 0.1 %)."""
    f = np.asarray(lr.spacing) / np.asarray(hr.spacing)
    f = np.where(np.abs(f - 1) < 1e-3, 1.0, f)
    if np.any(f < 1 - 1e-3):
        raise MedSRError(
            f"the LR spacing {tuple(round(s, 4) for s in lr.spacing)} is finer than the reference's "
            f"{tuple(round(s, 4) for s in hr.spacing)} along some axis; swap --hr and --lr?"
        )
    return tuple(float(max(v, 1.0)) for v in f)


def fit_to_scale(hr: Volume, factors_ijk: Sequence[float]) -> Volume:
    """The reference cropped at its far end to a multiple of each integer factor (at most f - 1 voxels),
    so the LR and every super-resolved result lie exactly on the reference grid."""
    size = []
    for n, f in zip(hr.shape_ijk, factors_ijk):
        keep = n
        if f > 1 and float(f).is_integer() and n >= f:
            keep = int(n // int(f) * int(f))
        size.append(keep)
    if tuple(size) == hr.shape_ijk:
        return hr
    return crop(hr, (0, 0, 0), size)


def _mode_for_lr(scale, mode: str | None, axis: str, lr: Volume) -> tuple[str, str]:
    """Mode and axis for a given LR: from the per-axis factors when not given (one scaled axis:
    throughplane along it; two: inplane perpendicular to the third; three: volumetric)."""
    if np.ndim(scale) == 0:
        return mode or "inplane", lr.largest_spacing_axis() if axis == "auto" else axis
    scaled = [b for b in range(3) if scale[b] > 1]
    if mode is None:
        mode = {1: "throughplane", 2: "inplane"}.get(len(scaled), "volumetric")
    if axis == "auto":
        if mode == "throughplane" and len(scaled) == 1:
            axis = AXES[scaled[0]]
        elif mode == "inplane" and len(scaled) == 2:
            axis = AXES[next(b for b in range(3) if b not in scaled)]
        else:
            axis = lr.largest_spacing_axis()
    return mode, axis


def make_lr(hr: Volume, degradation: str, scale: float, mode: str, axis: str,
            thickness_mm: float | None = None) -> Volume:
    """The reference degraded by ``degradation`` at ``scale`` on the axes ``mode`` scales
    (thickslice: slices ``thickness_mm`` thick, default as thick as they are spaced)."""
    if degradation not in DEGRADATIONS:
        raise MedSRError(f"degradation must be one of {', '.join(DEGRADATIONS)}, got '{degradation}'; use one of those")
    if thickness_mm is not None and degradation != "thickslice":
        raise MedSRError("a slice thickness is for the thickslice degradation; add --degradation thickslice")
    if degradation == "thickslice":
        if mode != "throughplane":
            raise MedSRError("the thickslice degradation makes thick slices along the axis; use --mode throughplane")
        a = AXES.index(axis)
        validation.check_thickness_mm(thickness_mm)
        kw = {} if thickness_mm is None else {"thickness": thickness_mm / float(hr.spacing[a])}
        lr = degrade(hr, degradation, float(scale), axis=axis, **kw)
        # what a header would say of this acquisition (the NRRD thicknesses field, DICOM Slice Thickness)
        known = float(lr.spacing[a]) if thickness_mm is None else float(thickness_mm)
        lr.meta.update(thickness_ijk=tuple(known if b == a else None for b in range(3)),
                       thickness_source="the simulated acquisition (thickslice)")
        return lr
    return degrade(hr, degradation, mode_factors(float(scale), mode, axis), axis=axis)


# --- the comparison ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CompareOptions(JsonOptions):
    """How ``run_comparison`` makes the LR image, super-resolves and scores it.

    Args:
        degradation: how the LR is made from the reference (``core.degradations.KINDS``); ignored
            when an LR is given.
        scale: the degradation and SR factor (default 2); with a given LR, None takes the factors
            from the spacings.
        mode: None: throughplane for the thickslice degradation, else inplane (with a given LR:
            from the factors).
        thickness_mm: thickslice only: the slice thickness (default: the LR spacing, contiguous);
            less than the spacing is a gap, more an overlap.
        axis: "auto" is the reference's largest-spacing axis (k when isotropic).
        seg: segmentation method (``segmentation.METHODS``); None skips the segmentation columns.
        mask: None, or "foreground" (PSNR/SSIM over reference > its 2-class Otsu threshold).
        device, weights: as in ``InferenceOptions``.
        save_volumes: also write the LR, every result and its segmentation under ``volumes/``.
    """

    degradation: str = DEFAULT_DEGRADATION
    scale: float | tuple | None = None
    mode: str | None = None
    thickness_mm: float | None = None
    axis: str = "auto"
    seg: str | None = "otsu3"
    mask: str | None = None
    device: str = "auto"
    weights: str = "auto"
    save_volumes: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", as_tuple(self.scale))
        if self.mask not in (None, "", "none", "foreground"):
            raise MedSRError(f"mask must be 'foreground' or none, got '{self.mask}'; use one of those")


@dataclass
class _Setup:
    """The resolved comparison: reference (fitted to the scale), LR, SR factors, mode and axis."""

    hr: Volume
    lr: Volume
    sr_scale: float | tuple
    mode: str
    axis: str
    lr_given: bool


def _setup(hr: Volume, lr: Volume | None, opts: CompareOptions) -> _Setup:
    """Check the reference and make (or take) the LR image."""
    if hr.array.size < 8 or np.ptp(hr.array) == 0:
        raise MedSRError("the reference image is constant or empty; give a real image as --hr")
    hr = Volume(np.asarray(hr.array, dtype=np.float32), hr.spacing, hr.origin, hr.direction)
    if lr is not None:
        sr_scale = lr_scale(lr, hr) if opts.scale is None else opts.scale
        mode, axis = _mode_for_lr(sr_scale, opts.mode, opts.axis, lr)
        return _Setup(hr, lr, sr_scale, mode, axis, True)
    scale = 2.0 if opts.scale is None else opts.scale
    if np.ndim(scale) or not math.isfinite(float(scale)) or float(scale) <= 1:
        raise MedSRError(f"scale must be a number > 1, got {scale}; e.g. scale=2")
    mode = opts.mode or ("throughplane" if opts.degradation == "thickslice" else "inplane")
    axis = hr.largest_spacing_axis() if opts.axis == "auto" else opts.axis
    hr = fit_to_scale(hr, mode_factors(float(scale), mode, axis))
    lr = make_lr(hr, opts.degradation, float(scale), mode, axis, opts.thickness_mm)
    return _Setup(hr, lr, float(scale), mode, axis, False)


def run_comparison(hr: Volume, lr: Volume | None = None, models: Sequence[str] = ("bicubic",),
                   out_dir: str | os.PathLike = "compare", progress: Progress = None, cancel=None,
                   **options) -> list[dict]:
    """Compare ``models`` on one reference and write the report to ``out_dir``; returns the rows.

    Args:
        hr: the reference (high-resolution) image.
        lr: a real low-resolution image of the same subject, or None to degrade ``hr``.
        models: method names; de-duplicated, and a network without shipped weights is refused
            before any work starts.
        out_dir: the report folder (created; must not be a file).
        progress: ``progress(done, total, method)`` with fractional methods done.
        cancel: checked between batches of every method (``Cancelled``).
        **options: the ``CompareOptions`` fields by name.

    Each row: method, kind, psnr, ssim, dice_mean, hd95_mean, then dice_L, hd95_L, voldiff_pct_L per
    label L, and seconds (the super-resolution time).
    """
    opts = CompareOptions(**options)
    from MedSRExtension.core.validation import check_volume
    check_volume(hr, "the reference image")
    if lr is not None:
        check_volume(lr, "the low-resolution image")
    scale = opts.scale if (opts.scale is not None or lr is not None) else 2.0
    models = check_models(models, opts.weights, max(scale) if np.ndim(scale) else scale, opts.mode)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MedSRError(f"output folder {out_dir} is a file; choose a folder")
    setup = _setup(hr, lr, opts)
    if opts.mode is None:  # the mode came from the data: check the weights for it before any SR
        check_models(models, opts.weights, max(scale) if np.ndim(scale) else scale, setup.mode)
    hr = setup.hr
    segmenter = segmentation.fit(opts.seg, hr) if opts.seg else None
    data_range = float(np.max(hr.array) - np.min(hr.array))
    fg = hr.array > segmentation.multi_otsu_thresholds(hr.array, 2)[0] if opts.mask == "foreground" else None
    sr_options = InferenceOptions(scale=setup.sr_scale, mode=setup.mode, axis=setup.axis, device=opts.device,
                                  weights=opts.weights)
    rows: list[dict] = []
    shown: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    saved: dict[str, Volume] = {}
    for n, name in enumerate(models):
        base, adapt = _split_method(name)
        sr, seconds = _super_resolve_timed(setup.lr, sr_options.replace(model=base, adapt=adapt), n, len(models),
                                           progress, cancel)
        scored = score_against_reference(sr, hr, segmenter, foreground=fg, data_range=data_range, name=name)
        kind = get_spec(base).kind + ("+adapt" if adapt else "")
        rows.append({"method": name, "kind": kind, **scored.metrics, "seconds": round(seconds, 3)})
        shown[name] = (scored.image, scored.labels_on_reference)
        if opts.save_volumes:
            saved[name] = sr
            if segmenter is not None:
                saved[f"{name}_seg"] = scored.labels
        if progress is not None:
            progress(n + 1, len(models), name)
    settings = _settings(setup, opts, data_range, fg is not None, segmenter)
    write_comparison_report(out_dir, rows, settings, hr, segmenter, shown, setup.axis)
    if opts.save_volumes:
        _save_volumes(out_dir, setup.lr, segmenter, saved)
    return rows


def _super_resolve_timed(lr: Volume, options: InferenceOptions, n: int, total: int, progress: Progress,
                         cancel) -> tuple[Volume, float]:
    """Method ``n`` of ``total`` on the LR image, and its seconds; progress runs to 0.9 of the method."""
    from MedSRExtension.pipeline import run_pipeline  # lazy: torch is heavy

    def step(done, tot):
        if progress is not None:
            progress(n + 0.9 * done / max(tot, 1), total, options.model)
    step(0, 1)
    start = time.perf_counter()
    sr = run_pipeline(lr, options, progress=step, cancel=cancel)
    return sr, time.perf_counter() - start


def _settings(setup: _Setup, opts: CompareOptions, data_range: float, masked: bool, segmenter) -> dict:
    """The report's settings lines."""
    hr, lr = setup.hr, setup.lr
    return {
        "reference": f"{'x'.join(map(str, hr.shape_ijk))} voxels, spacing {_fmt_tuple(hr.spacing)} mm",
        "low resolution": ("given" if setup.lr_given else f"{opts.degradation} x{float(setup.sr_scale):g}"
                           + (f" ({opts.thickness_mm:g} mm slices)" if opts.thickness_mm is not None else ""))
        + f", {'x'.join(map(str, lr.shape_ijk))} voxels, spacing {_fmt_tuple(lr.spacing)} mm",
        "super-resolution": f"mode {setup.mode}, axis {setup.axis}",
        "image metrics": f"data range {data_range:.4g} (reference max - min), "
                         + ("foreground mask (reference > 2-class Otsu threshold)" if masked else "all voxels"),
        "segmentation": segmenter.description if segmenter is not None else "none",
    }


@dataclass
class Scored:
    """One result compared with the reference: metrics (psnr, ssim, dice_mean, hd95_mean, dice_L,
    hd95_L, voldiff_pct_L), the result on the reference grid (NaN where it does not reach), its
    segmentation on its own grid, and that segmentation on the reference grid."""

    metrics: dict
    image: np.ndarray
    labels: Volume | None
    labels_on_reference: np.ndarray | None


def score_against_reference(result: Volume, reference: Volume, segmenter=None, foreground: np.ndarray | None = None,
          data_range: float | None = None, image_metrics: bool = True, name: str = "result") -> Scored:
    """Compare ``result`` with ``reference`` over the reference voxels the result covers.

    PSNR/SSIM (``image_metrics``) use ``data_range`` (default: the reference's max − min) and the
    ``foreground`` mask if given. With a ``segmenter`` (fitted on the reference), the result is
    segmented on its own grid, brought onto the reference grid by nearest neighbour, and compared
    with ``segmenter.reference``."""
    image, valid = onto_grid(result, reference)
    if not valid.any():
        raise MedSRError(f"'{name}' does not overlap the reference; check that both are in the same space")
    box = labelmetrics.bounding_box(valid)
    metrics: dict = {}
    if image_metrics:
        if data_range is None:
            data_range = float(np.max(reference.array) - np.min(reference.array))
        m = valid[box] if foreground is None else (valid & foreground)[box]
        if not m.any():
            raise MedSRError("the foreground mask selects no voxel the result covers; drop the mask")
        res = compare_volumes(Volume(image[box], reference.spacing), Volume(reference.array[box], reference.spacing),
                              data_range=data_range, mask=None if m.all() else m)
        metrics.update(psnr=res["psnr"], ssim=res["ssim"])
    else:
        metrics.update(psnr=math.nan, ssim=math.nan)
    labels = on_ref = None
    if segmenter is not None:
        labels = segmenter.apply(result)
        on_ref = _labels_onto(labels, reference)
        p = np.where(valid, on_ref, 0)[box]
        r = np.where(valid, segmenter.reference.array, 0)[box]
        lm = labelmetrics.label_metrics(p, r, reference.spacing, labels=segmenter.labels)
        metrics.update(dice_mean=lm["dice_mean"], hd95_mean=lm["hd95_mean"])
        for lab in lm["labels"]:
            metrics[f"dice_{lab}"] = lm["dice"][lab]
            metrics[f"hd95_{lab}"] = lm["hd95"][lab]
            metrics[f"voldiff_pct_{lab}"] = lm["volume_diff_pct"][lab]
    return Scored(metrics, np.where(valid, image, np.nan), labels, on_ref)


def _fmt_tuple(values) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


# --- report ------------------------------------------------------------------------------------

def _write_text(path: Path, text: str) -> None:
    atomic.write_text(path, text)


def columns(rows: list[dict]) -> list[str]:
    """CSV column order: the fixed columns, then per-label columns in label order, then seconds."""
    fixed = ["method", "kind", "psnr", "ssim", "dice_mean", "hd95_mean"]
    extra = [k for k in rows[0] if k not in fixed and k != "seconds"] if rows else []
    return fixed + extra + ["seconds"]


def _csv_value(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    return "" if v is None else str(v)


def to_csv(rows: list[dict]) -> str:
    cols = columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow([_csv_value(row.get(c, math.nan)) for c in cols])
    return buf.getvalue()


def best_method(rows: list[dict], key: str = "dice_mean") -> str | None:
    """The method with the highest finite ``key`` (first on ties), or None."""
    vals = [(r[key], -i, r["method"]) for i, r in enumerate(rows)
            if isinstance(r.get(key), float) and math.isfinite(r[key])]
    return max(vals)[2] if vals else None


def to_markdown(rows: list[dict], settings: dict) -> str:
    """A Markdown report: the settings, one table row per method, and the best methods."""
    labels = sorted({int(k.split("_")[1]) for r in rows for k in r if k.startswith("dice_") and k != "dice_mean"})
    head = ["method", "PSNR (dB)", "SSIM", "Dice mean", "HD95 mean (mm)"]
    head += [f"Dice {lab}" for lab in labels] + [f"HD95 {lab} (mm)" for lab in labels] + ["time (s)"]

    def f(v, digits):
        if not isinstance(v, float):
            return "–"
        return "inf" if math.isinf(v) else ("–" if math.isnan(v) else f"{v:.{digits}f}")

    lines = [f"- {k}: {v}" for k, v in settings.items()] + [""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        cells = [r["method"], f(r.get("psnr"), 2), f(r.get("ssim"), 4), f(r.get("dice_mean"), 4),
                 f(r.get("hd95_mean"), 2)]
        cells += [f(r.get(f"dice_{lab}"), 4) for lab in labels] + [f(r.get(f"hd95_{lab}"), 2) for lab in labels]
        cells.append(f(r.get("seconds"), 1))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    best_psnr = best_method(rows, "psnr")
    if best_psnr:
        lines.append(f"Best PSNR: **{best_psnr}**.")
    best_dice = best_method(rows, "dice_mean")
    if best_dice:
        lines.append(f"Best segmentation Dice (mean over labels): **{best_dice}**.")
    return "\n".join(lines) + "\n"


def write_comparison_report(out_dir: Path, rows: list[dict], settings: dict, hr: Volume, segmenter, shown: dict,
                 axis: str) -> None:
    """metrics.csv, metrics.md, slices.png and (with a segmentation) dice.png, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(out_dir / "metrics.csv", to_csv(rows))
    _write_text(out_dir / "metrics.md", to_markdown(rows, settings))
    from MedSRExtension.evaluation import compare_figures

    ref_labels = segmenter.reference.array if segmenter is not None else None
    atomic.write_with(out_dir / "slices.png",
                      lambda tmp: compare_figures.slices_figure(tmp, hr, ref_labels, shown, axis))
    if segmenter is not None:
        atomic.write_with(out_dir / "dice.png", lambda tmp: compare_figures.dice_figure(tmp, rows, segmenter.labels))


def _save_volumes(out_dir: Path, lr: Volume, segmenter, saved: dict) -> None:
    from MedSRExtension.core.volume_io import save_volume

    folder = out_dir / "volumes"
    folder.mkdir(exist_ok=True)
    save_volume(lr, folder / "lr.nii.gz")
    if segmenter is not None:
        save_volume(segmenter.reference, folder / "reference_seg.nii.gz")
    for name, vol in saved.items():
        save_volume(vol, folder / f"{name}.nii.gz")


# MedSRLib's name for score_against_reference until the Slicer glue switches (issue 12); remove then.
score = score_against_reference

__all__ = ["run_comparison", "CompareOptions", "score_against_reference", "Scored", "onto_grid", "crop", "check_models",
           "make_lr", "to_csv", "to_markdown", "best_method", "columns", "AXES"]
