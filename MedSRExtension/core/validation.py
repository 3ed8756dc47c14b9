"""Input validation: the one place that decides whether a file, an array, a geometry or an option
value is fit to use. Every entry point calls it (``load_volume``, ``super_resolve``, the CLI
subcommands, the Slicer glue) before any work starts, and each refusal is a one-line MedSRError
that says what is wrong and what to do.

Why checks of our own, not only SimpleITK's: ITK fills a truncated .nii/.nii.gz with zeros, reads
NaN/Inf NIfTI voxels as 0, reads a zero pixdim or a singular sform as 1 mm, and reports a truncated
or detached MetaImage as "No such file or directory". The checks below read the headers themselves
(nibabel for NIfTI, a few header lines for MetaImage and NRRD) and the stored data.
"""
from __future__ import annotations

import gzip
import math
import os
import warnings
import zlib
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from MedSRExtension.core import series_owner
from MedSRExtension.core.dicom_series import looks_like_dicom
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.formats import METAIMAGE, NIFTI, NRRD
from MedSRExtension.core.nrrd_header import read_nrrd_header

PathLike = Union[str, os.PathLike]
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}
_META_FLOAT = ("MET_FLOAT", "MET_DOUBLE")


def extension_of(path: PathLike) -> str:
    """The lower-case extension, '.nii.gz' counted as one."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


# --- arrays and geometry -----------------------------------------------------------------------

def geometry_problems(spacing: Sequence[float], origin: Sequence[float], direction: np.ndarray,
                      names: tuple[str, str, str] = ("spacing", "origin", "direction")) -> list[str]:
    """What is wrong with a geometry (empty when it is usable): zero, negative or non-finite spacing,
    a non-finite origin, a non-finite or singular direction. ``names`` are the header fields."""
    out = []
    sp = np.asarray(spacing, dtype=float)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        out.append(f"{names[0]} {tuple(float(s) for s in sp)} is not positive and finite")
    if not np.all(np.isfinite(np.asarray(origin, dtype=float))):
        out.append(f"{names[1]} {tuple(float(o) for o in origin)} is not finite")
    d = np.asarray(direction, dtype=float)
    if not np.all(np.isfinite(d)):
        out.append(f"{names[2]} matrix has NaN/Inf entries")
    elif abs(np.linalg.det(d)) < 1e-6:
        out.append(f"{names[2]} matrix is singular (two axes coincide or one is zero)")
    return out


def check_geometry(spacing, origin, direction, source: str) -> None:
    """Refuse a geometry that ``geometry_problems`` finds fault with."""
    problems = geometry_problems(spacing, origin, direction)
    if problems:
        raise MedSRError(f"{source} has an invalid geometry: {problems[0]}; fix the image header (spacing, "
                         "origin, orientation) before super-resolution")


def check_array(array: np.ndarray, source: str) -> None:
    """Refuse an empty array or NaN/Inf voxels: they would spread through every model."""
    arr = np.asarray(array)
    if arr.size == 0:
        raise MedSRError(f"{source} holds no voxels (shape {arr.shape}); give an image with data")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise MedSRError(f"{source} has voxels of type {arr.dtype}; give a numeric image")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise MedSRError(f"{source} has complex voxels; take the magnitude first")
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise MedSRError(f"{source} contains {bad} NaN/Inf voxels; replace them (e.g. with 0) "
                             "before super-resolution")


def check_volume(volume, source: str = "input volume") -> None:
    """Voxels and geometry of an engine Volume, as ``super_resolve`` needs them."""
    check_array(volume.array, source)
    check_geometry(volume.spacing, volume.origin, volume.direction, source)


# --- files -------------------------------------------------------------------------------------

def _incomplete(path: Path, detail: str) -> MedSRError:
    return MedSRError(f"{path} is incomplete ({detail}); copy or download it again")


def _read_stream(path: Path) -> bytes:
    """The whole decompressed gzip stream; refuses a stream that ends early or is corrupt."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except EOFError:
        raise _incomplete(path, "the compressed stream ends early") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise MedSRError(f"cannot read {path}: not a valid gzip stream ({exc.__class__.__name__}); "
                         "copy or download it again") from None


def nifti_geometry_problems(header) -> list[str]:
    """Header fields that would give a made-up geometry: pixdim, sform (srow_*), qform (quatern_*, qoffset_*)."""
    out = []
    ndim = int(header["dim"][0])
    pixdim = [float(v) for v in header["pixdim"][1:1 + min(max(ndim, 1), 3)]]
    bad = [f"pixdim[{i + 1}] = {v:g}" for i, v in enumerate(pixdim) if not math.isfinite(v) or v <= 0]
    if bad:
        out.append(f"{', '.join(bad)} (voxel size must be positive)")
    if int(header["sform_code"]) > 0:
        srow = np.stack([np.asarray(header[f"srow_{a}"], dtype=float) for a in "xyz"])
        if not np.all(np.isfinite(srow)):
            out.append("the sform (srow_x/y/z) has NaN/Inf entries")
        elif abs(np.linalg.det(srow[:, :3])) < 1e-12:
            out.append("the sform (srow_x/y/z) is singular")
    if int(header["qform_code"]) > 0:
        quat = [float(header[f]) for f in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y",
                                           "qoffset_z")]
        if not all(math.isfinite(v) for v in quat):
            out.append("the qform (quatern_*/qoffset_*) has NaN/Inf entries")
    return out


def nifti_header(path: Path, head: Optional[bytes] = None):
    """The NIfTI-1/2 header exactly as stored (nibabel without its fix-ups, which would turn a
    negative pixdim positive and hide what ITK then makes up)."""
    import io
    import nibabel as nib

    if head is None:
        opener = gzip.open if extension_of(path) == ".nii.gz" else open
        try:
            with opener(path, "rb") as f:
                head = f.read(540)
        except (EOFError, OSError, zlib.error):
            head = b""
    sizes = {int.from_bytes(head[:4], order) for order in ("little", "big")} if len(head) >= 348 else set()
    if not sizes & {348, 540}:
        raise MedSRError(f"cannot read {path}: not a NIfTI file (no NIfTI header at its start); "
                         "check that it is a whole NIfTI file")
    klass = nib.Nifti2Header if 540 in sizes else nib.Nifti1Header
    try:
        with warnings.catch_warnings():  # nibabel warns about odd extensions; we refuse or read on
            warnings.simplefilter("ignore")
            # the fixed header only: its extensions (MedSR's provenance, others') are not needed here
            return klass.from_fileobj(io.BytesIO(head[:540 if 540 in sizes else 348]), check=False)
    except Exception as exc:  # nibabel raises many kinds for a damaged header
        raise MedSRError(f"cannot read {path}: not a valid NIfTI header ({exc.__class__.__name__}); "
                         "check that it is a whole NIfTI file") from None


def _check_nifti(path: Path, geometry: bool) -> None:
    gz = extension_of(path) == ".nii.gz"
    stream = _read_stream(path) if gz else None
    header = nifti_header(path, stream[:540] if gz else None)
    shape = header.get_data_shape()
    try:
        dtype = header.get_data_dtype()
    except Exception:
        raise MedSRError(f"cannot read {path}: unknown NIfTI datatype code {int(header['datatype'])}; "
                         "check that it is a whole NIfTI file") from None
    offset = int(header.get_data_offset())
    count = int(np.prod(shape, dtype=np.int64))
    need = offset + count * dtype.itemsize
    have = len(stream) if gz else path.stat().st_size
    if have < need:
        raise _incomplete(path, f"its header promises {need:,} bytes, it holds {have:,}")
    if geometry:
        problems = nifti_geometry_problems(header)
        if problems:
            raise MedSRError(f"{path} has an invalid geometry: {problems[0]}; fix the NIfTI header before use")
    if dtype.kind in "fc":  # what ITK would read as 0: the stored NaN/Inf
        if gz:
            data = np.frombuffer(stream, dtype=dtype, count=count, offset=offset)
        else:
            data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))
        check_array(np.abs(data) if dtype.kind == "c" else data, str(path))


def _meta_header(path: Path) -> dict:
    """The key = value fields of a MetaImage header, up to ElementDataFile."""
    fields = {}
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("latin-1").strip()
            if "=" not in line:
                if fields:
                    break
                continue
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                fields["_offset"] = f.tell()
                break
    return fields


def _check_metaimage(path: Path) -> None:
    fields = _meta_header(path)
    if "DimSize" not in fields or "ElementDataFile" not in fields:
        raise MedSRError(f"{path} is not a MetaImage file (no DimSize/ElementDataFile header fields); check the file")
    data_name = fields["ElementDataFile"]
    if data_name.upper() in ("LIST",) or "%" in data_name:
        return  # a list of slice files: left to ITK
    if data_name.upper() == "LOCAL":
        data_path, offset = path, int(fields["_offset"])
    else:
        data_path, offset = path.parent / data_name, 0
        if not data_path.is_file():
            raise MedSRError(f"the data file '{data_name}' named by {path.name} (ElementDataFile) is missing; "
                             f"keep it in {path.parent} beside the header")
    have = data_path.stat().st_size - offset
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        raise MedSRError(f"{path} has a malformed DimSize field '{fields['DimSize']}'; check the header") from None
    item = _META_TYPES.get(fields.get("ElementType", ""), 0)
    compressed = fields.get("CompressedData", "False").lower() == "true"
    if compressed:
        need = int(fields.get("CompressedDataSize", "0") or 0)
    else:
        need = int(np.prod(dims, dtype=np.int64)) * item * channels
    if need and have < need:
        raise _incomplete(data_path, f"{path.name} promises {need:,} bytes of voxels, the file holds {have:,}")


def _check_nrrd(path: Path) -> None:
    fields = read_nrrd_header(path)
    name = fields.get("data file") or fields.get("datafile")
    if name and not name.upper().startswith("LIST") and "%" not in name:
        data = Path(name) if os.path.isabs(name) else path.parent / name
        if not data.is_file():
            raise MedSRError(f"the data file '{name}' named by {path.name} (data file) is missing; "
                             f"keep it beside the header in {path.parent}")


def _has_pixel_data(path: Path) -> bool:
    data = path.read_bytes()
    return any(tag in data for tag in _PIXEL_DATA_TAGS)


def _check_dicom_file(path: Path) -> None:
    if looks_like_dicom(path) and not _has_pixel_data(path):
        raise MedSRError(f"{path} is a DICOM file without pixel data (a report, structured set or header only); "
                         "give an image series")


def check_dicom_folder(path: Path) -> None:
    """Called when ITK finds no series: say whether the folder holds DICOM files without pixel data."""
    files = [p for p in sorted(path.iterdir()) if p.is_file() and looks_like_dicom(p)]
    if files and not any(_has_pixel_data(p) for p in files):
        raise MedSRError(f"the {len(files)} DICOM file(s) in {path} hold no pixel data (reports or structured sets); "
                         "point to a folder with an image series")
    raise MedSRError(f"no DICOM series found in folder {path}; point to a folder of .dcm files or a file")


def check_input_file(path: PathLike, geometry: bool = True) -> None:
    """Refuse a file that cannot be read whole: missing, truncated, with a missing data file, without
    pixel data, or (NIfTI) with NaN/Inf voxels or (``geometry``) an invalid header geometry."""
    path = Path(path)
    if path.is_dir():
        return
    if not path.exists():
        raise MedSRError(f"input file not found: {path}; check the path")
    if not os.access(path, os.R_OK):
        raise MedSRError(f"cannot read {path}: permission denied")
    if path.stat().st_size == 0:
        raise MedSRError(f"{path} is empty (0 bytes); copy or download it again")
    ext = extension_of(path)
    if ext in NIFTI:
        _check_nifti(path, geometry)
    elif ext in METAIMAGE:
        _check_metaimage(path)
    elif ext in NRRD:
        _check_nrrd(path)
    elif looks_like_dicom(path):
        _check_dicom_file(path)


def companion_files(path: PathLike) -> list[Path]:
    """The input file and the data file its header names (.mhd -> .raw, .nhdr -> .raw)."""
    path = Path(path)
    out = [path]
    ext = extension_of(path)
    try:
        if ext == ".mhd":
            name = _meta_header(path).get("ElementDataFile", "")
            if name and name.upper() not in ("LOCAL", "LIST"):
                out.append(path.parent / name)
        elif ext == ".nhdr":
            name = read_nrrd_header(path).get("data file", "")
            if name:
                out.append(path.parent / name)
    except OSError:
        pass
    return out


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_file_target(path: Path, writable: Sequence[str]) -> tuple[str, Path]:
    """(extension, folder) of a file to be written: a writable type, in an existing folder, not a
    folder itself. The one rule ``check_output_file`` and ``volume_io.save_volume`` both apply."""
    ext = extension_of(path)
    if ext not in writable:
        raise MedSRError(f"cannot write '{ext or path.name}' files; use one of {', '.join(writable)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MedSRError(f"output folder does not exist: {parent}; create it first")
    if path.is_dir():
        raise MedSRError(f"the output {path} is an existing folder; give a file name")
    return ext, parent


def check_output_file(output: PathLike, inputs: Iterable[PathLike], writable: Sequence[str]) -> Path:
    """Refuse an output the run could not write, or one that is (after links, relative parts and
    '..') one of the input files: the input is never overwritten."""
    out = Path(output)
    if not str(output).strip():
        raise MedSRError("the output path is empty; give a file name such as out.nii.gz")
    ext, parent = check_file_target(out, writable)
    if not os.access(parent, os.W_OK):
        raise MedSRError(f"cannot write into {parent}: permission denied; choose another output folder")
    targets = [out]
    if ext == ".mhd":
        targets.append(out.with_suffix(".raw"))
        targets.append(out.with_suffix(".zraw"))
    for given in inputs:
        for source in companion_files(given):
            for target in targets:
                if _same_file(target, source):
                    raise MedSRError(f"the output {out} is the input file {source}; choose another output name "
                                     "(inputs are kept)")
    return out


def check_output_folder(folder: PathLike, inputs: Iterable[PathLike], products: Sequence[str]) -> Path:
    """Refuse an output folder that is a file, or whose products (names relative to it) would
    replace an input file."""
    out = Path(folder)
    if not str(folder).strip():
        raise MedSRError("the output folder is empty; give a folder name")
    if out.exists() and not out.is_dir():
        raise MedSRError(f"the output folder {out} is a file; give a folder")
    for given in inputs:
        for source in companion_files(given):
            for name in products:
                if _same_file(out / name, source):
                    raise MedSRError(f"writing {out / name} would replace the input {source}; choose another "
                                     "output folder (inputs are never overwritten)")
    return out


def is_series_output(output: PathLike) -> bool:
    """An output written as a DICOM series folder: a path ending in a separator ('out/') or without
    an extension ('out'); anything else is a file written by its extension."""
    text = os.fspath(output)
    return text.endswith(("/", os.sep)) or (bool(text.strip()) and extension_of(text) == "")


def is_dicom_series(path: PathLike) -> bool:
    """A DICOM file, or a folder holding DICOM files (by extension or by the DICM preamble)."""
    path = Path(path)
    if path.is_file():
        return looks_like_dicom(path)
    if path.is_dir():
        return any(p.is_file() and looks_like_dicom(p) for p in path.iterdir())
    return False


def check_output_series(folder: PathLike, source: PathLike, replace: bool = False) -> Path:
    """Refuse a DICOM series output that has no DICOM series to derive from (patient, study and frame
    of reference come from the source), whose parent folder is missing, or (unless ``replace``, for
    a batch redoing its own output) that already holds files."""
    out = Path(folder)
    if not is_dicom_series(source):
        raise MedSRError(f"a DICOM series output ({out}) needs a DICOM series input to derive it from, and "
                         f"{source} is not one; give an output file such as out.nii.gz or out.nrrd")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise MedSRError(f"output folder does not exist: {parent}; create it first")
    if out.exists() and not out.is_dir():
        raise MedSRError(f"the DICOM output {out} is a file; give a new folder name")
    if out.is_dir() and any(out.iterdir()):
        check_replaceable_series(out, replace)
    source = Path(source)
    if _same_file(out, source) or (source.is_file() and _same_file(out, source.parent)):
        raise MedSRError(f"the output {out} is the input series; choose another folder (the input is never "
                         "overwritten)")
    return out


def check_replaceable_series(out: Path, replace: bool) -> None:
    """A non-empty DICOM output folder may be replaced only by a redo (``replace``) and only when it
    holds nothing but a series MedSR wrote (core.series_owner)."""
    if not replace:
        raise MedSRError(f"DICOM output folder {out} exists and is not empty; choose a new folder")
    foreign = series_owner.foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise MedSRError(f"DICOM output folder {out} holds files MedSR did not write ({shown}); move them or "
                         "choose a new folder (they are never deleted)")


def check_weights_file(path: PathLike) -> None:
    """A user's weight file must be a well-formed safetensors file (its header is parsed, nothing is
    executed); pickled files are refused by name and by content."""
    import json
    import struct

    path = Path(path)
    if extension_of(path) != ".safetensors":
        raise MedSRError(f"weights '{path}' must be a .safetensors file (pickled weights are never loaded); "
                         "convert them with safetensors.torch.save_file")
    if not path.is_file():
        raise MedSRError(f"weight file '{path}' not found; check the path")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        ok = 0 < n <= min(size - 8, 100 << 20)
        if ok:
            try:
                header = json.loads(f.read(n))
                ok = isinstance(header, dict)
            except ValueError:
                ok = False
    if not ok:
        raise MedSRError(f"weight file '{path}' is not a safetensors file (a pickle or a damaged file?); "
                         "give weights saved with safetensors")


# --- option values -----------------------------------------------------------------------------

def parse_numbers(text: Optional[str], what: str, allowed: Sequence[int] = (1, 3), positive: bool = True):
    """'2' -> 2.0; '2,2,1' -> (2.0, 2.0, 1.0); None -> None. Empty, non-numeric, non-finite or
    (``positive``) non-positive values are refused."""
    if text is None:
        return None
    parts = [v.strip() for v in str(text).split(",")]
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise MedSRError(f"{what} must be a number or {max(allowed)} comma-separated numbers, got '{text}'; "
                         f"e.g. {what} 2{' or ' + what + ' 2,2,1' if 3 in allowed else ''}") from None
    if len(values) not in allowed:
        raise MedSRError(f"{what} takes {' or '.join(map(str, allowed))} value(s), got {len(values)} in '{text}'; "
                         "give one value for all axes or one per axis (i, j, k)")
    if not all(math.isfinite(v) for v in values) or (positive and any(v <= 0 for v in values)):
        raise MedSRError(f"{what} must be {'positive ' if positive else ''}finite numbers, got '{text}'; e.g. {what} 2")
    return values[0] if len(values) == 1 else tuple(values)


def parse_counts(text: str, what: str) -> list[int]:
    """'50,300' -> [50, 300]: comma-separated whole numbers of at least 1 (slice counts and the like)."""
    parts = [v.strip() for v in str(text).split(",")]
    if not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise MedSRError(f"{what} takes comma-separated whole numbers of at least 1, got '{text}'; e.g. {what} 50,300")
    return [int(p) for p in parts]


def parse_component(text: Optional[str]) -> Union[None, int, str]:
    """--component: None, 'luminance', or a channel index (0, 1, ...)."""
    if text is None:
        return None
    t = str(text).strip().lower()
    if t == "luminance":
        return t
    if t.isdigit():
        return int(t)
    raise MedSRError(f"--component takes a channel index (0, 1, 2, ...) or 'luminance', got '{text}'; "
                     "e.g. --component 0 for the first channel")


def check_positive_int(value: Optional[int], what: str) -> None:
    """Tile and batch sizes: None (automatic) or a whole number of at least 1 (``what``: the option's
    name, which is also its command-line flag)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise MedSRError(f"{what} must be a positive whole number, got {value} (--{what}); "
                         "leave it out for the automatic size")


def check_thickness_mm(value: Optional[float], what: str = "slice thickness") -> None:
    """A slice thickness: None (unknown) or a finite number of mm above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise MedSRError(f"{what} must be a positive number of mm, got {value:g}")


OUT_DTYPES = ("float32", "input")


def check_out_dtype(out_dtype: str) -> None:
    """The output voxel type: one of ``OUT_DTYPES`` or a numeric numpy type name."""
    if out_dtype in OUT_DTYPES:
        return
    try:
        ok = np.dtype(out_dtype).kind in "fiu"
    except TypeError:
        ok = False
    if not ok:
        raise MedSRError(f"output dtype must be one of {', '.join(OUT_DTYPES)} (or a numeric numpy type), "
                         f"got '{out_dtype}'; use float32 or input")
