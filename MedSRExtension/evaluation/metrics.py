"""Image-quality metrics for super-resolution: PSNR and SSIM (2D and 3D), with mask and border shave.

Both follow the usual definitions so numbers are comparable with published work and with
scikit-image (which the tests use as the reference; it is not needed at run time):

* ``psnr = 10 log10(data_range**2 / MSE)``; identical images give ``inf``.
* ``ssim`` is Wang et al. (2004) with a Gaussian window (sigma 1.5, truncated at 3.5 sigma, i.e. 11
  taps), K1 = 0.01, K2 = 0.03, filtered with mirror ("reflect") boundaries, and — as scikit-image does —
  the mean is taken over the map minus a strip of one window radius at every border, where the window
  would reach outside the image. 3D arrays ``(K, J, I)`` use a 3D Gaussian window.

``data_range`` is always explicit: a wrong range silently changes both metrics, so none is guessed.
Axes of size 1 are dropped first (a one-slice volume is a 2D image). ``shave`` removes that many
border voxels at both ends of every remaining axis before anything is computed (the usual SR
evaluation that ignores the border the upsampler cannot reconstruct); it may also be one value per
axis of the input array. ``mask`` (boolean, same shape as the images) restricts the average to the
foreground: the MSE over masked voxels for PSNR, the mean of the SSIM map over masked voxels (inside
the border strip) for SSIM.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import Volume

__all__ = ["psnr", "ssim", "ssim_map", "compare_volumes"]

ShaveT = int | Sequence[int]


def _as_float(name: str, a) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number)) or np.iscomplexobj(arr):
        raise MedSRError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise MedSRError(f"{name} contains NaN or Inf values; replace them before computing metrics")
    return arr


def _prepare(pred, ref, data_range, mask, shave: ShaveT):
    """Validate, crop the shave border, drop size-1 axes. Returns (pred, ref, range, mask or None)."""
    p = _as_float("pred", pred)
    r = _as_float("ref", ref)
    if p.shape != r.shape:
        raise MedSRError(f"pred has shape {p.shape} but ref has shape {r.shape}; compare images on the same grid")
    if p.ndim not in (2, 3):
        raise MedSRError(f"expected 2D (H, W) or 3D (K, J, I) images, got shape {p.shape}")
    try:
        data_range = float(data_range)
    except (TypeError, ValueError):
        raise MedSRError(f"data_range must be a positive number, got {data_range!r}") from None
    if not np.isfinite(data_range) or data_range <= 0:
        raise MedSRError(f"data_range must be a positive number (the reference's max - min), got {data_range}")
    m = None
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != p.shape:
            raise MedSRError(f"mask has shape {m.shape} but the images have shape {p.shape}")
        m = m.astype(bool, copy=False)
    sh = (np.broadcast_to(np.asarray(shave, dtype=int), (p.ndim,)) if np.ndim(shave) == 0
          else np.asarray(shave, dtype=int))
    if sh.shape != (p.ndim,) or np.any(sh < 0):
        raise MedSRError(f"shave must be a non-negative int or one per axis ({p.ndim} values), got {shave!r}")
    crop = []
    for n, s in zip(p.shape, sh):
        s = int(s) if n > 1 else 0
        if 2 * s >= n:
            raise MedSRError(f"shave={s} removes the whole image along an axis of size {n}; use a smaller shave")
        crop.append(slice(s, n - s))
    crop = tuple(crop)
    keep = tuple(slice(None) if n > 1 else 0 for n in p.shape)
    p, r = p[crop][keep], r[crop][keep]
    if m is not None:
        m = m[crop][keep]
        if not m.any():
            raise MedSRError("the mask selects no voxel (after shave); pass a mask that covers the foreground")
    if p.ndim == 0:
        raise MedSRError("the images have a single voxel; metrics need an image")
    return p, r, data_range, m


def psnr(pred, ref, data_range: float, mask=None, shave: ShaveT = 0) -> float:
    """Peak signal-to-noise ratio in dB of ``pred`` against ``ref``; ``inf`` when they are equal.

    ``data_range`` is the peak value range (e.g. the reference's max - min, or 1.0 for [0, 1] images).
    """
    p, r, rng, m = _prepare(pred, ref, data_range, mask, shave)
    diff = (p - r) if m is None else (p - r)[m]
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(rng * rng / mse))


def _ssim_map(
    pred: np.ndarray,
    ref: np.ndarray,
    data_range: float,
    sigma: float = 1.5,
    truncate: float = 3.5,
    K1: float = 0.01,
    K2: float = 0.03,
    use_sample_covariance: bool = False,
    per_slice: bool = False,
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The SSIM map of two validated float64 arrays of equal shape, and the slices of its interior.

    ``per_slice`` filters a 3D array slice by slice along axis 0 (2D windows) instead of in 3D.
    """
    if sigma <= 0 or truncate <= 0 or K1 < 0 or K2 < 0:
        raise MedSRError("sigma and truncate must be positive and K1, K2 non-negative")
    radius = int(truncate * sigma + 0.5)
    win = 2 * radius + 1
    sigmas = [float(sigma)] * pred.ndim
    spatial = list(range(pred.ndim))
    if per_slice and pred.ndim == 3:
        sigmas[0] = 0.0
        spatial = [1, 2]
    for ax in spatial:
        if pred.shape[ax] < win:
            raise MedSRError(
                f"SSIM needs at least {win} voxels along every axis (window of sigma {sigma}), got shape "
                f"{pred.shape}; use a larger region{' or per_slice=True' if pred.ndim == 3 else ''}"
            )

    def filt(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=sigmas, truncate=truncate, mode="reflect")

    n_win = win ** len(spatial)
    cov_norm = n_win / (n_win - 1) if use_sample_covariance else 1.0
    ux, uy = filt(pred), filt(ref)
    vx = cov_norm * (filt(pred * pred) - ux * ux)
    vy = cov_norm * (filt(ref * ref) - uy * uy)
    vxy = cov_norm * (filt(pred * ref) - ux * uy)
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    interior = tuple(
        slice(radius, n - radius) if ax in spatial else slice(None) for ax, n in enumerate(pred.shape)
    )
    return smap, interior


def ssim(
    pred,
    ref,
    data_range: float,
    mask=None,
    shave: ShaveT = 0,
    sigma: float = 1.5,
    truncate: float = 3.5,
    K1: float = 0.01,
    K2: float = 0.03,
    use_sample_covariance: bool = False,
    per_slice: bool = False,
) -> float:
    """Mean structural similarity of ``pred`` against ``ref`` (1.0 when identical).

    Gaussian-weighted as in Wang et al. 2004; ``use_sample_covariance=False`` matches that paper
    (scikit-image's ``structural_similarity(..., gaussian_weights=True, use_sample_covariance=False)``),
    True matches scikit-image's default normalisation by N-1. 3D arrays use a 3D window unless
    ``per_slice`` asks for 2D windows on each slice along the first axis (for thick-slice data with
    fewer slices than the window; the mean is then over all slices' maps).
    """
    p, r, rng, m = _prepare(pred, ref, data_range, mask, shave)
    smap, interior = _ssim_map(p, r, rng, sigma, truncate, K1, K2, use_sample_covariance, per_slice)
    inner = smap[interior]
    if m is None:
        return float(inner.mean(dtype=np.float64))
    inner_mask = m[interior]
    if not inner_mask.any():
        raise MedSRError(
            "the mask selects no voxel away from the image border (SSIM ignores one window radius at "
            "each border); use a larger mask or region"
        )
    return float(inner[inner_mask].mean(dtype=np.float64))


def ssim_map(pred, ref, data_range: float, per_slice: bool = False, **options) -> np.ndarray:
    """The local SSIM of every voxel (for display next to the images), size-1 axes dropped.

    ``options`` are those of :func:`ssim` (sigma, truncate, K1, K2, use_sample_covariance). Values
    within one window radius of the border use mirrored data; :func:`ssim` leaves them out."""
    p, r, rng, _ = _prepare(pred, ref, data_range, None, 0)
    return _ssim_map(p, r, rng, per_slice=per_slice, **options)[0]


def compare_volumes(
    pred: Volume, ref: Volume, data_range: float | None = None, mask=None, shave: ShaveT = 0
) -> dict:
    """PSNR and SSIM of two volumes on the same voxel grid.

    ``data_range`` defaults to the reference's max - min. ``mask`` may be a boolean array or a Volume
    (non-zero = foreground). SSIM uses a 3D window when every axis of size > 1 (after shave) has at
    least 11 voxels, otherwise 2D windows slice by slice along k; ``ssim_mode`` says which
    ("2d", "3d" or "slicewise").
    """
    for name, v in (("pred", pred), ("ref", ref)):
        if not isinstance(v, Volume):
            raise MedSRError(f"{name} must be a Volume, got {type(v).__name__}; use psnr()/ssim() for arrays")
    if pred.array.shape != ref.array.shape:
        raise MedSRError(
            f"pred has shape {pred.array.shape} (k, j, i) but ref has {ref.array.shape}; "
            "resample one onto the other's grid before comparing"
        )
    if isinstance(mask, Volume):
        mask = mask.array != 0
    if data_range is None:
        r = _as_float("ref", ref.array)
        data_range = float(r.max() - r.min())
        if data_range <= 0:
            raise MedSRError("the reference volume is constant; pass data_range explicitly")
    p, _, _, _ = _prepare(pred.array, ref.array, data_range, mask, shave)
    radius = int(3.5 * 1.5 + 0.5)
    win = 2 * radius + 1
    if p.ndim == 2:
        mode = "2d"
    elif min(p.shape) >= win:
        mode = "3d"
    else:
        mode = "slicewise"
    value = ssim(pred.array, ref.array, data_range, mask=mask, shave=shave, per_slice=(mode == "slicewise"))
    return {
        "psnr": psnr(pred.array, ref.array, data_range, mask=mask, shave=shave),
        "ssim": value,
        "ssim_mode": mode,
        "data_range": float(data_range),
    }
