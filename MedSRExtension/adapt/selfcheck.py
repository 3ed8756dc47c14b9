"""Do no harm: before a through-plane result is handed over, the network is checked against cubic
B-spline on held-out pairs of the same volume, and the better of the two is returned.

A thick-slice volume is sharp in-plane. A few of its in-plane slices, degraded along one in-plane
direction with the assumed slice profile at the through-plane factor (the degradation the adaptation
trains on, ``adapt.pairs``), are pairs whose truth is known. The network and B-spline both
upsample them exactly as the engine runs a through-plane pass (a 2D (f, 1) pass); their PSNR against
the truth, in the volume's normalised units, decides. The network is kept only when it beats B-spline
by ``MARGIN_DB``: on data unlike its training (another contrast, a slice gap it was not trained for)
a network can lose to interpolation, and a user must never get a worse result without a word.

The held-out slices are chosen evenly through the foreground, and an adaptation never trains on them
(``held_out_indices``), so the same check also decides whether tuned weights beat their start. It also
measures the data-consistency step (``core.slice_consistency``) on the same pairs for the network, so that
the pipeline enforces the slice profile on a kept network result only where it does not cost this volume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from MedSRExtension.core import intensity
from MedSRExtension.core.degradations import slice_profile_weights
from MedSRExtension.core.slice_consistency import project
from MedSRExtension.core.volume import AXES, Volume

MARGIN_DB = 0.1
HELD_OUT = 4
BORDER = 2
MIN_LR = 6


@dataclass
class GateReport:
    """What the check measured and decided."""
    candidate: str
    psnr: float
    bspline_psnr: float
    pairs: int
    consistent_psnr: Optional[float] = None  # the candidate, then made consistent with the pairs' LR

    @property
    def consistency_pays(self) -> Optional[bool]:
        """Whether the data-consistency step may change the result the gate returns: a kept candidate only
        where the step was no worse on the held-out pairs (it measured positive on the corpus in every
        setting, yet a volume may differ); never the B-spline fallback, which is returned exactly as the
        gate compared it (made consistent it lost 0.02 dB to plain B-spline on a real volume with gaps
        although the pairs said it gained). None when not measured."""
        if not self.passed:
            return False
        return None if self.consistent_psnr is None else self.consistent_psnr >= self.psnr

    @property
    def gain_db(self) -> float:
        return self.psnr - self.bspline_psnr

    @property
    def passed(self) -> bool:
        return self.gain_db >= MARGIN_DB

    def describe(self) -> str:
        verdict = "kept" if self.passed else f"replaced by B-spline (not {MARGIN_DB:g} dB better)"
        return (f"self-check on {self.pairs} held-out in-plane pairs: {self.candidate} {self.psnr:.2f} dB, "
                f"B-spline {self.bspline_psnr:.2f} dB ({self.gain_db:+.2f}): {verdict}")


def held_out_indices(n: int, count: int = HELD_OUT) -> list[int]:
    """Evenly spaced in-plane slices inside the middle 80 % of ``n`` (kept out of adaptation)."""
    if n < 3:
        return []
    lo, hi = int(n * 0.1), max(int(n * 0.1) + 1, int(np.ceil(n * 0.9)))
    return sorted(set(np.linspace(lo, hi - 1, min(count, hi - lo)).round().astype(int).tolist()))


def _pairs(volume: Volume, axis: str, factor: float, thickness: float, shape: str) -> tuple[np.ndarray, ...]:
    """Held-out (lr, hr) stacks: each held-out in-plane slice degraded along its rows and along its
    columns (turned onto the rows), in normalised units; the exact fraction of ``factor`` with q <= 8."""
    from fractions import Fraction
    frac = Fraction(factor).limit_denominator(8)
    p, q = frac.numerator, frac.denominator
    a = AXES.index(axis)
    array, _ = intensity.normalize(volume.array)
    planes = np.moveaxis(array, 2 - a, 0)
    planes = planes[held_out_indices(planes.shape[0])]
    lrs, hrs = [], []
    for hr in (planes, np.swapaxes(planes, 1, 2)):
        n_hr = hr.shape[1] // p * p
        if n_hr // p * q < MIN_LR or hr.shape[2] < 8:  # too few LR rows for a network to read
            continue
        hr = np.ascontiguousarray(hr[:, :n_hr], dtype=np.float32)
        w = slice_profile_weights(n_hr, n_hr // p * q, thickness * (p / q) / factor, shape).astype(np.float32)
        lrs.append(np.einsum("rh,nhw->nrw", w, hr, optimize=True))
        hrs.append(hr)
    return lrs, hrs, p / q


def _psnr(pairs: list) -> float:
    """PSNR (peak 1: normalised units) over the pooled squared error of (sr, hr) stacks, borders left out."""
    b = BORDER
    sq = [((sr[:, b:-b, b:-b] - hr[:, b:-b, b:-b]) ** 2).astype(np.float64) for sr, hr in pairs]
    err = sum(float(x.sum()) for x in sq) / sum(x.size for x in sq)
    return float("inf") if err == 0 else 10 * np.log10(1.0 / err)


#: The orientation the engine runs a through-plane pass in, per axis (True: the factor on the columns,
#: (1, f)), as ``adapt`` trains for: k -> rows; j -> rows and columns; i -> columns.
ORIENTATIONS = {"k": (False,), "j": (False, True), "i": (True,)}


def _upsample(lr: np.ndarray, factor: float, options, network, model: str, on_columns: bool,
              fraction: float) -> np.ndarray:
    """The engine's 2D pass over a stack of LR images degraded along their rows: at (f, 1), or with
    ``on_columns`` turned so the factor lies on the columns, (1, f), and turned back; ``fraction``
    (slice thickness / spacing) picks the shipped weights the real run reads (the stack's spacing is
    1 mm, so its thickness in mm is that fraction)."""
    from MedSRExtension.inference.engine import run_inference
    stack = np.ascontiguousarray(np.swapaxes(lr, 1, 2)) if on_columns else lr
    vol = Volume(stack, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    run = options.replace(model=model, scale=(factor, 1.0, 1.0) if on_columns else (1.0, factor, 1.0),
                          spacing=None, mode="inplane", axis="k", adapt=None, save_adapted=None, clamp="none",
                          out_dtype="float32", weights=options.weights if model == options.model else "auto",
                          thickness_mm=fraction)
    out = run_inference(vol, run, network=network if model == options.model else None).array
    return np.swapaxes(out, 1, 2) if on_columns else out


def self_check(volume: Volume, options, axis: str, factor: float, thickness: float, shape: str = "gaussian",
               network=None, label: Optional[str] = None) -> Optional[GateReport]:
    """Measure ``options.model`` as the engine runs it (or the in-memory ``network``) against B-spline
    on the held-out pairs, in the orientations the engine uses along ``axis``; None when the volume is
    too small to hold any."""
    lrs, hrs, f = _pairs(volume, axis, factor, thickness, shape)
    if not lrs:
        return None
    turns = [ORIENTATIONS[axis][n % len(ORIENTATIONS[axis])] for n in range(len(lrs))]
    fraction = thickness / factor
    sr = [(_upsample(lr, f, options, network, options.model, t, fraction), hr) for lr, hr, t in zip(lrs, hrs, turns)]
    bs = [(_upsample(lr, f, options, None, "bspline", t, fraction), hr) for lr, hr, t in zip(lrs, hrs, turns)]
    width = thickness * f / factor  # the pairs' profile width in HR rows, as _pairs made them

    def consistent(pairs: list) -> float:
        return _psnr([(project(lr, out, 1, width, shape), hr) for (out, hr), lr in zip(pairs, lrs)])

    return GateReport(label or options.model, _psnr(sr), _psnr(bs), sum(hr.shape[0] for hr in hrs), consistent(sr))
