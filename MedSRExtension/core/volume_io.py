"""Reading and writing volumes with SimpleITK: NIfTI, NRRD, MHA/MHD, DICOM series folders and
2D images (PNG/TIFF/JPEG/BMP) as one-slice volumes. Geometry survives a round trip exactly;
files are written under a temporary name and renamed (core.atomic), so a failed write leaves nothing.
Every file is checked by core.validation before ITK reads it (truncation, NaN voxels, header geometry)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Union

import numpy as np
import SimpleITK as sitk

from MedSRExtension.core import atomic, dicom_series, formats, validation
from MedSRExtension.core import provenance as prov
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.slice_header import read_thickness
from MedSRExtension.core.validation import extension_of
from MedSRExtension.core.volume import Volume

VOLUME_EXTENSIONS = formats.VOLUME_SUFFIXES  # the names callers import; the table is core.formats
IMAGE_EXTENSIONS = formats.IMAGE_EXTENSIONS
SUPPORTED = formats.READABLE
WRITABLE = formats.WRITABLE

PathLike = Union[str, os.PathLike]


@contextmanager
def _itk_quiet():
    """ITK's own warnings go to stderr beside our one-line messages (e.g. "No Series were found"):
    silence them while reading; every problem they describe is refused by core.validation."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def _read_image(path: Path, checked: Optional[dicom_series.DicomSeries] = None) -> sitk.Image:
    with _itk_quiet():
        return _read_image_quietly(path, checked)


def check_series(path: Path, series: Optional[str] = None) -> dicom_series.DicomSeries:
    """The folder's one checked DICOM series (core.dicom_series), or the reason it has none."""
    if not dicom_series.image_series(path):
        validation.check_dicom_folder(path)
    return dicom_series.read_series(path, series)


def _read_image_quietly(path: Path, checked: Optional[dicom_series.DicomSeries]) -> sitk.Image:
    if checked is not None:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(checked.files)
    else:
        ext = extension_of(path)
        if ext not in SUPPORTED:
            raise MedSRError(f"unsupported file type '{ext or path.name}'; use one of {', '.join(SUPPORTED)} "
                             "or a DICOM folder")
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise MedSRError(f"cannot read {path}: {_itk_reason(exc)}; check that the file is a whole image") from None


def _itk_reason(exc: Exception) -> str:
    """The informative line of an ITK exception (not the source location), at most 120 characters."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Exception thrown", "/", "ITK ERROR"))] or lines or ["unknown"]
    return lines[-1].removeprefix("Reason: ")[:120]


def _select_component(image: sitk.Image, component) -> sitk.Image:
    if isinstance(component, str):
        component = validation.parse_component(component)
    n = image.GetNumberOfComponentsPerPixel()
    if n == 1:
        return image
    if component is None:
        raise MedSRError(
            f"image has {n} components per voxel (colour or vector); choose one with --component 0..{n - 1} "
            "or --component luminance"
        )
    if component == "luminance":
        if n not in (3, 4):
            raise MedSRError(f"luminance needs an RGB(A) image, this one has {n} components")
        r, g, b = (sitk.VectorIndexSelectionCast(image, c, sitk.sitkFloat32) for c in range(3))
        return 0.299 * r + 0.587 * g + 0.114 * b
    c = int(component)
    if not 0 <= c < n:
        raise MedSRError(f"component {c} out of range: the image has components 0..{n - 1}; choose one of those")
    return sitk.VectorIndexSelectionCast(image, c)


def image_to_volume(image: sitk.Image) -> Volume:
    """A 2D or 3D scalar SimpleITK image as a Volume (2D: one slice, spacing 1 mm along k)."""
    dim = image.GetDimension()
    if dim > 3:
        raise MedSRError(
            f"{dim}D image of size {image.GetSize()}; extract one 3D volume first (e.g. one time point)"
        )
    array = sitk.GetArrayFromImage(image)
    if dim == 2:
        sx, sy = image.GetSpacing()
        ox, oy = image.GetOrigin()
        d = np.asarray(image.GetDirection(), dtype=float).reshape(2, 2)
        direction = np.eye(3)
        direction[:2, :2] = d
        return Volume(array[None], (sx, sy, 1.0), (ox, oy, 0.0), direction)
    return Volume(array, image.GetSpacing(), image.GetOrigin(),
                  np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))


def volume_to_image(volume: Volume, as_2d: bool = False) -> sitk.Image:
    """The Volume as a SimpleITK image; ``as_2d`` drops the single slice axis."""
    if as_2d:
        if volume.array.shape[0] != 1:
            raise MedSRError(f"a 2D image format holds one slice, this volume has {volume.array.shape[0]}")
        image = sitk.GetImageFromArray(volume.array[0])
        image.SetSpacing(volume.spacing[:2])
        image.SetOrigin(volume.origin[:2])
        image.SetDirection(tuple(volume.direction[:2, :2].reshape(-1)))
        return image
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(volume.direction.reshape(-1)))
    return image


def load_volume(path: PathLike, component=None, check_geometry: bool = True, series: Optional[str] = None) -> Volume:
    """Read a file or DICOM folder into a Volume, refusing what core.validation refuses (incomplete
    files, NaN/Inf voxels, and with ``check_geometry`` an invalid geometry; ``medsr info`` reads
    without it to report the geometry). ``component`` picks one channel of a colour or vector image
    (an index or "luminance"); without it such images are refused. A DICOM folder must hold one series
    that makes a volume (core.dicom_series), or ``series`` names the SeriesInstanceUID to read."""
    path = Path(path)
    validation.check_input_file(path, geometry=check_geometry)
    checked = check_series(path, series) if path.is_dir() else None
    image = _select_component(_read_image(path, checked), component)
    if 0 in image.GetSize():
        raise MedSRError(f"{path} holds an empty image (size {image.GetSize()}); give an image with voxels")
    volume = image_to_volume(image)
    validation.check_array(volume.array, str(path))
    if check_geometry:
        validation.check_geometry(volume.spacing, volume.origin, volume.direction, str(path))
    volume.meta.update(read_thickness(path, series))
    if checked is not None:
        volume.meta.update(dicom_series=checked.summary(), series_uid=checked.uid)
    return volume


def _image_dtype_for(array: np.ndarray, ext: str) -> np.ndarray:
    """2D formats: TIFF keeps any type; PNG stores uint8/uint16 (floats rounded and clipped into the
    smallest that holds them); JPEG and BMP store uint8."""
    if ext in (".tif", ".tiff"):
        return array
    if ext == ".png" and array.dtype in (np.uint8, np.uint16):
        return array
    big = array.size and float(array.max()) > 255
    dtype = np.uint16 if ext == ".png" and big else np.uint8
    info = np.iinfo(dtype)
    return np.clip(np.rint(array), info.min, info.max).astype(dtype)


def save_volume(volume: Volume, path: PathLike, compress: bool = True, provenance: Optional[dict] = None) -> Path:
    """Write ``volume`` by the extension of ``path``, atomically: into a private staging folder
    beside the target, then renamed into place (with any companion file, as .mhd's .raw).
    ``provenance`` (what made the result) goes into the header as core.provenance describes."""
    path = Path(path)
    ext, parent = validation.check_file_target(path, WRITABLE)
    as_2d = ext in IMAGE_EXTENSIONS
    if as_2d:
        volume = Volume(_image_dtype_for(volume.array, ext), volume.spacing, volume.origin, volume.direction)
    needed = volume.array.size * volume.array.dtype.itemsize * (2 if provenance and ext in formats.NIFTI else 1)
    atomic.check_free_space(parent, needed + (1 << 20), path)
    image = volume_to_image(volume, as_2d=as_2d)
    if provenance:
        if not as_2d and ext not in formats.NIFTI:
            for key, value in prov.header_fields(provenance).items():
                image.SetMetaData(key, value)
    try:
        with atomic.staging_folder(parent) as stage:
            _write_staged(image, stage, path.name, ext, compress, provenance)
    except (RuntimeError, OSError, EOFError) as exc:
        if atomic.is_disk_full(exc):
            raise atomic.disk_full(path, needed) from None
        if isinstance(exc, RuntimeError):
            raise MedSRError(f"cannot write {path}: {_itk_reason(exc)}") from None
        raise
    return path


def _write_staged(image: sitk.Image, stage: Path, name: str, ext: str, compress: bool,
                  provenance: Optional[dict]) -> None:
    """Write ``image`` as ``stage/name``: NIfTI with a record goes through one uncompressed file that
    is streamed into its final form with the record (core.provenance); the rest ITK writes directly."""
    if provenance and ext in formats.NIFTI:
        raw = stage / "itk.nii"
        sitk.WriteImage(image, str(raw), False)
        del image
        prov.nifti_with_record(raw, stage / name, provenance)
        raw.unlink()
        return
    sitk.WriteImage(image, str(stage / name), compress and ext not in IMAGE_EXTENSIONS)
    if provenance and ext in IMAGE_EXTENSIONS:
        (stage / (name + prov.SIDECAR_SUFFIX)).write_text(prov.sidecar_text(provenance), encoding="utf-8")
