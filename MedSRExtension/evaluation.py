"""Honest evaluation on the corpus validation regions (``medsr eval`` and training-time validation).

Protocol, for every validation image (see ``data.corpus``) and scale s:

1. the HR image is the validation region in file units, trimmed so both sides are multiples of 12
   (every scale 2, 3, 4 then gives an exact LR grid; the same pixels are scored at every scale);
2. the LR image is the engine's degradation of it (``bicubic`` or ``kspace``);
3. each method upsamples the LR image the way users get it: ``super_resolve`` on a one-slice
   ``Volume`` (robust normalisation of the input, the model with its shipped, verified weights,
   back to input units) — networks and classical baselines alike;
4. SR and HR are mapped by the HR's robust window (0.5/99.5 percentiles) to [0, 1], clipped, and
   scored with PSNR (data range 1) and SSIM.

Training-time validation (``Validator`` in the trainer) follows the same steps on fixed 96×96-pixel
crops (the most structured crop of each region) and calls the network directly, without tiling.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .errors import MedSRError
from .intensity import denormalize, normalize, robust_range

TRIM = 12
BASELINES = ("nearest", "bicubic", "bspline")


@dataclass
class EvalItem:
    """One validation image at one scale: HR and LR in file units."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def degrade_image(hr: np.ndarray, scale: tuple[float, float], degradation: str) -> np.ndarray:
    """The engine's degradation of a 2D image (file units in, file units out)."""
    from .data.patches import degrade2d
    return degrade2d(np.asarray(hr, dtype=np.float32), degradation, scale)


def _structured_crop(img: np.ndarray, crop: int) -> np.ndarray:
    """The crop×crop window (on a coarse grid, multiples of TRIM) with the largest standard deviation."""
    h, w = img.shape
    ch, cw = min(crop, h) // TRIM * TRIM, min(crop, w) // TRIM * TRIM
    best, where = -1.0, (0, 0)
    for r in range(0, h - ch + 1, max(TRIM, ch // 2)):
        for c in range(0, w - cw + 1, max(TRIM, cw // 2)):
            s = float(img[r:r + ch, c:c + cw].std())
            if s > best:
                best, where = s, (r, c)
    r, c = where
    return img[r:r + ch, c:c + cw]


def validation_set(scale: Sequence[float], degradation: str = "bicubic", crop: Optional[int] = None,
                   names: Optional[Sequence[str]] = None) -> list[EvalItem]:
    """HR/LR pairs of every validation region (whole, or its most structured ``crop``-pixel window)."""
    from .data.corpus import validation_regions
    sh, sw = float(scale[0]), float(scale[1])
    items = []
    for region in validation_regions():
        if names and region.name not in names:
            continue
        img = region.array
        if crop:
            img = _structured_crop(img, crop)
        h, w = img.shape[0] // TRIM * TRIM, img.shape[1] // TRIM * TRIM
        hr = np.ascontiguousarray(img[:h, :w], dtype=np.float32)
        items.append(EvalItem(region.name, hr, degrade_image(hr, (sh, sw), degradation)))
    if not items:
        raise MedSRError(f"no validation images selected (names {list(names or [])})")
    return items


def score(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``sr`` against ``hr``, both in file units, scored in HR's robust window."""
    from .metrics import psnr, ssim
    if sr.shape != hr.shape:
        raise MedSRError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
    window = robust_range(hr)
    a = np.clip(normalize(hr, window)[0], 0, 1)
    b = np.clip(normalize(sr, window)[0], 0, 1)
    return float(psnr(b, a, data_range=1.0)), float(ssim(b, a, data_range=1.0))


@torch.no_grad()
def network_upscale(module: torch.nn.Module, lr: np.ndarray, scale: tuple[float, float],
                    device: torch.device, arbitrary: bool = False) -> np.ndarray:
    """Run a network on a whole 2D LR image the way inference does: robust normalisation, model,
    back to file units (no tiling)."""
    x, window = normalize(lr)
    t = torch.from_numpy(np.ascontiguousarray(x))[None, None].to(device)
    was_training = module.training
    module.eval()
    y = module(t, scale=tuple(scale)) if arbitrary else module(t)
    if was_training:
        module.train()
    y = y["sr"] if isinstance(y, dict) else y
    return denormalize(y[0, 0].float().cpu().numpy(), window)
