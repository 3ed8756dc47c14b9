"""``medsr info FILE``: size, spacing, orientation, intensity range and the suggested slicing."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from MedSRExtension.core import validation
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume_io import load_volume
from .common import parse_component

_POSITIVE = "LPS"
_NEGATIVE = "RAI"


def orientation_code(direction: np.ndarray) -> str:
    """Three letters: the anatomical direction each of the i, j, k axes points toward (LPS frame)."""
    letters = []
    for col in np.asarray(direction).T:
        d = int(np.argmax(np.abs(col)))
        letters.append(_POSITIVE[d] if col[d] > 0 else _NEGATIVE[d])
    return "".join(letters)


def is_oblique(direction: np.ndarray, tol: float = 1e-4) -> bool:
    """True when an axis is not aligned with L/P/S."""
    return bool(np.any(np.abs(np.abs(np.asarray(direction)).max(axis=0) - 1) > tol))


def register(sub) -> None:
    p = sub.add_parser("info", help="describe an image: size, spacing, orientation, range")
    p.add_argument("file")
    p.add_argument("--component", default=None, help="channel of a colour/vector image: index or 'luminance'")
    p.set_defaults(func=run)


def geometry_report(path: str, volume) -> list[str]:
    """What is wrong with the geometry of the file at ``path`` as read into ``volume`` (empty when
    valid): the header's own fields for NIfTI (ITK substitutes 1 mm for a zero pixdim), and the
    spacing, origin and direction as read for every format."""
    problems = []
    if validation.extension_of(path) in validation.NIFTI and not Path(path).is_dir():
        problems += validation.nifti_geometry_problems(validation._load_nifti(Path(path)).header)
    return problems + validation.geometry_problems(volume.spacing, volume.origin, volume.direction)


def run(args) -> int:
    v = load_volume(args.file, component=parse_component(args.component), check_geometry=False)
    problems = geometry_report(args.file, v)
    a = v.array
    print(f"file:         {args.file}")
    print(f"size (i,j,k): {' x '.join(map(str, v.shape_ijk))}  ({a.dtype})")
    print(f"intensity:    {float(a.min()):.6g} .. {float(a.max()):.6g}")
    if problems:
        print(f"geometry:     INVALID: {'; '.join(problems)}")
        raise MedSRError(f"{args.file} has an invalid geometry: {problems[0]}; fix the image header (spacing, "
                         "origin, orientation) before use")
    axis = v.largest_spacing_axis()
    sp = np.asarray(v.spacing)
    ratio = sp.max() / sp.min() if a.shape[0] > 1 else 1.0
    mode = "throughplane" if ratio >= 1.5 else "inplane"
    print(f"spacing (mm): {', '.join(f'{s:.4g}' for s in v.spacing)}")
    print(f"origin (LPS): {', '.join(f'{o:.4g}' for o in v.origin)}")
    print(f"orientation:  {orientation_code(v.direction)}{' (oblique)' if is_oblique(v.direction) else ''}")
    print(f"suggested:    --axis {axis} --mode {mode}" + (f"  (spacing ratio {ratio:.2g})" if ratio > 1 else ""))
    return 0
