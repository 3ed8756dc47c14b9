"""``medsr run`` when the work or the data are elsewhere: ``--server URL`` (a ``medsr server`` does
the work), a ``dicomweb:`` INPUT (a PACS series, pulled with WADO-RS) and ``--store URL`` (the
derived DICOM series stored with STOW-RS; OUTPUT may then be left out). Everything else is exactly
``medsr run``: the same options, checks, writers and summary."""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from MedSRExtension.core.errors import MedSRError
from MedSRExtension.pipeline.files import superresolve_file
from MedSRExtension.pipeline.run_options import options_from_args, parse_component

from .common import progress_bar


def needs_elsewhere(args) -> bool:
    """Whether ``medsr run``'s arguments send work or data anywhere but this computer."""
    from MedSRExtension.remote.dicomweb import is_dicomweb
    return bool(args.server or args.store or args.output is None or is_dicomweb(args.input))


def _refuse_with_server(args) -> None:
    for flag, value in (("--save-adapted", args.save_adapted), ("--component", args.component)):
        if value:
            raise MedSRError(f"{flag} is not offered with --server; run this one here without --server")


def _run(args, input_path: str, output: str, options) -> dict:
    update, close = progress_bar(args.quiet, options.model)
    say = None if args.quiet else (lambda line: print(f"medsr run: {line}; give --mode to choose", file=sys.stderr))
    try:
        if args.server:
            from MedSRExtension.remote.credentials import server_token
            from MedSRExtension.remote.files import superresolve_remote
            return superresolve_remote(input_path, output, options, args.server, server_token(args.token),
                                       progress=update, series=args.series, say=say, confidence=args.confidence)
        return superresolve_file(input_path, output, options, component=parse_component(args.component),
                                 progress=update, series=args.series, say=say, confidence=args.confidence)
    finally:
        close()


def run_elsewhere(args, report) -> int:
    """Run ``medsr run`` with a server, a PACS input or a PACS store; ``report(args, options, done)``
    prints the summary a local run prints."""
    from MedSRExtension.core import validation
    from MedSRExtension.remote import dicomweb
    options = options_from_args(args)
    if args.output is None and not args.store:
        raise MedSRError("give OUTPUT (a file, or a folder/ for a DICOM series), or --store URL to store the result in a PACS")
    if args.store and args.output is not None and not validation.is_series_output(args.output):
        raise MedSRError(f"--store stores a DICOM series: OUTPUT must be a folder ending in '/' (got {args.output}), "
                         "or leave OUTPUT out")
    if args.server:
        _refuse_with_server(args)
    scratch = Path(tempfile.mkdtemp(prefix="medsr-run-"))
    try:
        input_path = args.input
        if dicomweb.is_dicomweb(args.input):
            _, _, series = dicomweb.parse_series_url(args.input)
            input_path = str(dicomweb.pull_series(args.input, scratch / series))
        output = args.output or str(scratch / "derived") + "/"
        done = _run(args, input_path, output, options)
        if args.store:
            files = sorted(Path(done["output"]).glob("*.dcm"))
            uid = dicomweb.store_series(args.store, files)
            if not args.quiet:
                print(f"stored the derived series {uid} ({len(files)} instances) at {args.store}")
        if args.output is None:
            done = {**done, "output": f"{args.store} (series {uid})"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(args, options, done)
    return 0
