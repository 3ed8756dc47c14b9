"""Atomic writes: the one way the engine puts a file on disk.

A file is written under a temporary name in the output's own folder (so the final rename never
crosses file systems) and renamed onto its name only when the writer has finished. Any failure,
a ``Cancelled`` run or Ctrl-C removes the temporary file and leaves the target as it was: either
the old file or nothing, never half a file (the CLI turns SIGTERM into the same clean-up).

Every temporary name starts ``.medsr-HOST-PID-``: what a killed process (SIGKILL, power loss) leaves
behind is recognisably MedSR's and its owner's, and ``sweep_stale`` removes exactly those whose process
on this host is gone, never anything else. Outputs follow the umask as any other program's files do;
a write that runs out of disk says so in one line (``check_free_space``, ``disk_full``).
"""
from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

from MedSRExtension.core.errors import MedSRError

PathLike = Union[str, os.PathLike]
_COUNTER = itertools.count()
PREFIX = ".medsr-"
_OWNED = re.compile(r"^\.medsr-(?P<host>.+)-(?P<pid>\d+)-")
_MB = 1 << 20


def owner_prefix() -> str:
    """The start of every temporary name this process makes: ``.medsr-HOST-PID-``."""
    return f"{PREFIX}{socket.gethostname()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: PathLike) -> list[str]:
    """Remove the temporary files and folders in ``folder`` that a MedSR process of this host left
    when it was killed (its PID no longer runs); returns their names. Nothing else is touched."""
    host, removed = socket.gethostname(), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _OWNED.match(entry.name)
        if not m or m["host"] != host or _alive(int(m["pid"])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
        removed.append(entry.name)
    return removed


def umask_mode(directory: bool) -> int:
    """The mode the umask gives a new file (0666) or folder (0777), as open() and mkdir() would."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def follow_umask(path: PathLike) -> None:
    """Give a file or folder made by ``tempfile`` (0600/0700) the mode the umask asks for."""
    os.chmod(path, umask_mode(os.path.isdir(path)))


def check_free_space(folder: PathLike, nbytes: int, target: PathLike) -> None:
    """Refuse before writing when ``folder``'s file system has less than ``nbytes`` free."""
    try:
        free = shutil.disk_usage(folder if str(folder) else ".").free
    except OSError:
        return
    if free < nbytes:
        raise disk_full(target, nbytes, free)


def is_disk_full(exc: BaseException) -> bool:
    """An error of a writer that ran out of space (OSError ENOSPC, or what ITK, nibabel and gzip say then)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return any(s in text for s in ("No space left", "wrote only", "Compressed file ended", "Expected "))


def disk_full(target: PathLike, nbytes: int, free: int | None = None) -> MedSRError:
    """The one-line refusal for a write that does not fit."""
    if free is None:
        try:
            free = shutil.disk_usage(Path(target).parent if str(Path(target).parent) else ".").free
        except OSError:
            free = 0
    return MedSRError(f"no space left on device: {target} needs ~{max(1, round(nbytes / _MB))} MB, "
                      f"{free / _MB:.0f} MB free there; free some space or write to another folder")


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
    tmp = folder / f"{owner_prefix()}{next(_COUNTER)}.{path.name}"
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


def _remove_made(folder: Path, prefix: str) -> None:
    """Remove what one call made under its own unique ``prefix`` in ``folder``: also a folder that
    ``mkdtemp`` had made when a Ctrl-C or SIGTERM cut it short, before its name was returned."""
    try:
        entries = [e.path for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return
    for path in entries:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def staging_folder(folder: PathLike) -> Iterator[Path]:
    """Yield a private empty folder inside ``folder``; on normal exit every file written into it is
    renamed into ``folder`` (for writers that make companion files, as .mhd makes .raw). The
    staging folder is removed in every case."""
    folder = Path(folder) if str(folder) else Path(".")
    prefix = f"{owner_prefix()}{next(_COUNTER)}."  # this call's own: removed whatever cut it short
    try:
        stage = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
        yield stage
        for produced in sorted(stage.iterdir()):
            _commit(produced, folder / produced.name)
    finally:
        _remove_made(folder, prefix)


@contextmanager
def new_folder(folder: PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a private folder beside ``folder`` to fill; on normal exit it is renamed to ``folder``
    (which must be absent or empty, or with ``replace`` is swapped out whole and then removed), on
    any exception it is removed with everything in it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{owner_prefix()}{next(_COUNTER)}.{folder.name}."  # as in staging_folder
    try:
        stage = Path(tempfile.mkdtemp(prefix=prefix, dir=folder.parent))
        follow_umask(stage)
        yield stage
        if folder.exists() and replace and folder.is_dir() and any(folder.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f"{prefix}old.", dir=folder.parent))
            os.replace(folder, old / folder.name)
        elif folder.exists():
            folder.rmdir()  # refuses a non-empty folder: nothing of the user's is replaced
        os.replace(stage, folder)
    finally:
        _remove_made(folder.parent, prefix)  # the stage, and the old folder swapped out
