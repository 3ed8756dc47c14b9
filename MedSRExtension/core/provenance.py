"""Provenance in every output: what made a result, stored in the result's own header, and read back.

A result must always be told apart from an acquired image, and say what made it (MedSR version,
model, preset, weights and their sha256, scale, spacing, mode, axis, adapt settings, device). The
record is a flat ``{key: text}`` dict (``inference.provenance.describe_run`` builds it); each format
keeps it where its own readers look:

- NRRD and MetaImage (.nrrd/.nhdr/.mha/.mhd): one header field per key, ``MedSR.<key>`` (NRRD
  key/value pairs ``MedSR.model:=pfmdn``; MetaImage ``MedSR.model = pfmdn``);
- NIfTI: a header extension (code 6, "comment") holding ``{"MedSR": {...}}`` as JSON, and
  ``descrip`` (80 characters) naming MedSR, the model and the scale;
- DICOM: ``DerivationDescription`` (all keys, ``Super-resolved by MedSR: k=v; ...``) and
  ``ContributingEquipmentSequence`` (see core.dicom_out);
- 2D image formats (PNG, TIFF, JPEG, BMP) have no such field: a sidecar ``<file>.medsr.json``.

``read_provenance(path)`` returns the record from any of these, or None for an image MedSR did not make.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

from MedSRExtension.core.formats import NIFTI
from MedSRExtension.core.validation import extension_of

PathLike = Union[str, os.PathLike]
PREFIX = "MedSR."
NIFTI_ECODE_COMMENT = 6
DERIVATION_PREFIX = "Super-resolved by MedSR: "
SIDECAR_SUFFIX = ".medsr.json"
IMAGE_FORMATS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: Marks every record: the result is derived, not acquired (text without ';' or '=', which DICOM's
#: one-line key=value form uses as separators).
DERIVED = "MedSR result, not an acquired image, not for primary diagnosis unless validated"


def _one_line(value) -> str:
    return " ".join(str(value).replace(";", ",").replace("=", ":").split())


def clean(provenance: dict) -> dict[str, str]:
    """The record as single-line text values (header fields cannot hold newlines)."""
    return {str(k): _one_line(v) for k, v in provenance.items()}


def header_fields(provenance: dict) -> dict[str, str]:
    """NRRD / MetaImage fields: ``MedSR.<key>`` -> value."""
    return {PREFIX + k: v for k, v in clean(provenance).items()}


def short_scale(provenance: dict) -> str:
    """The scale for a title: '2' when every scaled axis has one factor, else 'fi,fj,fk' as recorded."""
    text = str(provenance.get("scale", ""))
    try:
        values = {float(v) for v in text.split(",") if float(v) != 1}
    except ValueError:
        return text
    return f"{values.pop():g}" if len(values) == 1 else text


def descrip(provenance: dict) -> str:
    """The NIfTI ``descrip`` line (at most 80 characters): MedSR, model, scale, derived."""
    p = clean(provenance)
    return f"MedSR {p.get('model', '')} x{short_scale(p)} derived, not acquired"[:80]


def derivation_text(provenance: dict) -> str:
    """DICOM DerivationDescription (at most 1024 characters): every key as ``k=v``."""
    return (DERIVATION_PREFIX + "; ".join(f"{k}={v}" for k, v in clean(provenance).items()))[:1024]


def parse_derivation(text: str) -> Optional[dict]:
    """The record from a DerivationDescription that ``derivation_text`` wrote; None otherwise."""
    text = (text or "").strip()
    if not text.startswith(DERIVATION_PREFIX):
        return None
    out = {}
    for part in text[len(DERIVATION_PREFIX):].split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key] = value
    return out


def nifti_with_record(source: PathLike, target: PathLike, provenance: dict) -> None:
    """Copy the uncompressed NIfTI ``source`` (as ITK wrote it) to ``target`` (``.nii`` or ``.nii.gz``)
    with the record as a header extension and in ``descrip``, in one streamed pass: the voxels are
    copied block by block, never held in memory; qform, sform and scaling stay exactly as written."""
    import gzip
    import shutil

    import nibabel as nib

    with open(source, "rb") as src:
        header = nib.Nifti1Header.from_fileobj(src, check=False)
        data_start = int(header["vox_offset"])
        header.extensions.clear()
        body = json.dumps({"MedSR": clean(provenance)}, sort_keys=False).encode()
        header.extensions.append(nib.nifti1.Nifti1Extension(NIFTI_ECODE_COMMENT, body))
        header["descrip"] = descrip(provenance).encode()[:80]
        offset = 352 + header.extensions.get_sizeondisk()
        offset += -offset % 16
        header.set_data_offset(offset)
        opener = (lambda p: gzip.open(p, "wb", compresslevel=1)) if extension_of(target) == ".nii.gz" else \
            (lambda p: open(p, "wb"))
        with opener(target) as out:
            header.write_to(out)
            out.write(b"\0" * (offset - out.tell()))
            src.seek(data_start)
            shutil.copyfileobj(src, out, 16 << 20)


def _from_nifti(path: Path) -> Optional[dict]:
    import warnings
    import nibabel as nib
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extensions = nib.load(os.fspath(path)).header.extensions  # the header only; voxels stay on disk
    for ext in extensions:
        if ext.get_code() == NIFTI_ECODE_COMMENT:
            try:
                record = json.loads(bytes(ext.get_content()).rstrip(b"\x00").decode())
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict) and isinstance(record.get("MedSR"), dict):
                return record["MedSR"]
    return None


def _from_dicom(path: Path, series: Optional[str] = None) -> Optional[dict]:
    import SimpleITK as sitk
    from MedSRExtension.core.dicom_series import series_files
    reader = sitk.ImageFileReader()
    reader.SetFileName(series_files(path, series)[0])
    reader.ReadImageInformation()
    tag = "0008|2111"  # DerivationDescription
    return parse_derivation(reader.GetMetaData(tag)) if reader.HasMetaDataKey(tag) else None


def _from_itk_header(path: Path) -> Optional[dict]:
    import SimpleITK as sitk
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    record = {k[len(PREFIX):]: reader.GetMetaData(k) for k in reader.GetMetaDataKeys() if k.startswith(PREFIX)}
    return record or None


def read_provenance(path: PathLike, series: Optional[str] = None) -> Optional[dict]:
    """The MedSR record of the image at ``path`` (file or DICOM folder, or its series ``series``), or None
    when it has none."""
    path = Path(path)
    ext = extension_of(path)
    if path.is_dir() or ext == ".dcm":
        return _from_dicom(path, series)
    if ext in NIFTI:
        return _from_nifti(path)
    if ext in IMAGE_FORMATS:
        sidecar = Path(str(path) + SIDECAR_SUFFIX)
        if sidecar.is_file():
            record = json.loads(sidecar.read_text(encoding="utf-8"))
            return record.get("MedSR") if isinstance(record, dict) else None
        return None
    return _from_itk_header(path)


def sidecar_text(provenance: dict) -> str:
    """The JSON sidecar of a 2D image output."""
    return json.dumps({"MedSR": clean(provenance)}, indent=1) + "\n"
