"""The client's side of a finished task: rename its staged result onto the output's name.

Called by the runner only, once per task, immediately before the task's manifest row is recorded
(batch.runner keeps Ctrl-C and SIGTERM out of that step), so a row always describes the file on
disk: the staged result is hashed by the worker and a rename never changes content.

A file output (with the companions its writer made: .mhd -> .raw) replaces an earlier file of that
name. A DICOM series output goes in whole: into an absent or empty folder, or swapped for a folder
holding only a series MedSR wrote (a redo); a folder holding anything else is the user's and is
refused, never touched.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from MedSRExtension.batch.staging import stage_of
from MedSRExtension.core.errors import MedSRError
from MedSRExtension.core.series_owner import foreign_files


def check_target(output: str) -> None:
    """Refuse, before any work, an output the commit could not put in place without touching a
    user's file: a folder where a file goes, a file where a series folder goes, or a series folder
    holding files MedSR did not write."""
    final = Path(output.rstrip(os.sep))
    if not output.endswith(os.sep):
        if final.is_dir():
            raise MedSRError(f"cannot write {final}: a folder of that name exists; choose another output name")
        return
    if final.exists() and not final.is_dir():
        raise MedSRError(f"the DICOM output {final} is a file; give a new folder name")
    foreign = foreign_files(final)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise MedSRError(f"DICOM output folder {final} holds files MedSR did not write ({shown}); move them "
                         "or choose another output folder (they are never replaced)")


def commit(staged: str, output: str) -> None:
    """Rename the staged result of ``output`` into place and remove its staging folder."""
    stage = stage_of(staged)
    final = Path(output.rstrip(os.sep))
    try:
        check_target(output)
        if output.endswith(os.sep):
            _commit_series(Path(staged.rstrip(os.sep)), final, stage)
        else:
            for produced in sorted(p for p in stage.iterdir() if p.is_file()):
                os.replace(produced, final.parent / produced.name)
    except OSError as exc:
        raise MedSRError(f"cannot put {final} in place: {exc.strerror or exc}; check the folder's permissions") \
            from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _commit_series(new: Path, final: Path, stage: Path) -> None:
    if final.is_dir() and any(final.iterdir()):  # only MedSR's own series here (check_target)
        os.replace(final, stage / ".replaced")
    elif final.is_dir():
        final.rmdir()
    os.replace(new, final)
