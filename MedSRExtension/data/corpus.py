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

For 2D images the split is at ``floor(0.8 · n)`` along the held-out axis (columns, or rows for rg3);
training patches lie entirely before it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from MedSRExtension.core.errors import MedSRError

#: Axial slab of the MNI template (array axis 0 = k) held out for validation: [start, stop).
MNI_VAL_SLAB = (80, 104)
#: Axial slices of the slab used as validation images.
MNI_VAL_SLICES = (86, 98)
#: Fraction of each 2D image (from the left, or from the top) that training may use.
TRAIN_FRACTION = 0.8
#: Array axis of each 2D image along which the last 20 % are held out (1 = columns, 0 = rows).
HELD_OUT_AXIS = {"rg1": 1, "rg3": 0, "mr2": 1, "ct693": 1, "retina": 1}

DICOM_FILES = {"rg1": "RG1_UNCI.dcm", "rg3": "RG3_UNCI.dcm", "mr2": "MR2_UNCI.dcm", "ct693": "693_UNCI.dcm"}
NAMES = ("mni", "rg1", "rg3", "mr2", "ct693", "retina")


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
        try:
            import pydicom
            from pydicom.data import get_testdata_file
        except ImportError as exc:
            raise _missing(DICOM_FILES[name], "pydicom, pydicom-data") from exc
        path = get_testdata_file(DICOM_FILES[name])
        if path is None:
            raise _missing(DICOM_FILES[name], "pydicom-data")
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.astype(np.float32)
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        return arr * np.float32(slope) + np.float32(intercept)
    raise MedSRError(f"unknown corpus image '{name}'; known: {', '.join(NAMES)}")


def read(name: str) -> np.ndarray:
    """The whole image ``name`` (one of NAMES) as float32: 3D (k, j, i) for ``mni``, 2D otherwise (a copy)."""
    return _read(name).copy()


def split_index(n: int) -> int:
    """First held-out index along an axis of ``n`` pixels."""
    return int(np.floor(TRAIN_FRACTION * n))


def _split(name: str, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(training part, validation part, description of each) of 2D image ``name``; the validation
    part starts at ``split_index(img.shape[HELD_OUT_AXIS[name]])``."""
    axis = HELD_OUT_AXIS[name]
    n = img.shape[axis]
    c = split_index(n)
    what = "columns" if axis == 1 else "rows"
    if axis == 1:
        return img[:, :c], img[:, c:].copy(), f"{what} [0, {c})", f"{what} [{c}, {n})"
    return img[:c], img[c:].copy(), f"{what} [0, {c})", f"{what} [{c}, {n})"


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
        train, _, where, _ = _split(name, _read(name))
        out.append(Region(name, train, name, where, HELD_OUT_AXIS[name], 0))
    return out


def validation_regions() -> list[Region]:
    """The held-out validation images (2D), in the order of the table above."""
    out: list[Region] = []
    mni = _read("mni")
    for k in MNI_VAL_SLICES:
        out.append(Region(f"mni_k{k}", mni[k].copy(), "mni", f"axial slice k={k}", 0, k))
    for name in NAMES[1:]:
        img = _read(name)
        _, val, _, where = _split(name, img)
        axis = HELD_OUT_AXIS[name]
        out.append(Region(name, val, name, where, axis, split_index(img.shape[axis])))
    return out
