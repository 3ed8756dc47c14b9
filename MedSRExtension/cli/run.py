"""``medsr run INPUT OUTPUT``: super-resolve one file or DICOM folder.

``superresolve_file`` is the whole single-input pipeline (validation, reading, the engine,
provenance, the atomic write): ``medsr run`` calls it once and every ``medsr batch`` task calls it,
so both accept and refuse exactly the same inputs and options. An OUTPUT ending in '/' (or without
an extension) is written as a DICOM series derived from a DICOM series input.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from MedSRExtension.core import validation
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.geometry import MODES
from MedSRExtension.core.volume_io import WRITABLE, load_volume, save_volume
from MedSRExtension.inference.devices import resolve_device
from MedSRExtension.inference.options import InferenceOptions
from MedSRExtension.models.registry import get_spec
from MedSRExtension.zoo.catalog import default_model, fallback_reason

from .common import parse_component, parse_floats, progress_bar


def register(sub) -> None:
    p = sub.add_parser("run", help="super-resolve a volume or 2D image",
                       description="Super-resolve INPUT (NIfTI, NRRD, MHA/MHD, DICOM folder or 2D image) "
                                   "and write OUTPUT by its extension; OUTPUT/ (a folder) writes a DICOM "
                                   "series derived from a DICOM series INPUT.")
    p.add_argument("input")
    p.add_argument("output")
    add_run_options(p)
    p.add_argument("--adapt", nargs="?", type=float, const=True, default=None, metavar="MINUTES",
                   help="throughplane: first fine-tune the network on this volume's own in-plane slices "
                        "(default budget 3 min on a CPU, 0.75 on a GPU)")
    p.add_argument("--slice-thickness", type=float, default=None, metavar="MM",
                   help="with --adapt: the acquired slice thickness in mm (default: the file header, "
                        "else estimated from the volume)")
    p.add_argument("--save-adapted", default=None, metavar="FILE",
                   help="with --adapt: also write the tuned weights to FILE (.safetensors)")
    p.add_argument("--confidence", default=None, metavar="FILE",
                   help="throughplane: also write where the result is least supported by the data (how far the "
                        "two orientations of planes disagree, in the input's units) to FILE")
    p.add_argument("--series", default=None, metavar="UID",
                   help="the SeriesInstanceUID to read when the INPUT folder holds several DICOM series")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


#: The run options, as argparse names them (``medsr batch`` CSV columns use the same names).
OPTION_NAMES = ("model", "scale", "spacing", "mode", "axis", "device", "tile", "batch", "preset", "weights",
                "component", "dtype", "force", "clamp", "ensemble")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The engine options of ``medsr run`` (shared with ``medsr batch``)."""
    p.add_argument("--model", help="model name (see `medsr models`); default: the best shipped network "
                                   "for the scale, else bicubic")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", default=None, help="factor F, or per-axis FI,FJ,FK (default 2)")
    g.add_argument("--spacing", default=None, help="target spacing in mm: MM or MI,MJ,MK")
    p.add_argument("--mode", default="auto", choices=("auto",) + MODES,
                   help="auto (default): throughplane along the thick axis when the slice spacing is at least "
                        "1.5x the in-plane spacing, else inplane; the choice is printed")
    p.add_argument("--axis", default="auto", choices=("auto", "i", "j", "k"),
                   help="slice axis (auto: the largest spacing; k when isotropic)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, default=None, help="tile size in input pixels (bounds memory)")
    p.add_argument("--batch", type=int, default=None, help="slices per batch")
    p.add_argument("--preset", default=None, help="network preset (default: the shipped one)")
    p.add_argument("--weights", default="auto", help="'auto' (shipped, verified) or a .safetensors file")
    p.add_argument("--component", default=None, help="channel of a colour/vector image: index or 'luminance'")
    p.add_argument("--dtype", default="float32", choices=("float32", "input"),
                   help="output voxel type: float32, or the input's type (clipped and rounded)")
    p.add_argument("--force", action="store_true", help="allow outputs above the size limit")
    p.add_argument("--ensemble", type=int, default=1, choices=(1, 2, 4, 8),
                   help="average the network over N flipped/transposed copies (best quality, N times the time)")
    p.add_argument("--clamp", default="input", choices=("input", "none"),
                   help="input: keep the result inside the input's value range (default; recorded in the "
                        "provenance); none: the raw network output")


def options_from_args(args) -> InferenceOptions:
    """The inference options the arguments ask for, every value checked before any work (the
    default model resolved for the scale)."""
    validation.check_positive_int(args.tile, "--tile")
    validation.check_positive_int(args.batch, "--batch")
    scale = parse_floats(args.scale, "--scale")
    spacing = parse_floats(args.spacing, "--spacing")
    if scale is None and spacing is None:
        scale = 2.0
    if args.model:
        get_spec(args.model)
    if args.weights != "auto":
        validation.check_weights_file(args.weights)
    resolve_device(args.device)
    adapt, save_adapted = getattr(args, "adapt", None), getattr(args, "save_adapted", None)  # medsr run only
    if save_adapted and adapt is None:
        raise MedSRError("--save-adapted needs --adapt")
    if adapt is not None and args.mode not in ("throughplane", "auto"):
        raise MedSRError("--adapt is for --mode throughplane; add --mode throughplane")
    thickness = getattr(args, "slice_thickness", None)
    if thickness is not None:
        if adapt is None:
            raise MedSRError("--slice-thickness is for --adapt; add --adapt")
        validation.check_thickness_mm(thickness, "--slice-thickness")
        adapt = {"thickness_mm": thickness, **({} if adapt is True else {"minutes": adapt})}
    default = "pfmdn" if adapt is not None else default_model(scale if scale is not None else 2.0)
    fallback = None if args.model or adapt is not None else fallback_reason(scale if scale is not None else 2.0)
    return InferenceOptions(model=args.model or default, scale=scale, adapt=adapt, save_adapted=save_adapted,
                            fallback=fallback,
                            spacing=spacing, mode=args.mode, axis=args.axis, device=args.device, tile=args.tile,
                            batch=args.batch, preset=args.preset, weights=args.weights, out_dtype=args.dtype,
                            force=args.force, clamp=args.clamp, ensemble=args.ensemble)


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
        _save_confidence(result, confidence, record)
    return {"output": str(out), "provenance": record, "shape": result.shape_ijk, "spacing": result.spacing,
            "seconds": time.perf_counter() - start, "adapt": result.meta.get("adapt")}


def _save_confidence(result, path: str, record: dict) -> None:
    """The confidence volume beside the result, with the result's provenance saying what it is."""
    what = record["derived"] + " (confidence map: |difference| of the two plane orientations)"
    save_volume(result.meta["confidence"], path, provenance={**record, "derived": what})


def _say(line: str) -> None:
    print(f"medsr run: {line}; give --mode to choose", file=sys.stderr)


def run(args) -> int:
    # every option is checked before the input is read, and the output may never be an input
    check_output(args.output, args.input)
    options = options_from_args(args)
    component = parse_component(args.component)
    update, close = progress_bar(args.quiet, options.model)
    try:
        done = superresolve_file(args.input, args.output, options, component=component, progress=update,
                                 series=args.series, say=None if args.quiet else _say,
                                 confidence=args.confidence)
    finally:
        close()
    if options.fallback:  # never silent: said (after the checks and the run) and recorded in the provenance
        print(f"medsr run: {options.fallback}", file=sys.stderr)
    if not args.quiet:
        size = "x".join(map(str, done["shape"]))
        spacing_txt = ", ".join(f"{s:.4g}" for s in done["spacing"])
        kind = " (DICOM series)" if validation.is_series_output(args.output) else ""
        print(f"wrote {done['output']}{kind} ({size} voxels, spacing {spacing_txt} mm) with {options.model} "
              f"in {done['seconds']:.1f} s")
        if done.get("adapt"):
            info = done["adapt"]
            print(f"adapted from {info['start_weights']}: {info['steps']} steps in {info['seconds']} s, L1 "
                  f"{info['loss_first']:.4f} -> {info['loss_last']:.4f}; {info['profile']}")
    return 0
