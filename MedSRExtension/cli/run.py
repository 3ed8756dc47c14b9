"""``medsr run INPUT OUTPUT``: super-resolve one file or DICOM folder.

The command line of ``pipeline.files.superresolve_file`` (the single-input pipeline ``medsr batch``
and the server share) with the run options of ``pipeline.run_options``.
"""
from __future__ import annotations

import sys

from MedSRExtension.core import validation
from MedSRExtension.pipeline.files import check_output, superresolve_file
from MedSRExtension.pipeline.run_options import (OPTION_NAMES, add_run_options,  # noqa: F401 (cli.batch)
                                                  options_from_args, parse_component)

from .common import progress_bar


def register(sub) -> None:
    p = sub.add_parser("run", help="super-resolve a volume or 2D image",
                       description="Super-resolve INPUT (NIfTI, NRRD, MHA/MHD, DICOM folder or 2D image) "
                                   "and write OUTPUT by its extension; OUTPUT/ (a folder) writes a DICOM "
                                   "series derived from a DICOM series INPUT.")
    p.add_argument("input")
    p.add_argument("output", nargs="?", help="the output file or DICOM folder/ (may be left out with --store)")
    add_run_options(p)
    p.add_argument("--adapt", nargs="?", type=float, const=True, default=None, metavar="MINUTES",
                   help="throughplane: first fine-tune the network on this volume's own in-plane slices "
                        "(default budget 3 min on a CPU, 0.75 on a GPU)")
    p.add_argument("--slice-thickness", type=float, default=None, metavar="MM",
                   help="throughplane: the acquired slice thickness in mm (default: the file header, "
                        "else estimated from the volume); it picks the weights for contiguous slices or "
                        "slices with gaps and sets the profile of the self-check and of --adapt")
    p.add_argument("--save-adapted", default=None, metavar="FILE",
                   help="with --adapt: also write the tuned weights to FILE (.safetensors)")
    p.add_argument("--confidence", default=None, metavar="FILE",
                   help="throughplane: also write where the result is least supported by the data (how far the "
                        "two orientations of planes disagree, in the input's units) to FILE")
    p.add_argument("--series", default=None, metavar="UID",
                   help="the SeriesInstanceUID to read when the INPUT folder holds several DICOM series")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--server", default=None, metavar="URL",
                   help="run on a medsr server (http(s)://HOST:PORT); the token from $MEDSR_TOKEN or --token")
    p.add_argument("--token", default=None, metavar="T", help="the server's token (prefer $MEDSR_TOKEN)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="store the derived DICOM series in a PACS (STOW-RS, http(s)://HOST/dicom-web); INPUT may "
                        "be dicomweb:http(s)://HOST/dicom-web/studies/UID/series/UID")
    p.set_defaults(func=run)


def _say(line: str) -> None:
    print(f"medsr run: {line}; give --mode to choose", file=sys.stderr)


def run(args) -> int:
    from .run_remote import needs_elsewhere, run_elsewhere
    if needs_elsewhere(args):
        return run_elsewhere(args, _report)
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
    _report(args, options, done)
    return 0


def _report(args, options, done: dict) -> None:
    """The lines after a run: the fallback, if any, on stderr; the summary unless --quiet."""
    if options.fallback:  # never silent: said (after the checks and the run) and recorded in the provenance
        print(f"medsr run: {options.fallback}", file=sys.stderr)
    if not args.quiet:
        size = "x".join(map(str, done["shape"]))
        spacing_txt = ", ".join(f"{s:.4g}" for s in done["spacing"])
        kind = " (DICOM series)" if args.output and validation.is_series_output(args.output) else ""
        print(f"wrote {done['output']}{kind} ({size} voxels, spacing {spacing_txt} mm) with {options.model} "
              f"in {done['seconds']:.1f} s")
        if done.get("adapt"):
            info = done["adapt"]
            print(f"adapted from {info['start_weights']}: {info['steps']} steps in {info['seconds']} s, L1 "
                  f"{info['loss_first']:.4f} -> {info['loss_last']:.4f}; {info['profile']}")
