"""``medsr batch INPUTS OUTDIR``: super-resolve a cohort on Dask distributed, resumable, with a manifest.

Each input is one task running ``medsr run``'s pipeline (same validation, same refusals); a failed
input does not stop the others. The table at the end lists every input with its status, and the
exit status is 1 when any failed (2 when the batch itself cannot start: bad options, no inputs, outputs
that collide; or cannot go on: the manifest cannot be written). Ctrl-C stops it with one line and
exit status 130, the rows of finished outputs kept; files the folder scan skipped are listed, one
line per kind, on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from MedSRExtension.core.errors import MedSRError
from .run import OPTION_NAMES, add_run_options, options_from_args


def register(sub) -> None:
    p = sub.add_parser("batch", help="super-resolve a cohort (folder, glob or CSV) on a Dask cluster",
                       description="Super-resolve every input of INPUTS (a folder, searched recursively for "
                                   "volumes and DICOM series; a glob; or a CSV manifest with per-row options) "
                                   "into OUTDIR, as tasks on a local Dask cluster or an existing one. "
                                   "OUTDIR/manifest.csv records every output with its sha256.")
    p.add_argument("inputs", help="folder, glob (quote it) or CSV manifest (input[,output][,model][,scale]...)")
    p.add_argument("outdir", help="output folder (created); outputs keep the inputs' relative paths")
    add_run_options(p)
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per GPU, else one per CPU core, at most 8)")
    p.add_argument("--scheduler", default=None, help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--resume", action="store_true",
                   help="skip inputs whose output in OUTDIR/manifest.csv still exists and verifies")
    p.add_argument("--format", default=None, choices=("nii.gz", "nii", "nrrd", "mha", "dicom"),
                   help="output format (default: the input's; a DICOM series gives a DICOM series)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="store each derived DICOM series in a PACS (STOW-RS, http(s)://HOST/dicom-web); the "
                        "outputs must be DICOM series (--format dicom, or DICOM/dicomweb: inputs); credentials "
                        "from MEDSR_DICOMWEB_* or the netrc file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def command_line_options(args) -> dict:
    """The run options given on the command line, as ``medsr run`` arguments (the tasks' defaults)."""
    probe = argparse.ArgumentParser(add_help=False)
    add_run_options(probe)  # the defaults of `medsr run`, from the one place that declares them
    defaults = vars(probe.parse_args([]))
    return {k: getattr(args, k) for k in OPTION_NAMES if getattr(args, k) != defaults[k]}


def task_options(given: dict, row: dict) -> dict:
    """A CSV row's options over the command line's (a row's scale replaces a --spacing, and back)."""
    merged = dict(given)
    if "scale" in row or "spacing" in row:
        merged.pop("scale", None)
        merged.pop("spacing", None)
    merged.update(row)
    return merged


def _table(rows: list[dict]) -> str:
    width = max(len("input"), *(len(r["input"]) for r in rows))
    lines = [f"{'status':<8} {'input':<{width}}  output / reason"]
    for r in rows:
        detail = r.get("reason") if r["status"] == "failed" else r.get("output")
        lines.append(f"{r['status']:<8} {r['input']:<{width}}  {detail}")
    return "\n".join(lines)


def _notice(line: str) -> None:
    print(f"medsr batch: {line}", file=sys.stderr)


def run(args) -> int:
    from MedSRExtension.batch.cluster import open_client
    from MedSRExtension.batch.inputs import collect
    from MedSRExtension.batch.manifest import NAME, Manifest
    from MedSRExtension.batch.runner import run_batch
    from MedSRExtension.batch.staging import new_run_id, sweep_run

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise MedSRError(f"OUTDIR {outdir} is a file; give a folder for the outputs")
    if args.workers is not None and args.workers < 1:
        raise MedSRError(f"--workers must be at least 1, got {args.workers}")
    given = command_line_options(args)
    checked = argparse.Namespace(**vars(args))
    if args.scheduler:  # the workers' devices are checked where they run
        checked.device = "auto"
    options_from_args(checked)  # the command line's options, checked before anything starts
    tasks = collect(args.inputs, outdir, args.format, notice=_notice)
    for task in tasks:
        task.options = task_options(given, task.options)
    files = [t.output for t in tasks if not t.output.endswith(os.sep)]
    if args.store and files:
        raise MedSRError(f"--store stores DICOM series, but {files[0]} is a file; add --format dicom "
                         "(or give outputs ending in /)")
    if args.resume:
        Manifest.load(outdir)  # a damaged manifest is refused before a cluster starts
    outdir.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    try:
        with open_client(args.workers, args.scheduler) as (client, resources):
            rows = run_batch(tasks, outdir, client, resources=resources, resume=args.resume, quiet=args.quiet,
                             run_id=run_id, notice=_notice, store=args.store)
    finally:  # once the workers are gone: nothing of this run is still being written
        sweep_run([t.output for t in tasks], run_id)
    print(_table(rows))
    count = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    print(f"{count['done']} done, {count['skipped']} skipped, {count['failed']} failed; "
          f"manifest: {os.path.join(outdir, NAME)}")
    return 1 if count["failed"] else 0
