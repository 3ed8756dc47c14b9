"""An upload checked and turned into a worker request before it is queued.

The volume is a NIfTI, NRRD or MHA file, or a zip of one DICOM series (read by MedSR's own DICOM
reader with all its series rules, as a local run reads a folder). The options are the
``InferenceOptions`` fields as JSON. Everything is checked here, so bad input is answered
``400 {"error": <the engine's one-line message>}`` and never reaches the queue.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Optional

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.formats import SELF_CONTAINED as VOLUME_SUFFIXES  # one file, no companion

MAX_ZIP_FILES = 5000
#: Options that name files on the machine they run on: a client cannot name the server's files.
SERVER_WEIGHTS = ("auto", "random")


def upload_name(filename: Optional[str]) -> tuple[str, str]:
    """(safe base name, kind: the volume suffix or ".zip") of an uploaded file's name."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    lower = name.lower()
    for suffix in VOLUME_SUFFIXES + (".zip",):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name, suffix
    raise MedSRError(f"the uploaded file '{name or '(no name)'}' is not a volume this server reads; send a "
                     f"NIfTI (.nii, .nii.gz), NRRD (.nrrd) or MHA (.mha) file, or a .zip of one DICOM series")


def parse_options(text: Optional[str]) -> dict:
    """The options JSON as InferenceOptions fields, with what a server cannot honour refused."""
    from MedSRExtension.inference.options import InferenceOptions
    try:
        data = json.loads(text or "{}")
    except ValueError as exc:
        raise MedSRError(f"the options are not valid JSON ({exc}); send e.g. {{\"model\": \"bicubic\", \"scale\": 2}}") from None
    if not isinstance(data, dict):
        raise MedSRError("the options must be a JSON object of run options, e.g. {\"model\": \"bicubic\", \"scale\": 2}")
    if data.get("weights", "auto") not in SERVER_WEIGHTS:
        raise MedSRError("weights must be 'auto' or 'random' on a server (a weights file is not uploaded); "
                         "ask the administrator to install the weights")
    if data.get("save_adapted"):
        raise MedSRError("save_adapted names a file on the server; it is not offered by the server")
    if data.get("confidence") and data.get("mode") not in ("throughplane", "auto", None):
        raise MedSRError("confidence needs a through-plane run (two orientations of planes to compare); "
                         "send \"mode\": \"throughplane\" or leave confidence out")
    return InferenceOptions.from_dict(data).to_dict()


def _extract_series(archive: Path, folder: Path) -> None:
    """Unpack a zip of DICOM files into ``folder``, flat: names are reduced to their last part, so no
    entry can reach outside it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = [e for e in zf.infolist() if not e.is_dir()]
            if not entries or len(entries) > MAX_ZIP_FILES:
                raise MedSRError(f"the zip holds {len(entries)} files; send a zip of one DICOM series "
                                 f"(1 to {MAX_ZIP_FILES} files)")
            folder.mkdir()
            for n, entry in enumerate(entries):
                with zf.open(entry) as src, open(folder / f"{n:05d}_{PurePosixPath(entry.filename).name}", "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile as exc:
        raise MedSRError(f"the uploaded .zip cannot be read ({exc}); send a zip of one DICOM series") from None


def save_upload(stream: BinaryIO, filename: Optional[str], folder: Path) -> Path:
    """Copy the upload into ``folder``; returns what ``load_volume`` reads (the file, or the series
    folder named as the zip was, so the provenance names the source as a local run does)."""
    name, kind = upload_name(filename)
    target = folder / name
    with open(target, "wb") as f:
        shutil.copyfileobj(stream, f, 1 << 20)
    if kind != ".zip":
        return target
    series = folder / name[: -len(".zip")]
    _extract_series(target, series)
    target.unlink()
    return series


def prepare(source: Path, options: dict, work: Path) -> tuple[dict, Optional[str]]:
    """Read ``source``, settle mode "auto" for it, check the scale, and write the worker request into
    ``work``. Returns (the options as they will run, the line saying which mode "auto" chose)."""
    from MedSRExtension.core.volume_io import load_volume
    from MedSRExtension.inference.engine import resolve_factors
    from MedSRExtension.inference.options import InferenceOptions
    from MedSRExtension.worker.protocol import write_request

    volume = load_volume(source)
    run_options, chosen = InferenceOptions.from_dict(options).for_volume(volume)
    resolve_factors(volume, run_options.mode, run_options.axis,
                    scale=None if run_options.spacing is not None else run_options.scale, spacing=run_options.spacing)
    work.mkdir()
    write_request(str(work), volume, run_options.to_dict())
    return run_options.to_dict(), chosen
