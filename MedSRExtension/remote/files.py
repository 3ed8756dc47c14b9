"""``superresolve_remote``: ``pipeline.files.superresolve_file`` with the work done by a ``medsr server``.

Same output semantics as a local run: the output is checked against the input before anything is
sent, the result is written atomically by MedSR's own writers (``save_volume`` by extension, or a
DICOM series derived from a DICOM input) with the provenance the server recorded, on the exact
geometry the server computed (taken from the job's JSON, which round-trips floats exactly, rather
than from the NRRD header's text). A DICOM series is sent as a zip of the checked series' files.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.formats import SELF_CONTAINED
from MedSRExtension.core.volume import Volume
from MedSRExtension.inference.options import InferenceOptions

from .client import ServerClient



def _upload_file(input_path: str, series: Optional[str], folder: Path) -> str:
    """The file to send: the input itself, or a zip of its DICOM series named as the folder."""
    path = Path(input_path)
    if path.is_dir():
        from MedSRExtension.core.dicom_series import series_files
        files = series_files(path, series)
        archive = folder / (path.resolve().name + ".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for n, name in enumerate(files):
                zf.write(name, f"{n:05d}.dcm")
        return str(archive)
    if not path.is_file():
        raise MedSRError(f"input {input_path} does not exist; give a volume file or a DICOM folder")
    if not path.name.lower().endswith(SELF_CONTAINED):
        raise MedSRError(f"{path.name}: a MedSR server takes NIfTI, NRRD or MHA files or a DICOM series folder; "
                         "convert it, or run it here without --server")
    return str(path)


def _result(nrrd: str, geometry: dict) -> tuple[Volume, dict]:
    from MedSRExtension.core.provenance import read_provenance
    from MedSRExtension.core.volume_io import load_volume
    loaded = load_volume(nrrd)
    exact = Volume(loaded.array, tuple(geometry["spacing"]), tuple(geometry["origin"]),
                   np.array(geometry["direction"], dtype=float), {})
    if not (np.allclose(exact.spacing, loaded.spacing, rtol=1e-9) and np.allclose(exact.origin, loaded.origin, atol=1e-6)):
        raise MedSRError("the server's result file and its job record disagree on the geometry; run the job again")
    return exact, read_provenance(nrrd) or {}


def superresolve_remote(input_path: str, output: str, options: InferenceOptions, server: str, token: str,
                        progress=None, series: Optional[str] = None, say=None,
                        confidence: Optional[str] = None) -> dict:
    """Send ``input_path`` to the server at ``server``, wait (Ctrl-C cancels the job there), and write
    ``output`` as ``superresolve_file`` does (``confidence``: also the confidence map, to that file).
    Returns the same dict (output, provenance, shape, spacing, seconds, adapt=None)."""
    from MedSRExtension.core.volume_io import save_volume
    from MedSRExtension.pipeline.files import check_output

    start = time.perf_counter()
    out, series_out = check_output(output, input_path)
    if confidence:
        from MedSRExtension.core.validation import check_output_file
        from MedSRExtension.core.volume_io import WRITABLE
        check_output_file(confidence, [input_path, output], WRITABLE)
        options = options.replace(confidence=True)
    client = ServerClient(server, token)
    scratch = Path(tempfile.mkdtemp(prefix="medsr-remote-"))
    try:
        job = client.submit(_upload_file(input_path, series, scratch), options.to_dict())
        if job.get("chosen") and say:
            say(job["chosen"])
        state = client.wait(job["id"], progress=progress)
        nrrd = client.download(job["id"], str(scratch / "result.nrrd"))
        result, record = _result(nrrd, state["geometry"])
        if series_out:
            from MedSRExtension.core.dicom_out import write_dicom_series
            write_dicom_series(result, out, input_path, record, series=series)
        else:
            save_volume(result, out, provenance=record)
        if confidence:
            spread, _ = _result(client.download(job["id"], str(scratch / "confidence.nrrd"), "confidence"),
                                state["geometry"])
            from MedSRExtension.pipeline.files import save_confidence
            save_confidence(spread, confidence, record)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"output": str(out), "provenance": record, "shape": result.shape_ijk, "spacing": result.spacing,
            "seconds": time.perf_counter() - start, "adapt": None, "job": job["id"]}


__all__ = ["superresolve_remote"]
