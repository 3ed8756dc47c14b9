"""A result back to PACS: a new DICOM series derived from the source series, built with pydicom.

What a radiologist's viewer and a PACS need to file the result next to the original, and to tell it
apart from an acquired image:

- the patient, study and frame of reference of the source are kept; the series and every instance
  get new UIDs; ``ImageType`` is DERIVED\\SECONDARY; ``SeriesDescription`` names MedSR, the model
  and the scale and says the series is not for primary diagnosis unless validated;
  ``DerivationDescription`` and ``ContributingEquipmentSequence`` carry the provenance; the source
  series is referenced (``ReferencedSeriesSequence``);
- geometry per slice is exact: ``ImagePositionPatient`` of each slice centre,
  ``ImageOrientationPatient`` from the direction matrix, ``PixelSpacing``, ``SliceThickness`` and
  ``SpacingBetweenSlices``;
- values are stored as unsigned 16-bit with ``RescaleSlope``/``RescaleIntercept`` spanning the
  result's range, so they survive to within half a step (a CT stays in HU, negative values kept).

The series is written to a temporary folder beside ``folder`` and renamed into place: a failure
leaves nothing behind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from MedSRExtension.core import atomic
from MedSRExtension.core.dicom_series import series_files
from MedSRExtension.core.validation import check_replaceable_series
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.provenance import derivation_text, short_scale
from MedSRExtension.core.volume import Volume

NOT_FOR_DIAGNOSIS = "not for primary diagnosis unless validated"
#: Source attributes that describe one acquired instance or its pixels, never copied to a result.
_PER_INSTANCE = ("PixelData", "SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation",
                 "WindowCenter", "WindowWidth", "SmallestImagePixelValue", "LargestImagePixelValue",
                 "RescaleSlope", "RescaleIntercept", "RescaleType", "AcquisitionTime", "ContentTime",
                 "ImageComments", "NumberOfFrames", "PixelPaddingValue", "LossyImageCompression",
                 "ReferencedImageSequence", "SourceImageSequence", "IconImageSequence")


def _rescale(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(np.min(array)), float(np.max(array))
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    stored = np.clip(np.rint((array.astype(np.float64) - lo) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, lo


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as close to ``value`` as fits."""
    for digits in range(16, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6g}"


def _series_description(provenance: dict) -> str:
    scale = short_scale(provenance) if provenance.get("scale") else None
    text = f"MedSR {provenance.get('model', '')} x{scale} ({NOT_FOR_DIAGNOSIS})" if scale else \
        f"MedSR ({NOT_FOR_DIAGNOSIS})"
    return text[:64]



def _series_attributes(template, provenance: dict) -> dict:
    """What every instance of the derived series shares: new series UID, description, provenance,
    contributing equipment and the reference to the source series."""
    import pydicom
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import generate_uid

    equipment = pydicom.Dataset()
    equipment.Manufacturer = "MedSR"
    equipment.ManufacturerModelName = "MedSR super-resolution"
    equipment.SoftwareVersions = str(provenance.get("medsr_version", ""))
    equipment.ContributionDescription = _series_description(provenance).split(" (")[0] + " super-resolution"
    purpose = pydicom.Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = "109103", "DCM", "Modifying Equipment"
    equipment.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    referenced = pydicom.Dataset()
    referenced.SeriesInstanceUID = template.get("SeriesInstanceUID", "")
    referenced.StudyInstanceUID = template.StudyInstanceUID
    return {"SOPClassUID": template.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7"),  # else Secondary Capture
            "SeriesInstanceUID": generate_uid(),
            "SeriesNumber": int(template.get("SeriesNumber", 0) or 0) + 1000,
            "ImageType": ["DERIVED", "SECONDARY"], "SeriesDescription": _series_description(provenance),
            "DerivationDescription": derivation_text(provenance),
            "ContributingEquipmentSequence": DicomSequence([equipment]),
            "ReferencedSeriesSequence": DicomSequence([referenced])}


def _instance(template, shared: dict, volume: Volume, k: int, stored: np.ndarray, slope: float, intercept: float):
    """Slice ``k`` of the result as a DICOM instance: the template's patient/study attributes, the
    series' shared ones, and this slice's exact position and pixels."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    direction = np.asarray(volume.direction, dtype=float)
    spacing, origin = np.asarray(volume.spacing, dtype=float), np.asarray(volume.origin, dtype=float)
    ds = pydicom.Dataset()
    ds.update(template)
    for keyword in _PER_INSTANCE:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword, value in shared.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = k + 1
    ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
    ds.ImagePositionPatient = [_ds(v) for v in origin + k * spacing[2] * direction[:, 2]]
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]  # row spacing (j), column spacing (i)
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds(spacing[2])
    ds.Rows, ds.Columns = stored.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
    ds.RescaleType = template.get("RescaleType", "US")
    ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _check_target(folder: Path, replace: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise MedSRError(f"the DICOM output {folder} is a file; give a new folder name")
    if folder.is_dir() and any(folder.iterdir()):
        check_replaceable_series(folder, replace)


def write_dicom_series(volume: Volume, folder: os.PathLike | str, reference: os.PathLike | str,
                       provenance: Optional[dict] = None, replace: bool = False,
                       series: Optional[str] = None) -> list[Path]:
    """Write ``volume`` as a new DICOM series in ``folder`` (created; must not exist or be empty),
    derived from the DICOM series at ``reference``. Returns the written files, one per slice.

    Args:
        volume: the result, on its own grid (any direction, spacing and origin).
        folder: the output folder.
        reference: the source series (folder or one of its files): patient, study, modality and
            frame of reference are taken from it.
        provenance: what made the result (MedSR version, model, scale, weights sha256, ...).
        replace: replace a non-empty ``folder`` (a batch redoing its own output) once the new series
            is complete, when it holds only a series MedSR wrote (core.series_owner); any other file
            in it makes it the user's and the folder is refused.
        series: the SeriesInstanceUID of the source when its folder holds several.
    """
    import pydicom

    folder = Path(folder)
    _check_target(folder, replace)
    files = series_files(reference, series)
    template = pydicom.dcmread(files[0], stop_before_pixels=True)
    if "StudyInstanceUID" not in template:
        raise MedSRError(f"the reference {files[0]} has no StudyInstanceUID; it is not a usable DICOM image")
    shared = _series_attributes(template, dict(provenance or {}))
    stored, slope, intercept = _rescale(volume.array)
    nk, nj, ni = volume.array.shape
    needed = nk * (nj * ni * 2 + 4096)
    atomic.check_free_space(folder.parent if str(folder.parent) else Path("."), needed, folder)
    names = [f"IM{k + 1:05d}.dcm" for k in range(nk)]
    try:
        with atomic.new_folder(folder, replace=replace) as tmp:
            for k, name in enumerate(names):
                _instance(template, shared, volume, k, stored, slope, intercept).save_as(
                    tmp / name, enforce_file_format=True)
    except OSError as exc:
        if atomic.is_disk_full(exc):
            raise atomic.disk_full(folder, needed) from None
        raise
    return [folder / name for name in names]
