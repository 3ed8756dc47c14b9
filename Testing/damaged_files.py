"""Builders of damaged inputs for the bad-input matrix: each writes a small file (or folder) into
the current folder and returns its name. They damage good files the way real ones get damaged:
cut downloads, edited headers, NaN from a failed computation, a data file left behind, pickles."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE_KJI = (6, 7, 8)
# offsets in the 348-byte NIfTI-1 header
PIXDIM_1 = 80
QOFFSET_X = 268
SROW_X = 280


def voxels(dtype=np.float32, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(SHAPE_KJI) * 100).astype(dtype)


def write(name: str, array: np.ndarray | None = None, compress: bool = True) -> str:
    """A good file of ``array`` (default: random float32 voxels) written by SimpleITK."""
    sitk.WriteImage(sitk.GetImageFromArray(voxels() if array is None else array), name, compress)
    return name


def truncated(name: str, keep: float = 0.7) -> str:
    """A good file cut to ``keep`` of its bytes (an interrupted download)."""
    write(name)
    data = Path(name).read_bytes()
    Path(name).write_bytes(data[:int(len(data) * keep)])
    return name


def nifti_patched(name: str, fmt: str, offset: int, *values) -> str:
    """A good NIfTI whose header has ``values`` packed at ``offset`` (gzipped for .nii.gz)."""
    write("_plain.nii", compress=False)
    raw = bytearray(Path("_plain.nii").read_bytes())
    os.remove("_plain.nii")
    struct.pack_into("<" + fmt, raw, offset, *values)
    Path(name).write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    return name


def non_finite(name: str, value: float = float("nan")) -> str:
    a = voxels()
    a[1, 2, 3] = value
    return write(name, a, compress=not name.endswith((".mhd", ".nii")))


def four_d(name: str = "t4.nii") -> str:
    """A 4D NIfTI (three time points), as nibabel writes it."""
    import nibabel as nib
    nib.Nifti1Image(np.zeros((5, 4, 3, 3), np.float32), np.eye(4)).to_filename(name)
    return name


def mhd_without_data(name: str = "lost.mhd") -> str:
    write(name, compress=False)
    os.remove(Path(name).with_suffix(".raw"))
    return name


def mhd_short_data(name: str = "short.mhd") -> str:
    write(name, compress=False)
    raw = Path(name).with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:100])
    return name


def nhdr_without_data(name: str = "lost.nhdr") -> str:
    write(name, compress=False)
    for other in Path(".").glob("lost.raw*"):
        other.unlink()
    return name


def dicom_without_pixels(name: str = "report.dcm") -> str:
    """A valid DICOM file (a structured report) that has no Pixel Data element."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Report"
    ds.Modality = "SR"
    ds.save_as(name, enforce_file_format=True)
    return name


def dicom_folder_without_pixels(name: str = "reports") -> str:
    os.makedirs(name, exist_ok=True)
    for n in range(2):
        dicom_without_pixels(os.path.join(name, f"r{n}.dcm"))
    return name


def rgb_png(name: str = "rgb.png") -> str:
    a = (np.random.default_rng(1).random((9, 10, 3)) * 255).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(a, isVector=True), name)
    return name


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (os.path.abspath(self.marker), "w"))


def malicious_pickle(name: str, marker: str = "PWNED") -> str:
    Path(name).write_bytes(pickle.dumps(Payload(marker)))
    return name


def malicious_torch_file(name: str, marker: str = "PWNED") -> str:
    import torch
    torch.save({"state": Payload(marker)}, name)
    return name


def safetensors_of(name: str, tensors: dict) -> str:
    from safetensors.torch import save_file
    save_file(tensors, name)
    return name
