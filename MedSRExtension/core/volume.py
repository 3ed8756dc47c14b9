"""The engine's image type: an array indexed [k, j, i] plus LPS geometry, as ITK defines it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from MedSRExtension.core.errors import MedSRError

AXES = ("i", "j", "k")


@dataclass
class Volume:
    """A scalar image. ``array[k, j, i]``; ``spacing``/``origin`` are (i, j, k) in mm, ``direction``
    is the 3×3 matrix whose columns are the i, j, k axis directions in LPS. 2D images have one slice.
    ``meta`` carries what a file said beyond geometry (e.g. ``thickness_ijk``, see ``slice_header``)."""

    array: np.ndarray
    spacing: Sequence[float] = (1.0, 1.0, 1.0)
    origin: Sequence[float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise MedSRError(
                f"expected a 2D or 3D scalar image, got an array of shape {arr.shape}; "
                "split 4D or multi-component images into scalar volumes first"
            )
        self.array = arr
        self.spacing = tuple(float(s) for s in np.asarray(self.spacing, dtype=float).reshape(3))
        self.origin = tuple(float(o) for o in np.asarray(self.origin, dtype=float).reshape(3))
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3).copy()
        if min(self.spacing) <= 0:
            raise MedSRError(f"spacing must be positive, got {self.spacing}; fix the voxel size")

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Voxel counts along (i, j, k)."""
        k, j, i = self.array.shape
        return (i, j, k)

    def index_to_physical(self, ijk: np.ndarray) -> np.ndarray:
        """Map continuous (…, 3) indices (i, j, k) to LPS points in mm."""
        ijk = np.asarray(ijk, dtype=float)
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing)) @ self.direction.T

    def edge_bounds(self) -> np.ndarray:
        """The 8 LPS corners of the voxel-edge box (index -0.5 … n-0.5 per axis), shape (8, 3)."""
        n = np.asarray(self.shape_ijk, dtype=float)
        corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
        return self.index_to_physical(corners * n - 0.5)

    def with_array(self, array: np.ndarray) -> "Volume":
        """Same geometry, new voxels (same shape)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction.copy(), dict(self.meta))

    def largest_spacing_axis(self) -> str:
        """The axis with the largest spacing ('k' for isotropic volumes): the default slicing axis."""
        if self.array.shape[0] == 1:
            return "k"
        sp = np.asarray(self.spacing)
        if np.allclose(sp, sp.max(), rtol=1e-3):
            return "k"
        return AXES[int(np.argmax(sp))]
