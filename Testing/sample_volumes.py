"""Real test volumes for the engine tests: regions of the MNI152 template (from the corpus) placed
on oblique, anisotropic grids, as scanners produce them."""
from __future__ import annotations

import functools

import numpy as np
import SimpleITK as sitk

from MedSRExtension import Volume
from MedSRExtension.data.corpus import mni_path


@functools.lru_cache(maxsize=1)
def mni_array() -> np.ndarray:
    """The whole MNI template as float32 [k, j, i]."""
    return sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)


def oblique_direction(degrees=(20.0, -12.0, 7.0)) -> np.ndarray:
    """A proper rotation (det +1) from three Euler angles, as an oblique acquisition has."""
    ax, ay, az = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def mni_region(shape_kji=(12, 40, 36), start_kji=(80, 90, 80), oblique: bool = True,
               spacing=(0.9, 1.1, 3.3), origin=(-12.5, 31.25, 7.75)) -> Volume:
    """A real brain region with anisotropic spacing and (by default) an oblique direction."""
    k, j, i = start_kji
    a = mni_array()[k:k + shape_kji[0], j:j + shape_kji[1], i:i + shape_kji[2]].copy()
    direction = oblique_direction() if oblique else np.eye(3)
    return Volume(a, spacing=spacing, origin=origin, direction=direction)
