"""The ``scanner`` degradation: low-resolution images as scanners make them, drawn at random.

Bicubic downsampling (the default family, kept for comparability with published numbers) is not how
an MR or CT image is acquired. A ``scanner`` pair draws, per image:

1. **intensity non-uniformity** (probability 1/2): a smooth multiplicative field (a random quadratic
   surface over the image, peak deviation 5-20 %) applied to the HR image itself: the coil's shading
   is in the object as imaged, so the network learns to keep it, not to remove it;
2. **the resolution loss**, one of three equally likely:
   - MR k-space truncation: the centre of the spectrum (``degradations.kspace``), real part or
     magnitude;
   - the same with a Tukey window over the kept band (taper fraction 0.3-0.8), as scanners apodise
     to damp Gibbs ringing;
   - a Gaussian point-spread function of FWHM 0.8-1.5 LR pixels sampled at the LR voxel centres
     (CT reconstruction kernels, and MR after filtering);
3. **acquisition noise** (probability 4/5): Gaussian (CT) or Rician (magnitude MR, about the image's
   dark level) with a standard deviation of 0.5-4 % of the image's robust intensity range (SNR
   about 25 to 200).

LR voxel q sits at HR index ``(q + 0.5)·f - 0.5`` as in every other degradation. Everything is a
pure function of the generator, so training pairs are reproducible and the validation pairs of
``medsr eval --degradation scanner`` are fixed per image (seeded by its name).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.fft
from scipy.ndimage import gaussian_filter, map_coordinates

from MedSRExtension.core.degradations import FWHM_PER_SIGMA, gaussian_noise, kspace, rician_noise
from MedSRExtension.core.errors import MedSRError

NAME = "scanner"
BIAS_PROBABILITY = 0.5
BIAS_RANGE = (0.05, 0.20)
TUKEY_RANGE = (0.3, 0.8)
PSF_FWHM_LR = (0.8, 1.5)
NOISE_PROBABILITY = 0.8
NOISE_FRACTION = (0.005, 0.04)
LOSSES = ("kspace", "kspace-window", "psf")


def image_rng(name: str) -> np.random.Generator:
    """The fixed generator of a named validation image (the same pair in every ``medsr eval``)."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def bias_field(shape: tuple[int, int], peak: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field over a 2D image: 1 + a random quadratic surface whose largest
    deviation from 1 is ``peak``."""
    y, x = (np.linspace(-1.0, 1.0, n) for n in shape)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    terms = np.stack([xx, yy, xx * yy, xx ** 2 - 1 / 3, yy ** 2 - 1 / 3])
    surface = np.tensordot(rng.normal(size=len(terms)), terms, axes=1)
    scale = np.abs(surface).max()
    return 1.0 + (peak * surface / scale if scale > 0 else 0.0)


def tukey(r: np.ndarray, taper: float) -> np.ndarray:
    """A Tukey window at relative frequency ``r`` = |k| / (band half-width): 1 up to ``1 - taper``, a
    cosine taper to 0 at the band edge r = 1, 0 beyond."""
    r = np.abs(np.asarray(r, dtype=np.float64))
    edge = 1.0 - taper
    w = np.where(r <= edge, 1.0, 0.5 * (1.0 + np.cos(np.pi * (r - edge) / max(taper, 1e-9))))
    return np.where(r <= 1.0, w, 0.0)


def _windowed_kspace(hr: np.ndarray, factors: tuple[float, float], taper: float, output: str) -> np.ndarray:
    """k-space truncation with a Tukey window over the kept band: the HR spectrum is first weighted by
    the window of the LR band, then cropped exactly."""
    spec = scipy.fft.fft2(hr)
    for axis, f in enumerate(factors):
        n = hr.shape[axis]
        m = max(1, int(round(n / f)))
        w = tukey(np.fft.fftfreq(n, d=1.0 / n) / (m / 2.0), taper)
        spec = spec * (w[:, None] if axis == 0 else w[None, :])
    band_limited = scipy.fft.ifft2(spec).real
    return np.asarray(kspace(band_limited, (factors[1], factors[0], 1.0), output=output), dtype=np.float64)


def _psf(hr: np.ndarray, factors: tuple[float, float], fwhm_lr: float) -> np.ndarray:
    """A Gaussian PSF of ``fwhm_lr`` LR pixels, sampled at the LR voxel centres."""
    sigma = [fwhm_lr * f / FWHM_PER_SIGMA for f in factors]
    blurred = gaussian_filter(hr.astype(np.float64), sigma, mode="reflect")
    grids = [(np.arange(max(1, int(round(n / f)))) + 0.5) * (n / max(1, int(round(n / f)))) - 0.5
             for n, f in zip(hr.shape, factors)]
    rr, cc = np.meshgrid(*grids, indexing="ij")
    return map_coordinates(blurred, [rr, cc], order=1, mode="nearest")


@dataclass(frozen=True)
class ScannerDraw:
    """The drawn parameters of one scanner pair (module docstring): shading peak (0: none), the
    resolution loss (one of ``LOSSES``), k-space ``output``, Tukey ``taper``, PSF FWHM in LR pixels,
    noise kind (None, "gaussian", "rician") and its level as a fraction of the intensity range."""

    bias_peak: float
    loss: str
    output: str
    taper: float
    psf_fwhm: float
    noise: Optional[str]
    noise_fraction: float


def draw(rng: np.random.Generator) -> ScannerDraw:
    """Draw the parameters of one pair."""
    bias = rng.uniform(*BIAS_RANGE) if rng.random() < BIAS_PROBABILITY else 0.0
    loss = LOSSES[int(rng.integers(len(LOSSES)))]
    output = "magnitude" if rng.random() < 0.5 else "real"
    taper, fwhm = rng.uniform(*TUKEY_RANGE), rng.uniform(*PSF_FWHM_LR)
    noise = (("rician" if rng.random() < 0.5 else "gaussian") if rng.random() < NOISE_PROBABILITY else None)
    return ScannerDraw(float(bias), loss, output, float(taper), float(fwhm), noise, float(rng.uniform(*NOISE_FRACTION)))


def apply(hr: np.ndarray, scale: tuple[float, float], d: ScannerDraw, rng: np.random.Generator,
          intensity_range: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) float32 of 2D ``hr`` degraded by the drawn ``d`` at per-axis factors ``scale`` = (rows,
    cols); ``rng`` draws the shading surface and the noise. ``intensity_range``: what the noise level is
    relative to (default: the image's robust 0.5-99.5 percentile range; training passes 1 for its
    normalised patches). The returned HR carries the shading, if drawn; the input is never modified."""
    hr = np.asarray(hr, dtype=np.float64)
    if hr.ndim != 2:
        raise MedSRError(f"the scanner degradation takes a 2D image, got shape {hr.shape}")
    fr, fc = (float(v) for v in scale)
    if fr < 1 or fc < 1:
        raise MedSRError(f"scanner degradation factors must be at least 1, got {scale}")
    lo, hi = np.percentile(hr, [0.5, 99.5])
    if intensity_range is None:
        intensity_range = float(hi - lo) or 1.0
    if d.bias_peak > 0:
        hr = hr * bias_field(hr.shape, d.bias_peak, rng)
    if d.loss == "kspace":
        lr = np.asarray(kspace(hr, (fc, fr, 1.0), output=d.output), dtype=np.float64)
    elif d.loss == "kspace-window":
        lr = _windowed_kspace(hr, (fr, fc), d.taper, d.output)
    else:
        lr = _psf(hr, (fr, fc), d.psf_fwhm)
    sigma = d.noise_fraction * float(intensity_range)
    if d.noise == "rician":  # magnitude noise about the image's dark level (0 for MR, air for CT)
        lr = np.asarray(rician_noise(lr - lo, sigma, rng), dtype=np.float64) + lo
    elif d.noise == "gaussian":
        lr = gaussian_noise(lr, sigma, rng)
    return hr.astype(np.float32), np.asarray(lr, dtype=np.float32)


def scanner_pair(hr: np.ndarray, scale: tuple[float, float], rng: np.random.Generator,
                 intensity_range: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) of a 2D image degraded as a scanner would: ``draw`` then ``apply`` with one generator."""
    return apply(hr, scale, draw(rng), rng, intensity_range)
