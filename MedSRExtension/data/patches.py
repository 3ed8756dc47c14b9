"""LR/HR training patches from the training regions of the corpus.

Each source image is normalised once with the engine's ``intensity.normalize`` (the same robust
percentile window inference applies to an input volume), so a network trains on the intensity
scale it will see. A batch is drawn image by image:

1. pick a source (the six corpus files equally often; the MNI template in axial, coronal or
   sagittal orientation, from one of its two training sub-volumes, so no patch straddles the
   validation slab);
2. cut an HR patch with a margin, rejecting patches that are mostly background (mean or standard
   deviation below ``TISSUE_MEAN`` / ``TISSUE_STD``, up to ``MAX_RETRIES`` tries; the last try is
   kept so sampling always terminates);
3. apply one of the 8 flips/90° rotations;
4. make the LR patch with the engine's degradation (``bicubic``, ``kspace``, ``thickslice``, or a
   ``scanner`` draw: core/scanner_degradation.py, relative to the normalised range 1), then
   drop the margin from both, so the LR pixels near the patch border are as in a whole-image
   degradation.

Sampling is a pure function of (seed, iteration, rank): resuming training at iteration n draws
exactly the batches an uninterrupted run would have drawn, with no sampler state to save.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.intensity import normalize
from MedSRExtension.core.scanner_degradation import NAME as SCANNER
from MedSRExtension.core.scanner_degradation import scanner_pair
from .corpus import training_regions

TISSUE_MEAN = 0.05
TISSUE_STD = 0.02
MAX_RETRIES = 10
MARGIN_LR = 2  # LR pixels of context cut away after degradation
ORIENTATIONS = ("axial", "coronal", "sagittal")


@dataclass
class Source:
    """A normalised training image: 2D (rows, cols) or a 3D MNI sub-volume (k, j, i)."""

    name: str
    array: np.ndarray


def load_sources() -> list[Source]:
    """All training regions, each normalised by the engine's robust window (computed on that region)."""
    return [Source(r.name, normalize(r.array)[0]) for r in training_regions()]


def dihedral(patch: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of a 2D array: ``code`` in 0..7 (bit 2 = transpose-like flip)."""
    out = np.rot90(patch, code % 4)
    if code >= 4:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _plane(vol: np.ndarray, orientation: str, index: int) -> np.ndarray:
    if orientation == "axial":
        return vol[index]
    if orientation == "coronal":
        return vol[:, index, :]
    return vol[:, :, index]


def _axis_of(orientation: str) -> int:
    return ORIENTATIONS.index(orientation)


def is_tissue(patch: np.ndarray) -> bool:
    """Whether a normalised patch holds enough tissue (not flat background)."""
    return float(patch.mean()) >= TISSUE_MEAN and float(patch.std()) >= TISSUE_STD


def degrade2d(hr: np.ndarray, kind: str, scale: tuple[float, float], thickness: Optional[float] = None) -> np.ndarray:
    """The engine's degradation of a 2D (rows, cols) image by per-axis factors (sh, sw).

    ``bicubic``/``kspace`` shrink both axes; ``thickslice`` models thick slices along the rows
    (sw must be 1): through-plane training pairs, the rows axis standing for the slice axis.
    ``thickness`` (thickslice only): the slices' thickness as a fraction of their spacing (default 1,
    contiguous; below 1 a gap between slices, above 1 an overlap).
    """
    from MedSRExtension.core.degradations import degrade
    sh, sw = float(scale[0]), float(scale[1])
    if kind == "thickslice":
        if sw != 1.0:
            raise MedSRError(f"thickslice degrades one axis only; use a scale (f, 1), got {scale}")
        out = degrade(hr, "thickslice", scale=sh, axis="j",
                      thickness=None if thickness is None else float(thickness) * sh)
    elif thickness is not None:
        raise MedSRError(f"a slice thickness is for the thickslice degradation, not {kind}")
    else:
        out = degrade(hr, kind, scale=(sw, sh, 1.0))
    return np.asarray(out, dtype=np.float32)


def make_pair(hr: np.ndarray, kind: str, scale: tuple[float, float], rng: np.random.Generator,
              thickness: Optional[float] = None, intensity_range: Optional[float] = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) of a 2D image: ``degrade2d`` for the fixed kinds (HR unchanged), or a ``scanner`` pair
    drawn from ``rng`` (core/scanner_degradation.py: the HR may carry a drawn shading field;
    ``intensity_range``: what its noise level is relative to)."""
    if kind == SCANNER:
        if thickness is not None:
            raise MedSRError("a slice thickness is for the thickslice degradation, not scanner")
        return scanner_pair(hr, scale, rng, intensity_range)
    return np.asarray(hr, dtype=np.float32), degrade2d(hr, kind, scale, thickness)


def check_thickness_range(thickness: Optional[Sequence[float]], degradation: str) -> Optional[tuple[float, float]]:
    """A training range of slice thickness (fraction of the spacing) as (lo, hi), or None; a clear error
    for a range no run can use."""
    if thickness is None:
        return None
    if degradation != "thickslice":
        raise MedSRError(f"a slice thickness range is for the thickslice degradation, not {degradation}")
    lo, hi = (float(v) for v in thickness)
    if not (0 < lo <= hi <= 3):
        raise MedSRError(f"slice thickness range must be 0 < LO <= HI <= 3 (fractions of the spacing), got {lo:g},{hi:g}")
    return lo, hi


def _lr_size(n: int, s: float) -> int:
    return max(1, int(round(n / s)))


class PatchSampler:
    """Draws (lr, hr) float32 tensor batches, shapes (B, 1, h, w) and (B, 1, h·sh, w·sw).

    ``lr_patch``: LR patch side; ``scales``: candidate (sh, sw) pairs (one is drawn per batch, so an
    arbitrary-scale model can train on several); ``degradation``: the engine's degradation kind;
    ``thickness`` (thickslice only): a (lo, hi) range of slice thickness as a fraction of the slice
    spacing, one value drawn per batch (e.g. (0.25, 0.7): thin slices with gaps); None: contiguous.
    The HR side along an axis is ``lr_patch · s`` (s must make that an integer).
    """

    def __init__(self, lr_patch: int, scales: Sequence[tuple[float, float]], degradation: str = "bicubic",
                 seed: int = 0, sources: list[Source] | None = None, tissue: bool = True,
                 thickness: Optional[Sequence[float]] = None):
        if lr_patch < 4:
            raise MedSRError(f"LR patch size must be at least 4 pixels, got {lr_patch}")
        self.lr_patch = int(lr_patch)
        self.scales = [tuple(float(v) for v in s) for s in scales]
        for sh, sw in self.scales:
            for s in (sh, sw):
                if abs(self.lr_patch * s - round(self.lr_patch * s)) > 1e-6:
                    raise MedSRError(f"LR patch {lr_patch} times scale {s} must be a whole number of pixels")
        self.degradation = degradation
        self.thickness = check_thickness_range(thickness, degradation)
        self.seed = int(seed)
        self.tissue = tissue
        self.sources = sources if sources is not None else load_sources()
        self._fit_cache: dict = {}
        self._groups: dict[str, list[Source]] = {}
        for src in self.sources:
            self._groups.setdefault(src.name.split("_")[0], []).append(src)

    def rng(self, iteration: int, rank: int = 0) -> np.random.Generator:
        """The generator of one batch: a pure function of (seed, iteration, rank)."""
        return np.random.default_rng([self.seed, int(iteration), int(rank)])

    def _choices(self, ph: int, pw: int) -> list[list[tuple[Source, str]]]:
        """Per source group, the (source, orientation) pairs whose planes can hold a (ph, pw) patch
        (MNI coronal/sagittal planes are only 80-85 slices tall); groups with none are dropped."""
        key = (ph, pw)
        if key not in self._fit_cache:
            groups = []
            for members in self._groups.values():
                fits = []
                for src in members:
                    if src.array.ndim == 3:
                        for ori in ORIENTATIONS:
                            plane = _plane(src.array, ori, 0).shape
                            if plane[0] >= ph and plane[1] >= pw:
                                fits.append((src, ori))
                    elif src.array.shape[0] >= ph and src.array.shape[1] >= pw:
                        fits.append((src, ""))
                if fits:
                    groups.append(fits)
            if not groups:
                raise MedSRError(f"HR patch {ph}x{pw} does not fit in any training image; use a smaller --patch")
            self._fit_cache[key] = groups
        return self._fit_cache[key]

    def _cut(self, rng: np.random.Generator, ph: int, pw: int) -> tuple[np.ndarray, str]:
        """One HR patch of (ph, pw) pixels from a random source, preferring tissue.

        Every source group (file) is equally likely; inside the MNI group a (sub-volume, orientation)
        pair is drawn with probability proportional to its number of voxels."""
        groups = self._choices(ph, pw)
        group = groups[rng.integers(len(groups))]
        weights = np.array([src.array.size for src, _ in group], dtype=float)
        last = None
        for _ in range(MAX_RETRIES if self.tissue else 1):
            src, ori = group[rng.choice(len(group), p=weights / weights.sum())] if len(group) > 1 else group[0]
            arr = src.array
            where = src.name
            if ori:
                axis = _axis_of(ori)
                arr = _plane(arr, ori, int(rng.integers(arr.shape[axis])))
                where = f"{src.name}:{ori}"
            r = int(rng.integers(arr.shape[0] - ph + 1))
            c = int(rng.integers(arr.shape[1] - pw + 1))
            last = (arr[r:r + ph, c:c + pw], where)
            if not self.tissue or is_tissue(last[0]):
                break
        return last

    def sample(self, batch: int, iteration: int, rank: int = 0):
        """A batch for ``iteration``: (lr, hr, (sh, sw))."""
        rng = self.rng(iteration, rank)
        sh, sw = self.scales[rng.integers(len(self.scales))] if len(self.scales) > 1 else self.scales[0]
        m = MARGIN_LR
        ph = int(round((self.lr_patch + 2 * m) * sh))
        pw = int(round((self.lr_patch + 2 * m) * sw))
        hh, hw = int(round(self.lr_patch * sh)), int(round(self.lr_patch * sw))
        mh, mw = int(round(m * sh)), int(round(m * sw))
        thick = None if self.thickness is None else float(rng.uniform(*self.thickness))
        lrs, hrs = [], []
        for _ in range(batch):
            code = int(rng.integers(8))
            # rotate the square-or-not cut so the augmented patch has shape (ph, pw)
            shape = (ph, pw) if code % 2 == 0 else (pw, ph)
            hr, _ = self._cut(rng, *shape)
            hr, lr = make_pair(dihedral(hr, code), self.degradation, (sh, sw), rng, thick, intensity_range=1.0)
            if lr.shape != (_lr_size(ph, sh), _lr_size(pw, sw)):
                raise MedSRError(f"degradation '{self.degradation}' returned shape {lr.shape}, "
                                 f"expected {(_lr_size(ph, sh), _lr_size(pw, sw))}")
            lrs.append(lr[m:m + self.lr_patch, m:m + self.lr_patch])
            hrs.append(hr[mh:mh + hh, mw:mw + hw])
        lr_t = torch.from_numpy(np.stack(lrs)[:, None].copy())
        hr_t = torch.from_numpy(np.stack(hrs)[:, None].copy())
        return lr_t, hr_t, (sh, sw)
