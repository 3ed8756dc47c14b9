"""A real DICOM source series for the DICOM-out tests, written with pydicom as a scanner writes one."""
from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def write_source_series(folder, array, spacing, origin, direction):
    """A real MR series (MNI slab voxels) as a scanner would write it: one file per slice."""
    folder.mkdir()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(array.shape[0]):
        ds = pydicom.Dataset()
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Test^Patient", "MEDSR-0001", "19700101"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyID, ds.AccessionNumber, ds.Modality = "20260101", "1", "A1", "MR"
        ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 3, k + 1, "T1 thick"
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, generate_uid()
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.ImageOrientationPatient = [f"{v:.10f}" for v in (*direction[:, 0], *direction[:, 1])]
        ds.ImagePositionPatient = [f"{v:.10f}" for v in origin + k * spacing[2] * direction[:, 2]]
        ds.PixelSpacing, ds.SliceThickness = [spacing[1], spacing[0]], spacing[2]
        ds.Rows, ds.Columns = array.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(array[k].astype(np.int16)).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = MRImageStorage, ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)
    return study, series
