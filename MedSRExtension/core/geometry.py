"""The upsampled grid of DESIGN.md: scaling axis a by f gives n' = round(n·f) voxels, spacing
s' = s·n/n', and an origin moved so the physical extent of the voxel edges is unchanged."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume import AXES, Volume


def scaled_count(n: int, factor: float) -> int:
    """round(n·f), at least one voxel (the same rounding the models use)."""
    return max(1, int(round(n * factor)))


def upsampled_geometry(volume: Volume, factors_ijk: Sequence[float]):
    """Grid of ``volume`` scaled by per-axis ``factors_ijk`` (any positive reals; < 1 downsamples).

    Returns (shape_kji, spacing_ijk, origin_lps, direction); direction is unchanged."""
    f = np.asarray(factors_ijk, dtype=float).reshape(3)
    if np.any(f <= 0) or not np.all(np.isfinite(f)):
        raise MedSRError(f"scale factors must be positive numbers, got {tuple(f)}")
    n = np.asarray(volume.shape_ijk, dtype=float)
    n_new = np.array([scaled_count(int(ni), fi) for ni, fi in zip(n, f)], dtype=float)
    s = np.asarray(volume.spacing)
    s_new = s * n / n_new
    origin_new = np.asarray(volume.origin) + volume.direction @ ((s_new - s) / 2.0)
    shape_kji = tuple(int(v) for v in n_new[::-1])
    return shape_kji, tuple(s_new), tuple(origin_new), volume.direction.copy()


def effective_factors(volume: Volume, factors_ijk: Sequence[float]) -> tuple[float, float, float]:
    """The exact factors n'/n realised on each axis once counts are rounded."""
    n = volume.shape_ijk
    return tuple(scaled_count(ni, fi) / ni for ni, fi in zip(n, factors_ijk))


def factors_for_spacing(volume: Volume, spacing: Union[float, Sequence[float]]) -> tuple[float, float, float]:
    """Per-axis factors s/t that bring the volume near target spacing t (mm, scalar or (i, j, k))."""
    t = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    if np.any(t <= 0) or not np.all(np.isfinite(t)):
        raise MedSRError(f"target spacing must be positive, got {spacing}")
    return tuple(float(v) for v in np.asarray(volume.spacing) / t)


def parse_axis(volume: Volume, axis: str) -> str:
    """'auto' -> the axis with the largest spacing (k when isotropic or 2D); checks i/j/k."""
    if axis == "auto":
        return volume.largest_spacing_axis()
    if axis not in AXES:
        raise MedSRError(f"axis must be one of i, j, k or auto, got '{axis}'")
    return axis


MODES = ("inplane", "throughplane", "volumetric")
#: The slice spacing, as a multiple of the in-plane spacing, from which a volume is thick-sliced.
THICK_SLICE_RATIO = 1.5


def default_mode(volume: Volume) -> tuple[str, str, str]:
    """The mode a volume's geometry asks for: (mode, axis, why); see ``default_mode_for``."""
    return default_mode_for(volume.spacing, volume.shape_ijk)


def default_mode_for(spacing_ijk: Sequence[float], shape_ijk: Sequence[int]) -> tuple[str, str, str]:
    """(mode, axis, why) for a grid: a volume whose largest spacing is at least ``THICK_SLICE_RATIO``
    times the other two is thick-sliced: through-plane along that axis; an isotropic,
    in-plane-anisotropic or one-slice volume stays in-plane (axis "auto")."""
    sp = dict(zip(AXES, (float(s) for s in spacing_ijk)))
    n = dict(zip(AXES, (int(v) for v in shape_ijk)))
    axis = "k" if n["k"] == 1 or np.allclose(list(sp.values()), max(sp.values()), rtol=1e-3) else \
        max(AXES, key=lambda a: (sp[a], a == "k"))
    others = max(sp[a] for a in AXES if a != axis)
    ratio = sp[axis] / others
    if n[axis] > 1 and ratio >= THICK_SLICE_RATIO:
        return "throughplane", axis, (f"slices {sp[axis]:.4g} mm apart along {axis}, {ratio:.2g}x the in-plane "
                                      f"{others:.4g} mm: thick slices")
    return "inplane", "auto", f"spacing ratio {ratio:.2g} < {THICK_SLICE_RATIO}: not thick-sliced"


def mode_factors(factors: Union[float, Sequence[float]], mode: str, axis: str) -> tuple[float, float, float]:
    """The per-axis factors (i, j, k) a mode applies: ``factors`` (one number, or (fi, fj, fk)) kept on
    the axes the mode scales (inplane: all but ``axis``; throughplane: ``axis`` alone; volumetric: all)
    and 1 elsewhere."""
    if mode not in MODES:
        raise MedSRError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
    full = (float(factors),) * 3 if np.ndim(factors) == 0 else tuple(float(f) for f in factors)
    a = AXES.index(axis)
    if mode == "inplane":
        return tuple(1.0 if b == a else full[b] for b in range(3))
    if mode == "throughplane":
        return tuple(full[b] if b == a else 1.0 for b in range(3))
    return full
