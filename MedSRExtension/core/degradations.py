"""Degradations that turn a high-resolution (HR) image into a low-resolution (LR) one.

Training pairs and the ``compare`` command are made with these, so they model how LR images really
arise and they put the LR voxels on the grid DESIGN.md defines (the same grid ``super_resolve``
maps back from):

* ``bicubic``    — antialiased bicubic downsampling (torch, ``antialias=True``, ``align_corners=False``),
  applied separably one axis at a time (identical to torch's 2D call, and it extends to 3D);
* ``kspace``     — centre crop of the Fourier spectrum (an MRI acquired with a smaller matrix over
  the same field of view), scaled so the mean intensity is kept;
* ``thickslice`` — a slice profile (Gaussian with FWHM = thickness, or a box of that width)
  integrated over the HR slices, then one LR slice every ``thickness + gap`` HR slices;
* ``gaussian_noise`` / ``rician_noise`` — additive Gaussian noise, or the magnitude of complex
  Gaussian noise added to the image (the noise of magnitude MR images).

Inputs are a 2D array ``(H, W)`` (treated as a one-slice volume ``[k=1, j, i]``), a 3D array
``[k, j, i]``, or a :class:`Volume`; the output has the same kind (arrays as float32; a Volume with
its geometry updated). Factors are given per axis ``(fi, fj, fk)`` or as one number applied to the
axes in the plane perpendicular to ``axis`` (bicubic, kspace) or to ``axis`` alone (thickslice).
Scaling an axis by 1/f gives ``n' = round(n/f)`` voxels of spacing ``s·n/n'`` with the voxel-edge
extent unchanged (``geometry.upsampled_geometry``); LR voxel q is centred at HR index
``(q + 0.5)·n/n' - 0.5``. Inputs are never modified.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import scipy.fft
from scipy.special import ndtr

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import scaled_count, upsampled_geometry
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.core.weight_families import FAMILIES  # noqa: F401 (re-exported)

__all__ = [
    "KINDS",
    "IN_PLANE_KINDS",
    "FAMILIES",
    "NOISES",
    "bicubic",
    "kspace",
    "thickslice",
    "gaussian_noise",
    "rician_noise",
    "degrade",
    "slice_profile_weights",
]

KINDS = ("bicubic", "kspace", "thickslice")  # the one list of degradations (CLI choices, compare, training)
#: The kinds that shrink a 2D image on both axes alike (thickslice shrinks one axis: through-plane only).
IN_PLANE_KINDS = tuple(k for k in KINDS if k != "thickslice")
NOISES = ("gaussian", "rician")

PROFILES = ("gaussian", "box")
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

ImageT = Union[np.ndarray, Volume]
ScaleT = Union[float, Sequence[float]]
RngT = Union[None, int, np.random.Generator]


# ---------------------------------------------------------------------------------------- helpers
def _unpack(x: ImageT) -> tuple[np.ndarray, Volume | None, bool]:
    """(array [k, j, i] float, the Volume or None, whether the input was a 2D array)."""
    if isinstance(x, Volume):
        arr, vol, was2d = x.array, x, False
    else:
        arr = np.asarray(x)
        if arr.ndim not in (2, 3):
            raise MedSRError(f"expected a 2D (H, W) or 3D [k, j, i] array or a Volume, got shape {arr.shape}")
        vol, was2d = None, arr.ndim == 2
        if was2d:
            arr = arr[None]
    if arr.size == 0:
        raise MedSRError(f"the image is empty (shape {arr.shape})")
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MedSRError(f"expected real-valued voxels, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise MedSRError("the image contains NaN or Inf voxels; replace them before degrading")
    return arr, vol, was2d


def _pack(arr: np.ndarray, vol: Volume | None, was2d: bool, factors_ijk) -> ImageT:
    """Wrap the result like the input: a Volume on the scaled grid, or a float32 array."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if vol is None:
        return arr[0] if was2d else arr
    shape, spacing, origin, direction = upsampled_geometry(vol, [1.0 / f for f in factors_ijk])
    if tuple(shape) != arr.shape:  # pragma: no cover - guards the shared rounding rule
        raise MedSRError(f"internal error: degraded shape {arr.shape} differs from the grid {shape}")
    return Volume(arr, spacing, origin, direction)


def _axis_index(axis: str) -> int:
    """'i'/'j'/'k' -> index into (i, j, k)."""
    if axis not in AXES:
        raise MedSRError(f"axis must be one of i, j, k, got {axis!r}")
    return AXES.index(axis)


def _factors(scale: ScaleT, axis: str, inplane: bool) -> tuple[float, float, float]:
    """Per-axis (fi, fj, fk) downsampling factors from a number or a triple; each must be >= 1."""
    a = _axis_index(axis)
    if np.ndim(scale) == 0:
        try:
            f = float(scale)
        except (TypeError, ValueError):
            raise MedSRError(f"scale must be a number or (fi, fj, fk), got {scale!r}") from None
        out = [f if (b != a) == inplane else 1.0 for b in range(3)]
    else:
        out = [float(v) for v in np.asarray(scale, dtype=float).ravel()]
        if len(out) != 3:
            raise MedSRError(f"scale must be one number or three (fi, fj, fk), got {scale!r}")
    if not all(np.isfinite(v) and v >= 1.0 for v in out):
        raise MedSRError(f"degradation factors must be finite and >= 1 (they shrink the image), got {scale!r}")
    return tuple(out)


def _out_counts(shape_kji: Sequence[int], factors_ijk: Sequence[float]) -> tuple[int, int, int]:
    """LR voxel counts [k, j, i] with the rounding of the shared grid (geometry.scaled_count)."""
    return tuple(scaled_count(int(n), 1.0 / f) for n, f in zip(shape_kji, factors_ijk[::-1]))


def _rng(rng: RngT) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise MedSRError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


# ------------------------------------------------------------------------------------- bicubic
def _bicubic_axis(t, dim: int, n_out: int):
    """Antialiased bicubic resize of torch tensor ``t`` along ``dim`` only (separable pass)."""
    import torch.nn.functional as F

    moved = t.movedim(dim, -1)
    lead = moved.shape[:-1]
    flat = moved.reshape(-1, 1, 1, moved.shape[-1])
    out = F.interpolate(flat, size=(1, n_out), mode="bicubic", antialias=True, align_corners=False)
    return out.reshape(*lead, n_out).movedim(-1, dim)


def bicubic(x: ImageT, scale: ScaleT, axis: str = "k") -> ImageT:
    """Antialiased bicubic downsampling by ``scale`` (in-plane of ``axis``, or per axis (fi, fj, fk)).

    The antialiasing kernel is widened by the factor, so detail above the LR Nyquist frequency is
    removed instead of folding back as aliasing (as in PIL / MATLAB ``imresize``)."""
    import torch

    arr, vol, was2d = _unpack(x)
    factors = _factors(scale, axis, inplane=True)
    counts = _out_counts(arr.shape, factors)
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        for dim in (2, 1, 0):  # i, j, k
            if counts[dim] != t.shape[dim]:
                t = _bicubic_axis(t, dim, counts[dim])
        out = t.numpy()
    return _pack(out, vol, was2d, factors)


# -------------------------------------------------------------------------------------- kspace
def kspace(x: ImageT, scale: ScaleT, axis: str = "k", output: str = "real") -> ImageT:
    """Keep only the centre of the Fourier spectrum: an acquisition with a matrix ``n' = round(n/f)``.

    The 2D spectrum of every slice perpendicular to ``axis`` is cropped (with a triple (fi, fj, fk),
    every axis with f > 1 is cropped: a 3D acquisition). The crop is scaled by n'/n per axis so the
    mean intensity is kept, and multiplied by a linear phase so that LR voxel q samples the
    band-limited HR image at ``(q + 0.5)·n/n' - 0.5`` — the centres of the shared grid, so the LR is
    not shifted against ``bicubic``. Odd and even sizes are handled exactly: the kept frequencies
    are the m lowest signed ones, -(m//2) … m-1-m//2 (those of an m-point DFT).
    ``output="real"`` (default) keeps the real part, the exact band-limited image of a real input
    (an unpaired Nyquist bin of an even n' is symmetrised);
    ``"magnitude"`` takes the modulus, as a scanner's magnitude reconstruction would (Gibbs ringing
    then stays non-negative, but the mean is no longer exact).
    """
    if output not in ("real", "magnitude"):
        raise MedSRError(f"output must be 'real' or 'magnitude', got {output!r}")
    arr, vol, was2d = _unpack(x)
    factors = _factors(scale, axis, inplane=True)
    counts = _out_counts(arr.shape, factors)
    axes = [d for d in range(3) if counts[d] != arr.shape[d]]
    if not axes:
        return _pack(arr.astype(np.float32, copy=True), vol, was2d, factors)
    spec = arr.astype(np.float64, copy=False)
    for d in axes:  # transform and crop one axis at a time: later transforms run on less data
        n, m = arr.shape[d], counts[d]
        spec = scipy.fft.fft(spec, axis=d, workers=-1)
        k = np.fft.fftfreq(m, d=1.0 / m).round().astype(int)  # the m lowest signed frequencies
        delta = 0.5 * (n / m - 1.0)  # LR voxel 0 sits at this HR index
        ramp = (m / n) * np.exp(2j * np.pi * k * delta / n)
        shape = [1, 1, 1]
        shape[d] = m
        spec = np.take(spec, k % n, axis=d) * ramp.reshape(shape)
    img = scipy.fft.ifftn(spec, axes=axes, workers=-1)
    out = img.real if output == "real" else np.abs(img)
    return _pack(out, vol, was2d, factors)


# ---------------------------------------------------------------------------------- thickslice
def slice_profile_weights(n: int, n_out: int, thickness: float, profile: str = "gaussian") -> np.ndarray:
    """Weights (n_out, n) mapping n HR slices to n_out thick slices.

    LR slice q is centred at HR index ``c = (q + 0.5)·n/n_out - 0.5``; its weight on HR slice h is the
    integral of the slice profile over that slice's extent [h - 0.5, h + 0.5] (HR slices are treated
    as piecewise constant). ``profile="gaussian"``: FWHM = ``thickness`` HR slices; ``"box"``: width
    ``thickness``. Rows are renormalised to sum to 1 where the profile reaches past the volume."""
    if profile not in PROFILES:
        raise MedSRError(f"slice profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if not (np.isfinite(thickness) and thickness > 0):
        raise MedSRError(f"slice thickness must be a positive number of HR slices, got {thickness}")
    if n < 1 or n_out < 1:
        raise MedSRError(f"need at least one slice, got n={n}, n_out={n_out}")
    centres = (np.arange(n_out) + 0.5) * (n / n_out) - 0.5
    lo = np.arange(n)[None, :] - 0.5 - centres[:, None]
    hi = lo + 1.0
    if profile == "gaussian":
        sigma = thickness / FWHM_PER_SIGMA
        w = ndtr(hi / sigma) - ndtr(lo / sigma)
    else:
        half = thickness / 2.0
        w = np.clip(np.minimum(hi, half) - np.maximum(lo, -half), 0.0, None) / thickness
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):  # pragma: no cover - a centre always lies inside the volume
        raise MedSRError("the slice profile misses every HR slice; use a larger thickness")
    return w / total


def thickslice(
    x: ImageT,
    scale: float,
    axis: str = "k",
    thickness: float | None = None,
    gap: float | None = None,
    profile: str = "gaussian",
) -> ImageT:
    """Thick slices along ``axis``: one LR slice every ``scale`` HR slices (``scale = thickness + gap``).

    ``thickness`` (HR slices) defaults to ``scale - gap`` (contiguous slices when ``gap`` is also
    left out); a negative gap means overlapping slices, as in CT reconstructed with overlap.
    Giving both thickness and gap requires ``thickness + gap == scale``. Only ``axis`` is resampled.
    """
    if np.ndim(scale) != 0:
        raise MedSRError(f"thickslice takes one factor (the LR slice spacing in HR slices), got {scale!r}")
    arr, vol, was2d = _unpack(x)
    factors = _factors(scale, axis, inplane=False)
    f = factors[_axis_index(axis)]
    if thickness is None:
        thickness = f - (0.0 if gap is None else float(gap))
    elif gap is not None and not np.isclose(float(thickness) + float(gap), f, rtol=1e-6, atol=1e-9):
        raise MedSRError(
            f"thickness {thickness} + gap {gap} must equal the slice spacing (scale) {f}; give only two of them"
        )
    thickness = float(thickness)
    if thickness <= 0:
        raise MedSRError(f"slice thickness must be positive, got {thickness} (gap {gap} >= scale {f}?)")
    dim = 2 - _axis_index(axis)
    counts = _out_counts(arr.shape, factors)
    w = slice_profile_weights(arr.shape[dim], counts[dim], thickness, profile)
    moved = np.moveaxis(arr.astype(np.float64, copy=False), dim, 0)
    out = np.tensordot(w, moved, axes=(1, 0))
    return _pack(np.moveaxis(out, 0, dim), vol, was2d, factors)


# --------------------------------------------------------------------------------------- noise
def _check_sigma(sigma: float) -> float:
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise MedSRError(f"noise sigma must be a number, got {sigma!r}") from None
    if not (np.isfinite(sigma) and sigma >= 0):
        raise MedSRError(f"noise sigma must be finite and >= 0 (in image intensity units), got {sigma}")
    return sigma


def gaussian_noise(x: ImageT, sigma: float, rng: RngT = None) -> ImageT:
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` (intensity units).

    ``rng`` is a seed or a numpy Generator, for reproducible training pairs."""
    sigma = _check_sigma(sigma)
    arr, vol, was2d = _unpack(x)
    out = arr.astype(np.float64) + _rng(rng).normal(0.0, sigma, arr.shape)
    return _pack(out, vol, was2d, (1.0, 1.0, 1.0))


def rician_noise(x: ImageT, sigma: float, rng: RngT = None) -> ImageT:
    """Magnitude MR noise: ``|x + n1 + i·n2|`` with n1, n2 ~ N(0, sigma²) independent.

    In the background (x = 0) this gives a Rayleigh distribution of mean ``sigma·sqrt(pi/2)``."""
    sigma = _check_sigma(sigma)
    arr, vol, was2d = _unpack(x)
    g = _rng(rng)
    real = arr.astype(np.float64) + g.normal(0.0, sigma, arr.shape)
    imag = g.normal(0.0, sigma, arr.shape)
    return _pack(np.hypot(real, imag), vol, was2d, (1.0, 1.0, 1.0))


# ---------------------------------------------------------------------------------- dispatcher
def degrade(
    x: ImageT,
    kind: str,
    scale: ScaleT,
    axis: str = "k",
    noise: str | None = None,
    noise_sigma: float = 0.0,
    rng: RngT = None,
    **kw,
) -> ImageT:
    """Make an LR image: ``kind`` in ``KINDS`` with factor ``scale``, then optional noise.

    ``axis`` is the slice axis: bicubic and kspace scale the plane perpendicular to it (or the axes
    of a (fi, fj, fk) triple), thickslice resamples along it. Extra keywords go to the degradation
    (``thickness``, ``gap``, ``profile`` for thickslice; ``output`` for kspace). ``noise`` is
    ``"gaussian"`` or ``"rician"`` with standard deviation ``noise_sigma``, added to the LR image
    (acquisition noise), seeded by ``rng``."""
    funcs = {"bicubic": bicubic, "kspace": kspace, "thickslice": thickslice}
    if kind not in funcs:
        raise MedSRError(f"unknown degradation {kind!r}; choose one of {', '.join(KINDS)}")
    allowed = {"bicubic": set(), "kspace": {"output"}, "thickslice": {"thickness", "gap", "profile"}}[kind]
    extra = set(kw) - allowed
    if extra:
        raise MedSRError(
            f"degradation {kind!r} does not take {', '.join(sorted(extra))}"
            + (f"; it takes {', '.join(sorted(allowed))}" if allowed else "")
        )
    if noise is not None and noise not in NOISES:
        raise MedSRError(f"unknown noise {noise!r}; choose one of {', '.join(NOISES)} or None")
    out = funcs[kind](x, scale, axis=axis, **kw)
    if noise == "gaussian":
        out = gaussian_noise(out, noise_sigma, rng)
    elif noise == "rician":
        out = rician_noise(out, noise_sigma, rng)
    return out
