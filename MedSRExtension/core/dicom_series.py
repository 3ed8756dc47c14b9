"""Which files of a folder make one DICOM series, and whether they make a volume: the one place every
entry point (``load_volume``, ``medsr info``, the batch folder scan, DICOM out, the web data list, the
Slicer node path) decides it.

A stack of DICOM slices is a volume only when its slices share one orientation and one image size,
lie along their common normal (no gantry-tilt shear) at one regular step, with no position given twice.
SimpleITK alone spreads whatever it is given evenly between the first and the last position, so a
missing slice silently misplaces every slice after it. The rules, each refused with one line that
says what was found and what to do (the input is never resampled: a missing slice has no data to make
up, and a clinician must know their series is incomplete):

- a folder with several image series: refused, listing each series (UID, description, slice count),
  unless one is chosen (``series=UID``, ``--series UID``);
- a file without ImagePositionPatient or ImageOrientationPatient (in a series of more than one file);
- slices whose orientation differs (a tilted slice), mixed image sizes or pixel spacings;
- two instances at one position (several echoes, phases or a repeated slice in one series);
- slices offset in-plane from one another (gantry tilt, a sheared stack);
- missing slices (the positions missing are named) and non-uniform spacing: a slice more than
  ``max(0.01 mm, 1 % of the step)`` away from the regular grid through the stack is refused.

Headers are read with pydicom without the pixel data.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from MedSRExtension.core.errors import MedSRError

PathLike = Union[str, os.PathLike]
DICOM_PREAMBLE = 128
ORIENTATION_TOL = 1e-3  # per direction-cosine component (about 0.06 degrees)
NO_UID = "(no SeriesInstanceUID)"


@dataclass(frozen=True)
class SliceHeader:
    """What the series checks need of one file's header."""
    path: str
    series_uid: str
    description: str
    rows: int
    columns: int
    frames: int
    position: Optional[tuple]
    orientation: Optional[tuple]
    pixel_spacing: Optional[tuple]


@dataclass
class DicomSeries:
    """One checked series: its files sorted along the slice normal, and what was checked."""
    folder: str
    uid: str
    description: str
    files: list = field(default_factory=list)
    step_mm: Optional[float] = None
    other_series: int = 0

    def summary(self) -> str:
        """One line for ``medsr info`` and logs."""
        name = f"{self.uid}" + (f" '{self.description}'" if self.description else "")
        if len(self.files) == 1:
            return f"DICOM series {name}: 1 file"
        checks = "one orientation, one size, no duplicate positions, no gantry tilt, no missing slices"
        return (f"DICOM series {name}: {len(self.files)} slices {self.step_mm:.6g} mm apart "
                f"(checked: {checks})")


def looks_like_dicom(path: Path) -> bool:
    """A file with the DICM preamble or a .dcm name."""
    if path.name.lower().endswith(".dcm"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(DICOM_PREAMBLE + 4)
    except OSError:
        return False
    return head[DICOM_PREAMBLE:DICOM_PREAMBLE + 4] == b"DICM"


def _floats(value, n: int) -> Optional[tuple]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def read_header(path: PathLike) -> Optional[SliceHeader]:
    """The header of an image file; None for a file that is not DICOM or holds no pixel data."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    try:
        ds = pydicom.dcmread(os.fspath(path), defer_size=256, force=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        return None
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return None
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    return SliceHeader(
        path=os.fspath(path), series_uid=str(ds.get("SeriesInstanceUID", "") or NO_UID),
        description=str(ds.get("SeriesDescription", "") or ""), rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0), frames=frames,
        position=_floats(ds.get("ImagePositionPatient"), 3), orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=_floats(ds.get("PixelSpacing"), 2))


def candidate_files(folder: PathLike) -> list[Path]:
    """The files of ``folder`` (not its subfolders) that may be DICOM, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and looks_like_dicom(p))


def image_series(folder: PathLike) -> dict[str, list[SliceHeader]]:
    """The image series of ``folder`` by SeriesInstanceUID (files without pixel data left out)."""
    groups: dict[str, list[SliceHeader]] = {}
    for path in candidate_files(folder):
        header = read_header(path)
        if header is not None:
            groups.setdefault(header.series_uid, []).append(header)
    return groups


def describe_series(groups: dict[str, list[SliceHeader]]) -> str:
    """'UID 'description' (N files), ...' for a refusal that lists what a folder holds."""
    items = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return ", ".join(f"{uid}" + (f" '{hs[0].description}'" if hs[0].description else "") + f" ({len(hs)} files)"
                     for uid, hs in items)


def _choose(folder: Path, groups: dict[str, list[SliceHeader]], series_uid: Optional[str]) -> str:
    if series_uid:
        if series_uid not in groups:
            raise MedSRError(f"no DICOM series {series_uid} in {folder.name}; it holds {describe_series(groups)}")
        return series_uid
    if len(groups) > 1:
        raise MedSRError(f"the folder holds {len(groups)} DICOM series: {describe_series(groups)}; choose one "
                         "with --series UID")
    return next(iter(groups))


def _name(header: SliceHeader) -> str:
    return Path(header.path).name


def _check_alike(headers: list[SliceHeader]) -> None:
    """Every slice has a position, an orientation, the first one's size, spacing and orientation."""
    for h in headers:
        if h.frames > 1:
            raise MedSRError(f"DICOM {_name(h)} is a multi-frame file inside a series of {len(headers)} files; "
                             "give the multi-frame file alone")
        if h.position is None or h.orientation is None:
            tag = "ImagePositionPatient (0020,0032)" if h.position is None else "ImageOrientationPatient (0020,0037)"
            raise MedSRError(f"DICOM {_name(h)} has no {tag}: where its slice lies is unknown; "
                             "re-export the series with its geometry")
    sizes: dict[tuple, list[str]] = {}
    for h in headers:
        sizes.setdefault((h.columns, h.rows), []).append(_name(h))
    if len(sizes) > 1:
        text = ", ".join(f"{c}x{r} ({len(n)} files, e.g. {n[0]})" for (c, r), n in sizes.items())
        raise MedSRError(f"the DICOM slices differ in size: {text}; give a series of one image size")
    first = headers[0]
    for h in headers[1:]:
        if h.pixel_spacing != first.pixel_spacing and not (
                h.pixel_spacing and first.pixel_spacing
                and np.allclose(h.pixel_spacing, first.pixel_spacing, rtol=1e-4, atol=1e-6)):
            raise MedSRError(f"DICOM {_name(h)} has pixel spacing {h.pixel_spacing}, {_name(first)} "
                             f"{first.pixel_spacing}; give a series of one pixel spacing")
        diff = np.abs(np.subtract(h.orientation, first.orientation)).max()
        if diff > ORIENTATION_TOL:
            n0, n1 = _normal(first.orientation), _normal(h.orientation)
            angle = math.degrees(math.acos(max(-1.0, min(1.0, float(np.dot(n0, n1))))))
            raise MedSRError(f"DICOM {_name(h)} is tilted {angle:.3g} degrees from {_name(first)} (another "
                             "ImageOrientationPatient); remove the tilted slice(s): a volume has one orientation")


def _normal(orientation) -> np.ndarray:
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    n = np.cross(row, col)
    return n / (np.linalg.norm(n) or 1.0)


def _check_stack(headers: list[SliceHeader]) -> tuple[list[SliceHeader], float]:
    """Sort along the normal; refuse duplicates, shear, gaps and uneven steps. Returns (sorted, step)."""
    normal = _normal(headers[0].orientation)
    pos = np.array([h.position for h in headers], float)
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    headers, pos, dist = [headers[i] for i in order], pos[order], dist[order]
    steps = np.diff(dist)
    dup_tol = 1e-3
    dups = np.nonzero(steps <= dup_tol)[0]
    if dups.size:
        a, b = headers[dups[0]], headers[dups[0] + 1]
        raise MedSRError(f"{dups.size} DICOM slice position(s) hold two images ({_name(a)} and {_name(b)} at "
                         f"{dist[dups[0]]:.4g} mm): echoes, phases or repeats; split the series or remove the repeats")
    offsets = (pos - pos[0]) - np.outer(dist - dist[0], normal)
    shear = np.linalg.norm(offsets, axis=1)
    worst = int(np.argmax(shear))
    if shear[worst] > max(0.01, 1e-3 * abs(dist[worst] - dist[0])):
        angle = math.degrees(math.atan2(shear[worst], abs(dist[worst] - dist[0])))
        raise MedSRError(f"the DICOM slices are sheared (gantry tilt {angle:.3g} degrees: {_name(headers[worst])} "
                         f"offset {shear[worst]:.3g} mm in-plane); correct the tilt first (e.g. in Slicer) and save it")
    step = float(np.median(steps))
    k = np.arange(len(dist))
    fit = np.polyfit(k, dist, 1) if len(dist) > 2 else (step, dist[0])
    worst_dev = float(np.abs(dist - np.polyval(fit, k)).max()) if len(dist) > 2 else 0.0
    tol = max(0.01, 0.01 * step)
    if worst_dev > tol:
        _refuse_uneven(headers, dist, steps)
    return headers, float(fit[0]) if len(dist) > 2 else step


def _refuse_uneven(headers: list[SliceHeader], dist: np.ndarray, steps: np.ndarray) -> None:
    base = float(np.min(steps))
    multiples = steps / base
    if np.all(np.abs(multiples - np.rint(multiples)) < 0.02):
        missing = [dist[i] + base * m for i in range(len(steps)) for m in range(1, int(round(multiples[i])))]
        i = int(np.argmax(multiples > 1.5))
        shown = ", ".join(f"{d:.4g}" for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise MedSRError(f"{len(missing)} DICOM slice(s) missing from the {base:.4g} mm stack at {shown} mm (between "
                         f"{_name(headers[i])} and {_name(headers[i + 1])}); re-export the complete series")
    raise MedSRError(f"the DICOM slice spacing is not uniform ({float(steps.min()):.4g} to {float(steps.max()):.4g}"
                     " mm): a regular grid would misplace slices; resample the series onto a regular grid first")


def read_series(folder: PathLike, series_uid: Optional[str] = None) -> DicomSeries:
    """The checked image series of ``folder`` (the only one, or ``series_uid``); MedSRError with the
    reason when the folder holds none, several, or slices that do not make a volume."""
    folder = Path(folder)
    groups = image_series(folder)
    if not groups:
        raise MedSRError(f"no DICOM series found in folder {folder}; point to a folder of .dcm files or a file")
    uid = _choose(folder, groups, series_uid)
    headers = groups[uid]
    result = DicomSeries(folder=str(folder), uid=uid, description=headers[0].description,
                         other_series=len(groups) - 1)
    if len(headers) == 1:
        result.files = [headers[0].path]
        return result
    _check_alike(headers)
    ordered, step = _check_stack(headers)
    result.files, result.step_mm = [h.path for h in ordered], step
    return result


def series_files(path: PathLike, series_uid: Optional[str] = None) -> list[str]:
    """The files of the checked series at ``path``: a folder's series, or a single file alone (read as one
    slice, as ``load_volume`` reads it)."""
    path = Path(path)
    return read_series(path, series_uid).files if path.is_dir() else [str(path)]
