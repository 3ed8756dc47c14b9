"""What a batch runs: INPUTS (a folder, a glob or a CSV manifest) turned into one task per input.

- a folder: every volume file in it, recursively, and every folder holding a DICOM series (one task
  per series folder); hidden entries and OUTDIR itself are skipped;
- a glob (``'scans/*.nii.gz'``, ``'**'`` recursive): the files and series folders it matches;
- a CSV file (``.csv``): one row per input with a header naming its columns: ``input`` (required),
  ``output`` (relative to OUTDIR), and any run option by its ``medsr run`` name (``model``,
  ``scale``, ``spacing``, ``mode``, ``axis``, ``preset``, ``weights``, ``tile``, ``batch``,
  ``dtype``, ``component``, ``device``, ``force``); an empty cell keeps the command line's value.
  Relative input paths are relative to the CSV file's folder. An input may be a PACS series,
  ``dicomweb:http(s)://HOST/dicom-web/studies/<StudyUID>/series/<SeriesUID>``: the worker that runs
  it pulls it (WADO-RS) and MedSR's DICOM reader checks it as a local folder; its output is named by
  the series UID (a DICOM series folder unless ``--format`` says otherwise).

Outputs are named after the inputs (their path under the folder, for a folder): the input's own
format by default, or ``--format``; a DICOM series input gives a DICOM series folder. What a folder
scan skips (2D images, files MedSR cannot read) is told, one line per kind. Outputs are compared
by their real paths (links, ``..`` resolved): two outputs that are one file, or an output that is
(or holds, or lies inside) an input, are refused before anything runs.
"""
from __future__ import annotations

import csv
import glob as globmod
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from MedSRExtension.core import validation
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.formats import VOLUME_FILES
from MedSRExtension.remote.dicomweb import is_dicomweb, parse_series_url
from MedSRExtension.core.validation import extension_of
from MedSRExtension.pipeline.run_options import OPTION_NAMES

FORMATS = ("nii.gz", "nii", "nrrd", "mha", "dicom")
OPTION_COLUMNS = OPTION_NAMES  # a CSV column per run option, named as `medsr run` names it


@dataclass
class Task:
    """One input: where it is, where its output goes, and its run options as ``medsr run`` arguments
    (strings as typed: each task parses and checks them exactly as ``medsr run`` does)."""

    input: str
    output: str
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"input": self.input, "output": self.output, "options": dict(self.options)}


def _is_series_folder(path: Path) -> bool:
    return path.is_dir() and validation.is_dicom_series(path)


def _inside(path: Path, folder: Optional[Path]) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _scan(root: Path, outdir: Path) -> tuple[list[Path], list[Path]]:
    """The volume files and series folders below ``root``, and the other (visible) files it skipped
    (files of a series folder belong to the series; a header's data file to its header)."""
    found, skipped = [], []
    series = {root} if _is_series_folder(root) else set()
    found.extend(series)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not _inside(here / d, outdir))
        for d in dirnames:
            if _is_series_folder(here / d):
                series.add(here / d)
                found.append(here / d)
        if here in series:
            continue
        names = [n for n in sorted(filenames) if not n.startswith(".")]
        volumes = [here / n for n in names if extension_of(n) in VOLUME_FILES]
        companions = {c for v in volumes for c in validation.companion_files(v)}
        found.extend(volumes)
        skipped.extend(here / n for n in names if extension_of(n) not in VOLUME_FILES and here / n not in companions)
    return found, skipped


def _examples(paths: list[Path], root: Path) -> str:
    shown = ", ".join(str(p.relative_to(root)) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def skipped_lines(skipped: list[Path], root: Path) -> list[str]:
    """One line per kind of file a folder scan skipped, with why and how to include it."""
    from MedSRExtension.core.volume_io import IMAGE_EXTENSIONS
    images = [p for p in skipped if extension_of(p) in IMAGE_EXTENSIONS]
    others = [p for p in skipped if extension_of(p) not in IMAGE_EXTENSIONS]
    lines = []
    if images:
        lines.append(f"skipped {len(images)} 2D image(s) in {root} ({_examples(images, root)}): a folder is "
                     "scanned for volumes and DICOM series; give 2D images by a glob or a CSV manifest")
    if others:
        lines.append(f"skipped {len(others)} file(s) in {root} that are not volumes or DICOM "
                     f"({_examples(others, root)}); batch reads {', '.join(VOLUME_FILES)} files and DICOM "
                     "series folders")
    return lines


def _stem(path: Path) -> str:
    ext = extension_of(path)
    return path.name[:-len(ext)] if ext else path.name


def output_for(source: Path, relative: Path, outdir: Path, fmt: Optional[str]) -> str:
    """The output of ``source`` (whose path below the cohort root is ``relative``): a series folder
    (trailing separator) for a DICOM input or --format dicom, else a file in the format asked for
    (default: the input's own)."""
    series_in = validation.is_dicom_series(source)
    if fmt == "dicom" or (fmt is None and series_in):
        name = relative.name if source.is_dir() else _stem(relative)
        return os.path.normpath(os.path.join(outdir, relative.parent, name or source.resolve().name)) + os.sep
    ext = "." + fmt if fmt else extension_of(source)
    if series_in:  # a DICOM input to a file format: NIfTI unless told
        ext = "." + (fmt or "nii.gz")
    return os.path.normpath(os.path.join(outdir, relative.parent, _stem(relative) + ext))


def _from_csv(path: Path, outdir: Path, fmt: Optional[str]) -> list[Task]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            columns = [c.strip() for c in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MedSRError(f"cannot read the CSV manifest {path}: {exc}; give a UTF-8 CSV file with a header row") \
            from None
    if not rows:
        raise MedSRError(f"the CSV manifest {path} has no rows; give a header row (input,...) and one row per input")
    unknown = [c for c in columns if c not in ("input", "output") + OPTION_COLUMNS]
    if "input" not in columns or unknown:
        what = f"unknown column(s) {', '.join(unknown)}" if unknown else "no 'input' column"
        raise MedSRError(f"the CSV manifest {path} has {what}; columns are input, output and the run options "
                         f"{', '.join(OPTION_COLUMNS)}")
    tasks = []
    for n, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("input"):
            raise MedSRError(f"row {n} of {path} has no input; give a path in the input column")
        if is_dicomweb(row["input"]):  # a PACS series: pulled by the worker that runs it
            tasks.append(_pacs_task(row, outdir, fmt))
            continue
        source = Path(row["input"])
        if not source.is_absolute():
            source = path.parent / source
        if row.get("output"):
            output = os.path.normpath(os.path.join(outdir, row["output"]))
            if validation.is_series_output(row["output"]):
                output += os.sep
        else:
            output = output_for(source, Path(source.name), outdir, fmt)
        options = {k: row[k] for k in OPTION_COLUMNS if row.get(k)}
        tasks.append(Task(str(source), output, options))
    return tasks


def _pacs_task(row: dict, outdir: Path, fmt: Optional[str]) -> Task:
    """The task of a ``dicomweb:`` input: its output named by the series UID (a DICOM series folder
    unless --format or the output column says otherwise)."""
    _, _, series = parse_series_url(row["input"])
    if row.get("output"):
        output = os.path.normpath(os.path.join(outdir, row["output"]))
        output += os.sep if validation.is_series_output(row["output"]) else ""
    elif fmt in (None, "dicom"):
        output = os.path.join(os.path.normpath(outdir), series) + os.sep
    else:
        output = os.path.join(os.path.normpath(outdir), f"{series}.{fmt}")
    return Task(row["input"], output, {k: row[k] for k in OPTION_COLUMNS if row.get(k)})


def _real(path: str) -> Path:
    return Path(os.path.realpath(path.rstrip(os.sep) or os.sep))


def check_outputs(tasks: list[Task]) -> None:
    """Refuse two outputs that are one file or folder (after links and ``..``), and an output that is an
    input, lies inside an input series folder, or is a series folder holding an input."""
    inputs = {_real(t.input): t.input for t in tasks}
    outputs: dict[Path, Task] = {}
    for t in tasks:
        key = _real(t.output)
        if key in outputs:
            first = outputs[key]
            same = "" if os.path.normpath(first.output) == os.path.normpath(t.output) else \
                f" ({first.output} and {t.output} are one path, {key}, through a link)"
            raise MedSRError(f"{first.input} and {t.input} would both write {t.output}{same}; give outputs in a "
                             "CSV manifest or rename one input")
        outputs[key] = t
        hit = next((inputs[p] for p in (key, *key.parents) if p in inputs), None)
        if hit is None and t.output.endswith(os.sep):
            hit = next((name for p, name in inputs.items() if key in p.parents), None)
        if hit is not None:
            raise MedSRError(f"the output {t.output} of {t.input} is, or overlaps, the input {hit} ({key}); "
                             "choose an OUTDIR or output names apart from the inputs (inputs are never overwritten)")


def collect(inputs: str, outdir: os.PathLike | str, fmt: Optional[str] = None,
            notice: Optional[Callable[[str], None]] = None) -> list[Task]:
    """The tasks for INPUTS (folder, glob or CSV manifest), outputs under ``outdir``. Refuses an empty
    cohort and outputs that collide (``check_outputs``); ``notice`` gets the lines of what a folder
    scan skipped."""
    outdir = Path(outdir)
    if fmt is not None and fmt not in FORMATS:
        raise MedSRError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    source = Path(inputs)
    if source.is_file() and extension_of(source) == ".csv":
        tasks = _from_csv(source, outdir, fmt)
    elif source.is_dir():
        found, skipped = _scan(source, outdir)
        tasks = [Task(str(p), output_for(p, p.relative_to(source) if p != source else Path(p.resolve().name),
                                         outdir, fmt)) for p in found]
        for line in skipped_lines(skipped, source) if notice else ():
            notice(line)
    else:
        matches = [Path(p) for p in sorted(globmod.glob(inputs, recursive=True))]
        matches = [p for p in matches if (p.is_file() or _is_series_folder(p)) and not _inside(p, outdir)]
        if not matches and not any(ch in inputs for ch in "*?["):
            raise MedSRError(f"INPUTS {inputs} is not a folder, a CSV manifest or a glob that matches; check the path")
        tasks = [Task(str(p), output_for(p, Path(p.name), outdir, fmt)) for p in matches]
    if not tasks:
        raise MedSRError(f"no inputs found in {inputs}; give a folder of volumes or DICOM series, a glob, "
                         "or a CSV manifest")
    check_outputs(tasks)
    return tasks
