"""Where a batch task writes before its output is final, and how stale staging is swept.

A task never writes an output's final path: each attempt writes into its own new folder
``.medsr-batch-<run>-XXXXXXXX/`` beside the output (same file system, so the client's final rename
never copies) and returns. Only the client renames the result into place and records its manifest
row (batch.commit), so a task Dask re-runs after a worker died writes a fresh staging folder that
is never committed: no retry can rewrite an output whose row is already written.

``sweep_stale`` removes what interrupted runs left beside the cohort's outputs, and only names MedSR
makes: the ``.medsr-HOST-PID-...`` names of core.atomic whose process is gone (``atomic.sweep_stale``),
and the names earlier versions made: ``tempfile.mkdtemp`` folders ``.medsr-XXXXXXXX`` (core.atomic.staging_folder) and
``.medsr-batch-<run>-XXXXXXXX`` (here), a DICOM output's ``.NAME.XXXXXXXX`` / ``.NAME.old.XXXXXXXX``
(core.atomic.new_folder) and an output's ``.NAME.<pid>.<n>.tmp<ext>`` (core.atomic.atomic_path).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Union

from MedSRExtension.core import atomic

PathLike = Union[str, os.PathLike]
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's random part: 8 of abcdefghijklmnopqrstuvwxyz0123456789_
_STAGE = re.compile(rf"\.medsr-(batch-[0-9a-f]+-)?{_RANDOM}")


def new_run_id() -> str:
    """A short id naming one batch run's staging folders."""
    return uuid.uuid4().hex[:12]


def make_stage(output: str, run_id: str) -> str:
    """A new, empty staging folder beside ``output`` for one attempt of its task; returns the path
    the task writes (a series folder keeps its trailing separator)."""
    final = output.rstrip(os.sep)
    parent = os.path.dirname(final) or "."
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=f".medsr-batch-{run_id}-", dir=parent)
    staged = os.path.join(stage, os.path.basename(final))
    return staged + os.sep if output.endswith(os.sep) else staged


def stage_of(staged: str) -> Path:
    """The staging folder holding the staged output ``staged``."""
    return Path(staged.rstrip(os.sep)).parent


def _parents(outputs: Iterable[str]) -> set[Path]:
    return {Path(o.rstrip(os.sep)).parent for o in outputs}


def sweep_run(outputs: Iterable[str], run_id: str) -> int:
    """Remove this run's staging folders (attempts whose result was not committed); returns how many."""
    prefix = f".medsr-batch-{run_id}-"
    removed = 0
    for parent in _parents(outputs):
        if parent.is_dir():
            for entry in parent.iterdir():
                if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += not entry.exists()
    return removed


def _stale(entry: Path, names: set[str]) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_dir():
        if _STAGE.fullmatch(entry.name):
            return True
        return any(re.fullmatch(rf"\.{re.escape(n)}\.(old\.)?{_RANDOM}", entry.name) for n in names)
    return entry.is_file() and any(re.fullmatch(rf"\.{re.escape(n)}\.\d+\.\d+\.tmp.*", entry.name) for n in names)


def sweep_stale(outdir: PathLike, outputs: Iterable[str], manifest_name: str) -> list[Path]:
    """Remove the staging folders and temporary files interrupted runs left in ``outdir`` and beside
    ``outputs`` (MedSR's own names only, see the module docstring); returns what was removed."""
    outputs = list(outputs)
    names_by_parent: dict[Path, set[str]] = {Path(outdir): {manifest_name}}
    for o in outputs:
        final = Path(o.rstrip(os.sep))
        names_by_parent.setdefault(final.parent, set()).add(final.name)
    removed = []
    for parent, names in names_by_parent.items():
        if not parent.is_dir():
            continue
        # today's temporary names carry host and PID: core.atomic removes those of processes gone
        removed += [parent / name for name in atomic.sweep_stale(parent)]
        for entry in sorted(parent.iterdir()):
            if _stale(entry, names):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                if not os.path.lexists(entry):
                    removed.append(entry)
    return removed
