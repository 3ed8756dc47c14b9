"""LR/HR training pairs from a volume's own in-plane slices (the SMORE idea, our code).

The slices perpendicular to the thick-slice axis are sharp in both directions. Degrading one of
their in-plane directions with the volume's slice profile at the through-plane factor gives an LR
image that looks like a plane containing the thick axis; the original is its HR target. Both in-plane
directions are degraded (each rotated so the degraded direction lies along the rows), and patches
are flipped at random.

A real factor f is realised exactly as a fraction p/q (denominator <= 8): each slice is cropped to a
multiple of p rows, q LR rows then cover p HR rows, and patches start on those blocks, so an LR pixel
and its HR rows stay aligned on the grid of DESIGN.md (LR row r centred at HR row (r + 0.5)·p/q - 0.5).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from MedSRExtension.core.degradations import slice_profile_weights
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.adapt.profile import SliceProfile

MAX_DENOMINATOR = 8
MIN_STD = 0.02  # a patch flatter than this (in normalised units) is background; redrawn
MAX_RETRIES = 8


def train_fraction(factor: float) -> Fraction:
    """The fraction p/q (q <= 8) closest to ``factor`` that training realises exactly."""
    return Fraction(factor).limit_denominator(MAX_DENOMINATOR)


class PairSampler:
    """Batches of (lr, hr) patches, shapes (B, 1, h, w) and (B, 1, h·p/q, w), or transposed.

    ``planes``: (n, H, W) normalised in-plane slices. ``rows``/``cols``: the LR patch size (rows along
    the degraded direction; clipped to what the slices hold). ``transposed``: which orientations the
    network will be run in (False: the factor on rows, (f, 1); True: on columns, (1, f))."""

    def __init__(self, planes: np.ndarray, profile: SliceProfile, rows: int = 24, cols: int = 48,
                 transposed: tuple[bool, ...] = (False,), seed: int = 0):
        frac = train_fraction(profile.factor)
        self.p, self.q = frac.numerator, frac.denominator
        self.scale = self.p / self.q
        thickness = profile.thickness * self.scale / profile.factor
        self.stacks = []  # (lr (n, h_lr, w), hr (n, h_hr, w)): the degraded direction on the rows
        for hr in (planes, np.swapaxes(planes, 1, 2)):
            n_hr = hr.shape[1] // self.p * self.p
            if n_hr < self.p or hr.shape[2] < 4:
                continue
            hr = np.ascontiguousarray(hr[:, :n_hr], dtype=np.float32)
            w = slice_profile_weights(n_hr, n_hr // self.p * self.q, thickness, profile.shape).astype(np.float32)
            lr = np.einsum("rh,nhw->nrw", w, hr, optimize=True)
            self.stacks.append((np.ascontiguousarray(lr), hr))
        if not self.stacks:
            raise MedSRError(f"the in-plane slices ({planes.shape[1]}x{planes.shape[2]} voxels) are too small to "
                             f"learn a x{profile.factor:g} through-plane mapping from; give a larger volume")
        most_rows = max(lr.shape[1] for lr, _ in self.stacks)
        self.rows = max(self.q, min(int(rows), most_rows) // self.q * self.q)
        self.cols = max(4, min(int(cols), min(lr.shape[2] for lr, _ in self.stacks)))
        self.stacks = [(lr, hr) for lr, hr in self.stacks if lr.shape[1] >= self.rows]
        self.transposed = tuple(transposed)
        self.rng = np.random.default_rng(seed)
        self.hr_rows = self.rows * self.p // self.q

    def _one(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        best = None
        for _ in range(MAX_RETRIES):
            lr, hr = self.stacks[rng.integers(len(self.stacks))]
            s = int(rng.integers(lr.shape[0]))
            blocks = (lr.shape[1] - self.rows) // self.q
            r = int(rng.integers(blocks + 1)) * self.q
            c = int(rng.integers(lr.shape[2] - self.cols + 1))
            hr0 = r * self.p // self.q
            pair = (lr[s, r:r + self.rows, c:c + self.cols], hr[s, hr0:hr0 + self.hr_rows, c:c + self.cols])
            best = pair
            if float(pair[1].std()) >= MIN_STD:
                break
        lr_p, hr_p = best
        if rng.integers(2):
            lr_p, hr_p = lr_p[::-1], hr_p[::-1]
        if rng.integers(2):
            lr_p, hr_p = lr_p[:, ::-1], hr_p[:, ::-1]
        return lr_p, hr_p

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
        """One batch and the (rows, cols) scale the network runs it at."""
        pairs = [self._one() for _ in range(batch)]
        lr = np.stack([p[0] for p in pairs])[:, None]
        hr = np.stack([p[1] for p in pairs])[:, None]
        scale = (self.hr_rows / self.rows, 1.0)
        if self.transposed[int(self.rng.integers(len(self.transposed)))]:
            lr, hr, scale = np.swapaxes(lr, 2, 3), np.swapaxes(hr, 2, 3), scale[::-1]
        return torch.from_numpy(lr.copy()), torch.from_numpy(hr.copy()), scale
