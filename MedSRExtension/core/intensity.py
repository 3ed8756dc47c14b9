"""Robust intensity normalisation: models see [0, 1]-ish values; outputs go back to input units."""
from __future__ import annotations

import numpy as np

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
_MAX_SAMPLES = 2_000_000


def robust_range(array: np.ndarray) -> tuple[float, float]:
    """(lo, hi) = the 0.5th and 99.5th percentiles of the finite voxels (a strided sample of big
    volumes); hi > lo always, so constant images normalise without dividing by zero."""
    flat = np.asarray(array).reshape(-1)
    if flat.size > _MAX_SAMPLES:
        flat = flat[:: flat.size // _MAX_SAMPLES + 1]
    flat = flat[np.isfinite(flat)].astype(np.float64, copy=False)
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(flat, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalize(array: np.ndarray, window: tuple[float, float] | None = None):
    """Map ``array`` linearly so the robust range becomes [0, 1] (values outside are kept, not
    clipped: negative HU and bright spots survive). Returns (float32 array, (lo, hi))."""
    lo, hi = window if window is not None else robust_range(array)
    out = (np.asarray(array, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return out, (lo, hi)


def denormalize(array: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Inverse of ``normalize``: back to the input's units, float32."""
    lo, hi = window
    return (np.asarray(array, dtype=np.float32) * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)


def cast_like(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float voxels into an integer ``dtype`` (or cast to a float dtype)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(array), info.min, info.max).astype(dtype)
    return np.asarray(array).astype(dtype)
