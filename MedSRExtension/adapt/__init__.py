"""Self-supervised adaptation to one volume for through-plane (thick-slice) super-resolution.

The idea is that of SMORE (Zhao et al., IEEE TMI 2021) and ECLARE (Remedios et al., 2025), in our
own code: a thick-slice volume is sharp in-plane, so its own in-plane slices, degraded along one
in-plane direction with the volume's slice profile (thickness, gap or overlap) at the through-plane
factor, are training pairs for exactly this volume's through-plane problem: no external data, no
domain shift. A shipped per-axis network (``pfmdn``) is fine-tuned on them from its weights within a
time budget, then run through-plane by the engine over the two families of planes that contain the
axis, which it averages (``inference.engine``).

``super_resolve(..., mode="throughplane", adapt=True | minutes | AdaptOptions)`` lands here. The tuned
weights live only in memory unless ``save_adapted`` names a .safetensors file. The result's
``meta["adapt"]`` says what was used (profile, its source, steps, loss, seconds).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from MedSRExtension.core import geometry, intensity
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.run_progress import ADAPT_TOTAL, ADAPT_TUNING
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.adapt.finetune import Budget, FitReport, fine_tune, warm_start
from MedSRExtension.adapt.pairs import PairSampler
from MedSRExtension.adapt.profile import SliceProfile, slice_profile
from MedSRExtension.adapt.selfcheck import held_out_indices

DEFAULT_MINUTES = {"cpu": 3.0, "gpu": 0.75}
TRAIN_SHARE, PROGRESS_TOTAL = ADAPT_TUNING, ADAPT_TOTAL  # the fine-tune's progress units, then the engine's
METHOD_SUFFIX = "+adapt"

__all__ = ["AdaptOptions", "SliceProfile", "slice_profile", "super_resolve_adapted", "split_method",
           "options_from", "METHOD_SUFFIX"]


@dataclass
class AdaptOptions:
    """How to adapt: a budget (``minutes`` of wall time and/or ``steps``; default by device), the slice
    profile (``thickness_mm`` overrides the header; without either it is estimated from the volume
    unless ``estimate`` is False; ``profile`` gaussian or box), a seed, and where to save the tuned
    weights (``save_adapted``; nothing is saved without it)."""

    minutes: Optional[float] = None
    steps: Optional[int] = None
    thickness_mm: Optional[float] = None
    profile: str = "gaussian"
    estimate: bool = True
    seed: int = 0
    save_adapted: Optional[str] = None


def options_from(adapt) -> AdaptOptions:
    """``True`` -> the default budget; a number -> that many minutes; a dict (JSON) or AdaptOptions -> those."""
    if isinstance(adapt, AdaptOptions):
        return adapt
    if isinstance(adapt, dict):
        try:
            return AdaptOptions(**adapt)
        except TypeError as exc:
            raise MedSRError(f"unknown adaptation option in {sorted(adapt)}: {exc}; known: minutes, steps, "
                             "thickness_mm, profile, estimate, seed") from None
    if adapt is True:
        return AdaptOptions()
    if isinstance(adapt, (int, float)) and not isinstance(adapt, bool):
        if not (math.isfinite(adapt) and adapt > 0):
            raise MedSRError(f"adapt takes True or a positive number of minutes, got {adapt}")
        return AdaptOptions(minutes=float(adapt))
    raise MedSRError(f"adapt takes True, a number of minutes or AdaptOptions, got {adapt!r}")


def split_method(name: str) -> tuple[str, Optional[float | bool]]:
    """A comparison method name: 'pfmdn+adapt' -> ('pfmdn', True); 'pfmdn+adapt2' -> ('pfmdn', 2.0)
    minutes; anything else -> (name, None)."""
    base, sep, minutes = name.partition(METHOD_SUFFIX)
    if not sep:
        return name, None
    if not minutes:
        return base, True
    try:
        return base, float(minutes)
    except ValueError:
        raise MedSRError(f"'{name}': write pfmdn+adapt or pfmdn+adaptMINUTES, e.g. pfmdn+adapt2") from None


def _check_save_path(path) -> None:
    if path is not None and not str(path).endswith(".safetensors"):
        raise MedSRError(f"--save-adapted needs a .safetensors file name, got '{path}'")


def _save(net, path: str, profile: SliceProfile, report: FitReport, model: str) -> None:
    from MedSRExtension.zoo.safetensors_io import export_safetensors
    _check_save_path(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise MedSRError(f"folder for the adapted weights does not exist: {parent}")
    export_safetensors(net, str(path), {"architecture": model, "adapted_from": report.start_weights,
                                         "slice_profile": profile.describe(), "steps": report.steps})


def _keep_better(volume: Volume, run, axis: str, factor: float, profile: SliceProfile, tuned):
    """The tuned network when it beats its start, run as the engine runs the start's weights, on the
    held-out pairs (adapt.selfcheck); else None: run the start weights. A tuning that overfits or learns
    the wrong profile must not make the result worse. Returns (network or None, what was kept, the kept
    one's check against B-spline, or None without held-out pairs)."""
    from MedSRExtension.adapt.selfcheck import self_check
    after = self_check(volume, run, axis, factor, profile.thickness, profile.shape, network=tuned,
                       label=f"{run.model}+adapt")
    if after is None:
        return tuned, "tuned weights (no held-out pairs to check them on)", None
    before = self_check(volume, run, axis, factor, profile.thickness, profile.shape,
                        label=f"{run.model} (start weights)")
    if after.psnr >= before.psnr:
        return tuned, f"tuned weights ({after.psnr:.2f} dB vs start {before.psnr:.2f} dB on held-out pairs)", after
    return None, f"start weights (tuned {after.psnr:.2f} dB < start {before.psnr:.2f} dB on held-out pairs)", before


def _sampler(volume: Volume, axis: str, profile: SliceProfile, seed: int) -> PairSampler:
    """Training pairs from the volume's in-plane slices (sharp in both directions), the self-check's
    held-out slices left out, in the orientations the engine runs: (f, 1) on planes whose rows are the
    axis, (1, f) where it is the columns (axis i)."""
    a = AXES.index(axis)
    array, _ = intensity.normalize(volume.array)  # the same window the engine's pass will use
    planes = np.moveaxis(array, 2 - a, 0)
    held_out = held_out_indices(planes.shape[0])
    train_planes = np.delete(planes, held_out, axis=0) if planes.shape[0] > len(held_out) else planes
    orientations = {"k": (False,), "j": (False, True), "i": (True,)}[axis]
    return PairSampler(train_planes, profile, rows=min(24, volume.array.shape[2 - a]), transposed=orientations,
                       seed=seed)


def super_resolve_adapted(volume: Volume, options, progress=None, cancel=None) -> Volume:
    """Adapt ``options.model`` to ``volume`` and super-resolve it through-plane (see the module
    docstring); ``options`` is the run's ``InferenceOptions`` with ``adapt`` set."""
    from MedSRExtension.core.validation import check_volume
    from MedSRExtension.inference import engine
    from MedSRExtension.inference.devices import resolve_device

    opts = options_from(options.adapt)
    options = options.for_volume(volume)[0]  # "auto" decided; any other mode than throughplane was refused
    model = "pfmdn" if options.model == "bicubic" else options.model
    save_path = opts.save_adapted or options.save_adapted
    _check_save_path(save_path)
    check_volume(volume, "input volume")
    factors, axis = engine.resolve_factors(volume, "throughplane", options.axis,
                                           scale=None if options.spacing is not None else options.scale,
                                           spacing=options.spacing)
    a = AXES.index(axis)
    if volume.array.shape[2 - a] < 2:
        raise MedSRError(f"adaptation needs at least two slices along axis {axis}")
    factor = geometry.effective_factors(volume, factors)[a]
    given = opts.thickness_mm if opts.thickness_mm is not None else options.thickness_mm
    profile = slice_profile(volume, axis, factor, given, opts.profile, opts.estimate)
    dev = resolve_device(options.device)
    budget = Budget(minutes=opts.minutes if opts.minutes is not None or opts.steps is not None
                    else DEFAULT_MINUTES["cpu" if dev.type == "cpu" else "gpu"], steps=opts.steps)

    sampler = _sampler(volume, axis, profile, opts.seed)
    ratio = profile.thickness / profile.factor
    net, start = warm_start(model, (sampler.scale, 1.0), options.weights, options.preset, thickness=ratio)
    report = FitReport(start_weights=start)

    def train_progress(fraction: float) -> None:
        if progress is not None:
            progress(int(TRAIN_SHARE * fraction), PROGRESS_TOTAL)

    fine_tune(net, sampler, budget, dev, train_progress, cancel, report=report)

    def run_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(TRAIN_SHARE + int((PROGRESS_TOTAL - TRAIN_SHARE) * done / max(total, 1)), PROGRESS_TOTAL)

    run = options.replace(model=model, scale=factors, spacing=None, mode="throughplane", axis=axis,
                          adapt=None, save_adapted=None, thickness_mm=profile.thickness_mm)
    chosen, kept, check = _keep_better(volume, run, axis, factor, profile, net.eval())
    result = engine.run_inference(volume, run, progress=run_progress, cancel=cancel, network=chosen)
    first, last = report.loss_drop()
    result.meta["adapt"] = {"profile": profile.describe(), "start_weights": report.start_weights,
                            "steps": report.steps, "seconds": round(report.seconds, 1),
                            "loss_first": first, "loss_last": last, "train_factor": sampler.scale,
                            "kept": kept}
    if check is not None:
        result.meta["gate_report"] = check
    if save_path is not None:
        _save(net, str(save_path), profile, report, model)
    return result
