"""Self-ensemble ("best quality"): the network is run on flipped and transposed copies of the volume
and the results, turned back, are averaged (the geometric self-ensemble of EDSR, Lim et al. 2017).

A 2D network is not exactly equivariant to flips and transposes; its errors under the eight symmetries
of the square differ, and their mean is closer to the truth than any one of them. The transforms act
on the voxel array only (the output grid is the identity run's): flips of i and j, and the i/j
transpose with the spacing, the factors and the slice axis swapped alike, so every copy asks the same
question of the network. The intensity window of a run is computed over the whole volume, so every
copy is normalised alike; copies run in float32 and the mean is cast as the options ask.
"""
from __future__ import annotations

from itertools import product
from typing import Callable, Optional

import numpy as np

from MedSRExtension.core import intensity
from MedSRExtension.core.volume import Volume

SIZES = (1, 2, 4, 8)
Progress = Optional[Callable[[int, int], None]]


def variants(n: int) -> list[tuple[bool, bool, bool]]:
    """The first ``n`` (transpose i/j, flip j, flip i) transforms: identity, the flips, then the transposes."""
    order = sorted(product((False, True), repeat=3), key=lambda v: (v[0], v[1] + v[2], v))
    return order[:n]


def _forward(array: np.ndarray, v: tuple[bool, bool, bool]) -> np.ndarray:
    t, fj, fi = v
    a = array[:, ::-1] if fj else array
    a = a[:, :, ::-1] if fi else a
    return np.ascontiguousarray(a.swapaxes(1, 2) if t else a)


def _backward(array: np.ndarray, v: tuple[bool, bool, bool]) -> np.ndarray:
    t, fj, fi = v
    a = array.swapaxes(1, 2) if t else array
    a = a[:, :, ::-1] if fi else a
    return a[:, ::-1] if fj else a


def run_ensemble(volume: Volume, options, factors: tuple, axis: str, run: Callable, progress: Progress = None,
                 cancel=None) -> Volume:
    """The mean of ``run(volume_variant, options_variant)`` over ``options.ensemble`` transforms;
    ``factors`` (i, j, k) and ``axis`` are the identity run's, resolved by the caller; ``run(volume,
    options, progress, cancel)`` is one plain run."""
    chosen = variants(options.ensemble)
    total, acc, first = len(chosen), None, None
    for n, v in enumerate(chosen):
        t = v[0]
        spacing = (volume.spacing[1], volume.spacing[0], volume.spacing[2]) if t else volume.spacing
        scale = (factors[1], factors[0], factors[2]) if t else tuple(factors)
        ax = {"i": "j", "j": "i"}.get(axis, axis) if t else axis
        copy = Volume(_forward(volume.array, v), spacing, volume.origin, volume.direction, dict(volume.meta))
        step = None if progress is None else (lambda d, tot, n=n: progress(n * tot + d, total * tot))
        out = run(copy, options.replace(scale=scale, spacing=None, axis=ax, ensemble=1, confidence=False,
                                        out_dtype="float32"), step, cancel)
        back = _backward(out.array, v).astype(np.float32)
        if acc is None:
            first, acc = out, back.copy()
        else:
            acc += back
    acc /= np.float32(total)
    if options.out_dtype != "float32":
        acc = intensity.cast_like(acc, volume.array.dtype if options.out_dtype == "input" else
                                  np.dtype(options.out_dtype), inplace=True)
    result = Volume(acc, first.spacing, first.origin, first.direction, dict(first.meta))
    result.meta["ensemble"] = f"mean of {total} flipped/transposed runs"
    return result
