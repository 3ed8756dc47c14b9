"""Which files of a DICOM output folder MedSR wrote, so that a redo (``medsr batch --resume`` over a
damaged result) replaces MedSR's own series and never a file the user put there (``notes.txt``, a
NIfTI, another series).

A file is MedSR's when it is a DICOM instance whose ContributingEquipmentSequence names MedSR as the
manufacturer (core.dicom_out writes it into every instance); no marker file is needed, so the folder
holds nothing but the series a PACS import expects. A folder may be replaced only when every file in
it is MedSR's (or it is empty); any other file makes it the user's.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

PathLike = Union[str, os.PathLike]
MANUFACTURER = "MedSR"


def written_by_medsr(path: PathLike) -> bool:
    """True for a DICOM instance core.dicom_out wrote (its header names MedSR's equipment)."""
    import pydicom
    try:
        ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True, force=True)
        equipment = ds.get("ContributingEquipmentSequence") or []
        return any(str(item.get("Manufacturer", "")) == MANUFACTURER for item in equipment)
    except Exception:  # noqa: BLE001 - any unreadable file is not known to be MedSR's
        return False


def foreign_files(folder: PathLike) -> list:
    """The entries of ``folder`` MedSR did not write (sorted names; subfolders count as foreign)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not (p.is_file() and written_by_medsr(p)))
