"""Readers for the training corpus of DESIGN.md, and the fixed validation region of each file.

Every reader returns a float32 array in the file's own units (DICOM rescale slope/intercept
applied; MONOCHROME1 radiographs are *not* inverted, as SimpleITK and Slicer load them).
Only images that ship inside PyPI packages are used, so training runs offline.

Validation regions (never seen by training, in any orientation; used for model selection,
training-time validation and every number reported by ``medsr eval``):

| name    | file                                      | array shape (rows, cols) / (k, j, i) \
| validation region                   | training region                    |
|---------|-------------------------------------------|--------------------------------------\
|-------------------------------------|------------------------------------|
| mni     | nilearn mni_icbm152_t1_tal_nlin_sym_09a   | 189 × 233 × 197 (k, j, i), 1 mm      \
| axial slab k ∈ [80, 104); the eval images are axial slices k = 86 and k = 98 \
| k ∈ [0, 80) and k ∈ [104, 189), each sub-volume sliced axially, coronally and sagittally (a patch never straddles\
 the slab) |
| rg1     | pydicom-data RG1_UNCI.dcm (chest X-ray)   | 1955 × 1841                          \
| right-most 20 % of columns, c ≥ 1472 | columns c < 1472                  |
| rg3     | pydicom-data RG3_UNCI.dcm (tibia X-ray)   | 1760 × 1760                          \
| bottom 20 % of rows, r ≥ 1408 (the right-most columns are empty background) | rows r < 1408 |
| mr2     | pydicom-data MR2_UNCI.dcm (shoulder MR)   | 1024 × 1024                          \
| columns c ≥ 819                     | columns c < 819                    |
| ct693   | pydicom-data 693_UNCI.dcm (head CT, HU)   | 512 × 512                            \
| columns c ≥ 409                     | columns c < 409                    |
| retina  | scikit-image data/retina.jpg (green)      | 1411 × 1411                          \
| columns c ≥ 1128                    | columns c < 1128                   |
| ect_f0, ect_f1 | pydicom-data eCT_Supplemental.dcm (enhanced CT, 2 frames, HU) | 512 × 512 each | rows r ≥ 409 of each frame (the columns right of 409 are background) | rows r < 409 |
| ctj2k   | pydicom-data J2K_pixelrep_mismatch.dcm (head CT, JPEG 2000) | 512 × 512          | columns c ≥ 409                     | columns c < 409                    |
| ctpancreas | pydicom-data explicit_VR-UN.dcm (abdominal CT, JPEG 2000) | 512 × 512          | columns c ≥ 409                     | columns c < 409                    |
| ctneck  | pydicom-data bad_sequence.dcm (neck CT, JPEG lossless) | 512 × 512               | columns c ≥ 409                     | columns c < 409                    |
| nmbody  | pydicom-data JPEG2000_UNC.dcm (whole-body NM) | 1024 × 256                       | **top** 20 % of rows, r < 205 (head and shoulders: the bottom rows and right columns are empty) | rows r ≥ 205 |

For 2D images the split is at ``floor(0.8 · n)`` along the held-out axis (columns, or rows for rg3 and the eCT
frames); training patches lie entirely before it. For nmbody the held-out part comes first: rows
[0, n − floor(0.8 · n)), training after it. JPEG 2000 / JPEG lossless files decode with pydicom's pylibjpeg
plugins (the ``data`` extras).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from MedSRExtension.core.errors import MedSRError

#: Axial slab of the MNI template (array axis 0 = k) held out for validation: [start, stop).
MNI_VAL_SLAB = (80, 104)
#: Axial slices of the slab used as validation images.
MNI_VAL_SLICES = (86, 98)
#: Fraction of each 2D image (from the left, or from the top) that training may use.
TRAIN_FRACTION = 0.8
#: Array axis of each 2D image along which 20 % are held out (1 = columns, 0 = rows).
HELD_OUT_AXIS = {"rg1": 1, "rg3": 0, "mr2": 1, "ct693": 1, "retina": 1, "ect_f0": 0, "ect_f1": 0,
                 "ctj2k": 1, "ctpancreas": 1, "ctneck": 1, "nmbody": 0}
#: 2D images whose held-out 20 % come first along their axis (the last 20 % are empty background).
HELD_OUT_FIRST = frozenset({"nmbody"})

#: name -> (pydicom-data file, frame index or None for a single-frame file)
DICOM_FILES = {"rg1": ("RG1_UNCI.dcm", None), "rg3": ("RG3_UNCI.dcm", None), "mr2": ("MR2_UNCI.dcm", None),
               "ct693": ("693_UNCI.dcm", None), "ect_f0": ("eCT_Supplemental.dcm", 0),
               "ect_f1": ("eCT_Supplemental.dcm", 1), "ctj2k": ("J2K_pixelrep_mismatch.dcm", None),
               "ctpancreas": ("explicit_VR-UN.dcm", None), "ctneck": ("bad_sequence.dcm", None),
               "nmbody": ("JPEG2000_UNC.dcm", None)}
NAMES = ("mni", "rg1", "rg3", "mr2", "ct693", "retina", "ect_f0", "ect_f1", "ctj2k", "ctpancreas", "ctneck",
         "nmbody")


def _missing(what: str, package: str) -> MedSRError:
    return MedSRError(f"training data '{what}' not found; "
                      f"install the data extras: pip install 'medsr[data]' ({package})")


def mni_path() -> str:
    """Path of the MNI ICBM152 2009a T1 template inside nilearn's package data."""
    try:
        import nilearn
    except ImportError as exc:
        raise _missing("MNI template", "nilearn") from exc
    path = os.path.join(os.path.dirname(nilearn.__file__), "datasets", "data",
                        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    if not os.path.exists(path):
        raise _missing("MNI template", "nilearn")
    return path


def retina_path() -> str:
    """Path of scikit-image's fundus photograph."""
    try:
        import skimage
    except ImportError as exc:
        raise _missing("retina.jpg", "scikit-image") from exc
    path = os.path.join(os.path.dirname(skimage.__file__), "data", "retina.jpg")
    if not os.path.exists(path):
        raise _missing("retina.jpg", "scikit-image")
    return path


def _rescale(ds) -> tuple[float, float]:
    """(slope, intercept) of a DICOM dataset: top level, else the enhanced multi-frame shared group."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)
    for group in ds.get("SharedFunctionalGroupsSequence", []):
        for item in group.get("PixelValueTransformationSequence", []):
            return float(item.get("RescaleSlope", 1.0) or 1.0), float(item.get("RescaleIntercept", 0.0) or 0.0)
    return 1.0, 0.0


def _read_dicom(filename: str, frame: Optional[int]) -> np.ndarray:
    """One pydicom-data image (one frame of a multi-frame file) in its modality units."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError as exc:
        raise _missing(filename, "pydicom, pydicom-data") from exc
    path = get_testdata_file(filename)
    if path is None:
        raise _missing(filename, "pydicom-data")
    ds = pydicom.dcmread(path)
    try:
        arr = ds.pixel_array
    except (RuntimeError, NotImplementedError) as exc:  # compressed, and no decoder plugin installed
        raise _missing(f"{filename} (decoding {ds.file_meta.TransferSyntaxUID.name})",
                       "pylibjpeg, pylibjpeg-openjpeg, pylibjpeg-libjpeg") from exc
    if frame is not None:
        arr = arr[frame]
    slope, intercept = _rescale(ds)
    return arr.astype(np.float32) * np.float32(slope) + np.float32(intercept)


@lru_cache(maxsize=None)
def _read(name: str) -> np.ndarray:
    if name == "mni":
        import SimpleITK as sitk
        return sitk.GetArrayFromImage(sitk.ReadImage(mni_path())).astype(np.float32)  # (k, j, i)
    if name == "retina":
        from PIL import Image
        with Image.open(retina_path()) as img:
            return np.asarray(img.convert("RGB"))[..., 1].astype(np.float32)  # green channel: best vessel contrast
    if name in DICOM_FILES:
        return _read_dicom(*DICOM_FILES[name])
    raise MedSRError(f"unknown corpus image '{name}'; known: {', '.join(NAMES)}")


def read(name: str) -> np.ndarray:
    """The whole image ``name`` (one of NAMES) as float32: 3D (k, j, i) for ``mni``, 2D otherwise (a copy)."""
    return _read(name).copy()


def split_index(n: int) -> int:
    """Length of the training part along an axis of ``n`` pixels (the held-out part is the rest)."""
    return int(np.floor(TRAIN_FRACTION * n))


def held_out_range(name: str, n: int) -> tuple[int, int]:
    """[start, stop) of 2D image ``name``'s held-out part along its axis of ``n`` pixels."""
    c = split_index(n)
    return (0, n - c) if name in HELD_OUT_FIRST else (c, n)


def _split(name: str, img: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, int, str, str]:
    """(training part, its first index, validation part, its first index, description of each) of 2D
    image ``name`` along ``HELD_OUT_AXIS[name]``."""
    axis = HELD_OUT_AXIS[name]
    n = img.shape[axis]
    v0, v1 = held_out_range(name, n)
    t0, t1 = (v1, n) if v0 == 0 else (0, v0)
    what = "columns" if axis == 1 else "rows"

    def cut(a: int, b: int) -> np.ndarray:
        return np.take(img, np.arange(a, b), axis=axis)

    return cut(t0, t1), t0, cut(v0, v1), v0, f"{what} [{t0}, {t1})", f"{what} [{v0}, {v1})"


@dataclass(frozen=True)
class Region:
    """A named 2D array cut from a corpus image, with where it came from (for documentation and tests)."""

    name: str
    array: np.ndarray
    source: str
    where: str
    axis: int = 0  # array axis of the source along which the region was cut
    start: int = 0  # first index of the region along ``axis`` in the source image


def training_regions() -> list[Region]:
    """The parts of the corpus training may see: 2D images left of the split, MNI sub-volumes outside the slab.

    MNI sub-volumes are 3D (k, j, i); the patch sampler slices them in all three orientations.
    """
    out: list[Region] = []
    mni = _read("mni")
    k0, k1 = MNI_VAL_SLAB
    out.append(Region("mni_inferior", mni[:k0], "mni", f"k in [0, {k0})", 0, 0))
    out.append(Region("mni_superior", mni[k1:], "mni", f"k in [{k1}, {mni.shape[0]})", 0, k1))
    for name in NAMES[1:]:
        train, start, _, _, where, _ = _split(name, _read(name))
        out.append(Region(name, train, name, where, HELD_OUT_AXIS[name], start))
    return out


def validation_regions() -> list[Region]:
    """The held-out validation images (2D), in the order of the table above."""
    out: list[Region] = []
    mni = _read("mni")
    for k in MNI_VAL_SLICES:
        out.append(Region(f"mni_k{k}", mni[k].copy(), "mni", f"axial slice k={k}", 0, k))
    for name in NAMES[1:]:
        _, _, val, start, _, where = _split(name, _read(name))
        out.append(Region(name, val, name, where, HELD_OUT_AXIS[name], start))
    return out
