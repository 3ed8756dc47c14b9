"""The one table of file formats MedSR reads and writes, by file ending (lower case, ``.nii.gz`` as one).

Every reader, writer, file picker and folder listing (engine, Slicer glue, web page, batch inputs)
asks this module, so a format is added or removed in one place. A leaf: it imports nothing.
"""
from __future__ import annotations

#: NIfTI, plain or gzipped.
NIFTI = (".nii", ".nii.gz")
#: NRRD, attached or detached header.
NRRD = (".nrrd", ".nhdr")
#: MetaImage, attached or detached header.
METAIMAGE = (".mha", ".mhd")
#: One file that holds a whole volume (read and written through SimpleITK).
VOLUME_FILES = NIFTI + NRRD + METAIMAGE
#: Volume files with no detached header or data file (what can be uploaded or sent as one file).
SELF_CONTAINED = NIFTI + (".nrrd", ".mha")
#: A single DICOM file (a series is read from its folder).
DICOM_FILE = ".dcm"
#: Every ending ``load_volume`` reads as one volume file.
VOLUME_SUFFIXES = VOLUME_FILES + (DICOM_FILE,)
#: 2D images (read as one slice, written from one).
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: Every ending ``load_volume`` reads.
READABLE = VOLUME_SUFFIXES + IMAGE_EXTENSIONS
#: Every ending ``save_volume`` writes.
WRITABLE = VOLUME_FILES + IMAGE_EXTENSIONS
