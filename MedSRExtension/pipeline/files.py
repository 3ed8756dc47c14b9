"""One input file (or DICOM folder) in, one output out: the single-input pipeline every entry point
that works on files shares (``medsr run`` once, every ``medsr batch`` task, the server), so all accept
and refuse exactly the same inputs and options. An OUTPUT ending in '/' (or without an extension) is
written as a DICOM series derived from a DICOM series input."""
from __future__ import annotations

import time
from pathlib import Path

from MedSRExtension.core import validation
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.volume_io import WRITABLE, load_volume, save_volume
from MedSRExtension.inference.options import InferenceOptions


def check_output(output: str, input_path: str, replace: bool = False) -> tuple[Path, bool]:
    """The output path and whether it is a DICOM series folder, refused as ``medsr run`` refuses it."""
    if validation.is_series_output(output):
        return validation.check_output_series(output, input_path, replace=replace), True
    return validation.check_output_file(output, [input_path], WRITABLE), False


def superresolve_file(input_path: str, output: str, options: InferenceOptions, component=None, progress=None,
                      replace: bool = False, series: str | None = None, say=None,
                      confidence: str | None = None) -> dict:
    """The single-input pipeline: check the output against the input, read, super-resolve with
    ``options``, record provenance and write atomically (a DICOM series for a folder output).

    Returns {"output", "provenance", "shape", "spacing", "seconds", "adapt"} (adapt: what the
    adaptation used, or None). ``replace`` lets a batch redo its
    own DICOM output folder; a file output is always replaced atomically. ``series`` picks the
    SeriesInstanceUID of a DICOM folder that holds several; ``say(line)`` hears the mode chosen for
    mode "auto" before the run starts; ``confidence`` names a file for the confidence volume."""
    from MedSRExtension.pipeline import run_pipeline
    from MedSRExtension.inference.provenance import describe_run

    start = time.perf_counter()
    out, series_out = check_output(output, input_path, replace=replace)
    volume = load_volume(input_path, component=component, series=series)
    options, chosen = options.for_volume(volume)
    if confidence:
        if options.mode != "throughplane":
            raise MedSRError("--confidence needs a through-plane run (two orientations of planes to compare); "
                             "add --mode throughplane or leave --confidence out")
        validation.check_output_file(confidence, [input_path, output], WRITABLE)
        options = options.replace(confidence=True)
    if chosen and say:
        from MedSRExtension.inference.engine import resolve_factors
        resolve_factors(volume, options.mode, options.axis, scale=None if options.spacing is not None
                        else options.scale, spacing=options.spacing)  # a bad scale is the only line said
        say(chosen)
    result = run_pipeline(volume, options, progress=progress)
    record = describe_run(volume, result, options.to_dict(), source=input_path)
    if series_out:
        from MedSRExtension.core.dicom_out import write_dicom_series
        write_dicom_series(result, out, input_path, record, replace=replace, series=series)
    else:
        save_volume(result, out, provenance=record)
    if confidence:
        save_confidence(result.meta["confidence"], confidence, record)
    return {"output": str(out), "provenance": record, "shape": result.shape_ijk, "spacing": result.spacing,
            "seconds": time.perf_counter() - start, "adapt": result.meta.get("adapt")}


def save_confidence(confidence, path: str, record: dict) -> None:
    """The confidence volume beside the result, with the result's provenance saying what it is."""
    what = record["derived"] + " (confidence map: |difference| of the two plane orientations)"
    save_volume(confidence, path, provenance={**record, "derived": what})

