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
    return normalize_into(np.array(array, dtype=np.float32), (lo, hi)), (lo, hi)


def normalize_into(array: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """``normalize`` of a float32 array the caller owns, in place (no temporary): returns ``array``."""
    lo, hi = window
    array -= np.float32(lo)
    array /= np.float32(hi - lo)
    return array


def denormalize(array: np.ndarray, window: tuple[float, float], inplace: bool = False) -> np.ndarray:
    """Inverse of ``normalize``: back to the input's units, float32. ``inplace``: overwrite ``array`` (a
    float32 array the caller owns) instead of allocating the result: no volume-sized temporaries."""
    lo, hi = window
    out = array if inplace else np.array(array, dtype=np.float32)
    out *= np.float32(hi - lo)
    out += np.float32(lo)
    return out


def clamp_to_input(array: np.ndarray, source: np.ndarray) -> str:
    """Clip ``array`` in place into ``source``'s value range (a result cannot hold values its input never
    had: a CT below its air value, an MR below 0); returns what was done, for the provenance."""
    lo, hi = float(np.min(source)), float(np.max(source))
    outside = int(np.count_nonzero((array < lo) | (array > hi)))
    np.clip(array, lo, hi, out=array)
    return f"clamped to the input range {lo:.6g}..{hi:.6g} ({outside} voxels)"


def cast_like(array: np.ndarray, dtype: np.dtype, inplace: bool = False) -> np.ndarray:
    """Round and clip float voxels into an integer ``dtype`` (or cast to a float dtype). ``inplace``: round
    and clip in ``array`` itself (a float array the caller owns), so only the result is allocated."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        work = array if inplace else np.array(array, dtype=np.result_type(array.dtype, np.float32))
        np.rint(work, out=work)
        np.clip(work, info.min, info.max, out=work)
        return work.astype(dtype)
    return np.asarray(array).astype(dtype)
