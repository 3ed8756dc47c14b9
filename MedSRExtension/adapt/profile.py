"""The slice profile of a thick-slice volume, in voxels of the grid super-resolution makes.

A through-plane factor f turns slices spaced ``s`` mm apart into slices spaced ``s/f`` apart; each
acquired slice integrated the body over its thickness ``t`` mm (FWHM of a Gaussian profile, or the
width of a box). In output voxels that is a profile of width ``t·f/s`` every ``f`` voxels: a gap of
``f - t·f/s`` voxels (negative for overlap). The thickness comes, in this order, from the caller,
from the file's header (``Volume.meta["thickness_ijk"]``, see ``core.slice_header``), from the volume
itself (``profile_estimate``: what makes its in-plane data look like its through-plane data), or, when
the volume cannot tell either, is assumed equal to the spacing (contiguous slices). The profile says
which it used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from MedSRExtension.core.degradations import PROFILES
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.validation import check_thickness_mm
from MedSRExtension.core.volume import AXES, Volume
from MedSRExtension.adapt.profile_estimate import estimate_thickness


@dataclass(frozen=True)
class SliceProfile:
    """``thickness`` slices of the output grid integrated every ``factor`` output slices."""

    factor: float
    thickness: float
    shape: str = "gaussian"
    source: str = "assumed contiguous (no thickness in the header, none estimated)"
    thickness_mm: float = math.nan
    spacing_mm: float = math.nan
    given: bool = False  # the caller's or the header's thickness (not estimated, not assumed)

    @property
    def gap(self) -> float:
        """Output voxels between two slice profiles (negative: overlap)."""
        return self.factor - self.thickness

    def describe(self) -> str:
        gap_mm = self.spacing_mm - self.thickness_mm
        kind = ("contiguous" if abs(gap_mm) < 1e-6
                else f"gap {gap_mm:.3g} mm" if gap_mm > 0 else f"overlap {-gap_mm:.3g} mm")
        return (f"{self.shape} slice profile {self.thickness_mm:.3g} mm every {self.spacing_mm:.3g} mm ({kind}; "
                f"{self.thickness:.3g} output voxels every {self.factor:.3g}), from {self.source}")


def slice_profile(volume: Volume, axis: str, factor: float, thickness_mm: Optional[float] = None,
                  shape: str = "gaussian", estimate: bool = True) -> SliceProfile:
    """The profile of ``volume``'s slices along ``axis`` for an output ``factor`` times finer
    (``estimate=False``: assume contiguous slices rather than estimate when no header tells)."""
    if shape not in PROFILES:
        raise MedSRError(f"slice profile must be one of {', '.join(PROFILES)}, got '{shape}'")
    if not (math.isfinite(factor) and factor > 1):
        raise MedSRError(f"adaptation needs a through-plane factor > 1, got {factor:g}")
    a = AXES.index(axis)
    spacing = float(volume.spacing[a])
    given = True
    if thickness_mm is not None:
        source = "the caller"
    else:
        known = (volume.meta.get("thickness_ijk") or (None, None, None))[a]
        guess = estimate_thickness(volume, axis, shape) if known is None and estimate else None
        if known is not None:
            thickness_mm, source = float(known), volume.meta.get("thickness_source", "the file header")
        elif guess is not None:
            thickness_mm, source, given = guess, "the volume itself (estimated: no thickness in the header)", False
        else:
            thickness_mm, source, given = spacing, SliceProfile.source, False
    check_thickness_mm(thickness_mm)
    thickness = thickness_mm * factor / spacing
    return SliceProfile(float(factor), float(thickness), shape, source, float(thickness_mm), spacing, given)
