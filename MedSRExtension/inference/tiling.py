"""Tiled 2D inference with overlap and smooth blending, so peak memory is bounded by the tile size.

Along each axis the LR image is cut into cores that overlap their neighbours by a blend band;
each tile is its core plus ``overlap`` pixels of context on both sides (shifted inward at the
image border). A tile's output is kept on its core only, weighted by a linear ramp across the
blend band. When ``overlap`` covers the model's receptive field every kept output pixel equals
the untiled one, so any blend of them is exact.

For a non-integer scale s = P/Q (reduced, as n'/n is) every tile starts at a multiple of Q, so
its output lands on whole output pixels; if that is impossible the image is run untiled.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, Optional

import numpy as np
import torch


def _grid_unit(scale: float, n: int) -> Optional[int]:
    """Smallest LR step whose output size is a whole number of pixels (None: no usable step)."""
    frac = Fraction(scale).limit_denominator(max(1, n))
    if abs(float(frac) - scale) > 1e-9:
        return None
    return frac.denominator


def _axis_plan(n: int, tile: int, overlap: int, unit: int):
    """([(input_start, input_stop, core_start, core_stop) per tile], blend band) along an axis of length n."""
    overlap = -(-overlap // unit) * unit
    tile = max(unit, (tile // unit) * unit)
    if tile >= n or tile - 2 * overlap < 2 * unit:
        return [(0, n, 0, n)], 0
    band = unit * max(1, (overlap // 2) // unit) if overlap else 0
    core = tile - 2 * overlap
    step = core - band
    if step <= 0:
        return [(0, n, 0, n)], 0
    plan, start = [], 0
    while True:
        stop = min(n, start + core)
        a = min(max(0, start - overlap), n - tile)
        a = (a // unit) * unit
        b = min(n, a + tile)
        plan.append((a, b, start, stop))
        if stop >= n:
            return plan, band
        start += step


def _ramp(length_out: int, scale: float, a: int, core_start: int, core_stop: int, n: int, band: int) -> np.ndarray:
    """Weights over one tile's output along one axis: 0 outside the core, 1 inside, linear ramps over
    the blend band at interior core edges (weights stay > 0 on the whole core)."""
    centers = (np.arange(length_out) + 0.5) / scale + a  # output pixel centres in LR edge units
    w = ((centers >= core_start) & (centers < core_stop)).astype(np.float64)
    if band > 0:
        if core_start > 0:
            w *= np.clip((centers - core_start) / band, 0.0, 1.0) * (1 - 1e-3) + 1e-3
        if core_stop < n:
            w *= np.clip((core_stop - centers) / band, 0.0, 1.0) * (1 - 1e-3) + 1e-3
    return w


def run_tiled(module: Callable[..., torch.Tensor], x: torch.Tensor, scale=(2.0, 2.0), tile: Optional[int] = None,
              overlap: int = 16, call: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Apply ``module`` (or ``call``) to (N, C, H, W) in tiles of ``tile`` LR pixels with ``overlap``
    pixels of context; returns what the untiled call returns, (N, C, round(H·sh), round(W·sw))."""
    fn = call or module
    n_, c_, h, w = x.shape
    sh, sw = (float(scale), float(scale)) if np.isscalar(scale) else (float(scale[0]), float(scale[1]))
    if tile is None or (h <= tile and w <= tile):
        return fn(x)
    uh, uw = _grid_unit(sh, h), _grid_unit(sw, w)
    if uh is None or uw is None:
        return fn(x)
    (plan_h, band_h), (plan_w, band_w) = _axis_plan(h, tile, overlap, uh), _axis_plan(w, tile, overlap, uw)
    if len(plan_h) == 1 and len(plan_w) == 1:
        return fn(x)
    oh, ow = int(round(h * sh)), int(round(w * sw))
    out = None
    weight = torch.zeros((oh, ow), dtype=torch.float32, device=x.device)
    for a_h, b_h, cs_h, ce_h in plan_h:
        for a_w, b_w, cs_w, ce_w in plan_w:
            y = fn(x[:, :, a_h:b_h, a_w:b_w])
            th, tw = y.shape[-2:]
            if out is None:
                out = torch.zeros((n_, y.shape[1], oh, ow), dtype=torch.float32, device=x.device)
            wy = _ramp(th, sh, a_h, cs_h, ce_h, h, band_h)
            wx = _ramp(tw, sw, a_w, cs_w, ce_w, w, band_w)
            wt = torch.from_numpy(np.outer(wy, wx)).to(device=x.device, dtype=torch.float32)
            oy, ox = int(round(a_h * sh)), int(round(a_w * sw))
            out[:, :, oy:oy + th, ox:ox + tw] += y.float() * wt
            weight[oy:oy + th, ox:ox + tw] += wt
    return (out / weight.clamp_min(1e-12)).to(x.dtype)
