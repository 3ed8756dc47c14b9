"""Atomic writes: the one way the engine puts a file on disk.

A file is written under a temporary name in the output's own folder (so the final rename never
crosses file systems) and renamed onto its name only when the writer has finished. Any failure,
a ``Cancelled`` run or Ctrl-C removes the temporary file and leaves the target as it was: either
the old file or nothing, never half a file.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

from MedSRExtension.core.errors import MedSRError

PathLike = Union[str, os.PathLike]
_COUNTER = itertools.count()


def _suffix(name: str) -> str:
    """The extension a writer chooses its format by ('.nii.gz' counted as one)."""
    lower = name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if lower.endswith(double):
            return name[-len(double):]
    return Path(name).suffix


def _commit(src: PathLike, dst: Path) -> None:
    if dst.is_dir():
        raise MedSRError(f"cannot write {dst}: a folder of that name exists; choose another output name")
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise MedSRError(f"cannot write {dst}: {exc.strerror or exc}; check the folder's permissions and free space") \
            from None


@contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (same extension) to write to; on normal exit it is
    renamed onto ``path``, on any exception (also KeyboardInterrupt) it is removed."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    tmp = folder / f".{path.name}.{os.getpid()}.{next(_COUNTER)}.tmp{_suffix(path.name)}"
    try:
        yield str(tmp)
        _commit(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_with(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as f:
            f.write(text)
    write_with(path, write)


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    write_with(dst, lambda tmp: shutil.copyfile(src, tmp))


@contextmanager
def staging_folder(folder: PathLike) -> Iterator[Path]:
    """Yield a private empty folder inside ``folder``; on normal exit every file written into it is
    renamed into ``folder`` (for writers that make companion files, as .mhd makes .raw). The
    staging folder is removed in every case."""
    folder = Path(folder) if str(folder) else Path(".")
    stage = Path(tempfile.mkdtemp(prefix=".medsr-", dir=folder))
    try:
        yield stage
        for produced in sorted(stage.iterdir()):
            _commit(produced, folder / produced.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def new_folder(folder: PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a private folder beside ``folder`` to fill; on normal exit it is renamed to ``folder``
    (which must be absent or empty, or with ``replace`` is swapped out whole and then removed), on
    any exception it is removed with everything in it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    old = None
    try:
        yield stage
        if folder.exists() and replace and folder.is_dir() and any(folder.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / folder.name)
        elif folder.exists():
            folder.rmdir()  # refuses a non-empty folder: nothing of the user's is replaced
        os.replace(stage, folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
