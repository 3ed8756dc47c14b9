"""Estimate the slice thickness of a thick-slice volume from the volume itself (ESPRESO-like).

When no header says how thick the slices are, the volume still does: anatomy looks alike in every
direction, so the through-plane axis should look like the in-plane data blurred by the slice profile
and sampled at the slice spacing. The statistic compared is how fast the through-plane signal
decorrelates: the mean squared difference of samples two slices apart over that of neighbours (1 for
a signal with no correlation between slices, towards 4 for a smooth one); a ratio, so it does not
depend on how much contrast each direction happens to have. For the in-plane lines it is computed for
each candidate thickness from their power spectrum, in closed form: blurring by the profile multiplies
the spectrum by ``|H(w)|²`` and a difference at lag ``L`` by ``|e^{iwL} - 1|²``. The thickness whose
simulated ratio matches the measured one is the estimate; it is reported as estimated.

This is the idea of ESPRESO (Han et al., 2023: estimate the slice profile by making the degraded
in-plane data indistinguishable from the through-plane data), with a closed-form match instead of a
GAN. It assumes an isotropic object and a profile of the given shape (Gaussian: FWHM; box: width).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from MedSRExtension.core.degradations import FWHM_PER_SIGMA
from MedSRExtension.core.intensity import normalize
from MedSRExtension.core.volume import AXES, Volume

MIN_SLICES = 4  # fewer thick slices than this carry too few neighbour pairs to measure
CANDIDATES = np.geomspace(0.2, 4.0, 96)  # thickness / spacing ratios tried
FOREGROUND = 0.1  # of the robust range: the box the statistics are measured in holds all voxels above it
MAX_LINES = 4096  # in-plane lines per direction used for the spectrum (evenly chosen)


def _foreground_box(array: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of the voxels above FOREGROUND (the whole array when none are)."""
    inside = array > FOREGROUND
    if not inside.any():
        return tuple(slice(None) for _ in array.shape)
    box = []
    for ax in range(array.ndim):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(array.ndim) if a != ax)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _line_spectrum(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum of ``lines`` (rows) after mirror extension (no edge steps), with the
    angular frequency of each bin in radians per sample. Scaled so that sum(P·g)/len is the mean of
    a filtered signal's square."""
    if len(lines) > MAX_LINES:
        lines = lines[np.linspace(0, len(lines) - 1, MAX_LINES).astype(int)]
    ext = np.concatenate([lines, lines[:, ::-1]], axis=1).astype(np.float64)
    m = ext.shape[1]
    power = (np.abs(np.fft.rfft(ext, axis=1)) ** 2).mean(axis=0)
    weights = np.full(power.shape, 2.0)  # rfft: each inner bin stands for itself and its mirror
    weights[0] = 1.0
    if m % 2 == 0:
        weights[-1] = 1.0
    omega = 2.0 * np.pi * np.arange(power.size) / m
    return power * weights / (m * m), omega


def _transfer(omega: np.ndarray, width: float, shape: str) -> np.ndarray:
    """|H(w)|² of a slice profile ``width`` samples wide (Gaussian FWHM or box width)."""
    if shape == "box":
        return np.sinc(omega * width / (2.0 * np.pi)) ** 2
    sigma = width / FWHM_PER_SIGMA
    return np.exp(-(sigma * omega) ** 2)


def _simulated(power: np.ndarray, omega: np.ndarray, lag: float, widths: np.ndarray, shape: str) -> np.ndarray:
    """The ratio of mean squared differences at lags 2·``lag`` and ``lag`` samples after each profile width."""
    one, two = 2.0 - 2.0 * np.cos(omega * lag), 2.0 - 2.0 * np.cos(2.0 * omega * lag)
    out = []
    for w in widths:
        h = power * _transfer(omega, w, shape)
        below = float(np.sum(h * one))
        out.append(float(np.sum(h * two)) / below if below > 0 else np.nan)
    return np.array(out)


def estimate_thickness(volume: Volume, axis: str, shape: str = "gaussian") -> Optional[float]:
    """The slice thickness (mm) along ``axis`` that makes the in-plane data look like the through-plane
    data, or None when the volume cannot tell: fewer than MIN_SLICES slices, slices no coarser than
    the in-plane pixels, or a match outside the range tried (0.2 to 4 times the spacing)."""
    a = AXES.index(axis)
    spacing = float(volume.spacing[a])
    n = volume.array.ndim - 1 - a  # numpy axis of ``axis`` ([k, j, i] order)
    if volume.array.shape[n] < MIN_SLICES:
        return None
    array, _ = normalize(volume.array)
    array = array[_foreground_box(array)]
    if array.shape[n] < MIN_SLICES:
        return None
    x = np.moveaxis(array, n, 0)  # float32 temporaries, float64 sums: a large CT stays within memory
    neighbours = float(np.mean(np.square(x[1:] - x[:-1]), dtype=np.float64))
    if not neighbours > 0:  # no structure between slices: nothing to measure
        return None
    measured = float(np.mean(np.square(x[2:] - x[:-2]), dtype=np.float64)) / neighbours
    simulated = []
    for b in (c for c in range(3) if c != a):
        d = float(volume.spacing[b])
        if d >= spacing or array.shape[array.ndim - 1 - b] < 8:
            continue
        lines = np.moveaxis(array, array.ndim - 1 - b, -1)
        power, omega = _line_spectrum(lines.reshape(-1, lines.shape[-1]))
        simulated.append(_simulated(power, omega, spacing / d, CANDIDATES * spacing / d, shape))
    curve = np.mean(simulated, axis=0) if simulated else np.array([np.nan])  # increasing in the thickness
    if not np.isfinite(curve).all():
        return None
    if not (curve[0] <= measured <= curve[-1]):
        return None
    ratio = float(np.exp(np.interp(measured, curve, np.log(CANDIDATES))))
    return ratio * spacing
