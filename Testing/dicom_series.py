"""Real DICOM series for the tests, written with pydicom as a scanner writes one: one file per slice.

``write_source_series`` writes a regular series; ``write_slices`` writes any list of slices (each with
its own position, orientation, size and series), so the tests can make the irregular series PACS
exports hold: missing or repeated slices, a tilted slice, gantry tilt, two series in one folder."""
from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def _slice_dataset(pixels, position, orientation, pixel_spacing, thickness, study, series, frame, number,
                   description):
    ds = pydicom.Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Test^Patient", "MEDSR-0001", "19700101"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.StudyDate, ds.StudyID, ds.AccessionNumber, ds.Modality = "20260101", "1", "A1", "MR"
    ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 3, number, description
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if orientation is not None:
        ds.ImageOrientationPatient = [f"{v:.10f}" for v in orientation]
    if position is not None:
        ds.ImagePositionPatient = [f"{v:.10f}" for v in position]
    ds.PixelSpacing, ds.SliceThickness = list(pixel_spacing), thickness
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.int16)).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = MRImageStorage, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def write_slices(folder, slices, study=None, frame=None, prefix="", mkdir=True):
    """Write ``slices`` (dicts: pixels, position, orientation, pixel_spacing, thickness, series,
    description; position/orientation None to leave the tag out) into ``folder`` as ``{prefix}NNN.dcm``."""
    if mkdir:
        folder.mkdir()
    study, frame = study or generate_uid(), frame or generate_uid()
    for n, s in enumerate(slices):
        ds = _slice_dataset(s["pixels"], s.get("position"), s.get("orientation"), s["pixel_spacing"],
                            s["thickness"], study, s["series"], frame, n + 1, s.get("description", "T1 thick"))
        ds.save_as(folder / f"{prefix}{n:03d}.dcm", enforce_file_format=True)
    return study


def regular_slices(array, spacing, origin, direction, series=None, description="T1 thick"):
    """The slices of a regular series of ``array`` [k, j, i] on the given grid (LPS)."""
    series = series or generate_uid()
    direction = np.asarray(direction, float)
    orientation = (*direction[:, 0], *direction[:, 1])
    return [{"pixels": array[k], "position": np.asarray(origin) + k * spacing[2] * direction[:, 2],
             "orientation": orientation, "pixel_spacing": (spacing[1], spacing[0]), "thickness": spacing[2],
             "series": series, "description": description} for k in range(array.shape[0])]


def write_source_series(folder, array, spacing, origin, direction):
    """A real MR series (MNI slab voxels) as a scanner would write it; returns (study, series) UIDs."""
    slices = regular_slices(array, spacing, origin, direction)
    return write_slices(folder, slices), slices[0]["series"]
