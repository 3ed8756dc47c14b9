"""``medsr info FILE``: size, spacing, orientation, intensity range and the suggested slicing."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from MedSRExtension.core import formats, validation
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import default_mode
from MedSRExtension.core.provenance import read_provenance
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
    p.add_argument("--series", default=None, metavar="UID", help="the SeriesInstanceUID to read from a DICOM folder "
                                                                 "that holds several")
    p.set_defaults(func=run)


def _refuse_geometry(path: str, problems: list[str]) -> None:
    print(f"geometry:     INVALID: {'; '.join(problems)}")
    raise MedSRError(f"{path} has an invalid geometry: {problems[0]}; fix the image header (spacing, "
                     "origin, orientation) before use")


def run(args) -> int:
    print_file = lambda: print(f"file:         {args.file}")  # noqa: E731
    if validation.extension_of(args.file) in formats.NIFTI and Path(args.file).is_file():
        # the stored header, read before ITK (which would make up 1 mm for a zero pixdim)
        validation.check_input_file(args.file, geometry=False)
        header = validation.nifti_header(Path(args.file))
        problems = validation.nifti_geometry_problems(header)
        if problems:
            print_file()
            print(f"size:         {' x '.join(map(str, header.get_data_shape()))}  ({header.get_data_dtype()})")
            _refuse_geometry(args.file, problems)
    v = load_volume(args.file, component=parse_component(args.component), check_geometry=False, series=args.series)
    a = v.array
    print_file()
    if "dicom_series" in v.meta:
        print(f"series:       {v.meta['dicom_series']}")
    print(f"size (i,j,k): {' x '.join(map(str, v.shape_ijk))}  ({a.dtype})")
    print(f"intensity:    {float(a.min()):.6g} .. {float(a.max()):.6g}")
    problems = validation.geometry_problems(v.spacing, v.origin, v.direction)
    if problems:
        _refuse_geometry(args.file, problems)
    mode, axis, why = default_mode(v)
    print(f"spacing (mm): {', '.join(f'{s:.4g}' for s in v.spacing)}")
    print(f"origin (LPS): {', '.join(f'{o:.4g}' for o in v.origin)}")
    print(f"orientation:  {orientation_code(v.direction)}{' (oblique)' if is_oblique(v.direction) else ''}")
    print("suggested:    " + (f"--axis {axis} " if axis != "auto" else "") + f"--mode {mode}  ({why})")
    _print_provenance(args.file, args.series)
    return 0


def _print_provenance(path: str, series=None) -> None:
    """What made the image, when MedSR did (core.provenance); an acquired image has no record."""
    record = read_provenance(path, series)
    if not record:
        print("provenance:   none recorded (not a MedSR result)")
        return
    print("provenance:   MedSR result (derived: not an acquired image)")
    for key, value in record.items():
        print(f"  {key + ':':<16}{value}")
