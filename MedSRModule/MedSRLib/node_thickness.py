"""The slice thickness of a volume node, from the file it was loaded from.

A node holds voxels and geometry, not the thickness its slices integrated over, so it is read again
from the source: the storage node's file (NRRD ``thicknesses``, a NIfTI's BIDS sidecar, a DICOM file)
through ``core.slice_header.read_thickness``, or, for a node loaded from Slicer's DICOM database, the
Slice Thickness of its first instance. The result has ``read_thickness``'s shape (``{}``: unknown).

Slicer API, checked in Slicer's source (github Slicer/Slicer, 2026-08):
- ``vtkMRMLStorageNode::GetFileName`` / ``GetFullNameFromFileName`` (Libs/MRML/Core/vtkMRMLStorageNode.h;
  the latter resolves a name relative to the scene's root directory);
- ``DICOMScalarVolumePlugin`` sets ``DICOM.instanceUIDs``, one SOP Instance UID per slice in k order,
  space-separated, "Unknown" for a file without one (Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py);
- ``slicer.dicomDatabase`` is set by the DICOM module (Modules/Scripted/DICOM/DICOM.py) and is absent
  elsewhere (slicer-core, a Slicer without that module); ``fileForInstance(uid)`` returns the file's
  path or "" (Docs/developer_guide/script_repository/dicom.md, DICOMLib/DICOMUtils.py).

The file's axes are the node's IJK axes (Slicer's readers keep the file's index order; DICOM slices are
stacked along k), so a file whose grid no longer matches the node (the voxels were replaced) says
nothing about it and gives ``{}``.
"""
from __future__ import annotations

import os
from typing import Optional

import SimpleITK as sitk
import slicer

from MedSRExtension.core import slice_header
from MedSRExtension.core.formats import VOLUME_FILES

DICOM_UIDS = "DICOM.instanceUIDs"
NOT_DICOM = VOLUME_FILES  # the single-file volume formats (core.formats)


def _file_size(path: str) -> Optional[tuple]:
    """The (i, j, k) voxel counts of an image file's header, or None when unreadable."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    size = tuple(reader.GetSize())
    return size + (1,) * (3 - len(size))


def _storage_file(node) -> Optional[str]:
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    if storage is None:
        return None
    name = storage.GetFullNameFromFileName() or storage.GetFileName()
    return name if name and os.path.exists(name) else None


def _from_file(node, path: str) -> dict:
    found = slice_header.read_thickness(path)
    if not found and not path.lower().endswith(NOT_DICOM):  # e.g. a DICOM database file, named by its UID
        found = slice_header.dicom_file_thickness(path)
    if not found:
        return {}
    dims = tuple(node.GetImageData().GetDimensions())
    size = _file_size(path)  # None for a folder or an unreadable file
    if size is None:
        return {}
    # a DICOM file is one slice of the series (k is the stacking axis): compare its i and j only
    is_dicom = found.get("thickness_source", "").startswith("DICOM")
    if size[:2] != dims[:2] or (not is_dicom and size[2] != dims[2]):
        return {}
    return found


def _from_dicom_database(node) -> dict:
    uids = (node.GetAttribute(DICOM_UIDS) or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or uids[0] == "Unknown" or database is None:
        return {}
    if len(uids) not in (1, node.GetImageData().GetDimensions()[2]):
        return {}  # one UID per k slice (or one multi-frame file): otherwise the grid has changed
    try:
        path = database.fileForInstance(uids[0])
    except Exception:  # a closed or broken database: the thickness is unknown, the run goes on
        return {}
    if not path or not os.path.isfile(path):
        return {}
    return slice_header.dicom_file_thickness(path)


def thickness_of(node) -> dict:
    """``{"thickness_ijk": (ti, tj, tk), "thickness_source": ...}`` for the node's slices (mm, None where
    unknown), from its storage file or its DICOM database instance; ``{}`` when nothing is known."""
    if node is None or node.GetImageData() is None:
        return {}
    path = _storage_file(node)
    found = _from_file(node, path) if path is not None else {}
    return found or _from_dicom_database(node)
