"""Slice thickness from file headers: what a thick-slice acquisition integrated over, per axis.

The spacing of a volume says where its slices lie; the thickness says how much of the body each one
averages. They differ for a gap (thickness < spacing, common in 2D multi-slice MRI) or an overlap
(thickness > spacing, CT reconstructed with overlap). Where each format keeps it:

- DICOM: Slice Thickness (0018,0050) of the series' first file (the slice spacing itself comes from the
  image positions, as SimpleITK computes it);
- NRRD: the ``thicknesses:`` header field, one value per axis (``nan`` where unknown);
- NIfTI: the header has no thickness field; dcm2niix writes the BIDS sidecar ``<name>.json`` with
  ``SliceThickness`` (mm), which is used when it lies beside the file.

``read_thickness`` returns ``{"thickness_ijk": (ti, tj, tk), "thickness_source": "..."}`` with
``None`` for unknown axes, or ``{}`` when nothing is known. The thickness of DICOM and BIDS is that of
the slice axis, k. ``dicom_file_thickness`` reads one DICOM file of any name (Slicer's DICOM database).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from MedSRExtension.core.dicom_series import series_files
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.formats import DICOM_FILE, NIFTI, NRRD
from MedSRExtension.core.nrrd_header import read_nrrd_header

DICOM_THICKNESS = "0018|0050"


def _positive(value) -> Optional[float]:
    try:
        v = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _dicom(path: Path, series: Optional[str] = None) -> dict:
    try:
        files = series_files(path, series)
    except MedSRError:
        return {}
    return dicom_file_thickness(files[0])


def dicom_file_thickness(path: os.PathLike) -> dict:
    """Slice Thickness of one DICOM file, whatever its name (a DICOM database stores files without an
    extension), as the k thickness; ``{}`` when the file is unreadable or has none."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    if not reader.HasMetaDataKey(DICOM_THICKNESS):
        return {}
    t = _positive(reader.GetMetaData(DICOM_THICKNESS))
    if t is None:
        return {}
    return {"thickness_ijk": (None, None, t), "thickness_source": "DICOM Slice Thickness (0018,0050)"}


def _nrrd(path: Path) -> dict:
    """The ``thicknesses`` field of an NRRD/NHDR header (SimpleITK does not expose its values)."""
    try:
        value = read_nrrd_header(path).get("thicknesses")
    except OSError:
        return {}
    if value:
        values = [_positive(v) for v in value.split()]
        if len(values) == 3 and any(v is not None for v in values):
            return {"thickness_ijk": tuple(values), "thickness_source": "NRRD thicknesses field"}
    return {}


def _nifti(path: Path) -> dict:
    name = path.name
    stem = name[:-7] if name.lower().endswith(".nii.gz") else os.path.splitext(name)[0]
    sidecar = path.with_name(stem + ".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    t = _positive(data.get("SliceThickness")) if isinstance(data, dict) else None
    if t is None:
        return {}
    return {"thickness_ijk": (None, None, t), "thickness_source": f"BIDS sidecar {sidecar.name} SliceThickness"}


def read_thickness(path: os.PathLike, series: Optional[str] = None) -> dict:
    """What the file (or DICOM folder, or its series ``series``) says about slice thickness; ``{}`` when
    it says nothing."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir() or name.endswith(DICOM_FILE):
        return _dicom(path, series)
    if name.endswith(NRRD):
        return _nrrd(path)
    if name.endswith(NIFTI):
        return _nifti(path)
    return {}
