"""Data consistency for through-plane results: the result, re-degraded with the assumed slice profile,
should reproduce the input slices.

Forward model ``A`` (n input slices from N output slices): ``core.degradations.slice_profile_weights``,
the same profile the training pairs and the self-check use, LR slice q centred at output index
``(q + 0.5)·N/n - 0.5``. Iterative back-projection: ``SR ← SR + U·(LR − A·SR)``, where ``U`` spreads each
slice's residual linearly between the slice centres (a smooth correction: ``Aᵀ`` would put it only
under thin profiles and draw stripes across the gaps). A few iterations bring ``A·SR`` to the input
within a fraction of its noise; what the network added between the slices is kept.
"""
from __future__ import annotations

import numpy as np

from MedSRExtension.core.degradations import slice_profile_weights
from MedSRExtension.core.errors import MedSRError

ITERATIONS = 3


def spread_weights(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation from the input slice centres onto the output grid (constant
    beyond the first and last centre)."""
    centres = (np.arange(n_in) + 0.5) * (n_out / n_in) - 0.5
    return np.column_stack([np.interp(np.arange(n_out), centres, e) for e in np.eye(n_in)])


def residual_db(lr: np.ndarray, sr: np.ndarray, dim: int, thickness: float, shape: str = "gaussian") -> float:
    """How far the re-degraded result is from the input: RMS of ``LR − A·SR`` relative to the input's
    robust range, in dB below it (higher is more consistent)."""
    a = slice_profile_weights(sr.shape[dim], lr.shape[dim], thickness, shape)
    r = np.moveaxis(lr, dim, 0).astype(np.float32) - np.tensordot(a.astype(np.float32), np.moveaxis(
        np.asarray(sr, dtype=np.float32), dim, 0), axes=(1, 0))
    lo, hi = np.percentile(lr, [0.5, 99.5])
    rms = float(np.sqrt(np.mean(r ** 2)))
    return float("inf") if rms == 0 else 20.0 * np.log10(max(float(hi - lo), 1e-12) / rms)


def project(lr: np.ndarray, sr: np.ndarray, dim: int, thickness: float, shape: str = "gaussian",
            iterations: int = ITERATIONS) -> np.ndarray:
    """``sr`` (float) made consistent with ``lr`` along array axis ``dim`` (module docstring);
    ``thickness``: the slice profile's width in output slices. Neither input is modified."""
    if lr.ndim != sr.ndim or any(a != b for d, (a, b) in enumerate(zip(lr.shape, sr.shape)) if d != dim):
        raise MedSRError(f"data consistency needs the input {lr.shape} and result {sr.shape} to differ "
                         f"only along axis {dim}")
    n_in, n_out = lr.shape[dim], sr.shape[dim]
    if n_out < n_in:
        raise MedSRError(f"the result has fewer slices ({n_out}) than the input ({n_in})")
    a = slice_profile_weights(n_out, n_in, thickness, shape).astype(np.float32)
    u = spread_weights(n_out, n_in).astype(np.float32)
    x = np.moveaxis(np.asarray(sr, dtype=np.float32), dim, 0).copy()  # float32: a whole volume, twice
    y = np.moveaxis(np.asarray(lr, dtype=np.float32), dim, 0)
    for _ in range(int(iterations)):
        x += np.tensordot(u, y - np.tensordot(a, x, axes=(1, 0)), axes=(1, 0))
    return np.ascontiguousarray(np.moveaxis(x, 0, dim))
